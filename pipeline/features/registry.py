"""The feature registry: every feature's name, family, kind, plain-words description and direction.

One list, `feature_specs(cfg)`, shared by training and scoring; `build_features` returns exactly
these columns in this order (after `customer_id`). The list depends on `cfg.windows_days`
(windowed features), `cfg.btyd` (BTYD family on or off) and `cfg.customer_attributes` (one `attribute_<slug>` per
column of sources.customers.attributes, after acquisition_channel: numeric for those of `cfg.number_attributes`,
categorical for the others).

`direction` says whether a higher value means more churn risk ("up"), less ("down") or neither
("none"). `reason` (a `pipeline.reasons.Reason`) holds the plain-words sentences shown to marketing,
each with the condition on the feature's value under which it is true (see pipeline/reasons.py), as
`str.format` templates with the wordings of pipeline/wording.py; `reasons.top_reasons` formats them
column by column with the customer's feature values, `as_of`, and the dates derived in
`reason_context_frame` (last_order_date, last_nps_date, last_feedback_date, last_redemption_date).

Null semantics (a customer with no feedback, no tickets, no loyalty events, no attributes):
counts are 0, 0/1 flags are 0, amounts of points are 0, and values that are unknown are NaN
(numeric) or null (categorical): e.g. nps_last NaN, nps_category null, days_since_feedback NaN,
first_response_hours_mean NaN, unresolved_share NaN, loyalty_tier null, points_to_next_tier NaN,
days_since_redemption NaN, region null. Each description says which applies.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from pipeline.config import FeaturesConfig
from pipeline.contract import attribute_column
from pipeline.features.tables import PRODUCT_WINDOWS
from pipeline.reasons import NEUTRAL_ENDING, TYPICAL, Given, Phrase, Reason

Kind = Literal["numeric", "categorical"]
Direction = Literal["up", "down", "none"]
FAMILIES = ("rfm", "activity", "feedback", "service", "loyalty", "attributes", "btyd")
TREND_DAYS = 90  # spend_trend and purchase_days_trend compare the last TREND_DAYS with the TREND_DAYS before
# Purchase days are counted in these windows besides the configured `windows_days` (the windows that
# lifted models on real logs: two weeks to a year).
PURCHASE_DAY_WINDOWS = (14, 30, 60, 90, 180, 365)
LEFT_CENSOR_DAYS = 30  # a first event this close to the data's earliest one may be a history cut by the export
# ... or this many of the customer's own mean gaps between purchase days: a customer buying at a steady rate before
# the export starts makes a first purchase on record within two mean gaps of its start 86% of the time (1 - e^-2)
LEFT_CENSOR_GAPS = 2
SEASON_LAG_DAYS = 365  # "the same season a year earlier": the label horizon, this many days before `t`
ALIVE_SAID_BELOW = 0.99  # a purchase model's P(alive) as a driver of risk is said only below this


def purchase_day_windows(cfg: FeaturesConfig) -> list[int]:
    """Windows (days) of the purchase_days_<w>d features: PURCHASE_DAY_WINDOWS and the configured windows."""
    return sorted({*PURCHASE_DAY_WINDOWS, *cfg.windows_days})


def order_windows(cfg: FeaturesConfig) -> set[int]:
    """Windows (days before `t`) at which RFM and activity read several order-part sums each (the configured
    windows and the two trend windows); the other purchase-day windows read one sum."""
    return {*cfg.windows_days, TREND_DAYS, 2 * TREND_DAYS}


def season_window(horizon_days: int) -> tuple[int, ...]:
    """(since, until) in days before `t` of the same season a year earlier: [t - 365, t - 365 + horizon);
    empty when the horizon is a year or longer (the window would reach `t`)."""
    if horizon_days >= SEASON_LAG_DAYS:
        return ()
    return (SEASON_LAG_DAYS, SEASON_LAG_DAYS - horizon_days)
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
    reason: Reason | None = None


def _n(name, family, description, direction, reason=None) -> FeatureSpec:
    return FeatureSpec(name, family, "numeric", description, direction, reason)


def _c(name, family, description, reason=None) -> FeatureSpec:
    return FeatureSpec(name, family, "categorical", description, "none", reason)


def _says(text: str, *when: tuple[str, float | str], given: tuple[Given, ...] = ()) -> Phrase:
    """A sentence and the conditions on the feature's own value (and on the customer's other features, `given`)
    under which it is true."""
    return Phrase(text, tuple(when), given)


def _reason(*phrases: Phrase, neutral: str | None = None, neutral_given: tuple[Given, ...] = ()) -> Reason:
    return Reason(tuple(phrases), neutral, neutral_given)


def _always(text: str) -> Reason:
    """A sentence true whatever the (known) value, e.g. a category the customer is in."""
    return Reason((Phrase(text),))


# Conditions
POSITIVE = (">", 0)
BELOW_TYPICAL = ("<", TYPICAL)
ABOVE_TYPICAL = (">", TYPICAL)
# Sentences about loyalty points are said of members; of a customer outside the programme (whose points are 0 by
# definition) the points features' reason is that they are not in it.
NOT_ENROLLED = "not in the loyalty programme"
MEMBER: tuple[Given, ...] = (("loyalty_enrolled", "==", 1),)
NOT_A_MEMBER = Phrase(NOT_ENROLLED, (), (("loyalty_enrolled", "==", 0),))
REPEAT_BUYER: tuple[Given, ...] = (("purchase_days_all", ">", 1),)
ONE_PURCHASE_DAY: tuple[Given, ...] = (("purchase_days_all", "==", 1),)
WHOLE_HISTORY: tuple[Given, ...] = (("history_censored", "==", 0),)
CUT_HISTORY: tuple[Given, ...] = (("history_censored", "==", 1),)


def _window_counts(prefix: str, family: str, description: str, windows: Iterable[int], *, none: str, only: str,
                   unit: str, neutral: str | None = None, given: tuple[Given, ...] = (),
                   otherwise: Phrase | None = None) -> list[FeatureSpec]:
    """`{prefix}_{w}d` per window: a count whose fall raises risk, said as `none` (zero in the window), as
    "`only` <count> in the last w days, fewer than the typical customer", else as `neutral` + the count; each
    `given` the customer's other features (then `otherwise`, when it holds). `description` and `none` may use {w}."""
    def count(w: int) -> str:
        return f"{{{prefix}_{w}d:count:{unit}}}"

    return [
        _n(f"{prefix}_{w}d", family, description.format(w=w), "down", _reason(
            _says(none.format(w=w), ("==", 0), given=given),
            _says(f"{only} {count(w)} in the last {w} days, fewer than the typical customer", POSITIVE, BELOW_TYPICAL,
                  given=given),
            *([otherwise] if otherwise else []),
            neutral=None if neutral is None else f"{neutral} in the last {w} days ({count(w)})", neutral_given=given))
        for w in windows
    ]


