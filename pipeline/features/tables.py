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

import pandas as pd
import polars as pl

from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.snapshot import cut_frame, to_polars

MONEY_UNITS = 10_000  # money is summed as exact integers of 1/MONEY_UNITS of the currency unit
DAY_US = 86_400_000_000  # microseconds in a day


@dataclass(frozen=True)
class EventTables:
    """Polars tables built from `Events` by `event_tables` (columns in each builder's docstring)."""

    orders: pl.DataFrame
    categories: pl.DataFrame
    feedback: pl.DataFrame
    support_tickets: pl.DataFrame
    loyalty_events: pl.DataFrame
    loyalty_tiers: pl.DataFrame
    customers: pl.DataFrame


# Which cut rule of pipeline.snapshot applies to each table.
TABLE_SOURCES = {
    "orders": "transactions",
    "categories": "transactions",
    "feedback": "feedback",
    "support_tickets": "support_tickets",
    "loyalty_events": "loyalty_events",
    "loyalty_tiers": "loyalty_events",
    "customers": "customers",
}


def money_units(column: str) -> pl.Expr:
    """A money column as exact integer units (see MONEY_UNITS)."""
    return (pl.col(column) * MONEY_UNITS).round(0).cast(pl.Int64)


def order_parts(lines: pl.LazyFrame) -> pl.DataFrame:
    """Order lines -> one row per (customer, order, ordered_at), sorted by customer then time.

    Input: transactions with `_code` (integer customer code) added. Output columns: customer_id
    (Categorical), ordered_at, net_units (all lines), gross_units (purchase lines), is_purchase,
    return_lines, return_units (positive), discounted (a purchase line had a discount > 0; null when
    no purchase line states its discount, and on non-purchase parts), promised_delivery_at,
    delivered_at (of the purchase lines: the latest; null if any is undelivered), is_order_start,
    is_day_start (first purchase part of the customer's UTC day), last_gap_us (at each part:
    microseconds between the customer's latest order start so far and the order start before it;
    null before a second order).

    Orders are keyed by the 64-bit hash of order_id within a customer and instant (two different
    ids of one customer at the same microsecond would have to collide: odds below 1e-15).
    """
    purchase = pl.col("amount") >= 0
    units = money_units("amount")
    prepared = lines.select(
        "_code",
        "customer_id",
        pl.col("order_id").hash().alias("_order"),
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
    # Plain sum/any/max aggregations over integer keys: polars' fastest group-by path.
    parts = prepared.group_by("_code", "_order", "ordered_at").agg(
        pl.col("customer_id").first(),
        pl.col("net_units", "gross_units", "return_lines", "return_units").sum(),
        pl.col("is_purchase", "_discount_known", "_discounted", "_undelivered").any(),
        pl.col("promised_delivery_at", "delivered_at").max(),
    )
    parts = parts.with_columns(
        pl.when(pl.col("is_purchase") & pl.col("_discount_known")).then(pl.col("_discounted")).alias("discounted"),
        pl.when(pl.col("_undelivered")).then(None).otherwise(pl.col("delivered_at")).alias("delivered_at"),
        pl.col("ordered_at").dt.epoch("us").alias("_at_us"),
    ).sort("_code", "ordered_at", "_order")
    flagged = parts.with_columns(order_flags()).with_columns(last_gap()).select(
        "customer_id", "ordered_at", "net_units", "gross_units", "is_purchase", "return_lines", "return_units",
        "discounted", "promised_delivery_at", "delivered_at", "is_order_start", "is_day_start", "last_gap_us",
    )
    return flagged.collect()


def _carried(value: pl.Expr, where: pl.Expr, *, strictly_before: bool = False) -> pl.Expr:
    """`value` at the latest row (in frame order) where `where` holds, at or strictly before each row."""
    masked = pl.when(where).then(value)
    return (masked.shift(1) if strictly_before else masked).forward_fill()


def order_flags() -> list[pl.Expr]:
    """is_order_start and is_day_start over parts sorted by customer then time (shifts, no joins).

    A value carried from another customer is masked by comparing the carried customer code.
    """
    purchase, code = pl.col("is_purchase"), pl.col("_code")
    day = pl.col("_at_us") // DAY_US
    same_customer_before = _carried(code, purchase, strictly_before=True) == code
    same_day_before = _carried(day, purchase, strictly_before=True) == day
    new_day = purchase & ~(same_customer_before & same_day_before).fill_null(False)
    order_start = pl.struct("_code", "_order", "is_purchase").is_first_distinct() & purchase
    return [order_start.alias("is_order_start"), new_day.alias("is_day_start")]


def last_gap() -> pl.Expr:
    """last_gap_us: the gap before the customer's latest order start so far, carried to later parts."""
    start, code, at = pl.col("is_order_start"), pl.col("_code"), pl.col("_at_us")
    previous_at = _carried(at, start, strictly_before=True)
    previous_code = _carried(code, start, strictly_before=True)
    # At each order start: the gap to the previous one, or -1 for the customer's first order.
    gap_at_start = pl.when(previous_code == code).then(at - previous_at).otherwise(-1)
    carried_gap = _carried(gap_at_start, start)
    carried_code = _carried(code, start)
    return pl.when((carried_code == code) & (carried_gap >= 0)).then(carried_gap).alias("last_gap_us")


def category_parts(lines: pl.LazyFrame) -> pl.DataFrame:
    """Purchase lines with a category -> spend per customer, category and UTC day.

    Input: transactions with `_code`. Output columns: customer_id, category (both Categorical),
    category_rank (lexical rank, breaks ties), _key (customer code and rank in one integer),
    ordered_at (midnight UTC of the day: a day is wholly before or after any snapshot), gross_units.
    """
    with_category = (
        lines.filter((pl.col("amount") >= 0) & pl.col("category").is_not_null())
        .select("_code", "customer_id", pl.col("category").cast(pl.Categorical), "ordered_at", "amount")
        .collect()
    )
    # Rank the few distinct names (by their integer codes), not every row.
    names = with_category["category"].unique().cast(pl.String).sort()
    codes = names.cast(pl.Categorical).to_physical().to_list()
    rank = pl.col("category").to_physical().replace_strict(
        dict(zip(codes, range(len(codes)), strict=True)), return_dtype=pl.Int64
    )
    keyed = with_category.lazy().with_columns(
        (pl.col("_code").cast(pl.Int64) * max(1, len(codes)) + rank).alias("_key"),
        pl.col("ordered_at").dt.truncate("1d"),
    )
    per_day = keyed.group_by("_key", "ordered_at").agg(
        pl.col("customer_id", "category").first(), money_units("amount").sum().alias("gross_units")
    )
    return per_day.with_columns(rank.cast(pl.UInt32).alias("category_rank")).collect()


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
    """Convert `events` (contract-shaped pandas frames) into `EventTables` (polars, prepared once).

    customer_id is Categorical in every table (polars' global categories: the same id has the
    same integer code everywhere, so grouping and joining run on integers).
    Feedback is sorted by time then score, so "latest" is well defined (ties: the higher score);
    loyalty tiers (events that state a tier) by time then tier name. Raises FeatureError when the
    customers source repeats a customer_id.
    """
    tx_columns = ["customer_id", "order_id", "ordered_at", "amount", "category", "discount",
                  "promised_delivery_at", "delivered_at"]
    customer = pl.col("customer_id").cast(pl.Categorical)
    transactions = (
        to_polars(events.transactions[tx_columns])
        .with_columns(customer, customer.to_physical().alias("_code"))
    )
    customers = to_polars(events.customers)
    check_unique_customers(customers)

    def keyed(frame: pd.DataFrame, columns: list[str]) -> pl.DataFrame:
        return to_polars(frame[columns]).with_columns(customer)

    loyalty = keyed(events.loyalty_events, ["customer_id", "occurred_at", "kind", "points", "tier"])
    return EventTables(
        orders=order_parts(transactions.lazy()),
        categories=category_parts(transactions.lazy()),
        feedback=keyed(events.feedback, ["customer_id", "submitted_at", "kind", "score"]).sort("submitted_at", "score"),
        support_tickets=keyed(
            events.support_tickets, ["customer_id", "opened_at", "closed_at", "first_response_at", "resolved"]
        ),
        loyalty_events=loyalty.select(
            "customer_id", "occurred_at", "kind", money_units("points").abs().alias("points_units")
        ),
        loyalty_tiers=loyalty.filter(pl.col("tier").is_not_null())
        .select("customer_id", "occurred_at", "tier")
        .sort("occurred_at", "tier"),
        customers=customers.with_columns(customer),
    )


def cut_tables(tables: EventTables, *, as_of: dt.date) -> dict[str, pl.LazyFrame]:
    """Every table, as a LazyFrame cut at `as_of` with its source's rule from `pipeline.snapshot`.

    Lazy, so each cut is fused into the aggregation that reads it (no copy of the tables).
    """
    return {
        f.name: cut_frame(getattr(tables, f.name).lazy(), TABLE_SOURCES[f.name], as_of=as_of) for f in fields(tables)
    }
