"""Render the MLflow page of the latest training run in headless Chromium and save a PNG (for the README).

    .venv/bin/python scripts/screenshot.py [--config configs/default.yaml] [--out docs/mlflow-run.png]
                                            [--page runs|run|model|plots] [--port 5099]

Needs a trained model (`make demo`) and Chromium at /usr/bin/chromium (Debian: `apt-get install
chromium`); without Chromium it says so and exits 0, so it is optional everywhere. It starts the
same server as `churn ui` (pipeline.run.ui) on the configured store, takes the screenshot, stops it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a root, offline, headless Chromium (see .library/env/machines/python.md): no sandbox,
# no GPU and no background connections, which a closed network refuses by the dozen.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)  # fmt: skip


def page_url(address: str, *, page: str, experiment_id: str, run_id: str, model_name: str) -> str:
    """The UI address of the experiment's runs table (as `churn ui` links it), the run page, its plots, or the model."""
    run = f"{address}/#/experiments/{experiment_id}/runs/{run_id}"
    return {
        "runs": f"{address}/#/experiments/{experiment_id}/runs",
        "run": run,
        "plots": f"{run}/artifacts/plots/lift_gain_test.png",
        "model": f"{address}/#/models/{model_name}",
    }[page]


def screenshot(url: str, out: Path, *, width: int, height: int, wait_ms: int) -> None:
    """Load `url` in headless Chromium, give the page `wait_ms` of (virtual) time, save a PNG to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow-run.png"))
    parser.add_argument("--page", choices=("runs", "run", "plots", "model"), default="run")
    parser.add_argument("--port", type=int, default=5099)
    parser.add_argument("--size", default="1440x1000", help="window WIDTHxHEIGHT in pixels")
    parser.add_argument("--wait-ms", type=int, default=20000)
    args = parser.parse_args(argv)
    if not CHROMIUM.is_file() and not shutil.which("chromium"):
        print(f"skipped: no Chromium at {CHROMIUM} (apt-get install chromium)")
        return 0

    from pipeline.config import load_config
    from pipeline.errors import PipelineError
    from pipeline.review import find_latest_training_run
    from pipeline.run import ui

    cfg = load_config(args.config)
    uri = cfg.tracking_uri()
    run = find_latest_training_run(uri, experiment=cfg.mlflow.experiment, model_name=cfg.train.model_name)
    if run is None:
        print(f"no training run of {cfg.train.model_name} in {uri}: run `make demo` first", file=sys.stderr)
        return 1
    if not ui.port_is_free(args.port):
        print(f"port {args.port} is in use: pass --port N", file=sys.stderr)
        return 1
    address = f"http://{ui.HOST}:{args.port}"
    process = subprocess.Popen(
        ui.server_command(uri, artifact_root=cfg.mlflow.artifact_root, port=args.port),
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        ui.wait_until_ready(process, address)
        url = page_url(address, page=args.page, experiment_id=run.info.experiment_id, run_id=run.info.run_id,
                       model_name=cfg.train.model_name)
        width, height = (int(n) for n in args.size.lower().split("x"))
        screenshot(url, args.out, width=width, height=height, wait_ms=args.wait_ms)
    except (PipelineError, subprocess.SubprocessError) as exc:
        print(f"screenshot failed: {exc}", file=sys.stderr)
        return 1
    finally:
        ui.stop_server(process)
    print(f"{url}\n-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