def _rfm(windows: list[int]) -> list[FeatureSpec]:
    return [
        _n("recency_days", "rfm", "Days since the last purchase.", "up", _reason(
            _says("no order for {recency_days:days} (last on {last_order_date})", POSITIVE))),
        _n("frequency_all", "rfm", "Number of orders ever placed.", "down", _reason(
            _says("has ordered only once so far", ("==", 1)),
            _says("only {frequency_all:count:order} so far, fewer than the typical customer", POSITIVE, BELOW_TYPICAL),
            neutral="their number of orders ({frequency_all:count:order})")),
        *_window_counts("frequency", "rfm", "Number of orders in the last {w} days.", windows,
                        none="no orders in the last {w} days", only="only", unit="order",
                        neutral="their number of orders"),
        _n("monetary_all", "rfm", "Net spend ever (purchases minus returns and refunds).", "down", _reason(
            _says("spent only {monetary_all:money} in total, net of returns and refunds, less than the typical "
                  "customer", POSITIVE, BELOW_TYPICAL),
            _says("their returns and refunds exceeded their purchases since their history starts", ("<", 0)),
            neutral="their total net spend ({monetary_all:money})")),
        *[_n(f"monetary_{w}d", "rfm", f"Net spend in the last {w} days.", "down", _reason(
            # bought nothing, or returned all
            _says(f"spent nothing, net of returns and refunds, in the last {w} days", ("==", 0)),
            _says(f"spent only {{monetary_{w}d:money}}, net of returns and refunds, in the last {w} days, less than "
                  "the typical customer", POSITIVE, BELOW_TYPICAL),
            _says(f"their returns and refunds exceeded their purchases in the last {w} days", ("<", 0)),
            neutral=f"their net spend in the last {w} days ({{monetary_{w}d:money}})"))
          for w in windows],
        _n("avg_order_value", "rfm", "Net spend per order.", "down", _reason(
            _says("average order worth only {avg_order_value:money} net of returns and refunds, less than the typical "
                  "customer's", POSITIVE, BELOW_TYPICAL),
            neutral="their average order value ({avg_order_value:money})")),
        # of a customer whose history the export may cut (history_censored), the time since the first purchase on
        # record is a lower bound of their time as a customer, not that time: said as what it is
        _n("tenure_days", "rfm", "Days since the first purchase.", "down", _reason(
            _says("a customer for only {tenure_days:days}, shorter than the typical customer", (">=", 1), BELOW_TYPICAL,
                  given=WHOLE_HISTORY),
            _says(f"the time since their first purchase on record ({{tenure_days:days}}){NEUTRAL_ENDING}",
                  given=CUT_HISTORY),
            neutral="their time as a customer ({tenure_days:days})", neutral_given=WHOLE_HISTORY)),
        _n("gap_mean_days", "rfm", "Average days between purchase days (several orders on one day count as one "
           "visit; NaN with fewer than 2 purchase days).", "up", _reason(
            _says("on average {gap_mean_days:days} between purchase days, longer than for the typical customer",
                  ABOVE_TYPICAL),
            neutral="their average time between purchase days ({gap_mean_days:days})")),
        _n("gap_last_days", "rfm", "Days between the last two purchase days (NaN with fewer than 2 purchase days).",
           "up", _reason(
            _says("waited {gap_last_days:days} between their last two purchase days, longer than the typical "
                  "customer", ABOVE_TYPICAL),
            neutral="the time between their last two purchase days ({gap_last_days:days})")),
        _n("overdue_ratio", "rfm",
           "Days since the last purchase divided by the expected gap between purchase days: the customer's "
           "average gap shrunk toward the population's typical gap (fully the population's with one purchase "
           "day); above 1: the next visit is late. Always finite, at most recency_days.", "up", _reason(
            # a customer of one purchase day has no gap of their own: theirs is the typical customer's
            _says("no order for {recency_days:days:elapsed}, {overdue_ratio:ratio:the gap expected between their "
                  "visits}", (">", 1), given=REPEAT_BUYER),
            _says("no order for {recency_days:days:elapsed}, {overdue_ratio:ratio:the typical repeat customer's gap "
                  "between purchase days}", (">", 1), given=ONE_PURCHASE_DAY),
            neutral="their time since the last order ({recency_days:days:elapsed}, "
                    "{overdue_ratio:ratio:the gap expected before their next visit})")),
        _n("spend_trend", "rfm",
           f"Spend in the last {TREND_DAYS} days against the {TREND_DAYS} days before, from -1 (stopped "
           "spending) to +1 (only recent spend); NaN when both are zero.", "down", _reason(
            _says(f"spending is falling (trend {{spend_trend:trend}}: last {TREND_DAYS} days vs the {TREND_DAYS} "
                  "before)", ("<=", -0.01)),
            neutral="their spend trend ({spend_trend:trend})")),
        _n("returns_count", "rfm", "Number of returned or refunded order lines (0 if none).", "up", _reason(
            _says("had {returns_count:count:return or refund line}", POSITIVE))),
        _n("returns_value", "rfm", "Value of returns and refunds (0 if none).", "up", _reason(
            _says("had returns and refunds worth {returns_value:money}", POSITIVE))),
        _n("discount_share", "rfm", "Share of orders bought with a discount (NaN when discounts are unknown).",
           "up", _reason(_says("{discount_share:share} of their orders used a discount", POSITIVE))),
        _n("category_breadth", "rfm", "Number of product categories bought (0 when unknown).", "down", _reason(
            _says("buys from only {category_breadth:count:category/categories}, fewer than the typical customer",
                  POSITIVE, BELOW_TYPICAL))),
        _c("top_category", "rfm", "Category with the highest spend (null when unknown).",
           _always("mostly buys {top_category}")),
        *[_n(f"rfm_{letter}_score", "rfm", f"{what} quintile among active customers, 5 = {best}.", "down", _reason(
            _says(f"low {word} score ({{rfm_{letter}_score:scale:1..5}} of 5)", ("<=", 2)),
            neutral=f"their {word} score ({{rfm_{letter}_score:scale:1..5}} of 5)"))
          for letter, what, best, word in (("r", "Recency", "most recent", "recency"),
                                           ("f", "Order-count", "most orders", "frequency"),
                                           ("m", "Spend", "highest spend", "spend"))],
        _c("rfm_segment", "rfm", f"RFM segment from the R and F scores: {', '.join(RFM_SEGMENTS)}.",
           _always("in the RFM segment of {rfm_segment:segment}")),
    ]


