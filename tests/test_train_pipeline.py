"""`churn train` end to end: demo data (session fixtures) and the shared CDNOW data, through MLflow."""

from __future__ import annotations

import logging

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, write_config

from pipeline.bundle import load_bundle
from pipeline.config import load_config
from pipeline.errors import BundleError
from pipeline.tracking import champion_bundle, configure_mlflow, tracking_settings

BASELINES = ("recency_rule", "logistic_rfm", "btyd", "pareto_nbd")


def test_demo_training_reports_lightgbm_beside_every_baseline(demo_trained):
    metrics = load_bundle(demo_trained.bundle_dir).metrics
    for part in ("test", "validation"):
        for model in ("lightgbm", "lightgbm_uncalibrated", *BASELINES):
            assert 0.5 < metrics[part][model]["roc_auc"] <= 1.0
            assert 0.0 < metrics[part][model]["log_loss"] < 1.0
    assert metrics["test"]["lightgbm"]["roc_auc"] > 0.7
    assert metrics["calibration"]["fitted_on"] == "cross-fitted"


def test_demo_model_ranks_above_chance_so_nothing_is_said_of_chance(demo_trained):
    assert "chance_ranking" not in load_bundle(demo_trained.bundle_dir).metrics


def test_demo_calibration_is_kept_only_when_it_helped_out_of_fold(demo_trained):
    metrics = load_bundle(demo_trained.bundle_dir).metrics
    test, calibration = metrics["test"], metrics["calibration"]
    losses = calibration["lightgbm_out_of_fold_log_loss"]
    if calibration["lightgbm_calibrated"]:
        assert losses[calibration["lightgbm_method"]] < losses["none"] - 0.001
        assert test["lightgbm"]["ece"] < test["lightgbm_uncalibrated"]["ece"]
    else:  # no map helped on the training rows, or the one that did made the folds' later snapshots worse
        later = calibration["lightgbm_out_of_time_log_loss"]
        assert (min(losses["isotonic"], losses["sigmoid"]) >= losses["none"] - 0.001
                or max(later.values()) > later["none"])
        assert test["lightgbm"]["log_loss"] == pytest.approx(test["lightgbm_uncalibrated"]["log_loss"], abs=1e-3)


