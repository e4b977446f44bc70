"""MLflow side of training: store and experiments, the logged run, registration, champion promotion."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import minimal_config
from synthetic import RETENTION, SPECS, spec, synthetic_features

from pipeline.bundle import load_bundle
from pipeline.config import config_from_dict
from pipeline.errors import ScoreError
from pipeline.model import ChurnModel, LinearScore
from pipeline.split import labelled_snapshots, time_split
from pipeline.tracking import (
    champion_bundle,
    combined_fingerprint,
    configure_mlflow,
    decide_promotion,
    ensure_experiment,
    flat_metrics,
    flatten,
    baseline_run_contents,
    bundle_manifest_fields,
    incumbent_test_metric,
    noise_caveat,
    tracking_settings,
    training_run_contents,
    unchanged_decision,
)
from pipeline.run.train import contributions_source, track_training, training_figures
from pipeline.train import train_models

FINGERPRINTS = {"validated": {"transactions.parquet": "ab" * 32}, "features": {}}


def make_cfg(folder: Path, uri: str, *, model_name: str, experiment: str = "tracking-tests"):
    raw = minimal_config(
        snapshots={"start": "2024-01-01", "end": "2024-09-01"},
        features={"horizon_days": 30},
        paths={"data_dir": "data", "models_dir": "models"},
        train={"model_name": model_name, "search_trials": 1, "num_threads": 1},
        mlflow={"tracking_uri": uri, "artifact_root": "mlartifacts", "experiment": experiment},
    )
    return config_from_dict(raw, base_dir=folder)


# --- promotion rule with constructed metrics ----------------------------------------------------------


def test_first_model_is_promoted():
    decision = decide_promotion(0.61, None, metric="pr_auc")
    assert decision.promote and decision.label == "promoted"
    assert decision.reason == "no current champion; test pr_auc 0.6100"


def test_equal_or_better_model_is_promoted_worse_is_kept():
    equal = decide_promotion(0.61, 0.61, metric="pr_auc", incumbent_version="3")
    assert equal.promote and "at least champion v3's 0.6100" in equal.reason
    worse = decide_promotion(0.60, 0.61, metric="pr_auc", incumbent_version="3", basis="re-scored")
    assert not worse.promote and worse.label == "kept"
    assert (
        worse.reason == "test pr_auc 0.6000 is worse than champion v3's 0.6100 (higher is better; champion re-scored)"
    )


def test_a_verdict_shows_the_values_with_enough_digits_to_tell_them_apart():
    # The Olist sample: "test pr_auc 0.9993 is worse than champion v1's 0.9993" (0.9993315 against 0.9993319).
    worse = decide_promotion(0.999331503, 0.999331896, metric="pr_auc", incumbent_version="1")
    assert worse.reason.startswith("test pr_auc 0.9993315 is worse than champion v1's 0.9993319 (")
    assert "0.6100 is at least champion v3's 0.6100" in decide_promotion(
        0.61, 0.61, metric="pr_auc", incumbent_version="3").reason


def test_lower_is_better_for_losses():
    assert decide_promotion(0.40, 0.45, metric="log_loss").promote
    kept = decide_promotion(0.05, 0.04, metric="ece")
    assert not kept.promote and "(lower is better)" in kept.reason


def test_nan_never_replaces_a_champion_but_a_nan_champion_is_replaced():
    assert not decide_promotion(math.nan, 0.5, metric="roc_auc").promote
    assert decide_promotion(0.5, math.nan, metric="roc_auc").promote


def test_unchanged_decision_keeps_the_champion_and_reports_the_kept_candidates_metric():
    metrics = {"model_choice": {"chosen": "blend"}, "test": {"blend": {"pr_auc": 0.42}, "lightgbm": {"pr_auc": 0.4}}}
    decision = unchanged_decision(metrics, champion="7", fingerprint="0123456789abcdef" * 4, metric="pr_auc")
    assert (decision.promote, decision.label, decision.new_value, decision.incumbent_version) == (
        False, "unchanged", 0.42, "7"
    )
    assert decision.reason == (
        "unchanged: the model's files equal champion v7's (fingerprint 0123456789ab); no new version registered"
    )


# --- tracking settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("difference", "low", "high", "caveat"),
    [
        (0.004, 0.001, 0.007, ""),
        (0.004, -0.002, 0.010, "caution: its test ROC-AUC lead over the best baseline (logistic_rfm) is +0.0040 "
                               "with a 95% interval of -0.0020 to +0.0100, so it may be noise"),
        (-0.0005, -0.0024, 0.0012, "caution: it does not beat the best baseline (logistic_rfm) on test ROC-AUC: "
                                   "-0.0005 with a 95% interval of -0.0024 to +0.0012"),
    ],
)
def test_noise_caveat_says_lead_only_when_there_is_one(difference, low, high, caveat):
    lead = {"reference": "logistic_rfm", "difference": difference, "low": low, "high": high}
    metrics = {"model_choice": {"chosen": "logistic"}, "comparison": {"candidates": {"logistic": {"roc_auc": lead}}}}
    assert noise_caveat(metrics) == caveat


def test_tracking_settings_are_read_from_the_config_once_and_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = f"sqlite:///{tmp_path / 'x.db'}"
    cfg = make_cfg(tmp_path, store, model_name="settings-test", experiment="exp")
    settings = tracking_settings(cfg)
    assert (settings.tracking_uri, settings.experiment, settings.model_name, settings.champion_metric) == (
        store, "exp", "settings-test", "pr_auc"
    )
    assert settings.artifact_root == (tmp_path / "mlartifacts").resolve()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert tracking_settings(cfg).tracking_uri == "sqlite:///from-env.db"
    assert settings.tracking_uri == store  # frozen: read when built
    with pytest.raises(dataclasses.FrozenInstanceError, match="tracking_uri"):
        settings.tracking_uri = "other"  # type: ignore[misc]


# --- small helpers ----------------------------------------------------------------------------------------


def test_flatten_nested_config():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "None",
        "e": "{}",
    }


def test_flat_metric_names():
    metrics = {"test": {"lightgbm": {"roc_auc": 0.8}}, "validation": {"btyd": {"ece": 0.1}}, "split": {"test": "x"}}
    assert flat_metrics(metrics) == {"test_lightgbm_roc_auc": 0.8, "validation_btyd_ece": 0.1}


def test_combined_fingerprint_ignores_order_but_not_content():
    assert combined_fingerprint({"a": "1", "b": "2"}) == combined_fingerprint({"b": "2", "a": "1"})
    assert combined_fingerprint({"a": "1"}) != combined_fingerprint({"a": "2"})


# --- store and experiments --------------------------------------------------------------------------------


def test_environment_tracking_uri_wins(tmp_path, mlflow_uri, monkeypatch):
    import mlflow

    cfg = make_cfg(tmp_path, mlflow_uri, model_name="env-test")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert configure_mlflow(tracking_settings(cfg)) == other
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert configure_mlflow(tracking_settings(cfg)) == mlflow_uri
    assert mlflow.get_tracking_uri() == mlflow_uri


def test_experiment_is_created_once_with_artifacts_under_the_root(tmp_path, mlflow_uri):
    import mlflow

    cfg = make_cfg(tmp_path, mlflow_uri, model_name="exp-test", experiment="exp test/one")
    experiment_id = ensure_experiment(tracking_settings(cfg), "exp test/one")
    assert ensure_experiment(tracking_settings(cfg), "exp test/one") == experiment_id
    location = mlflow.MlflowClient(mlflow_uri).get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "mlartifacts" / "exp-test-one").resolve().as_uri()


def test_missing_champion_is_a_score_error(tmp_path, mlflow_uri):
    cfg = make_cfg(tmp_path, mlflow_uri, model_name="never-trained")
    with pytest.raises(
        ScoreError, match=r"no model registered as 'never-trained@champion' in sqlite:.*run `churn train` first"
    ):
        champion_bundle(tracking_settings(cfg), dest=tmp_path / "download")


# --- real runs: logging, registration and promotion --------------------------------------------------------


@pytest.fixture(scope="module")
def table():
    return synthetic_features(snapshots=8, customers=400, unlabelled=1, seed=21)


@pytest.fixture(scope="module")
def trained(table):
    split = time_split(labelled_snapshots(table), horizon_days=30)
    cfg = make_cfg(Path("."), "sqlite:///unused.db", model_name="unused")
    strong = train_models(table, specs=SPECS, split=split, cfg=cfg.train, retention=RETENTION)
    # A model that sees only noise: clearly worse on the same test snapshot.
    weak = train_models(
        table, specs=[spec("noise", "rfm")], split=split, cfg=cfg.train, retention=RETENTION
    )
    return strong, weak


def test_training_run_contents_tag_the_registered_model_and_log_the_evaluated_metrics(trained):
    strong, _ = trained
    backtest = {"summary": {"lightgbm": {"roc_auc": {"mean": 0.8, "std": 0.01}}}, "folds": []}
    contents = training_run_contents(
        strong,
        model=strong.model,
        config={"train": {"model_name": "m", "cv_folds": 3}},
        fingerprints=FINGERPRINTS,
        trained_on=["2024-01-01", "2024-02-01"],
        model_name="m",
        engine="local",
        backtest=backtest,
        warnings={"attribute_leak": "the customer attribute ..."},
    )
    split = strong.split.as_dict()
    tags = contents.tags
    assert tags["attribute_leak"] == "the customer attribute ..."
    assert tags["training_snapshots"] == "2024-01-01,2024-02-01"
    assert tags["evaluation_training_snapshots"] == ",".join(split["train"])
    assert (tags["test_snapshot"], tags["model_name"], tags["train_engine"]) == (split["test"], "m", "local")
    assert tags["validated_sha256"] == combined_fingerprint(FINGERPRINTS["validated"])
    assert tags["chosen_model"] == strong.metrics["model_choice"]["chosen"]
    assert tags["feature_count"] == str(len(strong.model.feature_names_))
    assert contents.params["train.model_name"] == "m" and contents.params["train.cv_folds"] == "3"
    assert contents.params["lightgbm.deterministic"] == "True" and "lightgbm.metric" not in contents.params
    assert contents.metrics["test_lightgbm_roc_auc"] == strong.metrics["test"]["lightgbm"]["roc_auc"]
    assert (contents.metrics["backtest_mean_lightgbm_roc_auc"], contents.metrics["backtest_std_lightgbm_roc_auc"]) == (
        0.8, 0.01
    )
    assert set(contents.documents) == {
        "config/resolved_config.json", "inputs/fingerprints.json", "inputs/features.json", "inputs/snapshots.json",
        "metrics/metrics.json", "search/trials.json", "backtest/backtest.json",
    }
    assert contents.documents["inputs/features.json"]["features"] == strong.model.feature_names_
    without = training_run_contents(
        strong, model=strong.model, config={}, fingerprints={}, trained_on=[], model_name="m", engine="dask"
    )
    assert "backtest/backtest.json" not in without.documents
    assert not any(key.startswith("backtest_") for key in without.metrics)


def test_baseline_run_contents_hold_its_status_and_metrics_per_split(trained):
    strong, _ = trained
    contents = baseline_run_contents(strong, "logistic_rfm")
    assert contents.tags["model"] == "logistic_rfm" and contents.tags["status.test"] == "ok"
    assert contents.metrics["test_roc_auc"] == strong.metrics["test"]["logistic_rfm"]["roc_auc"]
    assert contents.metrics["validation_log_loss"] == strong.metrics["validation"]["logistic_rfm"]["log_loss"]
    assert contents.params["calibration"] == strong.baselines["logistic_rfm"].calibrator.method


def test_bundle_manifest_fields_name_the_split_and_the_drift_reference_of_the_test_snapshot(trained):
    strong, _ = trained
    fields = bundle_manifest_fields(strong, model=strong.model, champion_metric="roc_auc")
    split = strong.split.as_dict()
    assert (fields["test_snapshot"], fields["validation_snapshot"], fields["evaluation_training_snapshots"]) == (
        split["test"], split["validation"], split["train"]
    )
    assert fields["champion_metric"] == "roc_auc" and fields["calibration"] == strong.model.calibrator_.method
    assert fields["drift_reference"]["snapshot"] == split["test"]
    assert fields["drift_reference"]["rows"] == len(strong.test_features)
    assert "fits" not in fields["drift_reference"]  # none recorded (the BTYD family off, older snapshot files)
    fits = [{"model": "BG/NBD", "features": ["btyd_p_alive"], "outcome": "no_dropout", "status": "ok", "note": "n"}]
    with_fits = bundle_manifest_fields(strong, model=strong.model, champion_metric="roc_auc", test_fits=fits)
    assert with_fits["drift_reference"]["fits"] == fits  # what churn score compares today's fits with


def test_the_drift_reference_scores_the_test_snapshot_with_the_bundled_model(trained):
    """The bundle holds the model refitted on every labelled snapshot, not the evaluation model: scoring the test
    snapshot with it must find the score where the reference put it (before: the evaluation model's scores, a PSI
    of 1.5 on Online Retail the day it was trained)."""
    from pipeline.drift import SCORE, drift_table

    strong, _ = trained
    bundled = ChurnModel.from_files(strong.model.to_files())
    bundled.linear_ = LinearScore.fit(
        strong.test_features, strong.labels["test"], feature_names=strong.columns.numeric, seed=0, fit_rows=10_000)
    bundled.blend_weight_ = 0.5
    reference = bundle_manifest_fields(strong, model=bundled, champion_metric="roc_auc")["drift_reference"]
    today = bundled.predict_proba(strong.test_features)
    scored = drift_table(strong.test_features, today, reference).set_index("feature")
    assert scored.at[SCORE, "psi"] == pytest.approx(0.0, abs=1e-9)
    assert reference["predicted_rate"] == pytest.approx(float(np.mean(today)))
    evaluation = bundle_manifest_fields(strong, model=strong.model, champion_metric="roc_auc")["drift_reference"]
    assert drift_table(strong.test_features, today, evaluation).set_index("feature").at[SCORE, "psi"] > 0.01


def test_importance_figure_shows_the_kept_models_own_contributions_and_names_it(trained):
    strong, _ = trained
    linear = LinearScore.fit(  # a logistic part for the variants (where it was fitted does not matter here)
        strong.test_features, strong.labels["test"], feature_names=strong.columns.numeric, seed=0, fit_rows=10_000
    )
    for weight, kind in ((1.0, "lightgbm"), (0.0, "logistic"), (0.6, "blend")):
        model = ChurnModel.from_files(strong.model.to_files())
        model.linear_, model.blend_weight_ = linear, weight
        figure = training_figures(dataclasses.replace(strong, model=model), rows=50)["plots/feature_importance.png"]
        ax = figure.axes[0]
        assert model.kind_ == kind and contributions_source(kind, weight) in ax.get_title()
        importance = model.contributions(strong.test_features.head(50)).abs().mean()
        shown = importance.sort_values(ascending=False).head(20)[::-1]
        assert [label.get_text() for label in ax.get_yticklabels()] == list(shown.index)
        np.testing.assert_allclose([bar.get_width() for bar in ax.patches], 100 * shown.to_numpy() / importance.sum())


@pytest.mark.slow
def test_run_is_logged_registered_and_champion_moves_only_to_an_equal_or_better_model(
    tmp_path, mlflow_uri, trained, table
):
    import mlflow

    strong, weak = trained
    assert weak.metrics["test"]["lightgbm"]["pr_auc"] < strong.metrics["test"]["lightgbm"]["pr_auc"]
    cfg = make_cfg(tmp_path, mlflow_uri, model_name="tracking-promotion")
    client = mlflow.MlflowClient(mlflow_uri)

    first = track_training(cfg, strong, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert first.decision.promote and first.model_version == "1"

    # The run and its contents are visible through the MLflow API.
    run = client.get_run(first.run_id)
    assert run.data.metrics["test_lightgbm_roc_auc"] == pytest.approx(strong.metrics["test"]["lightgbm"]["roc_auc"])
    for baseline in ("recency_rule", "logistic_rfm", "btyd"):
        assert f"test_{baseline}_roc_auc" in run.data.metrics and f"test_{baseline}_log_loss" in run.data.metrics
    assert run.data.tags["champion_decision"] == "promoted"
    assert run.data.tags["test_snapshot"] == strong.split.as_dict()["test"]
    assert run.data.tags["git_commit"]
    assert run.data.params["train.model_name"] == "tracking-promotion"
    assert run.data.params["lightgbm.deterministic"] == "True"
    found = client.search_runs([first.experiment_id], filter_string="tags.model_name = 'tracking-promotion'")
    assert [r.info.run_id for r in found] == [first.run_id]
    nested = client.search_runs([first.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'")
    assert sorted(r.data.tags["model"] for r in nested) == ["btyd", "logistic_rfm", "recency_rule"]
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"bundle", "config", "inputs", "metrics", "plots", "search"} <= artifacts
    plots = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert {"plots/roc_test.png", "plots/shap_summary_test.png", "plots/reliability_test.png"} <= plots

    # The experiment opens on its runs in the MLflow UI (classic ML, not the GenAI overview).
    experiment = client.get_experiment(first.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    # A training rerun that gives the very same model registers no new version: "unchanged".
    rerun = track_training(cfg, strong, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert rerun.decision.label == "unchanged" and rerun.model_version == "1"
    assert rerun.decision.reason.startswith("unchanged: the model's files equal champion v1's")
    assert [str(v.version) for v in client.search_model_versions("name = 'tracking-promotion'")] == ["1"]
    assert client.get_run(rerun.run_id).data.tags["champion_decision"] == "unchanged"

    # A different model that is not worse takes the alias (equal metric, the champion re-scored).
    variant = ChurnModel.from_files(strong.model.to_files())
    variant.params_ = {**variant.params_, "variant": 1}  # other files, the same predictions
    second = track_training(cfg, strong, retention=RETENTION, fingerprints=FINGERPRINTS, production=variant)
    assert second.decision.promote and second.decision.incumbent_version == "1" and second.model_version == "2"
    assert "re-scored on test snapshot" in second.decision.reason
    # A worse one does not.
    third = track_training(cfg, weak, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert not third.decision.promote
    assert client.get_run(third.run_id).data.tags["champion_decision"] == "kept"
    assert str(client.get_model_version_by_alias("tracking-promotion", "champion").version) == "2"

    # The local bundle holds the last run's model; the champion's bundle comes from the registry.
    assert load_bundle(third.bundle_path).manifest["model_version"] == "3"
    path, version = champion_bundle(tracking_settings(cfg), dest=tmp_path / "download")
    loaded = load_bundle(path)
    assert version == "2" and loaded.manifest["mlflow_run_id"] == second.run_id
    test_rows = strong.test_features
    np.testing.assert_array_equal(loaded.model.predict_proba(test_rows), strong.model.predict_proba(test_rows))

    # The registered pyfunc returns the calibrated probability.
    pyfunc = mlflow.pyfunc.load_model("models:/tracking-promotion@champion")
    predicted = pyfunc.predict(test_rows[strong.model.feature_names_].head(20).astype({"nps_last": "float64"}))
    np.testing.assert_allclose(np.asarray(predicted), strong.model.predict_proba(test_rows.head(20)))

    # The champion cannot be re-scored without its features: its recorded test metric is used.
    without_feature = dataclasses.replace(strong, test_features=strong.test_features.drop(columns=["nps_last"]))
    value, version, basis = incumbent_test_metric(tracking_settings(cfg), without_feature, retention=RETENTION)
    assert (value, version) == (pytest.approx(strong.metrics["test"]["lightgbm"]["pr_auc"]), "2")
    assert basis.startswith("value recorded at its training; it could not be re-scored: the feature table lacks")
    # An earlier test snapshot whose window overlaps the champion's validation labels: recorded metric too.
    earlier = dataclasses.replace(strong, split=dataclasses.replace(strong.split, test=strong.split.validation[0]))
    _, _, basis = incumbent_test_metric(tracking_settings(cfg), earlier, retention=RETENTION)
    assert basis == "value recorded at its training; it was fitted on labels overlapping this test snapshot"


def test_another_projects_champion_keeps_the_alias_and_a_renamed_export_is_compared_with_a_note(
    tmp_path, mlflow_uri, trained
):
    """Two shops share a registry and the default model name: shop B's training must not take shop A's alias (nor
    be judged by A's model on B's data); the same shop reading a renamed export is compared as usual."""
    import mlflow

    strong, weak = trained
    shop_a = make_cfg(tmp_path, mlflow_uri, model_name="tracking-shared")
    first = track_training(shop_a, weak, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert first.decision.promote
    shop_b = shop_a.model_copy(update={"project": "shop-b"})
    other = track_training(shop_b, strong, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert not other.decision.promote and other.decision.label == "kept" and other.decision.other_project == shop_a.project
    assert other.decision.reason.startswith(
        f"champion v1 was trained for project {shop_a.project!r} from {shop_a.sources.transactions.path}, this run for "
        f"project 'shop-b' from {shop_a.sources.transactions.path}: another project's champion is not replaced")
    client = mlflow.MlflowClient(mlflow_uri)
    assert str(client.get_model_version_by_alias("tracking-shared", "champion").version) == "1"
    renamed = shop_a.model_copy(update={"sources": shop_a.sources.model_copy(update={
        "transactions": shop_a.sources.transactions.model_copy(update={"path": tmp_path / "export-2.csv"})})})
    same_shop = track_training(renamed, strong, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert same_shop.decision.promote and same_shop.decision.other_project is None
    assert (f"the champion was trained from {shop_a.sources.transactions.path}, this run reads "
            f"{tmp_path / 'export-2.csv'}") in same_shop.decision.reason
    # a file read inside a zip archive: the champion's data is named as this run's is, no note when they agree
    shop_c = make_cfg(tmp_path, mlflow_uri, model_name="tracking-zipped")
    zipped_export = shop_c.sources.transactions.model_copy(update={"path": tmp_path / "d.zip", "member": "t.csv"})
    from_zip = shop_c.model_copy(update={"sources": shop_c.sources.model_copy(update={"transactions": zipped_export})})
    assert track_training(from_zip, weak, retention=RETENTION, fingerprints=FINGERPRINTS).decision.promote
    again = track_training(from_zip, strong, retention=RETENTION, fingerprints=FINGERPRINTS)
    assert "the champion was trained from" not in again.decision.reason


def test_no_champion_means_no_incumbent(tmp_path, mlflow_uri, trained):
    cfg = make_cfg(tmp_path, mlflow_uri, model_name="tracking-no-champion")
    assert incumbent_test_metric(tracking_settings(cfg), trained[0], retention=RETENTION) == (None, None, "")


def test_configure_mlflow_leaves_the_environment_alone(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw = minimal_config("t.csv", mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'a.db'}"})
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert configure_mlflow(tracking_settings(cfg)) == f"sqlite:///{tmp_path / 'a.db'}"
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_noise_caveat_names_the_champion_metric_when_the_model_trails_on_it():
    """Grocery event log (BTYDplus): LightGBM led the best baseline by ROC-AUC +0.0042 [-0.0078, +0.0167] but trailed
    it on PR-AUC, the champion metric, by -0.023 [-0.050, +0.005]; the promotion only spoke of ROC-AUC."""
    roc = {"reference": "logistic_rfm", "difference": 0.0042, "low": -0.0078, "high": 0.0167}
    pr = {"reference": "logistic_rfm", "difference": -0.0230, "low": -0.0500, "high": 0.0050}
    metrics = {"model_choice": {"chosen": "lightgbm"},
               "comparison": {"candidates": {"lightgbm": {"roc_auc": roc, "pr_auc": pr}}}}
    assert noise_caveat(metrics, champion_metric="pr_auc") == (
        "caution: its test ROC-AUC lead over the best baseline (logistic_rfm) is +0.0042 with a 95% interval of "
        "-0.0078 to +0.0167, so it may be noise; on test PR-AUC, the champion metric, it does not beat the best "
        "baseline (logistic_rfm): -0.0230 with a 95% interval of -0.0500 to +0.0050"
    )
    assert noise_caveat(metrics) == noise_caveat(metrics, champion_metric="log_loss")  # no comparison: ROC-AUC only
    btyd = {"model_choice": {"chosen": "lightgbm"},
            "comparison": {"candidates": {"lightgbm": {"roc_auc": {**roc, "reference": "btyd", "difference": -0.067}}}}}
    assert "the best baseline (BG/NBD) on test ROC-AUC" in noise_caveat(btyd)  # as the tables name it, not "btyd"
    ahead = {**pr, "difference": 0.01, "low": 0.001}
    clear = {"roc_auc": {**roc, "low": 0.001}, "pr_auc": ahead}
    assert noise_caveat({"model_choice": {"chosen": "lightgbm"},
                         "comparison": {"candidates": {"lightgbm": clear}}}, champion_metric="pr_auc") == ""
