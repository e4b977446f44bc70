"""MLflow helpers: tracking store, experiments, the training run's steps, registration and the champion alias.

Every function takes a `TrackingSettings` (store, artifact root, training experiment, registered model
name, champion metric), built from the config once by `tracking_settings(cfg)`; the store is
`cfg.tracking_uri()` (MLFLOW_TRACKING_URI wins over the config) and experiments store their artifacts
under `artifact_root/<experiment>`. One training = one run holding the resolved config, input
fingerprints, snapshot dates, feature list, git commit, library versions, all metrics, the figures,
the baselines as nested runs, the pyfunc model (registered as `model_name`) and the bundle folder under
the artifact path "bundle". The runner (`pipeline.run.train.track_training`) calls the steps in order
and writes every file (figures, bundles); this module only logs them.

Champion rule: the alias `champion` moves to the new version only when its test metric
`champion_metric` is at least as good as the current champion's on the same test snapshot (the champion
is re-scored on the new test rows when none of its training or validation label windows overlaps them;
otherwise its recorded test metric is used, and the reason says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from pipeline.baselines import baseline_name
from pipeline.bundle import BUNDLE_ARTIFACT_PATH, code_version, library_versions, load_bundle
from pipeline.config import Config, member_label
from pipeline.drift import drift_reference
from pipeline.errors import BundleError, ScoreError
from pipeline.evaluate import (
    LOWER_IS_BETTER,
    RetentionSettings,
    classification_metrics,
    customer_values,
    failed_baselines,
    is_better_or_equal,
    numeric_metrics,
)
from pipeline.io import sha256_file
from pipeline.model import ChurnModel
from pipeline.progress import get_logger
from pipeline.split import label_windows_overlap
from pipeline.train import TrainResult

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

CHAMPION_ALIAS = "champion"
# Model version tag holding the sha256 of the model's files (`model_fingerprint`).
FINGERPRINT_TAG = "model_fingerprint"
MODEL_ARTIFACT_NAME = "model"
PYFUNC_FILE = Path(__file__).with_name("mlflow_model.py")
PACKAGE_DIR = Path(__file__).resolve().parent
PYFUNC_REQUIREMENTS = ("lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "mlflow", "pyarrow")


@dataclass(frozen=True)
class TrackingSettings:
    """What the MLflow side needs from the config (see `tracking_settings`)."""

    tracking_uri: str
    artifact_root: Path
    experiment: str  # the training experiment; scoring/monitoring runners name theirs to ensure_experiment
    model_name: str
    champion_metric: str


def tracking_settings(cfg: Config) -> TrackingSettings:
    """The tracking settings of `cfg`: store `cfg.tracking_uri()` (MLFLOW_TRACKING_URI, read now, wins over
    mlflow.tracking_uri), mlflow.artifact_root and .experiment, train.model_name and .champion_metric."""
    return TrackingSettings(
        tracking_uri=cfg.tracking_uri(),
        artifact_root=Path(cfg.mlflow.artifact_root),
        experiment=cfg.mlflow.experiment,
        model_name=cfg.train.model_name,
        champion_metric=cfg.train.champion_metric,
    )


# --- store and experiments -------------------------------------------------------------------------------


def configure_mlflow(settings: TrackingSettings) -> str:
    """Point MLflow (tracking and registry) at `settings.tracking_uri`; return the URI."""
    uri = settings.tracking_uri
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (for child processes); keep the
    # environment as the user left it, or a later config in the same process would be overridden.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    return uri


def _client(settings: TrackingSettings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_artifact_location(settings: TrackingSettings, name: str) -> str:
    """File URI of `settings.artifact_root/<name, made safe for a folder name>`."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"
    return (Path(settings.artifact_root) / folder).resolve().as_uri()


def ensure_experiment(settings: TrackingSettings, name: str) -> str:
    """Id of the experiment `name`, created (artifacts under settings.artifact_root) or restored if needed."""
    client = _client(settings)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=experiment_artifact_location(settings, name), tags=RUNS_VIEW_TAGS
            )
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created meanwhile by another process
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    mark_runs_view(client, experiment)
    return experiment.experiment_id