def test_demo_run_is_visible_through_the_mlflow_api(demo_trained, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(demo_trained.tracking_uri())
    experiment = client.get_experiment_by_name(demo_trained.mlflow.experiment)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.model_name = '{demo_trained.train.model_name}'"
    )
    assert runs, "no training run found"
    manifest = load_bundle(demo_trained.bundle_dir).manifest
    run = next(r for r in runs if r.info.run_id == manifest["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["champion_decision"] in {"promoted", "kept", "unchanged"}
    assert run.data.tags["champion_reason"]
    assert "test_lightgbm_roc_auc" in run.data.metrics and "test_btyd_log_loss" in run.data.metrics
    local = client.download_artifacts(run.info.run_id, "inputs/fingerprints.json", dst_path=str(tmp_path))
    fingerprints = json.loads(Path(local).read_text())
    assert "transactions.parquet" in fingerprints["validated"]
    assert len(fingerprints["features"]) == len(demo_trained.features.snapshots.resolve())
    assert manifest["training_snapshots"] == run.data.tags["training_snapshots"].split(",")
    assert "left_out_snapshots" not in run.data.tags  # every labelled snapshot was read
    local = client.download_artifacts(run.info.run_id, "inputs/ingest_report.json", dst_path=str(tmp_path))
    report = json.loads(Path(local).read_text())  # the data's quarantine counts and notes, beside the run
    assert report == json.loads((demo_trained.reports_dir / "ingest_report.json").read_text())
    assert report["sources"]["transactions"]["quarantined_rows"] > 0
    local = client.download_artifacts(run.info.run_id, "inputs/labels_report.json", dst_path=str(tmp_path))
    labels = json.loads(Path(local).read_text())  # churn rates and the churned who came back, beside the run
    assert labels == json.loads((demo_trained.reports_dir / "labels_report.json").read_text())
    snapshots = demo_trained.features.snapshots.resolve()
    assert [row["date"] for row in labels["snapshots"]] == [d.isoformat() for d in snapshots]
    assert any(row["came_back"] is not None for row in labels["snapshots"])
    assert (run.data.tags.get("label_pauses") or None) == labels["pause_warning"]
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    saved = {p.name for p in (demo_trained.reports_dir / "training" / "plots").glob("*.png")}
    assert {"roc_test.png", "reliability_test.png", "shap_summary_test.png"} <= logged
    assert saved == logged


def test_demo_champion_bundle_downloads_and_a_changed_byte_is_refused(demo_trained, tmp_path):
    path, version = champion_bundle(tracking_settings(demo_trained), dest=tmp_path / "champion")
    assert load_bundle(path).manifest["model_version"] == version
    copy = shutil.copytree(demo_trained.bundle_dir, tmp_path / "copy")
    data = bytearray((copy / "booster.txt").read_bytes())
    data[-10] ^= 0xFF
    (copy / "booster.txt").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="tampered"):
        load_bundle(copy)


@pytest.mark.slow
def test_demo_retrain_promotes_better_and_same_seed_repeats_metrics(demo_trained, tmp_path):
    """Under a fresh model name: a weak model first, then the normal one, which must take the alias."""
    from pipeline.run import train

    raw = yaml.safe_load((demo_trained.config_path).read_text())
    # The session's data without the at-risk lists other tests scored since: their treatment groups would be
    # left out of training (run/train drops labels a past action can have changed), unlike at the session's fit.
    data_dir = tmp_path / "data"
    shutil.copytree(demo_trained.paths.data_dir, data_dir, ignore=shutil.ignore_patterns("scores"))
    raw["paths"] = {"data_dir": str(data_dir), "models_dir": str(tmp_path / "models")}
    raw["train"]["model_name"] = "churn-test-retrain"
    raw["train"]["backtest_folds"] = 2
    normal_cfg = load_config(write_config(tmp_path, raw))
    # Weak: one boosting round, and the logistic candidate fitted on 20 rows (else it alone is a strong model).
    weak_cfg = load_config(
        normal_cfg.config_path, ["train.num_boost_round=1", "train.search_trials=1", "train.logistic_fit_rows=20"]
    )

    weak = train.run(weak_cfg, backtest=False, quiet=True)
    assert weak.promoted and weak.reason.startswith("no current champion")
    normal = train.run(normal_cfg, backtest=True, quiet=True)
    assert normal.promoted, normal.reason
    assert normal.metrics["test"]["lightgbm"]["pr_auc"] > weak.metrics["test"]["lightgbm"]["pr_auc"]
    # The same data, config and seed as the session's demo training: the same metrics, to the last digit.
    assert normal.metrics == load_bundle(demo_trained.bundle_dir).metrics

    # The backtest: two rolling test snapshots, mean and spread in MLflow, backtest.json and a table.
    import mlflow
    from rich.console import Console

    folds = normal.backtest["folds"]
    assert [f["test"]["lightgbm"] == normal.metrics["test"]["lightgbm"] for f in folds] == [True, False]
    saved = json.loads((normal_cfg.reports_dir / "backtest.json").read_text())
    assert saved["summary"]["lightgbm"]["roc_auc"]["n"] == 2.0
    run_metrics = mlflow.MlflowClient(normal_cfg.tracking_uri()).get_run(normal.run_id).data.metrics
    assert run_metrics["backtest_mean_lightgbm_roc_auc"] == pytest.approx(
        saved["summary"]["lightgbm"]["roc_auc"]["mean"]
    )
    console = Console(record=True, width=80)
    console.print(train.metrics_table(normal.metrics, split="test"), train.backtest_table(normal.backtest))
    text = console.export_text()
    assert "…" not in text and "ROC-AUC" in text and "±" in text


def test_a_horizon_changed_after_features_is_refused_by_train(demo_trained, tmp_path):
    """The snapshots' labels were computed over 90 days: training them as 300-day labels would be wrong.
    (The split's own "needs about N labelled snapshots" message is tested in test_split.py.)"""
    from pipeline.errors import FeatureError
    from pipeline.run import train

    cfg = load_config(demo_trained.config_path, ["features.horizon_days=300"])
    with pytest.raises(FeatureError, match=r"other feature settings than the config's \(horizon_days 90 vs 300, snapshots vs config\)"):
        train.run(cfg, backtest=False, quiet=True)


@pytest.fixture(scope="module")
def cdnow_cfg(shared_data, tmp_path_factory, mlflow_uri):
    """A workspace on the shared CDNOW data, ingested and featurised; snapshots from 1997-10 (the fewest needed)."""
    from pipeline.run import features, ingest

    raw = yaml.safe_load((REPO_ROOT / "configs" / "cdnow.yaml").read_text())
    raw["paths"] = {"data_dir": "data", "models_dir": "models"}
    raw["sources"]["transactions"]["path"] = str(shared_data / "cdnow" / "CDNOW_master.txt")
    # test 1998-04; refit on 1997-10..1998-01; one fold: train 1997-10, validation 1998-01
    raw["features"]["snapshots"]["start"] = "1997-10-01"
    raw["train"].update(model_name="churn-cdnow-test", search_trials=1, num_threads=1)
    raw["mlflow"] = {"tracking_uri": mlflow_uri, "artifact_root": "mlartifacts", "experiment": "churn-cdnow-test"}
    cfg = load_config(write_config(tmp_path_factory.mktemp("cdnow"), raw))
    ingest.run(cfg, quiet=True)
    features.run(cfg, quiet=True)
    return cfg


@pytest.mark.slow
def test_cdnow_training_end_to_end(cdnow_cfg):
    import mlflow

    from pipeline.run import train

    outcome = train.run(cdnow_cfg, backtest=False, quiet=True)
    test = outcome.metrics["test"]
    assert outcome.metrics["split"]["test"] == "1998-04-01"
    assert outcome.metrics["split"]["validation"] == ["1998-01-01"]
    assert outcome.metrics["split"]["train"] == ["1997-10-01", "1997-11-01", "1997-12-01", "1998-01-01"]
    candidates = outcome.metrics["model_choice"]["candidates"]
    assert set(test) == {"lightgbm", "lightgbm_uncalibrated", *candidates, *BASELINES}
    assert test["lightgbm"]["roc_auc"] > 0.7
    assert test["lightgbm"]["roc_auc"] >= test["recency_rule"]["roc_auc"]
    assert np.isfinite([m["log_loss"] for m in test.values()]).all()
    assert all(test[b]["status"] == "ok" for b in BASELINES)  # both BTYD fits work on CDNOW
    run = mlflow.MlflowClient(cdnow_cfg.tracking_uri()).get_run(outcome.run_id)
    assert run.data.metrics["test_lightgbm_pr_auc"] == pytest.approx(test["lightgbm"]["pr_auc"])
    # CDNOW has no feedback, tickets or loyalty: those features are dropped as empty, not trained on.
    features = load_bundle(outcome.bundle_path).manifest["feature_names"]
    assert "recency_days" in features and "nps_last" not in features


def test_training_within_a_row_budget_leaves_the_oldest_snapshots_out_and_says_so(demo_features, caplog):
    """Past train.max_training_rows, the oldest labelled snapshots are not read (a long history of a big shop would
    not fit in memory); the split says which remain and the warning names the setting."""
    from pipeline.features.store import snapshot_row_counts
    from pipeline.run import train

    counts = snapshot_row_counts(demo_features.features_dir)
    labelled = counts[counts["labelled"]]
    oldest = [str(d) for d in labelled["snapshot_date"].iloc[:3]]
    budget = int(labelled["rows"].iloc[2:].sum())  # all labelled ones but the two oldest
    cfg = demo_features.model_copy(update={"train": demo_features.train.model_copy(update={
        "max_training_rows": budget, "cv_folds": 1, "search_trials": 1, "model_name": "churn-budget-test"})})
    with caplog.at_level(logging.INFO, logger="pipeline"):
        outcome = train.run(cfg, backtest=False, quiet=True)
    assert outcome.metrics["split"]["train"][0] == oldest[2]
    # The registered model is refitted on every labelled snapshot read, the test snapshot too: the log says so.
    assert (f"refitted on all {len(labelled) - 2} labelled snapshots ({oldest[2]}.."
            f"{labelled['snapshot_date'].iloc[-1]}, the test snapshot included)") in caplog.text
    assert outcome.metrics["split"]["test"] == str(labelled["snapshot_date"].iloc[-1])
    assert (f"the 2 oldest labelled snapshots ({oldest[0]}..{oldest[1]}) are left out: with them training would read "
            f"more than train.max_training_rows ({budget:,}) rows; it reads {budget:,} rows of "
            f"{len(labelled) - 2} snapshots. Raise the setting") in caplog.text
    import mlflow

    run = mlflow.MlflowClient(cfg.tracking_uri()).get_run(outcome.run_id)
    assert run.data.tags["left_out_snapshots"] == ",".join(oldest[:2])


def test_training_without_feature_snapshots_says_what_to_run(tmp_path):
    from pipeline.errors import FeatureError
    from pipeline.run import train

    raw = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text())
    raw["paths"] = {"data_dir": "data", "models_dir": "models"}
    cfg = load_config(write_config(tmp_path, raw))
    with pytest.raises(FeatureError, match="no feature snapshots in .*: run `churn features`"):
        train.run(cfg, backtest=False, quiet=True)


