"""train_models on synthetic snapshot tables with a planted signal: metrics, baselines, determinism."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from synthetic import RETENTION, SPECS, spec, synthetic_features

from pipeline.config import TrainConfig
from pipeline.errors import TrainError
from pipeline.evaluate import METRIC_NAMES
from pipeline.model import CategoryEncoder, feature_matrix, fit_calibrator
from pipeline.split import fold_frames, labelled_snapshots, rolling_splits, split_frame, time_split
from pipeline.train import (
    LIGHTGBM,
    LIGHTGBM_UNCALIBRATED,
    SEARCH_SPACES,
    FeatureColumns,
    backtest_summary,
    boost,
    cross_fitted_trees,
    customer_sample_mask,
    fit_booster,
    lightgbm_datasets,
    lightgbm_params,
    search_candidates,
    search_sample_fraction,
    search_space,
    select_feature_columns,
    train_models,
)

SETTINGS = TrainConfig(search_trials=2, seed=7)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_features(snapshots=9, customers=600, unlabelled=2, seed=11)


@pytest.fixture(scope="module")
def split(table):
    return time_split(labelled_snapshots(table), horizon_days=30)


@pytest.fixture(scope="module")
def result(table, split):
    return train_models(table, specs=SPECS, split=split, cfg=SETTINGS, retention=RETENTION)


def test_metrics_shape_every_model_and_split(result):
    assert set(result.metrics) == {
        "test", "validation", "calibration", "split", "skipped_baselines", "model_choice", "comparison"
    }
    candidates = result.metrics["model_choice"]["candidates"]
    assert candidates[:2] == [LIGHTGBM, "logistic"] and set(candidates) <= {LIGHTGBM, "logistic", "blend"}
    for part in ("test", "validation"):
        assert list(result.metrics[part]) == [
            LIGHTGBM, LIGHTGBM_UNCALIBRATED, *candidates[1:], "recency_rule", "logistic_rfm", "btyd"
        ]
        for model, values in result.metrics[part].items():
            baseline = model not in (LIGHTGBM, LIGHTGBM_UNCALIBRATED, *candidates)
            assert tuple(values) == (("status",) if baseline else ()) + METRIC_NAMES
            assert values.get("status", "ok") == "ok"
    assert result.metrics["calibration"]["fitted_on"] == "cross-fitted"
    assert "validation metrics are optimistic" in result.metrics["calibration"]["note"]
    assert result.metrics["split"]["test"] == "2024-07-01"
    # final fit on Jan..Jun (every window closed by Jul 1); out of fold: the 3 folds' validation snapshots
    assert result.metrics["split"]["rows"] == {"train": 6 * 600, "validation": 3 * 600, "test": 600}
    assert result.metrics["split"]["validation"] == ["2024-06-01", "2024-05-01", "2024-04-01"]
    json.dumps(result.metrics)  # metrics.json must be plain JSON


def test_lightgbm_learns_the_planted_signal_and_is_reported_beside_baselines(result):
    test = result.metrics["test"]
    assert test[LIGHTGBM]["roc_auc"] > 0.75
    assert test[LIGHTGBM]["lift_top_decile"] > 1.5
    for baseline in ("recency_rule", "logistic_rfm", "btyd"):
        assert 0.5 < test[baseline]["roc_auc"] <= 1.0


def test_calibration_lowers_test_ece(result):
    # scale_pos_weight inflates the booster's own probabilities; the calibrator undoes it.
    test = result.metrics["test"]
    assert test[LIGHTGBM]["ece"] < test[LIGHTGBM_UNCALIBRATED]["ece"]
    assert test[LIGHTGBM]["log_loss"] < test[LIGHTGBM_UNCALIBRATED]["log_loss"]


def test_search_records_each_trial_and_keeps_the_best(result):
    assert [t["trial"] for t in result.trials] == [0, 1]
    assert [[f["fold"] for f in t["folds"]] for t in result.trials] == [[0, 1, 2], [0, 1, 2]]
    for trial in result.trials:  # the trial's score and rounds are the means over its folds
        assert trial["validation_pr_auc"] == pytest.approx(np.mean([f["validation_pr_auc"] for f in trial["folds"]]))
        assert trial["rounds"] == round(np.mean([f["best_iteration"] for f in trial["folds"]]))
        assert trial["size_tier"] == "small"  # 3,600 rows
    best = max(result.trials, key=lambda t: t["validation_pr_auc"])
    assert result.best_params["learning_rate"] == best["learning_rate"]
    assert result.best_params["best_iteration"] == best["rounds"] == result.model.booster_.current_iteration()
    assert result.best_params["deterministic"] is True
    assert result.best_params["num_threads"] == 1  # small data: one thread (SINGLE_THREAD_ROWS)
    assert result.best_params["scale_pos_weight"] > 1.0


def test_same_seed_gives_the_same_metrics(table, split, result):
    again = train_models(table, specs=SPECS, split=split, cfg=SETTINGS, retention=RETENTION)
    assert again.metrics == result.metrics
    np.testing.assert_array_equal(again.probabilities["test"][LIGHTGBM], result.probabilities["test"][LIGHTGBM])


def test_baseline_without_its_features_is_skipped_with_a_reason(table, split):
    no_btyd = table.drop(columns=["btyd_p_alive", "btyd_expected_purchases"])
    specs = [s for s in SPECS if not s.name.startswith("btyd")]
    result = train_models(no_btyd, specs=specs, split=split, cfg=TrainConfig(search_trials=1), retention=RETENTION)
    assert "btyd" not in result.metrics["test"]
    assert result.skipped_baselines == {
        "btyd": "features btyd_expected_purchases and btyd_p_alive are absent or empty (features.btyd: false?)",
        "pareto_nbd": "features pnbd_expected_purchases and pnbd_p_alive are absent or empty (features.btyd: false?)",
    }
    assert result.metrics["skipped_baselines"] == result.skipped_baselines


def test_btyd_falls_back_to_p_alive(table, split):
    result = train_models(
        table.drop(columns=["btyd_expected_purchases"]),
        specs=SPECS,
        split=split,
        cfg=TrainConfig(search_trials=1),
        retention=RETENTION,
    )
    assert result.baselines["btyd"].features == ["btyd_p_alive"]


def test_select_feature_columns_drops_absent_and_empty_features(table):
    train = table.assign(nps_last=np.nan)
    specs = [*SPECS, spec("open_tickets", "service")]
    columns, dropped = select_feature_columns(train, specs)
    assert dropped == {"open_tickets": "not in the feature table", "nps_last": "missing in every training row"}
    assert columns.categorical == ["region"]
    assert "nps_last" not in columns.numeric
    assert columns.rfm == ["recency_days", "frequency_all", "monetary_365d", "overdue_ratio", "noise"]


def test_no_usable_feature_is_an_error(table):
    with pytest.raises(TrainError, match="no usable feature"):
        select_feature_columns(table, [spec("open_tickets", "service")])


def test_search_candidates_default_first_distinct_and_depth_bounded():
    candidates = search_candidates(trials=6, seed=1, max_depth=4)
    assert candidates[0] == {**{k: v[0] for k, v in SEARCH_SPACES["large"].items()}, "num_leaves": 16}
    assert len(candidates) == 6
    assert all(c["num_leaves"] <= 16 for c in candidates)
    assert len({json.dumps(c, sort_keys=True) for c in search_candidates(trials=6, seed=1, max_depth=-1)}) == 6
    assert search_candidates(trials=6, seed=1, max_depth=4) == candidates


def test_the_defaults_monotone_twin_is_a_search_candidate_only_with_directions_and_a_search():
    drawn = search_candidates(trials=6, seed=1, max_depth=4)
    with_twin = search_candidates(trials=6, seed=1, max_depth=4, monotone=True)
    assert with_twin[:6] == drawn  # the seeded draws do not move
    assert with_twin[6] == {**drawn[0], "monotone": True}
    assert search_candidates(trials=1, seed=1, max_depth=4, monotone=True) == drawn[:1]  # no search, no twin


def test_registry_directions_become_one_monotone_constraint_per_column(table):
    specs = [
        spec("recency_days", direction="up"),
        spec("frequency_all", direction="down"),
        spec("noise", direction="none"),
        spec("region", "customer", "categorical"),
    ]
    columns, _ = select_feature_columns(table, specs)
    assert columns.all == ["recency_days", "frequency_all", "noise", "region"]
    assert columns.monotone_constraints == [1, -1, 0, 0]
    twin = lightgbm_params(
        {"num_leaves": 7, "monotone": True},
        scale_pos_weight=1.0,
        cfg=SETTINGS,
        training_rows=100,
        monotone_constraints=columns.monotone_constraints,
    )
    assert "monotone" not in twin
    assert (twin["monotone_constraints"], twin["monotone_constraints_method"]) == ([1, -1, 0, 0], "advanced")
    plain = lightgbm_params({"num_leaves": 7}, scale_pos_weight=1.0, cfg=SETTINGS, training_rows=100)
    assert "monotone_constraints" not in plain


def test_the_folds_try_the_monotone_twin_when_the_registry_gives_directions(table, split):
    directed = [spec(s.name, s.family, s.kind, direction="up" if s.name == "recency_days" else "none") for s in SPECS]
    result = train_models(table, specs=directed, split=split, cfg=SETTINGS, retention=RETENTION)
    assert [t.get("monotone", False) for t in result.trials] == [False, False, True]
    assert all(len(t["folds"]) == len(split.folds) for t in result.trials)
    if result.best_params["trial"] == 2:
        assert result.best_params["monotone_constraints"][0] == 1


def test_the_monotone_twin_only_bends_the_known_way():
    # Churn risk falls with x1 overall but rises again at its top: a free model follows the bump, the twin may not.
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(0, 10, 4000), rng.normal(size=4000)
    logit = -0.6 * x1 + 4.0 * (x1 > 8) + x2
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-logit))).astype("float64")
    columns = FeatureColumns(["x1", "x2"], [], [], {"x1": -1})
    grid = np.column_stack([np.linspace(0, 10, 201), np.zeros(201)])
    for monotone, decreasing in ((False, False), (True, True)):
        params = lightgbm_params(
            {"num_leaves": 7, "learning_rate": 0.1, "monotone": monotone},
            scale_pos_weight=1.0,
            cfg=SETTINGS,
            training_rows=4000,
            monotone_constraints=columns.monotone_constraints,
        )
        booster = fit_booster(np.column_stack([x1, x2]), y, None, None, params=params, columns=columns,
                              cfg=SETTINGS.model_copy(update={"num_boost_round": 100}))
        assert bool((np.diff(booster.predict(grid, raw_score=True)) <= 1e-12).all()) is decreasing


def test_dask_engine_without_a_cluster_is_refused_with_a_clear_message(table, split):
    with pytest.raises(TrainError, match=r"train.engine='dask' needs a cluster: run `churn train`"):
        train_models(table, specs=SPECS, split=split, cfg=TrainConfig(engine="dask"), retention=RETENTION)


def test_backtest_summary_over_rolling_folds(table, result):
    splits = rolling_splits(labelled_snapshots(table), horizon_days=30, folds=2, validation_folds=3)
    assert splits[0] == result.split
    second = train_models(table, specs=SPECS, split=splits[1], cfg=SETTINGS, retention=RETENTION)
    report = backtest_summary([result, second])
    assert [f["split"]["test"] for f in report["folds"]] == ["2024-07-01", "2024-06-01"]
    roc = [result.metrics["test"][LIGHTGBM]["roc_auc"], second.metrics["test"][LIGHTGBM]["roc_auc"]]
    assert report["summary"][LIGHTGBM]["roc_auc"] == pytest.approx(
        {"mean": np.mean(roc), "std": np.std(roc, ddof=1), "n": 2.0}
    )
    kept = [r.metrics["model_choice"]["chosen"] for r in (result, second)]
    assert [f["kept"] for f in report["folds"]] == kept
    kept_roc = [r.metrics["test"][name]["roc_auc"] for r, name in zip((result, second), kept)]
    assert report["summary"]["kept"]["roc_auc"]["mean"] == pytest.approx(np.mean(kept_roc))
    baselines = ("recency_rule", "logistic_rfm", "btyd", "pareto_nbd")

    def best_baseline(r):
        return max(r.metrics["test"][b]["roc_auc"] for b in baselines if r.metrics["test"].get(b, {}).get("status") == "ok")

    leads = [r.metrics["test"][LIGHTGBM]["roc_auc"] - best_baseline(r) for r in (result, second)]
    lead = report["lead_over_best_baseline_roc_auc"]
    assert lead[LIGHTGBM]["per_fold"] == pytest.approx(leads)
    assert lead[LIGHTGBM]["mean"] == pytest.approx(np.mean(leads))
    assert lead["kept"]["per_fold"] == pytest.approx([k - best_baseline(r) for k, r in zip(kept_roc, (result, second))])
    assert report["statement"] == (
        f"backtest over 2 test snapshots: ROC-AUC minus the best baseline's, LightGBM {leads[0]:+.4f}, "
        f"{leads[1]:+.4f} (mean {np.mean(leads):+.4f}); the model kept ({kept[0]}, {kept[1]}) "
        f"{lead['kept']['per_fold'][0]:+.4f}, {lead['kept']['per_fold'][1]:+.4f} (mean {lead['kept']['mean']:+.4f})"
    )


def test_customer_sample_keeps_whole_customers_and_is_deterministic(table):
    mask = customer_sample_mask(table["customer_id"], fraction=0.3, seed=5)
    kept = table.assign(kept=mask).groupby("customer_id")["kept"].agg(["all", "any"])
    assert (kept["all"] == kept["any"]).all()  # every row of a customer, or none
    assert 0.2 < kept["all"].mean() < 0.4
    # Same customers whatever the rows around them (row order, another frame holding a subset).
    shuffled = table.sample(frac=1.0, random_state=0)
    again = customer_sample_mask(shuffled["customer_id"], fraction=0.3, seed=5)
    np.testing.assert_array_equal(again, mask[shuffled.index])
    assert not np.array_equal(customer_sample_mask(table["customer_id"], fraction=0.3, seed=6), mask)
    assert customer_sample_mask(table["customer_id"], fraction=1.0, seed=5).all()


def test_search_sample_fraction_only_for_a_search_on_large_tables():
    assert search_sample_fraction(1_000_000, sample_rows=250_000, trials=6) == 0.25
    assert search_sample_fraction(1_000_000, sample_rows=250_000, trials=1) == 1.0  # no search, no sample
    assert search_sample_fraction(200_000, sample_rows=250_000, trials=6) == 1.0
    assert search_sample_fraction(1_000_000, sample_rows=0, trials=6) == 1.0  # 0: off


def test_shared_datasets_give_the_same_booster_as_a_fresh_fit_for_every_trial(table, split):
    fold_train, fold_validation = fold_frames(table, split)[0]
    columns, _ = select_feature_columns(fold_train, SPECS)
    encoder = CategoryEncoder.fit(fold_train, columns.categorical)
    matrices = [feature_matrix(p, feature_names=columns.all, encoder=encoder) for p in (fold_train, fold_validation)]
    y_train, y_validation = (p["churned"].to_numpy("float64") for p in (fold_train, fold_validation))
    params = [
        lightgbm_params(c, scale_pos_weight=2.0, cfg=SETTINGS, training_rows=len(y_train))
        for c in search_candidates(trials=4, seed=3, max_depth=SETTINGS.max_depth)
    ]
    train_set, validation_set = lightgbm_datasets(
        matrices[0], y_train, matrices[1], y_validation, params=params[0], columns=columns
    )
    handle = train_set._handle.value
    for trial in params:
        shared = boost(train_set, validation_set, params=trial, cfg=SETTINGS)
        fresh = fit_booster(
            matrices[0], y_train, matrices[1], y_validation, params=trial, columns=columns, cfg=SETTINGS
        )
        assert shared.model_to_string() == fresh.model_to_string()
    assert train_set._handle.value == handle  # binned once, never rebuilt
    assert train_set.data is None  # and holding no reference to the raw matrix


@pytest.mark.slow
def test_search_on_a_customer_sample_then_refit_on_all_rows(table, split):
    sampled = SETTINGS.model_copy(update={"search_trials": 3, "search_sample_rows": 1000})
    result = train_models(table, specs=SPECS, split=split, cfg=sampled, retention=RETENTION)
    folds = fold_frames(table, split)
    for trial in result.trials:
        for record, (fold_train, fold_validation) in zip(trial["folds"], folds, strict=True):
            assert 600 < record["train_rows"] < 1400 < len(fold_train)  # about 1,000 rows of whole customers
            assert record["validation_rows"] == len(fold_validation)  # scored on every validation row
    best = max(result.trials, key=lambda t: t["validation_pr_auc"])
    space = SEARCH_SPACES["small"]
    assert {k: result.best_params[k] for k in space} == {k: best[k] for k in space}
    # The model is the best configuration refitted on every training row for the folds' mean rounds.
    train_rows = split_frame(table, split)["train"]
    params = {k: v for k, v in result.best_params.items() if k not in ("best_iteration", "size_tier", "trial")}
    refit = fit_booster(
        result.model.matrix(train_rows),
        train_rows["churned"].to_numpy("float64"),
        None,
        None,
        params=params,
        columns=result.columns,
        cfg=sampled.model_copy(update={"num_boost_round": best["rounds"]}),
    )
    assert result.model.booster_.model_to_string() == refit.model_to_string()
    assert result.metrics["split"]["rows"]["train"] == len(train_rows) == 3600
    again = train_models(table, specs=SPECS, split=split, cfg=sampled, retention=RETENTION)
    assert again.trials == result.trials
    assert again.metrics == result.metrics


def test_a_tiny_fit_sample_that_drew_one_class_holds_both():
    """`--set train.logistic_fit_rows=1` (or a handful of rows of a shop where few churn) drew one class, and the
    logistic regression stopped churn train with scikit-learn's traceback."""
    from pipeline.model import fit_rows_sample

    labels = np.zeros(1000)
    labels[[17, 640]] = 1.0
    for limit in (2, 5, 50):
        positions = fit_rows_sample(labels, limit=limit, seed=3)
        assert len(positions) == len(np.unique(positions)) == limit and set(labels[positions]) == {0.0, 1.0}
    assert (fit_rows_sample(np.zeros(50), limit=5, seed=3) < 50).all()  # one class in all: nothing to add


