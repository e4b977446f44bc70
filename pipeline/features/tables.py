"""Validated events as polars tables shaped for fast per-customer aggregation.

`event_tables(events)` converts the contract-shaped pandas frames once (via Arrow) and
deduplicates order lines to *order parts* once: one row per (customer_id, order_id, ordered_at).
Many snapshots then cut and aggregate these tables (`cut_tables`, rules in `pipeline.snapshot`),
so the cost is one conversion plus one cheap pass per snapshot, linear in rows x snapshots.

Definitions used by every feature and by the labels:
- a *purchase line* is a transaction row with `amount >= 0`; a row with `amount < 0` is a return
  or refund line;
- an *order* is an `order_id` of a customer with at least one purchase line; it is timed at its
  first purchase line (`is_order_start`); a later line of the same order (a refund, say) counts
  at its own time;
- money is summed as integers of 1/10,000 of the currency unit (`*_units`), so that sums are exact
  and do not depend on row order or partitioning (the Dask path gives identical features).

Per-order flags are computed over all events once, yet stay point-in-time correct: each one
depends only on the customer's earlier (or same) parts, so cutting before or after computing them
gives the same values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import polars as pl

from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.snapshot import cut_frame, to_polars

MONEY_UNITS = 10_000  # money is summed as exact integers of 1/MONEY_UNITS of the currency unit
DAY_US = 86_400_000_000  # microseconds in a day


@dataclass(frozen=True)
class EventTables:
    """Polars tables built from `Events` by `event_tables` (column lists in each builder below)."""

    orders: pl.DataFrame
    categories: pl.DataFrame
    feedback: pl.DataFrame
    support_tickets: pl.DataFrame
    loyalty_events: pl.DataFrame
    customers: pl.DataFrame


# Which cut rule of pipeline.snapshot applies to each table.
TABLE_SOURCES = {
    "orders": "transactions",
    "categories": "transactions",
    "feedback": "feedback",
    "support_tickets": "support_tickets",
    "loyalty_events": "loyalty_events",
    "customers": "customers",
}


def money_units(column: str) -> pl.Expr:
    """A money column as exact integer units (see MONEY_UNITS)."""
    return (pl.col(column) * MONEY_UNITS).round(0).cast(pl.Int64)


def order_parts(transactions: pl.DataFrame) -> pl.DataFrame:
    """Order lines -> one row per (customer_id, order_id, ordered_at), sorted by customer then time.

    Output columns: customer_id (Categorical: grouping by its integer codes is fast), order_id,
    ordered_at, net_units (all lines), gross_units (purchase lines), is_purchase, return_lines,
    return_units (positive), discounted (a purchase line had a discount > 0; null when no purchase
    line states its discount, and on non-purchase parts), promised_delivery_at, delivered_at (of
    the purchase lines: the latest; null if any is undelivered), is_order_start, is_day_start
    (first purchase part of the customer's UTC day), last_gap_us (at each part: microseconds between
    the customer's latest order start so far and the order start before it; null before a second order).
    """
    purchase = pl.col("amount") >= 0
    units = money_units("amount")
    lines = transactions.lazy().select(
        pl.col("customer_id").cast(pl.Categorical),
        "order_id",
        "ordered_at",
        units.alias("net_units"),
        pl.when(purchase).then(units).otherwise(0).alias("gross_units"),
        purchase.alias("is_purchase"),
        (~purchase).cast(pl.Int64).alias("return_lines"),
        pl.when(purchase).then(0).otherwise(-units).alias("return_units"),
        (purchase & pl.col("discount").is_not_null()).alias("_discount_known"),
        (purchase & (pl.col("discount") > 0)).alias("_discounted"),
        pl.when(purchase).then(pl.col("promised_delivery_at")).alias("promised_delivery_at"),
        pl.when(purchase).then(pl.col("delivered_at")).alias("delivered_at"),
        (purchase & pl.col("delivered_at").is_null()).alias("_undelivered"),
    )
    # Plain sum/any/max aggregations only: polars runs them without per-group filtering.
    parts = lines.group_by("customer_id", "order_id", "ordered_at").agg(
        pl.col("net_units", "gross_units", "return_lines", "return_units").sum(),
        pl.col("is_purchase", "_discount_known", "_discounted", "_undelivered").any(),
        pl.col("promised_delivery_at", "delivered_at").max(),
    )
    parts = parts.with_columns(
        pl.when(pl.col("is_purchase") & pl.col("_discount_known")).then(pl.col("_discounted")).alias("discounted"),
        pl.when(pl.col("_undelivered")).then(None).otherwise(pl.col("delivered_at")).alias("delivered_at"),
        pl.col("customer_id").to_physical().alias("_code"),
        pl.col("order_id").hash().alias("_tie"),  # deterministic tie-break between orders at the same instant
    ).sort("_code", "ordered_at", "_tie")
    return parts.with_columns(part_flags()).drop("_discount_known", "_discounted", "_undelivered", "_code", "_tie").collect()


def part_flags() -> list[pl.Expr]:
    """is_order_start, is_day_start and last_gap_us over parts sorted by customer then time.

    Shifts and forward fills over the sorted frame (no joins, no per-group windows); a value
    carried from another customer is masked by comparing the customer codes.
    """
    purchase = pl.col("is_purchase")
    order_start = pl.struct("_code", "order_id", "is_purchase").is_first_distinct() & purchase
    day_start = pl.struct("_code", pl.col("ordered_at").dt.date(), "is_purchase").is_first_distinct() & purchase
    start_at = pl.when(order_start).then("ordered_at")
    start_code = pl.when(order_start).then("_code")
    previous_start_at = start_at.shift(1).forward_fill()
    previous_start_code = start_code.shift(1).forward_fill()
    # Gap at each order start (-1: the customer's first order), carried forward to later parts.
    gap_at_start = pl.when(order_start).then(
        pl.when(previous_start_code == pl.col("_code"))
        .then((pl.col("ordered_at") - previous_start_at).dt.total_microseconds())
        .otherwise(-1)
    )
    carried_gap = gap_at_start.forward_fill()
    carried_code = start_code.forward_fill()
    last_gap = pl.when((carried_code == pl.col("_code")) & (carried_gap >= 0)).then(carried_gap)
    return [order_start.alias("is_order_start"), day_start.alias("is_day_start"), last_gap.alias("last_gap_us")]


def category_parts(transactions: pl.DataFrame) -> pl.DataFrame:
    """Purchase lines with a category -> spend per customer, category and UTC day.

    Output columns: customer_id (Categorical), category, category_rank (lexical rank, for ties),
    ordered_at (midnight UTC of the day: a day is wholly before or after any snapshot), gross_units.
    """
    lines = transactions.lazy().filter((pl.col("amount") >= 0) & pl.col("category").is_not_null())
    per_day = lines.group_by(
        pl.col("customer_id").cast(pl.Categorical), "category", pl.col("ordered_at").dt.truncate("1d")
    ).agg(money_units("amount").sum().alias("gross_units"))
    per_day = per_day.collect()
    names = per_day["category"].unique().sort()  # rank the few distinct names, not every row
    ranks = dict(zip(names.to_list(), range(len(names)), strict=True))
    return per_day.with_columns(pl.col("category").replace_strict(ranks, return_dtype=pl.UInt32).alias("category_rank"))


def check_unique_customers(customers: pl.DataFrame) -> None:
    """Raise FeatureError when the customers source repeats a customer_id."""
    repeated = customers.filter(pl.col("customer_id").is_duplicated())
    if repeated.height:
        example = repeated["customer_id"].sort()[0]
        raise FeatureError(
            f"the customers source has {repeated['customer_id'].n_unique()} repeated customer_id values "
            f"(e.g. {example!r}); keep one row of static attributes per customer and re-run `churn ingest`"
        )


def event_tables(events: Events) -> EventTables:
    """Convert `events` (contract-shaped pandas frames) into `EventTables` (polars, prepared once)."""
    tx_columns = ["customer_id", "order_id", "ordered_at", "amount", "category", "discount",
                  "promised_delivery_at", "delivered_at"]
    transactions = to_polars(events.transactions[tx_columns])
    customers = to_polars(events.customers)
    check_unique_customers(customers)
    return EventTables(
        orders=order_parts(transactions),
        categories=category_parts(transactions),
        feedback=to_polars(events.feedback[["customer_id", "submitted_at", "kind", "score"]]).sort(
            "customer_id", "submitted_at", "kind", "score"
        ),
        support_tickets=to_polars(
            events.support_tickets[["customer_id", "opened_at", "closed_at", "first_response_at", "resolved"]]
        ),
        loyalty_events=to_polars(events.loyalty_events[["customer_id", "occurred_at", "kind", "points", "tier"]])
        .with_columns(money_units("points").abs().alias("points_units"))
        .sort("customer_id", "occurred_at", "kind", "points_units", "tier", nulls_last=True),
        customers=customers,
    )


def cut_tables(tables: EventTables, *, as_of: dt.date) -> EventTables:
    """Every table cut at `as_of` with its source's rule from `pipeline.snapshot` (order kept)."""
    return EventTables(
        **{f.name: cut_frame(getattr(tables, f.name), TABLE_SOURCES[f.name], as_of=as_of) for f in fields(tables)}
    )
