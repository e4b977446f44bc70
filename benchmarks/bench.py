"""Benchmark every stage of the pipeline at several sizes, against a numpy floor. `make bench` runs it.

For each size (transaction rows, default 1M and 10M) it generates demo data with the demo generator
into benchmarks/data/rows=<size>/ (reused while the size and seed are unchanged), then times each
stage as a whole `python -m pipeline <stage>` run in a subprocess (median of --repeats), with the
peak memory of the stage's process tree. In the same run it times the floor: one numpy pass per
snapshot (np.bincount by customer) computing eight RFM aggregates, summed over the 12 snapshots.
It prints the tables and writes benchmarks/results.json (merged: a run updates only what it measured).

    .venv/bin/python benchmarks/bench.py                      # 1M and 10M rows, all stages, 3 repeats
    .venv/bin/python benchmarks/bench.py --rows 1M --repeats 1
    .venv/bin/python benchmarks/bench.py --rows 10M --only features
    .venv/bin/python benchmarks/bench.py --growth             # features at 1M, 10M, 50M rows (+ snapshots)

See benchmarks/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_ROOT = BENCH_DIR / "data"
DEFAULT_RESULTS = BENCH_DIR / "results.json"

STAGES = ("ingest", "features", "train", "score", "score_selected")
# score_selected: the score command with reasons only for the customers selected for an action.
STAGE_COMMANDS = {"score_selected": ("score", ["score.reason_tiers=[]"])}
PREREQUISITES = {
    "ingest": (),
    "features": ("ingest",),
    "train": ("ingest", "features"),
    "score": ("ingest", "features", "train"),
    "score_selected": ("ingest", "features", "train"),
}
SOURCES = ("transactions", "feedback", "support_tickets", "loyalty_events", "customers")
ID_COLUMNS = ("customer_id", "order_id", "ticket_id", "feedback_id")
# 12 monthly snapshots whose 90-day label windows lie inside the generator's default 2023-2025 span.
SNAPSHOT_DATES = tuple(dt.date(2024 + (9 + m) // 12, (9 + m) % 12 + 1, 1) for m in range(12))
GROWTH_ROWS = (1_000_000, 10_000_000, 50_000_000)
GROWTH_SNAPSHOTS = (3, 6, 12)
BAD_ROW_SHARE = 0.03
CHUNK_CUSTOMERS = 200_000  # customers generated at once: bounds the generator's memory (~2.5 GiB)
CALIBRATION_CUSTOMERS = 5_000
FLOOR_AGGREGATES = ("lines", "monetary", "last_order_at", "lines_90d", "monetary_90d", "lines_365d",
                    "monetary_365d", "returns_value")
DAY_US = 86_400_000_000
MIB = 1024 * 1024
# Issue 7 targets (2 cores, 10M transaction rows).
TARGET_ROWS = 10_000_000
TARGETS = {
    "features_over_floor": 4.0,
    "features_seconds": 30.0,
    "peak_mib": 6 * 1024.0,
    "ingest_rows_per_s": 1_000_000.0,
    "score_seconds_per_1m_customers": 60.0,
    "train_seconds": 600.0,
}


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


# --- sizes and workspaces -----------------------------------------------------------------------


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


# --- demo data at a given size (runs in a subprocess: `bench.py generate-data`) ------------------


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


def ensure_data(workspace: Path, *, rows: int, seed: int, raw_format: str, regenerate: bool, quiet: bool) -> dict[str, Any]:
    """Generate the workspace's raw data unless a matching generation is already there."""
    marker = workspace / "generated.json"
    if marker.is_file() and not regenerate:
        info = json.loads(marker.read_text(encoding="utf-8"))
        if (info.get("requested_rows"), info.get("seed"), info.get("raw_format"), info.get("chunk_customers")) == (
            rows, seed, raw_format, CHUNK_CUSTOMERS
        ):
            return info
    workspace.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    clear_outputs(workspace)
    log = workspace / "generate.log"
    say(f"generating demo data: ~{size_label(rows)} transaction rows -> {workspace}", quiet=quiet)
    command = [sys.executable, str(Path(__file__).resolve()), "generate-data", "--workspace", str(workspace),
               "--rows", str(rows), "--seed", str(seed), "--raw-format", raw_format]
    measured = run_measured(command, log=log, cwd=REPO_ROOT)
    if measured["returncode"] != 0:
        raise BenchError(f"demo data generation failed; see {log}:\n{tail(log)}")
    info = json.loads(marker.read_text(encoding="utf-8"))
    say(f"  {info['transaction_rows']:,} transaction rows, {info['customers']:,} customers "
        f"in {measured['seconds']:.0f} s (peak {measured['peak_mib']:,.0f} MiB)", quiet=quiet)
    return info


