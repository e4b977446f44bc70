"""`churn features`: point-in-time features (and labels where known) for every configured snapshot.

Reads data/validated/ straight into polars (only the columns the features use), prepares the event
tables once, then for each snapshot date builds the features and labels and writes
`data/features/snapshot=YYYY-MM-DD.parquet`. Writing a file overlaps with computing the
next snapshot (one background writer; the file bytes do not depend on it). Same inputs give
byte-identical files. The snapshots are published as one set (`pipeline.io.output_set`): after the
run the folder holds exactly this run's snapshots (files of other dates are removed), or, when the
run fails, exactly the previous run's.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from rich.table import Table

from pipeline.config import Config, FeaturesConfig
from pipeline.contract import BOOLEAN, FLOAT, STRING, TIMESTAMP, contract
from pipeline.dask_engine import (
    dask_client,
    dask_features_and_fits,
    dask_labels_and_came_back,
    load_partitioned_tables,
)
from pipeline.errors import FeatureError, ScoreError
from pipeline.evaluate import few_labels_sentence
from pipeline.events import Events
from pipeline.features import feature_names
from pipeline.features.btyd import failed_fits_warning
from pipeline.features.build import (
    customer_aggregates_from_tables,
    polars_features_and_fits_from_aggregates,
    polars_features_and_fits_from_partitions,
    to_pandas_features,
)
from pipeline.features.loyalty import unknown_tiers
from pipeline.features.store import (
    LABEL,
    btyd_fits_metadata,
    feature_settings,
    input_coverage,
    settings_fingerprint,
    snapshot_dates,
    snapshot_frame,
    snapshot_metadata,
    snapshot_path,
)
from pipeline.features.tables import (
    SOURCE_COLUMNS,
    EventTables,
    check_attribute_columns,
    customer_partitions,
    event_tables_from_frames,
    partitioned_event_tables,
)
from pipeline.io import complete_interrupted_publishes, output_set, write_json, write_parquet
from pipeline.labels import (
    churn_labels_from_partitions,
    horizon_passed,
    labels_and_came_back,
    next_window_covered,
    pause_warning,
    treated_in_pause_window,
    yearly_buyers_warning,
    yearly_gap_churners,
)
from pipeline.progress import console, get_logger, timed, track
from pipeline.run.history import treated_customers
from pipeline.snapshot import latest_event_date

POLARS_TYPES = {TIMESTAMP: pl.Datetime("us", "UTC"), STRING: pl.String, FLOAT: pl.Float64, BOOLEAN: pl.Boolean}


def read_validated(validated_dir: Path, *, attributes: Sequence[str] = ()) -> dict[str, pl.DataFrame]:
    """The columns the features use of every validated source present, as polars frames typed by the contract
    (UTC instants: `pipeline.features.tables` turns them into business time, after measuring durations); of the
    customers, also the attribute columns `attributes` (`FeaturesConfig.attribute_columns`) as the file types them:
    Float64 the numbers, String the others (as `pipeline.contract.conform` reads them).

    (The polars face of `pipeline.events.load_events`: same files, same rule for a missing
    transactions file; absent optional sources are simply left out.) FeatureError when the validated customers
    lack an attribute column (validated before sources.customers.attributes listed it).
    """
    validated_dir = Path(validated_dir)
    if not (validated_dir / "transactions.parquet").is_file():
        raise FeatureError(
            f"no validated transactions at {validated_dir / 'transactions.parquet'}: "
            "run `churn ingest` (or `make ingest`) first"
        )
    frames = {}
    for name in (f for f in Events.__dataclass_fields__):
        path = validated_dir / f"{name}.parquet"
        if path.is_file():
            spec = contract(name)
            schema = pl.read_parquet_schema(path)
            # a file written before a derived column existed lacks it: all null
            absent = [c for c in spec.derived if c in SOURCE_COLUMNS[name] and c not in schema]
            named = list(attributes) if name == "customers" else []
            check_attribute_columns(list(schema), named)
            columns = [c for c in SOURCE_COLUMNS[name] if c not in absent]
            frames[name] = pl.read_parquet(path, columns=[*columns, *named]).cast(
                {column: POLARS_TYPES[spec.dtypes[column]] for column in columns}
                | {column: pl.Float64 if schema[column].is_numeric() else pl.String for column in named}
            ).with_columns(pl.lit(None, dtype=POLARS_TYPES[spec.dtypes[c]]).alias(c) for c in absent).select(
                [*SOURCE_COLUMNS[name], *named])
    return frames


def event_span(validated_dir: Path, *, timezone: str = "UTC") -> tuple[dt.date | None, dt.date | None]:
    """The dates in `timezone` of the earliest and the latest validated order (None, None when there are none),
    read lazily."""
    path = Path(validated_dir) / "transactions.parquet"
    if not path.is_file():
        return None, None
    times = pl.col("ordered_at")
    first, last = pl.scan_parquet(path).select(times.min().alias("first"), times.max().alias("last")).collect().row(0)
    if first is None:
        return None, None
    return tuple(pd.Timestamp(value).tz_convert(timezone).date() for value in (first, last))


def resolved_snapshot_dates(cfg: Config, *, last_date: dt.date | None) -> tuple[list[dt.date], dt.date | None]:
    """The configured snapshot dates (perhaps none), with a missing start or end derived from the validated
    transactions (`SnapshotsConfig.resolve`); and the first order's date they were derived from (None when
    the config gives both)."""
    snapshots = cfg.features.snapshots
    first = event_span(cfg.validated_dir, timezone=cfg.features.zone)[0] if snapshots.derived else None
    return snapshots.resolve(first_event=first, last_event=last_date, horizon_days=cfg.features.horizon_days), first


def snapshot_dates_of(cfg: Config, *, last_date: dt.date | None) -> list[dt.date]:
    """`resolved_snapshot_dates`; FeatureError when no date results (logged when derived from the data)."""
    snapshots = cfg.features.snapshots
    dates, first = resolved_snapshot_dates(cfg, last_date=last_date)
    if not dates:
        raise FeatureError(
            f"no snapshot dates: the validated orders run from {first} to {last_date}, too short for one "
            f"'{snapshots.freq}' snapshot after features.horizon_days ({cfg.features.horizon_days}) of history; "
            "set features.snapshots.dates"
        )
    if snapshots.derived:
        get_logger().info("snapshot dates derived from the data (%s to %s, %s): %d, %s to %s", first, last_date,
                          snapshots.freq, len(dates), dates[0], dates[-1])
    return dates


def validated_coverage(validated_dir: Path) -> dict[str, list[str]]:
    """`input_coverage` of the validated files (scanned lazily: only the feature columns' null counts are read)."""
    validated_dir = Path(validated_dir)
    scans = {
        name: pl.scan_parquet(validated_dir / f"{name}.parquet")
        for name in SOURCE_COLUMNS
        if (validated_dir / f"{name}.parquet").is_file()
    }
    return input_coverage(scans)


@contextmanager
def freed_memory_kept() -> Iterator[None]:
    """Keep memory that numpy and pandas free inside the process while the block runs (glibc; else nothing).

    glibc hands every large block back to the kernel when it is freed, and a snapshot frees and
    allocates hundreds of MB. On virtual machines where fresh pages are costly (about 1-2 s per GB
    on the 2-core benchmark machine, page faults in the host) that churn was 10-15 % of the stage;
    here the heap keeps freed blocks for reuse instead. On exit the two settings are set to glibc's
    defaults (glibc has no call to read the values they had before; setting them also ends glibc's
    dynamic mmap threshold for the rest of the process) and the heap is trimmed, so the memory kept
    is handed back.
    """
    with no_huge_page_advice():
        try:
            libc = ctypes.CDLL("libc.so.6")
            mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
        except (OSError, AttributeError):
            yield
            return
        m_trim_threshold, m_mmap_max = -1, -4  # glibc <malloc.h>
        mallopt(m_mmap_max, 0)  # large blocks from the heap, not from their own mappings
        mallopt(m_trim_threshold, 2**31 - 1)  # and the heap is not trimmed
        try:
            yield
        finally:
            mallopt(m_mmap_max, 65536)  # glibc's defaults
            mallopt(m_trim_threshold, 128 * 1024)
            malloc_trim(0)


@contextmanager
def no_huge_page_advice() -> Iterator[None]:
    """numpy does not ask the kernel for transparent huge pages while the block runs; as before after it.

    numpy advises huge pages (madvise MADV_HUGEPAGE) for every array of 4 MB or more. Where the
    kernel then compacts memory to find 2 MB pages on the fault (`defrag` = madvise, the common
    default, and the benchmark machine's), that costs more than it saves here: the features stage
    spent 11 s more in the kernel at 10M rows (median of 5 runs, see benchmarks/README.md).
    Without numpy's private switch (another numpy) nothing changes.
    """
    switch = getattr(getattr(np, "_core", None), "multiarray", None)
    set_advice = getattr(switch, "_set_madvise_hugepage", None)
    if set_advice is None:
        yield
        return
    was = set_advice(False)
    try:
        yield
    finally:
        set_advice(was)


def run(cfg: Config, *, quiet: bool = False) -> dict[str, Any]:
    """Build and write every snapshot; return a summary (per snapshot: date, customers, churn rate, path)."""
    complete_interrupted_publishes(cfg.paths.data_dir)
    if cfg.features.engine == "dask":
        return _run_dask(cfg, quiet=quiet)
    with freed_memory_kept():
        return _run(cfg, quiet=quiet)


def _run(cfg: Config, *, quiet: bool) -> dict[str, Any]:
    started = time.perf_counter()
    with timed("reading validated events and preparing event tables"):
        tables, last_date = prepared_tables(cfg)
    window = {"lookback_days": cfg.features.lookback_days, "horizon_days": cfg.features.horizon_days}
    return _write_snapshots(
        cfg,
        features_at=lambda as_of: polars_features_and_fits_from_partitions(tables, as_of=as_of, cfg=cfg.features),
        labels_at=lambda as_of, came_back, left_out: labels_and_came_back(
            tables, as_of=as_of, came_back=came_back, left_out=left_out, **window),
        last_date=last_date,
        started=started,
        quiet=quiet,
        workers=cfg.features.snapshot_workers,
        as_pandas=lambda features: to_pandas_features(features, cfg=cfg.features),
    )


def _run_dask(cfg: Config, *, quiet: bool) -> dict[str, Any]:
    """The same feature functions on customer partitions of a Dask cluster ($DASK_SCHEDULER_ADDRESS or local)."""
    started = time.perf_counter()
    window = {"lookback_days": cfg.features.lookback_days, "horizon_days": cfg.features.horizon_days}
    with dask_client() as client:
        with timed("partitioning validated events by customer on the Dask cluster"):
            tables = load_partitioned_tables(cfg.validated_dir, partitions=cfg.features.dask_partitions, client=client,
                                             timezone=cfg.features.zone, attributes=cfg.features.attribute_columns,
                                             stall_seconds=cfg.features.dask_stall_seconds)
        try:
            return _write_snapshots(
                cfg,
                features_at=lambda as_of: dask_features_and_fits(tables, as_of=as_of, cfg=cfg.features),
                labels_at=lambda as_of, came_back, left_out: dask_labels_and_came_back(
                    tables, as_of=as_of, came_back=came_back, left_out=left_out, **window),
                last_date=tables.last_event_date,
                started=started,
                quiet=quiet,
            )
        finally:
            tables.release()


def _write_snapshots(
    cfg: Config,
    *,
    features_at: Callable[[dt.date], tuple[Any, list[dict]]],
    labels_at: Callable[[dt.date, bool, list[str]], tuple[pd.DataFrame, tuple[int, int] | None]],
    last_date: dt.date | None,
    started: float,
    quiet: bool,
    workers: int = 1,
    as_pandas: Callable[[Any], pd.DataFrame] = lambda features: features,
) -> dict[str, Any]:
    """Build, label and write every configured snapshot: `workers` snapshots computed at once, files
    written in date order by one background writer while the next snapshots are computed.

    `features_at(day)` gives the features of `day` and the records of its BTYD fits (kept in the file's metadata:
    `btyd_fits_metadata`). It may return the features in another form than pandas, with `as_pandas` turning them
    into `build_features`' frame: the writer thread does that, so the conversion is not on the path
    of the next snapshot's computation. `labels_at(day, came_back, left_out)`: the labels of `day` and, with
    `came_back`, (the customers labelled churned, of them those who purchased in the horizon after their label
    window), for `pause_warning`, without the customers `left_out`: those a past list treated in those days.
    """
    log = get_logger()
    horizon = cfg.features.horizon_days
    try:
        treated = treated_customers(cfg)
    except ScoreError as exc:  # the labels do not depend on it: only the pause counts do
        log.warning("the past at-risk lists cannot be read (%s): the pause counts include customers treated then", exc)
        treated = pd.DataFrame({"customer_id": pd.Series(dtype=str), "treated_on": pd.Series(dtype="datetime64[ns]")})
    tiers = unknown_tier_warning(cfg)
    if tiers:
        log.warning("%s", tiers)
    dates = snapshot_dates_of(cfg, last_date=last_date)
    settings = feature_settings(cfg.features, inputs=validated_coverage(cfg.validated_dir))
    metadata = snapshot_metadata(settings)

    def labelled_at(as_of: dt.date) -> bool:
        return horizon_passed(as_of, horizon_days=horizon, last_event_date=last_date)

    def computed_at(as_of: dt.date) -> tuple[tuple[Any, list[dict]], pd.DataFrame | None, tuple[int, int] | None]:
        if not labelled_at(as_of):
            return features_at(as_of), None, None
        covered = next_window_covered(as_of, horizon_days=horizon, last_event_date=last_date)
        left_out = treated_in_pause_window(treated, as_of, horizon_days=horizon) if covered else []
        return features_at(as_of), *labels_at(as_of, covered, left_out)

    def written(
        as_of: dt.date, computed: tuple[Any, list[dict]], labels: pd.DataFrame | None, later: tuple[int, int] | None
    ) -> dict[str, Any]:
        features, fits = computed
        fits_by_date[as_of.isoformat()] = fits
        frame = snapshot_frame(as_pandas(features), labels, as_of=as_of)
        footer = {**metadata, **btyd_fits_metadata(fits)}
        outputs.write(snapshot_path(cfg.features_dir, as_of), lambda path: write_parquet(frame, path, metadata=footer))
        if frame.empty:
            log.warning("snapshot %s has no eligible customers (no purchase in the %d days before it)",
                        as_of, cfg.features.lookback_days)
        churned, came_back = later or (None, None)
        return {
            "date": as_of.isoformat(),
            "customers": len(frame),
            "churn_rate": float(frame[LABEL].mean()) if labels is not None and len(frame) else None,
            "labelled": labels is not None,
            "churned": churned,
            "came_back": came_back,
            "labelled_churned": int(frame[LABEL].sum()) if labels is not None else None,
            "yearly_gap": yearly_gap_churners(frame, horizon_days=horizon) if labels is not None else None,
            "path": str(snapshot_path(cfg.features_dir, as_of)),
        }

    rows, fits_by_date = [], {}
    with (
        output_set(cfg.paths.data_dir, stage="features") as outputs,
        closing(ordered_map(computed_at, dates, workers=workers)) as computed,
        ThreadPoolExecutor(1) as writer,
    ):
        for stale in set(snapshot_dates(cfg.features_dir)) - set(dates):
            outputs.remove(snapshot_path(cfg.features_dir, stale))
        pending: Future | None = None
        for as_of in track(dates, description="features", quiet=quiet):
            features, labels, later = next(computed)
            if pending is not None:
                rows.append(pending.result())  # at most one file in flight (raises the writer's error here)
            pending = writer.submit(written, as_of, features, labels, later)
            del features, labels, later  # the writer holds them until the file is written
        if pending is not None:
            rows.append(pending.result())
        pauses = pause_warning(rows, horizon_days=horizon)
        yearly = yearly_buyers_warning(rows, horizon_days=horizon)
        few = few_labels_at_test_warning(rows, horizon_days=horizon)
        unseen = unseen_sources_warning(cfg.validated_dir, labelled=[row["date"] for row in rows if row["labelled"]],
                                        timezone=cfg.features.zone)
        outputs.write(labels_report_path(cfg),
                      lambda path: write_json(labels_report(rows, pauses, horizon, yearly=yearly, few=few), path))
    summary = {
        "snapshots": rows,
        "features": len(feature_names(cfg.features)),
        "settings_fingerprint": settings_fingerprint(settings),
        "inputs": settings["inputs"],
        "last_event_date": last_date.isoformat() if last_date else None,
        "seconds": round(time.perf_counter() - started, 2),
        "pause_warning": pauses,
        "yearly_buyers_warning": yearly,
        "few_labels_warning": few,
        "tier_warning": tiers,
        "unseen_sources_warning": unseen,
        "btyd_warning": failed_fits_warning(fits_by_date),
    }
    if summary["btyd_warning"]:
        log.warning("%s", summary["btyd_warning"])
    for warning in (pauses, yearly, few):
        if warning:
            log.warning("labels: %s", warning)
    if unseen:
        log.warning("%s", unseen)
    if not quiet:
        console().print(_summary_table(summary))
    log.info("%d snapshots with %d features written to %s", len(rows), summary["features"], cfg.features_dir)
    return summary


MAX_NAMED_TIERS = 10  # the tier warning names at most this many unknown tiers


def unseen_sources_warning(validated_dir: Path, *, labelled: list[str], timezone: str = "UTC") -> str | None:
    """A sentence naming the sources besides the orders (tickets, feedback, loyalty events) with rows, none of them
    before the last labelled snapshot (`labelled`: ISO dates): no snapshot the model learns from sees them (an
    export of the last days only), so their features are empty or 0 in every training row while a list scored
    now reads them. None when every such source has a row before it, or when nothing is labelled. Dates are
    days of the business time zone `timezone` (a snapshot sees what happened before its midnight there)."""
    if not labelled:
        return None
    last = max(dt.date.fromisoformat(day) for day in labelled)
    unseen = []
    for name in Events.__dataclass_fields__:
        column = contract(name).time_column
        path = Path(validated_dir) / f"{name}.parquet"
        if name == "transactions" or column is None or not path.is_file():
            continue
        span = pl.scan_parquet(path).select(pl.col(column).min().alias("first"), pl.col(column).max().alias("last"))
        first, latest = span.collect().row(0)
        if first is None:
            continue
        first, latest = (pd.Timestamp(value).tz_convert(timezone).date() for value in (first, latest))
        if first >= last:
            unseen.append(f"{name}: its rows run from {first} to {latest}, none before the last labelled snapshot "
                          f"({last})")
    if not unseen:
        return None
    return ("; ".join(unseen) + ": the model learns nothing from them (their features are empty or 0 in every "
            "training row), while a list scored now reads them (actions whose eligibility reads their features, "
            "such as open tickets): "
            "export their earlier history too, or leave them out until it spans the labelled snapshots")


def unknown_tier_warning(cfg: Config) -> str | None:
    """A warning naming the tiers of the validated loyalty events that `features.loyalty_tiers` does not name
    (compared whatever their case and blanks, `pipeline.features.loyalty.tier_key`); None when there are none.
    Their members get no points_to_next_tier, and the tier actions of the playbook none."""
    path = Path(cfg.validated_dir) / "loyalty_events.parquet"
    if not path.is_file():
        return None
    tiers = pl.scan_parquet(path).select(pl.col("tier").cast(pl.String)).unique().collect()["tier"]
    unknown = unknown_tiers(tiers, cfg.features.loyalty_tiers)
    if not unknown:
        return None
    named = ", ".join(repr(name) for name in unknown[:MAX_NAMED_TIERS])
    more = f" and {len(unknown) - MAX_NAMED_TIERS:,} more" if len(unknown) > MAX_NAMED_TIERS else ""
    return (f"loyalty tiers in the data that features.loyalty_tiers does not name: {named}{more} (configured: "
            f"{', '.join(cfg.features.loyalty_tiers)}): their members get no points_to_next_tier, so no tier action "
            "picks them; add each tier with its point threshold to features.loyalty_tiers (case and blanks do not "
            "matter) and re-run `churn features`")


LABELS_REPORT = "labels_report.json"


def labels_report_path(cfg: Config) -> Path:
    """Where `churn features` writes what its labels say (`labels_report`); `churn train` logs it with the run."""
    return cfg.reports_dir / LABELS_REPORT


def labels_report(
    rows: list[dict[str, Any]], pauses: str | None, horizon_days: int, *, yearly: str | None = None,
    few: str | None = None,
) -> dict[str, Any]:
    """Per snapshot: date, customers, labelled, churn_rate, churned and came_back (the churned who purchased in the
    horizon after their label window; null where the data does not run that far), labelled_churned and yearly_gap
    (those of them whose last two purchase days lie about a year apart); the pause, yearly-buyers and few-labels
    warnings."""
    keys = ("date", "customers", "labelled", "churn_rate", "churned", "came_back", "labelled_churned", "yearly_gap")
    return {"horizon_days": horizon_days, "pause_warning": pauses, "yearly_buyers_warning": yearly,
            "few_labels_warning": few, "snapshots": [{key: row.get(key) for key in keys} for row in rows]}


def few_labels_at_test_warning(rows: list[dict[str, Any]], *, horizon_days: int) -> str | None:
    """`few_labels_sentence` for the latest labelled snapshot of `rows` (date, customers, labelled_churned), the one
    `churn train` tests on, with the rarer class counted over every labelled snapshot: a marketplace where almost
    nobody buys twice learns of it here, before training. None when that class is not rare, or nothing is labelled."""
    labelled = [row for row in rows if row["labelled"] and row["customers"]]
    if not labelled:
        return None
    latest = max(labelled, key=lambda row: row["date"])
    churned = latest["labelled_churned"]
    rarer_is_stayed = latest["customers"] - churned < churned
    pooled = sum(row["customers"] - row["labelled_churned"] if rarer_is_stayed else row["labelled_churned"]
                 for row in labelled)
    return few_labels_sentence(churned, latest["customers"] - churned, horizon_days=horizon_days,
                               snapshot=f"{latest['date']} (the latest labelled one, which churn train tests on)",
                               pooled=(len(labelled), pooled))


def prepared_tables(cfg: Config) -> tuple[tuple[EventTables, ...], dt.date | None]:
    """The validated events read and prepared for any snapshot date, per customer partition of about
    `features.partition_rows` transaction rows; and the date of the latest order in the business time zone
    (`features.timezone`; None if none).

    Read them with `features_from_partitions` and `churn_labels_from_partitions`.
    """
    frames = read_validated(cfg.validated_dir, attributes=cfg.features.attribute_columns)
    return tables_by_partition(frames, cfg=cfg.features), latest_event_date(frames["transactions"],
                                                                           timezone=cfg.features.zone)


def tables_by_partition(frames: dict[str, pl.DataFrame], *, cfg: FeaturesConfig) -> tuple[EventTables, ...]:
    """`read_validated` frames prepared per customer partition of about `cfg.partition_rows` transaction rows."""
    partitions = partition_count(frames["transactions"].height, partition_rows=cfg.partition_rows)
    return partitioned_event_tables(frames, partitions=partitions, timezone=cfg.zone, attributes=cfg.attribute_columns)


def features_and_labels_streamed(
    frames: dict[str, pl.DataFrame], *, as_of: dt.date, labels_as_of: dt.date, cfg: FeaturesConfig, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`features_from_partitions` as of `as_of`, `churn_labels_from_partitions` as of `labels_as_of` over
    `horizon_days`) of the `read_validated` frames, for one date: each customer partition's tables are prepared,
    read for both and dropped before the next, so memory holds one partition's tables, not all of them (the
    features stage keeps them all, for its many snapshots). The same values as with all tables prepared."""
    features, labels, _ = features_labels_and_fits_streamed(
        frames, as_of=as_of, labels_as_of=labels_as_of, cfg=cfg, horizon_days=horizon_days)
    return features, labels


def features_labels_and_fits_streamed(
    frames: dict[str, pl.DataFrame], *, as_of: dt.date, labels_as_of: dt.date, cfg: FeaturesConfig, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """`features_and_labels_streamed`, and the records of the BTYD fits as of `as_of` (`btyd.fit_record`)."""
    partitions = partition_count(frames["transactions"].height, partition_rows=cfg.partition_rows)
    aggregates, labels = [], []
    for part in customer_partitions(frames, partitions=partitions):
        tables = event_tables_from_frames(part, timezone=cfg.zone, attributes=cfg.attribute_columns)
        aggregates.append(customer_aggregates_from_tables(tables, as_of=as_of, cfg=cfg))
        labels.append(churn_labels_from_partitions([tables], as_of=labels_as_of, lookback_days=cfg.lookback_days,
                                                   horizon_days=horizon_days))
        del tables, part
    features, fits = polars_features_and_fits_from_aggregates(aggregates, as_of=as_of, cfg=cfg)
    return (to_pandas_features(features, cfg=cfg), pd.concat(labels, ignore_index=True) if len(labels) > 1 else labels[0],
            fits)


def partition_count(transaction_rows: int, *, partition_rows: int) -> int:
    """Customer partitions for the event tables: enough for about `partition_rows` transaction rows each."""
    return max(1, -(-transaction_rows // partition_rows))


def ordered_map(function: Callable[[Any], Any], items: Iterable[Any], *, workers: int) -> Iterator[Any]:
    """`map(function, items)` computed by `workers` threads, in order, with at most `workers` results
    waiting at a time (bounded memory, unlike `Executor.map`, which submits everything at once)."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: deque[Future] = deque(pool.submit(function, item) for _, item in zip(range(workers), items))
        while running:
            result = running.popleft().result()
            for item in items:
                running.append(pool.submit(function, item))
                break
            yield result


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"Feature snapshots ({summary['features']} features)")
    for column in ("snapshot", "customers", "churn rate", "of them back in the next horizon"):
        table.add_column(column, justify="right")
    for row in summary["snapshots"]:
        if not row["labelled"]:
            rate = "horizon not passed"
        elif row["churn_rate"] is None:
            rate = "-"
        else:
            rate = f"{row['churn_rate']:.1%}"
        back = "-" if not row.get("churned") else f"{row['came_back'] / row['churned']:.1%}"
        table.add_row(row["date"], f"{row['customers']:,}", rate, back)
    return table