def use_experiment(settings: TrackingSettings, name: str) -> str:
    """Point MLflow at `settings.tracking_uri` (`configure_mlflow`); the id of experiment `name` (`ensure_experiment`)."""
    configure_mlflow(settings)
    return ensure_experiment(settings, name)


# MLflow 3's UI opens an experiment without a kind on its GenAI overview (traces, "No data available");
# this tag files it as classic ML, so it opens on the runs table (see ECOSYSTEM.md).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
RUNS_VIEW_TAGS = {EXPERIMENT_KIND_TAG: "custom_model_development"}


def mark_runs_view(client: Any, experiment: Any) -> None:
    """Set the experiment kind tag on `experiment` (an mlflow Experiment) when it has none."""
    if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, RUNS_VIEW_TAGS[EXPERIMENT_KIND_TAG])


# --- champion --------------------------------------------------------------------------------------------


def champion_version(settings: TrackingSettings) -> ModelVersion | None:
    """The ModelVersion behind `<settings.model_name>@champion`, or None when there is none."""
    try:
        return _client(settings).get_model_version_by_alias(settings.model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def champion_bundle(settings: TrackingSettings, *, dest: Path) -> tuple[Path, str]:
    """Download the champion version's bundle (its run's "bundle" artifacts) into `dest`.

    Returns (bundle folder, model version). Raises ScoreError when no version holds the alias.
    """
    version = champion_version(settings)
    if version is None:
        raise ScoreError(
            f"no model registered as '{settings.model_name}@{CHAMPION_ALIAS}' in {settings.tracking_uri}: "
            "run `churn train` first"
        )
    Path(dest).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path=BUNDLE_ARTIFACT_PATH,
            dst_path=str(dest),
            tracking_uri=settings.tracking_uri,
        )
    except Exception as exc:  # MLflow raises several types for missing runs and artifacts
        raise ScoreError(
            f"cannot download the bundle of '{settings.model_name}@{CHAMPION_ALIAS}' (version {version.version}, "
            f"run {version.run_id}) from {settings.tracking_uri}: {exc}. Retrain with `churn train`."
        ) from None
    return Path(local), str(version.version)


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version becomes champion, and why (recorded as run tags)."""

    promote: bool
    reason: str
    metric: str
    new_value: float
    incumbent_value: float | None
    incumbent_version: str | None

    unchanged: bool = False
    other_project: str | None = None  # the champion's project, when it is not this run's (the alias is kept)

    @property
    def label(self) -> str:
        if self.unchanged:
            return "unchanged"
        return "promoted" if self.promote else "kept"


def model_fingerprint(model: ChurnModel) -> str:
    """sha256 over the model's files (`ChurnModel.to_files`: model document and booster text), by name."""
    return combined_fingerprint(
        {name: hashlib.sha256(text.encode()).hexdigest() for name, text in model.to_files().items()}
    )


def distinct_digits(a: float, b: float, *, at_least: int = 4, at_most: int = 12) -> int:
    """Decimals that show `a` and `b` apart when they differ (at least `at_least`, at most `at_most`): a verdict
    "0.9993 is worse than 0.9993" reads as false (two trainings on a test snapshot of 12 customers who stayed)."""
    for digits in range(at_least, at_most + 1):
        if a == b or f"{a:.{digits}f}" != f"{b:.{digits}f}":
            return digits
    return at_most


def decide_promotion(
    new_value: float,
    incumbent_value: float | None,
    *,
    metric: str,
    incumbent_version: str | None = None,
    basis: str = "",
    caveat: str = "",
) -> PromotionDecision:
    """Promote when there is no champion, or the new test metric is at least the champion's.

    Lower is better for log_loss, brier and ece. A NaN new value never wins over a champion. `caveat`
    (e.g. that the model's lead over the best baseline may be noise) is added to the reason.
    """
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    note = f"{direction} is better" + (f"; champion {basis}" if basis else "")
    suffix = f"; {caveat}" if caveat else ""
    if incumbent_value is None:
        return PromotionDecision(
            True, f"no current champion; test {metric} {new_value:.4f}{suffix}", metric, new_value, None, None
        )
    champion = f"champion v{incumbent_version}" if incumbent_version else "the champion"
    if np.isnan(new_value):
        reason = f"test {metric} is NaN; {champion} keeps the alias"
        return PromotionDecision(False, reason, metric, new_value, incumbent_value, incumbent_version)
    promote = bool(np.isnan(incumbent_value) or is_better_or_equal(new_value, incumbent_value, metric=metric))
    verdict = "is at least" if promote else "is worse than"
    digits = distinct_digits(new_value, incumbent_value)
    reason = (f"test {metric} {new_value:.{digits}f} {verdict} {champion}'s {incumbent_value:.{digits}f} "
              f"({note}){suffix}")
    return PromotionDecision(promote, reason, metric, new_value, incumbent_value, incumbent_version)