def _activity(cfg: FeaturesConfig) -> list[FeatureSpec]:
    windows = list(cfg.windows_days)
    return [
        _n("purchase_days_all", "activity", "Number of distinct days with a purchase (several orders a day count once).",
           "down", _reason(
            _says("has bought on one day only so far", ("==", 1)),
            _says("bought on only {purchase_days_all:count:day} so far, fewer than the typical customer",
                  POSITIVE, BELOW_TYPICAL),
            neutral="their number of purchase days ({purchase_days_all:count:day})")),
        *_window_counts("purchase_days", "activity", "Distinct days with a purchase in the last {w} days.",
                        purchase_day_windows(cfg), none="no purchases in the last {w} days", only="bought on only",
                        unit="day", neutral="their purchase days"),
        _n("purchase_days_trend", "activity",
           f"Purchase days in the last {TREND_DAYS} days against the {TREND_DAYS} days before, from -1 (stopped) "
           "to +1 (only recent); NaN when both are zero.", "down", _reason(
            _says(f"visits are falling (trend {{purchase_days_trend:trend}}: last {TREND_DAYS} days vs the "
                  f"{TREND_DAYS} before)", ("<=", -0.01)),
            neutral="their visit trend ({purchase_days_trend:trend})")),
        _n("gap_cv", "activity",
           "Regularity of visits: standard deviation of the gaps between purchase days divided by their mean "
           "(0 = like clockwork; NaN with fewer than 3 purchase days).", "none"),
        _n("quantity_all", "activity", "Items bought (sum of quantity on purchase lines; NaN when no purchase line "
           "of the customer has a quantity).", "down", _reason(
            _says("bought only {quantity_all:count:item} so far, fewer than the typical customer",
                  POSITIVE, BELOW_TYPICAL))),
        *_window_counts("quantity", "activity", "Items bought in the last {w} days (NaN when quantities are unknown).",
                        windows, none="bought no items in the last {w} days", only="bought only", unit="item"),
        _n("products_all", "activity", "Distinct product_ids bought (NaN when no purchase line of the customer has "
           "a product_id).", "down", _reason(
            _says("bought only {products_all:count:different product} so far, fewer than the typical customer",
                  POSITIVE, BELOW_TYPICAL))),
        *_window_counts("products", "activity", "Distinct product_ids bought in the last {w} days (NaN when products "
                        "are unknown).", PRODUCT_WINDOWS, none="bought no products in the last {w} days",
                        only="bought only", unit="different product"),
        _n("lines_per_order", "activity", "Purchase lines per order (basket breadth).", "down", _reason(
            _says("about {lines_per_order:number} lines per order, fewer than the typical customer",
                  POSITIVE, BELOW_TYPICAL))),
        _n("cancellations_count", "activity",
           "Cancelled or credited invoices: orders made only of negative lines (0 if none).", "up", _reason(
            _says("{cancellations_count:count:cancelled or credited invoice}", POSITIVE))),
        _n("cancellation_share", "activity",
           "Cancelled or credited invoices among all their invoices (0 if none).", "up", _reason(
            _says("{cancellation_share:share} of their invoices were cancellations or credit notes", POSITIVE))),
        _n("returns_share", "activity", "Return or refund lines among all their order lines (0 if none).", "up",
           _reason(_says("{returns_share:share} of their order lines were returns or refunds", POSITIVE))),
        _n("returns_value_share", "activity",
           "Value of returns and refunds divided by that value plus the value bought (0 if none; returns of goods "
           "bought before the history can make it 1).", "up", _reason(
            _says("returns and refunds were {returns_value_share:share} of the money they moved", POSITIVE))),
        _n("gross_spend_all", "activity", "Value of all purchase lines, before returns.", "down", _reason(
            _says("bought goods worth only {gross_spend_all:money} in total (before returns), less than the "
                  "typical customer", (">=", 0), BELOW_TYPICAL))),
        *[_n(f"gross_spend_{w}d", "activity", f"Value of purchase lines in the last {w} days, before returns.",
             "down", _reason(
              _says(f"spent nothing on purchases in the last {w} days", ("==", 0)),  # free orders are purchases
              _says(f"bought goods worth only {{gross_spend_{w}d:money}} in the last {w} days (before returns), "
                    "less than the typical customer", POSITIVE, BELOW_TYPICAL)))
          for w in windows],
        _n("history_censored", "activity",
           f"1 when the customer's first event is within {LEFT_CENSOR_DAYS} days, or {LEFT_CENSOR_GAPS} of their own "
           "mean gaps between purchase days, of the earliest event in the data, or comes before their first purchase "
           "(a return or refund of goods bought before the history): they may have been a customer before the export "
           "starts, so tenure_days is only a lower bound; else 0.",
           "none"),
        _n("season_purchase_days_last_year", "activity",
           f"Purchase days in the same season a year earlier: the {cfg.horizon_days} days starting "
           f"{SEASON_LAG_DAYS} days before the snapshot (NaN when the data do not reach back that far).", "down",
           _reason(
            # of a customer whose first purchase came after that season, true but read as a lapse: say what it is
            _says("did not buy in the same season last year", ("==", 0),
                  given=(("tenure_days", ">", SEASON_LAG_DAYS - cfg.horizon_days),)),
            # a return or credit note may predate the first purchase (a refund of a purchase before the export
            # starts), and so may a sign-up in the customers export or purchases before a history the export may cut
            # (history_censored): only without any of them is the first purchase the first dealing
            _says("made their first purchase on record after the same season last year", ("==", 0),
                  given=(("tenure_days", "<=", SEASON_LAG_DAYS - cfg.horizon_days),
                         ("days_since_signup", ">", SEASON_LAG_DAYS - cfg.horizon_days))),
            _says("was not a customer yet in the same season last year", ("==", 0),
                  given=(("tenure_days", "<=", SEASON_LAG_DAYS - cfg.horizon_days), ("returns_count", "==", 0),
                         *WHOLE_HISTORY)),
            _says("made their first purchase on record after the same season last year", ("==", 0),
                  given=(("tenure_days", "<=", SEASON_LAG_DAYS - cfg.horizon_days),)),
            neutral="their purchase days in the same season last year "
                    "({season_purchase_days_last_year:count:day})")),
    ]