# --- running a command with its peak memory -----------------------------------------------------


class TreeMemorySampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants (Dask workers included)."""

    def __init__(self, pid: int, *, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:  # without psutil only the child's own ru_maxrss is reported
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in family:
                try:
                    total += process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(command: list[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `command` with output to `log`; return seconds, peak MiB and return code.

    Peak memory is the larger of the child's own ru_maxrss (from wait4, exact) and the sampled sum
    over its process tree (covers subprocesses such as Dask workers).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeMemorySampler(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        sampler.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
    maxrss_mib = usage.ru_maxrss / 1024  # Linux: KiB
    return {
        "seconds": seconds,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine inflates times
        "peak_mib": max(maxrss_mib, sampler.peak_bytes / MIB),
        "maxrss_mib": maxrss_mib,
        "tree_peak_mib": sampler.peak_bytes / MIB,
        "returncode": process.returncode,
    }


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    return "\n".join(text[-lines:])


def stage_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


def run_stage(workspace: Path, stage: str, *, sets: list[str], tag: str) -> dict[str, Any]:
    """`python -m pipeline <stage> -c config.yaml -q` in a subprocess; raises BenchError on failure."""
    command_name, fixed_sets = STAGE_COMMANDS.get(stage, (stage, []))
    command = [sys.executable, "-m", "pipeline", command_name, "-c", str(workspace / "config.yaml"), "-q"]
    for item in [*sets, *fixed_sets]:
        command += ["--set", item]
    log = workspace / "logs" / f"{stage}-{tag}.log"
    measured = run_measured(command, log=log, cwd=REPO_ROOT, env=stage_env())
    if measured["returncode"] != 0:
        raise BenchError(f"`churn {command_name}` ({stage}) failed (exit {measured['returncode']}); see {log}:\n{tail(log)}")
    return measured


def stage_done(workspace: Path, stage: str) -> bool:
    """Whether a stage's outputs exist (so a later stage can run without it)."""
    data = workspace / "data"
    if stage == "ingest":
        return (data / "validated" / "transactions.parquet").is_file()
    if stage == "features":
        return len(list((data / "features").glob("snapshot=*.parquet"))) >= len(SNAPSHOT_DATES)
    if stage == "train":
        return (workspace / "models" / "churn-bench" / "manifest.json").is_file()
    return bool(list((data / "scores").glob("at_risk_*.json")))


# --- what each stage processed ------------------------------------------------------------------


def ingest_rows(workspace: Path) -> dict[str, int]:
    report = json.loads((workspace / "data" / "reports" / "ingest_report.json").read_text(encoding="utf-8"))
    sources = report["sources"]
    return {
        "transaction_rows": int(sources["transactions"]["input_rows"]),
        "all_rows": int(sum(entry.get("input_rows") or 0 for entry in sources.values())),
        "validated_transaction_rows": int(sources["transactions"]["validated_rows"]),
    }


def feature_table_rows(workspace: Path) -> int:
    import pyarrow.parquet as pq

    return int(sum(pq.ParquetFile(p).metadata.num_rows for p in (workspace / "data" / "features").glob("snapshot=*.parquet")))


def scored_customers(workspace: Path) -> int:
    summaries = sorted((workspace / "data" / "scores").glob("at_risk_*.json"))
    return int(json.loads(summaries[-1].read_text(encoding="utf-8"))["customers_scored"])


# --- the numpy floor (runs in a subprocess: `bench.py floor`) ------------------------------------


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


# --- the features stage, step by step (runs in a subprocess: `bench.py features-breakdown`) -------


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


def run_json_helper(workspace: Path, name: str, args: list[str]) -> dict[str, Any]:
    """Run `bench.py <name> ...` (prints one JSON object last) with peak memory; return both."""
    log = workspace / "logs" / f"{name}.log"
    out = workspace / "logs" / f"{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), name, "--output", str(out), *args]
    measured = run_measured(command, log=log, cwd=REPO_ROOT, env=stage_env())
    if measured["returncode"] != 0:
        raise BenchError(f"{name} failed; see {log}:\n{tail(log)}")
    return {**json.loads(out.read_text(encoding="utf-8")), "process_seconds": measured["seconds"],
            "peak_mib": measured["peak_mib"]}


