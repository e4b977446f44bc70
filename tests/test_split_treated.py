"""Training rows whose label a past retention action can have changed are left out."""

import pandas as pd
from pandas.testing import assert_frame_equal

from pipeline.split import drop_treated_rows


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "snapshot_date": pd.to_datetime(["2025-01-01", "2025-04-01", "2025-07-01", "2025-01-01", "2025-04-01"]),
            "churned": [0.0, 1.0, 0.0, 1.0, 0.0],
        }
    )


def test_rows_whose_label_window_overlaps_the_action_window_are_dropped():
    treated = pd.DataFrame({"customer_id": ["a"], "treated_on": pd.to_datetime(["2025-03-15"])})
    kept = drop_treated_rows(_features(), treated, horizon_days=90)
    # a treated on 2025-03-15 changes [03-15, 06-13): overlaps the windows of 01-01 (to 04-01) and 04-01 (to 06-30),
    # not that of 07-01 (07-01 - 90 days = 04-02 is after 03-15). b was never treated.
    expected = _features().iloc[[2, 3, 4]].reset_index(drop=True)
    assert_frame_equal(kept, expected)


def test_an_action_exactly_one_horizon_away_changes_nothing():
    treated = pd.DataFrame({"customer_id": ["b"], "treated_on": pd.to_datetime(["2025-07-01"])})
    # 2025-07-01 is 91 days after 2025-04-01: a 91-day label window of 04-01 ends the day before the action,
    # a 92-day one contains it.
    assert len(drop_treated_rows(_features(), treated, horizon_days=91)) == 5
    kept = drop_treated_rows(_features(), treated, horizon_days=92)
    assert kept["customer_id"].tolist() == ["a", "a", "a", "b"]


def test_rows_without_a_label_yet_are_kept():
    """A list scored at the data's end (Superstore as of 2017-12-31) treats customers after every labelled window:
    the unlabelled snapshots of its last months were dropped, and `churn train` said '2157 snapshot rows left out:
    ... the label measures the action', of rows that have no label."""
    features = _features().assign(churned=[0.0, 1.0, None, 1.0, None])
    treated = pd.DataFrame({"customer_id": ["a", "b"], "treated_on": pd.to_datetime(["2025-06-01", "2025-03-01"])})
    kept = drop_treated_rows(features, treated, horizon_days=90)
    # a: 06-01 overlaps the windows of 04-01 (labelled: dropped) and 07-01 (no label: kept); b: 03-01 overlaps
    # 01-01's window (dropped) and 04-01's (no label: kept).
    assert_frame_equal(kept, features.iloc[[0, 2, 4]].reset_index(drop=True))


def test_no_treatment_returns_the_frame_unchanged():
    empty = pd.DataFrame({"customer_id": pd.Series(dtype=str), "treated_on": pd.Series(dtype="datetime64[ns]")})
    features = _features()
    assert_frame_equal(drop_treated_rows(features, empty, horizon_days=90), features)


def test_treated_customers_are_the_treatment_groups_of_the_written_lists(campaign_cfg):
    from pathlib import Path

    from pipeline.run.history import treated_customers
    from pipeline.run.measure import read_scores

    treated = treated_customers(campaign_cfg)
    lists = sorted(Path(campaign_cfg.scores_dir).glob("at_risk_*.parquet"))
    expected = sum(int((read_scores(path)["group"] == "treatment").sum()) for path in lists)
    assert len(lists) == 4
    assert len(treated) == expected > 0
    assert treated["treated_on"].nunique() == len(lists)