def chosen_candidate(metrics: Mapping[str, Any]) -> str:
    """The candidate a training kept (metrics.json "model_choice"); "lightgbm" for older metrics."""
    return str(metrics.get("model_choice", {}).get("chosen", "lightgbm"))


COMPARED_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}


def noise_caveat(metrics: Mapping[str, Any], *, champion_metric: str = "roc_auc") -> str:
    """A warning when the kept candidate does not clearly beat the best baseline on test ROC-AUC (its paired
    bootstrap 95% interval reaches 0 or below), and, when the champion metric is another compared one (PR-AUC),
    when it does not beat the best baseline on that metric either; "" when it clearly does or there is nothing
    to compare."""
    by_metric = metrics.get("comparison", {}).get("candidates", {}).get(chosen_candidate(metrics), {})
    lead = by_metric.get("roc_auc")
    caveats = []
    if lead and lead["low"] <= 0:
        interval = f"a 95% interval of {lead['low']:+.4f} to {lead['high']:+.4f}"
        baseline = baseline_name(lead["reference"])
        if lead["difference"] <= 0:
            caveats.append(
                f"caution: it does not beat the best baseline ({baseline}) on test ROC-AUC: "
                f"{lead['difference']:+.4f} with {interval}"
            )
        else:
            caveats.append(
                f"caution: its test ROC-AUC lead over the best baseline ({baseline}) is "
                f"{lead['difference']:+.4f} with {interval}, so it may be noise"
            )
    own = by_metric.get(champion_metric) if champion_metric != "roc_auc" else None
    if own and own["difference"] <= 0:
        caveats.append(
            f"on test {COMPARED_NAMES.get(champion_metric, champion_metric)}, the champion metric, it does not beat the "
            f"best baseline ({baseline_name(own['reference'])}): {own['difference']:+.4f} with a 95% interval of "
            f"{own['low']:+.4f} to {own['high']:+.4f}"
        )
    return "; ".join(caveats)


