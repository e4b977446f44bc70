"""Model bundle: the folder `models/<name>/` that scoring loads, verified before anything is unpickled.

Layout:
- `model.joblib`: the fitted `pipeline.model.ChurnModel` (encoders, booster, calibrator, feature list);
- `metrics.json`: the training metrics (`{"test": {model: {...}}, "validation": {...}, ...}`);
- `manifest.json`: sha256 and size of every other file, MLflow run id, registered model name and
  version, feature list, training snapshot dates, label horizon, git commit, library versions.

`save_bundle` writes into a temporary folder next to the target and swaps it in, so a killed run
leaves the previous bundle intact. `load_bundle` checks every file against the manifest first and
raises BundleError for a missing folder, manifest or file, or a tampered or truncated file.
The checksums catch corruption and accidental edits; they are not a signature against someone who
can rewrite the manifest too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from pipeline.errors import BundleError
from pipeline.io import atomic_write, sha256_file, write_json
from pipeline.model import ChurnModel

MODEL_FILE = "model.joblib"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
LIBRARIES = ("lightgbm", "scikit-learn", "pandas", "numpy", "joblib", "mlflow", "pyarrow")
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle: the model, its manifest and its metrics."""

    model: ChurnModel
    manifest: dict[str, Any]
    metrics: dict[str, Any]


def code_version(repo: Path = REPO_ROOT) -> str:
    """The git commit of `repo` (suffixed `-dirty` with uncommitted changes), or "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed version of each distribution in `names` ("not installed" when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def save_bundle(
    model: ChurnModel,
    *,
    path: Path,
    metrics: dict[str, Any],
    run_id: str,
    model_version: str | None,
    training_snapshots: list[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle folder at `path` atomically (temporary folder, then swap); return `path`.

    `extra`: more manifest fields (e.g. validation/test snapshot dates); they may not replace core fields.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        atomic_write(staging / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))
        write_json(metrics, staging / METRICS_FILE)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model_name": path.name,
            "model_version": model_version,
            "mlflow_run_id": run_id,
            "feature_names": list(model.feature_names_),
            "categorical_features": list(model.categorical_features_),
            "training_snapshots": list(training_snapshots),
            "horizon_days": model.horizon_days_,
            "git_commit": code_version(),
            "library_versions": library_versions(),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {name: _file_entry(staging / name) for name in (MODEL_FILE, METRICS_FILE)},
        }
        clash = set(extra or {}) & set(manifest)
        if clash:
            raise ValueError(f"extra manifest fields {sorted(clash)} would replace core fields")
        write_json({**manifest, **(extra or {})}, staging / MANIFEST_FILE)
        _swap_in(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def _swap_in(staging: Path, path: Path) -> None:
    """Replace the folder `path` by `staging`; the old folder is removed only after the rename."""
    if not path.exists():
        os.replace(staging, path)
        return
    retired = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired)


def read_manifest(path: Path) -> dict[str, Any]:
    """The parsed manifest of the bundle folder `path`; BundleError when absent or unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            f"no model bundle at {path}: run `churn train` first, or pass the folder of an existing bundle"
        )
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"model bundle {path} has no {MANIFEST_FILE}: it is incomplete; retrain with `churn train`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not valid JSON ({exc}): the bundle is corrupt; retrain") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or MODEL_FILE not in files or METRICS_FILE not in files:
        raise BundleError(
            f"{manifest_path} does not list checksums for {MODEL_FILE} and {METRICS_FILE}: refusing to load it"
        )
    return manifest


def verify_bundle(path: Path) -> dict[str, Any]:
    """Check every file listed in the manifest (present, same size, same sha256); return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    for name, entry in manifest["files"].items():
        if Path(name).name != name:
            raise BundleError(f"{path / MANIFEST_FILE} lists {name!r}, which is not a file inside the bundle")
        file = path / name
        if not file.is_file():
            raise BundleError(
                f"model bundle {path} is missing {name}, listed in its manifest; retrain with `churn train`"
            )
        size = file.stat().st_size
        expected_size = entry.get("bytes") if isinstance(entry, dict) else None
        if expected_size is not None and size != expected_size:
            raise BundleError(
                f"{file} is {size} bytes, the manifest says {expected_size}: the file is truncated or altered; "
                "refusing to load it. Retrain, or restore the bundle from the MLflow run's 'bundle' artifacts."
            )
        expected_sha = entry.get("sha256") if isinstance(entry, dict) else None
        if sha256_file(file) != expected_sha:
            raise BundleError(
                f"{file} does not match the sha256 in its manifest: the file was tampered with or corrupted; "
                "refusing to load it. Retrain, or restore the bundle from the MLflow run's 'bundle' artifacts."
            )
    return manifest


def load_bundle(path: Path) -> LoadedBundle:
    """Verify every checksum of the bundle at `path`, then load its model, manifest and metrics."""
    path = Path(path)
    manifest = verify_bundle(path)
    model = joblib.load(path / MODEL_FILE)
    if not isinstance(model, ChurnModel):
        raise BundleError(f"{path / MODEL_FILE} holds a {type(model).__name__}, not a ChurnModel")
    metrics = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
    return LoadedBundle(model=model, manifest=manifest, metrics=metrics)
