"""`churn features`: point-in-time features (and labels where known) for every configured snapshot.

Reads data/validated/, prepares the event tables once, then for each snapshot date builds the
features and labels and writes `data/features/snapshot=YYYY-MM-DD.parquet` atomically. Same inputs
give byte-identical files.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.config import Config
from pipeline.errors import FeatureError
from pipeline.events import load_events
from pipeline.features import event_tables, feature_names, features_from_tables
from pipeline.features.store import LABEL, snapshot_frame, snapshot_path
from pipeline.io import write_parquet
from pipeline.labels import churn_labels, horizon_passed
from pipeline.progress import get_logger, timed, track
from pipeline.snapshot import latest_event_date


def run(cfg: Config, *, quiet: bool = False) -> dict[str, Any]:
    """Build and write every snapshot; return a summary (per snapshot: date, customers, churn rate, path)."""
    if cfg.features.engine != "polars":
        raise FeatureError(
            f"features.engine={cfg.features.engine} is not available in this version; use features.engine=polars"
        )
    log = get_logger()
    started = time.perf_counter()
    dates = cfg.features.snapshots.resolve()
    with timed("reading validated events and preparing event tables"):
        events = load_events(cfg.validated_dir)
        last_date = latest_event_date(events.transactions)
        tables = event_tables(events)
        del events  # the prepared tables hold everything needed: free the pandas frames
    purchases = tables.orders.lazy().filter("is_purchase").select("customer_id", "ordered_at")
    rows = []
    for as_of in track(dates, description="features", quiet=quiet):
        features = features_from_tables(tables, as_of=as_of, cfg=cfg.features)
        labelled = horizon_passed(as_of, horizon_days=cfg.features.horizon_days, last_event_date=last_date)
        labels = (
            churn_labels(purchases, as_of=as_of, lookback_days=cfg.features.lookback_days,
                         horizon_days=cfg.features.horizon_days)
            if labelled
            else None
        )
        frame = snapshot_frame(features, labels, as_of=as_of)
        path = write_parquet(frame, snapshot_path(cfg.features_dir, as_of))
        if frame.empty:
            log.warning("snapshot %s has no eligible customers (no purchase in the %d days before it)",
                        as_of, cfg.features.lookback_days)
        rows.append({
            "date": as_of.isoformat(),
            "customers": len(frame),
            "churn_rate": float(frame[LABEL].mean()) if labelled and len(frame) else None,
            "labelled": labelled,
            "path": str(path),
        })
    summary = {
        "snapshots": rows,
        "features": len(feature_names(cfg.features)),
        "last_event_date": last_date.isoformat() if last_date else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if not quiet:
        Console().print(_summary_table(summary))
    log.info("%d snapshots with %d features written to %s", len(rows), summary["features"], cfg.features_dir)
    return summary


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"Feature snapshots ({summary['features']} features)")
    for column in ("snapshot", "customers", "churn rate"):
        table.add_column(column, justify="right")
    for row in summary["snapshots"]:
        if not row["labelled"]:
            rate = "horizon not passed"
        elif row["churn_rate"] is None:
            rate = "-"
        else:
            rate = f"{row['churn_rate']:.1%}"
        table.add_row(row["date"], f"{row['customers']:,}", rate)
    return table
