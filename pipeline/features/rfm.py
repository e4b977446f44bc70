"""RFM family: recency, frequency, monetary value, gaps, trend, returns, discounts, categories, scores.

Per-customer step (depends only on the customer's own events known before the cut):
- `customers_with_purchase` -> the customers that get a feature row (a purchase before `t`),
- `order_aggregates` -> per-customer sums and latest values read from the order-part timeline,
- `order_features` -> the features computed from those aggregates,
- `category_aggregates` -> category_breadth, top_category from the category spend timeline.
Population step: `add_overdue` -> overdue_ratio (needs the population's typical gap), on every
customer with a purchase before `t`; `add_scores` -> RFM quintile scores and named segments among
eligible customers.

Timing is measured on *purchase days* (days of the business time zone with a purchase): several
orders on one day are one visit, so a burst of invoices minutes apart never makes a gap of zero. Gaps are whole
days (>= 1).
The customer's typical gap is shrunk toward the population's (empirical-Bayes style, see
`add_overdue`), so the overdue ratio is finite and at most `recency_days` for every customer.

Orders, purchases and money units are defined in `pipeline.features.tables`. Days are fractional
(from timestamps) and measured back from the snapshot time `t` (midnight of `as_of` in the business time zone).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.registry import TREND_DAYS, order_windows
from pipeline.features.tables import MONEY_UNITS, NULL_TIME, CategorySpend, OrderParts
from pipeline.features.timeline import (
    DAY_US,
    Cut,
    latest_before,
    pick,
    pick_series,
    timestamps,
    window_sum,
    with_nulls,
)
from pipeline.snapshot import snapshot_time

# Segment of each (R score, F score) cell: the common RFM segment grid.
SEGMENT_GRID = {
    1: {1: "lost", 2: "lost", 3: "at_risk", 4: "at_risk", 5: "cant_lose"},
    2: {1: "hibernating", 2: "hibernating", 3: "at_risk", 4: "at_risk", 5: "cant_lose"},
    3: {1: "about_to_sleep", 2: "about_to_sleep", 3: "need_attention", 4: "loyal", 5: "loyal"},
    4: {1: "promising", 2: "potential_loyalist", 3: "potential_loyalist", 4: "loyal", 5: "loyal"},
    5: {1: "new", 2: "potential_loyalist", 3: "potential_loyalist", 4: "champions", 5: "champions"},
}


def days_between(later: pl.Expr | dt.datetime, earlier: pl.Expr) -> pl.Expr:
    """Fractional days from `earlier` to `later` (datetimes)."""
    later_expr = pl.lit(later) if isinstance(later, dt.datetime) else later
    return (later_expr - earlier).dt.total_microseconds() / DAY_US


def customers_with_purchase(parts: OrderParts, *, t: dt.datetime) -> np.ndarray:
    """Codes of the customers with a purchase before `t` (ascending)."""
    every = Cut(t=t, codes=np.arange(parts.timeline.customers, dtype=np.int64))
    start, end = every.rows(parts.timeline)
    purchases = parts.sums.names.index("purchases")
    return every.codes[parts.sums.matrix[end, purchases] > parts.sums.matrix[start, purchases]]


def order_aggregates(parts: OrderParts, cut: Cut, *, cfg: FeaturesConfig) -> list[pl.Series]:
    """Per row of `cut` (customers with a purchase before `t`): the aggregates `order_features` reads.

    _first/_last_purchase_at, frequency_*, _monetary_*_units, _trend_recent_units
    and _trend_earlier_units (spend in the last TREND_DAYS and the TREND_DAYS before), returns_count, _returns_units, discount_share (discounted
    orders among those whose discount is known; null when none is), _purchase_days (distinct
    purchase days), _purchase_span_days (from the first to the last purchase day), _gap_last_day (days between the last two purchase days, null with fewer than two).
    """
    timeline, sums = parts.timeline, parts.sums
    start, end = cut.rows(timeline)
    before = cut.sums_at(timeline, sums, cut.day)
    at = {None: cut.sums_at(timeline, sums, None)}
    for days in order_windows(cfg):
        at[days] = cut.sums_at(timeline, sums, cut.since(days))

    def total(name: str, since_days: int | None = None, until_days: int | None = None) -> np.ndarray:
        return (before if until_days is None else at[until_days])[name] - at[since_days][name]

    def times(index: np.ndarray, name: str) -> pl.Series:
        return timestamps(pick(parts.at_us, index, name))

    known, discounted = total("discount_known"), total("discounted")
    with np.errstate(invalid="ignore", divide="ignore"):
        share = discounted / known
    return [
        timestamps(pl.Series("_first_purchase_at", parts.first_purchase_us[cut.codes])),
        times(latest_before(parts.last_purchase, start, end), "_last_purchase_at"),
        pl.Series("frequency_all", total("starts")),
        *[pl.Series(f"frequency_{w}d", total("starts", w)) for w in cfg.windows_days],
        pl.Series("_monetary_all_units", total("net_units")),
        *[pl.Series(f"_monetary_{w}d_units", total("net_units", w)) for w in cfg.windows_days],
        pl.Series("_trend_recent_units", total("net_units", TREND_DAYS)),
        pl.Series("_trend_earlier_units", total("net_units", 2 * TREND_DAYS, TREND_DAYS)),
        pl.Series("returns_count", total("return_lines")),
        pl.Series("_returns_units", total("return_units")),
        with_nulls(pl.Series("discount_share", share), known > 0),
        pl.Series("_purchase_days", total("day_starts")),
        pl.Series("_purchase_span_days", _purchase_span_days(parts, start, end, cut)),
        pick(parts.last_day_gap, np.where(end > start, end - 1, -1), "_gap_last_day", missing=NULL_TIME),
    ]


def _purchase_span_days(parts: OrderParts, start: np.ndarray, end: np.ndarray, cut: Cut) -> np.ndarray:
    """Per row of `cut`: whole days from the first to the last purchase day before `t` (business-zone days)."""
    last = latest_before(parts.last_purchase, start, end)
    return (parts.at_us[last] // DAY_US) - (parts.first_purchase_us[cut.codes] // DAY_US)


def order_features(*, as_of: dt.date, cfg: FeaturesConfig) -> list[pl.Expr]:
    """RFM features from the columns of `order_aggregates`, plus `eligible` (bought in the lookback).

    Gaps are between purchase days: gap_mean_days = (last purchase day - first purchase day) /
    (purchase days - 1), gap_last_days = the last of them; NaN with fewer than two purchase days.
    """
    t = snapshot_time(as_of)
    frequency = pl.col("frequency_all").cast(pl.Float64)
    recency = days_between(t, pl.col("_last_purchase_at"))
    purchase_days = pl.col("_purchase_days").cast(pl.Float64)
    span_days = pl.col("_purchase_span_days").cast(pl.Float64)
    gap_mean = pl.when(purchase_days >= 2).then(span_days / (purchase_days - 1))
    recent, earlier = pl.col("_trend_recent_units"), pl.col("_trend_earlier_units")
    moved = recent.abs() + earlier.abs()
    return [
        (pl.col("_last_purchase_at") >= t - dt.timedelta(days=cfg.lookback_days)).alias("eligible"),
        recency.alias("recency_days"),
        (pl.col("_monetary_all_units") / MONEY_UNITS).alias("monetary_all"),
        *[(pl.col(f"_monetary_{w}d_units") / MONEY_UNITS).alias(f"monetary_{w}d") for w in cfg.windows_days],
        (pl.col("_monetary_all_units") / MONEY_UNITS / frequency).alias("avg_order_value"),
        days_between(t, pl.col("_first_purchase_at")).alias("tenure_days"),
        gap_mean.alias("gap_mean_days"),
        pl.col("_gap_last_day").cast(pl.Float64).alias("gap_last_days"),
        pl.when(moved > 0).then((recent - earlier) / moved).alias("spend_trend"),
        (pl.col("_returns_units") / MONEY_UNITS).alias("returns_value"),
    ]


# Weight of the population's typical gap in a customer's shrunk gap, in gaps: a customer with n
# purchase-day gaps has the typical gap (n * own mean + PRIOR_GAPS * population's) / (n + PRIOR_GAPS).
PRIOR_GAPS = 2.0


def add_overdue(frame: pl.DataFrame) -> pl.DataFrame:
    """Population step on every customer with a purchase before `t`: overdue_ratio = recency_days / typical gap.

    Needs recency_days, gap_mean_days, tenure_days and _purchase_days. The typical gap is the
    customer's mean purchase-day gap shrunk toward the population's (the median gap_mean_days of
    the customers with two or more purchase days) with the weight of PRIOR_GAPS gaps: a customer
    with one purchase day gets the population's gap, one with many gets about their own. When no
    customer has two purchase days, the population's gap is the median tenure_days (a lower bound
    of the unseen gaps). Every gap involved is at least one day (population's: clipped at 1), so
    0 <= overdue_ratio <= recency_days, finite. Computed in numpy: the same floats however the
    frame is chunked (partitioned runs give identical files).
    """
    purchase_days = frame["_purchase_days"].to_numpy().astype(np.float64)
    own = frame["gap_mean_days"].fill_null(np.nan).to_numpy().astype(np.float64)
    repeat = purchase_days >= 2
    if repeat.any():
        population = float(np.median(own[repeat]))
    elif len(own):
        population = float(np.median(frame["tenure_days"].to_numpy().astype(np.float64)))
    else:
        population = 1.0
    gaps = np.maximum(purchase_days - 1, 0.0)
    typical = (gaps * np.where(repeat, own, 0.0) + PRIOR_GAPS * max(population, 1.0)) / (gaps + PRIOR_GAPS)
    recency = frame["recency_days"].fill_null(np.nan).to_numpy().astype(np.float64)
    return frame.with_columns(pl.Series("overdue_ratio", recency / typical, dtype=pl.Float64))


def category_aggregates(spend: CategorySpend, cut: Cut) -> list[pl.Series]:
    """Per row of `cut`: category_breadth (categories bought before `t`) and top_category (highest spend;
    ties: first by name; null when none)."""
    timeline = spend.timeline  # its "customers" are the (customer, category) pairs
    start, end = timeline.starts(), timeline.all_positions(cut.day)
    bought = end > start
    breadth = np.bincount(spend.pair_code[bought], minlength=spend.customers)
    gross = np.where(bought, window_sum(spend.gross_units, start, end), -1)  # spend is never negative
    top = first_highest(gross, spend.pair_code, groups=spend.customers)
    return [
        pl.Series("category_breadth", breadth[cut.codes]),
        pick_series(spend.pair_category, top[cut.codes], "top_category"),
    ]


def first_highest(values: np.ndarray, group: np.ndarray, *, groups: int) -> np.ndarray:
    """Per group 0..groups-1: index of its first row with the group's highest value, -1 when that is negative
    or the group has no rows. Rows are sorted by `group`."""
    top = np.full(groups, -1, dtype=np.int64)
    if not len(values):
        return top
    firsts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    highest = np.maximum.reduceat(values, firsts)
    is_highest = values == np.repeat(highest, np.diff(np.r_[firsts, len(values)]))
    first = np.minimum.reduceat(np.where(is_highest, np.arange(len(values)), len(values)), firsts)
    found = highest >= 0
    top[group[firsts][found]] = first[found]
    return top


def quintile_score(values: pl.Expr, *, higher_is_better: bool) -> pl.Expr:
    """1..5 by average rank among the rows (ties share a score); 5 = best."""
    ranked = (values if higher_is_better else -values).rank("average")
    return ((ranked * 5 / pl.len()).ceil().clip(1, 5)).cast(pl.Float64)


# The columns `add_scores` ranks within the snapshot's population: their distribution is set by the ranking.
RANKED_COLUMNS = ("rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_segment")


def add_scores(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """Population step: RANKED_COLUMNS (rfm_r_score, rfm_f_score, rfm_m_score and rfm_segment) among `frame`'s rows."""
    scored = frame.with_columns(
        quintile_score(pl.col("recency_days"), higher_is_better=False).alias("rfm_r_score"),
        quintile_score(pl.col("frequency_all").cast(pl.Float64), higher_is_better=True).alias("rfm_f_score"),
        quintile_score(pl.col("monetary_all"), higher_is_better=True).alias("rfm_m_score"),
    )
    grid = {10 * r + f: name for r, row in SEGMENT_GRID.items() for f, name in row.items()}
    cell = (10 * pl.col("rfm_r_score") + pl.col("rfm_f_score")).cast(pl.Int64)
    return scored.with_columns(cell.replace_strict(grid, return_dtype=pl.String).alias("rfm_segment"))