def _feedback() -> list[FeatureSpec]:
    return [
        _n("nps_last", "feedback", "Latest NPS answer, 0-10 (NaN if never answered).", "down", _reason(
            _says("gave NPS {nps_last:scale:0..10} on {last_nps_date}", ("<=", 6)),
            neutral="their latest NPS answer ({nps_last:scale:0..10} of 10)")),
        _n("nps_mean", "feedback", "Average NPS answer (NaN if never answered).", "down", _reason(
            _says("average NPS {nps_mean:scale:0..10}", ("<", 7)),
            neutral="their average NPS answer ({nps_mean:scale:0..10} of 10)")),
        _c("nps_category", "feedback", "Latest NPS as promoter (9-10), passive (7-8) or detractor (0-6); "
           "null if never answered.", _always("an NPS {nps_category}")),
        _n("is_detractor", "feedback", "1 if the latest NPS is 0-6, else 0 (0 if never answered).", "up", _reason(
            _says("is a detractor: gave NPS {nps_last:scale:0..10} on {last_nps_date}", ("==", 1)))),
        _n("is_promoter", "feedback", "1 if the latest NPS is 9-10, else 0 (0 if never answered).", "down", _reason(
            _says("not an NPS promoter", ("==", 0)))),
        _n("days_since_nps", "feedback", "Days since the latest NPS answer (NaN if never answered).", "none"),
        _n("csat_last", "feedback", "Latest CSAT rating, 1-5 (NaN if none).", "down", _reason(
            _says("rated their last support contact {csat_last:scale:1..5} of 5", ("<=", 3)),
            neutral="their latest support rating ({csat_last:scale:1..5} of 5)")),
        _n("csat_mean", "feedback", "Average CSAT rating (NaN if none).", "down", _reason(
            _says("average satisfaction {csat_mean:scale:1..5} of 5", ("<", 4)),
            neutral="their average support rating ({csat_mean:scale:1..5} of 5)")),
        _n("review_mean", "feedback", "Average review stars, 1-5 (NaN if none).", "down", _reason(
            _says("average review {review_mean:scale:1..5} of 5 stars", ("<", 4)),  # not "1 stars"
            neutral="their average review ({review_mean:scale:1..5} of 5 stars)")),
        _n("low_ratings_count", "feedback", "Number of low ratings: NPS 0-6, CSAT or review 1-2 (0 if none).", "up",
           _reason(_says("left {low_ratings_count:count:low rating}", POSITIVE))),
        _n("days_since_feedback", "feedback", "Days since any feedback (NaN if none).", "none", _reason(
            _says("last feedback on {last_feedback_date}", (">=", 0)))),
        _n("has_feedback", "feedback", "1 if the customer ever gave feedback, else 0.", "none"),
    ]


