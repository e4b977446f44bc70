"""The review notebooks run top to bottom on the demo workspace, so they never rot.

The workspace is the session's `demo_trained`, scored today (the at-risk list) and at its test
snapshot, whose horizon has passed, then measured (treated vs control), so every section of every
notebook has its input. Each notebook runs in a fresh kernel on this venv's Python.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def campaign_workspace(demo_trained, campaign_cfg):
    """The demo workspace with a current at-risk list and a measured, monitored campaign at the test snapshot;
    plus the uplift models and Qini curves `churn uplift` learned on the simulated campaign history."""
    import shutil

    from pipeline.run import measure, monitor, score, uplift

    cfg = demo_trained
    metrics = json.loads((cfg.bundle_dir / "metrics.json").read_text(encoding="utf-8"))
    past = score.run(cfg, as_of=dt.date.fromisoformat(metrics["split"]["test"][:10]), bundle=None, quiet=True)
    score.run(cfg, as_of=None, bundle=None, quiet=True)
    measure.run(cfg, scores_path=Path(past["scores_path"]), quiet=True)
    monitor.run(cfg, quiet=True)
    if not (uplift.uplift_dir(campaign_cfg) / uplift.MANIFEST).is_file():
        uplift.run(campaign_cfg, quiet=True)
    shutil.copytree(uplift.uplift_dir(campaign_cfg), uplift.uplift_dir(cfg), dirs_exist_ok=True)
    shutil.copy(campaign_cfg.reports_dir / "uplift_qini_curves.csv", cfg.reports_dir / "uplift_qini_curves.csv")
    return cfg


@pytest.fixture(scope="module")
def venv_kernel(tmp_path_factory):
    """A `python3` kernelspec running this interpreter, first on JUPYTER_PATH (before any user kernel)."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    return folder


def test_every_notebook_has_its_py_percent_twin_in_sync():
    import jupytext

    assert NOTEBOOKS == ["01-explore-data", "02-review-model", "03-campaign-results"]
    for name in NOTEBOOKS:
        paired = jupytext.read(NOTEBOOKS_DIR / f"{name}.ipynb")
        text = jupytext.read(NOTEBOOKS_DIR / f"{name}.py")
        assert [(c.cell_type, c.source) for c in paired.cells] == [(c.cell_type, c.source) for c in text.cells], (
            f"{name}.ipynb and {name}.py differ: run `jupytext --sync notebooks/{name}.ipynb`"
        )
        assert paired.metadata["kernelspec"]["name"] == "python3"
        assert "parameters" in paired.cells[1].metadata.get("tags", []), f"{name}: the 2nd cell must be the parameters cell"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_without_errors_on_the_demo_workspace(name, campaign_workspace, venv_kernel, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(venv_kernel))
    monkeypatch.setenv("CHURN_CONFIG", str(campaign_workspace.config_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    ).execute()  # raises CellExecutionError on the first failing cell

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr" and "Traceback" in o.text]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= {"01-explore-data": 3, "02-review-model": 6, "03-campaign-results": 4}[name]
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert str(campaign_workspace.config_path) in printed or name != "01-explore-data"
    if name == "03-campaign-results":
        assert "campaign scored on" in printed  # the measured section ran, not its "nothing yet" branch
        assert "No monitoring table yet" not in printed and "No uplift models yet" not in printed
        assert "reference: test snapshot" in printed  # the drift section ran
