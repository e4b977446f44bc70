"""Cut validated events at a snapshot date: what was known just before midnight of `as_of`.

This module is the only place that filters events by time for features (DESIGN invariant 1).
The snapshot time `t` is midnight at the start of `as_of`; "before t" is strictly before.

Days are those of one business time zone (`features.timezone`; default the transactions source's
`timezone`). The validated files hold UTC instants; `in_business_time` (and its pandas twin) turns
their times into the wall clock of that zone, still typed UTC, wherever events are read for day
logic (the feature tables, the data's end, campaign outcomes). After it, midnight UTC of a date is
that date's midnight in the business zone and UTC day numbers are its days, so the rules below and
every day count downstream need no zone. With "UTC" it changes nothing.

Rules, per source:
- transactions: rows ordered before `t`; `delivered_at` at or after `t` becomes null (not yet
  delivered at `t`). `promised_delivery_at` is kept: the promise is made when ordering.
- feedback: rows submitted before `t` (feedback is known from `submitted_at`).
- support_tickets: tickets opened before `t`; `closed_at`, `first_response_at` and `status_known_at`
  at or after `t` become null (the ticket is open / unanswered at `t`), and `resolved` is null
  unless it is known before `t`: with the ticket's closed_at, or, for a ticket without one (resolved
  by status in an export without resolution times), from its `status_known_at` (the export's newest
  time). A ticket is open at `t` when its cut closed_at is null and its cut resolved is not true.
- loyalty_events: events that occurred before `t`.
- customers: static attributes; a customer who signed up at or after `t` did not exist yet and is
  dropped (a null `signup_at` is kept).

`cut_frame` applies one source's rule to a polars frame (extra columns are carried along, optional
columns may be absent); `cut_events` is the pandas face of it for `Events`. The feature engine reads
its prepared tables at many cuts without copying them, so it uses the same rules in another form,
`known_since`: the instant from which a row, or one of its later time values, is known — a value
is in the cut at `t` exactly when it is known since before `t`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import pyarrow as pa

from pipeline.contract import conform
from pipeline.errors import FeatureError
from pipeline.events import Events

Frame = pl.DataFrame | pl.LazyFrame
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def in_business_time(frame: Frame, timezone: str) -> Frame:
    """Every time column of `frame` as the wall clock of `timezone`, still typed UTC (polars, eager or lazy).

    The one conversion of validated events (UTC instants) for day logic: afterwards midnight UTC of a date is
    midnight of that date in `timezone`, and a UTC day number is the day of the business's calendar, so every
    function downstream keeps its UTC arithmetic. Differences of converted times are wall-clock differences (an
    hour off across a DST change): measure durations on the instants. In the hour a DST change repeats, two
    instants may share a wall time and a later one may read earlier: rows sort by their wall time there (days,
    counts and sums do not change; of two events in that hour, the "latest" is the later wall time).
    Unchanged (the same object) for "UTC".
    """
    if timezone == "UTC":
        return frame
    schema = frame.collect_schema()
    zoned = [name for name, dtype in schema.items() if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None]
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone(timezone).dt.replace_time_zone("UTC") for name in zoned
    ) if zoned else frame


def in_business_time_pandas(frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """`in_business_time` of a pandas frame (tz-aware datetime columns); a copy, or `frame` itself for "UTC"."""
    if timezone == "UTC":
        return frame
    zoned = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.DatetimeTZDtype)]
    return frame.assign(**{
        name: frame[name].dt.tz_convert(timezone).dt.tz_localize(None).dt.tz_localize("UTC") for name in zoned
    })


def instant_us(at: dt.datetime, timezone: str) -> int:
    """Microseconds since the epoch of the true instant whose wall clock in `timezone` is `at` (a business-time
    value, typed UTC; at a DST change's repeated hour its first instant)."""
    local = at.replace(tzinfo=None).replace(tzinfo=ZoneInfo(timezone)) if timezone != "UTC" else at
    return (local - EPOCH) // dt.timedelta(microseconds=1)


def snapshot_time(as_of: dt.date) -> dt.datetime:
    """Midnight at the start of `as_of` (business time, typed UTC: see the module docstring); raises FeatureError
    unless `as_of` is a plain date."""
    if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
        raise FeatureError(
            f"the snapshot date must be a datetime.date (features see events before its midnight), "
            f"got {as_of!r} of type {type(as_of).__name__}"
        )
    return dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC)


def _names(frame: Frame) -> list[str]:
    return frame.collect_schema().names()


def _null_from(column: str, t: dt.datetime) -> pl.Expr:
    """`column` where it is before `t`, else null."""
    return pl.when(pl.col(column) < t).then(pl.col(column)).otherwise(None).alias(column)


def _cut_transactions(frame: Frame, t: dt.datetime) -> Frame:
    cut = frame.filter(pl.col("ordered_at") < t)
    return cut.with_columns(_null_from("delivered_at", t)) if "delivered_at" in _names(cut) else cut


