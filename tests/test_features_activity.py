"""Hand-computed activity features (purchase days, regularity, quantities, products, cancellations, returns,
gross spend, left-censoring, same season last year) on a tiny frame; snapshot t = 2024-07-01 00:00 UTC."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import build_features, feature_specs

AS_OF = dt.date(2024, 7, 1)
NAN = np.nan
CFG = FeaturesConfig(snapshots={"dates": [AS_OF]}, windows_days=[30, 90], horizon_days=90, btyd=False)


def tx(*rows) -> pd.DataFrame:
    """Rows of (order_id, customer_id, ordered_at, amount, quantity, product_id)."""
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount", "quantity", "product_id"])
    return frame.assign(ordered_at=pd.to_datetime(frame["ordered_at"], utc=True))


TRANSACTIONS = tx(
    ("o1", "a", "2023-06-15 10:00", 20.0, 2.0, "p1"),
    ("o1", "a", "2023-06-15 10:00", 10.0, 1.0, "p2"),
    ("o2", "a", "2024-05-01 09:00", 15.0, 1.0, "p1"),
    ("o3", "a", "2024-05-01 15:00", 30.0, 3.0, "p3"),  # same day as o2: one purchase day
    ("o2", "a", "2024-06-20 12:00", -15.0, -1.0, "p1"),  # a later refund of o2: a return, not a cancellation
    ("C1", "a", "2024-06-25 12:00", -10.0, -1.0, "p3"),  # a credit note: an order of negative lines only
    ("o9", "a", "2024-07-03 12:00", 99.0, 9.0, "p9"),  # after t: invisible
    ("o4", "b", "2024-06-10 12:00", 50.0, None, None),  # no quantity, no product
    ("o5", "c", "2024-06-01 08:00", 5.0, None, None),
    ("o6", "c", "2024-06-11 08:00", 5.0, None, None),
    ("o7", "c", "2024-06-26 08:00", 5.0, None, None),  # gaps 10 and 15 days
)


def test_activity_features_hand_computed():
    features = build_features(Events.from_frames(transactions=TRANSACTIONS), as_of=AS_OF, cfg=CFG)
    expected = pd.DataFrame({
        "customer_id": ["a", "b", "c"],
        "purchase_days_all": [2, 1, 3],
        "purchase_days_14d": [0, 0, 1],
        "purchase_days_30d": [0, 1, 3],
        "purchase_days_60d": [0, 1, 3],  # 2024-05-01 is 61 days before t
        "purchase_days_90d": [1, 1, 3],
        "purchase_days_180d": [1, 1, 3],
        "purchase_days_365d": [1, 1, 3],  # 2023-06-15 is 382 days before t
        "purchase_days_trend": [1.0, 1.0, 1.0],
        "gap_cv": [NAN, NAN, 2.5 / 12.5],  # gaps 10, 15: mean 12.5, population std 2.5
        "quantity_all": [7.0, NAN, NAN],
        "quantity_30d": [0.0, NAN, NAN],
        "quantity_90d": [4.0, NAN, NAN],
        "products_all": [3.0, NAN, NAN],
        "products_90d": [2.0, NAN, NAN],  # p1 and p3 on 2024-05-01
        "lines_per_order": [4 / 3, 1.0, 1.0],
        "cancellations_count": [1, 0, 0],
        "cancellation_share": [1 / 4, 0.0, 0.0],
        "returns_share": [2 / 6, 0.0, 0.0],
        "returns_value_share": [25 / 100, 0.0, 0.0],
        "gross_spend_all": [75.0, 50.0, 15.0],
        "gross_spend_30d": [0.0, 50.0, 15.0],
        "gross_spend_90d": [45.0, 50.0, 15.0],
        "history_censored": [1, 0, 0],  # a's first event is the data's first
        "season_purchase_days_last_year": [0, 0, 0],  # 2023-07-02 .. 2023-09-30: the data reach back to it
    })
    expected = expected.astype({c: ("str" if c == "customer_id" else "float64") for c in expected.columns})
    assert_frame_equal(features[list(expected.columns)].reset_index(drop=True), expected)
    assert features.loc[features["customer_id"] == "a", "monetary_all"].item() == 50.0


def test_same_season_is_nan_when_the_data_do_not_reach_back_a_year():
    recent = TRANSACTIONS[TRANSACTIONS["ordered_at"] >= pd.Timestamp("2024-01-01", tz="UTC")]
    features = build_features(Events.from_frames(transactions=recent), as_of=AS_OF, cfg=CFG)
    assert features["season_purchase_days_last_year"].isna().all()
    # the earliest event (a's, 2024-05-01 09:00) starts the data: a is flagged; c (06-01 08:00) is 30 days
    # and 23 hours later, b later still
    assert features.set_index("customer_id")["history_censored"].to_dict() == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_a_first_purchase_within_two_of_the_customers_own_gaps_of_the_data_start_may_be_a_cut_history():
    # Kaggle's Retail Transaction Data: customers buying every ~80 days made their first purchase on record 50 to
    # 100 days into the export, and 1,166 were told "a customer for only about 3.5 years": unknowable of them.
    transactions = tx(
        ("o1", "start", "2024-01-01 10:00", 5.0, 1.0, "p1"),  # the data's first event
        ("o2", "slow", "2024-02-15 10:00", 5.0, 1.0, "p1"),  # 45 days in, then every 90 days: 45 < 2 x 90
        ("o3", "slow", "2024-05-15 10:00", 5.0, 1.0, "p1"),
        ("o4", "fast", "2024-02-15 10:00", 5.0, 1.0, "p1"),  # 45 days in, then every 10 days: 45 > 30 and 2 x 10
        ("o5", "fast", "2024-02-25 10:00", 5.0, 1.0, "p1"),
        ("o6", "fast", "2024-03-06 10:00", 5.0, 1.0, "p1"),
        ("o7", "once", "2024-02-15 10:00", 5.0, 1.0, "p1"),  # one purchase day: no gap of its own, 30 days
    )
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=CFG)
    assert features.set_index("customer_id")["history_censored"].to_dict() == {
        "fast": 0.0, "once": 0.0, "slow": 1.0, "start": 1.0}


def test_net_spend_negative_from_returns_before_the_history_breaks_nothing():
    transactions = tx(
        ("r1", "a", "2024-01-05 10:00", -80.0, -2.0, "p1"),  # return of goods bought before the export
        ("o1", "a", "2024-03-01 10:00", 30.0, 1.0, "p2"),
    )
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=CFG)
    row = features.iloc[0]
    assert row["monetary_all"] == -50.0 and row["gross_spend_all"] == 30.0
    assert row["returns_value_share"] == 80 / 110 and row["cancellations_count"] == 1
    assert row["avg_order_value"] == -50.0
    numeric = [s.name for s in feature_specs(CFG) if s.kind == "numeric"]
    assert not np.isinf(features[numeric].to_numpy("float64")).any()


def test_every_activity_feature_has_a_description_direction_and_a_template_naming_itself():
    specs = [s for s in feature_specs(CFG) if s.family == "activity"]
    assert len(specs) == 24
    for spec in specs:
        assert spec.description and spec.direction in ("up", "down", "none")
        texts = [] if spec.reason is None else [phrase.text for phrase in spec.reason.variants()]
        assert all("{" not in text or f"{{{spec.name}" in text for text in texts), spec.name


def test_a_refund_row_of_an_order_lowers_net_spend_and_is_a_refund_not_a_cancellation_or_a_line():
    """The row `sources.transactions.refunds` adds for money refunded on an order: negative, at the order's time,
    without items or product. It lowers net spend and counts as a refund; the order, its lines, items and products
    are as bought."""
    transactions = tx(
        ("o1", "a", "2024-06-01 10:00", 30.0, 2.0, "p1"),
        ("o1", "a", "2024-06-01 10:00", 5.0, 1.0, "p2"),
        ("o1", "a", "2024-06-01 10:00", -12.5, None, None),
        ("o2", "b", "2024-06-02 10:00", 10.0, 1.0, "p1"),
    )
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=CFG).set_index("customer_id")
    a = features.loc["a"]
    assert (a["frequency_all"], a["monetary_all"], a["monetary_30d"]) == (1, 22.5, 22.5)
    assert (a["returns_count"], a["returns_value"], a["cancellations_count"]) == (1, 12.5, 0)
    assert (a["lines_per_order"], a["quantity_all"], a["products_all"], a["gross_spend_30d"]) == (2.0, 3.0, 2.0, 35.0)
    assert a["returns_value_share"] == 12.5 / 47.5
