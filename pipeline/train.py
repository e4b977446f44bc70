"""Training on an out-of-time split: LightGBM with a small search, calibration, baselines, metrics.

`train_models(features, specs=, split=, settings=, retention=)` is pure: it takes the snapshot table
(one row per customer and snapshot: `snapshot_date`, `customer_id`, feature columns, `churned`) and
returns a `TrainResult` holding the fitted `ChurnModel`, the baselines, the metrics and the
predictions behind them. The runner (`pipeline.run.train`) reads files and talks to MLflow.

LightGBM: class imbalance via `scale_pos_weight = negatives / positives` on the training rows; early
stopping on validation average precision; `settings.search_trials` configurations drawn at random
(seeded) from a small grid, the first always the default one, chosen by validation PR-AUC. Fixed
threads, `deterministic=True` and `force_row_wise=True` make the same seed give the same model.
The calibrator (isotonic or Platt) is fitted on the validation snapshot, so validation metrics of
calibrated models are in-sample for the calibrator: only the test snapshot is untouched.

Where each configuration is fitted is a parameter: `fit` (a `BoosterFit`) defaults to `fit_booster` (this
process); `train.engine: dask` passes the Dask fit (`pipeline.dask_engine.train_models_dask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, log_loss

from pipeline.baselines import DEFAULT_RFM_FEATURES, FittedBaseline, fit_baselines
from pipeline.config import TrainConfig
from pipeline.errors import TrainError
from pipeline.evaluate import (
    RetentionSettings,
    classification_metrics,
    customer_values,
    summarise_folds,
)
from pipeline.model import CategoryEncoder, ChurnModel, feature_matrix, fit_calibrator
from pipeline.progress import get_logger
from pipeline.split import LABEL_COLUMN, TimeSplit, split_frame

LIGHTGBM = "lightgbm"
LIGHTGBM_UNCALIBRATED = "lightgbm_uncalibrated"
SPLIT_NAMES = ("test", "validation")

# Below this many training rows LightGBM runs on one thread: thread synchronisation costs more than it
# saves on small data, and on a busy 2-core machine OpenMP barriers can make 2 threads 10x slower.
# The thread count is a fixed function of the data, so the same data and seed still give the same model.
SINGLE_THREAD_ROWS = 50_000

# The first entry of each list is the default configuration (trial 0).
SEARCH_SPACE: dict[str, list[Any]] = {
    "learning_rate": [0.05, 0.03, 0.1],
    "num_leaves": [31, 15, 63],
    "min_data_in_leaf": [50, 20, 100, 200],
    "feature_fraction": [0.9, 0.7, 1.0],
    "bagging_fraction": [0.9, 0.7, 1.0],
    "lambda_l2": [1.0, 0.0, 10.0],
}
CALIBRATION_NOTE = (
    "Calibrators (LightGBM and baselines) are fitted on the validation snapshot, which also chose the "
    "LightGBM configuration and its early stopping: validation metrics are optimistic. Only the test "
    "snapshot was never seen."
)


class FeatureSpecLike(Protocol):
    """What training needs from `pipeline.features.registry.FeatureSpec`."""

    name: str
    family: str
    kind: str


@dataclass(frozen=True)
class FeatureColumns:
    """The features a model is trained on, by kind; `rfm` are the logistic baseline's inputs."""

    numeric: list[str]
    categorical: list[str]
    rfm: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


@dataclass
class TrainResult:
    """Everything one training produced. `metrics` is the metrics.json content."""

    model: ChurnModel
    split: TimeSplit
    columns: FeatureColumns
    dropped_features: dict[str, str]
    baselines: dict[str, FittedBaseline]
    skipped_baselines: dict[str, str]
    trials: list[dict[str, Any]]
    best_params: dict[str, Any]
    metrics: dict[str, Any]
    labels: dict[str, np.ndarray]
    probabilities: dict[str, dict[str, np.ndarray]]
    test_features: pd.DataFrame = field(repr=False)


def select_feature_columns(
    train: pd.DataFrame, specs: Sequence[FeatureSpecLike]
) -> tuple[FeatureColumns, dict[str, str]]:
    """Registry features usable for training: present in the table and not empty in every training row.

    Returns (FeatureColumns, {dropped feature: reason}). Raises TrainError when none is usable.
    """
    dropped: dict[str, str] = {}
    present = [s for s in specs if s.name in train.columns]
    dropped.update({s.name: "not in the feature table" for s in specs if s.name not in train.columns})
    empty = set(train[[s.name for s in present]].columns[train[[s.name for s in present]].isna().all()])
    dropped.update({name: "missing in every training row" for name in sorted(empty)})
    kept = [s for s in present if s.name not in empty]
    if not kept:
        raise TrainError(
            "no usable feature: none of the registry's features has a value in the training snapshots. "
            "Check that ingest produced transactions and re-run `churn features`."
        )
    numeric = [s.name for s in kept if s.kind != "categorical"]
    categorical = [s.name for s in kept if s.kind == "categorical"]
    rfm = [s.name for s in kept if s.family == "rfm" and s.kind != "categorical"]
    return FeatureColumns(numeric, categorical, rfm or [n for n in DEFAULT_RFM_FEATURES if n in numeric]), dropped


