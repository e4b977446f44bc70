"""The feature registry: every feature's name, family, kind, plain-words description and direction.

One list, `feature_specs(cfg)`, shared by training and scoring; `build_features` returns exactly
these columns in this order (after `customer_id`). The list depends on `cfg.windows_days`
(windowed features) and `cfg.btyd` (BTYD family on or off).

`direction` says whether a higher value means more churn risk ("up"), less ("down") or neither
("none"). `reason` is a `str.format` template for the plain-words reason shown to marketing,
formatted with `reason_context(row, as_of)`: all feature values of the customer's row, `as_of`,
and the dates derived in `reason_context_frame` (last_order_date, last_nps_date,
last_feedback_date, last_redemption_date).

Null semantics (a customer with no feedback, no tickets, no loyalty events, no attributes):
counts are 0, 0/1 flags are 0, amounts of points are 0, and values that are unknown are NaN
(numeric) or null (categorical): e.g. nps_last NaN, nps_category null, days_since_feedback NaN,
first_response_hours_mean NaN, unresolved_share NaN, loyalty_tier null, points_to_next_tier NaN,
days_since_redemption NaN, region null. Each description says which applies.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from pipeline.config import FeaturesConfig

Kind = Literal["numeric", "categorical"]
Direction = Literal["up", "down", "none"]
FAMILIES = ("rfm", "feedback", "service", "loyalty", "attributes", "btyd")
TREND_DAYS = 90  # spend_trend compares the last TREND_DAYS with the TREND_DAYS before
RFM_SEGMENTS = (
    "champions", "loyal", "potential_loyalist", "new", "promising", "need_attention",
    "about_to_sleep", "at_risk", "cant_lose", "hibernating", "lost",
)


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: what it is called, where it comes from, what it means and which way it points."""

    name: str
    family: str
    kind: Kind
    description: str
    direction: Direction
    reason: str | None = None


def _n(name, family, description, direction, reason=None) -> FeatureSpec:
    return FeatureSpec(name, family, "numeric", description, direction, reason)


def _c(name, family, description, reason=None) -> FeatureSpec:
    return FeatureSpec(name, family, "categorical", description, "none", reason)


def _rfm(windows: list[int]) -> list[FeatureSpec]:
    return [
        _n("recency_days", "rfm", "Days since the last purchase.", "up",
           "no order for {recency_days:.0f} days (last on {last_order_date})"),
        _n("frequency_all", "rfm", "Number of orders ever placed.", "down",
           "only {frequency_all:.0f} orders so far"),
        *[_n(f"frequency_{w}d", "rfm", f"Number of orders in the last {w} days.", "down",
             f"{{frequency_{w}d:.0f}} orders in the last {w} days") for w in windows],
        _n("monetary_all", "rfm", "Net spend ever (purchases minus returns).", "down",
           "spent {monetary_all:,.2f} in total"),
        *[_n(f"monetary_{w}d", "rfm", f"Net spend in the last {w} days.", "down",
             f"spent {{monetary_{w}d:,.2f}} in the last {w} days") for w in windows],
        _n("avg_order_value", "rfm", "Net spend per order.", "down",
           "average order worth {avg_order_value:,.2f}"),
        _n("tenure_days", "rfm", "Days since the first purchase.", "down",
           "a customer for only {tenure_days:.0f} days"),
        _n("gap_mean_days", "rfm", "Average days between purchase days (several orders on one day count as one "
           "visit; NaN with fewer than 2 purchase days).", "up",
           "buys only every {gap_mean_days:.0f} days on average"),
        _n("gap_last_days", "rfm", "Days between the last two purchase days (NaN with fewer than 2 purchase days).",
           "up", "waited {gap_last_days:.0f} days between their last two purchase days"),
        _n("overdue_ratio", "rfm",
           "Days since the last purchase divided by the expected gap between purchase days: the customer's "
           "average gap shrunk toward the population's typical gap (fully the population's with one purchase "
           "day); above 1: the next visit is late. Always finite, at most recency_days.", "up",
           "no order for {recency_days:.0f} days, {overdue_ratio:.1f}x the gap expected between their visits"),
        _n("spend_trend", "rfm",
           f"Spend in the last {TREND_DAYS} days against the {TREND_DAYS} days before, from -1 (stopped "
           "spending) to +1 (only recent spend); NaN when both are zero.", "down",
           f"spending is falling (trend {{spend_trend:+.2f}}: last {TREND_DAYS} days vs the {TREND_DAYS} before)"),
        _n("returns_count", "rfm", "Number of returned or refunded order lines (0 if none).", "up",
           "returned {returns_count:.0f} items"),
        _n("returns_value", "rfm", "Value of returns and refunds (0 if none).", "up",
           "returned goods worth {returns_value:,.2f}"),
        _n("discount_share", "rfm", "Share of orders bought with a discount (NaN when discounts are unknown).",
           "up", "{discount_share:.0%} of their orders used a discount"),
        _n("category_breadth", "rfm", "Number of product categories bought (0 when unknown).", "down",
           "buys from only {category_breadth:.0f} categories"),
        _c("top_category", "rfm", "Category with the highest spend (null when unknown).",
           "mostly buys {top_category}"),
        _n("rfm_r_score", "rfm", "Recency quintile among active customers, 5 = most recent.", "down",
           "recency score {rfm_r_score:.0f} of 5"),
        _n("rfm_f_score", "rfm", "Order-count quintile among active customers, 5 = most orders.", "down",
           "frequency score {rfm_f_score:.0f} of 5"),
        _n("rfm_m_score", "rfm", "Spend quintile among active customers, 5 = highest spend.", "down",
           "spend score {rfm_m_score:.0f} of 5"),
        _c("rfm_segment", "rfm", f"RFM segment from the R and F scores: {', '.join(RFM_SEGMENTS)}.",
           "in the '{rfm_segment}' RFM segment"),
    ]


