"""Churn labels of a snapshot, from the future only (DESIGN invariant 2).

Eligible customers at snapshot `t` (midnight of `as_of` in the business time zone, `features.timezone`):
those with a purchase in `[t - lookback_days, t)`; churned = 1 when they make no purchase in `[t, t + horizon_days)`.
A purchase is a purchase line (`pipeline.contract.purchase_line`; returns and refunds are not purchases) —
the same definitions as the features (`pipeline.features.tables`), so the labelled customers are
exactly the rows of `build_features` for the same date. Labels are joined to the feature rows
only in the feature files used for training; scoring never sees them.

`churn_labels` applies the rule to purchase rows; `churn_labels_from_tables` reads the same rule
off the order-part timeline prepared for the features (no pass over the purchases per snapshot).
`labels_and_came_back` also counts the customers labelled churned who purchased in the horizon after their
label window, for `pause_warning`: where many did, the label marks pauses. `yearly_gap_churners` counts those whose
last two purchase days lie about a year apart, for `yearly_buyers_warning`: annual plans and yearly purchases are
labelled churned between one and the next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import polars as pl

from pipeline.contract import purchase_line
from pipeline.features.tables import EventTables
from pipeline.features.timeline import Cut
from pipeline.snapshot import in_business_time, snapshot_time, to_polars


def purchase_times(transactions: pd.DataFrame | pl.DataFrame) -> pl.LazyFrame:
    """Contract-shaped transactions -> purchases: customer_id, ordered_at (the purchase lines,
    `pipeline.contract.purchase_line`)."""
    frame = to_polars(transactions[["customer_id", "ordered_at", "amount", "quantity"]]) if isinstance(
        transactions, pd.DataFrame
    ) else transactions
    return frame.lazy().filter(purchase_line()).select("customer_id", "ordered_at")


def churn_labels(
    purchases: pl.LazyFrame | pl.DataFrame, *, as_of: dt.date, lookback_days: int, horizon_days: int
) -> pd.DataFrame:
    """Purchases (customer_id, ordered_at) -> labels: customer_id ("str"), churned (int8), sorted by customer_id."""
    t = snapshot_time(as_of)
    at = pl.col("ordered_at")
    window = purchases.lazy().filter((at >= t - dt.timedelta(days=lookback_days)) & (at < t + dt.timedelta(days=horizon_days)))
    labels = (
        window.group_by("customer_id")
        .agg((at < t).any().alias("_eligible"), (at >= t).any().alias("_returned"))
        .filter(pl.col("_eligible"))
        .select(pl.col("customer_id").cast(pl.String), (~pl.col("_returned")).cast(pl.Int8).alias("churned"))
        .sort("customer_id")
        .collect()
    )
    return labels.to_pandas().astype({"customer_id": "str", "churned": "int8"})


def churn_labels_from_tables(
    tables: EventTables, *, as_of: dt.date, lookback_days: int, horizon_days: int
) -> pd.DataFrame:
    """`churn_labels` of the purchases in prepared event tables: customer_id ("str"), churned (int8), sorted."""
    return churn_labels_from_partitions([tables], as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days)


def churn_labels_from_partitions(
    partitions: Sequence[EventTables], *, as_of: dt.date, lookback_days: int, horizon_days: int
) -> pd.DataFrame:
    """`churn_labels_from_tables` over the tables of customer partitions: customer_id ("str"), churned (int8),
    sorted by customer_id like `features_from_partitions`."""
    return labels_and_came_back(partitions, as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days,
                                came_back=False)[0]


def labels_and_came_back(
    partitions: Sequence[EventTables], *, as_of: dt.date, lookback_days: int, horizon_days: int, came_back: bool,
    left_out: Sequence[str] = (),
) -> tuple[pd.DataFrame, tuple[int, int] | None]:
    """(`churn_labels_from_partitions`; with `came_back`, the customers labelled churned and, of them, those who
    purchased in the `horizon_days` after their label window, as `churned_who_came_back` counts them, else None).
    The customers `left_out` (treated by a retention action in those days: their return may be its doing) are left
    out of both counts, not of the labels."""
    frames, churned, back = [], 0, 0
    for tables in partitions:
        eligible, returned, purchases_before, day = _label_outcome(
            tables, as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days)
        frames.append(pl.DataFrame({
            "customer_id": tables.customer_ids.gather(eligible).cast(pl.String),
            "churned": pl.Series((~returned).astype("int8"), dtype=pl.Int8),
        }))
        if came_back:
            gone = eligible[~returned]
            if len(left_out):
                gone = gone[~tables.customer_ids.gather(gone).cast(pl.String).is_in(list(left_out)).to_numpy()]
            churned += len(gone)
            back += int(np.count_nonzero(purchases_before(day + 2 * horizon_days, gone)
                                         > purchases_before(day + horizon_days, gone)))
    frame = frames[0] if len(frames) == 1 else pl.concat(frames)
    if not frame["customer_id"].is_sorted():  # customer partitions are ranges of ids: already sorted
        frame = frame.sort("customer_id")
    labels = frame.to_pandas().astype({"customer_id": "str", "churned": "int8"})
    return labels, (churned, back) if came_back else None


def _label_outcome(
    tables: EventTables, *, as_of: dt.date, lookback_days: int, horizon_days: int
) -> tuple[np.ndarray, np.ndarray, Callable[[int, np.ndarray], np.ndarray], int]:
    """(the codes of the customers eligible at `as_of`, whether each purchased in the horizon, the number of
    purchases before a day number of the customers of some codes, and the day number of `as_of`) of one table's
    customers."""
    every = Cut(t=snapshot_time(as_of), codes=np.arange(tables.customers, dtype=np.int64))
    timeline, sums = tables.parts.timeline, tables.parts.sums
    purchases = sums.names.index("purchases")

    def purchases_before(day: int, codes: np.ndarray) -> np.ndarray:
        return sums.matrix[timeline.positions(day, codes), purchases]

    before = purchases_before(every.day, every.codes)
    eligible = np.flatnonzero(before > purchases_before(every.since(lookback_days), every.codes))
    returned = purchases_before(every.day + horizon_days, eligible) > before[eligible]  # only the eligible: cheaper
    return eligible, returned, purchases_before, every.day


def label_churn(
    transactions: pd.DataFrame, *, as_of: dt.date, lookback_days: int, horizon_days: int, timezone: str = "UTC"
) -> pd.DataFrame:
    """Contract-shaped transactions (UTC instants) -> customer_id, churned (int8) for the customers eligible at
    `as_of`, windows counted in days of the business time zone `timezone`."""
    return churn_labels(
        in_business_time(purchase_times(transactions), timezone), as_of=as_of, lookback_days=lookback_days,
        horizon_days=horizon_days,
    )


def horizon_passed(as_of: dt.date, *, horizon_days: int, last_event_date: dt.date | None) -> bool:
    """True when the data covers the whole label window: as_of + horizon_days <= last_event_date + 1 day."""
    if last_event_date is None:
        return False
    return as_of + dt.timedelta(days=horizon_days) <= last_event_date + dt.timedelta(days=1)


def windows_seen_in_training(as_of: dt.date, *, training_snapshots: Sequence[str], horizon_days: int) -> list[dt.date]:
    """The model's `training_snapshots` (ISO dates) whose label window (snapshot .. snapshot + horizon_days) overlaps
    the one of a list scored on `as_of`: the model learned from outcomes of that list's window (empty: none)."""
    horizon = dt.timedelta(days=horizon_days)
    snapshots = sorted(dt.date.fromisoformat(str(s)[:10]) for s in training_snapshots)
    return [s for s in snapshots if s < as_of + horizon and as_of < s + horizon]