# --- one size -----------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    return {
        "seconds": statistics.median(seconds),
        "all_seconds": [round(s, 3) for s in seconds],
        "peak_mib": max(r["peak_mib"] for r in runs),
        "load_average_1min": [r["load_average_1min"] for r in runs],
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def bench_size(rows: int, *, args: argparse.Namespace, stages: list[str], previous: dict[str, Any]) -> dict[str, Any]:
    """Generate (if needed), then time the selected stages and the floor at one size."""
    workspace = workspace_dir(args.data, rows)
    info = ensure_data(workspace, rows=rows, seed=args.seed, raw_format=args.raw_format,
                       regenerate=args.regenerate, quiet=args.quiet)
    write_bench_config(workspace, raw_format=args.raw_format)
    result = {**previous, "label": size_label(rows), "rows": rows, "data": info, "workspace": str(workspace)}
    measured_stages = dict(previous.get("stages", {}))
    tx_rows = info["transaction_rows"]
    for stage in STAGES:
        if stage not in stages:
            continue
        for earlier in PREREQUISITES[stage]:
            if earlier not in stages and not stage_done(workspace, earlier):
                say(f"  preparing: {earlier} (not timed)", quiet=args.quiet)
                run_stage(workspace, earlier, sets=args.set, tag="prepare")
        runs = []
        for repeat in range(args.repeats):
            runs.append(run_stage(workspace, stage, sets=args.set, tag=str(repeat + 1)))
            say(f"  {stage} run {repeat + 1}/{args.repeats}: {runs[-1]['seconds']:.1f} s, "
                f"peak {runs[-1]['peak_mib']:,.0f} MiB (load average {runs[-1]['load_average_1min']:.1f})",
                quiet=args.quiet)
        entry = summarise(runs)
        if stage == "ingest":
            counted = ingest_rows(workspace)
            entry.update(counted, rows_per_s=counted["transaction_rows"] / entry["seconds"],
                         all_rows_per_s=counted["all_rows"] / entry["seconds"])
        elif stage == "features":
            entry.update(transaction_rows=tx_rows, rows_per_s=tx_rows / entry["seconds"], snapshots=len(SNAPSHOT_DATES),
                         feature_rows=feature_table_rows(workspace))
        elif stage == "train":
            table_rows = feature_table_rows(workspace)
            entry.update(feature_table_rows=table_rows, rows_per_s=table_rows / entry["seconds"])
        else:
            customers = scored_customers(workspace)
            entry.update(customers_scored=customers, customers_per_s=customers / entry["seconds"],
                         seconds_per_1m_customers=entry["seconds"] * 1_000_000 / max(customers, 1))
        measured_stages[stage] = entry
        if stage == "features":
            # The floor and the step-by-step features timing, on the same validated data, same run.
            result["floor"] = measure_floor_in_subprocess(workspace, repeats=args.repeats, quiet=args.quiet)
            try:
                result["features_breakdown"] = run_json_helper(
                    workspace, "features-breakdown", ["--config", str(workspace / "config.yaml")]
                )
            except BenchError as exc:  # the step-by-step view follows the runner's internals; the stage time stands
                result.pop("features_breakdown", None)
                say(f"  features steps not measured: {str(exc).splitlines()[0]}", quiet=args.quiet)
    result["stages"] = measured_stages
    result["ratios"] = ratios(result)
    return result


def measure_floor_in_subprocess(workspace: Path, *, repeats: int, quiet: bool) -> dict[str, Any]:
    floor = run_json_helper(
        workspace, "floor",
        ["--transactions", str(workspace / "data" / "validated" / "transactions.parquet"), "--repeats", str(repeats)],
    )
    say(f"  floor: {floor['seconds']:.2f} s for {floor['snapshots']} snapshots "
        f"({floor['seconds'] / floor['snapshots']:.3f} s each)", quiet=quiet)
    return floor


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """Headline ratios: features ÷ floor (whole run and compute only), and each stage ÷ its target."""
    stages, floor = result.get("stages", {}), result.get("floor")
    out: dict[str, float] = {}
    if floor and "features" in stages:
        out["features_over_floor"] = stages["features"]["seconds"] / floor["seconds"]
        breakdown = result.get("features_breakdown")
        if breakdown:
            out["features_compute_over_floor"] = breakdown["compute_seconds"] / floor["seconds"]
            out["snapshot_features_over_floor"] = sum(breakdown["snapshot_features_seconds"]) / floor["seconds"]
        out["features_over_30s_budget"] = stages["features"]["seconds"] / TARGETS["features_seconds"]
    if "ingest" in stages:
        out["ingest_rows_per_s_over_target"] = stages["ingest"]["rows_per_s"] / TARGETS["ingest_rows_per_s"]
    for stage in ("score", "score_selected"):
        if stage in stages:
            out[f"{stage}_1m_customers_over_60s_budget"] = (
                stages[stage]["seconds_per_1m_customers"] / TARGETS["score_seconds_per_1m_customers"]
            )
    if "train" in stages:
        out["train_over_10min_budget"] = stages["train"]["seconds"] / TARGETS["train_seconds"]
    peaks = [entry["peak_mib"] for entry in stages.values()]
    if peaks:
        out["peak_over_6gib"] = max(peaks) / TARGETS["peak_mib"]
    return out


