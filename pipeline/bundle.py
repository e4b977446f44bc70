"""Model bundle: the folder `models/<name>/` that scoring loads, in text and JSON only (no pickle).

Layout (format version 2):
- `model.json`: the model's parts as JSON (kind, feature list, category encodings, calibrator,
  horizon, LightGBM parameters), from `ChurnModel.to_files`;
- `booster.txt`: the LightGBM booster in LightGBM's own text format;
- `metrics.json`: the training metrics (`{"test": {model: {...}}, "validation": {...}, ...}`);
- `manifest.json`: sha256 and size of every other file, the list of model files, MLflow run id,
  registered model name and version, feature list, training snapshot dates, label horizon, the
  sources and columns present at training, git commit, library versions;
- `manifest.sig` (only when signed): `hmac-sha256:<hex>` of the exact bytes of `manifest.json`.

Nothing in a bundle can run code when loaded: the booster is parsed by LightGBM, every other file by
`json`, and a forged file can at worst give wrong numbers (or a BundleError). Bundles of format
version 1 (a pickled `model.joblib`) are refused unread, with a message to retrain.

Signing: when the environment variable `CHURN_BUNDLE_KEY` is set (any non-empty secret string),
`save_bundle` writes `manifest.sig`, and `load_bundle` refuses a bundle whose signature is missing or
does not match. The checksums catch corruption and edits; the signature also catches someone who
rewrites the manifest, as long as they do not hold the key. Without the key, signatures are not checked.

`save_bundle` writes into a temporary folder next to the target and swaps it in, so a killed run
leaves the previous bundle intact. `load_bundle` checks the format version, the signature (with a
key) and every file against the manifest first, and raises BundleError for a missing folder,
manifest or file, or a tampered, truncated or malformed file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import BundleError
from pipeline.io import sha256_file, write_json, write_text
from pipeline.model import MODEL_DOCUMENT_FILE, ChurnModel

MODEL_FILE = MODEL_DOCUMENT_FILE
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
# Where a training run's MLflow artifacts hold its bundle (the champion is downloaded from there).
BUNDLE_ARTIFACT_PATH = "bundle"
LEGACY_MODEL_FILE = "model.joblib"
FORMAT_VERSION = 2
SIGNING_KEY_ENV = "CHURN_BUNDLE_KEY"
SIGNATURE_PREFIX = "hmac-sha256:"
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


def signing_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The bundle signing key from `CHURN_BUNDLE_KEY` (UTF-8 bytes), or None when unset or empty."""
    value = (os.environ if environ is None else environ).get(SIGNING_KEY_ENV, "")
    return value.encode("utf-8") if value else None


def manifest_signature(manifest_bytes: bytes, key: bytes) -> str:
    """`hmac-sha256:<hex>` of the manifest's exact bytes under `key`."""
    return SIGNATURE_PREFIX + hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def verify_signature(path: Path, key: bytes) -> None:
    """Raise BundleError unless `path/manifest.sig` holds the HMAC of `path/manifest.json` under `key`."""
    signature_path = path / SIGNATURE_FILE
    if not signature_path.is_file():
        raise BundleError(
            f"model bundle {path} is not signed ({SIGNATURE_FILE} is missing) but {SIGNING_KEY_ENV} is set: "
            "refusing to load it. Retrain with the key set, or unset the key to skip signature checks."
        )
    found = signature_path.read_bytes().strip()
    expected = manifest_signature((path / MANIFEST_FILE).read_bytes(), key).encode("ascii")
    if not hmac.compare_digest(found, expected):
        raise BundleError(
            f"{signature_path} does not match its manifest under the key in {SIGNING_KEY_ENV}: the bundle was "
            "altered or signed with another key; refusing to load it. Retrain with this key."
        )