def seen_outcomes_warning(
    as_of: dt.date, *, training_snapshots: Sequence[str] | None, horizon_days: int, model: str
) -> str | None:
    """A sentence when the `model` (name and version) scoring `as_of` was trained on label windows overlapping this
    list's (`windows_seen_in_training`): realised metrics of the list would flatter it; None otherwise."""
    seen = windows_seen_in_training(as_of, training_snapshots=training_snapshots or [], horizon_days=horizon_days)
    if not seen:
        return None
    end = as_of + dt.timedelta(days=horizon_days)
    shown = seen[0].isoformat() if len(seen) == 1 else f"{seen[0].isoformat()} to {seen[-1].isoformat()}"
    overlap = horizon_days - min(abs((snapshot - as_of).days) for snapshot in seen)
    return (f"{model} was trained on the label windows of snapshot{'s' * (len(seen) > 1)} {shown}, which overlap this "
            f"list's ({as_of.isoformat()} to {end.isoformat()}) by up to {overlap} day{'s' * (overlap != 1)}: it learned "
            "from these customers' purchases in those days, so `churn monitor` figures of this list flatter it (the "
            "treated-vs-control comparison of `churn measure` stays fair)")


PAUSE_SHARE = 0.25  # above it, "churned" means a pause for too many of the customers it marks
RECENT_DAYS = 365  # ... pooled over every checked snapshot, or over those of the latest year


def next_window_covered(as_of: dt.date, *, horizon_days: int, last_event_date: dt.date | None) -> bool:
    """True when the data also covers the horizon after the label window: as_of + 2 x horizon_days <= the last day."""
    return horizon_passed(as_of + dt.timedelta(days=horizon_days), horizon_days=horizon_days,
                          last_event_date=last_event_date)


def churned_who_came_back(
    labels: pd.DataFrame, buyers_after: pd.Series, left_out: Sequence[str] = ()
) -> tuple[int, int]:
    """(customers labelled churned, of them those in `buyers_after`, the customers who purchased in the horizon after
    the label window), without the customers `left_out`. `labels`: customer_id, churned."""
    churned = labels.loc[(labels["churned"] == 1) & ~labels["customer_id"].isin(list(left_out)), "customer_id"]
    return len(churned), int(churned.isin(buyers_after).sum())