def score_fits(runs: dict[str, Any]) -> dict[str, Any]:
    """Seconds to score 1M customers, on the line through the smallest and largest measured sizes.

    Fixed costs (start-up, model loading, MLflow) are counted once, unlike the per-size linear scaling.
    """
    fits = {}
    for stage in ("score", "score_selected"):
        points = sorted(
            (run["stages"][stage]["customers_scored"], run["stages"][stage]["seconds"], label)
            for label, run in runs.items() if stage in run.get("stages", {})
        )
        if len(points) < 2 or points[-1][0] == points[0][0]:
            continue
        (c1, s1, l1), (c2, s2, l2) = points[0], points[-1]
        per_customer = (s2 - s1) / (c2 - c1)
        fits[stage] = {
            "from_sizes": [l1, l2],
            "fixed_seconds": s1 - per_customer * c1,
            "ms_per_customer": per_customer * 1000,
            "seconds_for_1m_customers": s1 + per_customer * (1_000_000 - c1),
        }
    return fits


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, budget, measured, met) for the issue-7 targets, from one size's result."""
    stages, r = result.get("stages", {}), result.get("ratios", {})
    rows: list[tuple[str, str, str, bool | None]] = []
    if "features_over_floor" in r:
        rows.append(("features ÷ floor (12 snapshots)", "≤ 4×", f"{r['features_over_floor']:.1f}×",
                     r["features_over_floor"] <= TARGETS["features_over_floor"]))
    if "features" in stages:
        s = stages["features"]
        rows.append(("features wall (12 snapshots)", "≤ 30 s", f"{s['seconds']:.1f} s", s["seconds"] <= TARGETS["features_seconds"]))
        rows.append(("features peak memory", "≤ 6 GiB", f"{s['peak_mib'] / 1024:.2f} GiB", s["peak_mib"] <= TARGETS["peak_mib"]))
    if "ingest" in stages:
        s = stages["ingest"]
        rows.append(("ingest throughput", "≥ 1M rows/s", f"{s['rows_per_s'] / 1e6:.2f}M rows/s",
                     s["rows_per_s"] >= TARGETS["ingest_rows_per_s"]))
    for stage, what in (("score", "reasons for the selected + the reason_limit riskiest"), ("score_selected", "reasons for the selected only")):
        if stage in stages:
            s = stages[stage]
            rows.append((f"score 1M customers, {what} (linear)", "≤ 60 s", f"{s['seconds_per_1m_customers']:.1f} s",
                         s["seconds_per_1m_customers"] <= TARGETS["score_seconds_per_1m_customers"]))
    if "train" in stages:
        s = stages["train"]
        rows.append(("train on the 12-snapshot table", "≤ 10 min", f"{s['seconds'] / 60:.1f} min",
                     s["seconds"] <= TARGETS["train_seconds"]))
    for stage in ("ingest", "train", "score", "score_selected"):
        if stage in stages:
            s = stages[stage]
            rows.append((f"{stage} peak memory", "≤ 6 GiB", f"{s['peak_mib'] / 1024:.2f} GiB", s["peak_mib"] <= TARGETS["peak_mib"]))
    return rows


# --- growth -------------------------------------------------------------------------------------


def ingest_mib_per_row(results: dict[str, Any]) -> float | None:
    """The largest ingest peak per transaction row measured so far (runs and growth), MiB."""
    seen = [
        run["stages"]["ingest"]["peak_mib"] / run["stages"]["ingest"]["transaction_rows"]
        for run in results.get("runs", {}).values() if "ingest" in run.get("stages", {})
    ]
    seen += [e["ingest"]["peak_mib"] / e["transaction_rows"] for e in results.get("growth", {}).get("by_rows", [])
             if "ingest" in e and e.get("ingest", {}).get("groups", 1) == 1]
    return max(seen) if seen else None


