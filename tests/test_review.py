"""Review helpers (pipeline.review) and review figures (pipeline.plots_review) on tiny hand-made inputs."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline import plots_review, review
from pipeline.contract import conform
from pipeline.errors import ConfigError, ScoreError, TrainError


def transactions(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])
    return conform(frame.assign(order_id=[f"o{i}" for i in range(len(frame))]), "transactions")


COHORT_ROWS = [
    ("A", "2024-01-05", 10.0),
    ("A", "2024-02-10", 10.0),
    ("A", "2024-03-01", -5.0),  # a return: not a purchase
    ("B", "2024-01-20", 20.0),
    ("B", "2024-03-15", 5.0),
    ("C", "2024-02-02", 7.0),
    ("C", "2024-02-20", 3.0),
    ("C", "2024-04-02", 9.0),  # April is not complete at as_of
    ("D", "2024-04-10", 9.0),  # after as_of
]


def test_cohort_retention_counts_purchases_in_whole_months_before_as_of():
    result = review.cohort_retention(transactions(COHORT_ROWS), as_of=dt.date(2024, 4, 5))
    expected = pd.DataFrame(
        {
            "cohort": pd.Series(["2024-01", "2024-01", "2024-01", "2024-02", "2024-02"], dtype="str"),
            "months_since_first": np.array([0, 1, 2, 0, 1], dtype="int64"),
            "cohort_size": np.array([2, 2, 2, 1, 1], dtype="int64"),
            "active_customers": np.array([2, 1, 1, 1, 0], dtype="int64"),
            "retention": [1.0, 0.5, 0.5, 1.0, 0.0],
        }
    )
    assert_frame_equal(result, expected)


def test_cohort_retention_is_empty_before_the_first_whole_month():
    result = review.cohort_retention(transactions(COHORT_ROWS), as_of=dt.date(2024, 1, 31))
    assert result.empty
    assert list(result.columns) == ["cohort", "months_since_first", "cohort_size", "active_customers", "retention"]


def test_cohort_retention_leaves_its_input_alone():
    frame = transactions(COHORT_ROWS)
    before = frame.copy()
    review.cohort_retention(frame, as_of=dt.date(2024, 4, 5))
    assert_frame_equal(frame, before)


def naive_cohorts(frame: pd.DataFrame, *, as_of: dt.date) -> pd.DataFrame:
    """cohort -> {offset: active customers}, from a plain pandas groupby over every purchase."""
    last = as_of.year * 12 + as_of.month - 2
    buys = frame[(frame["amount"] >= 0) & (frame["ordered_at"] < pd.Timestamp(as_of, tz="UTC"))]
    month = buys["ordered_at"].dt.year * 12 + buys["ordered_at"].dt.month - 1
    active = pd.DataFrame({"customer": buys["customer_id"], "month": month})[month <= last].drop_duplicates()
    active["first"] = active.groupby("customer")["month"].transform("min")
    return active.groupby(["first", active["month"] - active["first"]]).size()


def test_cohort_retention_agrees_with_a_plain_groupby_on_random_purchases():
    rng = np.random.default_rng(3)
    n = 2_000
    times = pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 500 * 86_400, n), unit="s")
    rows = list(zip([f"c{i}" for i in rng.integers(0, 150, n)], times.strftime("%Y-%m-%d %H:%M:%S"),
                    rng.normal(20, 15, n).round(2), strict=True))
    frame = transactions(rows)
    as_of = dt.date(2024, 3, 17)
    result = review.cohort_retention(frame, as_of=as_of)
    expected = naive_cohorts(frame, as_of=as_of)
    cohort_month = pd.to_datetime(result["cohort"]).dt.year * 12 + pd.to_datetime(result["cohort"]).dt.month - 1
    found = result.set_index([cohort_month.rename("first"), result["months_since_first"]])["active_customers"]
    assert (found[found > 0].to_numpy() == expected.reindex(found[found > 0].index).to_numpy()).all()
    assert found.sum() == expected.sum()
    sizes = result.loc[result["months_since_first"] == 0, "cohort_size"].to_numpy()
    assert (sizes == result.loc[result["months_since_first"] == 0, "active_customers"].to_numpy()).all()


def test_retention_matrix_has_cohorts_with_sizes_by_month():
    cohorts = review.cohort_retention(transactions(COHORT_ROWS), as_of=dt.date(2024, 4, 5))
    matrix = review.retention_matrix(cohorts)
    assert list(matrix.index) == [("2024-01", 2), ("2024-02", 1)]
    assert matrix.loc[("2024-01", 2)].tolist() == [1.0, 0.5, 0.5]
    assert matrix.loc[("2024-02", 1)].tolist()[:2] == [1.0, 0.0] and np.isnan(matrix.loc[("2024-02", 1), 2])


def snapshots() -> pd.DataFrame:
    dates = pd.to_datetime(["2024-01-01"] * 3 + ["2024-02-01"] * 2, utc=True).astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "snapshot_date": dates,
            "customer_id": ["a", "b", "c", "a", "b"],
            "recency_days": [10.0, 200.0, 30.0, 40.0, 230.0],
            "nps_last": [9.0, np.nan, 3.0, 9.0, np.nan],
            "churned": [0.0, 1.0, 0.0, np.nan, np.nan],
        }
    )


def test_churn_by_snapshot_counts_and_rates_with_unlabelled_snapshots_as_nan():
    expected = pd.DataFrame(
        {
            "snapshot_date": pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True).astype("datetime64[us, UTC]"),
            "customers": np.array([3, 2], dtype="int64"),
            "churned": [1.0, np.nan],
            "churn_rate": [1 / 3, np.nan],
        }
    )
    assert_frame_equal(review.churn_by_snapshot(snapshots()), expected)


def test_label_comparison_medians_and_missing_shares_by_outcome():
    first = snapshots().iloc[:3]
    expected = pd.DataFrame(
        {
            "median_retained": [20.0, 6.0],
            "median_churned": [200.0, np.nan],
            "missing_retained": [0.0, 0.0],
            "missing_churned": [0.0, 1.0],
        },
        index=pd.Index(["recency_days", "nps_last"], name="feature"),
    )
    assert_frame_equal(review.label_comparison(first, ["recency_days", "nps_last"]), expected)


REPORT = {
    "sources": {
        "transactions": {
            "configured": True, "input_rows": 10, "validated_rows": 8, "quarantined_rows": 2, "bad_share": 0.2,
            "duplicate_rows": 1, "top_reasons": [{"reason": "amount: not a number", "rows": 2}],
        },
        "feedback": {
            "configured": True, "input_rows": 4, "validated_rows": 1, "quarantined_rows": 3, "bad_share": 0.75,
            "duplicate_rows": 0, "top_reasons": [{"reason": "score: outside 0-10 for nps", "rows": 3}],
        },
        "loyalty_events": {"configured": False, "input_rows": 0, "validated_rows": 0, "quarantined_rows": 0,
                           "bad_share": 0.0, "duplicate_rows": 0, "top_reasons": []},
    }
}


def test_ingest_table_lists_configured_sources():
    expected = pd.DataFrame(
        {"input_rows": [10, 4], "validated_rows": [8, 1], "quarantined_rows": [2, 3], "bad_share": [0.2, 0.75],
         "duplicate_rows": [1, 0]},
        index=pd.Index(["transactions", "feedback"], name="source"),
    )
    assert_frame_equal(review.ingest_table(REPORT), expected, check_index_type=False)


def test_quarantine_reasons_most_rows_first():
    expected = pd.DataFrame(
        {"source": ["feedback", "transactions"], "reason": ["score: outside 0-10 for nps", "amount: not a number"],
         "rows": np.array([3, 2], dtype="int64")}
    )
    assert_frame_equal(review.quarantine_reasons(REPORT), expected, check_dtype=False)


METRICS = {
    "test": {"lightgbm": {"roc_auc": 0.8, "brier": 0.17}, "recency_rule": {"roc_auc": 0.7, "brier": 0.2}},
    "validation": {"lightgbm": {"roc_auc": 0.82, "brier": 0.16}},
}
BACKTEST = {
    "folds": [
        {"split": {"test": "2025-09-01"}, "test": {"lightgbm": {"pr_auc": 0.7}, "recency_rule": {"pr_auc": 0.6}}},
        {"split": {"test": "2025-10-01"}, "test": {"lightgbm": {"pr_auc": 0.8}, "recency_rule": {"pr_auc": 0.5}}},
    ],
    "summary": {
        "lightgbm": {"pr_auc": {"mean": 0.75, "std": 0.0707, "n": 2.0}},
        "recency_rule": {"pr_auc": {"mean": 0.55, "std": 0.0707, "n": 2.0}},
    },
}


def test_metrics_table_one_row_per_model():
    expected = pd.DataFrame(
        {"brier": [0.17, 0.2], "roc_auc": [0.8, 0.7]}, index=pd.Index(["lightgbm", "recency_rule"], name="model")
    )
    result = review.metrics_table(METRICS, split="test", columns=["brier", "roc_auc"])
    assert_frame_equal(result, expected, check_index_type=False)


def test_backtest_folds_and_spread():
    folds = pd.DataFrame(
        {"test_snapshot": ["2025-09-01", "2025-09-01", "2025-10-01", "2025-10-01"],
         "model": ["lightgbm", "recency_rule"] * 2, "pr_auc": [0.7, 0.6, 0.8, 0.5]}
    )
    spread = pd.DataFrame(
        {"model": ["lightgbm", "recency_rule"], "metric": ["pr_auc", "pr_auc"], "mean": [0.75, 0.55],
         "std": [0.0707, 0.0707], "n": [2.0, 2.0]}
    )
    assert_frame_equal(review.backtest_folds(BACKTEST), folds, check_dtype=False)
    assert_frame_equal(review.backtest_spread(BACKTEST), spread, check_dtype=False)


def test_top_contributions_by_absolute_size_with_values():
    contributions = pd.DataFrame(
        {"a": [0.5, -0.2], "b": [-1.0, 0.3], "c": [0.1, 0.0]}, index=pd.Index(["c2", "c1"], name="customer_id")
    )
    values = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "c": [3.0, 4.0]}, index=contributions.index)
    expected = pd.DataFrame(
        {
            "customer": ["c2", "c2", "c1", "c1"],
            "rank": [1, 2, 1, 2],
            "feature": ["b", "a", "b", "a"],
            "contribution": [-1.0, 0.5, 0.3, -0.2],
            "value": pd.Series(["x", 1.0, "y", 2.0], dtype="object"),
        }
    )
    assert_frame_equal(review.top_contributions(contributions, n=2, values=values), expected, check_dtype=False)


def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "churn_probability": [0.9, 0.8, 0.4, 0.3, 0.1],
            "risk_tier": ["high", "high", "medium", "medium", "low"],
            "action": pd.Series(["service_recovery", None, "category_offer", "category_offer", None], dtype="str"),
            "action_cost": [18.0, np.nan, 6.0, 6.0, np.nan],
            "expected_net_value": [50.0, np.nan, 12.0, 10.0, np.nan],
            "group": ["treatment", "none", "control", "treatment", "none"],
            "as_of": [dt.date(2026, 1, 1)] * 5,
        }
    )


def test_tier_by_action_counts_customers_with_no_action_last():
    expected = pd.DataFrame(
        [[0, 1, 1], [2, 0, 0], [0, 0, 1]],
        index=pd.Index(["high", "medium", "low"], name="risk_tier"),
        columns=pd.Index(["category_offer", "service_recovery", "no action"], name="action"),
    )
    assert_frame_equal(
        review.tier_by_action(scores()), expected, check_index_type=False, check_column_type=False, check_dtype=False
    )


def test_budget_by_action_spends_only_on_the_treated():
    expected = pd.DataFrame(
        {"treatment": [1, 1, 2], "control": [1, 0, 1], "cost": [6.0, 18.0, 24.0], "budget_share": [0.06, 0.18, 0.24],
         "expected_net_value": [10.0, 50.0, 60.0]},
        index=pd.Index(["category_offer", "service_recovery", "total"], name="action"),
    )
    assert_frame_equal(review.budget_by_action(scores(), budget=100.0), expected, check_index_type=False, check_dtype=False)


def test_dated_files_and_latest_file(tmp_path):
    for name in ("at_risk_2025-10-01.parquet", "at_risk_2026-01-01.parquet", "at_risk_2026-01-01.csv", "at_risk_old.parquet"):
        (tmp_path / name).write_bytes(b"")
    files = review.dated_files(tmp_path, "at_risk_", ".parquet")
    assert list(files) == [dt.date(2025, 10, 1), dt.date(2026, 1, 1)]
    assert review.latest_file(tmp_path, "at_risk_", ".parquet", hint="x") == tmp_path / "at_risk_2026-01-01.parquet"


def test_latest_file_names_the_folder_and_what_to_run(tmp_path):
    with pytest.raises(ScoreError, match=r"no measured_YYYY-MM-DD\.csv in .*: run `churn measure` first"):
        review.latest_file(tmp_path / "scores", "measured_", ".csv", hint="run `churn measure` first")


def test_find_config_looks_in_parent_folders(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text("{}")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert review.find_config("configs/x.yaml") == (tmp_path / "configs" / "x.yaml").resolve()
    with pytest.raises(ConfigError, match=r"config file not found: configs/nope\.yaml \(set CHURN_CONFIG"):
        review.find_config("configs/nope.yaml")


def test_latest_training_run_id_says_to_train_first(mlflow_uri):
    with pytest.raises(TrainError, match=r"no training run of 'm' in experiment 'no-such-experiment' .*run `churn train` first"):
        review.latest_training_run_id(mlflow_uri, experiment="no-such-experiment", model_name="m")


# --- figures ---------------------------------------------------------------------------------------------


def measured() -> pd.DataFrame:
    return pd.DataFrame(
        {"action": ["category_offer", "all"], "n_treatment": [10, 10], "n_control": [2, 2],
         "churn_treatment": [0.3, 0.3], "churn_control": [0.5, 0.5], "churn_reduction": [0.2, 0.2],
         "churn_reduction_low": [-0.2, -0.2], "churn_reduction_high": [0.5, 0.5]}
    )


FIGURES = {
    "cohort_retention": lambda: plots_review.cohort_retention_figure(
        review.cohort_retention(transactions(COHORT_ROWS), as_of=dt.date(2024, 4, 5))
    ),
    "churn_rate": lambda: plots_review.churn_rate_figure(review.churn_by_snapshot(snapshots())),
    "risk_tier_action": lambda: plots_review.risk_tier_action_figure(scores()),
    "backtest_spread": lambda: plots_review.backtest_spread_figure(
        review.backtest_folds(BACKTEST), review.backtest_spread(BACKTEST), metric="pr_auc"
    ),
    "feature_distribution": lambda: plots_review.feature_distribution_figure(snapshots(), ["recency_days", "nps_last"]),
    "measured_effect": lambda: plots_review.measured_effect_figure(measured()),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figures_have_title_axis_labels_and_legend(name):
    figure = FIGURES[name]()
    axes = [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    main = axes[0]
    assert main.get_title() or figure.get_suptitle()
    assert main.get_xlabel() and main.get_ylabel()
    assert any(ax.get_legend() is not None for ax in axes)


def _xy(line) -> list[list[float]]:
    return np.vstack(line.get_data()).astype("float64").round(6).tolist()


def test_cohort_retention_figure_plots_each_cohorts_retention_and_the_weighted_mean():
    ax = FIGURES["cohort_retention"]().axes[0]
    by_label = {line.get_label(): _xy(line) for line in ax.get_lines()}
    # 2024-02 has only one month after its first: not drawn; the weighted mean counts it (1 of 3 in month 1)
    assert by_label == {
        "2024-01 (n=2)": [[0, 1, 2], [100, 50, 50]],
        "all cohorts (weighted)": [[1, 2], [round(100 / 3, 6), 50]],
    }


def test_churn_rate_figure_plots_rates_and_customer_counts():
    ax = FIGURES["churn_rate"]().axes[0]
    (rates,) = ax.get_lines()
    assert rates.get_ydata()[0] == pytest.approx(100 / 3) and np.isnan(rates.get_ydata()[1])
    counts_ax = next(other for other in ax.get_shared_x_axes().get_siblings(ax) if other is not ax)
    assert [bar.get_height() for bar in counts_ax.patches] == [3, 2]


def test_risk_tier_action_figure_stacks_the_tier_by_action_counts():
    ax = FIGURES["risk_tier_action"]().axes[0]
    heights = {container.get_label(): [bar.get_height() for bar in container] for container in ax.containers}
    assert heights == {"category_offer": [0, 2, 0], "service_recovery": [1, 0, 0], "no action": [1, 0, 1]}
    assert [text.get_text() for text in ax.texts] == ["2 (0 control)", "2 (1 control)", "1 (0 control)"]


def test_backtest_spread_figure_plots_each_fold_and_the_mean():
    ax = FIGURES["backtest_spread"]().axes[0]
    folds = {c.get_label(): c.get_offsets()[:, 1].round(6).tolist() for c in ax.collections if c.get_label().startswith("test")}
    assert folds == {"test snapshot 2025-09-01": [0.7, 0.6], "test snapshot 2025-10-01": [0.8, 0.5]}  # lightgbm, recency_rule
    (means, *_) = ax.containers
    assert means.lines[0].get_ydata().tolist() == [0.75, 0.55]


def test_feature_distribution_figure_counts_labelled_customers_by_outcome():
    figure = FIGURES["feature_distribution"]()
    recency, nps = figure.axes[:2]
    assert [t.get_text() for t in recency.get_legend().get_texts()] == ["retained (n=2)", "churned (n=1)"]
    assert [t.get_text() for t in nps.get_legend().get_texts()] == ["retained (n=2)", "churned (n=0)"]
    for histogram in recency.containers:  # densities: each histogram's area is 1
        assert sum(bar.get_height() * bar.get_width() for bar in histogram) == pytest.approx(1.0)


def test_measured_effect_figure_plots_treated_and_control_churn():
    ax = FIGURES["measured_effect"]().axes[0]
    heights = {container.get_label(): [bar.get_height() for bar in container] for container in ax.containers}
    assert heights == {"treatment": [30.0, 30.0], "control (held out)": [50.0, 50.0]}
    assert ax.get_xticklabels()[0].get_text() == "category_offer\nn=10/2\nΔ +20 pp [-20, +50]"


def test_save_figure_writes_the_same_png_twice(tmp_path):
    first = plots_review.save_figure(FIGURES["risk_tier_action"](), tmp_path / "a.png")
    second = plots_review.save_figure(FIGURES["risk_tier_action"](), tmp_path / "b.png")
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == second.read_bytes()


def test_empty_inputs_give_figures_that_say_so():
    cohorts = review.cohort_retention(transactions(COHORT_ROWS), as_of=dt.date(2024, 1, 31))
    first_months_only = review.cohort_retention(transactions(COHORT_ROWS), as_of=dt.date(2024, 2, 15))
    assert first_months_only["months_since_first"].tolist() == [0]  # January's cohort, nothing after it yet
    nobody = scores().iloc[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No artists with labels found to put in legend"
        cases = [
            (plots_review.cohort_retention_figure(cohorts), "no whole month of purchases before the as-of date"),
            (plots_review.cohort_retention_figure(first_months_only), "no cohort observed beyond its first-order month yet"),
            (plots_review.risk_tier_action_figure(nobody), "no customers scored"),
        ]
    for figure, message in cases:
        assert [text.get_text() for text in figure.axes[0].texts] == [message]
        assert figure.axes[0].get_legend() is None
        plots_review.figure_png(figure)


def test_came_back_table_keeps_the_snapshots_whose_next_horizon_is_covered():
    report = {"snapshots": [
        {"date": "2024-01-01", "churned": 10, "came_back": 3},
        {"date": "2024-02-01", "churned": 0, "came_back": 0},  # nobody churned
        {"date": "2024-03-01", "churned": None, "came_back": None},  # the data do not run that far
    ]}
    table = review.came_back_table(report)
    assert table.to_dict("records") == [
        {"snapshot_date": "2024-01-01", "churned": 10, "came_back": 3, "came_back_share": 0.3}]
    assert review.came_back_table({"snapshots": []}).empty
