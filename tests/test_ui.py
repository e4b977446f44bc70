"""`churn ui`: the MLflow server on the configured store, its REST API, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import minimal_config
from pipeline.config import config_from_dict
from pipeline.errors import ConfigError
from pipeline.run import ui

STARTUP_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


def small_config(tmp_path: Path, **mlflow):
    raw = minimal_config(
        snapshots={"start": "2024-01-01", "end": "2024-03-01"},
        mlflow={"tracking_uri": "sqlite:///store/mlruns.db", "artifact_root": "mlartifacts", **mlflow},
        train={"model_name": "churn-ui-test"},
    )
    return config_from_dict(raw, base_dir=tmp_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- small parts ------------------------------------------------------------------------------------------


def test_guide_lines_point_at_run_model_and_champion():
    store = ui.StoreOverview("3", "abc123", "churn test=2025-10-01", "churn-demo", "2")
    lines = ui.guide_lines("http://127.0.0.1:5000", store, experiment="churn-demo-training")
    assert lines == [
        "MLflow UI: http://127.0.0.1:5000   (Ctrl-C to stop)",
        "  training runs:    http://127.0.0.1:5000/#/experiments/3/runs  (experiment 'churn-demo-training')",
        "  latest run:       http://127.0.0.1:5000/#/experiments/3/runs/abc123"
        "  (churn test=2025-10-01; metrics, plots under Artifacts)",
        "  registered model: http://127.0.0.1:5000/#/models/churn-demo",
        "  @champion:        http://127.0.0.1:5000/#/models/churn-demo/versions/2"
        "  (version 2; scoring loads models:/churn-demo@champion)",
    ]


def test_guide_lines_say_what_to_run_on_an_empty_store():
    store = ui.StoreOverview(None, None, None, "churn-demo", None)
    lines = ui.guide_lines("http://127.0.0.1:5000", store, experiment="churn-demo-training")
    assert "  no experiment 'churn-demo-training' yet: run `churn train` (or `make train`) first" in lines
    assert "  no 'champion' alias yet: `churn train` sets it on the first model" in lines


def test_server_command_binds_localhost_and_serves_configured_artifacts(tmp_path):
    cfg = small_config(tmp_path)
    command = ui.server_command(cfg.tracking_uri(), artifact_root=cfg.mlflow.artifact_root, port=5123)
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    options = dict(zip(command[4::2], command[5::2], strict=True))
    assert options == {
        "--backend-store-uri": f"sqlite:///{tmp_path / 'store' / 'mlruns.db'}",
        "--artifacts-destination": (tmp_path / "mlartifacts").as_uri(),
        "--host": "127.0.0.1",
        "--port": "5123",
        "--workers": "1",
    }


@pytest.mark.slow
def test_ensure_store_creates_the_sqlite_schema(tmp_path):
    import mlflow

    cfg = small_config(tmp_path)
    ui.ensure_store(cfg.tracking_uri(), artifact_root=cfg.mlflow.artifact_root)
    assert (tmp_path / "store" / "mlruns.db").is_file()
    default = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri()).get_experiment("0")
    assert default.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())


def test_experiments_open_on_the_runs_view(tmp_path):
    """MLflow 3 opens an experiment without a kind on its GenAI overview; the tag files it as classic ML."""
    import mlflow

    from pipeline.tracking import EXPERIMENT_KIND_TAG, ensure_experiment, tracking_settings

    cfg = small_config(tmp_path)
    ui.ensure_store(cfg.tracking_uri(), artifact_root=cfg.mlflow.artifact_root)
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri())
    created = ensure_experiment(tracking_settings(cfg), cfg.mlflow.experiment)
    assert client.get_experiment(created).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    old = client.create_experiment("made-before-the-tag")  # a store from an earlier version
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    store = ui.overview(cfg.tracking_uri(), experiment="made-before-the-tag", model_name="m")
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert ui.guide_lines("http://h:1", store, experiment="made-before-the-tag")[1].startswith(
        f"  training runs:    http://h:1/#/experiments/{old}/runs "
    )


def test_busy_port_is_a_config_error_naming_the_fix(tmp_path):
    cfg = small_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not ui.port_is_free(port)
        with pytest.raises(ConfigError, match=rf"port {port} on 127.0.0.1 is in use .*--port N"):
            ui.run(cfg, port=port)
    assert not (tmp_path / "store").exists()


def test_remote_tracking_server_is_not_started_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example.internal:5000")
    assert ui.run(small_config(tmp_path), port=None) == 0
    assert "already a server: open http://mlflow.example.internal:5000" in capsys.readouterr().out


# --- the real server --------------------------------------------------------------------------------------


class OutputReader:
    """Collect a process's stdout lines in a thread, so the test can wait for one with a deadline."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process):
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, process: subprocess.Popen, timeout_s: float) -> bool:
        """True once a line starts with `prefix`; False if the process exits first; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for line in self.lines):
                return True
            if process.poll() is not None:
                self._thread.join(timeout=5)  # the last lines
                return any(line.startswith(prefix) for line in self.lines)
            time.sleep(0.2)
        raise AssertionError(f"no line starting with {prefix!r}; output so far:\n" + "\n".join(self.lines))


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def rest(address: str, endpoint: str, payload: dict | None = None, **query) -> dict:
    url = f"{address}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def ui_server(demo_trained):
    """`python -m pipeline ui` on the session store (which holds a training run and a champion)."""
    cfg = demo_trained
    for _attempt in range(3):  # another process may take the free port before the server binds it: try another
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "ui", "--config", str(cfg.config_path), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        reader = OutputReader(process)
        try:
            started = reader.wait_for("MLflow UI:", process, STARTUP_TIMEOUT_S)
        except AssertionError:
            process.kill()
            raise
        if started:
            break
        assert process.returncode != 0, "\n".join(reader.lines)
    else:
        raise AssertionError("`churn ui` did not start on 3 free ports; last output:\n" + "\n".join(reader.lines))
    try:
        yield cfg, f"http://127.0.0.1:{port}", process, reader
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
def test_rest_api_returns_latest_training_run_and_champion(ui_server):
    import mlflow

    cfg, address, _, reader = ui_server
    name = cfg.train.model_name
    experiment = rest(address, "experiments/get-by-name", experiment_name=cfg.mlflow.experiment)["experiment"]
    runs = rest(
        address,
        "runs/search",
        {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.model_name = '{name}'",
            "order_by": ["attributes.start_time DESC"],
            "max_results": 1,
        },
    )["runs"]
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri())
    expected = client.search_runs(
        [experiment["experiment_id"]], filter_string=f"tags.model_name = '{name}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )[0]
    latest = runs[0]
    assert latest["info"]["run_id"] == expected.info.run_id
    metrics = {m["key"]: m["value"] for m in latest["data"]["metrics"]}
    assert metrics["test_lightgbm_pr_auc"] == pytest.approx(expected.data.metrics["test_lightgbm_pr_auc"])

    model = rest(address, "registered-models/get", name=name)["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    champion = client.get_model_version_by_alias(name, "champion")
    assert aliases["champion"] == str(champion.version)
    version = rest(address, "model-versions/get", name=name, version=aliases["champion"])["model_version"]
    assert version["run_id"] == champion.run_id

    printed = "\n".join(reader.lines)
    assert f"/#/experiments/{experiment['experiment_id']}/runs/{expected.info.run_id}" in printed
    assert f"/#/models/{name}/versions/{champion.version}" in printed


@pytest.mark.slow
def test_run_plots_are_served_from_the_artifact_root(ui_server):
    cfg, address, _, _ = ui_server
    import mlflow

    run_id = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri()).get_model_version_by_alias(
        cfg.train.model_name, "champion"
    ).run_id
    query = urllib.parse.urlencode({"path": "plots/roc_test.png", "run_uuid": run_id})
    with urllib.request.urlopen(f"{address}/get-artifact?{query}", timeout=10) as response:
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_ctrl_c_stops_the_server_and_its_workers(ui_server):
    _, address, process, reader = ui_server
    port = int(address.rsplit(":", 1)[1])
    (server,) = children_of(process.pid)  # `mlflow server`, leader of its own process group
    assert group_alive(server) and not ui.port_is_free(port)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0
    assert "Stopping the MLflow UI ..." in reader.lines
    deadline = time.monotonic() + 10
    while group_alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(server)
    assert ui.port_is_free(port)