def test_logistic_baseline_fits_on_a_seeded_sample_of_large_training_sets(table, split):
    from pipeline import baselines

    labels = (np.arange(1000) % 3 == 0).astype(float)
    positions = baselines.fit_rows_sample(labels, limit=300, seed=4)
    assert len(positions) == 300 and (np.diff(positions) > 0).all()  # sorted, distinct
    np.testing.assert_array_equal(np.sort(np.random.default_rng(4).choice(1000, size=300, replace=False)), positions)
    np.testing.assert_array_equal(baselines.fit_rows_sample(labels, limit=300, seed=4), positions)
    np.testing.assert_array_equal(baselines.fit_rows_sample(labels[:200], limit=300, seed=4), np.arange(200))
    parts = split_frame(table, split)
    folds = fold_frames(table, split)
    everything, sampled = (
        baselines.fit_baselines(
            parts["train"], folds, rfm_features=["recency_days", "frequency_all"], calibration="auto", seed=1,
            fit_rows=rows,
        )
        for rows in (len(parts["train"]), len(parts["train"]) // 2)
    )
    scores = [fits.fitted["logistic_rfm"].score(parts["test"]) for fits in (everything, sampled)]
    assert not np.allclose(scores[0], scores[1])  # fitted on other rows ...
    assert np.corrcoef(scores[0], scores[1])[0, 1] > 0.99  # ... to much the same ranking


def test_search_sample_rows_must_not_be_negative():
    from pydantic import ValidationError

    assert TrainConfig().search_sample_rows == 500_000
    assert TrainConfig(search_sample_rows=0).search_sample_rows == 0  # 0: search on every row
    with pytest.raises(ValidationError, match="search_sample_rows"):
        TrainConfig(search_sample_rows=-1)


@pytest.mark.slow
def test_a_baseline_whose_btyd_fit_failed_is_reported_failed_never_scored_as_a_constant(table, split):
    """The BTYD fit failed on the test snapshot (its features NaN there): the baseline has status
    "failed: ..." and no numbers on test; one that failed on validation is failed on both splits."""
    from pipeline.tracking import flat_metrics

    test_day = split.test
    failed_test = table.copy()
    failed_test.loc[failed_test["snapshot_date"] == test_day, ["btyd_p_alive", "btyd_expected_purchases"]] = np.nan
    result = train_models(failed_test, specs=SPECS, split=split, cfg=TrainConfig(search_trials=1),
                          retention=RETENTION)
    status = result.metrics["test"]["btyd"]
    assert status == {"status": f"failed: btyd_expected_purchases is missing for every customer on snapshot "
                                f"{split.test.date()} (the BG/NBD fit failed; see the features log)"}
    assert result.metrics["validation"]["btyd"]["status"] == "ok"
    assert "btyd" not in result.probabilities["test"]
    flat = flat_metrics(result.metrics)
    assert "test_btyd_roc_auc" not in flat and "validation_btyd_roc_auc" in flat

    validation_day = split.validation[1]  # the second fold's
    failed_validation = table.copy()
    failed_validation.loc[failed_validation["snapshot_date"] == validation_day, "btyd_expected_purchases"] = np.nan
    result = train_models(failed_validation, specs=SPECS, split=split, cfg=TrainConfig(search_trials=1),
                          retention=RETENTION)
    assert "btyd" not in result.baselines
    for part in ("test", "validation"):
        assert list(result.metrics[part]["btyd"]) == ["status"]
        assert result.metrics[part]["btyd"]["status"].startswith("failed: btyd_expected_purchases is missing")


def test_a_constant_baseline_score_is_a_failure():
    from pipeline.baselines import scoring_failure

    frame = pd.DataFrame({"btyd_expected_purchases": [0.5, 0.5, 0.5]})

    def score(features):
        return -features["btyd_expected_purchases"].to_numpy()

    assert scoring_failure("btyd", ["btyd_expected_purchases"], score, frame) == (
        "failed: btyd gives every customer the same score")
    assert scoring_failure("btyd", ["btyd_expected_purchases"], score, frame.assign(btyd_expected_purchases=[1, 2, 3])) is None


def test_calibrator_is_kept_only_when_it_lowers_the_log_loss():
    from pipeline.model import fit_calibrator

    rng = np.random.default_rng(3)
    log_odds = rng.normal(0.0, 1.5, 4000)
    y = (rng.uniform(size=4000) < 1.0 / (1.0 + np.exp(-log_odds))).astype("float64")
    # Already calibrated log-odds: no calibrator beats the model's own probability.
    kept, losses = fit_calibrator(log_odds, y, method="auto", seed=0, log_odds=True)
    assert kept.method == "none" and set(losses) == {"none", "isotonic", "sigmoid"}
    assert losses["none"] < min(losses["isotonic"], losses["sigmoid"]) + 0.001
    np.testing.assert_allclose(kept.transform(np.array([0.0, np.log(3.0)])), [0.5, 0.75])
    # Log-odds shifted by +2 (as scale_pos_weight does): a calibrator helps and is kept.
    shifted, losses = fit_calibrator(log_odds + 2.0, y, method="auto", seed=0, log_odds=True)
    assert shifted.method in ("isotonic", "sigmoid") and losses[shifted.method] < losses["none"]


def test_scores_that_rank_churners_lower_keep_their_own_probabilities():
    """Out-of-fold log-odds that rank churners lower (a logistic candidate fitted on one early snapshot of a
    12-month export: out-of-fold ROC-AUC 0.39): a sigmoid fitted on them has a negative slope and lowers the log
    loss, and it turned that candidate's test ROC-AUC from 0.82 to 0.18. The model's own probabilities stay."""
    from pipeline.model import fit_calibrator

    rng = np.random.default_rng(5)
    log_odds = rng.normal(0.0, 1.5, 4000)
    y = (rng.uniform(size=4000) < 1.0 / (1.0 + np.exp(log_odds))).astype("float64")  # the sign turned around
    kept, losses = fit_calibrator(log_odds, y, method="sigmoid", seed=0, log_odds=True)
    assert losses["sigmoid"] < losses["none"] - 0.001  # the sigmoid would have been kept on its loss alone
    assert kept.method == "none"
    scores = np.array([-2.0, 0.0, 2.0])
    np.testing.assert_allclose(kept.transform(scores), 1.0 / (1.0 + np.exp(-scores)))


def test_baseline_scores_that_rank_churners_lower_never_get_a_decreasing_map():
    """A baseline's out-of-fold scores that rank churners lower: the sigmoid (lower log loss) would be decreasing
    and turn the baseline's ranking around on test, flattering the model against it; the isotonic map is kept."""
    from pipeline.model import fit_calibrator

    rng = np.random.default_rng(5)
    scores = rng.normal(0.0, 1.5, 4000)
    y = (rng.uniform(size=4000) < 1.0 / (1.0 + np.exp(scores))).astype("float64")  # the sign turned around
    for method in ("auto", "sigmoid"):
        kept, losses = fit_calibrator(scores, y, method=method, seed=0)
        assert losses["sigmoid"] < 0.6  # the sigmoid fits these rows well: it would be chosen on its loss
        assert kept.method == "isotonic"
        assert np.all(np.diff(kept.transform(np.linspace(-4.0, 4.0, 50))) >= 0)


def test_a_baseline_ranking_churners_lower_is_failed_not_scored_as_one_probability():
    """AdventureWorks' internet sales: a shop growing fast, whose newest customers (few days since their only order)
    churned most; the recency rule's isotonic map was flat and its test ROC-AUC printed as 0.500, a constant's."""
    from pipeline import baselines

    rng = np.random.default_rng(11)

    def snapshot(day: str) -> pd.DataFrame:
        recency = rng.uniform(1, 365, 2000)
        churned = (rng.random(2000) < np.where(recency < 60, 0.95, 0.6)) * 1.0  # the recent churn most
        return pd.DataFrame({"snapshot_date": pd.Timestamp(day, tz="UTC"), "recency_days": recency,
                             "frequency_all": rng.integers(1, 5, 2000) * 1.0, "churned": churned})

    earlier, later = snapshot("2022-05-01"), snapshot("2022-06-01")
    fits = baselines.fit_baselines(pd.concat([earlier, later]), [(earlier, later)], rfm_features=["frequency_all"],
                                   calibration="auto", seed=0, fit_rows=10_000)
    assert "recency_rule" not in fits.fitted and "logistic_rfm" in fits.fitted
    assert re.fullmatch(r"failed: recency_rule ranks churners no higher than the others on the validation folds "
                        r"\(ROC-AUC 0\.[0-4]\d of its score\), so its calibration, which keeps that order, gives "
                        r"every customer the same probability", fits.failed["recency_rule"])


def test_uncalibrated_lightgbm_is_said_so(table, split):
    from pipeline.train import calibration_statement

    losses = {"none": 0.6031, "isotonic": 0.6080, "sigmoid": 0.6052}
    assert calibration_statement("none", losses) == (
        "LightGBM kept uncalibrated: its own probabilities' cross-fitted log loss 0.6031 is not lowered by 0.001 "
        "or more by a calibrator (isotonic 0.6080, sigmoid 0.6052)"
    )
    assert calibration_statement("sigmoid", {**losses, "sigmoid": 0.5952}, "out-of-fold") == (
        "LightGBM calibrated (sigmoid): out-of-fold log loss 0.5952 against 0.6031 uncalibrated "
        "(cross-validated: isotonic 0.6080, sigmoid 0.5952)"
    )
    # On the synthetic table scale_pos_weight distorts the booster's probabilities: calibration is kept.
    result = train_models(table, specs=SPECS, split=split, cfg=SETTINGS, retention=RETENTION)
    calibration = result.metrics["calibration"]
    assert calibration["lightgbm_calibrated"] and calibration["lightgbm_statement"].startswith("LightGBM calibrated")


def test_a_calibrator_that_makes_later_snapshots_worse_is_not_kept():
    """Within the training snapshots churners are told apart twice as sharply as the booster's own probability says
    (a sigmoid of slope 2 fits them); in the later snapshots of the rolling-origin folds the booster's own
    probability is right. The map learnt within time raises the later snapshots' log loss: the booster's own
    probability is kept, and both log losses are returned. Where the later snapshots are as sharp, the map stays."""
    from pipeline.model import fit_calibrator
    from pipeline.train import out_of_time_check

    rng = np.random.default_rng(11)
    within, later = rng.normal(0.0, 1.0, 6000), rng.normal(0.0, 1.0, 6000)
    y_within = (rng.uniform(size=6000) < expit(2.0 * within)).astype("float64")
    calibrator, losses = fit_calibrator(within, y_within, method="sigmoid", seed=0, log_odds=True)
    assert calibrator.method == "sigmoid" and losses["sigmoid"] < losses["none"] - 0.001
    y_drifted = (rng.uniform(size=6000) < expit(later)).astype("float64")
    kept, out_of_time = out_of_time_check(calibrator, later, y_drifted)
    assert kept.method == "none" and out_of_time["sigmoid"] > out_of_time["none"]
    np.testing.assert_allclose(kept.transform(np.array([-1.0, 0.0, 1.0])), expit(np.array([-1.0, 0.0, 1.0])))
    y_same = (rng.uniform(size=6000) < expit(2.0 * later)).astype("float64")
    kept, out_of_time = out_of_time_check(calibrator, later, y_same)
    assert kept is calibrator and out_of_time["sigmoid"] < out_of_time["none"]
    assert out_of_time_check(kept.__class__("none"), later, y_same) == (kept.__class__("none"), {})


def test_a_calibrator_kept_out_of_its_later_snapshots_is_said_so():
    from pipeline.train import calibration_statement

    losses = {"none": 0.5538, "isotonic": 0.5479, "sigmoid": 0.5474}
    assert calibration_statement("none", losses, out_of_time={"none": 0.5250, "sigmoid": 0.5380}) == (
        "LightGBM kept uncalibrated: a sigmoid map lowered its cross-fitted log loss from 0.5538 to 0.5474, but raised "
        "the rolling-origin folds' out-of-fold log loss of later snapshots from 0.5250 to 0.5380: it does not carry "
        "over time"
    )
    assert calibration_statement("sigmoid", losses, out_of_time={"none": 0.5380, "sigmoid": 0.5250}).endswith(
        "(cross-validated: isotonic 0.5479, sigmoid 0.5474); on the rolling-origin folds' later snapshots 0.5250 "
        "against 0.5380"
    )


def test_search_space_is_sized_to_the_data():
    assert search_space(5_000)[0] == "small"
    assert search_space(19_999)[0] == "small" and search_space(20_000)[0] == "large"
    assert search_space(2_000_000) == ("large", SEARCH_SPACES["large"])
    small, large = SEARCH_SPACES["small"], SEARCH_SPACES["large"]
    assert max(small["num_leaves"]) < max(large["num_leaves"])  # smaller trees ...
    assert small["lambda_l2"][0] > large["lambda_l2"][0]  # ... and a stronger default penalty on little data


def test_production_model_refits_the_chosen_configuration_on_every_labelled_snapshot(table, result):
    from pipeline.train import production_model

    model, dates = production_model(table, result, cfg=SETTINGS)
    assert dates == [f"2024-{m:02d}-01" for m in range(1, 8)]  # the test snapshot (Jul 1) included
    assert model.booster_.current_iteration() == result.best_params["best_iteration"]
    assert model.params_["learning_rate"] == result.best_params["learning_rate"]
    assert model.booster_.model_to_string() != result.model.booster_.model_to_string()
    # Its calibrator is fitted again, on cross-fitted predictions of its own (production) training rows.
    rows = table[table["snapshot_date"] <= "2024-07-01"]
    params = {k: v for k, v in result.best_params.items() if k not in ("best_iteration", "size_tier", "trial")}
    log_odds = cross_fitted_trees(
        rows, params=params, rounds=result.best_params["best_iteration"], columns=result.columns, horizon_days=30,
        cfg=SETTINGS,
    )
    expected, _ = fit_calibrator(log_odds, rows["churned"].to_numpy("float64"), method="auto", seed=SETTINGS.seed,
                                 log_odds=True)
    grid = np.linspace(-4.0, 4.0, 41)
    assert model.calibrator_.method == expected.method
    np.testing.assert_allclose(model.calibrator_.transform(grid), expected.transform(grid))


def test_cross_fitted_log_odds_score_each_row_by_a_model_that_never_saw_its_customer():
    from pipeline.train import cross_fitted_log_odds

    rows = pd.DataFrame({"customer_id": np.repeat([f"c{i}" for i in range(60)], 3), "churned": [0.0, 1.0] * 90})
    calls = []

    def fit_and_score(fit_rows, held_rows):
        assert not set(fit_rows["customer_id"]) & set(held_rows["customer_id"])
        calls.append(len(held_rows))
        return np.full(len(held_rows), float(len(calls)))

    log_odds = cross_fitted_log_odds(rows, fit_and_score=fit_and_score, folds=3, seed=1)
    assert len(calls) == 3 and sum(calls) == len(rows) and min(calls) > 0
    # every customer's three snapshots were held out together, by one fold's model
    assert pd.Series(log_odds).groupby(rows["customer_id"]).nunique().eq(1).all()
    # a fold whose other customers hold one class cannot fit a model: None, nothing fitted
    one_class = rows.assign(churned=0.0)
    assert cross_fitted_log_odds(one_class, fit_and_score=fit_and_score, folds=3, seed=1) is None
    assert cross_fitted_log_odds(rows.head(3), fit_and_score=fit_and_score, folds=3, seed=1) is None  # one customer
    assert len(calls) == 3


def test_weighted_ranking_metrics_equal_scikit_learn_with_sample_weights():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from pipeline.evaluate import bootstrap_weights, weighted_ranking_metrics

    rng = np.random.default_rng(0)
    y = (rng.uniform(size=500) < 0.4).astype("float64")
    p = np.round(rng.uniform(size=500) * 0.5 + 0.3 * y, 2)  # many ties
    weights = bootstrap_weights(500, resamples=4, seed=1)
    assert weights.sum(axis=1).tolist() == [500.0] * 4  # each resample draws n rows
    values = weighted_ranking_metrics(y, p, weights)
    for row, w in enumerate(weights):
        assert values["roc_auc"][row] == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)
        assert values["pr_auc"][row] == pytest.approx(average_precision_score(y, p, sample_weight=w), abs=1e-12)
    assert np.isnan(weighted_ranking_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), np.ones((1, 3)))["roc_auc"][0])


