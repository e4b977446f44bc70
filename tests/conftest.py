"""Shared fixtures: a small demo workspace built once per session, stage by stage, and one MLflow store.

Stage fixtures chain (`demo_cfg` -> `demo_ingested` -> `demo_features` -> `demo_trained`), so a test
asks only for the stage it needs. Workspaces live in a session temp folder, never in the repository.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CHURN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DEMO_TEST_CUSTOMERS = 1500
HYPOTHESIS_PROFILE_ENV = "HYPOTHESIS_PROFILE"


def pytest_configure(config):
    """Property tests draw the same examples on every run ("ci", the default), so a run fails only on a
    change; HYPOTHESIS_PROFILE=explore draws new ones each run (and replays failures from .hypothesis/)."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    settings.register_profile("explore", derandomize=False, print_blob=True)
    settings.load_profile(os.environ.get(HYPOTHESIS_PROFILE_ENV, "ci"))


@pytest.fixture(scope="session", autouse=True)
def _quiet_environment():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real datasets (../shared/data); tests using them skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One sqlite tracking store per test session, schema created once."""
    db = tmp_path_factory.mktemp("mlflow") / "mlruns.db"
    uri = f"sqlite:///{db}"
    import mlflow

    mlflow.MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def write_config(folder: Path, raw: dict) -> Path:
    """Write `raw` as `folder/config.yaml` (plus the repo's default playbook) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    playbook = REPO_ROOT / "configs" / "playbook.yaml"
    if playbook.is_file() and not (folder / "playbook.yaml").exists():
        (folder / "playbook.yaml").write_text(playbook.read_text(encoding="utf-8"), encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def zipped(files: dict[str, str | bytes]) -> bytes:
    """A zip archive (deflated) holding `files`: name -> text or bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def minimal_config(transactions: str = "raw/transactions.csv", *, snapshots: dict | None = None, **sections: dict) -> dict:
    """The smallest valid raw config: one transactions file and the snapshot dates (default one date).

    Each keyword is a top-level section whose keys update the default one (`features=` keeps the snapshots).
    """
    raw = {
        "sources": {"transactions": {"path": transactions}},
        "features": {"snapshots": snapshots or {"dates": ["2024-01-01"]}},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


def demo_raw_config(mlflow_uri: str, *, model_name: str = "churn-test") -> dict:
    """The repo's demo config, pointed at a local workspace and the session MLflow store."""
    raw = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    raw["paths"] = {"data_dir": "data", "models_dir": "models"}
    for name, source in raw["sources"].items():
        source["path"] = f"data/raw/{name}.csv"
    raw["mlflow"].update(tracking_uri=mlflow_uri, artifact_root="mlartifacts")
    raw["train"].update(model_name=model_name, search_trials=2)
    return raw


@pytest.fixture(scope="session")
def demo_cfg(tmp_path_factory, mlflow_uri):
    """Config of a small demo workspace whose raw demo data has been generated."""
    from pipeline.config import load_config
    from pipeline.run import demo_data

    folder = tmp_path_factory.mktemp("demo")
    cfg = load_config(write_config(folder, demo_raw_config(mlflow_uri)))
    demo_data.run(cfg, customers=DEMO_TEST_CUSTOMERS, seed=42, quiet=True)
    return cfg


@pytest.fixture(scope="session")
def demo_ingested(demo_cfg):
    from pipeline.run import ingest

    ingest.run(demo_cfg, quiet=True)
    return demo_cfg


@pytest.fixture(scope="session")
def demo_features(demo_ingested):
    from pipeline.run import features

    features.run(demo_ingested, quiet=True)
    return demo_ingested


@pytest.fixture(scope="session")
def demo_trained(demo_features):
    from pipeline.run import train

    train.run(demo_features, backtest=False, quiet=True)
    return demo_features


CAMPAIGN_TEST_CUSTOMERS = 3000
CAMPAIGN_TEST_LISTS = 4


@pytest.fixture(scope="session")
def campaign_cfg(tmp_path_factory, mlflow_uri):
    """A demo workspace with a simulated history of CAMPAIGN_TEST_LISTS past campaigns, ingested."""
    from pipeline.config import load_config
    from pipeline.run import demo_data, ingest

    folder = tmp_path_factory.mktemp("campaigns")
    cfg = load_config(write_config(folder, demo_raw_config(mlflow_uri, model_name="churn-campaigns")))
    demo_data.run(cfg, customers=CAMPAIGN_TEST_CUSTOMERS, seed=42, quiet=True, campaigns=CAMPAIGN_TEST_LISTS)
    ingest.run(cfg, quiet=True)
    return cfg
