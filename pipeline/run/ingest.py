"""`churn ingest`: read every configured source, validate, write validated/quarantine/extra Parquet
and the ingest report.

Outputs (under cfg.paths.data_dir): validated/<source>.parquet (contract columns, UTC; for customers, then
the attribute_<slug> columns of sources.customers.attributes),
quarantine/<source>.parquet (rejected rows as read + source_file, source_row, reason),
validated/extra/<source>.parquet (unknown columns of validated rows, keyed by validated_row; only
when there are any), reports/ingest_report.json and reports/cohort_retention.png. Every source is
validated before the first file is written, so a failing run writes nothing; the files are published
as one set (`pipeline.io.output_set`): a run that fails while writing (disk full, ...) leaves all of
the previous run's files.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from pipeline.compressed import member_checksums
from pipeline.config import Config
from pipeline.ingest import IngestResult, ingest_sources
from pipeline.io import OutputSet, complete_interrupted_publishes, output_set, sha256_file, write_json, write_parquet
from pipeline.plots_review import cohort_retention_figure, save_figure
from pipeline.progress import console, get_logger, timed, track
from pipeline.review import cohort_retention
from pipeline.snapshot import in_business_time_pandas, latest_event_date
from pipeline.sources import export_files, read_exports

REPORT_NAME = "ingest_report.json"


def report_path(cfg: Config) -> Path:
    return cfg.reports_dir / REPORT_NAME


def extra_dir(cfg: Config) -> Path:
    return cfg.validated_dir / "extra"


def file_fingerprints(files: dict[str, tuple[tuple[Path, str | None], ...]]) -> dict[str, list[dict[str, Any]]]:
    """Each source's input files (file, member: `export_files`) with their fingerprint: {source: [{path, sha256}]},
    and for a file read inside a zip archive {path, member, crc32, bytes}, as the archive lists them
    (`member_checksums`): another file of the same download changing leaves it as it was."""
    archives = {path for reads in files.values() for path, member in reads if member is not None}
    listed = {path: member_checksums(path) for path in archives}  # each archive's directory read once
    return {name: [{"path": str(path), "sha256": sha256_file(path)} if member is None
                   else {"path": str(path), "member": member, **listed[path][member]} for path, member in reads]
            for name, reads in files.items()}


def with_fingerprints(report: dict[str, Any], fingerprints: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A copy of `report` with each source's input files and their fingerprints (from `file_fingerprints`)."""
    sources = {name: {**entry, "files": fingerprints.get(name, [])} for name, entry in report["sources"].items()}
    return {**report, "sources": sources}


def write_outputs(cfg: Config, result: IngestResult, outputs: OutputSet) -> None:
    """Validated, quarantine and extra Parquet for every source into `outputs`; a stale extra file is removed.

    The files are independent and pyarrow encodes them without the GIL: two are written at a time.
    """
    writes = []
    for name, source in result.sources.items():
        writes += [(source.validated, cfg.validated_dir / f"{name}.parquet"),
                   (source.quarantine, cfg.quarantine_dir / f"{name}.parquet")]
        extra_path = extra_dir(cfg) / f"{name}.parquet"
        if source.extra.shape[1] > 0:
            writes.append((source.extra, extra_path))
        elif extra_path.exists():
            outputs.remove(extra_path)
    largest_first = sorted(writes, key=lambda write: -len(write[0]))

    def write(frame: pd.DataFrame, path: Path) -> Path:
        return outputs.write(path, lambda staged: write_parquet(frame, staged))

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-write") as pool:
        for written in [pool.submit(write, frame, path) for frame, path in largest_first]:
            written.result()