def _service(windows: list[int]) -> list[FeatureSpec]:
    return [
        *[_n(f"tickets_{w}d", "service", f"Support tickets opened in the last {w} days (0 if none).", "up", _reason(
            _says(f"opened {{tickets_{w}d:count:support ticket}} in the last {w} days", POSITIVE)))
          for w in windows],
        _n("open_tickets", "service", "Support tickets still open (0 if none).", "up", _reason(
            _says("{open_tickets:count:support ticket} still open", POSITIVE))),
        _n("first_response_hours_mean", "service", "Average hours to a first reply (NaN without answered tickets).",
           "up", _reason(_says("waited {first_response_hours_mean:hours} on average for a first reply, longer than "
                               "the typical customer", POSITIVE, ABOVE_TYPICAL),
                         # a quick reply said as a wait would read as a complaint the customer does not have
                         neutral="their average wait for a first reply ({first_response_hours_mean:hours})")),
        _n("resolution_hours_mean", "service", "Average hours to close a ticket (NaN without closed tickets; a "
           "ticket resolved by status without a closing time is left out).",
           "up", _reason(_says("their support tickets took {resolution_hours_mean:hours} on average to close, longer "
                               "than the typical customer's", POSITIVE, ABOVE_TYPICAL),
                         neutral="the average time to close their support tickets ({resolution_hours_mean:hours})")),
        _n("unresolved_share", "service", "Share of tickets open or closed unresolved (NaN without tickets).",
           "up", _reason(_says("{unresolved_share:share} of their support tickets are unresolved", POSITIVE))),
        _n("late_deliveries", "service",
           "Orders delivered after the promised date, or still undelivered past it (0 if none).", "up", _reason(
            _says("{late_deliveries:count:late delivery/late deliveries}, "
                  "{lateness_days_mean:days} late on average", POSITIVE))),
        _n("lateness_days_mean", "service", "Average days late of the late deliveries, an order still undelivered "
           "past its promise counted up to `t` (NaN if none late).", "up", _reason(
            # "arrived" only when none is still on its way: an order never delivered did not arrive late
            _says("deliveries arrived {lateness_days_mean:days} late on average", POSITIVE,
                  given=(("undelivered_orders", "==", 0),)),
            _says("deliveries late by {lateness_days_mean:days} on average (an order not delivered yet counts "
                  "until today)", POSITIVE, given=(("undelivered_orders", ">", 0),)))),
        _n("undelivered_orders", "service",
           "Orders with a promised delivery date not delivered yet (0 if none).", "up", _reason(
            _says("{undelivered_orders:count:order} not delivered yet", POSITIVE))),
    ]