def _feedback() -> list[FeatureSpec]:
    return [
        _n("nps_last", "feedback", "Latest NPS answer, 0-10 (NaN if never answered).", "down",
           "gave NPS {nps_last:.0f} on {last_nps_date}"),
        _n("nps_mean", "feedback", "Average NPS answer (NaN if never answered).", "down",
           "average NPS {nps_mean:.1f}"),
        _c("nps_category", "feedback", "Latest NPS as promoter (9-10), passive (7-8) or detractor (0-6); "
           "null if never answered.", "an NPS {nps_category}"),
        _n("is_detractor", "feedback", "1 if the latest NPS is 0-6, else 0 (0 if never answered).", "up",
           "is a detractor: gave NPS {nps_last:.0f} on {last_nps_date}"),
        _n("is_promoter", "feedback", "1 if the latest NPS is 9-10, else 0 (0 if never answered).", "down",
           "not an NPS promoter"),
        _n("days_since_nps", "feedback", "Days since the latest NPS answer (NaN if never answered).", "none"),
        _n("csat_last", "feedback", "Latest CSAT rating, 1-5 (NaN if none).", "down",
           "rated their last support contact {csat_last:.0f} of 5"),
        _n("csat_mean", "feedback", "Average CSAT rating (NaN if none).", "down",
           "average satisfaction {csat_mean:.1f} of 5"),
        _n("review_mean", "feedback", "Average review stars, 1-5 (NaN if none).", "down",
           "average review {review_mean:.1f} stars"),
        _n("low_ratings_count", "feedback", "Number of low ratings: NPS 0-6, CSAT or review 1-2 (0 if none).", "up",
           "left {low_ratings_count:.0f} low ratings"),
        _n("days_since_feedback", "feedback", "Days since any feedback (NaN if none).", "none",
           "last feedback on {last_feedback_date}"),
        _n("has_feedback", "feedback", "1 if the customer ever gave feedback, else 0.", "none"),
    ]


def _service(windows: list[int]) -> list[FeatureSpec]:
    return [
        *[_n(f"tickets_{w}d", "service", f"Support tickets opened in the last {w} days (0 if none).", "up",
             f"opened {{tickets_{w}d:.0f}} support tickets in the last {w} days") for w in windows],
        _n("open_tickets", "service", "Support tickets still open (0 if none).", "up",
           "{open_tickets:.0f} support tickets still open"),
        _n("first_response_hours_mean", "service", "Average hours to a first reply (NaN without answered tickets).",
           "up", "waited {first_response_hours_mean:.0f} hours on average for a first reply"),
        _n("resolution_hours_mean", "service", "Average hours to close a ticket (NaN without closed tickets).",
           "up", "tickets took {resolution_hours_mean:.0f} hours on average to close"),
        _n("unresolved_share", "service", "Share of tickets open or closed unresolved (NaN without tickets).",
           "up", "{unresolved_share:.0%} of their support tickets are unresolved"),
        _n("late_deliveries", "service",
           "Orders delivered after the promised date, or still undelivered past it (0 if none).", "up",
           "{late_deliveries:.0f} late deliveries, {lateness_days_mean:.1f} days late on average"),
        _n("lateness_days_mean", "service", "Average days late of the late deliveries (NaN if none late).", "up",
           "deliveries arrived {lateness_days_mean:.1f} days late on average"),
        _n("undelivered_orders", "service",
           "Orders with a promised delivery date not delivered yet (0 if none).", "up",
           "{undelivered_orders:.0f} orders not delivered yet"),
    ]


