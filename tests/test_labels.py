"""Churn labels: eligibility from the lookback window, churn from the horizon after the snapshot."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import build_features
from pipeline.features import event_tables
from pipeline.labels import (
    churn_labels_from_tables,
    churned_who_came_back,
    horizon_passed,
    label_churn,
    labels_and_came_back,
    next_window_covered,
    pause_warning,
    yearly_buyers_warning,
    yearly_gap_churners,
    treated_in_pause_window,
)

AS_OF = dt.date(2024, 7, 1)  # t; lookback 30 days -> [2024-06-01, t); horizon 10 days -> [t, 2024-07-11)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def transactions() -> pd.DataFrame:
    rows = [
        ("a", "2024-06-10", 10.0),  # eligible, buys again in the horizon -> 0
        ("a", "2024-07-05", 10.0),
        ("b", "2024-06-30 23:59", 5.0),  # eligible, nothing after -> 1
        ("c", "2024-05-31 23:59", 5.0),  # last purchase before the lookback -> not eligible
        ("c", "2024-07-02", 5.0),
        ("d", "2024-06-15", -5.0),  # only a refund in the lookback -> not eligible
        ("e", "2024-06-01", 0.0),  # at the lookback start (free item = purchase), next order at t + horizon -> 1
        ("e", "2024-07-11", 8.0),
        ("f", "2024-07-01", 9.0),  # first order exactly at t -> not eligible
        ("g", "2024-06-20", 3.0),  # eligible; a refund in the horizon is not an order -> 1
        ("g", "2024-07-03", -3.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True, format="ISO8601")
    frame["order_id"] = [f"o{i}" for i in range(len(frame))]
    return Events.from_frames(transactions=frame).transactions


def test_label_churn_hand_computed():
    labels = label_churn(transactions(), as_of=AS_OF, lookback_days=30, horizon_days=10)
    expected = pd.DataFrame({
        "customer_id": pd.Series(["a", "b", "e", "g"], dtype="str"),
        "churned": pd.Series([0, 1, 1, 1], dtype="int8"),
    })
    assert_frame_equal(labels, expected)


def test_goods_given_back_at_no_price_are_no_purchase():
    """A line of 0 with a negative quantity (a free sample returned, a cancelled line priced 0) is a return: it
    neither makes a customer eligible nor keeps one from churning; a free item bought (0, quantity 1) is a purchase."""
    frame = pd.DataFrame({
        "customer_id": ["h", "h", "i", "j", "k"],
        "ordered_at": pd.to_datetime(["2024-06-20", "2024-07-04", "2024-06-25", "2024-06-22", "2024-06-10"], utc=True),
        "amount": [4.0, 0.0, 0.0, 0.0, 5.0],
        "quantity": [1.0, -1.0, -2.0, 1.0, None],
    }).assign(order_id=lambda f: [f"o{i}" for i in range(len(f))])
    given = Events.from_frames(transactions=frame).transactions
    expected = pd.DataFrame({"customer_id": pd.Series(["h", "j", "k"], dtype="str"),
                             "churned": pd.Series([1, 1, 1], dtype="int8")})
    assert_frame_equal(label_churn(given, as_of=AS_OF, lookback_days=30, horizon_days=10), expected)
    tables = event_tables(Events.from_frames(transactions=given))
    assert_frame_equal(churn_labels_from_tables(tables, as_of=AS_OF, lookback_days=30, horizon_days=10), expected)


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
@pytest.mark.parametrize("as_of", [AS_OF, dt.date(2024, 6, 16), dt.date(2024, 7, 11), dt.date(2020, 1, 1)])
def test_labels_from_the_feature_tables_equal_the_labels_of_the_purchases(as_of, zone):
    tables = event_tables(Events.from_frames(transactions=transactions()), timezone=zone)
    assert_frame_equal(
        churn_labels_from_tables(tables, as_of=as_of, lookback_days=30, horizon_days=10),
        label_churn(transactions(), as_of=as_of, lookback_days=30, horizon_days=10, timezone=zone),
    )


def test_label_churn_with_no_eligible_customers():
    labels = label_churn(transactions(), as_of=dt.date(2020, 1, 1), lookback_days=30, horizon_days=10)
    assert list(labels.columns) == ["customer_id", "churned"]
    assert labels.empty and labels["churned"].dtype == "int8"


@pytest.mark.parametrize(("zone", "customers"), [
    ("UTC", ["a", "b", "e", "g"]),
    ("America/Los_Angeles", ["a", "b", "f", "g"]),  # f's order at t (UTC) is on the evening before; e's too early
    ("Asia/Tokyo", ["a", "c", "e", "g"]),  # b's order at 23:59 UTC is on the morning of t, c's in the lookback
])
def test_labelled_customers_are_exactly_the_feature_rows(zone, customers):
    events = Events.from_frames(transactions=transactions())
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, lookback_days=30, horizon_days=10, btyd=False, timezone=zone)
    features = build_features(events, as_of=AS_OF, cfg=cfg)
    labels = label_churn(events.transactions, as_of=AS_OF, lookback_days=30, horizon_days=10, timezone=zone)
    assert features["customer_id"].tolist() == labels["customer_id"].tolist() == customers


def test_labels_never_enter_the_features():
    """Changing only what happens after t changes the labels, never the features."""
    events = Events.from_frames(transactions=transactions())
    future_free = Events.from_frames(transactions=transactions().query("ordered_at < @ts('2024-07-01')"))
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, lookback_days=30, horizon_days=10, btyd=False)
    assert_frame_equal(build_features(events, as_of=AS_OF, cfg=cfg), build_features(future_free, as_of=AS_OF, cfg=cfg))
    churn_with = label_churn(events.transactions, as_of=AS_OF, lookback_days=30, horizon_days=10)["churned"]
    churn_without = label_churn(future_free.transactions, as_of=AS_OF, lookback_days=30, horizon_days=10)["churned"]
    assert churn_with.tolist() != churn_without.tolist()


@pytest.mark.parametrize(
    ("as_of", "last", "expected"),
    [
        (dt.date(2024, 7, 1), dt.date(2024, 7, 10), True),  # window [07-01, 07-11) ends with the last day
        (dt.date(2024, 7, 2), dt.date(2024, 7, 10), False),
        (dt.date(2024, 7, 1), None, False),
    ],
)
def test_horizon_passed(as_of, last, expected):
    assert horizon_passed(as_of, horizon_days=10, last_event_date=last) is expected


def test_a_list_whose_label_window_overlaps_a_training_window_is_seen_by_the_model():
    from pipeline.labels import seen_outcomes_warning, windows_seen_in_training

    snapshots = ["2024-01-01", "2024-02-01", "2024-03-01"]
    seen = windows_seen_in_training(dt.date(2024, 3, 20), training_snapshots=snapshots, horizon_days=60)
    assert seen == [dt.date(2024, 2, 1), dt.date(2024, 3, 1)]  # windows to 2024-04-01 and 2024-04-30, not 2024-03-01
    assert windows_seen_in_training(dt.date(2024, 4, 30), training_snapshots=snapshots, horizon_days=60) == []
    assert windows_seen_in_training(dt.date(2023, 11, 2), training_snapshots=snapshots, horizon_days=60) == []
    assert windows_seen_in_training(dt.date(2023, 11, 3), training_snapshots=snapshots, horizon_days=60) == [
        dt.date(2024, 1, 1)]
    sentence = seen_outcomes_warning(dt.date(2024, 3, 20), training_snapshots=snapshots, horizon_days=60, model="v3")
    assert sentence.startswith("v3 was trained on the label windows of snapshots 2024-02-01 to 2024-03-01, which "
                               "overlap this list's (2024-03-20 to 2024-05-19) by up to 41 days")
    one_day = seen_outcomes_warning(dt.date(2023, 11, 3), training_snapshots=snapshots, horizon_days=60, model="v3")
    assert "by up to 1 day:" in one_day
    assert seen_outcomes_warning(dt.date(2024, 6, 1), training_snapshots=snapshots, horizon_days=60, model="v3") is None
    assert seen_outcomes_warning(dt.date(2024, 6, 1), training_snapshots=None, horizon_days=60, model="v3") is None


def test_customers_with_a_purchase_before_a_day_are_the_eligible_ones_of_a_zero_horizon():
    """The runner finds who bought in the horizon after a label window as the customers eligible at its end, with
    that horizon as lookback and no horizon of their own."""
    # purchases in [07-01, 07-11): a (07-05), c (07-02), f (07-01); g's refund is no purchase
    buyers = churn_labels_from_tables(event_tables(Events.from_frames(transactions=transactions())),
                                      as_of=dt.date(2024, 7, 11), lookback_days=10, horizon_days=0)
    assert buyers["customer_id"].tolist() == ["a", "c", "f"]


@pytest.mark.parametrize("as_of", [AS_OF, dt.date(2024, 6, 16), dt.date(2024, 6, 25), dt.date(2020, 1, 1)])
def test_came_back_from_the_feature_tables_counts_the_churned_who_bought_in_the_next_horizon(as_of):
    tables = event_tables(Events.from_frames(transactions=transactions()))
    labels = label_churn(transactions(), as_of=as_of, lookback_days=30, horizon_days=10)
    later = label_churn(transactions(), as_of=as_of + dt.timedelta(days=20), lookback_days=10, horizon_days=0)
    expected = churned_who_came_back(labels, later["customer_id"])
    labelled, counts = labels_and_came_back([tables], as_of=as_of, lookback_days=30, horizon_days=10, came_back=True)
    assert counts == expected
    assert_frame_equal(labelled, labels)
    if as_of == AS_OF:
        assert expected == (3, 1)  # b, e, g churned; e bought on 07-11, the first day after the label window


def test_churned_who_came_back_counts_the_churned_among_the_later_buyers():
    labels = pd.DataFrame({"customer_id": ["a", "b", "e", "g"], "churned": [0, 1, 1, 1]})
    assert churned_who_came_back(labels, pd.Series(["a", "e", "x"])) == (3, 1)  # a was not churned
    assert churned_who_came_back(labels, pd.Series([], dtype="str")) == (3, 0)


@pytest.mark.parametrize(
    ("as_of", "last", "expected"),
    [
        (dt.date(2024, 7, 1), dt.date(2024, 7, 20), True),  # next window [07-11, 07-21) ends with the last day
        (dt.date(2024, 7, 1), dt.date(2024, 7, 19), False),
        (dt.date(2024, 7, 1), None, False),
    ],
)
def test_next_window_covered(as_of, last, expected):
    assert next_window_covered(as_of, horizon_days=10, last_event_date=last) is expected


def test_pause_warning_pools_the_covered_snapshots_and_names_them():
    rows = [
        {"date": "2024-01-01", "churned": 100, "came_back": 20},
        {"date": "2024-02-01", "churned": 100, "came_back": 31},
        {"date": "2024-03-01", "churned": 0, "came_back": 0},  # nobody churned: nothing to pool
        {"date": "2024-04-01", "churned": None, "came_back": None},  # the data does not cover the next horizon
    ]
    warning = pause_warning(rows, horizon_days=90)
    assert warning.startswith("26% of the customers labelled churned (no purchase in the 90 days after a snapshot; 200 "
                              "labels of snapshots 2024-01-01 to 2024-02-01) bought again in the 90 days after that")
    assert "features.horizon_days" in warning
    assert pause_warning(rows[:1], horizon_days=90) is None  # 20% stays quiet
    assert "snapshot 2024-02-01)" in pause_warning(rows[1:], horizon_days=90)
    assert pause_warning(rows[2:], horizon_days=90) is None
    assert pause_warning([], horizon_days=90) is None


def test_pause_warning_also_reads_the_latest_year_when_an_early_cohort_outweighs_it():
    """An apparel retailer's log: its first cohort's snapshots hold most labels, few of them come back; in the latest
    year 40% of those labelled churned bought again in the next horizon. Pooled over all: 15%, but the pauses are
    common now, and the warning names the latest year's snapshots."""
    early = [{"date": f"{year}-07-01", "churned": 2000, "came_back": 200} for year in (2011, 2012, 2013)]
    late = [{"date": "2014-08-01", "churned": 300, "came_back": 120}, {"date": "2015-03-01", "churned": 300,
                                                                       "came_back": 120}]
    warning = pause_warning(early + late, horizon_days=90)
    assert warning.startswith("40% of the customers labelled churned (no purchase in the 90 days after a snapshot; "
                              "600 labels of snapshots 2014-08-01 to 2015-03-01)")
    quiet = [{**row, "came_back": 60} for row in late]  # 20% in the latest year: no warning either way
    assert pause_warning(early + quiet, horizon_days=90) is None
    within = [{"date": "2014-05-01", "churned": 300, "came_back": 120}]  # 40%, but the year back from it holds 2013-07
    assert pause_warning(early + within, horizon_days=90) is None  # 320 of 2,300 (14%)


