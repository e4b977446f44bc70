"""Benchmark results: summaries of repeated runs, ratios against the floor and the issue-7 targets,
the printed tables, and benchmarks/results.json."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from bench_data import REPO_ROOT, size_label
from bench_process import STAGES

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


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    return {
        "seconds": statistics.median(seconds),
        "all_seconds": [round(s, 3) for s in seconds],
        "peak_mib": max(r["peak_mib"] for r in runs),
        "load_average_1min": [r["load_average_1min"] for r in runs],
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


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