def _loyalty(windows: list[int]) -> list[FeatureSpec]:
    return [
        _n("loyalty_enrolled", "loyalty", "1 if the customer has any loyalty programme event, else 0.", "down",
           _reason(_says(NOT_ENROLLED, ("==", 0)))),
        _c("loyalty_tier", "loyalty", "Latest loyalty tier stated by an event, else the tier the points balance "
           "reaches (null if not enrolled).", _always("in loyalty tier {loyalty_tier}")),
        _n("points_balance", "loyalty", "Points added (earn and enroll rows with positive points) minus points taken "
           "off (redeemed, expired, and earn rows with negative points such as refund reversals); 0 if not "
           "enrolled.", "down",
           _reason(_says("has no unused loyalty points", ("==", 0), given=MEMBER),
                   _says("has only {points_balance:count:unused point}, fewer than the typical customer",
                         POSITIVE, BELOW_TYPICAL, given=MEMBER),
                   NOT_A_MEMBER,
                   neutral="their points balance ({points_balance:count:point})", neutral_given=MEMBER)),
        *_window_counts("points_earned", "loyalty", "Points added by earn and enroll rows in the last {w} days, "
                        "before reversals (0 if none).", windows,
                        none="earned no points in the last {w} days", only="earned only", unit="point",
                        neutral="their points earned", given=MEMBER, otherwise=NOT_A_MEMBER),
        *[_n(f"points_redeemed_{w}d", "loyalty", f"Points redeemed in the last {w} days (0 if none).", "down",
             _reason(_says(f"redeemed no points in the last {w} days", ("==", 0), given=MEMBER),
                     NOT_A_MEMBER,
                     neutral=f"their points redeemed in the last {w} days ({{points_redeemed_{w}d:count:point}})",
                     neutral_given=MEMBER))
          for w in windows],
        _n("days_since_redemption", "loyalty", "Days since the last points redemption (NaN if never).", "up",
           _reason(_says("has not redeemed points since {last_redemption_date}", POSITIVE))),
        _n("points_to_next_tier", "loyalty", "Points still needed for the next tier (NaN if not enrolled or at "
           "the top tier).", "none", _reason(
            _says("{points_to_next_tier:count:point} from the next loyalty tier", POSITIVE))),
    ]


