"""Model bundle: round trip, manifest contents, atomic replacement, and refusal of damaged bundles."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from synthetic import SPECS, synthetic_features

from pipeline.bundle import (
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    load_bundle,
    save_bundle,
    verify_bundle,
)
from pipeline.config import TrainConfig
from pipeline.errors import BundleError
from pipeline.train import FeatureColumns, fit_lightgbm

METRICS = {"test": {"lightgbm": {"roc_auc": 0.8}}, "validation": {"lightgbm": {"roc_auc": 0.9}}}


@pytest.fixture(scope="module")
def table():
    return synthetic_features(snapshots=3, customers=300, unlabelled=0, seed=5)


@pytest.fixture(scope="module")
def model(table):
    dates = sorted(table["snapshot_date"].unique())
    columns = FeatureColumns(numeric=[s.name for s in SPECS if s.kind == "numeric"], categorical=["region"], rfm=[])
    fitted, _, _, _ = fit_lightgbm(
        table[table["snapshot_date"] == dates[0]],
        table[table["snapshot_date"] == dates[1]],
        columns=columns,
        horizon_days=30,
        settings=TrainConfig(search_trials=1, num_boost_round=50),
    )
    return fitted


@pytest.fixture()
def bundle(tmp_path, model):
    return save_bundle(
        model,
        path=tmp_path / "models" / "churn",
        metrics=METRICS,
        run_id="run123",
        model_version="4",
        training_snapshots=["2024-01-01"],
        extra={"test_snapshot": "2024-03-01"},
    )


def test_round_trip_gives_the_same_predictions(bundle, model, table):
    loaded = load_bundle(bundle)
    np.testing.assert_array_equal(loaded.model.predict_proba(table), model.predict_proba(table))
    assert loaded.metrics == METRICS


def test_manifest_records_provenance_and_every_checksum(bundle, model):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    assert manifest["mlflow_run_id"] == "run123"
    assert manifest["model_version"] == "4"
    assert manifest["model_name"] == "churn"
    assert manifest["feature_names"] == model.feature_names_
    assert manifest["categorical_features"] == ["region"]
    assert manifest["training_snapshots"] == ["2024-01-01"]
    assert manifest["horizon_days"] == 30
    assert manifest["test_snapshot"] == "2024-03-01"
    assert manifest["git_commit"]
    assert set(manifest["files"]) == {MODEL_FILE, METRICS_FILE}
    assert manifest["files"][MODEL_FILE]["bytes"] == (bundle / MODEL_FILE).stat().st_size


def test_one_changed_byte_is_refused(bundle):
    data = bytearray((bundle / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match="model.joblib does not match the sha256 in its manifest: the file was tampered"
    ):
        load_bundle(bundle)


def test_changed_metrics_are_refused_too(bundle):
    (bundle / METRICS_FILE).write_text((bundle / METRICS_FILE).read_text().replace("0.8", "0.9"))
    with pytest.raises(BundleError, match="metrics.json does not match the sha256"):
        verify_bundle(bundle)


def test_truncated_file_is_refused(bundle):
    data = (bundle / MODEL_FILE).read_bytes()
    (bundle / MODEL_FILE).write_bytes(data[:100])
    with pytest.raises(
        BundleError, match=rf"model.joblib is 100 bytes, the manifest says {len(data)}: the file is truncated"
    ):
        load_bundle(bundle)


def test_missing_file_is_refused(bundle):
    (bundle / METRICS_FILE).unlink()
    with pytest.raises(BundleError, match="is missing metrics.json, listed in its manifest"):
        load_bundle(bundle)


def test_missing_manifest_is_refused(bundle):
    (bundle / MANIFEST_FILE).unlink()
    with pytest.raises(BundleError, match="has no manifest.json: it is incomplete"):
        load_bundle(bundle)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(BundleError, match=r"no model bundle at .*nowhere: run `churn train` first"):
        load_bundle(tmp_path / "nowhere")


def test_unreadable_manifest_is_refused(bundle):
    (bundle / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json is not valid JSON"):
        load_bundle(bundle)


def test_manifest_without_model_checksum_is_refused(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    del manifest["files"][MODEL_FILE]
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="does not list checksums for model.joblib and metrics.json"):
        load_bundle(bundle)


def test_manifest_pointing_outside_the_bundle_is_refused(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["files"]["../secret"] = {"sha256": "0", "bytes": 1}
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="lists '../secret', which is not a file inside the bundle"):
        load_bundle(bundle)


def test_saving_again_replaces_the_bundle_and_leaves_no_temporary_folders(bundle, model):
    save_bundle(model, path=bundle, metrics={"test": {}}, run_id="run456", model_version="5", training_snapshots=[])
    assert load_bundle(bundle).manifest["mlflow_run_id"] == "run456"
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["churn"]


def test_a_failed_save_keeps_the_previous_bundle(bundle, model):
    with pytest.raises(ValueError, match=r"extra manifest fields \['model_version'\] would replace core fields"):
        save_bundle(
            model,
            path=bundle,
            metrics={},
            run_id="other",
            model_version=None,
            training_snapshots=[],
            extra={"model_version": "x"},
        )
    assert load_bundle(bundle).manifest["mlflow_run_id"] == "run123"
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["churn"]


def test_a_copied_bundle_still_verifies(bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "elsewhere")
    assert load_bundle(copy).manifest["model_version"] == "4"