def search_candidates(*, trials: int, seed: int, max_depth: int) -> list[dict[str, Any]]:
    """`trials` distinct LightGBM configurations from SEARCH_SPACE: the default first, then seeded draws."""
    rng = np.random.default_rng(seed)
    default = {name: values[0] for name, values in SEARCH_SPACE.items()}
    candidates = [default]
    total = int(np.prod([len(v) for v in SEARCH_SPACE.values()]))
    while len(candidates) < min(trials, total):
        draw = {name: values[int(rng.integers(len(values)))] for name, values in SEARCH_SPACE.items()}
        if draw not in candidates:
            candidates.append(draw)
    if max_depth > 0:
        # A tree of depth d has at most 2**d leaves; larger num_leaves would only trigger warnings.
        candidates = [{**c, "num_leaves": min(c["num_leaves"], 2**max_depth)} for c in candidates]
    return candidates


def lightgbm_params(
    candidate: dict[str, Any], *, scale_pos_weight: float, settings: TrainConfig, training_rows: int
) -> dict[str, Any]:
    """Full LightGBM parameters for one candidate: fixed seed, threads and row-wise histograms."""
    return {
        "objective": "binary",
        "metric": ["average_precision", "binary_logloss"],
        "first_metric_only": True,
        "max_depth": settings.max_depth,
        "bagging_freq": 1,
        "scale_pos_weight": scale_pos_weight,
        "seed": settings.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1 if training_rows < SINGLE_THREAD_ROWS else settings.num_threads,
        "feature_pre_filter": False,
        "verbosity": -1,
        **candidate,
    }


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL_COLUMN].to_numpy("float64")


