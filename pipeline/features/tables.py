"""Validated events prepared once as per-customer timelines (`pipeline.features.timeline`).

`event_tables(events)` (pandas `Events`) and `event_tables_from_frames(frames)` (polars frames, e.g.
read straight from the validated Parquet) give `EventTables`: every source's rows grouped by customer
and sorted by time, with the per-row values the features sum or look up. Each snapshot then reads
these tables at its cut (`pipeline.features.build`) in time proportional to the number of customers.

Customers are the customers with at least one transaction row, numbered 0..n-1 in customer_id
order (so feature rows come out sorted). Transaction lines are grouped by the 64-bit hash of
customer_id; a second, independent hash checks that no two ids share one (FeatureError rather than
a silent merge). The other sources look their ids up exactly; their rows whose customer has no
transaction are dropped: no feature row is ever built for them.

Definitions used by every feature and by the labels:
- a *purchase line* is a transaction row with an amount above 0, or of 0 without a negative quantity
  (`pipeline.contract.purchase_line`); every other row (a negative amount, goods given back at no price)
  is a return or refund line;
- order lines are deduplicated to *order parts*, one per (customer, order_id, ordered_at), sorted by
  customer, time, then the hash of order_id;
- an *order* is an `order_id` of a customer with at least one purchase line; it is timed at its
  first purchase part (the `starts` column of the timeline); a later part of the same order (a refund, say) counts
  at its own time;
- money (and feedback scores) are summed as integers of 1/10,000 of the unit (`*_units`), so that
  sums are exact and do not depend on row order or partitioning (the Dask path gives identical
  features).

Every row and every later time value is keyed by the day from which it is known
(`pipeline.snapshot.known_since`), so a cut at midnight `t` keeps exactly what `cut_frame` keeps.

Days are those of the business time zone (`timezone`, `FeaturesConfig.timezone`): the frames, given in UTC
instants, are converted once here by `pipeline.snapshot.in_business_time`, and every time value is stored on
that wall clock. Durations are measured on the instants, before the conversion, so they stay exact across a
DST change: ticket response and resolution times, and the lateness of deliveries (`promised_instant_us`,
`delivered_instant_us` of the delivery streams, read against `Cut.t_instant_us`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass

import numpy as np
import polars as pl

from pipeline.contract import attribute_columns, empty_frame, purchase_line
from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.features.timeline import (
    PrefixSums,
    Timeline,
    carry_index,
    day_of,
    order_by,
    prefix_sums,
)
from pipeline.snapshot import in_business_time, known_since, to_polars

MONEY_UNITS = 10_000  # money and scores are summed as exact integers of 1/MONEY_UNITS of their unit
NULL_TIME = np.iinfo(np.int64).min  # a missing timestamp in microsecond arrays
NO_DAY = -(10**7)  # "no previous day" in day arrays: before any day, with room to add a window
# Distinct products are counted in these windows (each costs one sort of the customer-product days, done while
# the event tables are prepared, beside the order parts).
PRODUCT_WINDOWS = (90,)

# The columns of each validated source the features read.
SOURCE_COLUMNS = {
    "transactions": ["customer_id", "order_id", "ordered_at", "amount", "category", "discount",
                     "promised_delivery_at", "delivered_at", "quantity", "product_id"],
    "feedback": ["customer_id", "submitted_at", "kind", "score"],
    "support_tickets": ["customer_id", "opened_at", "closed_at", "first_response_at", "resolved", "status_known_at"],
    "loyalty_events": ["customer_id", "occurred_at", "kind", "points", "tier"],
    "customers": ["customer_id", "signup_at", "region", "acquisition_channel"],
}  # and, of the customers, the attribute_<slug> columns of sources.customers.attributes (`attributes` below)
FEEDBACK_KINDS = ("nps", "csat", "review")
# Filled with nulls when absent: optional line columns, and columns ingest derives (a validated file written before
# they existed lacks them).
OPTIONAL_COLUMNS = {"quantity": pl.Float64, "product_id": pl.String, "status_known_at": pl.Datetime("us", "UTC")}
LOW_RATING = {"nps": 6, "csat": 2, "review": 2}  # a rating at or below this is low
# Loyalty points by kind: on these the sign is the points' direction (LoyaltyLion writes a refund's reversal and a
# manual deduction as negative earns; Smile gives the sign-up bonus on the enroll row); these always take points
# off, whatever the sign (Smile writes redemptions positive, expiries negative). Other kinds (tier_change) move none.
SIGNED_KINDS = ("earn", "enroll")
SPENT_KINDS = ("redeem", "expire")


def money_units(column: str) -> pl.Expr:
    """A money column as exact integer units (see MONEY_UNITS)."""
    return (pl.col(column) * MONEY_UNITS).round(0).cast(pl.Int64)


def check_sums_fit(frame: pl.DataFrame, column: str) -> None:
    """Raise FeatureError unless the sum of |`column`| over all rows, in MONEY_UNITS, fits well inside
    int64: then no row's units and no sum over any subset of the rows can overflow (ingest bounds each
    row by ingest.max_abs_amount; this bounds the total)."""
    total = frame.select(pl.col(column).abs().sum()).item() or 0.0
    if not total * MONEY_UNITS < 2.0**62:  # half of int64's range: room for the float sum's rounding
        raise FeatureError(
            f"the validated {column} values add up to {total:.4g} in absolute value, more than the "
            f"{2.0**62 / MONEY_UNITS:.4g} that sums can hold exactly; check the export for mis-scaled values "
            "(e.g. cents read as units), lower ingest.max_abs_amount and re-run `churn ingest`"
        )


def _micros(column: str | pl.Expr) -> pl.Expr:
    """A UTC datetime as int64 microseconds, NULL_TIME when missing."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.dt.epoch("us").fill_null(NULL_TIME)


