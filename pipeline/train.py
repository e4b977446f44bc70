"""Training on an out-of-time split: LightGBM with a small search, calibration, baselines, metrics.

`train_models(features, specs=, split=, settings=, retention=)` is pure: it takes the snapshot table
(one row per customer and snapshot: `snapshot_date`, `customer_id`, feature columns, `churned`) and
returns a `TrainResult` holding the fitted `ChurnModel`, the baselines, the metrics and the
predictions behind them. The runner (`pipeline.run.train`) reads files and talks to MLflow.

LightGBM: class imbalance via `scale_pos_weight = negatives / positives` on the training rows; early
stopping on validation average precision; `settings.search_trials` configurations drawn at random
(seeded) from a small grid, the first always the default one, chosen by validation PR-AUC. Fixed
threads, `deterministic=True` and `force_row_wise=True` make the same seed give the same model.
The LightGBM Datasets are binned once and shared by every trial. On large tables the trials run on a
customer-level sample (about `settings.search_sample_rows` training rows, the same customers'
validation rows; chosen by a seeded hash of the customer id), and the best configuration is then
refitted on every training row with early stopping on the whole validation snapshot.
The calibrator (isotonic or Platt) is fitted on the validation snapshot, so validation metrics of
calibrated models are in-sample for the calibrator: only the test snapshot is untouched.

Where each configuration is fitted is a parameter: `fit` (a `BoosterFit`) defaults to `fit_booster` (this
process); `train.engine: dask` passes the Dask fit (`pipeline.dask_engine.train_models_dask`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics import average_precision_score, log_loss

from pipeline.baselines import (
    BASELINE_DESCRIPTIONS,
    DEFAULT_RFM_FEATURES,
    FittedBaseline,
    baseline_metrics,
    fit_baselines,
)
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


def lightgbm_datasets(
    train_matrix: np.ndarray,
    y_train: np.ndarray,
    validation_matrix: np.ndarray,
    y_validation: np.ndarray,
    *,
    params: dict[str, Any],
    columns: FeatureColumns,
) -> tuple[lgb.Dataset, lgb.Dataset]:
    """(training, validation) Datasets binned once with `params`, validation on the training bins.

    Later fits with other booster parameters (leaves, rates, fractions, and min_data_in_leaf thanks to
    `feature_pre_filter=False` in `lightgbm_params`) reuse the bins. The Datasets keep no reference to the
    matrices (`free_raw_data=True`), so a caller can drop them while boosting; a parameter that would
    need re-binning raises LightGBMError instead of silently rebuilding the Dataset.
    """
    train_set = lgb.Dataset(
        train_matrix,
        label=y_train,
        feature_name=columns.all,
        categorical_feature=columns.categorical,
        params=params,
        free_raw_data=True,
    ).construct()
    validation_set = lgb.Dataset(
        validation_matrix,
        label=y_validation,
        reference=train_set,
        feature_name=columns.all,
        categorical_feature=columns.categorical,
        params=params,
        free_raw_data=True,
    ).construct()
    return train_set, validation_set


def boost(
    train_set: lgb.Dataset, validation_set: lgb.Dataset, *, params: dict[str, Any], settings: TrainConfig
) -> lgb.Booster:
    """One LightGBM fit on constructed Datasets, early stopping on validation; booster cut at its best iteration."""
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
    train_set, validation_set = lightgbm_datasets(
        train_matrix, y_train, validation_matrix, y_validation, params=params, columns=columns
    )
    return boost(train_set, validation_set, params=params, settings=settings)


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


def customer_sample_mask(customer_ids: pd.Series, *, fraction: float, seed: int) -> np.ndarray:
    """Rows of about `fraction` of the customers (all their rows), chosen by a seeded hash of the customer id.

    A customer is in or out whatever the other rows are, so the same customers are kept in every
    snapshot and in every frame (training and validation) for a given seed.
    """
    if fraction >= 1.0:
        return np.ones(len(customer_ids), dtype=bool)
    hash_key = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()  # 16 characters, as pandas needs
    hashes = pd.util.hash_pandas_object(customer_ids.astype("str"), index=False, hash_key=hash_key).to_numpy()
    return hashes < np.uint64(fraction * 2.0**64)


def search_sample_fraction(training_rows: int, *, sample_rows: int, trials: int) -> float:
    """Share of customers the search trials run on: about `sample_rows` training rows; 1.0 for one trial or off (0)."""
    if trials <= 1 or sample_rows <= 0 or training_rows <= sample_rows:
        return 1.0
    return sample_rows / training_rows


TrialFit = Callable[[dict[str, Any]], lgb.Booster]


def trial_fit(
    fit: BoosterFit,
    train_matrix: np.ndarray,
    y_train: np.ndarray,
    validation_matrix: np.ndarray,
    y_validation: np.ndarray,
    *,
    columns: FeatureColumns,
    settings: TrainConfig,
    dataset_params: dict[str, Any],
) -> TrialFit:
    """params -> booster on these rows. With `fit_booster` the Datasets are built once and shared by every call."""
    if fit is not fit_booster:
        return lambda params: fit(
            train_matrix, y_train, validation_matrix, y_validation, params=params, columns=columns, settings=settings
        )
    train_set, validation_set = lightgbm_datasets(
        train_matrix, y_train, validation_matrix, y_validation, params=dataset_params, columns=columns
    )
    return lambda params: boost(train_set, validation_set, params=params, settings=settings)


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

    Each trial records its parameters, best iteration, the rows it used and validation PR-AUC / log loss
    (uncalibrated, on the validation rows of its sample). When the trials ran on a sample
    (`search_sample_fraction`), the best configuration is refitted on all rows.
    """
    encoder = CategoryEncoder.fit(train, columns.categorical)
    train_matrix = feature_matrix(train, feature_names=columns.all, encoder=encoder)
    validation_matrix = feature_matrix(validation, feature_names=columns.all, encoder=encoder)
    y_train, y_validation = _labels(train), _labels(validation)
    scale_pos_weight = float((y_train == 0).sum() / y_train.sum())
    logger = get_logger()
    candidates = search_candidates(trials=settings.search_trials, seed=settings.seed, max_depth=settings.max_depth)
    candidate_params = [
        lightgbm_params(candidate, scale_pos_weight=scale_pos_weight, settings=settings, training_rows=len(y_train))
        for candidate in candidates
    ]
    fraction = search_sample_fraction(len(y_train), sample_rows=settings.search_sample_rows, trials=len(candidates))
    fit_rows = partial(trial_fit, fit, columns=columns, settings=settings, dataset_params=candidate_params[0])
    if fraction < 1.0:
        in_train = customer_sample_mask(train["customer_id"], fraction=fraction, seed=settings.seed)
        in_validation = customer_sample_mask(validation["customer_id"], fraction=fraction, seed=settings.seed)
    else:
        in_train = in_validation = slice(None)  # all rows, as views (no copy of the matrices)
    search_x, search_y = train_matrix[in_train], y_train[in_train]
    search_x_validation, search_y_validation = validation_matrix[in_validation], y_validation[in_validation]
    search_fit = fit_rows(search_x, search_y, search_x_validation, search_y_validation)
    del search_x  # binned into the Datasets: the raw rows are not read again (frees them before boosting)
    if fraction == 1.0:
        del train_matrix  # the same rows
    else:
        logger.info(
            "search on a customer sample: %d of %d training rows, %d of %d validation rows",
            len(search_y),
            len(y_train),
            len(search_y_validation),
            len(y_validation),
        )
    trials: list[dict[str, Any]] = []
    best: tuple[float, int, lgb.Booster] | None = None
    for number, (candidate, params) in enumerate(zip(candidates, candidate_params, strict=True)):
        booster = search_fit(params)
        p_validation = booster.predict(search_x_validation)
        pr_auc = float(average_precision_score(search_y_validation, p_validation))
        trials.append(
            {
                "trial": number,
                **candidate,
                "best_iteration": booster.current_iteration(),
                "train_rows": len(search_y),
                "validation_rows": len(search_y_validation),
                "validation_pr_auc": pr_auc,
                "validation_log_loss_uncalibrated": float(
                    log_loss(search_y_validation, p_validation, labels=[0.0, 1.0])
                ),
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
            best = (pr_auc, number, booster)
    assert best is not None
    _, best_number, booster = best
    params = candidate_params[best_number]
    if fraction < 1.0:
        del search_fit, search_x_validation  # the sample's Datasets and rows, before the full ones are built
        refit = fit_rows(train_matrix, y_train, validation_matrix, y_validation)
        del train_matrix  # binned into the Datasets: free it before boosting
        booster = refit(params)
        logger.info(
            "trial %d refitted on all %d training rows: %d trees",
            best_number + 1,
            len(y_train),
            booster.current_iteration(),
        )
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
    baselines, skipped, failed = fit_baselines(
        parts["train"],
        parts["validation"],
        rfm_features=columns.rfm,
        calibration=settings.calibration,
        seed=settings.seed,
    )
    for name, reason in skipped.items():
        get_logger().warning("baseline %s skipped: %s", name, reason)
    # A baseline that cannot be scored on a split (e.g. its BTYD fit failed there) is reported as failed there,
    # never scored as a constant; one that failed on validation was not fitted and has failed on both splits.
    failures = {
        name: {**failed, **{b: baseline.failure(parts[name]) for b, baseline in baselines.items()}}
        for name in SPLIT_NAMES
    }
    for name in SPLIT_NAMES:
        for baseline, reason in failures[name].items():
            if reason:
                get_logger().warning("baseline %s on the %s snapshot: %s", baseline, name, reason)
    labels = {name: _labels(parts[name]) for name in SPLIT_NAMES}
    raw_scores = {name: model.predict_raw(parts[name]) for name in SPLIT_NAMES}  # one booster pass per split
    probabilities = {
        name: {
            LIGHTGBM: model.calibrator_.transform(raw_scores[name]),
            LIGHTGBM_UNCALIBRATED: expit(raw_scores[name]),  # what predict_uncalibrated gives (binary objective)
            **{b: baseline.predict_proba(parts[name]) for b, baseline in baselines.items() if not failures[name][b]},
        }
        for name in SPLIT_NAMES
    }

    def evaluate(name: str, model_name: str) -> dict[str, Any]:
        return classification_metrics(labels[name], probabilities[name][model_name],
                                      values=customer_values(parts[name], settings=retention), settings=retention)

    metrics: dict[str, Any] = {
        name: {
            **{m: evaluate(name, m) for m in (LIGHTGBM, LIGHTGBM_UNCALIBRATED)},
            **{b: baseline_metrics(failures[name][b], partial(evaluate, name, b))
               for b in BASELINE_DESCRIPTIONS if b in failures[name]},
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