def ingest_in_groups(workspace: Path, *, parts_per_group: int, sets: list[str], raw_format: str) -> dict[str, Any]:
    """Validated files of a workspace too large to ingest at once: ingest groups of raw part files
    (each a complete set of customers) separately, then concatenate their validated Parquet files.

    Every customer lives in exactly one part, so the result holds the same rows as one ingest would
    (in part order). Returns seconds (sum) and peak MiB (largest group).
    """
    import pyarrow.parquet as pq

    parts = sorted(p.name for p in (workspace / "raw" / "transactions").glob(f"part-*.{raw_format}"))
    groups = [parts[i : i + parts_per_group] for i in range(0, len(parts), parts_per_group)]
    runs = []
    for number, names in enumerate(groups):
        folder = workspace / "groups" / f"g{number:02d}"
        shutil.rmtree(folder, ignore_errors=True)
        for source in SOURCES:
            (folder / "raw" / source).mkdir(parents=True)
            for name in names:
                (folder / "raw" / source / name).symlink_to(workspace / "raw" / source / name)
        write_bench_config(folder, raw_format=raw_format)
        runs.append(run_stage(folder, "ingest", sets=sets, tag="group"))
    target = workspace / "data" / "validated"
    target.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        files = [workspace / "groups" / f"g{n:02d}" / "data" / "validated" / f"{source}.parquet" for n in range(len(groups))]
        schema = pq.read_schema(files[0])
        from pipeline.io import atomic_path

        with atomic_path(target / f"{source}.parquet") as tmp:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for path in files:
                    writer.write_table(pq.read_table(path).cast(schema))
    shutil.rmtree(workspace / "groups")
    return {"seconds": sum(r["seconds"] for r in runs), "peak_mib": max(r["peak_mib"] for r in runs),
            "groups": len(groups)}