def test_paired_bootstrap_interval_is_tight_for_a_copy_and_excludes_zero_for_a_clearly_better_model():
    from pipeline.evaluate import paired_bootstrap

    rng = np.random.default_rng(5)
    y = (rng.uniform(size=2000) < 0.3).astype("float64")
    weak = rng.uniform(size=2000) + 0.2 * y
    strong = rng.uniform(size=2000) + 1.0 * y
    result = paired_bootstrap(
        y, {"weak": weak, "copy": weak.copy(), "strong": strong}, reference={"roc_auc": "weak", "pr_auc": "weak"},
        resamples=200, seed=0,
    )
    assert result["copy"]["roc_auc"] == {
        "reference": "weak", "difference": 0.0, "low": 0.0, "high": 0.0, "share_above_zero": 0.0
    }
    lead = result["strong"]["roc_auc"]
    assert 0.0 < lead["low"] < lead["difference"] < lead["high"] and lead["share_above_zero"] == 1.0
    again = paired_bootstrap(y, {"weak": weak, "strong": strong}, reference={"roc_auc": "weak", "pr_auc": "weak"},
                             resamples=200, seed=0)
    assert again["strong"] == result["strong"]  # seeded


def test_lead_statements_say_plainly_when_lightgbm_does_not_beat_the_baseline():
    from pipeline.train import lead_statement

    entry = {"reference": "logistic_rfm", "difference": -0.0031, "low": -0.009, "high": 0.0025}
    assert lead_statement("lightgbm", entry, metric="ROC-AUC") == (
        "LightGBM does not beat the best baseline (logistic_rfm): ROC-AUC -0.0031 (95% interval -0.0090 to +0.0025)"
    )
    noisy = {**entry, "difference": 0.002, "low": -0.001}
    assert lead_statement("lightgbm", noisy, metric="ROC-AUC").endswith("includes 0: the lead may be noise")
    clear = {**entry, "difference": 0.012, "low": 0.004, "high": 0.02}
    assert lead_statement("blend", clear, metric="ROC-AUC").startswith("the blend beats the best baseline")
    # a BTYD baseline is named as the tables name it, not by its key (the apparel log printed "(btyd)")
    assert lead_statement("lightgbm", {**entry, "reference": "btyd"}, metric="ROC-AUC").startswith(
        "LightGBM does not beat the best baseline (BG/NBD): ROC-AUC -0.0031")


