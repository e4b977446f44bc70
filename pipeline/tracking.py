"""MLflow helpers: tracking store, experiments, the training run, registration and the champion alias.

The store is `cfg.tracking_uri()` (MLFLOW_TRACKING_URI wins over the config); experiments store their
artifacts under `cfg.mlflow.artifact_root/<experiment>`. One training = one run holding the resolved
config, input fingerprints, snapshot dates, feature list, git commit, library versions, all metrics,
plots, the baselines as nested runs, the pyfunc model (registered as `cfg.train.model_name`) and the
bundle folder under the artifact path "bundle".

Champion rule: the alias `champion` moves to the new version only when its test metric
`cfg.train.champion_metric` is at least as good as the current champion's on the same test snapshot
(the champion is re-scored on the new test rows when none of its training or validation label windows
overlaps them; otherwise its recorded test metric is used, and the reason says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.bundle import BUNDLE_ARTIFACT_PATH, code_version, library_versions, load_bundle, save_bundle
from pipeline.config import Config, config_as_dict
from pipeline.drift import drift_reference
from pipeline.errors import BundleError, ScoreError
from pipeline.evaluate import (
    LOWER_IS_BETTER,
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

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipeline.evaluate import RetentionSettings
    from pipeline.train import TrainResult

CHAMPION_ALIAS = "champion"
# Model version tag holding the sha256 of the model's files (`model_fingerprint`).
FINGERPRINT_TAG = "model_fingerprint"
MODEL_ARTIFACT_NAME = "model"
PYFUNC_FILE = Path(__file__).with_name("mlflow_model.py")
PACKAGE_DIR = Path(__file__).resolve().parent
PYFUNC_REQUIREMENTS = ("lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "mlflow", "pyarrow")


# --- store and experiments -------------------------------------------------------------------------------


def configure_mlflow(cfg: Config) -> str:
    """Point MLflow (tracking and registry) at `cfg.tracking_uri()`; return the URI."""
    import mlflow

    uri = cfg.tracking_uri()
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


def _client(cfg: Config) -> MlflowClient:
    from mlflow import MlflowClient

    uri = cfg.tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_artifact_location(cfg: Config, name: str) -> str:
    """File URI of `cfg.mlflow.artifact_root/<name, made safe for a folder name>`."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"
    return (Path(cfg.mlflow.artifact_root) / folder).resolve().as_uri()


def ensure_experiment(cfg: Config, name: str) -> str:
    """Id of the experiment `name`, created (artifacts under cfg.mlflow.artifact_root) or restored if needed."""
    from mlflow.exceptions import MlflowException

    client = _client(cfg)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=experiment_artifact_location(cfg, name), tags=RUNS_VIEW_TAGS
            )
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created meanwhile by another process
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    mark_runs_view(client, experiment)
    return experiment.experiment_id


# MLflow 3's UI opens an experiment without a kind on its GenAI overview (traces, "No data available");
# this tag files it as classic ML, so it opens on the runs table (see ECOSYSTEM.md).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
RUNS_VIEW_TAGS = {EXPERIMENT_KIND_TAG: "custom_model_development"}


def mark_runs_view(client: Any, experiment: Any) -> None:
    """Set the experiment kind tag on `experiment` (an mlflow Experiment) when it has none."""
    if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, RUNS_VIEW_TAGS[EXPERIMENT_KIND_TAG])


# --- champion --------------------------------------------------------------------------------------------


