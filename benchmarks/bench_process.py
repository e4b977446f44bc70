"""Running one stage as a whole command in a subprocess: wall time, peak memory of its process tree,
and what the stage processed (read back from its outputs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_data import REPO_ROOT, SNAPSHOT_DATES

STAGES = ("ingest", "features", "train", "score", "score_selected")
# score_selected: the score command with reasons only for the customers selected for an action.
STAGE_COMMANDS = {"score_selected": ("score", ["score.reason_tiers=[]"])}
MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


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


def available_mib() -> float:
    """Memory available for new work now (MemAvailable), MiB."""
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")) / MIB