def test_customers_treated_while_they_could_come_back_are_left_out_of_the_pause_counts():
    """At 07-01 with a 10-day horizon, b, e and g are churned and e bought on 07-11: treated e leaves (2, 0)."""
    tables = event_tables(Events.from_frames(transactions=transactions()))
    _, counts = labels_and_came_back([tables], as_of=AS_OF, lookback_days=30, horizon_days=10, came_back=True,
                                     left_out=["e"])
    assert counts == (2, 0)
    labels = label_churn(transactions(), as_of=AS_OF, lookback_days=30, horizon_days=10)
    assert churned_who_came_back(labels, pd.Series(["e"]), left_out=["e"]) == (2, 0)
    # An action acts for one horizon from its list's date: it overlaps [07-01, 07-21) when listed 06-22 .. 07-20.
    treated = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                            "treated_on": pd.to_datetime(["2024-06-21", "2024-06-22", "2024-07-20", "2024-07-21"])})
    assert treated_in_pause_window(treated, AS_OF, horizon_days=10) == ["b", "c"]


def test_yearly_gap_churners_count_the_churned_whose_last_two_purchase_days_lie_a_year_apart():
    snapshot = pd.DataFrame({"churned": [1, 1, 1, 1, 0, 1],
                             "gap_last_days": [365.0, 335.0, 395.0, 396.0, 365.0, np.nan]})
    assert yearly_gap_churners(snapshot, horizon_days=90) == 3  # not 396 days, the retained one, one purchase day
    assert yearly_gap_churners(snapshot, horizon_days=400) is None  # the horizon spans a year's gap
    assert yearly_gap_churners(snapshot.drop(columns="gap_last_days"), horizon_days=90) is None


def test_yearly_buyers_warning_pools_the_labelled_snapshots():
    rows = [{"date": "2024-01-01", "labelled_churned": 1000, "yearly_gap": 30},
            {"date": "2024-02-01", "labelled_churned": 1000, "yearly_gap": 90},
            {"date": "2024-03-01", "labelled_churned": None, "yearly_gap": None}]  # not labelled
    warning = yearly_buyers_warning(rows, horizon_days=90)
    assert warning.startswith("6% of the customers labelled churned (no purchase in the 90 days after a snapshot; 2,000 "
                              "labels of snapshots 2024-01-01 to 2024-02-01) had bought about a year apart (335-395 "
                              "days between their last two purchase days; those who bought once so far are not "
                              "counted, so there are more): yearly buyers")
    assert "features.horizon_days above a year" in warning and "sources.transactions.exclude" in warning
    assert yearly_buyers_warning(rows[:1], horizon_days=90) is None  # 3%: a shop's casual buyers stay quiet
    assert yearly_buyers_warning([], horizon_days=90) is None