def save_bundle(
    model: ChurnModel,
    *,
    path: Path,
    metrics: dict[str, Any],
    run_id: str,
    model_version: str | None,
    training_snapshots: list[str],
    extra: dict[str, Any] | None = None,
    key: bytes | None = None,
) -> Path:
    """Write the bundle folder at `path` atomically (temporary folder, then swap); return `path`.

    `extra`: more manifest fields (e.g. validation/test snapshot dates, the sources present at training);
    they may not replace core fields. `key`: sign the manifest with it (default: `signing_key()`, i.e.
    `CHURN_BUNDLE_KEY`; unsigned when neither is set).
    """
    path = Path(path)
    key = key if key is not None else signing_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        model_files = model.to_files()
        if METRICS_FILE in model_files or MANIFEST_FILE in model_files or SIGNATURE_FILE in model_files:
            raise ValueError(f"model files {sorted(model_files)} clash with the bundle's own files")
        for name, text in model_files.items():
            write_text(text, staging / name)
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
            "model_files": sorted(model_files),
            "signed": key is not None,
            "files": {name: _file_entry(staging / name) for name in (*sorted(model_files), METRICS_FILE)},
        }
        clash = set(extra or {}) & set(manifest)
        if clash:
            raise ValueError(f"extra manifest fields {sorted(clash)} would replace core fields")
        write_json({**manifest, **(extra or {})}, staging / MANIFEST_FILE)
        if key is not None:
            write_text(manifest_signature((staging / MANIFEST_FILE).read_bytes(), key) + "\n", staging / SIGNATURE_FILE)
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
    if (path / LEGACY_MODEL_FILE).exists():
        raise BundleError(_old_format_message(path, 1))
    if not manifest_path.is_file():
        raise BundleError(f"model bundle {path} has no {MANIFEST_FILE}: it is incomplete; retrain with `churn train`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not valid JSON ({exc}): the bundle is corrupt; retrain") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} is not a JSON object: the bundle is corrupt; retrain")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(_old_format_message(path, manifest.get("format_version")))
    files = manifest.get("files")
    model_files = manifest.get("model_files")
    if (
        not isinstance(files, dict)
        or not isinstance(model_files, list)
        or MODEL_FILE not in model_files
        or not all(isinstance(name, str) and name in files for name in model_files)
        or METRICS_FILE not in files
    ):
        raise BundleError(
            f"{manifest_path} does not list checksums for the model files and {METRICS_FILE}: refusing to load it"
        )
    return manifest


def _old_format_message(path: Path, version: Any) -> str:
    return (
        f"model bundle {path} has format version {version}, this version of the pipeline reads version "
        f"{FORMAT_VERSION} (a JSON and LightGBM text bundle; version 1 held a pickled model, which is never "
        "loaded because pickle can run code): retrain with `churn train`"
    )


def verify_bundle(path: Path, *, key: bytes | None = None) -> dict[str, Any]:
    """Check the format, the signature (when a key is given or `CHURN_BUNDLE_KEY` is set) and every file
    listed in the manifest (present, same size, same sha256); return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    key = key if key is not None else signing_key()
    if key is not None:
        verify_signature(path, key)
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


def _text(path: Path) -> str:
    """The UTF-8 text of `path`; ValueError naming the file when it is binary (e.g. a pickle)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text (binary content, e.g. a pickle, is never loaded)") from None


def load_bundle(path: Path, *, key: bytes | None = None) -> LoadedBundle:
    """Verify the bundle at `path` (`verify_bundle`), then parse its model, manifest and metrics.

    Only text is read: JSON by `json`, the booster by LightGBM. A malformed file is a BundleError.
    """
    path = Path(path)
    manifest = verify_bundle(path, key=key)
    try:
        files = {name: _text(path / name) for name in manifest["model_files"]}
        model = ChurnModel.from_files(files)
        metrics = json.loads(_text(path / METRICS_FILE))
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise BundleError(f"model bundle {path} holds a malformed model: {exc}; retrain with `churn train`") from None
    return LoadedBundle(model=model, manifest=manifest, metrics=metrics)
