"""train_models on synthetic snapshot tables with a planted signal: metrics, baselines, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic import RETENTION, SPECS, Spec, synthetic_features

from pipeline.config import TrainConfig
from pipeline.errors import TrainError
from pipeline.evaluate import METRIC_NAMES
from pipeline.split import labelled_snapshots, rolling_splits, time_split
from pipeline.train import (
    LIGHTGBM,
    LIGHTGBM_UNCALIBRATED,
    SEARCH_SPACE,
    backtest_summary,
    search_candidates,
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
    return train_models(table, specs=SPECS, split=split, settings=SETTINGS, retention=RETENTION)


def test_metrics_shape_every_model_and_split(result):
    assert set(result.metrics) == {"test", "validation", "calibration", "split", "skipped_baselines"}
    for part in ("test", "validation"):
        assert list(result.metrics[part]) == [LIGHTGBM, LIGHTGBM_UNCALIBRATED, "recency_rule", "logistic_rfm", "btyd"]
        for values in result.metrics[part].values():
            assert tuple(values) == METRIC_NAMES
    assert result.metrics["calibration"]["fitted_on"] == "validation"
    assert "validation metrics are optimistic" in result.metrics["calibration"]["note"]
    assert result.metrics["split"]["test"] == "2024-07-01"
    assert result.metrics["split"]["rows"] == {"train": 5 * 600, "validation": 600, "test": 600}
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
    best = max(result.trials, key=lambda t: t["validation_pr_auc"])
    assert result.best_params["learning_rate"] == best["learning_rate"]
    assert result.best_params["deterministic"] is True
    assert result.best_params["num_threads"] == 1  # small data: one thread (SINGLE_THREAD_ROWS)
    assert result.best_params["scale_pos_weight"] > 1.0


def test_same_seed_gives_the_same_metrics(table, split, result):
    again = train_models(table, specs=SPECS, split=split, settings=SETTINGS, retention=RETENTION)
    assert again.metrics == result.metrics
    np.testing.assert_array_equal(again.probabilities["test"][LIGHTGBM], result.probabilities["test"][LIGHTGBM])


def test_baseline_without_its_features_is_skipped_with_a_reason(table, split):
    no_btyd = table.drop(columns=["btyd_p_alive", "btyd_expected_purchases"])
    specs = [s for s in SPECS if not s.name.startswith("btyd")]
    result = train_models(no_btyd, specs=specs, split=split, settings=TrainConfig(search_trials=1), retention=RETENTION)
    assert "btyd" not in result.metrics["test"]
    assert result.skipped_baselines == {
        "btyd": "features btyd_expected_purchases and btyd_p_alive are absent or empty (features.btyd: false?)"
    }
    assert result.metrics["skipped_baselines"] == result.skipped_baselines


def test_btyd_falls_back_to_p_alive(table, split):
    result = train_models(
        table.drop(columns=["btyd_expected_purchases"]),
        specs=SPECS,
        split=split,
        settings=TrainConfig(search_trials=1),
        retention=RETENTION,
    )
    assert result.baselines["btyd"].features == ["btyd_p_alive"]


def test_select_feature_columns_drops_absent_and_empty_features(table):
    train = table.assign(nps_last=np.nan)
    specs = [*SPECS, Spec("open_tickets", "service", "numeric")]
    columns, dropped = select_feature_columns(train, specs)
    assert dropped == {"open_tickets": "not in the feature table", "nps_last": "missing in every training row"}
    assert columns.categorical == ["region"]
    assert "nps_last" not in columns.numeric
    assert columns.rfm == ["recency_days", "frequency_all", "monetary_365d", "overdue_ratio", "noise"]


def test_no_usable_feature_is_an_error(table):
    with pytest.raises(TrainError, match="no usable feature"):
        select_feature_columns(table, [Spec("open_tickets", "service", "numeric")])


def test_search_candidates_default_first_distinct_and_depth_bounded():
    candidates = search_candidates(trials=6, seed=1, max_depth=4)
    assert candidates[0] == {**{k: v[0] for k, v in SEARCH_SPACE.items()}, "num_leaves": 16}
    assert len(candidates) == 6
    assert all(c["num_leaves"] <= 16 for c in candidates)
    assert len({json.dumps(c, sort_keys=True) for c in search_candidates(trials=6, seed=1, max_depth=-1)}) == 6
    assert search_candidates(trials=6, seed=1, max_depth=4) == candidates


def test_dask_engine_without_a_cluster_is_refused_with_a_clear_message(table, split):
    with pytest.raises(TrainError, match=r"train.engine='dask' needs a cluster: run `churn train`"):
        train_models(table, specs=SPECS, split=split, settings=TrainConfig(engine="dask"), retention=RETENTION)


def test_backtest_summary_over_rolling_folds(table, result):
    splits = rolling_splits(labelled_snapshots(table), horizon_days=30, folds=2)
    assert splits[0] == result.split
    second = train_models(table, specs=SPECS, split=splits[1], settings=SETTINGS, retention=RETENTION)
    report = backtest_summary([result, second])
    assert [f["split"]["test"] for f in report["folds"]] == ["2024-07-01", "2024-06-01"]
    roc = [result.metrics["test"][LIGHTGBM]["roc_auc"], second.metrics["test"][LIGHTGBM]["roc_auc"]]
    assert report["summary"][LIGHTGBM]["roc_auc"] == pytest.approx(
        {"mean": np.mean(roc), "std": np.std(roc, ddof=1), "n": 2.0}
    )
