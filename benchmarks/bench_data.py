"""Benchmark workloads: sizes, the workspace config and demo data at a given size.

`generate_data` runs in a subprocess (`bench.py generate-data`): the demo generator in chunks of
customers, each with its own seed and id prefix, plus the bad rows `churn demo-data` mixes in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
SOURCES = ("transactions", "feedback", "support_tickets", "loyalty_events", "customers")
ID_COLUMNS = ("customer_id", "order_id", "ticket_id", "feedback_id")
# 12 monthly snapshots whose 90-day label windows lie inside the generator's default 2023-2025 span.
SNAPSHOT_DATES = tuple(dt.date(2024 + (9 + m) // 12, (9 + m) % 12 + 1, 1) for m in range(12))
BAD_ROW_SHARE = 0.03
CHUNK_CUSTOMERS = 200_000  # customers generated at once: bounds the generator's memory (~2.5 GiB)
CALIBRATION_CUSTOMERS = 5_000


def parse_size(text: str) -> int:
    """'1M' -> 1_000_000, '500k' -> 500_000, '2500000' -> 2_500_000."""
    match = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a row count: {text!r} (use e.g. 1M, 500k, 2500000)")
    number, unit = match.groups()
    return int(float(number.replace("_", "")) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[unit.lower()])


def parse_sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",") if part.strip()]


def size_label(rows: int) -> str:
    for unit, factor in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if rows >= factor and rows % (factor // 10 or 1) == 0:
            value = rows / factor
            return f"{value:g}{unit}"
    return str(rows)


def workspace_dir(data_root: Path, rows: int) -> Path:
    return data_root / f"rows={size_label(rows)}"


def bench_config(workspace: Path, *, raw_format: str) -> dict[str, Any]:
    """The demo config (configs/default.yaml) pointed at `workspace`, with the 12 bench snapshots."""
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    raw["project"] = f"bench-{workspace.name}"
    raw["paths"] = {"data_dir": "data", "models_dir": "models"}
    raw["sources"] = {name: {"path": f"raw/{name}/part-*.{raw_format}"} for name in SOURCES}
    features = raw.setdefault("features", {})
    features["snapshots"] = {"dates": [d.isoformat() for d in SNAPSHOT_DATES]}
    raw.setdefault("train", {})["model_name"] = "churn-bench"
    raw["mlflow"] = {
        **raw.get("mlflow", {}),
        "tracking_uri": "sqlite:///mlruns.db",
        "artifact_root": "mlartifacts",
        "experiment": "churn-bench-training",
        "scoring_experiment": "churn-bench-scoring",
    }
    raw.setdefault("score", {})["playbook"] = "playbook.yaml"
    return raw


def write_bench_config(workspace: Path, *, raw_format: str) -> Path:
    import yaml

    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "configs" / "playbook.yaml", workspace / "playbook.yaml")
    path = workspace / "config.yaml"
    path.write_text(yaml.safe_dump(bench_config(workspace, raw_format=raw_format), sort_keys=False), encoding="utf-8")
    return path


def clear_outputs(workspace: Path) -> None:
    """Remove every stage output of a workspace (its raw data stays)."""
    for name in ("data", "models", "mlartifacts", "logs"):
        shutil.rmtree(workspace / name, ignore_errors=True)
    for name in ("mlruns.db",):
        (workspace / name).unlink(missing_ok=True)


def _prefixed_ids(frames: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Copies of `frames` whose id columns start with `prefix` (chunks of customers stay distinct)."""
    out = {}
    for name, frame in frames.items():
        ids = {col: prefix + frame[col] for col in ID_COLUMNS if col in frame.columns}
        out[name] = frame.assign(**ids)
    return out


def _write_raw(frame: Any, path: Path, raw_format: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pipeline.io import atomic_path

    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp:
        if raw_format == "csv":
            pacsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp, compression="zstd")


def generate_data(workspace: Path, *, rows: int, seed: int, raw_format: str) -> dict[str, Any]:
    """Demo data of about `rows` transaction rows (incl. BAD_ROW_SHARE bad rows) under workspace/raw/.

    Customers are generated in chunks of CHUNK_CUSTOMERS with their own seeds and id prefixes; the
    generator draws each customer independently, so the union is one larger shop.
    """
    from pipeline.demo_data import generate_demo, inject_bad_rows

    started = time.perf_counter()
    sample = generate_demo(customers=CALIBRATION_CUSTOMERS, seed=seed)
    good_rows_per_customer = len(sample["transactions"]) / CALIBRATION_CUSTOMERS
    customers = max(1, round(rows * (1 - BAD_ROW_SHARE) / good_rows_per_customer))
    raw = workspace / "raw"
    shutil.rmtree(raw, ignore_errors=True)
    counts = dict.fromkeys(SOURCES, 0)
    orders = 0
    chunks = -(-customers // CHUNK_CUSTOMERS)
    for chunk in range(chunks):
        size = min(CHUNK_CUSTOMERS, customers - chunk * CHUNK_CUSTOMERS)
        frames = _prefixed_ids(generate_demo(customers=size, seed=seed * 1000 + chunk), f"K{chunk:03d}")
        orders += frames["transactions"]["order_id"].nunique()
        frames = inject_bad_rows(frames, seed=seed * 1000 + chunk, share=BAD_ROW_SHARE)
        for name in SOURCES:
            _write_raw(frames[name], raw / name / f"part-{chunk:03d}.{raw_format}", raw_format)
            counts[name] += len(frames[name])
        print(f"chunk {chunk + 1}/{chunks}: {size:,} customers", file=sys.stderr, flush=True)
    return {
        "requested_rows": rows,
        "seed": seed,
        "raw_format": raw_format,
        "chunk_customers": CHUNK_CUSTOMERS,
        "customers": customers,
        "rows_by_source": counts,
        "transaction_rows": counts["transactions"],
        "orders_per_customer": round(orders / customers, 2),
        "transaction_rows_per_customer": round(counts["transactions"] / customers, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