def champion_version(cfg: Config) -> Any | None:
    """The ModelVersion behind `<cfg.train.model_name>@champion`, or None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return _client(cfg).get_model_version_by_alias(cfg.train.model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def champion_bundle(cfg: Config, *, dest: Path) -> tuple[Path, str]:
    """Download the champion version's bundle (its run's "bundle" artifacts) into `dest`.

    Returns (bundle folder, model version). Raises ScoreError when no version holds the alias.
    """
    import mlflow

    version = champion_version(cfg)
    if version is None:
        raise ScoreError(
            f"no model registered as '{cfg.train.model_name}@{CHAMPION_ALIAS}' in {cfg.tracking_uri()}: "
            "run `churn train` first"
        )
    Path(dest).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path=BUNDLE_ARTIFACT_PATH,
            dst_path=str(dest),
            tracking_uri=cfg.tracking_uri(),
        )
    except Exception as exc:  # MLflow raises several types for missing runs and artifacts
        raise ScoreError(
            f"cannot download the bundle of '{cfg.train.model_name}@{CHAMPION_ALIAS}' (version {version.version}, "
            f"run {version.run_id}) from {cfg.tracking_uri()}: {exc}. Retrain with `churn train`."
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
    reason = f"test {metric} {new_value:.4f} {verdict} {champion}'s {incumbent_value:.4f} ({note}){suffix}"
    return PromotionDecision(promote, reason, metric, new_value, incumbent_value, incumbent_version)


def chosen_candidate(metrics: Mapping[str, Any]) -> str:
    """The candidate a training kept (metrics.json "model_choice"); "lightgbm" for older metrics."""
    return str(metrics.get("model_choice", {}).get("chosen", "lightgbm"))


def noise_caveat(metrics: Mapping[str, Any]) -> str:
    """A warning when the kept candidate does not clearly beat the best baseline on test ROC-AUC (its paired
    bootstrap 95% interval reaches 0 or below); "" when it clearly does or there is nothing to compare."""
    lead = metrics.get("comparison", {}).get("candidates", {}).get(chosen_candidate(metrics), {}).get("roc_auc")
    if not lead or lead["low"] > 0:
        return ""
    return (
        f"caution: its test ROC-AUC lead over the best baseline ({lead['reference']}) is {lead['difference']:+.4f} "
        f"with a 95% interval of {lead['low']:+.4f} to {lead['high']:+.4f}, so it may be noise"
    )


def comparison_metrics(comparison: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of the comparison with the best baseline: `vs_baseline_<candidate>_<metric>_<stat>`."""
    return {
        metric_key("vs_baseline", candidate, metric, stat): float(entry[stat])
        for candidate, by_metric in comparison.get("candidates", {}).items()
        for metric, entry in by_metric.items()
        for stat in ("difference", "low", "high")
    }


def incumbent_test_metric(
    cfg: Config, result: TrainResult, *, retention: RetentionSettings
) -> tuple[float | None, str | None, str]:
    """(champion's test metric, its version, how it was obtained); (None, None, "") without a champion.

    The champion is re-scored on this run's test snapshot when its bundle loads, has the features,
    and none of its training/validation label windows overlaps the test window; otherwise its
    recorded test metric (from its own run) is used.
    """
    version = champion_version(cfg)
    if version is None:
        return None, None, ""
    metric = cfg.train.champion_metric
    data = _client(cfg).get_run(version.run_id).data
    recorded = data.metrics.get(f"test_{data.tags.get('chosen_model', 'lightgbm')}_{metric}")
    recorded_value = float(recorded) if recorded is not None else float("nan")
    with tempfile.TemporaryDirectory(prefix="champion-") as folder:
        try:
            bundle_path, _ = champion_bundle(cfg, dest=Path(folder))
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


def input_fingerprints(cfg: Config) -> dict[str, dict[str, str]]:
    """sha256 of every validated source file and every feature snapshot file."""
    return {
        "validated": file_fingerprints(Path(cfg.validated_dir).glob("*.parquet"), root=Path(cfg.validated_dir)),
        "features": file_fingerprints(Path(cfg.features_dir).glob("snapshot=*.parquet"), root=Path(cfg.features_dir)),
    }


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


@dataclass(frozen=True)
class TrainingRecord:
    """What the MLflow side of a training produced."""

    run_id: str
    experiment_id: str
    model_version: str
    decision: PromotionDecision
    bundle_path: Path


def _log_figures(result: TrainResult, *, save_dir: Path) -> None:
    """Log the evaluation figures to the active run and save them as PNG under `save_dir/plots/`."""
    import mlflow

    from pipeline import plots  # matplotlib: imported only when figures are made (start-up time)

    y_test = result.labels["test"]
    curves = result.probabilities["test"]
    calibrated = {k: v for k, v in curves.items() if k != "lightgbm_uncalibrated"}
    contributions = result.model.contributions(result.test_features.head(2000))
    values = pd.DataFrame(
        result.model.matrix(result.test_features.head(2000)),
        index=contributions.index,
        columns=result.model.feature_names_,
    )
    figures = {
        "plots/roc_test.png": plots.roc_figure(y_test, calibrated, split_name="test"),
        "plots/precision_recall_test.png": plots.precision_recall_figure(y_test, calibrated, split_name="test"),
        "plots/reliability_test.png": plots.reliability_figure(y_test, curves, split_name="test"),
        "plots/lift_gain_test.png": plots.lift_gain_figure(y_test, calibrated, split_name="test"),
        "plots/feature_importance.png": plots.feature_importance_figure(result.model.feature_importance()),
        "plots/shap_summary_test.png": plots.shap_summary_figure(contributions, values, seed=0),
    }
    for artifact, figure in figures.items():
        # Rendered once: the saved PNG is the file logged (mlflow.log_figure would render it again).
        path = plots.save_figure(figure, save_dir / artifact)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact).parent))


