"""Service family: support tickets and deliveries (per-customer only).

Tickets (cut: a ticket open at `t` has null closed_at/resolved; an unanswered one null
first_response_at): counts by window of `opened_at`, open tickets, mean hours to first reply and to
closing, and the share unresolved (open at `t`, or closed with resolved = false).

Deliveries (from cut order parts, purchases with a promised date): an order is late when it was
delivered after its promise, or is still undelivered at `t` past its promise; lateness is the
delay in days (up to `t` when still undelivered). Undelivered orders: promised, not delivered by `t`.
Durations are summed as exact integer microseconds (order-independent results).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.tables import DAY_US
from pipeline.snapshot import snapshot_time

HOUR_US = 3_600_000_000


def _mean_us(durations: pl.Expr) -> pl.Expr:
    """Exact mean of integer microsecond durations (null when there are none)."""
    return pl.when(durations.count() > 0).then(durations.sum() / durations.count())


def ticket_aggregates(tickets: pl.LazyFrame, *, as_of: dt.date, cfg: FeaturesConfig) -> pl.LazyFrame:
    """Cut tickets -> one row per customer with tickets: the ticket features."""
    t = snapshot_time(as_of)
    opened = pl.col("opened_at")
    response_us = (pl.col("first_response_at") - opened).dt.total_microseconds()
    resolution_us = (pl.col("closed_at") - opened).dt.total_microseconds()
    unresolved = pl.col("closed_at").is_null() | (pl.col("resolved") == False)  # noqa: E712 (null-aware)
    return tickets.group_by("customer_id").agg(
        *[(opened >= t - dt.timedelta(days=w)).sum().alias(f"tickets_{w}d") for w in cfg.windows_days],
        pl.col("closed_at").is_null().sum().alias("open_tickets"),
        (_mean_us(response_us) / HOUR_US).alias("first_response_hours_mean"),
        (_mean_us(resolution_us) / HOUR_US).alias("resolution_hours_mean"),
        unresolved.fill_null(False).cast(pl.Float64).mean().alias("unresolved_share"),
    )


def ticket_fill(cfg: FeaturesConfig) -> list[pl.Expr]:
    """Customers without tickets: counts 0 (means and shares stay NaN)."""
    return [pl.col(c).fill_null(0) for c in (*[f"tickets_{w}d" for w in cfg.windows_days], "open_tickets")]


def delivery_aggregations(*, as_of: dt.date) -> list[pl.Expr]:
    """Aggregations over one customer's cut order parts: late_deliveries, undelivered_orders, lateness.

    (Order parts carry delivery dates of purchase lines only; see pipeline.features.tables.)
    """
    t = snapshot_time(as_of)
    promised, delivered = pl.col("promised_delivery_at"), pl.col("delivered_at")
    tracked = promised.is_not_null()
    delivered_late = tracked & delivered.is_not_null() & (delivered > promised)
    overdue = tracked & delivered.is_null() & (promised < t)
    late = delivered_late | overdue
    lateness_us = (
        pl.when(delivered_late).then(delivered - promised).when(overdue).then(pl.lit(t) - promised)
    ).dt.total_microseconds()
    return [
        late.sum().alias("late_deliveries"),
        (pl.when(late.sum() > 0).then(lateness_us.sum() / late.sum()) / DAY_US).alias("lateness_days_mean"),
        (tracked & delivered.is_null()).sum().alias("undelivered_orders"),
    ]