def fit_booster(
    train_matrix: np.ndarray,
    y_train: np.ndarray,
    validation_matrix: np.ndarray,
    y_validation: np.ndarray,
    *,
    params: dict[str, Any],
    columns: FeatureColumns,
    settings: TrainConfig,
) -> lgb.Booster:
    """One LightGBM fit with early stopping on validation; returns a booster cut at its best iteration."""
    names = columns.all
    train_set = lgb.Dataset(
        train_matrix, label=y_train, feature_name=names, categorical_feature=columns.categorical, free_raw_data=False
    )
    validation_set = lgb.Dataset(validation_matrix, label=y_validation, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=settings.num_boost_round,
        valid_sets=[validation_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


class BoosterFit(Protocol):
    """Fits one LightGBM configuration: `fit_booster`'s signature (and its booster cut at the best round)."""

    def __call__(
        self,
        train_matrix: np.ndarray,
        y_train: np.ndarray,
        validation_matrix: np.ndarray,
        y_validation: np.ndarray,
        *,
        params: dict[str, Any],
        columns: FeatureColumns,
        settings: TrainConfig,
    ) -> lgb.Booster: ...


def fit_lightgbm(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    *,
    columns: FeatureColumns,
    horizon_days: int,
    settings: TrainConfig,
    fit: BoosterFit = fit_booster,
) -> tuple[ChurnModel, list[dict[str, Any]], dict[str, Any], dict[str, float]]:
    """Search, fit and calibrate LightGBM. Returns (model, trials, best parameters, calibration CV losses).

    Each trial records its parameters, best iteration and validation PR-AUC / log loss (uncalibrated).
    """
    encoder = CategoryEncoder.fit(train, columns.categorical)
    train_matrix = feature_matrix(train, feature_names=columns.all, encoder=encoder)
    validation_matrix = feature_matrix(validation, feature_names=columns.all, encoder=encoder)
    y_train, y_validation = _labels(train), _labels(validation)
    scale_pos_weight = float((y_train == 0).sum() / y_train.sum())
    logger = get_logger()
    trials: list[dict[str, Any]] = []
    best: tuple[float, int, lgb.Booster, dict[str, Any]] | None = None
    candidates = search_candidates(trials=settings.search_trials, seed=settings.seed, max_depth=settings.max_depth)
    for number, candidate in enumerate(candidates):
        params = lightgbm_params(
            candidate, scale_pos_weight=scale_pos_weight, settings=settings, training_rows=len(y_train)
        )
        booster = fit(
            train_matrix, y_train, validation_matrix, y_validation, params=params, columns=columns, settings=settings
        )
        p_validation = booster.predict(validation_matrix)
        pr_auc = float(average_precision_score(y_validation, p_validation))
        trials.append(
            {
                "trial": number,
                **candidate,
                "best_iteration": booster.current_iteration(),
                "validation_pr_auc": pr_auc,
                "validation_log_loss_uncalibrated": float(log_loss(y_validation, p_validation, labels=[0.0, 1.0])),
            }
        )
        logger.info(
            "trial %d/%d: validation PR-AUC %.4f (%d trees)",
            number + 1,
            len(candidates),
            pr_auc,
            booster.current_iteration(),
        )
        # Strictly better only: on ties the earlier (simpler, default-first) candidate stays.
        if best is None or pr_auc > best[0]:
            best = (pr_auc, number, booster, params)
    assert best is not None
    _, _, booster, params = best
    calibrator, calibration_losses = fit_calibrator(
        booster.predict(validation_matrix, raw_score=True),
        y_validation,
        method=settings.calibration,
        seed=settings.seed,
    )
    model = ChurnModel(
        feature_names=columns.all,
        categorical_features=columns.categorical,
        encoder=encoder,
        booster=booster,
        calibrator=calibrator,
        horizon_days=horizon_days,
        params=params,
    )
    return model, trials, {**params, "best_iteration": booster.current_iteration()}, calibration_losses


def train_models(
    features: pd.DataFrame,
    *,
    specs: Sequence[FeatureSpecLike],
    split: TimeSplit,
    settings: TrainConfig,
    retention: RetentionSettings,
    fit: BoosterFit | None = None,
) -> TrainResult:
    """Fit LightGBM and the baselines on `split` of `features` and evaluate them on validation and test.

    `features`: the snapshot table (`snapshot_date`, `customer_id`, feature columns, `churned`).
    Metrics (see pipeline.evaluate) per split and model: "lightgbm" (calibrated),
    "lightgbm_uncalibrated", and each baseline that could be fitted. `fit` fits each LightGBM
    configuration (default `fit_booster`); train.engine=dask needs one that runs on a cluster.
    """
    if fit is None and settings.engine != "local":
        raise TrainError(
            f"train.engine={settings.engine!r} needs a cluster: run `churn train` (it opens one), or call "
            "pipeline.dask_engine.train_models_dask; or use train.engine=local"
        )
    parts = split_frame(features, split)
    columns, dropped = select_feature_columns(parts["train"], specs)
    model, trials, best_params, calibration_losses = fit_lightgbm(
        parts["train"],
        parts["validation"],
        columns=columns,
        horizon_days=split.horizon_days,
        settings=settings,
        fit=fit or fit_booster,
    )
    baselines, skipped = fit_baselines(
        parts["train"],
        parts["validation"],
        rfm_features=columns.rfm,
        calibration=settings.calibration,
        seed=settings.seed,
    )
    for name, reason in skipped.items():
        get_logger().warning("baseline %s skipped: %s", name, reason)
    labels = {name: _labels(parts[name]) for name in SPLIT_NAMES}
    probabilities = {
        name: {
            LIGHTGBM: model.predict_proba(parts[name]),
            LIGHTGBM_UNCALIBRATED: model.predict_uncalibrated(parts[name]),
            **{b: baseline.predict_proba(parts[name]) for b, baseline in baselines.items()},
        }
        for name in SPLIT_NAMES
    }
    metrics: dict[str, Any] = {
        name: {
            model_name: classification_metrics(
                labels[name], p, values=customer_values(parts[name], settings=retention), settings=retention
            )
            for model_name, p in probabilities[name].items()
        }
        for name in SPLIT_NAMES
    }
    metrics["calibration"] = {
        "fitted_on": "validation",
        "lightgbm_method": model.calibrator_.method,
        "lightgbm_cv_log_loss": calibration_losses,
        "baseline_methods": {b: baseline.calibrator.method for b, baseline in baselines.items()},
        "note": CALIBRATION_NOTE,
    }
    metrics["split"] = {**split.as_dict(), "rows": {name: int(len(part)) for name, part in parts.items()}}
    metrics["skipped_baselines"] = skipped
    return TrainResult(
        model=model,
        split=split,
        columns=columns,
        dropped_features=dropped,
        baselines=baselines,
        skipped_baselines=skipped,
        trials=trials,
        best_params=best_params,
        metrics=metrics,
        labels=labels,
        probabilities=probabilities,
        test_features=parts["test"],
    )


def backtest_summary(results: Sequence[TrainResult]) -> dict[str, Any]:
    """Per fold the split and test metrics, and per model and metric the mean and spread over folds."""
    return {
        "folds": [{"split": r.split.as_dict(), "test": r.metrics["test"]} for r in results],
        "summary": summarise_folds([{"test": r.metrics["test"]} for r in results]),
    }