def test_demo_registered_model_holds_no_pickle_and_predicts_like_the_bundle(demo_trained, tmp_path):
    import mlflow

    configure_mlflow(tracking_settings(demo_trained))  # models:/ URIs resolve in the global registry, which other tests move
    uri = f"models:/{demo_trained.train.model_name}@champion"
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "registered"), tracking_uri=demo_trained.tracking_uri()))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix in {".py", ".json", ".txt", ".yaml", ".sig", ""}, path
        assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
    assert {"model.json", "booster.txt", "manifest.json"} <= {p.name for p in files}
    pyfunc = mlflow.pyfunc.load_model(uri)
    bundle = load_bundle(demo_trained.bundle_dir).model
    features = pd.read_parquet(sorted(demo_trained.features_dir.glob("snapshot=*.parquet"))[-1]).head(50)
    np.testing.assert_allclose(pyfunc.predict(features[bundle.feature_names_]).to_numpy(), bundle.predict_proba(features))


def test_a_forged_registry_bundle_with_a_pickle_payload_never_runs(demo_trained, tmp_path):
    """Someone who can write the registry's artifacts replaces the model files by a pickle and reseals."""
    import hashlib
    import pickle

    import mlflow

    from pipeline.run.score import load_scoring_model

    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    forged = shutil.copytree(demo_trained.bundle_dir, tmp_path / "forged")
    manifest = json.loads((forged / "manifest.json").read_text())
    for name in ("model.json", "booster.txt"):
        (forged / name).write_bytes(pickle.dumps(RunsCode()))
        data = (forged / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (forged / "manifest.json").write_text(json.dumps(manifest))
    name = "churn-forged"
    client = mlflow.MlflowClient(tracking_uri=demo_trained.tracking_uri(), registry_uri=demo_trained.tracking_uri())
    experiment = client.get_experiment_by_name(demo_trained.mlflow.experiment).experiment_id
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(forged), "bundle")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/bundle", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    cfg = demo_trained.model_copy(update={"train": demo_trained.train.model_copy(update={"model_name": name})})
    with pytest.raises(BundleError, match="holds a malformed model"):
        load_scoring_model(cfg, bundle=None, workdir=tmp_path / "download")
    assert not marker.exists()