def _escaped(text: str) -> str:
    """`text` as literal text of a str.format template (its braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def _customer_attribute(name: str) -> FeatureSpec:
    """The feature of the customers export's column `name` (sources.customers.attributes): its value, said as it is."""
    column = attribute_column(name)
    return _c(column, "attributes", f"Customer attribute {name} from the customers export (null when unknown).",
              _always(f"their {_escaped(name)} is {{{column}}}"))


def _number_attribute(name: str) -> FeatureSpec:
    """The feature of the customers export's column `name` of kind number: its value as the export wrote it, and on
    which side of the typical customer's (the median of the customers scored) it lies; neither way is riskier."""
    column, said = attribute_column(name), _escaped(name)
    return _n(column, "attributes", f"Customer attribute {name} from the customers export, a number (NaN when "
              "unknown).", "none", _reason(
                _says(f"their {said} is {{{column}:value}}, higher than the typical customer's", ABOVE_TYPICAL),
                _says(f"their {said} is {{{column}:value}}, lower than the typical customer's", BELOW_TYPICAL),
                _says(f"their {said} is {{{column}:value}}")))


def _attributes(cfg: FeaturesConfig) -> list[FeatureSpec]:
    return [
        _n("days_since_signup", "attributes", "Days since sign-up (NaN when unknown).", "down", _reason(
            _says("signed up only {days_since_signup:days} ago, more recently than the typical customer",
                  (">=", 0), BELOW_TYPICAL),
            neutral="their time since sign-up ({days_since_signup:days})")),
        _c("region", "attributes", "Region (null when unknown).", _always("lives in region {region}")),
        _c("acquisition_channel", "attributes", "Channel the customer was acquired through (null when unknown).",
           _always("came through {acquisition_channel}")),
        *[_number_attribute(name) if name in cfg.number_attributes else _customer_attribute(name)
          for name in cfg.customer_attributes],
    ]


