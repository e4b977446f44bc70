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

The work is split by concern: bench_data (sizes, workspace config, demo data), bench_process
(a stage as a subprocess: time and peak memory), bench_floor (the numpy floor, the features steps),
bench_report (ratios, targets, tables, results.json); this file is the command line and the runs.
See benchmarks/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench_data import (
    BAD_ROW_SHARE, BENCH_DIR, CHUNK_CUSTOMERS, REPO_ROOT, SNAPSHOT_DATES, SOURCES, clear_outputs,
    generate_data, parse_sizes, size_label, workspace_dir, write_bench_config,
)
from bench_floor import features_breakdown, measure_floor
from bench_process import (
    BenchError, STAGES, available_mib, feature_table_rows, ingest_rows, run_measured, run_stage,
    scored_customers, stage_done, stage_env, tail,
)
from bench_report import (
    TARGETS, growth_tables, load_results, machine, ratios, save_results, score_fits, stage_table, summarise,
    targets_table,
)

DEFAULT_DATA_ROOT = BENCH_DIR / "data"
DEFAULT_RESULTS = BENCH_DIR / "results.json"
PREREQUISITES = {
    "ingest": (),
    "features": ("ingest",),
    "train": ("ingest", "features"),
    "score": ("ingest", "features", "train"),
    "score_selected": ("ingest", "features", "train"),
}
GROWTH_ROWS = (1_000_000, 10_000_000, 50_000_000)
GROWTH_SNAPSHOTS = (3, 6, 12)


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


def say(message: str, *, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


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