def treated_in_pause_window(treated: pd.DataFrame, as_of: dt.date, *, horizon_days: int) -> list[str]:
    """The customers of `treated` (customer_id, treated_on: the date of a past list that put them in its treatment
    group) whose action, acting for `horizon_days` from its date, overlaps `as_of`'s label window and the horizon
    after it: whether they bought again may be the action's doing."""
    day = pd.Timestamp(as_of)
    on = pd.to_datetime(treated["treated_on"]).dt.tz_localize(None)
    horizon = pd.Timedelta(days=horizon_days)
    return sorted(set(treated.loc[(on < day + 2 * horizon) & (day < on + horizon), "customer_id"].astype(str)))


def pause_warning(snapshots: Sequence[dict], *, horizon_days: int) -> str | None:
    """A sentence when, pooled over the `snapshots` (rows with date, churned, came_back; None where the data does not
    cover the next horizon), at least PAUSE_SHARE of the customers labelled churned purchased again in the
    `horizon_days` after their label window: for them churn is a pause. Else the same over the covered snapshots of
    the latest RECENT_DAYS (a long history's first, large cohort can outweigh pauses that are common now: an apparel
    log, 21% pooled over six years, 43-56% in its latest summers). None otherwise, or when nothing is covered."""
    covered = [row for row in snapshots if row.get("came_back") is not None and row["churned"]]
    if not covered:
        return None
    latest = max(dt.date.fromisoformat(str(row["date"])[:10]) for row in covered)
    recent = [row for row in covered
              if dt.date.fromisoformat(str(row["date"])[:10]) > latest - dt.timedelta(days=RECENT_DAYS)]
    for rows in (covered, recent):
        churned, back = sum(row["churned"] for row in rows), sum(row["came_back"] for row in rows)
        if back >= PAUSE_SHARE * churned:
            return _pause_sentence(rows, churned, back, horizon_days=horizon_days)
    return None


def _snapshots_named(rows: Sequence[dict]) -> str:
    """'snapshot 2024-02-01' or 'snapshots 2024-01-01 to 2024-03-01' for `rows` (with date) in date order."""
    return f"snapshot {rows[0]['date']}" if len(rows) == 1 else f"snapshots {rows[0]['date']} to {rows[-1]['date']}"


def _pause_sentence(covered: Sequence[dict], churned: int, back: int, *, horizon_days: int) -> str:
    return (f"{back / churned:.0%} of the customers labelled churned (no purchase in the {horizon_days} days after a "
            f"snapshot; {churned:,} labels of {_snapshots_named(covered)}) bought again in the "
            f"{horizon_days} days after that: for these customers a {horizon_days}-day pause is common, so the model "
            "learns pauses as churn. If such a pause is not churn for this business, set a longer "
            "features.horizon_days (the data must run two horizons past a snapshot for this check)")


YEARLY_GAP_DAYS = (335, 395)  # a gap between purchase days this long is a year's: an annual plan, a yearly purchase
YEARLY_SHARE = 0.05  # above it, "churned" marks yearly buyers between purchases (shops: 0.1-1.5% of their churned)


def yearly_gap_churners(snapshot: pd.DataFrame, *, horizon_days: int) -> int | None:
    """How many customers of a labelled `snapshot` (columns churned, gap_last_days) are labelled churned while their
    last two purchase days lie YEARLY_GAP_DAYS apart; None when the horizon is as long as such a gap."""
    if horizon_days >= YEARLY_GAP_DAYS[0] or "gap_last_days" not in snapshot.columns:
        return None
    low, high = YEARLY_GAP_DAYS
    gap = snapshot["gap_last_days"]
    return int(((snapshot["churned"] == 1) & (gap >= low) & (gap <= high)).sum())


def yearly_buyers_warning(snapshots: Sequence[dict], *, horizon_days: int) -> str | None:
    """A sentence when, pooled over the labelled `snapshots` (rows with date, labelled_churned, yearly_gap: None where
    not counted), at least YEARLY_SHARE of the customers labelled churned had their last two purchase days about a
    year apart. None otherwise."""
    counted = [row for row in snapshots if row.get("yearly_gap") is not None and row.get("labelled_churned")]
    churned = sum(row["labelled_churned"] for row in counted)
    yearly = sum(row["yearly_gap"] for row in counted)
    if not churned or yearly < YEARLY_SHARE * churned:
        return None
    low, high = YEARLY_GAP_DAYS
    return (f"{yearly / churned:.0%} of the customers labelled churned (no purchase in the {horizon_days} days after a "
            f"snapshot; {churned:,} labels of {_snapshots_named(counted)}) had bought about a year "
            f"apart ({low}-{high} days between their last two purchase days; those who bought once so far are not "
            "counted, so there are more): yearly buyers, such as annual plans or a yearly purchase, are labelled "
            "churned between one purchase and the next, and the at-risk list will hold them. Give them their own "
            "project with features.horizon_days above a year, or leave annual plans out "
            "(sources.transactions.exclude on the plan's column)")