def test_model_choice_takes_the_blend_only_when_it_beats_both_parts():
    from pipeline.train import choose_model

    rng = np.random.default_rng(2)
    n = 3000
    signal_a, signal_b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(signal_a + signal_b)))).astype("float64")
    folds = np.repeat([0, 1, 2], n // 3)
    # Each part sees half the signal: the blend beats both, at about equal weights.
    both = choose_model(signal_a, signal_b, y, folds)
    assert both.chosen == "blend" and both.blend_weight in (0.4, 0.5, 0.6)
    assert both.fold_roc_auc["blend"] > max(both.fold_roc_auc["lightgbm"], both.fold_roc_auc["logistic"]) + 0.001
    # LightGBM sees all of it, the logistic part nothing: no blend, LightGBM kept.
    trees_only = choose_model(signal_a + signal_b, rng.normal(size=n), y, folds)
    assert trees_only.chosen == "lightgbm" and "blend" not in trees_only.weights and trees_only.blend_weight == 1.0


def test_choice_summary_says_the_lightgbm_comparison_once():
    from pipeline.train import choice_summary

    comparison = {"statement": "LightGBM beats the best baseline (btyd) by ROC-AUC +0.0200"}
    kept = {"model_choice": {"chosen": "lightgbm", "statement": "model kept: lightgbm; on test LightGBM beats it"},
            "comparison": comparison}
    assert choice_summary(kept) == "model kept: lightgbm; on test LightGBM beats it"
    other = {"model_choice": {"chosen": "logistic", "statement": "model kept: logistic"}, "comparison": comparison}
    assert choice_summary(other) == "model kept: logistic; LightGBM beats the best baseline (btyd) by ROC-AUC +0.0200"


def test_comparison_and_choice_are_in_the_metrics(result):
    comparison, choice = result.metrics["comparison"], result.metrics["model_choice"]
    test = result.metrics["test"]
    best = max(("recency_rule", "logistic_rfm", "btyd"), key=lambda b: test[b]["roc_auc"])
    assert comparison["best_baseline"]["roc_auc"] == best
    lead = comparison["candidates"][LIGHTGBM]["roc_auc"]
    assert lead["difference"] == pytest.approx(test[LIGHTGBM]["roc_auc"] - test[best]["roc_auc"])
    assert lead["low"] <= lead["difference"] <= lead["high"]
    assert comparison["statement"].startswith("LightGBM ")
    assert result.model.kind_ == choice["chosen"]
    assert choice["statement"].startswith(f"model kept: {choice['chosen']}")


def test_a_blended_model_round_trips_and_its_contributions_add_up(table, result):
    from pipeline.model import ChurnModel, LinearScore
    from pipeline.train import candidate_model

    train_rows = split_frame(table, result.split)["train"]
    linear = LinearScore.fit(
        train_rows, train_rows["churned"].to_numpy("float64"), feature_names=result.columns.numeric, seed=0,
        fit_rows=10_000,
    )
    lightgbm_only = ChurnModel.from_files(result.model.to_files()) if result.model.kind_ == LIGHTGBM else None
    base = lightgbm_only or result.model
    blend = candidate_model(base, linear, weight=0.6, calibrator=base.calibrator_)
    rows = table.head(50)
    expected = 0.6 * base.booster_.predict(base.matrix(rows), raw_score=True) + 0.4 * linear.raw(rows)
    np.testing.assert_allclose(blend.predict_raw(rows), expected)
    # contributions + the two weighted biases give the log-odds
    bias = 0.6 * base.booster_.predict(base.matrix(rows), pred_contrib=True)[:, -1] + 0.4 * linear.intercept
    np.testing.assert_allclose(blend.contributions(rows).sum(axis=1).to_numpy() + bias, expected)
    restored = ChurnModel.from_files(blend.to_files())
    np.testing.assert_array_equal(restored.predict_proba(rows), blend.predict_proba(rows))
    assert restored.kind_ == "blend" and restored.blend_weight_ == 0.6


def test_a_baseline_calibrated_where_its_score_barely_varied_stays_near_a_constant_where_it_spreads():
    """Groceries: Pareto/NBD's expected purchases barely varied on the snapshot its calibrator was fitted on (the fit
    there found dropout) and spread on the test snapshot (the NBD limit there): its sigmoid extrapolated to 0.0001
    and 0.99 and its test log loss was 1.374, a constant's 0.69. Its ROC-AUC is the score's either way."""
    from sklearn.metrics import log_loss, roc_auc_score

    from pipeline import baselines

    rng = np.random.default_rng(7)

    def snapshot(day: str, expected: np.ndarray, churned: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"snapshot_date": pd.Timestamp(day, tz="UTC"), "pnbd_expected_purchases": expected,
                             "churned": churned})

    z = rng.normal(size=3000)
    calibration = snapshot("2015-01-01", 1.015 + 0.0025 * z, (rng.random(3000) < 1 / (1 + np.exp(0.3 + 0.1 * z))) * 1.0)
    earlier = snapshot("2014-07-01", rng.gamma(2.0, 0.5, 3000), (rng.random(3000) < 0.43) * 1.0)
    test = snapshot("2015-07-01", rng.uniform(0.65, 1.75, 3000), (rng.random(3000) < 0.43) * 1.0)
    fits = baselines.fit_baselines(pd.concat([earlier, calibration]), [(earlier, calibration)], rfm_features=[],
                                   calibration="sigmoid", seed=0, fit_rows=10_000)
    pareto = fits.fitted["pareto_nbd"]
    assert pareto.calibrator.method == "sigmoid"
    probabilities = pareto.predict_proba(test)
    churned = test["churned"].to_numpy()
    assert log_loss(churned, probabilities) < log_loss(churned, np.full(3000, calibration["churned"].mean())) + 0.02
    assert roc_auc_score(churned, probabilities) == roc_auc_score(churned, -test["pnbd_expected_purchases"])
