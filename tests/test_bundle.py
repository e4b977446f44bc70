"""Model bundle: round trip, manifest contents, atomic replacement, refusal of damaged, forged, old-format
and wrongly signed bundles, and that nothing in a bundle is pickle."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil

import numpy as np
import pytest
from synthetic import SPECS, synthetic_features

from pipeline.bundle import (
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    SIGNING_KEY_ENV,
    load_bundle,
    save_bundle,
    verify_bundle,
)
from pipeline.model import BOOSTER_FILE, ChurnModel, ProbabilityCalibrator
from pipeline.config import TrainConfig
from pipeline.errors import BundleError
from pipeline.train import FeatureColumns, fit_lightgbm

METRICS = {"test": {"lightgbm": {"roc_auc": 0.8}}, "validation": {"lightgbm": {"roc_auc": 0.9}}}


@pytest.fixture(autouse=True)
def _no_signing_key(monkeypatch):
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)


@pytest.fixture(scope="module")
def table():
    return synthetic_features(snapshots=3, customers=300, unlabelled=0, seed=5)


@pytest.fixture(scope="module")
def model(table):
    dates = sorted(table["snapshot_date"].unique())
    columns = FeatureColumns(numeric=[s.name for s in SPECS if s.kind == "numeric"], categorical=["region"], rfm=[])
    fitted = fit_lightgbm(
        table[table["snapshot_date"] <= dates[1]],
        [(table[table["snapshot_date"] == dates[0]], table[table["snapshot_date"] == dates[1]])],
        columns=columns,
        horizon_days=30,
        cfg=TrainConfig(search_trials=1, num_boost_round=50),
    )
    return fitted.model


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
    assert set(manifest["files"]) == {MODEL_FILE, BOOSTER_FILE, METRICS_FILE}
    assert manifest["model_files"] == [BOOSTER_FILE, MODEL_FILE]
    assert manifest["format_version"] == 2
    assert manifest["files"][MODEL_FILE]["bytes"] == (bundle / MODEL_FILE).stat().st_size


def test_one_changed_byte_is_refused(bundle):
    data = bytearray((bundle / BOOSTER_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / BOOSTER_FILE).write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match="booster.txt does not match the sha256 in its manifest: the file was tampered"
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
        BundleError, match=rf"model.json is 100 bytes, the manifest says {len(data)}: the file is truncated"
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
    with pytest.raises(BundleError, match="does not list checksums for the model files and metrics.json"):
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


# --- no pickle: what a bundle holds, and forged bundles ---------------------------------------------------


class _RunsCode:
    """Unpickling this object would create the file `marker` (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _reseal(bundle, names):
    """Rewrite the manifest's checksums for `names`, as someone who can rewrite the whole bundle would."""
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    for name in names:
        data = (bundle / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    return manifest


def test_every_bundle_file_is_json_or_lightgbm_text(bundle):
    assert sorted(p.name for p in bundle.iterdir()) == sorted([MODEL_FILE, BOOSTER_FILE, METRICS_FILE, MANIFEST_FILE])
    for name in (MODEL_FILE, METRICS_FILE, MANIFEST_FILE):
        json.loads((bundle / name).read_text(encoding="utf-8"))
    assert (bundle / BOOSTER_FILE).read_text(encoding="utf-8").startswith("tree\nversion=")
    for path in bundle.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"


@pytest.mark.parametrize("target", [MODEL_FILE, BOOSTER_FILE])
def test_a_resealed_pickle_payload_is_refused_and_never_runs(bundle, tmp_path, target):
    marker = tmp_path / "code-ran"
    (bundle / target).write_bytes(pickle.dumps(_RunsCode(marker)))
    _reseal(bundle, [target])
    with pytest.raises(BundleError, match="holds a malformed model"):
        load_bundle(bundle)
    assert not marker.exists()


def test_an_old_format_bundle_with_a_pickled_model_is_refused_unread(bundle, tmp_path):
    marker = tmp_path / "code-ran"
    (bundle / "model.joblib").write_bytes(pickle.dumps(_RunsCode(marker)))
    manifest = _reseal(bundle, ["model.joblib"])
    manifest["format_version"] = 1
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has format version 1, .* reads version 2 .*retrain with `churn train`"):
        load_bundle(bundle)
    assert not marker.exists()


def test_a_manifest_of_another_format_version_is_refused(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["format_version"] = 3
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has format version 3, this version of the pipeline reads version 2"):
        load_bundle(bundle)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda doc: doc.update(kind="pickle"), "kind must be 'lightgbm'"),
        (
            lambda doc: doc["calibrator"].update(method="eval"),
            "calibrator.method must be 'isotonic', 'sigmoid' or 'none'",
        ),
        (lambda doc: doc.update(feature_names=["a"]), "the booster has .* features, feature_names 1"),
        (lambda doc: doc.update(horizon_days="30"), "horizon_days must be a positive whole number"),
        (lambda doc: doc["encoder"].update(categories={"region": [1, 2]}), "encoder.categories.region must be a list"),
    ],
)
def test_a_resealed_malformed_model_document_is_refused(bundle, edit, message):
    document = json.loads((bundle / MODEL_FILE).read_text())
    edit(document)
    (bundle / MODEL_FILE).write_text(json.dumps(document))
    _reseal(bundle, [MODEL_FILE])
    with pytest.raises(BundleError, match=f"holds a malformed model: {message}"):
        load_bundle(bundle)