def _cut_feedback(frame: Frame, t: dt.datetime) -> Frame:
    return frame.filter(pl.col("submitted_at") < t)


def _cut_support_tickets(frame: Frame, t: dt.datetime) -> Frame:
    cut = frame.filter(pl.col("opened_at") < t)
    names = _names(cut)
    if "resolved" in names:  # judged on the uncut times, before they are nulled
        absent = [c for c in ("closed_at", "status_known_at") if c not in names]
        known = known_since("support_tickets", "resolved", absent=absent) < t
        cut = cut.with_columns(pl.when(known).then(pl.col("resolved")).alias("resolved"))
    return cut.with_columns([_null_from(c, t) for c in LATER_TIMES["support_tickets"] if c in names])


def _cut_loyalty_events(frame: Frame, t: dt.datetime) -> Frame:
    return frame.filter(pl.col("occurred_at") < t)


def _cut_customers(frame: Frame, t: dt.datetime) -> Frame:
    if "signup_at" not in _names(frame):
        return frame
    return frame.filter(pl.col("signup_at").is_null() | (pl.col("signup_at") < t))


# The time column that dates each row, and the later time values that are known only from their own time.
ROW_TIME = {"transactions": "ordered_at", "feedback": "submitted_at", "support_tickets": "opened_at",
            "loyalty_events": "occurred_at"}
LATER_TIMES = {"transactions": ("delivered_at",),
               "support_tickets": ("closed_at", "first_response_at", "status_known_at")}


def known_since(source: str, column: str | None = None, *, absent: Sequence[str] = ()) -> pl.Expr:
    """The instant from which a row of `source` (column None) or its later time value `column` is known.

    A row is known from its row time; a later time value (delivered_at, closed_at, first_response_at,
    status_known_at) from its own time, and never before its row (null while it has no value). A
    ticket's `resolved` is known with its `closed_at`, or, without one, from its `status_known_at`.
    This is `cut_frame`'s rule: at `t` a row is kept, and a value is not nulled, exactly when this
    instant is before `t`. `absent`: later time columns the frame lacks (read as null).
    """
    row = pl.col(ROW_TIME[source])
    if column is None:
        return row
    if column == "resolved" and source == "support_tickets":
        closed = known_since(source, "closed_at", absent=absent)
        by_status = known_since(source, "status_known_at", absent=absent)
        if "closed_at" in absent:
            return by_status
        return pl.when(pl.col("closed_at").is_not_null()).then(closed).otherwise(by_status)
    if column not in LATER_TIMES.get(source, ()):
        raise FeatureError(f"{source}.{column} is not a later time value; known: {LATER_TIMES.get(source, ())}")
    if column in absent:
        return pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    value = pl.col(column)
    return pl.when(value.is_not_null()).then(pl.max_horizontal(row, value))


_RULES: dict[str, Callable[[Frame, dt.datetime], Frame]] = {
    "transactions": _cut_transactions,
    "feedback": _cut_feedback,
    "support_tickets": _cut_support_tickets,
    "loyalty_events": _cut_loyalty_events,
    "customers": _cut_customers,
}


def cut_frame(frame: Frame, source: str, *, as_of: dt.date) -> Frame:
    """Apply the cut rule of `source` to a polars frame holding that source's time columns.

    Input: any polars DataFrame or LazyFrame (lazy: the cut joins the query plan, no copy) with
    the source's time column (plus any extra columns).
    Output: the rows and values known before midnight of `as_of` (same columns, same order): midnight in the
    business time zone when the frame's times are business time (`in_business_time`), else UTC.
    """
    if source not in _RULES:
        raise FeatureError(f"cannot cut unknown source {source!r}; known: {', '.join(_RULES)}")
    return _RULES[source](frame, snapshot_time(as_of))


def to_polars(frame: pd.DataFrame) -> pl.DataFrame:
    """A contract-shaped pandas frame as polars (via Arrow: much faster than `pl.from_pandas`)."""
    return pl.from_arrow(pa.Table.from_pandas(frame, preserve_index=False))  # type: ignore[return-value]


def cut_events(events: Events, *, as_of: dt.date) -> Events:
    """Every source of `events` cut at `as_of` (rules in the module docstring); input not mutated.

    Input and output: contract-shaped frames (see `pipeline.contract`), row order kept.
    """
    snapshot_time(as_of)
    cut = {name: cut_frame(to_polars(frame), name, as_of=as_of).to_pandas() for name, frame in events.items()}
    return Events.from_frames(**{name: conform(frame, name) for name, frame in cut.items()})


def latest_event_date(transactions: pd.DataFrame | pl.DataFrame, *, timezone: str = "UTC") -> dt.date | None:
    """The date in `timezone` of the latest order of validated `transactions` (UTC instants; None when there are
    none)."""
    column = transactions["ordered_at"]
    latest = column.max()
    if latest is None or pd.isna(latest):
        return None
    return pd.Timestamp(latest).tz_convert(timezone).date()