def _publish_bundle(
    model: ChurnModel,
    *,
    path: Path,
    metrics: dict[str, Any],
    run_id: str,
    model_version: str,
    decision: PromotionDecision,
    training_snapshots: list[str],
    extra: dict[str, Any],
) -> Path:
    """Write the local bundle of `model_version`, log it as the active run's bundle artifacts and
    tag the run with the champion decision; return the bundle folder."""
    import mlflow

    bundle_path = save_bundle(
        model,
        path=path,
        metrics=metrics,
        run_id=run_id,
        model_version=model_version,
        training_snapshots=training_snapshots,
        extra=extra,
    )
    mlflow.log_artifacts(str(bundle_path), BUNDLE_ARTIFACT_PATH)
    mlflow.set_tags(
        {
            "champion_decision": decision.label,
            "champion_reason": decision.reason,
            "model_version": model_version,
        }
    )
    return bundle_path


def log_training_run(
    cfg: Config,
    result: TrainResult,
    *,
    retention: RetentionSettings,
    fingerprints: Mapping[str, Mapping[str, str]],
    backtest: Mapping[str, Any] | None = None,
    production: ChurnModel | None = None,
    production_snapshots: list[str] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
) -> TrainingRecord:
    """Log one training to MLflow, register the model, write and log the bundle, decide the champion.

    `manifest_extra`: more fields for the bundle manifest (e.g. `training_inputs`, the sources and
    columns present at training, which `churn score` checks).

    Order: run metadata and metrics, nested baseline runs, plots, pyfunc model (registered), champion
    decision, bundle at `cfg.bundle_dir` (logged under "bundle"), and last the alias, so that the alias
    only ever points at a version whose bundle is stored. The registered model is `production` (the
    evaluated configuration refitted on `production_snapshots`) when given, else `result.model`; the
    metrics are always `result`'s (the evaluated fit's).
    """
    import mlflow

    configure_mlflow(cfg)
    experiment_id = ensure_experiment(cfg, cfg.mlflow.experiment)
    client = _client(cfg)
    model = result.model if production is None else production
    chosen = chosen_candidate(result.metrics)
    split = result.split.as_dict()
    trained_on = split["train"] if production_snapshots is None else production_snapshots
    name = cfg.train.model_name
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name} test={split['test']}") as run:
        mlflow.set_tags(
            {
                "git_commit": code_version(),
                "model_name": name,
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
            }
        )
        params = flatten(config_as_dict(cfg))
        params.update(flatten({k: v for k, v in result.best_params.items() if k != "metric"}, prefix="lightgbm"))
        mlflow.log_params(params)
        mlflow.log_dict(config_as_dict(cfg), "config/resolved_config.json")
        mlflow.log_dict({k: dict(v) for k, v in fingerprints.items()}, "inputs/fingerprints.json")
        mlflow.log_dict(
            {
                "features": model.feature_names_,
                "categorical": model.categorical_features_,
                "dropped": result.dropped_features,
            },
            "inputs/features.json",
        )
        mlflow.log_dict(split, "inputs/snapshots.json")
        mlflow.log_dict(result.metrics, "metrics/metrics.json")
        mlflow.log_dict({"trials": result.trials, "best": result.best_params}, "search/trials.json")
        mlflow.log_metrics(flat_metrics(result.metrics))
        for baseline, fitted in result.baselines.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=baseline, nested=True):
                mlflow.set_tags({"model": baseline, "description": fitted.description, "test_snapshot": split["test"]})
                mlflow.log_params({"features": ",".join(fitted.features), "calibration": fitted.calibrator.method})
                mlflow.set_tags({f"status.{part}": result.metrics[part][baseline].get("status", "ok")
                                 for part in ("test", "validation")})
                mlflow.log_metrics(
                    {
                        metric_key(part, metric): float(value)
                        for part in ("test", "validation")
                        for metric, value in numeric_metrics(result.metrics[part][baseline]).items()
                    }
                )
        for baseline, reason in result.skipped_baselines.items():
            mlflow.set_tag(f"skipped_baseline.{baseline}", reason)
        for baseline, status in failed_baselines(result.metrics).items():
            mlflow.set_tag(f"failed_baseline.{baseline}", status)
        mlflow.set_tags(
            {
                "chosen_model": chosen,
                "model_choice": result.metrics["model_choice"]["statement"],
                "lightgbm_vs_best_baseline": result.metrics["comparison"]["statement"],
                "calibration_statement": result.metrics["calibration"]["lightgbm_statement"],
            }
        )
        mlflow.log_metrics(comparison_metrics(result.metrics["comparison"]))
        _log_figures(result, save_dir=cfg.reports_dir / "training")
        if backtest is not None:
            mlflow.log_dict(dict(backtest), "backtest/backtest.json")
            mlflow.log_metrics(
                {
                    metric_key("backtest", stat, model_name, metric): values[stat]
                    for model_name, metrics in backtest["summary"].items()
                    for metric, values in metrics.items()
                    for stat in ("mean", "std")
                }
            )
        extra = {
            "validation_snapshot": split["validation"],
            "evaluation_training_snapshots": split["train"],
            "test_snapshot": split["test"],
            "calibration": model.calibrator_.method,
            "champion_metric": cfg.train.champion_metric,
            "drift_reference": drift_reference(  # what `churn score` compares today's population with
                result.test_features, result.probabilities["test"][chosen], result.labels["test"],
                numeric=result.columns.numeric, categorical=result.columns.categorical, snapshot=split["test"],
            ),
            **(manifest_extra or {}),
        }
        fingerprint = model_fingerprint(model)
        current = champion_version(cfg)
        if current is not None and current.tags.get(FINGERPRINT_TAG) == fingerprint:
            # The same model as the champion: no new version (every rerun of `make demo` would add one).
            version = str(current.version)
            decision = PromotionDecision(
                False,
                f"unchanged: the model's files equal champion v{version}'s (fingerprint {fingerprint[:12]}); "
                "no new version registered",
                cfg.train.champion_metric,
                float(result.metrics["test"][chosen][cfg.train.champion_metric]),
                None,
                version,
                unchanged=True,
            )
            bundle_path = _publish_bundle(
                model,
                path=cfg.bundle_dir,
                metrics=result.metrics,
                run_id=run.info.run_id,
                model_version=version,
                decision=decision,
                training_snapshots=trained_on,
                extra={**extra, "champion_at_training": True, "same_as_champion_run": current.run_id},
            )
            get_logger().info("model %s: %s", name, decision.reason)
            return TrainingRecord(run.info.run_id, experiment_id, version, decision, bundle_path)
        with tempfile.TemporaryDirectory(prefix="pyfunc-") as folder:
            pyfunc_bundle = save_bundle(
                model,
                path=Path(folder) / "bundle",
                metrics=result.metrics,
                run_id=run.info.run_id,
                model_version=None,
                training_snapshots=trained_on,
                extra=extra,
            )
            example = model_input_example(
                result.test_features, feature_names=model.feature_names_, categorical=model.categorical_features_
            )
            from mlflow.models import infer_signature

            signature = infer_signature(example, pd.Series(model.predict_proba(example), name="churn_probability"))
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT_NAME,
                python_model=str(PYFUNC_FILE),
                artifacts={"bundle": str(pyfunc_bundle)},
                code_paths=[str(PACKAGE_DIR)],
                signature=signature,
                input_example=example,
                pip_requirements=pyfunc_requirements(),
                registered_model_name=name,
            )
        version = str(info.registered_model_version)
        incumbent, incumbent_version, basis = incumbent_test_metric(cfg, result, retention=retention)
        decision = decide_promotion(
            float(result.metrics["test"][chosen][cfg.train.champion_metric]),
            incumbent,
            metric=cfg.train.champion_metric,
            incumbent_version=incumbent_version,
            basis=basis,
            caveat=noise_caveat(result.metrics),
        )
        bundle_path = _publish_bundle(
            model,
            path=cfg.bundle_dir,
            metrics=result.metrics,
            run_id=run.info.run_id,
            model_version=version,
            decision=decision,
            training_snapshots=trained_on,
            extra={**extra, "champion_at_training": decision.promote},
        )
        client.set_model_version_tag(name, version, FINGERPRINT_TAG, fingerprint)
        client.set_model_version_tag(name, version, "champion_decision", decision.label)
        client.set_model_version_tag(name, version, "champion_reason", decision.reason)
        if decision.promote:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        get_logger().info("model %s version %s: %s (%s)", name, version, decision.label, decision.reason)
    return TrainingRecord(run.info.run_id, experiment_id, version, decision, bundle_path)