def bench_growth(args: argparse.Namespace, previous: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """Features at each size in --rows (default 1M, 10M, 50M) and at 3/6/12 snapshots on the largest."""
    sizes = sorted(args.rows or GROWTH_ROWS)
    by_rows: list[dict[str, Any]] = []
    for rows in sizes:
        if by_rows and not args.skip_memory_check:
            reason = memory_too_small(by_rows, rows, available_mib=available_mib())
            if reason:
                say(f"skipping {size_label(rows)} rows: {reason}", quiet=args.quiet)
                by_rows.append({"rows": rows, "label": size_label(rows), "skipped": reason})
                continue
        say(f"[growth] {size_label(rows)} rows", quiet=args.quiet)
        workspace = workspace_dir(args.data, rows)
        info = ensure_data(workspace, rows=rows, seed=args.seed, raw_format=args.raw_format,
                           regenerate=args.regenerate, quiet=args.quiet)
        write_bench_config(workspace, raw_format=args.raw_format)
        ingest = None
        if not stage_done(workspace, "ingest"):
            per_row = ingest_mib_per_row({**results, "growth": {"by_rows": by_rows}})
            headroom = available_mib() - 2048
            if per_row and per_row * info["transaction_rows"] * 1.15 > headroom:
                parts = len(list((workspace / "raw" / "transactions").glob("part-*")))
                rows_per_part = info["transaction_rows"] / parts
                per_group = max(1, int(headroom / (per_row * 1.15 * rows_per_part)))
                say(f"  ingest would need ~{per_row * info['transaction_rows'] / 1024:.0f} GiB: ingesting "
                    f"{per_group} part(s) at a time", quiet=args.quiet)
                ingest = ingest_in_groups(workspace, parts_per_group=per_group, sets=args.set, raw_format=args.raw_format)
            else:
                ingest = run_stage(workspace, "ingest", sets=args.set, tag="growth")
            say(f"  ingest (prerequisite): {ingest['seconds']:.1f} s, peak {ingest['peak_mib']:,.0f} MiB", quiet=args.quiet)
        runs = [run_stage(workspace, "features", sets=args.set, tag=f"growth-{i + 1}") for i in range(args.repeats)]
        entry = {"rows": rows, "label": size_label(rows), "transaction_rows": info["transaction_rows"],
                 "customers": info["customers"], **summarise(runs)}
        if ingest:
            entry["ingest"] = {"seconds": ingest["seconds"], "peak_mib": ingest["peak_mib"],
                               "groups": ingest.get("groups", 1)}
        say(f"  features: {entry['seconds']:.1f} s, peak {entry['peak_mib']:,.0f} MiB", quiet=args.quiet)
        by_rows.append(entry)
    measured = [e for e in by_rows if "skipped" not in e]
    for earlier, later in zip(measured, measured[1:]):
        later["rows_factor"] = later["transaction_rows"] / earlier["transaction_rows"]
        later["time_factor"] = later["seconds"] / earlier["seconds"]
        later["memory_factor"] = later["peak_mib"] / earlier["peak_mib"]
    by_snapshots = []
    if measured:
        largest = measured[-1]
        workspace = workspace_dir(args.data, largest["rows"])
        for count in GROWTH_SNAPSHOTS:
            dates = "[" + ", ".join(d.isoformat() for d in SNAPSHOT_DATES[-count:]) + "]"
            runs = [run_stage(workspace, "features", sets=[*args.set, f"features.snapshots.dates={dates}"],
                              tag=f"snapshots-{count}-{i + 1}") for i in range(args.repeats)]
            by_snapshots.append({"rows": largest["rows"], "snapshots": count, **summarise(runs)})
            say(f"  {count} snapshots at {largest['label']}: {by_snapshots[-1]['seconds']:.1f} s", quiet=args.quiet)
        # leave the full 12-snapshot files behind for later stages
        run_stage(workspace, "features", sets=args.set, tag="restore")
        base = by_snapshots[0]
        for entry in by_snapshots:
            entry["snapshots_factor"] = entry["snapshots"] / base["snapshots"]
            entry["time_factor"] = entry["seconds"] / base["seconds"]
        if len(by_snapshots) > 1:
            first, last = by_snapshots[0], by_snapshots[-1]
            slope = (last["seconds"] - first["seconds"]) / (last["snapshots"] - first["snapshots"])
            for entry in by_snapshots:
                entry["seconds_per_extra_snapshot"] = slope
    return {**previous, "by_rows": by_rows, "by_snapshots": by_snapshots,
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def memory_too_small(earlier: list[dict[str, Any]], rows: int, *, available_mib: float) -> str | None:
    """Why features at `rows` would not fit, extrapolating the peak of the sizes measured before it: on the
    line through the last two (fixed memory + MiB per row), or in proportion to rows from one.

    (Ingest is not the limit: a size too large to ingest at once is ingested in groups of parts.)
    """
    previous = earlier[-1]
    if "skipped" in previous:
        return f"the smaller size {previous['label']} was skipped"
    measured = [e for e in earlier if "skipped" not in e]
    if len(measured) >= 2:
        (r0, m0), (r1, m1) = [(e["rows"], e["peak_mib"]) for e in measured[-2:]]
        slope = max((m1 - m0) / (r1 - r0), 0.0)
        needed = (m1 + slope * (rows - r1)) * 1.15
        basis = f"on the line through {measured[-2]['label']} and {previous['label']}"
    else:
        needed = previous["peak_mib"] * rows / previous["rows"] * 1.15
        basis = f"linear from {previous['label']}"
    headroom = available_mib - 2048  # leave 2 GiB for everything else on the machine
    if needed > headroom:
        return f"features would need about {needed / 1024:.1f} GiB ({basis}), {headroom / 1024:.1f} GiB available"
    return None


def available_mib() -> float:
    """Memory available for new work now (MemAvailable), MiB."""
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")) / MIB


# --- output -------------------------------------------------------------------------------------


def say(message: str, *, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M/s"
    return f"{value / 1e3:.0f}k/s" if value >= 1e4 else f"{value:,.0f}/s"


def stage_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    data = result.get("data", {})
    title = (f"{result['label']} rows: {data.get('transaction_rows', 0):,} transaction rows, "
             f"{data.get('customers', 0):,} customers, 12 snapshots")
    table = Table(title=title)
    for column in ("stage", "median s", "runs (s)", "peak MiB", "throughput", "ratio"):
        table.add_column(column, justify="left" if column in ("stage", "ratio") else "right")
    stages, r = result.get("stages", {}), result.get("ratios", {})
    floor = result.get("floor")
    notes = {
        "ingest": f"{r['ingest_rows_per_s_over_target']:.2f}× the 1M rows/s target" if "ingest_rows_per_s_over_target" in r else "",
        "features": (f"{r['features_over_floor']:.1f}× floor (whole run)" if "features_over_floor" in r else ""),
        "train": f"{r['train_over_10min_budget']:.2f}× the 10 min budget" if "train_over_10min_budget" in r else "",
        **{
            stage: (f"1M customers ≈ {stages[stage]['seconds_per_1m_customers']:.0f} s "
                    f"({r[f'{stage}_1m_customers_over_60s_budget']:.2f}× 60 s)") if stage in stages else ""
            for stage in ("score", "score_selected")
        },
    }
    for stage in STAGES:
        if stage not in stages:
            continue
        s = stages[stage]
        if stage == "ingest":
            throughput = f"{_rate(s['rows_per_s'])} tx rows"
        elif stage == "features":
            throughput = f"{_rate(s['rows_per_s'])} tx rows"
        elif stage == "train":
            throughput = f"{s['feature_table_rows']:,} rows"
        else:
            throughput = f"{s['customers_scored']:,} cust. ({_rate(s['customers_per_s'])})"
        table.add_row(stage, f"{s['seconds']:.1f}", ", ".join(f"{x:.1f}" for x in s["all_seconds"]),
                      f"{s['peak_mib']:,.0f}", throughput, notes[stage])
    if floor:
        table.add_row("numpy floor", f"{floor['seconds']:.2f}", ", ".join(f"{x:.2f}" for x in floor["all_seconds"]),
                      f"{floor['peak_mib']:,.0f}", f"{_rate(floor['rows'] * floor['snapshots'] / floor['seconds'])} row-snapshots",
                      f"{floor['seconds'] / floor['snapshots']:.3f} s per snapshot, 8 aggregates")
    breakdown = result.get("features_breakdown")
    if breakdown and floor:
        snapshots = sum(breakdown["snapshot_features_seconds"])
        table.add_row(
            "  features steps", f"{breakdown['compute_seconds']:.1f}", "", f"{breakdown['peak_mib']:,.0f}",
            f"load {breakdown['load_events_seconds']:.1f} + prepare {breakdown['prepare_tables_seconds']:.1f} "
            f"+ snapshots {snapshots:.1f} + labels {sum(breakdown['snapshot_labels_seconds']):.1f}",
            f"compute {r['features_compute_over_floor']:.1f}× floor; snapshots alone {r['snapshot_features_over_floor']:.1f}×",
        )
    return table


def targets_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    note = "" if result["rows"] == TARGET_ROWS else f" (targets are set at 10M rows; this is {result['label']})"
    table = Table(title=f"Issue 7 targets at {result['label']} rows{note}")
    for column in ("target", "budget", "measured", ""):
        table.add_column(column)
    for name, budget, measured, met in targets(result):
        table.add_row(name, budget, measured, "met" if met else "[bold red]missed[/]")
    return table


def growth_tables(growth: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    rows_table = Table(title="Features (12 snapshots) as rows grow")
    for column in ("rows", "tx rows", "customers", "seconds", "peak MiB", "rows ×", "time ×", "memory ×"):
        rows_table.add_column(column, justify="right")
    for e in growth.get("by_rows", []):
        if "skipped" in e:
            rows_table.add_row(e["label"], "-", "-", "skipped", e["skipped"], "", "", "")
            continue
        rows_table.add_row(e["label"], f"{e['transaction_rows']:,}", f"{e['customers']:,}", f"{e['seconds']:.1f}",
                           f"{e['peak_mib']:,.0f}", *(f"{e[k]:.1f}" if k in e else "" for k in ("rows_factor", "time_factor", "memory_factor")))
    snapshots_table = Table(title="Features as snapshots grow (largest measured size)")
    for column in ("rows", "snapshots", "seconds", "peak MiB", "snapshots ×", "time ×", "s per extra snapshot"):
        snapshots_table.add_column(column, justify="right")
    for e in growth.get("by_snapshots", []):
        snapshots_table.add_row(size_label(e["rows"]), str(e["snapshots"]), f"{e['seconds']:.1f}", f"{e['peak_mib']:,.0f}",
                                f"{e['snapshots_factor']:.1f}", f"{e['time_factor']:.2f}",
                                f"{e.get('seconds_per_extra_snapshot', float('nan')):.2f}")
    return [rows_table, snapshots_table]


def machine() -> dict[str, Any]:
    versions = {}
    for module in ("numpy", "pandas", "polars", "pyarrow", "lightgbm", "mlflow"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def load_results(path: Path) -> dict[str, Any]:
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            pass
    return {}


def save_results(results: dict[str, Any], path: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from pipeline.io import write_json

    write_json(results, path)


# --- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=parse_sizes, default=None,
                        help="comma-separated sizes in transaction rows (default 1M,10M; with --growth 1M,10M,50M)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per stage; the median is reported (default 3)")
    parser.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=None,
                        help=f"comma-separated stages to time (of {', '.join(STAGES)}); earlier stages run untimed if needed")
    parser.add_argument("--growth", action="store_true", help="features only, at 1M, 10M and 50M rows (where memory allows)")
    parser.add_argument("--skip-memory-check", action="store_true",
                        help="with --growth: run every size even when its extrapolated peak exceeds the free memory")
    parser.add_argument("--seed", type=int, default=7, help="demo data seed (default 7)")
    parser.add_argument("--raw-format", choices=("csv", "parquet"), default="csv", help="raw input files (default csv)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT, help="workspaces folder (default benchmarks/data)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results file (default benchmarks/results.json)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed to every stage (repeatable), e.g. train.search_trials=2")
    parser.add_argument("--regenerate", action="store_true", help="generate the demo data again even if present")
    parser.add_argument("--quiet", action="store_true", help="only the final tables")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    unknown = sorted(set(args.only or []) - set(STAGES))
    if unknown:
        parser.error(f"--only: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return args


def helper_main(argv: list[str]) -> int:
    """Internal subcommands run in subprocesses: generate-data, floor, features-breakdown."""
    sys.path.insert(0, str(REPO_ROOT))
    parser = argparse.ArgumentParser(prog=f"bench.py {argv[0]}")
    parser.add_argument("--output", type=Path)
    if argv[0] == "generate-data":
        parser.add_argument("--workspace", type=Path, required=True)
        parser.add_argument("--rows", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--raw-format", required=True)
        args = parser.parse_args(argv[1:])
        info = generate_data(args.workspace, rows=args.rows, seed=args.seed, raw_format=args.raw_format)
        from pipeline.io import write_json

        write_json(info, args.workspace / "generated.json")
        return 0
    if argv[0] == "floor":
        parser.add_argument("--transactions", type=Path, required=True)
        parser.add_argument("--repeats", type=int, default=3)
        args = parser.parse_args(argv[1:])
        result = measure_floor(args.transactions, dates=list(SNAPSHOT_DATES), repeats=args.repeats)
    else:
        parser.add_argument("--config", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        result = features_breakdown(args.config)
    args.output.write_text(json.dumps(result), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("generate-data", "floor", "features-breakdown"):
        return helper_main(argv)
    args = parse_args(argv)
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=160)
    results = load_results(args.results)
    results["machine"] = machine()
    results["settings"] = {"snapshots": [d.isoformat() for d in SNAPSHOT_DATES], "bad_row_share": BAD_ROW_SHARE,
                           "generator": "pipeline.demo_data.generate_demo (2023-01-01..2025-12-31)", "targets": TARGETS}
    try:
        if args.growth:
            results["growth"] = bench_growth(args, results.get("growth", {}), results)
            save_results(results, args.results)
            for table in growth_tables(results["growth"]):
                console.print(table)
        else:
            stages = args.only or list(STAGES)
            runs = results.setdefault("runs", {})
            for rows in args.rows or [1_000_000, 10_000_000]:
                say(f"[{size_label(rows)} rows] stages: {', '.join(stages)}; {args.repeats} repeat(s)", quiet=args.quiet)
                result = bench_size(rows, args=args, stages=stages, previous=runs.get(size_label(rows), {}))
                result["repeats"] = args.repeats
                runs[size_label(rows)] = result
                save_results(results, args.results)
                console.print(stage_table(result))
                console.print(targets_table(result))
            results["score_1m_customers_fit"] = score_fits(runs)
            save_results(results, args.results)
            for stage, fit in results["score_1m_customers_fit"].items():
                console.print(
                    f"{stage}: {fit['seconds_for_1m_customers']:.0f} s for 1M customers (line through "
                    f"{' and '.join(fit['from_sizes'])}: {fit['fixed_seconds']:.0f} s fixed + "
                    f"{fit['ms_per_customer']:.2f} ms per customer; target 60 s)"
                )
    except BenchError as exc:
        save_results(results, args.results)
        console.print(f"[bold red]benchmark failed:[/] {exc}", highlight=False)
        return 1
    console.print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
