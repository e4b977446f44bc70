"""RFM family: recency, frequency, monetary value, gaps, trend, returns, discounts, categories, scores.

Per-customer step (depends only on the customer's own cut events):
- `order_aggregations` -> polars aggregations for one group_by over the cut order parts,
- `order_features` -> the features computed from those aggregates,
- `category_aggregates` -> category_breadth, top_category from the cut category parts.
Population step: `add_scores` -> RFM quintile scores and named segments among eligible customers.

Orders, purchases and money units are defined in `pipeline.features.tables`. Days are fractional
(from timestamps) and measured back from the snapshot time `t` (midnight UTC of `as_of`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.registry import TREND_DAYS
from pipeline.features.tables import DAY_US, MONEY_UNITS
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


def order_aggregations(*, as_of: dt.date, cfg: FeaturesConfig) -> list[pl.Expr]:
    """Aggregations over one customer's cut order parts (internal columns start with '_').

    Conditions are masks inside plain sum/min/max (never `.filter` per group: much slower).
    """
    t = snapshot_time(as_of)
    at = pl.col("ordered_at")
    purchase, start, net = pl.col("is_purchase"), pl.col("is_order_start"), pl.col("net_units")

    def since(days: int) -> pl.Expr:
        return at >= t - dt.timedelta(days=days)

    def units_where(condition: pl.Expr) -> pl.Expr:
        return pl.when(condition).then(net).otherwise(0).sum()

    trend_recent = since(TREND_DAYS)
    trend_earlier = since(2 * TREND_DAYS) & ~trend_recent
    return [
        pl.when(purchase).then(at).min().alias("_first_purchase_at"),
        pl.when(purchase).then(at).max().alias("_last_purchase_at"),
        pl.when(start).then(at).max().alias("_last_order_at"),
        start.sum().alias("frequency_all"),
        *[(start & since(w)).sum().alias(f"frequency_{w}d") for w in cfg.windows_days],
        net.sum().alias("_monetary_all_units"),
        *[units_where(since(w)).alias(f"_monetary_{w}d_units") for w in cfg.windows_days],
        units_where(trend_recent).alias("_trend_recent_units"),
        units_where(trend_earlier).alias("_trend_earlier_units"),
        # Parts are sorted by time within a customer and polars keeps that order within groups.
        pl.col("last_gap_us").last().alias("_gap_last_us"),
        pl.col("return_lines").sum().alias("returns_count"),
        pl.col("return_units").sum().alias("_returns_units"),
        pl.col("discounted").cast(pl.Float64).mean().alias("discount_share"),
        pl.col("is_day_start").sum().alias("_purchase_days"),
    ]


def order_features(*, as_of: dt.date, cfg: FeaturesConfig) -> list[pl.Expr]:
    """RFM features from the columns of `order_aggregations`, plus `eligible` (bought in the lookback)."""
    t = snapshot_time(as_of)
    frequency = pl.col("frequency_all").cast(pl.Float64)
    recency = days_between(t, pl.col("_last_purchase_at"))
    gap_mean = pl.when(frequency >= 2).then(
        days_between(pl.col("_last_order_at"), pl.col("_first_purchase_at")) / (frequency - 1)
    )
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
        (pl.col("_gap_last_us") / DAY_US).alias("gap_last_days"),
        pl.when(gap_mean > 0).then(recency / gap_mean).alias("overdue_ratio"),
        pl.when(moved > 0).then((recent - earlier) / moved).alias("spend_trend"),
        (pl.col("_returns_units") / MONEY_UNITS).alias("returns_value"),
    ]


def category_aggregates(categories: pl.LazyFrame) -> pl.LazyFrame:
    """Cut category parts -> customer_id, category_breadth, top_category (highest spend; ties: first by name)."""
    per_category = categories.group_by("_key").agg(
        pl.col("gross_units").sum(), pl.col("customer_id", "category", "category_rank").first()
    )
    top = pl.col("category").sort_by("gross_units", "category_rank", descending=[True, False]).first()
    return (
        per_category.group_by("customer_id")
        .agg(pl.len().alias("category_breadth"), top.alias("top_category"))
        .with_columns(pl.col("top_category").cast(pl.String))
    )


def category_fill() -> list[pl.Expr]:
    """Customers without category data: category_breadth 0 (top_category stays null)."""
    return [pl.col("category_breadth").fill_null(0)]


def quintile_score(values: pl.Expr, *, higher_is_better: bool) -> pl.Expr:
    """1..5 by average rank among the rows (ties share a score); 5 = best."""
    ranked = (values if higher_is_better else -values).rank("average")
    return ((ranked * 5 / pl.len()).ceil().clip(1, 5)).cast(pl.Float64)


def add_scores(frame: pl.DataFrame) -> pl.DataFrame:
    """Population step: rfm_r_score, rfm_f_score, rfm_m_score and rfm_segment among `frame`'s rows."""
    scored = frame.with_columns(
        quintile_score(pl.col("recency_days"), higher_is_better=False).alias("rfm_r_score"),
        quintile_score(pl.col("frequency_all").cast(pl.Float64), higher_is_better=True).alias("rfm_f_score"),
        quintile_score(pl.col("monetary_all"), higher_is_better=True).alias("rfm_m_score"),
    )
    grid = {f"{r}{f}": name for r, row in SEGMENT_GRID.items() for f, name in row.items()}
    cell = pl.format("{}{}", pl.col("rfm_r_score").cast(pl.Int8), pl.col("rfm_f_score").cast(pl.Int8))
    return scored.with_columns(cell.replace_strict(grid, return_dtype=pl.String).alias("rfm_segment"))