def _purchase_model(prefix: str, model: str, *, seen_by: str, note: str, by: str) -> list[FeatureSpec]:
    """`<prefix>_p_alive` and `<prefix>_expected_purchases` of purchase model `model` (BG/NBD, Pareto/NBD).
    Reasons: `seen_by` names the model in the first, `note` ends the others, `by` names it in the neutral ones."""
    alive, expected = f"{prefix}_p_alive", f"{prefix}_expected_purchases"
    return [
        _n(alive, "btyd", f"{model} probability that the customer is still active (NaN if the fit failed).",
           "down", _reason(
            _says(f"{seen_by} sees them as almost certainly gone (under 1% chance still active)",
                  (">=", 0), ("<", 0.005)),
            _says(f"estimated {{{alive}:share}} chance they are still an active customer{note}", ("<", 0.5)),
            # the model's word alone, and not of a customer almost surely still active: "(more than 99%) raises
            # their predicted risk" explains nothing (a fit near its no-dropout limit gives it to nearly everyone)
            _says(f"their estimated chance of still being active{by} ({{{alive}:share}}){NEUTRAL_ENDING}",
                  ("<", ALIVE_SAID_BELOW)))),
        _n(expected, "btyd",
           f"{model} expected purchase days in the label horizon (NaN if the fit failed).", "down", _reason(
            _says(f"expected to buy on fewer than 0.1 days in the coming period{note}", (">=", 0), ("<", 0.05)),
            _says(f"expected to buy on only about {{{expected}:number}} days in the coming period, fewer "
                  f"than the typical customer{note}", (">=", 0.05), BELOW_TYPICAL),
            neutral=f"their expected purchase days in the coming period{by} ({{{expected}:number}})")),
    ]


def _btyd() -> list[FeatureSpec]:
    return [
        *_purchase_model("btyd", "BG/NBD", seen_by="the purchase model", note="", by=""),
        *_purchase_model("pnbd", "Pareto/NBD", seen_by="the Pareto/NBD model", note=" (Pareto/NBD)", by=" by Pareto/NBD"),
    ]


def feature_specs(cfg: FeaturesConfig) -> list[FeatureSpec]:
    """Every feature, in the column order of `build_features`."""
    windows = list(cfg.windows_days)
    specs = [*_rfm(windows), *_activity(cfg), *_feedback(), *_service(windows), *_loyalty(windows), *_attributes(cfg)]
    return [*specs, *_btyd()] if cfg.btyd else specs


# The features whose values are money (sums of amounts, and what is computed from them): without money in the export
# (amount given by `constants`) they count lines, and their sentences ("spent only 4.00") would speak of money.
MONEY_FEATURES = re.compile(
    r"monetary_.*|gross_spend_.*|avg_order_value|spend_trend|returns_value(_share)?|rfm_m_score")


def without_money_reasons(specs: Iterable[FeatureSpec]) -> list[FeatureSpec]:
    """`specs` with no reason for the MONEY_FEATURES: their drivers are skipped for the next (an export without money,
    `SourceConfig.money_from_constants`)."""
    return [replace(s, reason=None) if MONEY_FEATURES.fullmatch(s.name) else s for s in specs]


def feature_names(cfg: FeaturesConfig) -> list[str]:
    """Feature column names, in order (without customer_id)."""
    return [spec.name for spec in feature_specs(cfg)]


MAX_DATE_DAYS = 365 * 200  # dates derived for reasons go back at most this far

# Dates derived for reason templates: name -> the "days since" feature it is computed from (business-zone days).
DERIVED_DATES = {
    "last_order_date": "recency_days",
    "last_nps_date": "days_since_nps",
    "last_feedback_date": "days_since_feedback",
    "last_redemption_date": "days_since_redemption",
}


def reason_context_frame(features: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """`features` plus the dates derived for reason templates (DERIVED_DATES; str YYYY-MM-DD, null if unknown).

    A date is `as_of` minus its "days since" feature, as is: the features count days on the wall clock of the
    business time zone (`features.timezone`), so this is the event's day there (an order at 22:30 in Sao Paulo
    is on that day, not on the next one of UTC), with no second conversion. With one business time zone the
    dates of every source are shown in it, whatever zone an export wrote its times in."""
    derived = {}
    midnight = pd.Timestamp(as_of, tz="UTC")
    for name, days_feature in DERIVED_DATES.items():
        if days_feature not in features.columns:
            continue
        days = features[days_feature].astype(float)
        # no date for a value no calendar holds (unknown, negative, inf, beyond MAX_DATE_DAYS)
        days = days.where((days >= 0) & (days <= MAX_DATE_DAYS))
        # to the millisecond: float days would put an event at midnight a few nanoseconds into the day before
        dates = (midnight - pd.to_timedelta(days, unit="D")).dt.round("ms")
        derived[name] = pd.Series(dates.dt.strftime("%Y-%m-%d"), index=features.index, dtype="str")
    return features.assign(**derived)
