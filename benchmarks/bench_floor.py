"""In-process measurements run by `bench.py floor` and `bench.py features-breakdown` in subprocesses:
the numpy floor (eight RFM aggregates per snapshot with np.bincount) and the features runner's
steps timed one by one."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

FLOOR_AGGREGATES = ("lines", "monetary", "last_order_at", "lines_90d", "monetary_90d", "lines_365d",
                    "monetary_365d", "returns_value")
DAY_US = 86_400_000_000


def floor_snapshot(codes: Any, at_us: Any, amount: Any, *, as_of_us: int, customers: int) -> Any:
    """Eight RFM aggregates per customer over the rows before `as_of_us`, one numpy pass (FLOOR_AGGREGATES)."""
    import numpy as np

    known = at_us < as_of_us
    c, t, a = codes[known], at_us[known], amount[known]
    recent_90 = t >= as_of_us - 90 * DAY_US
    recent_365 = t >= as_of_us - 365 * DAY_US
    last = np.full(customers, np.iinfo(np.int64).min)
    np.maximum.at(last, c, t)
    return np.vstack([
        np.bincount(c, minlength=customers),
        np.bincount(c, weights=a, minlength=customers),
        last.astype("float64"),
        np.bincount(c, weights=recent_90, minlength=customers),
        np.bincount(c, weights=a * recent_90, minlength=customers),
        np.bincount(c, weights=recent_365, minlength=customers),
        np.bincount(c, weights=a * recent_365, minlength=customers),
        np.bincount(c, weights=np.where(a < 0, -a, 0.0), minlength=customers),
    ])


def measure_floor(validated_transactions: Path, *, dates: list[dt.date], repeats: int) -> dict[str, Any]:
    """Median over `repeats` of the floor summed over `dates`; loading and factorising are not timed."""
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_parquet(validated_transactions, columns=["customer_id", "ordered_at", "amount"])
    codes, uniques = pd.factorize(frame["customer_id"])
    at_us = frame["ordered_at"].dt.tz_convert("UTC").dt.as_unit("us").array.asi8
    amount = frame["amount"].to_numpy("float64")
    codes = codes.astype(np.int64)
    load_seconds = time.perf_counter() - started
    customers = len(uniques)
    moments = [int(pd.Timestamp(d).value // 1000) for d in dates]
    per_repeat = []
    for _ in range(repeats):
        timings = []
        for as_of_us in moments:
            t0 = time.perf_counter()
            floor_snapshot(codes, at_us, amount, as_of_us=as_of_us, customers=customers)
            timings.append(time.perf_counter() - t0)
        per_repeat.append(timings)
    totals = [sum(t) for t in per_repeat]
    median_run = per_repeat[totals.index(sorted(totals)[len(totals) // 2])]
    return {
        "seconds": statistics.median(totals),
        "all_seconds": totals,
        "per_snapshot_seconds": median_run,
        "snapshots": len(dates),
        "aggregates": list(FLOOR_AGGREGATES),
        "rows": len(frame),
        "customers": customers,
        "load_seconds_not_timed": load_seconds,
    }


def _load_and_prepare(cfg: Any) -> tuple[Any, float, float]:
    """The features runner's first two steps, timed: (event tables per customer partition, load seconds,
    prepare seconds)."""
    from pipeline.run.features import read_validated, tables_by_partition

    t0 = time.perf_counter()
    frames = read_validated(cfg.validated_dir)
    t1 = time.perf_counter()
    return tables_by_partition(frames, cfg=cfg.features), t1 - t0, time.perf_counter() - t1


def features_breakdown(config: Path) -> dict[str, Any]:
    """The features runner's steps timed separately, one snapshot at a time (no file writes): load,
    prepare tables, per snapshot features and labels."""
    from pipeline.config import load_config
    from pipeline.features import features_from_partitions
    from pipeline.labels import churn_labels_from_partitions

    cfg = load_config(config)
    tables, load_seconds, prepare_seconds = _load_and_prepare(cfg)
    window = {"lookback_days": cfg.features.lookback_days, "horizon_days": cfg.features.horizon_days}
    snapshot_seconds, label_seconds = [], []
    for as_of in cfg.features.snapshots.resolve():
        s0 = time.perf_counter()
        features_from_partitions(tables, as_of=as_of, cfg=cfg.features)
        s1 = time.perf_counter()
        churn_labels_from_partitions(tables, as_of=as_of, **window)
        snapshot_seconds.append(s1 - s0)
        label_seconds.append(time.perf_counter() - s1)
    return {
        "load_events_seconds": load_seconds,
        "prepare_tables_seconds": prepare_seconds,
        "partitions": len(tables),
        "snapshot_features_seconds": snapshot_seconds,
        "snapshot_labels_seconds": label_seconds,
        "compute_seconds": prepare_seconds + sum(snapshot_seconds) + sum(label_seconds),
    }
