"""`churn ui`: the MLflow UI on the configured tracking store, bound to 127.0.0.1.

Starts `mlflow server` (UI + REST API) on `cfg.tracking_uri()` with artifacts served from
`cfg.mlflow.artifact_root`, waits until it answers, prints the address and where to find the latest
training run, the registered model and its `champion` alias, then waits. Ctrl-C stops the server
and every worker it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from rich.console import Console

from pipeline.config import Config
from pipeline.errors import ConfigError, PipelineError
from pipeline.review import find_latest_training_run
from pipeline.tracking import mark_runs_view

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class StoreOverview:
    """What the tracking store holds for this project (ids are None when absent)."""

    experiment_id: str | None
    latest_run_id: str | None
    latest_run_name: str | None
    model_name: str
    champion_version: str | None


def ensure_store(tracking_uri: str, *, artifact_root: Path) -> None:
    """Create the store's schema if needed (a sqlite file and its folder), so the server starts on it.

    A server starting on a missing sqlite file migrates it itself; doing it here first avoids two
    processes migrating one new file at once (see ECOSYSTEM.md) and gives the default experiment
    the configured artifact root instead of the current folder.
    """
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        SqlAlchemyStore(tracking_uri, artifact_root.as_uri())


def overview(tracking_uri: str, *, experiment: str, model_name: str) -> StoreOverview:
    """The training experiment, its latest training run and the registered model's champion version.

    Also tags the experiment as classic ML (`tracking.mark_runs_view`) so the UI opens on its runs.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        mark_runs_view(client, found)  # a store made before the tag existed still opens on the runs
    latest = find_latest_training_run(tracking_uri, experiment=experiment, model_name=model_name)
    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS).version
    except MlflowException:
        champion = None
    return StoreOverview(
        experiment_id=found.experiment_id if found is not None else None,
        latest_run_id=latest.info.run_id if latest is not None else None,
        latest_run_name=latest.info.run_name if latest is not None else None,
        model_name=model_name,
        champion_version=str(champion) if champion is not None else None,
    )


def runs_page(address: str, experiment_id: str) -> str:
    """The UI page with the table of an experiment's runs (not MLflow 3's GenAI overview)."""
    return f"{address}/#/experiments/{experiment_id}/runs"


def guide_lines(address: str, store: StoreOverview, *, experiment: str) -> list[str]:
    """Plain-text lines telling where the runs, the model and its champion alias are in the UI."""
    lines = [f"MLflow UI: {address}   (Ctrl-C to stop)"]
    if store.experiment_id is None:
        lines.append(f"  no experiment '{experiment}' yet: run `churn train` (or `make train`) first")
    else:
        lines.append(
            f"  training runs:    {runs_page(address, store.experiment_id)}  (experiment '{experiment}')"
        )
        if store.latest_run_id is not None:
            lines.append(
                f"  latest run:       {address}/#/experiments/{store.experiment_id}/runs/{store.latest_run_id}"
                f"  ({store.latest_run_name}; metrics, plots under Artifacts)"
            )
    lines.append(f"  registered model: {address}/#/models/{store.model_name}")
    if store.champion_version is not None:
        lines.append(
            f"  @{CHAMPION_ALIAS}:        {address}/#/models/{store.model_name}/versions/{store.champion_version}"
            f"  (version {store.champion_version}; scoring loads models:/{store.model_name}@{CHAMPION_ALIAS})"
        )
    else:
        lines.append(f"  no '{CHAMPION_ALIAS}' alias yet: `churn train` sets it on the first model")
    return lines


def port_is_free(port: int, *, host: str = HOST) -> bool:
    """Whether a server could listen on `port` (SO_REUSEADDR as uvicorn: closed connections don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def server_command(tracking_uri: str, *, artifact_root: Path, port: int) -> list[str]:
    """The `mlflow server` command line: this venv's python, local host, one worker."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", tracking_uri,
        "--artifacts-destination", artifact_root.as_uri(),
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip


def wait_until_ready(process: subprocess.Popen, address: str, *, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll `<address>/health` until it answers; PipelineError when the server dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipelineError(
                f"the MLflow server exited with code {process.returncode} before answering; "
                "its messages are above (a busy port, or a tracking URI it cannot open)"
            )
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise PipelineError(f"the MLflow server did not answer at {address} within {timeout_s:.0f}s")


def wait_for_exit(process: subprocess.Popen, *, poll_s: float = 0.5) -> int:
    """Block until the server exits; its exit code.

    Polls instead of `process.wait()`: a signal delivered to one of MLflow's background threads
    would not wake a main thread blocked in waitpid, so Ctrl-C would go unnoticed.
    """
    while process.poll() is None:
        time.sleep(poll_s)
    return process.returncode


def stop_server(process: subprocess.Popen, *, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM the server's process group (server and workers), SIGKILL if it lingers; its exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    return process.returncode


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> signal.Handlers | None:
    """Treat SIGTERM like Ctrl-C (so a killed `churn ui` stops its server too); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def run(cfg: Config, *, port: int | None) -> int:
    """Start the MLflow UI, print where things are, block until Ctrl-C; returns the server's exit code."""
    console = Console(highlight=False, soft_wrap=True)
    tracking_uri = cfg.tracking_uri()
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        console.print(f"The tracking store is already a server: open {tracking_uri} in a browser.")
        return 0
    port = port or cfg.mlflow.ui_port
    if not port_is_free(port):
        raise ConfigError(
            f"port {port} on {HOST} is in use (another `churn ui`?): stop it, or pick another with "
            "`churn ui --port N` / `make ui ARGS='--port N'` or mlflow.ui_port in the config"
        )
    ensure_store(tracking_uri, artifact_root=cfg.mlflow.artifact_root)
    store = overview(tracking_uri, experiment=cfg.mlflow.experiment, model_name=cfg.train.model_name)
    address = f"http://{HOST}:{port}"
    console.print(f"Starting MLflow on {tracking_uri} (artifacts: {cfg.mlflow.artifact_root}) ...")
    # Own session: Ctrl-C reaches only this process, which then stops the server's whole group.
    process = subprocess.Popen(
        server_command(tracking_uri, artifact_root=cfg.mlflow.artifact_root, port=port), start_new_session=True
    )
    previous_sigterm = _interrupt_on_sigterm()
    try:
        wait_until_ready(process, address)
        console.print("\n".join(guide_lines(address, store, experiment=cfg.mlflow.experiment)))
        code = wait_for_exit(process)
    except KeyboardInterrupt:
        console.print("\nStopping the MLflow UI ...")
        return 0
    finally:
        stop_server(process)
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    if code != 0:
        raise PipelineError(f"the MLflow server stopped with exit code {code}; its messages are above")
    return code