def _numpy(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return {name: frame[name].to_numpy() for name in frame.columns}


def _stream(codes: np.ndarray, days: np.ndarray, *, customers: int, **values: np.ndarray) -> Stream:
    """Rows (codes, days, values) -> a Stream sorted by (code, day) with prefix sums of each value."""
    order = order_by(codes, days)
    timeline = Timeline.build(codes[order], days[order], customers=customers)
    return Stream(timeline=timeline, sums=PrefixSums.of(**{name: v[order] for name, v in values.items()}))


@dataclass(frozen=True)
class Stream:
    """A timeline with prefix sums of some row values."""

    timeline: Timeline
    sums: PrefixSums


@dataclass(frozen=True)
class OrderParts:
    """Order parts sorted by (code, ordered_at, order): the timeline of the RFM and delivery features.

    Row arrays: `at_us`; prefix sums in `sums` (starts, purchases, net_units, return_lines,
    return_units, discount_known, discounted, day_starts, tracked, purchase_lines, gross_units,
    quantity_units, quantity_known, credit_parts: credit notes or cancellations, i.e. parts without a
    purchase line of an order with no purchase part so far (not a later refund of an earlier order); day_gap_sq: squared days since the previous purchase day, at each purchase day's
    first part); carried indexes of the latest
    purchase part at or before each part;
    `last_day_gap`: days between the latest purchase day so far and the purchase day before it
    (NULL_TIME when unknown).
    Per customer: `first_purchase_us`, `first_event_us` (first transaction row of any kind, e.g. a
    return of goods bought before the history). Delivery streams: `late` (parts late once their promise
    passes: count, promised_us), `late_delivered` (those delivered: count, delivered_us), `delivered`
    (tracked parts delivered: count), each keyed by the day its value becomes known.
    """

    timeline: Timeline
    at_us: np.ndarray
    sums: PrefixSums
    last_purchase: np.ndarray
    last_day_gap: np.ndarray
    first_purchase_us: np.ndarray
    first_event_us: np.ndarray
    late: Stream
    late_delivered: Stream
    delivered: Stream


@dataclass(frozen=True)
class CategorySpend:
    """Spend per (customer, category) pair and day (of the business time zone); pairs sorted by (code, category name).

    `timeline` counts pairs as its "customers"; `pair_code` (customer code of each pair),
    `pair_category` (category name of each pair, String); prefix sums `gross_units`; `customers`.
    """

    timeline: Timeline
    customers: int
    pair_code: np.ndarray
    pair_category: pl.Series
    gross_units: np.ndarray


@dataclass(frozen=True)
class ProductDays:
    """Days on which each (customer, product_id) pair was bought, as streams read like any other sum.

    Rows: one per pair and day with a purchase line of that product: `code` (customer), `day`,
    `previous` (the pair's previous purchase day, NO_DAY for its first). The distinct products a
    customer bought in the `w` days before a cut `t` are the rows with t - w <= day < t whose
    previous day is before t - w: a row counts for the cuts t in (max(day, previous + w), day + w],
    so +1 keyed by max(day, previous + w) and -1 keyed by day + w, summed over the keys before t
    (`window(w)`, built once per window and kept; the PRODUCT_WINDOWS when the tables are prepared).
    `first`: +1 at each pair's first day (all time).
    """

    code: np.ndarray
    day: np.ndarray
    previous: np.ndarray
    customers: int
    first: Stream
    _windows: dict = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # A lock cannot be pickled: without this, Dask could not move a partition's tables to another worker,
        # and distributed then waited forever for the task that needed them (dask/distributed#4439).
        with self._lock:
            return {**self.__dict__, "_windows": dict(self._windows), "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def window(self, days: int) -> Stream:
        """The stream whose sum of `delta` before a cut is the distinct products of the `days` before it."""
        with self._lock:
            if days not in self._windows:
                enters = np.maximum(self.day, self.previous + days)
                leaves = self.day + days
                counted = enters < leaves
                codes = np.r_[self.code[counted], self.code[counted]]
                keys = np.r_[enters[counted], leaves[counted]]
                delta = np.r_[np.ones(counted.sum(), np.int64), -np.ones(counted.sum(), np.int64)]
                self._windows[days] = _stream(codes, keys, customers=self.customers, delta=delta)
            return self._windows[days]


@dataclass(frozen=True)
class FeedbackRows:
    """Feedback sorted by (code, submitted_at, score): `at_us`, `score`; prefix sums per kind
    (`<kind>_count`, `<kind>_units`) and `low`, `rows`; carried last `nps` and `csat` rows."""

    timeline: Timeline
    at_us: np.ndarray
    score: np.ndarray
    sums: PrefixSums
    last_nps: np.ndarray
    last_csat: np.ndarray


@dataclass(frozen=True)
class TicketRows:
    """Tickets by opening day (`opened`: rows), closing day (`closed`: rows, timed, resolution_us,
    resolved_false) and first-response day (`responded`: rows, response_us).

    A ticket closes when its closed_at is known or, without one, when its resolved = true is known
    (from its status_known_at): `timed` counts the closed tickets with a closing time, the only ones
    with a resolution time (`resolution_us`)."""

    opened: Stream
    closed: Stream
    responded: Stream


@dataclass(frozen=True)
class LoyaltyRows:
    """Loyalty events sorted by (code, occurred_at): `at_us`, prefix sums (rows; earn_units: points added by
    earn and enroll rows with positive points; spent_units: points taken off, by redeem and expire rows whatever
    their sign and by earn and enroll rows with negative points; redeem_units), carried last redemption;
    `tiers`: events stating a tier sorted by (code, occurred_at, tier) with `tier` (String) per row."""

    timeline: Timeline
    at_us: np.ndarray
    sums: PrefixSums
    last_redeem: np.ndarray
    tiers: Timeline
    tier: pl.Series


@dataclass(frozen=True)
class Attributes:
    """Static attributes per customer code: `present` (in the customers source), `signup_us` (NULL_TIME
    when unknown), `region`, `acquisition_channel` (String, null when absent); `extra`: the attribute_<slug>
    columns of sources.customers.attributes by name, each gathered alike (null when absent), typed as the validated
    file types it (String, Float64 for a number; Null when the customers source has no such column)."""

    present: np.ndarray
    signup_us: np.ndarray
    region: pl.Series
    acquisition_channel: pl.Series
    extra: dict[str, pl.Series] = field(default_factory=dict)


@dataclass(frozen=True)
class EventTables:
    """Everything the features read, prepared once by `event_tables` (see the module docstring).

    `customer_ids`: the id of each customer code (String); the other fields are timelines.
    """

    customer_ids: pl.Series
    parts: OrderParts
    categories: CategorySpend
    products: ProductDays
    feedback: FeedbackRows
    tickets: TicketRows
    loyalty: LoyaltyRows
    attributes: Attributes

    @property
    def customers(self) -> int:
        return len(self.customer_ids)

    def __sizeof__(self) -> int:
        # What Dask's scheduler weighs a move of a partition's tables to another worker by (its `sizeof`): the
        # default, 56 bytes, made moving them look free, so tasks ran away from their tables.
        return object.__sizeof__(self) + _data_bytes(self)

    @property
    def orders(self) -> pl.DataFrame:
        """The order parts as a polars frame: customer_id (Enum), ordered_at, is_purchase (built on request)."""
        timeline, sums = self.parts.timeline, self.parts.sums
        codes = (timeline.keys >> timeline.keys.dtype.type(timeline.day_bits)).astype(np.uint32)
        return pl.DataFrame({
            "customer_id": pl.Series(codes).cat.to(pl.Enum(self.customer_ids)),
            "ordered_at": pl.Series(self.parts.at_us).cast(pl.Datetime("us", "UTC")),
            "is_purchase": np.diff(sums.matrix[:, sums.names.index("purchases")]) > 0,
        })


def _data_bytes(value: object) -> int:
    """Bytes of the arrays and series in `value` (a dataclass, dict, list or tuple of them, nested)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, pl.Series):
        return value.estimated_size()
    if is_dataclass(value):
        return sum(_data_bytes(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, dict):
        return sum(_data_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_data_bytes(item) for item in value)
    return 0


# --- customers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Codes:
    """Customer numbering: customer_id -> code, exactly (an Enum whose categories are the ids in code order)."""

    ids: pl.Enum

    def lookup(self, customer_id: pl.Series) -> np.ndarray:
        """Code of each id, -1 for ids without transactions."""
        codes = customer_id.cast(self.ids, strict=False).to_physical().cast(pl.Int64).fill_null(-1)
        return codes.to_numpy()


def check_attribute_columns(columns: Sequence[str], attributes: Sequence[str]) -> None:
    """Raise FeatureError when the validated customers' `columns` lack an attribute column of `attributes` (the
    attribute_<slug> columns of sources.customers.attributes): the file was validated before they were listed."""
    missing = [column for column in attributes if column not in columns]
    if missing:
        raise FeatureError(
            f"the validated customers lack {', '.join(missing)} (sources.customers.attributes): they were validated "
            "before the setting listed it; re-run `churn ingest`"
        )


def check_attribute_kinds(extra: Mapping[str, pl.Series], numbers: Sequence[str]) -> None:
    """Raise FeatureError when an attribute column of `extra` ({attribute_<slug>: values}) is typed otherwise than its
    kind: those of `numbers` (kind number) Float64, the others String (Null, without a customers source, is either):
    the validated customers were written before the setting gave it that kind."""
    for column, values in extra.items():
        wanted, said = (pl.Float64, "numbers") if column in numbers else (pl.String, "text")
        if values.dtype not in (wanted, pl.Null):
            held = "numbers" if values.dtype.is_numeric() else "text"
            raise FeatureError(
                f"the validated customers hold {column} as {held}, but sources.customers.attributes reads it as "
                f"{said} (kind {'number' if column in numbers else 'category'}): they were validated before the "
                "setting gave it that kind; re-run `churn ingest`"
            )


def check_unique_customers(customers: pl.DataFrame) -> None:
    """Raise FeatureError when the customers source repeats a customer_id."""
    repeated = customers.filter(pl.col("customer_id").is_duplicated())
    if repeated.height:
        example = repeated["customer_id"].sort()[0]
        raise FeatureError(
            f"the customers source has {repeated['customer_id'].n_unique()} repeated customer_id values "
            f"(e.g. {example!r}); keep one row of static attributes per customer and re-run `churn ingest`"
        )


# --- transactions --------------------------------------------------------------------------------


def _line_values(transactions: pl.DataFrame) -> pl.DataFrame:
    """Per order line: the integer values the order parts are built from."""
    purchase = purchase_line()
    units = money_units("amount")
    return transactions.select(
        pl.col("customer_id").hash().alias("hash"),
        pl.col("customer_id").hash(seed=1).alias("check"),
        pl.col("order_id").hash().alias("order"),
        _micros("ordered_at").alias("at_us"),
        units.alias("net_units"),
        pl.when(purchase).then(units).otherwise(0).alias("gross_units"),
        pl.when(purchase).then(money_units("quantity")).otherwise(0).fill_null(0).alias("quantity_units"),
        (purchase & pl.col("quantity").is_not_null()).alias("quantity_known"),
        purchase.alias("is_purchase"),
        (purchase & pl.col("discount").is_not_null()).alias("discount_known"),
        (purchase & (pl.col("discount") > 0)).fill_null(False).alias("discounted"),
        _micros(pl.when(purchase).then(pl.col("promised_delivery_at"))).alias("promised_us"),
        _micros(pl.when(purchase).then(pl.col("delivered_at"))).alias("delivered_us"),
        (purchase & pl.col("delivered_at").is_null()).alias("undelivered"),
    )


def _delivery_instants(transactions: pl.DataFrame) -> pl.DataFrame:
    """Per order line of UTC `transactions`: promised_instant_us, delivered_instant_us (as `_line_values` gives
    promised_us and delivered_us, but the true instants, for durations)."""
    purchase = purchase_line()
    return transactions.select(
        _micros(pl.when(purchase).then(pl.col("promised_delivery_at"))).alias("promised_instant_us"),
        _micros(pl.when(purchase).then(pl.col("delivered_at"))).alias("delivered_instant_us"),
    )


def _number_customers(
    transactions: pl.DataFrame, lines: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, pl.Series, _Codes]:
    """Order the lines by (customer, ordered_at, order hash) and number the customers in customer_id order.

    Returns (line order, code of each ordered line, customer_id of each code, numbering).
    """
    order, hashes = _line_order(lines["hash"], lines["at_us"], lines["order"])
    new = np.ones(len(hashes), dtype=bool)
    new[1:] = hashes[1:] != hashes[:-1]
    firsts = np.flatnonzero(new)
    checks = lines["check"][order]
    if len(firsts) and (np.minimum.reduceat(checks, firsts) != np.maximum.reduceat(checks, firsts)).any():
        raise FeatureError(
            "two different customer_id values have the same 64-bit hash, so customers cannot be told apart; "
            "rename one of them (e.g. add a prefix to every customer_id) and re-run `churn ingest`"
        )
    ids = transactions["customer_id"].gather(order[firsts])
    by_id = ids.arg_sort().to_numpy()  # customer_id order, so that feature rows come out sorted
    sizes = np.diff(np.r_[firsts, len(hashes)])
    regroup = runs_in_order(firsts, sizes, by_id)  # whole customers moved: keeps (time, order) within each
    line_codes = np.repeat(np.arange(len(by_id)), sizes[by_id])
    customer_ids = ids.gather(by_id).alias("customer_id")
    return order[regroup], line_codes, customer_ids, _Codes(ids=pl.Enum(customer_ids))


def runs_in_order(starts: np.ndarray, sizes: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Row indexes of the runs of rows [starts[r], starts[r] + sizes[r]) for r in `runs`, one run after the other.

    With the runs ordered by a key, this is the stable argsort of the rows by their run's key, without a sort.
    """
    taken = sizes[runs]
    shift = starts[runs] - (np.cumsum(taken) - taken)  # a run's first row minus its place in the output
    return np.repeat(shift, taken) + np.arange(int(taken.sum()))


def _line_order(hashes: np.ndarray, at_us: np.ndarray, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of the lines by (customer_id hash, ordered_at, order hash); returns (order, sorted hashes).

    Sorts by time, then stably by the hash's leading bits (`order_by`'s packed sort); a customer's
    lines then stay in time order. Runs of lines that the cut hash bits tie, or that tie in time
    with different orders, are re-sorted exactly if they are out of order (rare).
    """
    by_time = np.argsort(at_us)
    index_bits = max(1, int(len(hashes) - 1).bit_length())
    word = (hashes[by_time] >> np.uint64(index_bits)) << np.uint64(index_bits)
    word |= np.arange(len(hashes), dtype=np.uint64)
    word.sort()
    order = by_time[(word & np.uint64((1 << index_bits) - 1)).astype(np.int64)]
    keys = [hashes[order], at_us[order], orders[order]]
    later_smaller = np.zeros(max(0, len(order) - 1), dtype=bool)
    equal = np.ones(max(0, len(order) - 1), dtype=bool)
    for key in keys:
        later_smaller |= equal & (key[1:] < key[:-1])
        equal &= key[1:] == key[:-1]
    if later_smaller.any():
        prefix = word >> np.uint64(index_bits)
        run = np.cumsum(np.r_[True, prefix[1:] != prefix[:-1]])
        rows = np.flatnonzero(np.isin(run, run[1:][later_smaller]))
        exact = np.lexsort((order[rows], *[key[rows] for key in reversed(keys)]))
        order[rows] = order[rows][exact]
        keys[0][rows] = keys[0][rows][exact]
    return order, keys[0]


def _order_parts(lines: dict[str, np.ndarray], codes: np.ndarray, customers: int) -> OrderParts:
    """Lines sorted by (customer, time, order) -> OrderParts."""
    new = np.ones(len(codes), dtype=bool)
    new[1:] = (codes[1:] != codes[:-1]) | (lines["at_us"][1:] != lines["at_us"][:-1]) | (
        lines["order"][1:] != lines["order"][:-1]
    )
    firsts = np.flatnonzero(new)
    code, at_us, order = codes[firsts], lines["at_us"][firsts], lines["order"][firsts]

    def part_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values.astype(np.int64), firsts) if len(firsts) else np.zeros(0, np.int64)

    def part_any(values: np.ndarray) -> np.ndarray:
        return np.logical_or.reduceat(values, firsts) if len(firsts) else np.zeros(0, bool)

    def part_max(values: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(values, firsts) if len(firsts) else np.zeros(0, np.int64)

    is_purchase = part_any(lines["is_purchase"])
    net_units = part_sum(lines["net_units"])
    return_lines = part_sum(~lines["is_purchase"])
    return_units = -part_sum(np.where(lines["is_purchase"], 0, lines["net_units"]))
    discount_known = part_any(lines["discount_known"]) & is_purchase
    discounted = part_any(lines["discounted"]) & discount_known
    undelivered = part_any(lines["undelivered"])
    promised = part_max(lines["promised_us"])
    delivered = np.where(undelivered, NULL_TIME, part_max(lines["delivered_us"]))
    instants = ({"promised": promised, "delivered": delivered} if "promised_instant_us" not in lines else {
        "promised": part_max(lines["promised_instant_us"]),
        "delivered": np.where(undelivered, NULL_TIME, part_max(lines["delivered_instant_us"]))})

    is_start, is_credit = _order_firsts(code, order, is_purchase)
    days = day_of(at_us)
    timeline = Timeline.build(code, days, customers=customers)
    last_purchase = carry_index(is_purchase, code)
    tracked = promised != NULL_TIME
    day_starts = _day_starts(code, days, is_purchase)
    day_gaps = _gaps_at_starts(code, days, day_starts)
    sums = PrefixSums.of(
        starts=is_start,
        purchases=is_purchase,
        net_units=net_units,
        return_lines=return_lines,
        return_units=return_units,
        discount_known=discount_known,
        discounted=discounted,
        day_starts=day_starts,
        tracked=tracked,
        purchase_lines=part_sum(lines["is_purchase"]),
        gross_units=part_sum(lines["gross_units"]),
        quantity_units=part_sum(lines["quantity_units"]),
        quantity_known=part_sum(lines["quantity_known"]),
        credit_parts=is_credit,
        day_gap_sq=np.where(day_gaps == NULL_TIME, 0, day_gaps) ** 2,
    )
    first_purchase_us = np.full(customers, NULL_TIME, dtype=np.int64)
    purchase_rows = np.flatnonzero(is_purchase)
    first_rows = purchase_rows[np.r_[True, code[purchase_rows][1:] != code[purchase_rows][:-1]]] if len(
        purchase_rows) else purchase_rows
    first_purchase_us[code[first_rows]] = at_us[first_rows]
    first_event_us = np.full(customers, NULL_TIME, dtype=np.int64)
    has_parts = timeline.first[1:] > timeline.first[:-1]
    first_event_us[has_parts] = at_us[timeline.first[:-1][has_parts]]
    parts = OrderParts(
        timeline=timeline,
        at_us=at_us,
        sums=sums,
        last_purchase=last_purchase,
        last_day_gap=_carried(day_gaps, carry_index(day_starts, code)),
        first_purchase_us=first_purchase_us,
        first_event_us=first_event_us,
        **_delivery_streams(code, at_us, promised, delivered, customers=customers,
                            promised_instant=instants["promised"], delivered_instant=instants["delivered"]),
    )
    return parts


def _order_firsts(code: np.ndarray, order: np.ndarray, is_purchase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_start, is_credit) per part, from one sort of the parts by (customer, order), stable in time.

    is_start: the first purchase part of each (customer, order). is_credit: a part without a purchase
    line whose order has no purchase part at or before it (a credit note or cancellation, not a later
    refund of an earlier order)."""
    by_order = order_by(code, order)  # stable: each order's parts stay in time order
    new = np.ones(len(by_order), dtype=bool)
    new[1:] = (code[by_order][1:] != code[by_order][:-1]) | (order[by_order][1:] != order[by_order][:-1])
    purchase = is_purchase[by_order]
    bought = np.cumsum(purchase)
    group_start = np.maximum.accumulate(np.where(new, np.arange(len(by_order)), 0))
    bought_before = bought - purchase - np.where(group_start > 0, bought[np.maximum(group_start - 1, 0)], 0)
    is_start, is_credit = np.zeros(len(code), dtype=bool), np.zeros(len(code), dtype=bool)
    is_start[by_order] = purchase & (bought_before == 0)
    is_credit[by_order] = ~purchase & (bought_before == 0)
    return is_start, is_credit


def _day_starts(code: np.ndarray, days: np.ndarray, is_purchase: np.ndarray) -> np.ndarray:
    """The first purchase part of each customer's day."""
    purchases = np.flatnonzero(is_purchase)
    new = np.ones(len(purchases), dtype=bool)
    new[1:] = (code[purchases][1:] != code[purchases][:-1]) | (days[purchases][1:] != days[purchases][:-1])
    flags = np.zeros(len(code), dtype=bool)
    flags[purchases[new]] = True
    return flags


def _gaps_at_starts(code: np.ndarray, at: np.ndarray, is_start: np.ndarray) -> np.ndarray:
    """Per part: at a start, the time (in the unit of `at`) since the customer's previous start; NULL_TIME
    elsewhere and at a customer's first start."""
    starts = np.flatnonzero(is_start)
    gap_at_start = np.full(len(code), NULL_TIME, dtype=np.int64)
    same = np.zeros(len(starts), dtype=bool)
    same[1:] = code[starts][1:] == code[starts][:-1]
    gap_at_start[starts[1:][same[1:]]] = at[starts][1:][same[1:]] - at[starts][:-1][same[1:]]
    return gap_at_start


def _carried(values: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """Per part: `values` at the carried row index (NULL_TIME where none)."""
    out = np.full(len(values), NULL_TIME, dtype=np.int64)
    known = carried >= 0
    out[known] = values[carried[known]]
    return out


def _delivery_streams(code, at_us, promised, delivered, *, customers: int, promised_instant, delivered_instant
                      ) -> dict[str, Stream]:
    """Parts with a promised delivery, keyed by the day each delivery fact becomes known.

    At `t` a tracked part is late when delivered after its promise (known from its delivery) or
    still undelivered at `t` past its promise (from the promise, once ordered): so a part that
    is ever late (delivered after the promise, or never) is late from max(ordered, promised),
    and its lateness stops growing once the delivery is known, from max(ordered, delivered).
    Days from the business-time values (`promised`, `delivered`), lateness from the instants (`*_instant`).
    """
    tracked = promised != NULL_TIME
    has_delivery = delivered != NULL_TIME
    ever_late = np.flatnonzero(tracked & (~has_delivery | (delivered_instant > promised_instant)))
    late_delivered = ever_late[has_delivery[ever_late]]
    delivered_rows = np.flatnonzero(tracked & has_delivery)
    ones = np.ones(len(code), dtype=np.int64)
    return {
        "late": _stream(code[ever_late], day_of(np.maximum(at_us, promised)[ever_late]), customers=customers,
                        rows=ones[ever_late], promised_us=promised_instant[ever_late]),
        "late_delivered": _stream(code[late_delivered], day_of(np.maximum(at_us, delivered)[late_delivered]),
                                  customers=customers, rows=ones[late_delivered],
                                  delivered_us=delivered_instant[late_delivered]),
        "delivered": _stream(code[delivered_rows], day_of(np.maximum(at_us, delivered)[delivered_rows]),
                             customers=customers, rows=ones[delivered_rows]),
    }


def _category_spend(
    category: pl.Series, lines: dict[str, np.ndarray], order: np.ndarray, codes: np.ndarray, customers: int
) -> CategorySpend:
    """Purchase lines with a category -> spend per (customer, category, day).

    `category`: the transactions' category column (input order); `lines`, `codes`: the line values
    and customer codes in `order` (sorted by customer, then time).
    """
    names = category.drop_nulls().unique().sort()
    rank = category.cast(pl.Enum(names)).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()[order]
    keep = np.flatnonzero(lines["is_purchase"] & (rank >= 0))
    pair = codes[keep] * max(1, len(names)) + rank[keep]
    by_pair = order_by(pair)  # stable: lines stay in time order within a pair
    pair, days, units = pair[by_pair], day_of(lines["at_us"][keep][by_pair]), lines["net_units"][keep][by_pair]
    new_day = np.ones(len(pair), dtype=bool)
    new_day[1:] = (pair[1:] != pair[:-1]) | (days[1:] != days[:-1])
    firsts = np.flatnonzero(new_day)
    day_units = np.add.reduceat(units, firsts) if len(firsts) else units[:0]
    pair, days = pair[firsts], days[firsts]
    new_pair = np.ones(len(pair), dtype=bool)
    new_pair[1:] = pair[1:] != pair[:-1]
    pairs = pair[new_pair]
    pair_index = np.cumsum(new_pair) - 1
    return CategorySpend(
        timeline=Timeline.build(pair_index, days, customers=len(pairs)),
        customers=customers,
        pair_code=(pairs // max(1, len(names))).astype(np.int64),
        pair_category=names.gather(pairs % max(1, len(names))) if len(pairs) else names.clear(),
        gross_units=prefix_sums(day_units),
    )


def _product_days(
    product: pl.Series, lines: dict[str, np.ndarray], order: np.ndarray, codes: np.ndarray, customers: int
) -> ProductDays:
    """Purchase lines with a product_id -> the days each (customer, product) pair was bought (`ProductDays`).

    `product`: the transactions' product_id column (input order); `lines`, `codes`: line values and
    customer codes in `order` (sorted by customer, then time).
    """
    rank = product.cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()[order]
    keep = np.flatnonzero(lines["is_purchase"] & (rank >= 0))
    kinds = int(rank.max()) + 1 if len(rank) else 1
    pair = codes[keep] * kinds + rank[keep]
    by_pair = order_by(pair)  # stable: lines stay in time order within a pair
    pair, days = pair[by_pair], day_of(lines["at_us"][keep][by_pair])
    new_day = np.ones(len(pair), dtype=bool)
    new_day[1:] = (pair[1:] != pair[:-1]) | (days[1:] != days[:-1])
    pair, days = pair[new_day], days[new_day]
    first = np.ones(len(pair), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    previous = np.where(first, NO_DAY, np.r_[NO_DAY, days[:-1]])
    code = (pair // kinds).astype(np.int64)
    ones = np.ones(int(first.sum()), dtype=np.int64)
    product_days = ProductDays(code=code, day=days, previous=previous, customers=customers,
                               first=_stream(code[first], days[first], customers=customers, delta=ones))
    for window in PRODUCT_WINDOWS:  # here, in the preparation's thread pool, not in the first snapshot
        product_days.window(window)
    return product_days


# --- other sources -------------------------------------------------------------------------------


def _keyed_order(frame: pl.DataFrame, codes: _Codes, source: str, *ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of customers with transactions in order of (code, row time, *ties): (row indexes, their codes)."""
    code = codes.lookup(frame["customer_id"])
    kept = np.flatnonzero(code >= 0)
    at = _numpy(frame.select(_micros(known_since(source)).alias("at")))["at"][kept]
    tie_keys = [_sortable(frame[name].to_numpy()[kept]) for name in ties]
    order = kept[order_by(code[kept], at, *tie_keys)]
    return order, code[order]


def _sortable(values: np.ndarray) -> np.ndarray:
    """Integers ordered like `values` (floats via their IEEE bits)."""
    if values.dtype.kind == "f":
        bits = values.astype(np.float64).view(np.int64)
        return np.where(bits < 0, bits ^ np.int64(0x7FFF_FFFF_FFFF_FFFF), bits)
    return values


def _feedback_rows(feedback: pl.DataFrame, codes: _Codes, customers: int) -> FeedbackRows:
    order, code = _keyed_order(feedback, codes, "feedback", "score")
    kind, score = pl.col("kind"), pl.col("score")
    low = pl.any_horizontal([(kind == k) & (score <= limit) for k, limit in LOW_RATING.items()])
    values = _numpy(feedback.select(
        _micros("submitted_at").alias("at_us"),
        score.alias("score"),
        money_units("score").alias("units"),
        low.alias("low"),
        *[(kind == k).alias(k) for k in FEEDBACK_KINDS],
    ))
    values = {name: v[order] for name, v in values.items()}
    sums = PrefixSums.of(
        rows=np.ones(len(code), dtype=np.int64),
        low=values["low"],
        **{f"{k}_count": values[k] for k in FEEDBACK_KINDS},
        **{f"{k}_units": np.where(values[k], values["units"], 0) for k in FEEDBACK_KINDS},
    )
    return FeedbackRows(
        timeline=Timeline.build(code, day_of(values["at_us"]), customers=customers),
        at_us=values["at_us"],
        score=values["score"],
        sums=sums,
        last_nps=carry_index(values["nps"], code),
        last_csat=carry_index(values["csat"], code),
    )


def _ticket_rows(tickets: pl.DataFrame, codes: _Codes, customers: int, *, timezone: str) -> TicketRows:
    """UTC `tickets` -> TicketRows: days of `timezone`, response and resolution times from the instants."""
    code = codes.lookup(tickets["customer_id"])
    timed = pl.col("closed_at").is_not_null()
    closes = timed | (pl.col("resolved") == True).fill_null(False)  # noqa: E712 (null-aware)
    values = _numpy(pl.concat([in_business_time(tickets, timezone).select(
        _micros(known_since("support_tickets")).alias("opened_us"),
        _micros(pl.when(closes).then(known_since("support_tickets", "resolved"))).alias("closed_known_us"),
        _micros(known_since("support_tickets", "first_response_at")).alias("responded_known_us"),
    ), tickets.select(
        timed.cast(pl.Int64).alias("timed"),
        (pl.col("closed_at") - pl.col("opened_at")).dt.total_microseconds().fill_null(0).alias("resolution_us"),
        (pl.col("first_response_at") - pl.col("opened_at")).dt.total_microseconds().fill_null(0).alias("response_us"),
        (pl.col("resolved") == False).fill_null(False).alias("resolved_false"),  # noqa: E712 (null-aware)
    )], how="horizontal"))
    ones = np.ones(len(code), dtype=np.int64)
    kept = code >= 0
    closed = np.flatnonzero(kept & (values["closed_known_us"] != NULL_TIME))
    responded = np.flatnonzero(kept & (values["responded_known_us"] != NULL_TIME))
    opened = np.flatnonzero(kept)
    return TicketRows(
        opened=_stream(code[opened], day_of(values["opened_us"][opened]), customers=customers, rows=ones[opened]),
        closed=_stream(code[closed], day_of(values["closed_known_us"][closed]), customers=customers,
                       rows=ones[closed], timed=values["timed"][closed], resolution_us=values["resolution_us"][closed],
                       resolved_false=values["resolved_false"][closed]),
        responded=_stream(code[responded], day_of(values["responded_known_us"][responded]), customers=customers,
                          rows=ones[responded], response_us=values["response_us"][responded]),
    )


def _loyalty_rows(loyalty: pl.DataFrame, codes: _Codes, customers: int) -> LoyaltyRows:
    check_sums_fit(loyalty, "points")
    order, code = _keyed_order(loyalty, codes, "loyalty_events")
    kind = pl.col("kind")
    signed = money_units("points").fill_null(0)  # events without points move no points
    adds = kind.is_in(SIGNED_KINDS)
    values = _numpy(loyalty.select(
        _micros("occurred_at").alias("at_us"),
        pl.when(adds & (signed > 0)).then(signed).otherwise(0).alias("earn_units"),
        pl.when(kind.is_in(SPENT_KINDS)).then(signed.abs())
        .when(adds & (signed < 0)).then(-signed).otherwise(0).alias("spent_units"),
        pl.when(kind == "redeem").then(signed.abs()).otherwise(0).alias("redeem_units"),
        (kind == "redeem").fill_null(False).alias("redeem"),
    ))
    values = {name: v[order] for name, v in values.items()}
    stated = loyalty.filter(pl.col("tier").str.strip_chars() != "")  # a blank tier states none
    names = stated["tier"].unique().sort()
    stated = stated.with_columns(
        pl.col("tier").replace_strict(names, pl.int_range(len(names), eager=True), return_dtype=pl.Int64)
        .alias("_tier_rank")
    )
    tier_order, tier_code = _keyed_order(stated, codes, "loyalty_events", "_tier_rank")
    tier_rows = stated[tier_order]
    return LoyaltyRows(
        timeline=Timeline.build(code, day_of(values["at_us"]), customers=customers),
        at_us=values["at_us"],
        sums=PrefixSums.of(rows=np.ones(len(code), dtype=np.int64),
                           **{name: values[name] for name in ("earn_units", "spent_units", "redeem_units")}),
        last_redeem=carry_index(values["redeem"], code),
        tiers=Timeline.build(tier_code, day_of(_numpy(tier_rows.select(_micros("occurred_at")))["occurred_at"]),
                             customers=customers),
        tier=tier_rows["tier"],
    )


def _attributes(customers_frame: pl.DataFrame, codes: _Codes, customers: int) -> Attributes:
    check_unique_customers(customers_frame)
    code = codes.lookup(customers_frame["customer_id"])
    kept = np.flatnonzero(code >= 0)
    index = np.full(customers, -1, dtype=np.int64)
    index[code[kept]] = kept
    present = index >= 0
    signup_us = np.full(customers, NULL_TIME, dtype=np.int64)
    signup_us[code[kept]] = _numpy(customers_frame.select(_micros("signup_at")))["signup_at"][kept]
    rows = pl.Series(index).set(pl.Series(~present), None)  # null index -> null value

    return Attributes(
        present=present,
        signup_us=signup_us,
        region=customers_frame["region"].gather(rows),
        acquisition_channel=customers_frame["acquisition_channel"].gather(rows),
        extra={name: customers_frame[name].gather(rows) for name in attribute_columns(customers_frame.columns)},
    )


# --- all tables ----------------------------------------------------------------------------------


def event_tables_from_frames(
    frames: Mapping[str, pl.DataFrame], *, timezone: str = "UTC", attributes: Sequence[str] = ()
) -> EventTables:
    """Polars frames of the validated sources (at least `SOURCE_COLUMNS`; UTC instants; missing sources empty)
    -> EventTables, on the days of the business time zone `timezone`. `attributes`: the customers' attribute columns
    to keep (`FeaturesConfig.attribute_columns`; all null when the customers source is missing or has no rows).

    Raises FeatureError when the customers source repeats a customer_id, or its rows lack an attribute column.
    """
    def frame(name: str) -> pl.DataFrame:
        wanted = [*SOURCE_COLUMNS[name], *(attributes if name == "customers" else ())]
        given = frames[name] if name in frames else to_polars(empty_frame(name)[SOURCE_COLUMNS[name]])
        if name == "customers" and given.height:
            check_attribute_columns(given.columns, attributes)
        # an attribute without a customers source: Null, which the feature casts to its kind
        absent = {c: OPTIONAL_COLUMNS.get(c, pl.Null) for c in wanted if c not in given.columns
                  and (c in OPTIONAL_COLUMNS or c in attributes)}
        if absent:  # frames from before these columns were read: the optional columns are unknown
            given = given.with_columns(pl.lit(None, dtype=dtype).alias(c) for c, dtype in absent.items())
        return given.select(wanted)

    transactions = frame("transactions")
    check_sums_fit(transactions, "amount")
    check_sums_fit(transactions, "quantity")
    lines = _numpy(_line_values(in_business_time(transactions, timezone)))
    if timezone != "UTC":
        lines.update(_numpy(_delivery_instants(transactions)))
    order, line_codes, customer_ids, codes = _number_customers(transactions, lines)
    customers = len(customer_ids)
    del lines["hash"], lines["check"]
    for name in list(lines):  # one column at a time: each unsorted column is freed as soon as it is sorted
        lines[name] = lines.pop(name)[order]
    # The tables are independent from here on; numpy and polars release the GIL in their heavy loops,
    # so building them side by side uses both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        categories = pool.submit(_category_spend, transactions["category"], lines, order, line_codes, customers)
        products = pool.submit(_product_days, transactions["product_id"], lines, order, line_codes, customers)
        feedback = pool.submit(_feedback_rows, in_business_time(frame("feedback"), timezone), codes, customers)
        tickets = pool.submit(_ticket_rows, frame("support_tickets"), codes, customers, timezone=timezone)
        loyalty = pool.submit(_loyalty_rows, in_business_time(frame("loyalty_events"), timezone), codes, customers)
        attributes = pool.submit(_attributes, in_business_time(frame("customers"), timezone), codes, customers)
        parts = _order_parts(lines, line_codes, customers)
        del lines
        return EventTables(
            customer_ids=customer_ids,
            parts=parts,
            categories=categories.result(),
            products=products.result(),
            feedback=feedback.result(),
            tickets=tickets.result(),
            loyalty=loyalty.result(),
            attributes=attributes.result(),
        )


def customer_partitions(frames: Mapping[str, pl.DataFrame], *, partitions: int) -> Iterator[dict[str, pl.DataFrame]]:
    """`frames` split by customer, one partition at a time: partition k holds every source's rows whose
    customer_id falls in the k-th of `partitions` ranges of customer_id (in sorted order, with about the
    same number of transaction rows each; `partition_bounds`), in input order. As the ranges follow each
    other, the partitions' customers in customer_id order, concatenated, are in customer_id order: the
    population step needs no sort. Partitions are made on demand, so only one is held besides `frames`.
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    if partitions == 1:
        yield dict(frames)
        return
    rows = frames["transactions"] if "transactions" in frames else pl.concat(
        [frame.select("customer_id") for frame in frames.values()])
    bounds = partition_bounds(rows["customer_id"], partitions=partitions)
    numbers = {name: bounds.search_sorted(frame["customer_id"], side="right").to_numpy()
               for name, frame in frames.items()}
    for number in range(partitions):
        yield {name: frame.filter(pl.Series(numbers[name] == number)) for name, frame in frames.items()}


def partition_bounds(customer_id: pl.Series, *, partitions: int, sample_rows: int = 250_000) -> pl.Series:
    """The customer_ids that start partitions 1..`partitions`-1 (sorted, distinct): the ids where the rows of
    `customer_id` (one per row, so a customer weighs its rows), counted in id order, pass k/`partitions`
    of all rows. A customer never straddles two partitions; fewer distinct ids give fewer bounds.

    Above `sample_rows` rows the rows are counted on every n-th row (about `sample_rows` of them), so the
    partitions hold about, not exactly, equal rows: counting 10M string ids took 1.5-1.9 s, the sample
    0.07 s. The bounds only split the work; the features do not depend on them.
    """
    every = max(1, len(customer_id) // max(1, sample_rows))
    counted = customer_id.gather_every(every) if every > 1 else customer_id
    counts = counted.drop_nulls().value_counts(name="rows").sort("customer_id")
    before = counts["rows"].cum_sum().to_numpy() - counts["rows"].to_numpy()  # rows of the ids before each
    targets = np.arange(1, partitions) * (len(counted) / partitions)
    starts = np.unique(np.searchsorted(before, targets))  # first id with at least the target rows before it
    return counts["customer_id"].gather(starts[(starts > 0) & (starts < counts.height)])


def partitioned_event_tables(
    frames: Mapping[str, pl.DataFrame], *, partitions: int, timezone: str = "UTC", attributes: Sequence[str] = ()
) -> tuple[EventTables, ...]:
    """`event_tables_from_frames` of each customer partition (`customer_partitions`), built one after the other.

    The tables of all partitions together hold the same timelines as the tables of all customers, but the
    memory used while preparing them is that of one partition.
    """
    return tuple(event_tables_from_frames(part, timezone=timezone, attributes=attributes)
                 for part in customer_partitions(frames, partitions=partitions))


def event_tables(events: Events, *, timezone: str = "UTC", attributes: Sequence[str] = ()) -> EventTables:
    """Convert `events` (contract-shaped pandas frames, UTC instants; the customers' with their attribute columns)
    into `EventTables` on the days of `timezone` (prepared once, see the module docstring), keeping the customers'
    attribute columns `attributes` (`event_tables_from_frames`).

    Raises FeatureError when the customers source repeats a customer_id, or its rows lack an attribute column.
    """
    return event_tables_from_frames({  # conformed: only the customers have attribute columns
        name: to_polars(frame[[*SOURCE_COLUMNS[name], *attribute_columns(frame.columns)]])
        for name, frame in events.items()
    }, timezone=timezone, attributes=attributes)