def comparison_metrics(comparison: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of the comparison with the best baseline: `vs_baseline_<candidate>_<metric>_<stat>`."""
    return {
        metric_key("vs_baseline", candidate, metric, stat): float(entry[stat])
        for candidate, by_metric in comparison.get("candidates", {}).items()
        for metric, entry in by_metric.items()
        for stat in ("difference", "low", "high")
    }


def incumbent_test_metric(
    settings: TrackingSettings, result: TrainResult, *, retention: RetentionSettings
) -> tuple[float | None, str | None, str]:
    """(champion's test metric, its version, how it was obtained); (None, None, "") without a champion.

    The champion is re-scored on this run's test snapshot when its bundle loads, has the features,
    and none of its training/validation label windows overlaps the test window; otherwise its
    recorded test metric (from its own run) is used.
    """
    version = champion_version(settings)
    if version is None:
        return None, None, ""
    metric = settings.champion_metric
    data = _client(settings).get_run(version.run_id).data
    recorded = data.metrics.get(f"test_{data.tags.get('chosen_model', 'lightgbm')}_{metric}")
    recorded_value = float(recorded) if recorded is not None else float("nan")
    with tempfile.TemporaryDirectory(prefix="champion-") as folder:
        try:
            bundle_path, _ = champion_bundle(settings, dest=Path(folder))
            loaded = load_bundle(bundle_path)
            loaded.model.check_features(result.test_features)
        except (ScoreError, BundleError) as exc:
            return (
                recorded_value,
                str(version.version),
                f"value recorded at its training; it could not be re-scored: {exc}",
            )
        manifest = loaded.manifest
        validation = manifest.get("validation_snapshot", [])
        seen = [*manifest.get("training_snapshots", []), *([validation] if isinstance(validation, str) else validation)]
        starts = list(pd.to_datetime(pd.Series(seen, dtype="str"), utc=True))
        horizon = int(manifest.get("horizon_days", result.split.horizon_days))
        if label_windows_overlap(starts, result.split.test, horizon_days=horizon):
            return (
                recorded_value,
                str(version.version),
                "value recorded at its training; it was fitted on labels overlapping this test snapshot",
            )
        y = result.labels["test"]
        p = loaded.model.predict_proba(result.test_features)
        values = customer_values(result.test_features, retention=retention)
        value = classification_metrics(y, p, values=values, retention=retention)[metric]
    return float(value), str(version.version), f"re-scored on test snapshot {result.split.test.date()}"


# --- the training run ------------------------------------------------------------------------------------


def flatten(mapping: Mapping[str, Any], *, prefix: str = "", sep: str = ".") -> dict[str, str]:
    """Nested mapping -> {"a.b.c": "value"} with values as strings (lists as JSON), for MLflow params."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=name, sep=sep))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return flat


def metric_key(*parts: str) -> str:
    """MLflow metric name: parts joined by '_' with anything but letters, digits, '_', '-', '.', '/' replaced."""
    return re.sub(r"[^A-Za-z0-9_\-./]", "_", "_".join(parts))


def flat_metrics(metrics: Mapping[str, Any], *, splits: Iterable[str] = ("test", "validation")) -> dict[str, float]:
    """{"test_lightgbm_roc_auc": 0.8, ...} from the metrics.json shape (numbers only: a model's "status" is not
    a metric, and a failed baseline has no numbers)."""
    return {
        metric_key(split, model, name): float(value)
        for split in splits
        for model, values in metrics.get(split, {}).items()
        for name, value in numeric_metrics(values).items()
    }


def file_fingerprints(paths: Iterable[Path], *, root: Path) -> dict[str, str]:
    """sha256 per file, keyed by its path relative to `root` (sorted)."""
    return {str(Path(p).relative_to(root)): sha256_file(p) for p in sorted(paths)}


def combined_fingerprint(fingerprints: Mapping[str, str]) -> str:
    """One sha256 over the sorted (name, sha256) pairs."""
    digest = hashlib.sha256()
    for name in sorted(fingerprints):
        digest.update(f"{name}\0{fingerprints[name]}\n".encode())
    return digest.hexdigest()


def model_input_example(
    features: pd.DataFrame, *, feature_names: list[str], categorical: list[str], rows: int = 5
) -> pd.DataFrame:
    """A few rows of the model's input columns, numeric cast to float64 (so the signature accepts floats)."""
    example = features[feature_names].head(rows).copy()
    numeric = [c for c in feature_names if c not in categorical]
    example[numeric] = example[numeric].astype("float64")
    return example.reset_index(drop=True)


def pyfunc_requirements() -> list[str]:
    """Pinned pip requirements of the pyfunc model (explicit, so logging does not infer them)."""
    return [
        f"{name}=={version}"
        for name, version in library_versions(PYFUNC_REQUIREMENTS).items()
        if version != "not installed"
    ]


# --- the training run, step by step (`pipeline.run.train.track_training` calls them in order) -------------


@dataclass(frozen=True)
class RunContents:
    """What one MLflow run logs: tags, params, metrics and JSON documents (artifact file -> content)."""

    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    documents: dict[str, Any]


def training_run_contents(
    result: TrainResult,
    *,
    model: ChurnModel,
    config: Mapping[str, Any],
    fingerprints: Mapping[str, Mapping[str, str]],
    trained_on: list[str],
    model_name: str,
    engine: str,
    backtest: Mapping[str, Any] | None = None,
    ingest_report: Mapping[str, Any] | None = None,
    labels_report: Mapping[str, Any] | None = None,
    left_out: Sequence[str] = (),
    warnings: Mapping[str, str] | None = None,
) -> RunContents:
    """The training run's tags, params, metrics and documents.

    `model` is the registered one (its features and calibration are tagged), `config` the resolved config
    (logged flattened as params and whole), `trained_on` the snapshot dates the registered model was fitted
    on; the metrics are `result`'s (the evaluated fit's), plus the backtest's mean and std when given.
    `ingest_report`: the data's ingest report (its counts, quarantine reasons and warnings), logged beside the
    inputs, as is `labels_report` (churn rates per snapshot, the churned who came back, and the pause warning, also
    tagged `label_pauses`, and the yearly-buyers warning, tagged `label_yearly_buyers`); `left_out`: labelled snapshots not read (train.max_training_rows), tagged; `warnings`: tag -> a warning
    the training found in the data (e.g. `attribute_leak`), tagged.
    """
    split = result.split.as_dict()
    metrics = result.metrics
    tags = {
        "git_commit": code_version(),
        "model_name": model_name,
        "train_engine": engine,
        "test_snapshot": split["test"],
        "validation_snapshot": ",".join(split["validation"]),
        "training_snapshots": ",".join(trained_on),
        "evaluation_training_snapshots": ",".join(split["train"]),
        "horizon_days": str(result.split.horizon_days),
        "feature_count": str(len(model.feature_names_)),
        "calibration_method": model.calibrator_.method,
        "features_sha256": combined_fingerprint(fingerprints.get("features", {})),
        "validated_sha256": combined_fingerprint(fingerprints.get("validated", {})),
        **{f"lib.{k}": v for k, v in library_versions().items()},
        **{f"skipped_baseline.{name}": reason for name, reason in result.skipped_baselines.items()},
        **{f"failed_baseline.{name}": status for name, status in failed_baselines(metrics).items()},
        "chosen_model": chosen_candidate(metrics),
        "model_choice": metrics["model_choice"]["statement"],
        "lightgbm_vs_best_baseline": metrics["comparison"]["statement"],
        "calibration_statement": metrics["calibration"]["lightgbm_statement"],
    }
    params = flatten(config)
    params.update(flatten({k: v for k, v in result.best_params.items() if k != "metric"}, prefix="lightgbm"))
    documents: dict[str, Any] = {
        "config/resolved_config.json": dict(config),
        "inputs/fingerprints.json": {k: dict(v) for k, v in fingerprints.items()},
        "inputs/features.json": {
            "features": model.feature_names_,
            "categorical": model.categorical_features_,
            "dropped": result.dropped_features,
        },
        "inputs/snapshots.json": split,
        "metrics/metrics.json": metrics,
        "search/trials.json": {"trials": result.trials, "best": result.best_params},
    }
    if ingest_report is not None:
        documents["inputs/ingest_report.json"] = dict(ingest_report)
    if labels_report is not None:
        documents["inputs/labels_report.json"] = dict(labels_report)
        if labels_report.get("pause_warning"):
            tags["label_pauses"] = str(labels_report["pause_warning"])
        if labels_report.get("yearly_buyers_warning"):
            tags["label_yearly_buyers"] = str(labels_report["yearly_buyers_warning"])
    if left_out:
        tags["left_out_snapshots"] = ",".join(left_out)
    tags.update(warnings or {})
    run_metrics = {**flat_metrics(metrics), **comparison_metrics(metrics["comparison"])}
    if backtest is not None:
        documents["backtest/backtest.json"] = dict(backtest)
        run_metrics.update(backtest_metrics(backtest))
    return RunContents(tags, params, run_metrics, documents)


def backtest_metrics(backtest: Mapping[str, Any]) -> dict[str, float]:
    """`backtest_<mean|std>_<model>_<metric>` from the backtest summary."""
    return {
        metric_key("backtest", stat, model_name, metric): values[stat]
        for model_name, metrics in backtest["summary"].items()
        for metric, values in metrics.items()
        for stat in ("mean", "std")
    }


def baseline_run_contents(result: TrainResult, baseline: str) -> RunContents:
    """A fitted baseline's nested run: its description, features, calibration, status and metrics per split."""
    fitted, metrics = result.baselines[baseline], result.metrics
    parts = ("test", "validation")
    return RunContents(
        tags={
            "model": baseline,
            "description": fitted.description,
            "test_snapshot": result.split.as_dict()["test"],
            **{f"status.{part}": metrics[part][baseline].get("status", "ok") for part in parts},
        },
        params={"features": ",".join(fitted.features), "calibration": fitted.calibrator.method},
        metrics={
            metric_key(part, metric): float(value)
            for part in parts
            for metric, value in numeric_metrics(metrics[part][baseline]).items()
        },
        documents={},
    )


def bundle_manifest_fields(
    result: TrainResult, *, model: ChurnModel, champion_metric: str, test_fits: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Manifest fields of the training's bundle beyond the core ones: snapshot dates, calibration, champion
    metric, and the drift reference (the test snapshot that `churn score` compares today's population with, with
    the records of its BTYD fits `test_fits` when given).

    The reference's churn scores are `model`'s, the bundled model that scoring runs: the evaluation model's test
    predictions differ from those of the model refitted on every labelled snapshot, and a calibration's plateaus
    sit at other values in each, so a customer scored the same fell into another decile (a score PSI of 1.5 to 2.7
    the day the model was trained, on Online Retail and on a subscription export)."""
    split = result.split.as_dict()
    return {
        "validation_snapshot": split["validation"],
        "evaluation_training_snapshots": split["train"],
        "test_snapshot": split["test"],
        "calibration": model.calibrator_.method,
        "champion_metric": champion_metric,
        "drift_reference": drift_reference(
            result.test_features,
            model.predict_proba(result.test_features),
            result.labels["test"],
            numeric=result.columns.numeric,
            categorical=result.columns.categorical,
            snapshot=split["test"],
            fits=test_fits,
        ),
    }


def unchanged_decision(
    metrics: Mapping[str, Any], *, champion: str, fingerprint: str, metric: str
) -> PromotionDecision:
    """The decision when the model's files equal champion version `champion`'s: nothing registered."""
    return PromotionDecision(
        False,
        f"unchanged: the model's files equal champion v{champion}'s (fingerprint {fingerprint[:12]}); "
        "no new version registered",
        metric,
        float(metrics["test"][chosen_candidate(metrics)][metric]),
        None,
        champion,
        unchanged=True,
    )


def start_training_run(settings: TrackingSettings, result: TrainResult) -> mlflow.ActiveRun:
    """Point MLflow at the store and start the training run (a context manager) in `settings.experiment`."""
    experiment_id = use_experiment(settings, settings.experiment)
    return mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{settings.model_name} test={result.split.as_dict()['test']}"
    )


def log_contents(contents: RunContents) -> None:
    """Log `contents` to the active run."""
    mlflow.set_tags(contents.tags)
    mlflow.log_params(contents.params)
    mlflow.log_metrics(contents.metrics)
    for artifact_file, document in contents.documents.items():
        mlflow.log_dict(document, artifact_file)


def log_baseline_runs(result: TrainResult, *, experiment_id: str) -> None:
    """One nested run per fitted baseline under the active run."""
    for baseline in result.baselines:
        with mlflow.start_run(experiment_id=experiment_id, run_name=baseline, nested=True):
            log_contents(baseline_run_contents(result, baseline))


def log_files(paths: Iterable[Path], *, root: Path) -> None:
    """Log files the runner wrote under `root` to the active run, each under its folder relative to `root`."""
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path=Path(path).parent.relative_to(root).as_posix())


def same_as_champion(settings: TrackingSettings, fingerprint: str) -> ModelVersion | None:
    """The champion version when its files have `fingerprint` (`model_fingerprint`), else None."""
    current = champion_version(settings)
    if current is not None and current.tags.get(FINGERPRINT_TAG) == fingerprint:
        return current
    return None


def register_model(settings: TrackingSettings, model: ChurnModel, *, bundle: Path, features: pd.DataFrame) -> str:
    """Log `model` as the active run's pyfunc model (its artifact: the bundle folder `bundle`, written by the
    runner), registered as `settings.model_name`, with a signature from a few rows of `features`; the version."""
    example = model_input_example(features, feature_names=model.feature_names_, categorical=model.categorical_features_)
    signature = infer_signature(example, pd.Series(model.predict_proba(example), name="churn_probability"))
    info = mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT_NAME,
        python_model=str(PYFUNC_FILE),
        artifacts={"bundle": str(bundle)},
        code_paths=[str(PACKAGE_DIR)],
        signature=signature,
        input_example=example,
        pip_requirements=pyfunc_requirements(),
        registered_model_name=settings.model_name,
    )
    return str(info.registered_model_version)


def promotion_decision(
    settings: TrackingSettings, result: TrainResult, *, retention: RetentionSettings, trained_from: Mapping[str, str]
) -> PromotionDecision:
    """Whether the newly registered model takes the alias: its test `champion_metric` against the champion's
    (`incumbent_test_metric`), with the noise caveat of its lead over the best baseline.

    `trained_from`: this run's project and transactions path (`config.data_identity`). A champion trained for
    another project (another shop sharing the registry and model name) keeps the alias: comparing the two on this
    project's test data would hand one shop's customers to the other's model. A champion of this project trained
    from another transactions path (a renamed export) is compared as usual, and the reason says so.
    """
    metric = settings.champion_metric
    new_value = float(result.metrics["test"][chosen_candidate(result.metrics)][metric])
    champion = champion_version(settings)
    then = None if champion is None else champion_trained_from(settings, champion)
    if then is not None and then["project"] != trained_from["project"]:
        version = str(champion.version)
        reason = (
            f"champion v{version} was trained for project {then['project']!r} from {then['transactions']}, this run "
            f"for project {trained_from['project']!r} from {trained_from['transactions']}: another project's champion "
            "is not replaced (nor compared on this project's data); give each project its own train.model_name or "
            "registry, and scoring with this one uses that project's model"
        )
        return PromotionDecision(False, reason, metric, new_value, None, version, other_project=then["project"])
    caveats = [noise_caveat(result.metrics, champion_metric=metric)]
    if then is not None and then["transactions"] != trained_from["transactions"]:
        caveats.append(f"the champion was trained from {then['transactions']}, this run reads {trained_from['transactions']}")
    incumbent, incumbent_version, basis = incumbent_test_metric(settings, result, retention=retention)
    return decide_promotion(
        new_value,
        incumbent,
        metric=metric,
        incumbent_version=incumbent_version,
        basis=basis,
        caveat="; ".join(caveat for caveat in caveats if caveat),
    )


def champion_trained_from(settings: TrackingSettings, champion: ModelVersion) -> dict[str, str] | None:
    """The `champion` version's project and transactions path (with the file read inside a zip archive, as
    `config.data_identity` names it), from its training run's params (logged by every training); None when its
    run lacks them."""
    params = _client(settings).get_run(champion.run_id).data.params
    if "project" not in params:
        return None
    member = params.get("sources.transactions.member", "None")  # `flatten` logs an unset member as 'None'
    path = params.get("sources.transactions.path", "?")
    return {"project": params["project"], "transactions": member_label(path, None if member == "None" else member)}


def publish_version(
    settings: TrackingSettings, version: str, *, decision: PromotionDecision, bundle_path: Path, fingerprint: str
) -> None:
    """Log the bundle folder the runner wrote as the active run's "bundle" artifacts and tag the run with the
    decision; for a newly registered version also tag the version and, last, move the alias when promoted (so
    the alias only ever points at a version whose bundle is stored)."""
    mlflow.log_artifacts(str(bundle_path), BUNDLE_ARTIFACT_PATH)
    mlflow.set_tags(
        {"champion_decision": decision.label, "champion_reason": decision.reason, "model_version": version}
    )
    name = settings.model_name
    if decision.unchanged:
        get_logger().info("model %s: %s", name, decision.reason)
        return
    client = _client(settings)
    client.set_model_version_tag(name, version, FINGERPRINT_TAG, fingerprint)
    client.set_model_version_tag(name, version, "champion_decision", decision.label)
    client.set_model_version_tag(name, version, "champion_reason", decision.reason)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    get_logger().info("model %s version %s: %s (%s)", name, version, decision.label, decision.reason)
