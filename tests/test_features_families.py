"""Hand-computed features of each family on tiny fixtures (snapshot t = 2024-07-01 00:00 UTC)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.config import FeaturesConfig
from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.features import build_features, feature_names
from pipeline.features.rfm import quintile_score

AS_OF = dt.date(2024, 7, 1)
NAN = np.nan
CFG = FeaturesConfig(snapshots={"dates": [AS_OF]}, windows_days=[30, 90], btyd=False)


def ts(text: str | None) -> pd.Timestamp | None:
    return None if text is None else pd.Timestamp(text, tz="UTC")


def tx(*rows) -> pd.DataFrame:
    """Rows of (order_id, customer_id, ordered_at, amount, category, discount, promised, delivered)."""
    columns = ["order_id", "customer_id", "ordered_at", "amount", "category", "discount",
               "promised_delivery_at", "delivered_at"]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("ordered_at", "promised_delivery_at", "delivered_at"):
        frame[column] = frame[column].map(ts)
    return frame


def expected_frame(columns: dict[str, list], *, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    return frame.astype({c: ("str" if c in (*categorical, "customer_id") else "float64") for c in frame.columns})


def select(features: pd.DataFrame, expected: pd.DataFrame) -> pd.DataFrame:
    return features[list(expected.columns)].reset_index(drop=True)


RFM_TRANSACTIONS = tx(
    ("o1", "a", "2024-01-01 10:00", 30.0, "books", 0.0, None, None),
    ("o1", "a", "2024-01-01 10:00", 20.0, "toys", 5.0, None, None),
    ("o2", "a", "2024-05-01", 50.0, "books", 0.0, None, None),
    ("o1", "a", "2024-06-20", -20.0, "toys", None, None, None),  # refund line of o1, at its own time
    ("o3", "a", "2024-06-16 12:00", 40.0, "toys", None, None, None),
    ("o4", "a", "2024-07-05", 99.0, "games", 0.0, None, None),  # after t: invisible
    ("o5", "b", "2023-08-01", 100.0, "books", None, None, None),
    ("o6", "c", "2023-01-01", 10.0, "books", None, None, None),  # before the lookback: not eligible
)


def test_rfm_features_hand_computed():
    features = build_features(Events.from_frames(transactions=RFM_TRANSACTIONS), as_of=AS_OF, cfg=CFG)
    gap_mean_a = 167 / 2  # purchase days 2024-01-01, 05-01, 06-16: 2 gaps
    # overdue: the population's gap is a's (the only customer with 2+ purchase days); a has 2 gaps of
    # its own, b none (so b's expected gap is the population's)
    expected = expected_frame({
        "customer_id": ["a", "b"],
        "recency_days": [14.5, 335.0],  # the refund on 06-20 is not a purchase
        "frequency_all": [3, 1],
        "frequency_30d": [1, 0],
        "frequency_90d": [2, 0],
        "monetary_all": [120.0, 100.0],
        "monetary_30d": [20.0, 0.0],  # 40 - 20 refund
        "monetary_90d": [70.0, 0.0],
        "avg_order_value": [40.0, 100.0],
        "tenure_days": [182 - 10 / 24, 335.0],
        "gap_mean_days": [gap_mean_a, NAN],
        "gap_last_days": [46.0, NAN],
        "overdue_ratio": [14.5 / gap_mean_a, 335.0 / gap_mean_a],
        "spend_trend": [1.0, NAN],  # 70 in the last 90 days, nothing in the 90 before
        "returns_count": [1, 0],
        "returns_value": [20.0, 0.0],
        "discount_share": [0.5, NAN],  # o1 discounted, o2 not, o3 unknown; b unknown
        "category_breadth": [2, 1],
        "top_category": ["books", "books"],  # books 80 vs toys 60
        "rfm_r_score": [5, 3],
        "rfm_f_score": [5, 3],
        "rfm_m_score": [5, 3],
        "rfm_segment": ["champions", "need_attention"],
    }, categorical=("top_category", "rfm_segment"))
    assert_frame_equal(select(features, expected), expected)


def test_orders_count_once_and_order_lines_are_deduplicated():
    transactions = tx(
        ("o1", "a", "2024-06-01", 10.0, "x", None, None, None),
        ("o1", "a", "2024-06-01", 15.0, "y", None, None, None),
        ("o1", "a", "2024-06-03", 5.0, "x", None, None, None),  # a later purchase line of the same order
        ("o2", "a", "2024-06-01", 1.0, None, None, None, None),  # another order at the same instant
    )
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a"], "frequency_all": [2], "monetary_all": [31.0], "recency_days": [28.0],
        # two orders on 06-01 are one visit; the later purchase line of o1 makes 06-03 a purchase day
        "gap_mean_days": [2.0], "gap_last_days": [2.0], "overdue_ratio": [14.0], "category_breadth": [2],
        "top_category": ["x"],  # x 15 vs y 15: a tie goes to the first name
    }, categorical=("top_category",))
    assert_frame_equal(select(features, expected), expected)


def test_goods_given_back_at_no_price_are_a_return_not_an_order():
    """A cancelled line priced 0 (quantity -1, amount 0) after the last purchase: no order, no purchase day, no
    later recency; it counts as a return line worth 0. A free item bought (quantity 1, amount 0) is an order."""
    transactions = tx(
        ("o1", "a", "2024-06-01", 10.0, "x", None, None, None),
        ("C2", "a", "2024-06-21", 0.0, "x", None, None, None),
        ("o3", "b", "2024-06-11", 0.0, "x", None, None, None),
    ).assign(quantity=[1.0, -1.0, 1.0])
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b"], "recency_days": [30.0, 20.0], "frequency_all": [1, 1], "monetary_all": [10.0, 0.0],
        "returns_count": [1, 0], "returns_value": [0.0, 0.0], "returns_share": [0.5, 0.0],
    })
    assert_frame_equal(select(features, expected), expected)


def test_quintile_scores_and_ties():
    import polars as pl

    values = pl.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10]})
    scores = values.select(quintile_score(pl.col("x"), higher_is_better=True))["x"].to_list()
    assert scores == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5]
    low_is_good = values.select(quintile_score(pl.col("x"), higher_is_better=False))["x"].to_list()
    assert low_is_good == [5, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


FEEDBACK = pd.DataFrame(
    [
        ("a", "2024-03-01", "nps", 9.0),
        ("a", "2024-06-01", "nps", 4.0),
        ("a", "2024-06-10", "csat", 2.0),
        ("a", "2024-05-01", "review", 5.0),
        ("a", "2024-06-20", "review", 1.0),
        ("a", "2024-07-02", "nps", 10.0),  # after t
        ("c", "2024-06-11", "nps", 8.0),
        ("c", "2024-06-11", "csat", 5.0),
    ],
    columns=["customer_id", "submitted_at", "kind", "score"],
).assign(submitted_at=lambda f: f["submitted_at"].map(ts))

ORDERS_ABC = tx(
    ("o1", "a", "2024-06-01", 10.0, None, None, None, None),
    ("o2", "b", "2024-06-01", 10.0, None, None, None, None),
    ("o3", "c", "2024-06-01", 10.0, None, None, None, None),
)


def test_feedback_features_hand_computed():
    events = Events.from_frames(transactions=ORDERS_ABC, feedback=FEEDBACK)
    features = build_features(events, as_of=AS_OF, cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b", "c"],
        "nps_last": [4, NAN, 8],
        "nps_mean": [6.5, NAN, 8],
        "nps_category": ["detractor", None, "passive"],
        "is_detractor": [1, 0, 0],
        "is_promoter": [0, 0, 0],
        "days_since_nps": [30, NAN, 20],
        "csat_last": [2, NAN, 5],
        "csat_mean": [2, NAN, 5],
        "review_mean": [3, NAN, NAN],
        "low_ratings_count": [3, 0, 0],  # NPS 4, CSAT 2, review 1
        "days_since_feedback": [11, NAN, 20],
        "has_feedback": [1, 0, 1],
    }, categorical=("nps_category",))
    assert_frame_equal(select(features, expected), expected)


def test_latest_nps_on_the_same_instant_is_the_higher_score():
    feedback = pd.DataFrame({
        "customer_id": ["a", "a"], "submitted_at": [ts("2024-06-01")] * 2, "kind": ["nps"] * 2, "score": [10.0, 3.0],
    })
    features = build_features(Events.from_frames(transactions=ORDERS_ABC, feedback=feedback), as_of=AS_OF, cfg=CFG)
    assert features.loc[0, "nps_last"] == 10.0 and features.loc[0, "nps_category"] == "promoter"
    assert features.loc[0, "is_promoter"] == 1.0


def test_service_features_hand_computed():
    tickets = pd.DataFrame(
        [
            ("t1", "a", "2024-06-10", "2024-06-12", "2024-06-10 02:00", True),
            ("t2", "a", "2024-06-25", "2024-07-03", "2024-06-25 06:00", True),  # closes after t: open at t
            ("t3", "a", "2024-03-01", None, "2024-07-02", None),  # open, reply after t
            ("t4", "a", "2024-01-10", "2024-01-11", "2024-01-10 04:00", False),  # closed unresolved
            ("t5", "a", "2024-07-01", None, None, None),  # opened at t: invisible
        ],
        columns=["ticket_id", "customer_id", "opened_at", "closed_at", "first_response_at", "resolved"],
    )
    for column in ("opened_at", "closed_at", "first_response_at"):
        tickets[column] = tickets[column].map(ts)
    tickets["resolved"] = tickets["resolved"].astype("boolean")
    transactions = tx(
        ("o1", "a", "2024-06-01", 10.0, None, None, "2024-06-05", "2024-06-07 12:00"),  # 2.5 days late
        ("o2", "a", "2024-06-20", 10.0, None, None, "2024-06-25", "2024-07-02"),  # overdue at t: 6 days
        ("o3", "a", "2024-06-28", 10.0, None, None, "2024-07-03", None),  # in transit, not late yet
        ("o4", "a", "2024-05-01", 10.0, None, None, "2024-05-05", "2024-05-04"),  # on time
        ("o5", "b", "2024-06-01", 10.0, None, None, None, None),
        ("o6", "c", "2024-06-01", 10.0, None, None, "2024-06-05", "2024-06-04"),
        ("o6", "c", "2024-06-01", 5.0, None, None, "2024-06-05", None),  # one line undelivered: order undelivered
    )
    features = build_features(Events.from_frames(transactions=transactions, support_tickets=tickets), as_of=AS_OF,
                              cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b", "c"],
        "tickets_30d": [2, 0, 0],
        "tickets_90d": [2, 0, 0],
        "open_tickets": [2, 0, 0],
        "first_response_hours_mean": [4.0, NAN, NAN],  # 2, 6, 4 hours
        "resolution_hours_mean": [36.0, NAN, NAN],  # 48 and 24 hours
        "unresolved_share": [0.75, NAN, NAN],
        "late_deliveries": [2, 0, 1],
        "lateness_days_mean": [4.25, NAN, 26.0],
        "undelivered_orders": [2, 0, 1],
    })
    assert_frame_equal(select(features, expected), expected)


def test_a_ticket_resolved_by_status_without_closed_at_is_open_until_its_export_and_resolved_after_it():
    # Customer a: t1 resolved by status, no closed_at; its export's newest row is on D = 2024-06-20 12:00. t2 was
    # closed with a closing time (30 hours). Customer b: only a status-resolved ticket, from the same export.
    tickets = pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3"],
        "customer_id": ["a", "a", "b"],
        "opened_at": [ts("2024-06-01"), ts("2024-06-02"), ts("2024-06-10")],
        "closed_at": [None, ts("2024-06-03 06:00"), None],
        "resolved": pd.array([True, True, True], dtype="boolean"),
        "status_known_at": [ts("2024-06-20 12:00"), None, ts("2024-06-20 12:00")],
    })
    transactions = tx(("o1", "a", "2024-05-01", 10.0, None, None, None, None),
                      ("o2", "b", "2024-05-01", 10.0, None, None, None, None))
    events = Events.from_frames(transactions=transactions, support_tickets=tickets)
    columns = ["customer_id", "open_tickets", "unresolved_share", "resolution_hours_mean"]
    before, on_d, after = (build_features(events, as_of=day, cfg=CFG)[columns]
                           for day in (dt.date(2024, 6, 15), dt.date(2024, 6, 20), dt.date(2024, 6, 21)))
    # Before D (and on D: its status is known only from 12:00) t1 is open, t3 too; t2 is closed resolved.
    expected_open = expected_frame({"customer_id": ["a", "b"], "open_tickets": [1.0, 1.0],
                                    "unresolved_share": [0.5, 1.0], "resolution_hours_mean": [30.0, NAN]})
    assert_frame_equal(before, expected_open)
    assert_frame_equal(on_d, expected_open)
    # After D both are closed resolved; their unknown resolution time leaves the mean to t2 alone.
    assert_frame_equal(after, expected_frame({"customer_id": ["a", "b"], "open_tickets": [0.0, 0.0],
                                              "unresolved_share": [0.0, 0.0], "resolution_hours_mean": [30.0, NAN]}))


def test_loyalty_features_hand_computed():
    loyalty = pd.DataFrame(
        [
            ("a", "2024-01-01", "enroll", None, "bronze"),
            ("a", "2024-02-01", "earn", 600.0, None),
            ("a", "2024-03-01", "tier_change", None, "silver"),
            ("a", "2024-06-15", "earn", 300.0, None),
            ("a", "2024-06-20", "redeem", 200.0, None),
            ("a", "2024-06-25", "expire", -50.0, None),  # a negative sign in the source: still 50 spent
            ("a", "2024-07-05", "earn", 1000.0, None),  # after t
            ("c", "2024-05-01", "earn", 2500.0, None),  # no tier stated: gold from the balance
            ("d", "2024-05-01", "tier_change", None, "platinum"),
            ("d", "2024-05-02", "earn", 100.0, None),
        ],
        columns=["customer_id", "occurred_at", "kind", "points", "tier"],
    ).assign(occurred_at=lambda f: f["occurred_at"].map(ts))
    transactions = tx(*[(f"o{c}", c, "2024-06-01", 10.0, None, None, None, None) for c in "abcd"])
    features = build_features(Events.from_frames(transactions=transactions, loyalty_events=loyalty), as_of=AS_OF,
                              cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b", "c", "d"],
        "loyalty_enrolled": [1, 0, 1, 1],
        "loyalty_tier": ["silver", None, "gold", "platinum"],
        "points_balance": [650, 0, 2500, 100],
        "points_earned_30d": [300, 0, 0, 0],
        "points_earned_90d": [300, 0, 2500, 100],
        "points_redeemed_30d": [200, 0, 0, 0],
        "points_redeemed_90d": [200, 0, 0, 0],
        "days_since_redemption": [11, NAN, NAN, NAN],
        "points_to_next_tier": [1350, NAN, 2500, NAN],  # gold 2000 - 650; platinum 5000 - 2500; top tier
    }, categorical=("loyalty_tier",))
    assert_frame_equal(select(features, expected), expected)


def loyalty_frame(*rows) -> pd.DataFrame:
    """Rows of (customer_id, occurred_at, kind, points, tier)."""
    return pd.DataFrame(rows, columns=["customer_id", "occurred_at", "kind", "points", "tier"]).assign(
        occurred_at=lambda f: f["occurred_at"].map(ts))


def test_signed_points_earn_and_enroll_keep_their_sign_redeem_and_expire_always_subtract():
    """LoyaltyLion writes a refund's reversal and a manual deduction as `earn` rows with negative points, and
    Smile's "Joined program" row carries the sign-up bonus: a negative earn lowers the balance (not counted as
    earned or redeemed), enroll points count like an earn; redeem and expire subtract whatever their sign."""
    loyalty = loyalty_frame(
        ("a", "2024-01-01", "enroll", 100.0, None),  # sign-up bonus: +100
        ("a", "2024-06-10", "earn", 300.0, None),
        ("a", "2024-06-13", "earn", -300.0, None),  # the order's refund reverses its points
        ("a", "2024-06-20", "redeem", -50.0, None),  # written negative: still 50 spent
        ("a", "2024-06-25", "expire", -20.0, None),
        ("a", "2024-06-26", "earn", -10.0, None),  # a manual deduction
        ("a", "2024-07-05", "earn", -1000.0, None),  # after t
        ("b", "2024-06-15", "enroll", 100.0, None),
        ("b", "2024-06-16", "earn", 700.0, None),
        ("b", "2024-06-20", "redeem", 500.0, None),  # written positive (Smile): 500 spent
        ("b", "2024-06-21", "tier_change", 0.0, "silver"),
    )
    transactions = tx(*[(f"o{c}", c, "2024-06-01", 10.0, None, None, None, None) for c in "abc"])
    features = build_features(Events.from_frames(transactions=transactions, loyalty_events=loyalty), as_of=AS_OF,
                              cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b", "c"],
        "loyalty_enrolled": [1, 1, 0],
        "points_balance": [20, 300, 0],  # a: 100 + 300 - 300 - 50 - 20 - 10; b: 100 + 700 - 500
        "points_earned_30d": [300, 800, 0],  # points added (like gross spend, before reversals)
        "points_earned_90d": [300, 800, 0],
        "points_redeemed_30d": [50, 500, 0],
        "days_since_redemption": [11, 11, NAN],
        "points_to_next_tier": [480, 1700, NAN],  # a: bronze (from the balance) -> silver 500; b: silver -> gold 2000
    })
    assert_frame_equal(select(features, expected), expected)


def test_tier_names_match_the_configured_tiers_whatever_their_case_and_blanks():
    """An export writes "Gold" or " silver " where features.loyalty_tiers says gold, silver: the same tier (the
    configured name is the feature's value), so points to the next tier are known; a tier the configuration does
    not name stays as written, without a next threshold."""
    loyalty = loyalty_frame(
        ("a", "2024-02-01", "earn", 600.0, None),
        ("a", "2024-03-01", "tier_change", None, " Silver "),
        ("b", "2024-02-01", "earn", 2500.0, None),
        ("b", "2024-03-01", "tier_change", None, "GOLD"),
        ("c", "2024-02-01", "earn", 100.0, None),
        ("c", "2024-03-01", "tier_change", None, "Bronze"),
        ("d", "2024-02-01", "earn", 100.0, None),
        ("d", "2024-03-01", "tier_change", None, "Diamond"),
        ("e", "2024-02-01", "earn", 700.0, None),  # no tier stated: silver from the balance, as configured
    )
    transactions = tx(*[(f"o{c}", c, "2024-06-01", 10.0, None, None, None, None) for c in "abcde"])
    features = build_features(Events.from_frames(transactions=transactions, loyalty_events=loyalty), as_of=AS_OF,
                              cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "loyalty_tier": ["silver", "gold", "bronze", "Diamond", "silver"],
        "points_to_next_tier": [1400, 2500, 400, NAN, 1300],  # gold 2000 - 600; platinum 5000 - 2500; silver 500 - 100
    }, categorical=("loyalty_tier",))
    assert_frame_equal(select(features, expected), expected)


def test_attribute_features_hand_computed():
    customers = pd.DataFrame({
        "customer_id": ["a", "c"],
        "signup_at": [ts("2023-07-01"), ts("2024-08-01")],  # c "signs up" after t: unknown at t
        "region": ["north", "south"],
        "acquisition_channel": ["ads", None],
    })
    events = Events.from_frames(transactions=ORDERS_ABC, customers=customers)
    features = build_features(events, as_of=AS_OF, cfg=CFG)
    expected = expected_frame({
        "customer_id": ["a", "b", "c"],
        "days_since_signup": [366, NAN, NAN],
        "region": ["north", None, None],
        "acquisition_channel": ["ads", None, None],
    }, categorical=("region", "acquisition_channel"))
    assert_frame_equal(select(features, expected), expected)


def test_customer_without_feedback_tickets_loyalty_or_attributes_has_documented_defaults():
    """Counts and flags 0, points 0, unknown values NaN (numeric) or null (categorical)."""
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})  # default windows, BTYD on
    features = build_features(Events.from_frames(transactions=ORDERS_ABC.iloc[:1]), as_of=AS_OF, cfg=cfg)
    row = features.iloc[0]
    zero = ["is_detractor", "is_promoter", "low_ratings_count", "has_feedback", "open_tickets", "late_deliveries",
            "undelivered_orders", "loyalty_enrolled", "points_balance", "returns_count", "returns_value",
            "category_breadth", *[c for c in features.columns if c.startswith(("tickets_", "points_earned_",
                                                                                  "points_redeemed_"))]]
    unknown = ["nps_last", "nps_mean", "days_since_nps", "csat_last", "csat_mean", "review_mean",
               "days_since_feedback", "first_response_hours_mean", "resolution_hours_mean", "unresolved_share",
               "lateness_days_mean", "days_since_redemption", "points_to_next_tier", "days_since_signup",
               "discount_share", "gap_mean_days", "gap_last_days",
               "btyd_p_alive", "btyd_expected_purchases"]  # one customer: too few to fit BG/NBD
    null = ["nps_category", "loyalty_tier", "region", "acquisition_channel", "top_category"]
    assert (row[zero] == 0).all(), row[zero][row[zero] != 0]
    assert row[unknown].isna().all(), row[unknown][row[unknown].notna()]
    assert row[null].isna().all()
    # no customer with two purchase days: the expected gap is the median tenure, here the customer's own
    assert row["overdue_ratio"] == pytest.approx(1.0)
    assert set(zero) | set(unknown) | set(null) | {"customer_id"} <= set(features.columns)


def test_output_columns_and_dtypes():
    features = build_features(Events.from_frames(transactions=RFM_TRANSACTIONS), as_of=AS_OF, cfg=CFG)
    assert list(features.columns) == ["customer_id", *feature_names(CFG)]
    categorical = {"customer_id", "top_category", "rfm_segment", "nps_category", "loyalty_tier", "region",
                   "acquisition_channel"}
    assert {c: str(t) for c, t in features.dtypes.items() if c in categorical} == dict.fromkeys(categorical, "str")
    assert (features.drop(columns=list(categorical)).dtypes == "float64").all()
    assert features["customer_id"].is_monotonic_increasing


def test_no_transactions_gives_an_empty_typed_table():
    features = build_features(Events.from_frames(), as_of=AS_OF, cfg=CFG)
    assert features.empty and list(features.columns) == ["customer_id", *feature_names(CFG)]
    assert features["recency_days"].dtype == "float64" and features["rfm_segment"].dtype == "str"


def test_repeated_customer_attributes_are_an_error():
    customers = pd.DataFrame({"customer_id": ["a", "a"], "region": ["north", "south"]})
    with pytest.raises(FeatureError, match="repeated customer_id values \\(e.g. 'a'\\)"):
        build_features(Events.from_frames(transactions=ORDERS_ABC, customers=customers), as_of=AS_OF, cfg=CFG)


def test_build_features_does_not_mutate_its_input():
    events = Events.from_frames(transactions=RFM_TRANSACTIONS, feedback=FEEDBACK)
    before = {name: frame.copy() for name, frame in events.items()}
    build_features(events, as_of=AS_OF, cfg=CFG)
    for name, frame in events.items():
        assert_frame_equal(frame, before[name])