def test_a_resealed_booster_of_garbage_is_refused(bundle):
    (bundle / BOOSTER_FILE).write_text("tree\nnot a model\n")
    _reseal(bundle, [BOOSTER_FILE])
    with pytest.raises(BundleError, match="holds a malformed model: the booster is not a LightGBM text model"):
        load_bundle(bundle)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid", "none"])
def test_calibrators_round_trip_through_json_exactly(method):
    rng = np.random.default_rng(3)
    scores = rng.normal(size=400)
    y = (rng.random(400) < 1 / (1 + np.exp(-2 * scores))).astype(float)
    fitted = ProbabilityCalibrator(method).fit(scores, y)
    restored = ProbabilityCalibrator.from_dict(json.loads(json.dumps(fitted.to_dict())))
    grid = np.linspace(-5, 5, 1001)
    np.testing.assert_array_equal(restored.transform(grid), fitted.transform(grid))
    assert restored.method == method


def test_model_files_round_trip_with_sigmoid_calibration(model, table):
    sigmoid = ProbabilityCalibrator("sigmoid").fit(
        model.predict_raw(table), table["churned"].to_numpy(dtype=float)
    )
    original = ChurnModel(
        feature_names=model.feature_names_,
        categorical_features=model.categorical_features_,
        encoder=model.encoder_,
        booster=model.booster_,
        calibrator=sigmoid,
        horizon_days=30,
        params=model.params_,
    )
    restored = ChurnModel.from_files(original.to_files())
    np.testing.assert_array_equal(restored.predict_proba(table), original.predict_proba(table))
    np.testing.assert_array_equal(restored.contributions(table).to_numpy(), original.contributions(table).to_numpy())
    assert restored.encoder_.categories_ == model.encoder_.categories_
    assert restored.params_ == json.loads(json.dumps(model.params_))


# --- signing ------------------------------------------------------------------------------------------------


def test_a_signed_bundle_loads_with_its_key_and_not_with_another(tmp_path, model, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, "s3cret")
    path = save_bundle(model, path=tmp_path / "signed", metrics=METRICS, run_id="r", model_version="1", training_snapshots=[])
    assert (path / SIGNATURE_FILE).read_text().startswith("hmac-sha256:")
    assert load_bundle(path).manifest["signed"] is True
    monkeypatch.setenv(SIGNING_KEY_ENV, "another")
    with pytest.raises(BundleError, match=f"manifest.sig does not match its manifest under the key in {SIGNING_KEY_ENV}"):
        load_bundle(path)


def test_with_a_key_set_an_unsigned_bundle_is_refused(bundle, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, "s3cret")
    with pytest.raises(BundleError, match=f"is not signed \\(manifest.sig is missing\\) but {SIGNING_KEY_ENV} is set"):
        load_bundle(bundle)


def test_a_resealed_manifest_breaks_the_signature(tmp_path, model, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, "s3cret")
    path = save_bundle(model, path=tmp_path / "signed", metrics=METRICS, run_id="r", model_version="1", training_snapshots=[])
    (path / METRICS_FILE).write_text(json.dumps({"test": {"lightgbm": {"roc_auc": 0.99}}}))
    _reseal(path, [METRICS_FILE])
    with pytest.raises(BundleError, match="does not match its manifest under the key"):
        load_bundle(path)
    monkeypatch.delenv(SIGNING_KEY_ENV)
    assert load_bundle(path).metrics["test"]["lightgbm"]["roc_auc"] == 0.99  # without the key: checksums only


def test_an_explicit_key_overrides_the_environment(tmp_path, model, monkeypatch):
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    path = save_bundle(
        model, path=tmp_path / "b", metrics=METRICS, run_id="r", model_version="1", training_snapshots=[], key=b"k"
    )
    assert load_bundle(path, key=b"k").manifest["signed"] is True
    with pytest.raises(BundleError, match="does not match its manifest"):
        load_bundle(path, key=b"other")