def _loyalty(windows: list[int]) -> list[FeatureSpec]:
    return [
        _n("loyalty_enrolled", "loyalty", "1 if the customer has any loyalty programme event, else 0.", "down",
           "not in the loyalty programme"),
        _c("loyalty_tier", "loyalty", "Latest loyalty tier stated by an event, else the tier the points balance "
           "reaches (null if not enrolled).", "in loyalty tier {loyalty_tier}"),
        _n("points_balance", "loyalty", "Points earned minus redeemed and expired (0 if not enrolled).", "down",
           "has {points_balance:,.0f} unused points"),
        *[_n(f"points_earned_{w}d", "loyalty", f"Points earned in the last {w} days (0 if none).", "down",
             f"earned {{points_earned_{w}d:,.0f}} points in the last {w} days") for w in windows],
        *[_n(f"points_redeemed_{w}d", "loyalty", f"Points redeemed in the last {w} days (0 if none).", "down",
             f"redeemed {{points_redeemed_{w}d:,.0f}} points in the last {w} days") for w in windows],
        _n("days_since_redemption", "loyalty", "Days since the last points redemption (NaN if never).", "up",
           "has not redeemed points since {last_redemption_date}"),
        _n("points_to_next_tier", "loyalty", "Points still needed for the next tier (NaN if not enrolled or at "
           "the top tier).", "none", "{points_to_next_tier:,.0f} points from the next loyalty tier"),
    ]


def _attributes() -> list[FeatureSpec]:
    return [
        _n("days_since_signup", "attributes", "Days since sign-up (NaN when unknown).", "down",
           "signed up only {days_since_signup:.0f} days ago"),
        _c("region", "attributes", "Region (null when unknown).", "lives in region {region}"),
        _c("acquisition_channel", "attributes", "Channel the customer was acquired through (null when unknown).",
           "came through {acquisition_channel}"),
    ]


def _btyd() -> list[FeatureSpec]:
    return [
        _n("btyd_p_alive", "btyd", "BG/NBD probability that the customer is still active (NaN if the fit failed).",
           "down", "estimated {btyd_p_alive:.0%} chance they are still an active customer"),
        _n("btyd_expected_purchases", "btyd",
           "BG/NBD expected purchase days in the label horizon (NaN if the fit failed).", "down",
           "expected to buy on only {btyd_expected_purchases:.1f} days in the coming period"),
        _n("pnbd_p_alive", "btyd", "Pareto/NBD probability that the customer is still active (NaN if the fit failed).",
           "down", "estimated {pnbd_p_alive:.0%} chance they are still an active customer (Pareto/NBD)"),
        _n("pnbd_expected_purchases", "btyd",
           "Pareto/NBD expected purchase days in the label horizon (NaN if the fit failed).", "down",
           "expected to buy on only {pnbd_expected_purchases:.1f} days in the coming period (Pareto/NBD)"),
    ]


def feature_specs(cfg: FeaturesConfig) -> list[FeatureSpec]:
    """Every feature, in the column order of `build_features`."""
    windows = list(cfg.windows_days)
    specs = [*_rfm(windows), *_feedback(), *_service(windows), *_loyalty(windows), *_attributes()]
    return [*specs, *_btyd()] if cfg.btyd else specs


def feature_names(cfg: FeaturesConfig) -> list[str]:
    """Feature column names, in order (without customer_id)."""
    return [spec.name for spec in feature_specs(cfg)]


# Dates derived for reason templates: name -> the "days since" feature it is computed from.
DERIVED_DATES = {
    "last_order_date": "recency_days",
    "last_nps_date": "days_since_nps",
    "last_feedback_date": "days_since_feedback",
    "last_redemption_date": "days_since_redemption",
}


def _date_days_before(as_of: dt.date, days: Any) -> str | None:
    if days is None or (isinstance(days, float) and math.isnan(days)) or pd.isna(days):
        return None
    return (pd.Timestamp(as_of) - pd.to_timedelta(float(days), unit="D")).date().isoformat()


def reason_context(row: Mapping[str, Any], as_of: dt.date) -> dict[str, Any]:
    """The mapping a reason template is formatted with: the row's values, `as_of`, derived dates.

    Derived: last_order_date, last_nps_date, last_feedback_date, last_redemption_date (ISO dates,
    None when the underlying "days since" feature is unknown).
    """
    context = dict(row)
    context["as_of"] = as_of
    for name, days_feature in DERIVED_DATES.items():
        context[name] = _date_days_before(as_of, row.get(days_feature))
    return context


def reason_context_frame(features: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """`reason_context` for a whole frame: `features` plus the derived date columns (str, null if unknown)."""
    derived = {}
    midnight = pd.Timestamp(as_of)
    for name, days_feature in DERIVED_DATES.items():
        if days_feature not in features.columns:
            continue
        dates = midnight - pd.to_timedelta(features[days_feature].astype(float), unit="D")
        derived[name] = pd.Series(dates.dt.strftime("%Y-%m-%d"), index=features.index, dtype="str")
    return features.assign(**derived)


def format_reason(spec: FeatureSpec, row: Mapping[str, Any], as_of: dt.date) -> str | None:
    """The reason sentence of `spec` for one customer's row (None when the feature has no template)."""
    return None if spec.reason is None else spec.reason.format_map(reason_context(row, as_of))