def test_the_backtest_table_says_when_a_model_was_in_fewer_folds():
    from rich.console import Console

    from pipeline.run.train import backtest_table

    def cell(mean: float, n: float) -> dict[str, dict[str, float]]:
        return {"roc_auc": {"mean": mean, "std": 0.0, "n": n}}

    report = {
        "folds": [{"split": {"test": "1998-04-01"}}, {"split": {"test": "1998-03-01"}}],
        "summary": {"lightgbm": cell(0.75, 2.0), "blend": cell(0.80, 1.0)},
    }
    console = Console(record=True, width=80)
    console.print(backtest_table(report))
    lines = console.export_text().splitlines()
    assert any(line.split()[:2] == ["LGBM", "0.750±.000"] for line in lines)
    assert any(line.split()[:3] == ["blend", "1/2", "0.800±.000"] for line in lines)
    assert "averaged over n of the N test snapshots" in " ".join(" ".join(lines).split())
    console = Console(record=True, width=120)
    console.print(backtest_table({"folds": report["folds"][:1], "summary": {"lightgbm": cell(0.75, 1.0)}}))
    assert "backtest over 1 test snapshot (1998-04-01): one fold, so no spread (± .000)" in " ".join(
        console.export_text().split())


def test_the_printed_sentences_compare_lightgbm_with_the_best_baseline_once():
    """When LightGBM is kept, the choice sentence already holds the comparison: `churn train` printed it twice."""
    from pipeline.run.train import training_statements

    comparison = "LightGBM leads the best baseline (btyd) by ROC-AUC +0.0001, but the 95% interval includes 0"
    metrics = {
        "comparison": {"statement": comparison},
        "model_choice": {"chosen": "lightgbm", "statement": f"model kept: lightgbm; on test {comparison}"},
        "calibration": {"lightgbm_statement": "LightGBM calibrated (sigmoid)"},
    }
    assert training_statements(metrics) == [f"model kept: lightgbm; on test {comparison}",
                                            "LightGBM calibrated (sigmoid)"]
    metrics["model_choice"] = {"chosen": "logistic", "statement": "model kept: logistic"}
    assert training_statements(metrics) == [f"model kept: logistic; {comparison}", "LightGBM calibrated (sigmoid)"]


@pytest.mark.slow
def test_every_figure_a_cdnow_list_states_holds_on_the_raw_file(cdnow_cfg, shared_data):
    """The list scored on the real CDNOW log, its sentences checked against the raw file by pandas alone
    (tests/reason_truth.py): counts, spend, windows, months since the last purchase."""
    from reason_truth import cdnow_lines, check_sentences

    from pipeline.run import score, train

    train.run(cdnow_cfg, backtest=False, quiet=True)
    scores = pd.read_parquet(score.run(cdnow_cfg, as_of=None, bundle=None, quiet=True)["scores_path"])
    raw = pd.read_csv(shared_data / "cdnow" / "CDNOW_master.txt", sep=r"\s+", header=0,
                      names=["customer", "date", "cds", "dollars"], dtype=str)
    checked = check_sentences(cdnow_lines(raw), scores, horizon_days=cdnow_cfg.features.horizon_days,
                              lookback_days=cdnow_cfg.features.lookback_days)
    false = checked[checked["ok"] == False]  # noqa: E712 - ok is True, False or None
    assert false.empty, false.to_string()
    assert (checked["ok"] == True).sum() >= 1000, checked["ok"].value_counts(dropna=False)  # noqa: E712