def report_table(report: dict[str, Any]) -> Table:
    """One row per source: rows in, validated, quarantined, anonymous (of those), duplicates, top reasons."""
    reference = report.get("reference_time") or "-"
    table = Table(title=f"Ingest (reference time {reference}, tolerance {report['future_tolerance_days']:g} d)")
    for column, justify in (("source", "left"), ("input", "right"), ("validated", "right"),
                            ("quarantined", "right"), ("anonymous", "right"), ("bad", "right"), ("duplicates", "right"),
                            ("top reasons", "left")):
        table.add_column(column, justify=justify)
    for name, entry in report["sources"].items():
        if not entry["configured"]:
            table.add_row(name, "-", "-", "-", "-", "-", "-", "not configured (no rows)")
            continue
        reasons = "\n".join(
            [f"{item['rows']:,} × {item['reason']}" for item in entry["top_reasons"][:3]] + entry["notes"]
        )
        table.add_row(
            name,
            f"{entry['input_rows']:,}",
            f"{entry['validated_rows']:,}",
            f"{entry['quarantined_rows']:,}",
            f"{entry['anonymous_rows']:,}",
            f"{entry['bad_share']:.1%}",
            f"{entry['duplicate_rows']:,}",
            reasons or "-",
        )
    return table


def save_cohort_figure(transactions: pd.DataFrame, path: Path, *, timezone: str = "UTC") -> Path | None:
    """Cohort retention curves (by first-order month of the business time zone `timezone`) of the validated
    purchases, as PNG at `path` (nothing written without purchases)."""
    if transactions.empty:
        return None
    transactions = in_business_time_pandas(transactions[["customer_id", "ordered_at", "amount", "quantity"]], timezone)
    as_of = latest_event_date(transactions) + dt.timedelta(days=1)
    return save_figure(cohort_retention_figure(cohort_retention(transactions, as_of=as_of)), path)


def run(cfg: Config, *, quiet: bool) -> dict[str, Any]:
    """Ingest every configured source; return the report (also written as JSON).

    Two side tasks run in a worker thread while the main thread reads, validates and writes: the
    sha256 of the input files (hashlib releases the GIL) and, once validation is done, the cohort
    figure (it needs only the validated transactions and overlaps the Parquet writes).
    """
    complete_interrupted_publishes(cfg.paths.data_dir)
    configured = cfg.sources.configured()
    files = {name: tuple(export_files(name, source)) for name, source in configured.items()}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-side") as side:
        fingerprints = side.submit(file_fingerprints, files)
        with timed("read sources"):
            raws = {
                name: read_exports(name, source)
                for name, source in track(list(configured.items()), description="reading", quiet=quiet)
            }
        with timed("validate"):
            result = ingest_sources(raws, sources=configured, cfg=cfg.ingest, business_zone=cfg.features.zone)
        del raws  # the raw frames are no longer needed: free them before writing
        with timed("write"), output_set(cfg.paths.data_dir, stage="ingest") as outputs:
            figure_path = cfg.reports_dir / "cohort_retention.png"
            transactions = result.sources["transactions"].validated
            if transactions.empty:
                figure = None
                outputs.remove(figure_path)
            else:
                figure = side.submit(outputs.write, figure_path, lambda path: save_cohort_figure(
                    transactions, path, timezone=cfg.features.zone))
            write_outputs(cfg, result, outputs)
            report = with_fingerprints(result.report, fingerprints.result())
            outputs.write(report_path(cfg), lambda path: write_json(report, path))
            if figure is not None:
                figure.result()
    for name, entry in report["sources"].items():
        added = entry.get("refund_rows", 0)
        get_logger().info(
            "%s: %d rows in, %d validated%s, %d quarantined", name, entry["input_rows"], entry["validated_rows"],
            f" ({added} of them refund rows from sources.{name}.refunds)" if added else "", entry["quarantined_rows"],
        )
    zone = business_zone_note(cfg)
    if zone:
        get_logger().info("%s", zone)
    if not quiet:
        console().print(report_table(report))
    return report


def business_zone_note(cfg: Config) -> str | None:
    """Which time zone's days the later stages count, when it or a source's `timezone` is not UTC (None when all
    are)."""
    local = {name: source.timezone for name, source in cfg.sources.configured().items() if source.timezone != "UTC"}
    if cfg.features.zone == "UTC" and not local:
        return None
    read = f" ({', '.join(f'{name} read in {zone}' for name, zone in local.items())})" if local else ""
    return (f"validated times are stored as UTC{read}; snapshots, purchase days and label windows count the days of "
            f"{cfg.features.zone} (features.timezone)")
