"""The feature registry: names the other stages rely on, templates that format, derived dates."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import build_features, feature_names, feature_specs
from pipeline.features.registry import FAMILIES, MONEY_FEATURES, reason_context_frame, without_money_reasons
from pipeline.reasons import format_reasons, template_fields, top_reasons

AS_OF = dt.date(2024, 7, 1)
PLAYBOOK_NAMES = [
    "recency_days", "frequency_all", "frequency_90d", "monetary_365d", "monetary_all", "avg_order_value",
    "tenure_days", "gap_mean_days", "gap_last_days", "overdue_ratio", "spend_trend", "returns_count",
    "returns_value", "discount_share", "category_breadth", "top_category", "rfm_r_score", "rfm_f_score",
    "rfm_m_score", "rfm_segment", "nps_last", "nps_mean", "nps_category", "is_detractor", "is_promoter",
    "csat_last", "csat_mean", "review_mean", "low_ratings_count", "days_since_feedback", "has_feedback",
    "tickets_30d", "open_tickets", "first_response_hours_mean", "resolution_hours_mean", "unresolved_share",
    "late_deliveries", "lateness_days_mean", "undelivered_orders", "loyalty_enrolled", "loyalty_tier",
    "points_balance", "points_earned_90d", "points_redeemed_365d", "days_since_redemption", "points_to_next_tier",
    "days_since_signup", "region", "acquisition_channel", "btyd_p_alive", "btyd_expected_purchases",
]
CATEGORICAL = {"top_category", "rfm_segment", "nps_category", "loyalty_tier", "region", "acquisition_channel"}


def test_names_the_playbook_relies_on_exist():
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    names = feature_names(cfg)
    assert set(PLAYBOOK_NAMES) <= set(names)
    assert len(names) == len(set(names))
    assert {s.name for s in feature_specs(cfg) if s.kind == "categorical"} == CATEGORICAL


def test_list_follows_windows_and_btyd():
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, windows_days=[7, 60], btyd=False)
    names = feature_names(cfg)
    assert {"frequency_7d", "monetary_60d", "tickets_7d", "points_earned_60d", "points_redeemed_7d"} <= set(names)
    assert "frequency_90d" not in names and not any(n.startswith("btyd_") for n in names)


def test_specs_are_well_formed():
    for spec in feature_specs(FeaturesConfig(snapshots={"dates": [AS_OF]})):
        assert spec.family in FAMILIES and spec.kind in ("numeric", "categorical")
        assert spec.direction in ("up", "down", "none") and spec.description.endswith(".")
        if spec.kind == "categorical":
            assert spec.direction == "none"


def _one_customer_features(cfg: FeaturesConfig) -> pd.DataFrame:
    transactions = pd.DataFrame({
        "order_id": ["o1", "o2"], "customer_id": ["a", "a"],
        "ordered_at": pd.to_datetime(["2024-03-01", "2024-06-01"], utc=True), "amount": [10.0, 20.0],
        "category": ["books", "toys"],
    })
    feedback = pd.DataFrame({"customer_id": ["a"], "submitted_at": pd.to_datetime(["2024-06-11"], utc=True),
                             "kind": ["nps"], "score": [3.0]})
    loyalty = pd.DataFrame({"customer_id": ["a"], "occurred_at": pd.to_datetime(["2024-06-21"], utc=True),
                            "kind": ["redeem"], "points": [5.0]})
    events = Events.from_frames(transactions=transactions, feedback=feedback, loyalty_events=loyalty)
    return build_features(events, as_of=AS_OF, cfg=cfg).set_index("customer_id", drop=False)


def test_every_reason_phrase_formats_with_a_real_row():
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})  # BTYD on: NaN here (too few customers)
    frame = _one_customer_features(cfg)
    # the real row's columns, every value one every wording can state (1 day, 1 order, 100%, ...)
    stated = reason_context_frame(frame.assign(**{c: 1.0 for c in frame.columns if c not in CATEGORICAL | {"customer_id"}})
                                  .fillna({c: "gold" for c in CATEGORICAL}), AS_OF)
    known = set(stated.columns) | {"as_of"}
    for spec in feature_specs(cfg):
        if spec.reason is None:
            continue
        assert spec.kind == "numeric" or spec.reason.neutral is None, spec.name
        for phrase in spec.reason.variants():
            fields = template_fields(phrase.text)
            assert set(fields) <= known, (spec.name, set(fields) - known)
            text = format_reasons(phrase.text, fields, stated, as_of=AS_OF)[0]
            assert "{" not in text and "nan" not in text and "_" not in text, (spec.name, text)


@pytest.mark.parametrize(
    ("feature", "sentence"),
    [
        ("nps_last", "gave NPS 3 on 2024-06-11"),
        ("recency_days", "no order for 30 days (last on 2024-06-01)"),
        ("days_since_redemption", "has not redeemed points since 2024-06-21"),
        ("frequency_all", "their number of orders (2 orders) raises their predicted risk"),  # 2 is typical here
        ("tickets_90d", None),  # no tickets: "opened no support tickets" would be no reason
        ("btyd_p_alive", None),  # the fit failed (NaN): nothing to state
    ],
)
def test_registry_reasons_through_the_production_path(feature, sentence):
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    frame = _one_customer_features(cfg)
    contributions = pd.DataFrame({feature: [0.5]}, index=frame.index)
    result = top_reasons(contributions, frame, specs=feature_specs(cfg), as_of=AS_OF, n=1, context=reason_context_frame)
    if sentence is None:
        assert pd.isna(result["reason_1"].iloc[0])
    else:
        assert result["reason_1"].tolist() == [sentence]


def test_no_spend_in_a_window_is_not_said_as_no_purchase():
    """A free order (a trial invoice of 0) is a purchase: a customer with one in the window spent nothing, but
    "bought nothing in the last 365 days" beside "no order for 2 months" contradicted it (131 rows of a subscription
    export's list)."""
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    frame = _one_customer_features(cfg).assign(gross_spend_365d=0.0)
    contributions = pd.DataFrame({"gross_spend_365d": [0.5]}, index=frame.index)
    result = top_reasons(contributions, frame, specs=feature_specs(cfg), as_of=AS_OF, n=1, context=reason_context_frame)
    assert result["reason_1"].tolist() == ["spent nothing on purchases in the last 365 days"]


def test_a_quick_reply_is_not_said_as_a_wait():
    """'waited less than an hour on average for a first reply' read as a complaint where the model only found that
    the reply time raises the risk: a wait is said as one when it is longer than the typical customer's."""
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    one = _one_customer_features(cfg)
    frame = pd.concat([one, one], ignore_index=True).assign(
        customer_id=["quick", "slow"], first_response_hours_mean=[0.5, 30.0], resolution_hours_mean=[2.0, 80.0])
    for feature, quick, slow in [
        ("first_response_hours_mean", "their average wait for a first reply (less than an hour) raises their "
         "predicted risk", "waited 30 hours on average for a first reply, longer than the typical customer"),
        ("resolution_hours_mean", "the average time to close their support tickets (2 hours) raises their predicted "
         "risk", "their support tickets took 3 days on average to close, longer than the typical customer's"),
    ]:
        contributions = pd.DataFrame({feature: [0.5, 0.5]}, index=frame.index)
        result = top_reasons(contributions, frame, specs=feature_specs(cfg), as_of=AS_OF, n=1,
                             context=reason_context_frame, typical={feature: 10.0})
        assert result["reason_1"].tolist() == [quick, slow]


def test_reason_context_frame_adds_date_columns():
    frame = pd.DataFrame({"recency_days": [30.0, np.nan], "days_since_feedback": [0.5, 10.0]})
    result = reason_context_frame(frame, AS_OF)
    assert result["last_order_date"].tolist()[0] == "2024-06-01" and pd.isna(result["last_order_date"].iloc[1])
    assert result["last_feedback_date"].tolist() == ["2024-06-30", "2024-06-21"]
    assert list(frame.columns) == ["recency_days", "days_since_feedback"]  # input untouched


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"windows_days": [0]}, "windows_days must be a non-empty list of positive day counts"),
        ({"loyalty_tiers": {"gold": 10, "silver": 5}}, "loyalty_tiers must map tier names to strictly increasing"),
        ({"loyalty_tiers": {"gold": 10, "Gold ": 20}}, "loyalty_tiers names 'gold' and 'Gold ' are one tier: tier "
                                                        "names are matched whatever their case and blanks"),
        ({"loyalty_tiers": {" ": 10}}, "loyalty_tiers has a blank tier name"),
    ],
)
def test_config_rejects_bad_feature_settings(bad, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        FeaturesConfig(snapshots={"dates": [AS_OF]}, **bad)


def test_the_money_features_are_every_feature_whose_value_is_money():
    """An export without money (amount by `constants`) loses the sentences of exactly these features."""
    specs = feature_specs(FeaturesConfig(snapshots={"dates": [dt.date(2024, 1, 1)]}))
    money = {s.name for s in specs if MONEY_FEATURES.fullmatch(s.name)}
    about_money = {s.name for s in specs if re.search(r"\bspend\b|\bValue of\b|value bought", s.description)
                   and s.name != "top_category"}  # the category bought most: by lines when there is no money
    assert money == about_money and len(money) >= 10
    stripped = without_money_reasons(specs)
    assert {s.name for s in stripped if s.reason is None} == money | {s.name for s in specs if s.reason is None}
