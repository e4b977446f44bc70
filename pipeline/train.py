"""Training on an out-of-time split: rolling-origin folds choose LightGBM, a refit on all labelled history.

`train_models(features, specs=, split=, cfg=, retention=)` is pure: it takes the snapshot table
(one row per customer and snapshot: `snapshot_date`, `customer_id`, feature columns, `churned`) and
returns a `TrainResult` holding the fitted `ChurnModel`, the baselines, the metrics and the
predictions behind them. The runner (`pipeline.run.train`) reads files and talks to MLflow.

How LightGBM is chosen and fitted (see `pipeline.split` for the snapshots):
- `cfg.search_trials` configurations drawn at random (seeded) from a grid sized to the data
  (`search_space`: a few thousand rows get small, strongly regularised trees), the first always the
  tier's default, plus (with a search, when the registry gives feature directions) the default's twin
  with those directions as monotone constraints, are fitted on each rolling-origin fold with early
  stopping on the fold's validation snapshot (average precision). The best mean validation PR-AUC
  wins; its number of rounds is the mean of its folds' best iterations.
- The final booster is that configuration, with those rounds, on every snapshot whose label window
  ends by the test snapshot (all the labelled history at the cut). `production_model` refits it once
  more on every labelled snapshot, the test one included: that is the model `churn train` registers.
- The calibrator (isotonic with a Platt tie-break, or Platt) is fitted on cross-fitted predictions of the
  final model's own training rows: the same configuration and rounds refitted on the other customers
  (`cfg.calibration_folds` folds by a seeded hash of the customer id, so a customer's snapshots stay
  together). Those models see nearly as much history as the final one, so their log-odds have its
  spread; the fold models of the search train on less (on a short export, one early snapshot) and a map
  fitted on their predictions over- or under-sharpens the final model. It is kept only when it lowers
  the log loss of those predictions; otherwise the booster's own probability is used and the metrics say
  so. A map so kept must also not raise the log loss of the rolling-origin folds' out-of-fold predictions of
  later snapshots (`out_of_time_check`): one learnt within the training snapshots that makes later snapshots
  worse does not carry over time, and the booster's own probability is kept instead, saying so.
  Either map is strictly increasing: calibration never changes the ranking.
Class imbalance via `scale_pos_weight = negatives / positives` on the rows fitted. Fixed threads,
`deterministic=True` and `force_row_wise=True` make the same seed give the same model. In each fold
the LightGBM Datasets are binned once and shared by every trial. On large folds the trials run on a
customer-level sample (about `cfg.search_sample_rows` training rows, chosen by a seeded hash of
the customer id); they are scored on every validation row, and the refit uses every training row.

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
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from pipeline.baselines import (
    BASELINE_DESCRIPTIONS,
    DEFAULT_RFM_FEATURES,
    FittedBaseline,
    baseline_metrics,
    baseline_name,
    fit_baselines,
)
from pipeline.config import TrainConfig
from pipeline.errors import TrainError
from pipeline.evaluate import (
    BOOTSTRAP_METRICS,
    RetentionSettings,
    paired_bootstrap,
    weighted_ranking_metrics,
    classification_metrics,
    customer_values,
    summarise_folds,
)
from pipeline.model import (
    CALIBRATION_MIN_GAIN,
    CategoryEncoder,
    ChurnModel,
    LinearScore,
    ProbabilityCalibrator,
    feature_matrix,
    fit_calibrator,
)
from pipeline.progress import get_logger
from pipeline.split import (
    LABEL_COLUMN,
    TimeSplit,
    fold_frames,
    labelled_snapshots,
    rows_of,
    snapshot_count_phrase,
    split_frame,
)

LIGHTGBM = "lightgbm"
LIGHTGBM_UNCALIBRATED = "lightgbm_uncalibrated"
LOGISTIC = "logistic"
BLEND = "blend"
# Blend weights of LightGBM's log-odds tried on the folds (1: LightGBM alone, 0: the logistic model alone).
BLEND_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
# The blend is a candidate only when it beats both of its parts by this much mean out-of-fold ROC-AUC.
BLEND_MIN_GAIN = 0.001
CHOICE_RULE = (
    "the candidate (LightGBM, logistic regression on every numeric feature, or their blend when it beats "
    "both by 0.001) with the best mean ROC-AUC over the rolling-origin folds' validation snapshots; ties "
    "go to LightGBM"
)
SPLIT_NAMES = ("test", "validation")
# Where a calibrator's log-odds come from (metrics "calibration"."fitted_on"): the final configuration refitted
# on the other customer folds of its own training rows, or (when those rows cannot be split so) the
# rolling-origin folds' validation rows.
CROSS_FITTED = "cross-fitted"
OUT_OF_FOLD = "out-of-fold"

# Below this many training rows LightGBM runs on one thread: thread synchronisation costs more than it
# saves on small data, and on a busy 2-core machine OpenMP barriers can make 2 threads 10x slower.
# The thread count is a fixed function of the data, so the same data and seed still give the same model.
SINGLE_THREAD_ROWS = 50_000

# Search grids by the size of the final fit (see `search_space`): per parameter, the values tried when the
# fit is small and when it is large, side by side; the first of each list is the tier's default (trial 0).
SMALL_DATA_ROWS = 20_000
TIERS = ("small", "large")
SEARCH_GRID: dict[str, tuple[list[Any], list[Any]]] = {
    "learning_rate": ([0.03, 0.05, 0.02], [0.05, 0.03, 0.1]),
    "num_leaves": ([7, 15, 4], [31, 15, 63]),
    "min_data_in_leaf": ([50, 100, 25, 200], [50, 20, 100, 200]),
    "feature_fraction": ([0.8, 0.6, 1.0], [0.9, 0.7, 1.0]),
    "bagging_fraction": ([0.8, 0.7, 1.0], [0.9, 0.7, 1.0]),
    "lambda_l2": ([10.0, 1.0, 30.0], [1.0, 0.0, 10.0]),
}
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    tier: {name: values[i] for name, values in SEARCH_GRID.items()} for i, tier in enumerate(TIERS)
}
CALIBRATION_NOTE = (
    "Validation = out-of-fold: each rolling-origin fold's model scored its later validation snapshot. "
    "These predictions chose the LightGBM configuration, its rounds and the candidate, so validation metrics "
    "are optimistic. The calibrators were fitted on cross-fitted predictions of the training rows (the final "
    "configuration refitted on the other customers), not on these: the fold models, trained on less "
    "history, may be less sharp than the model they calibrate; a calibrator that made these predictions worse "
    "was not kept. Only the test snapshot was never seen."
)


class FeatureSpecLike(Protocol):
    """What training needs from `pipeline.features.registry.FeatureSpec`."""

    name: str
    family: str
    kind: str
    direction: str


# The registry's direction of a feature as a LightGBM monotone constraint (+1: more of it, more churn risk).
MONOTONE_DIRECTIONS = {"up": 1, "down": -1}


@dataclass(frozen=True)
class FeatureColumns:
    """The features a model is trained on, by kind; `rfm` are the logistic baseline's inputs; `directions`
    the registry's known direction of numeric features (+1 more risk, -1 less; absent: none)."""

    numeric: list[str]
    categorical: list[str]
    rfm: list[str]
    directions: dict[str, int] = field(default_factory=dict)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def monotone_constraints(self) -> list[int]:
        """One LightGBM monotone constraint per column of `all` (0: free; categorical columns are free)."""
        return [self.directions.get(name, 0) if name in self.numeric else 0 for name in self.all]


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
    directions = {
        s.name: MONOTONE_DIRECTIONS[s.direction]
        for s in kept
        if s.kind != "categorical" and s.direction in MONOTONE_DIRECTIONS
    }
    rfm = rfm or [n for n in DEFAULT_RFM_FEATURES if n in numeric]
    return FeatureColumns(numeric, categorical, rfm, directions), dropped


def search_space(training_rows: int) -> tuple[str, dict[str, list[Any]]]:
    """(size tier, grid) for a final fit on `training_rows` rows: smaller data, fewer leaves, more regularisation.

    A few thousand rows support only small trees with large leaves and a strong L2 penalty; millions of
    rows support bigger trees. The first entry of each list is the tier's default (trial 0).
    """
    tier = "small" if training_rows < SMALL_DATA_ROWS else "large"
    return tier, SEARCH_SPACES[tier]


def search_candidates(
    *,
    trials: int,
    seed: int,
    max_depth: int,
    space: dict[str, list[Any]] | None = None,
    monotone: bool = False,
) -> list[dict[str, Any]]:
    """`trials` distinct LightGBM configurations from `space` (default: the large grid): the default first, then
    seeded draws; with `monotone` and more than one trial, also the default's monotone twin (`"monotone": True`:
    the registry's feature directions as monotone constraints, see `lightgbm_params`), last."""
    space = SEARCH_SPACES["large"] if space is None else space
    rng = np.random.default_rng(seed)
    default = {name: values[0] for name, values in space.items()}
    candidates = [default]
    total = int(np.prod([len(v) for v in space.values()]))
    while len(candidates) < min(trials, total):
        draw = {name: values[int(rng.integers(len(values)))] for name, values in space.items()}
        if draw not in candidates:
            candidates.append(draw)
    if monotone and trials > 1:
        # Few, smooth signals (purchase logs: recency, frequency, spend) can favour a model that only bends the
        # known way: less variance on small data, no reversed steps where the data are thin. The folds decide.
        candidates.append({**default, "monotone": True})
    if max_depth > 0:
        # A tree of depth d has at most 2**d leaves; larger num_leaves would only trigger warnings.
        candidates = [{**c, "num_leaves": min(c["num_leaves"], 2**max_depth)} for c in candidates]
    return candidates


def lightgbm_params(
    candidate: dict[str, Any],
    *,
    scale_pos_weight: float,
    cfg: TrainConfig,
    training_rows: int,
    monotone_constraints: Sequence[int] = (),
) -> dict[str, Any]:
    """Full LightGBM parameters for one candidate: fixed seed, threads and row-wise histograms.

    A candidate with `"monotone": True` gets `monotone_constraints` (one per feature column, see
    `FeatureColumns.monotone_constraints`) with LightGBM's "advanced" method.
    """
    candidate = dict(candidate)
    if candidate.pop("monotone", False):
        candidate.update(
            monotone_constraints=list(monotone_constraints), monotone_constraints_method="advanced"
        )
    return {
        "objective": "binary",
        "metric": ["average_precision", "binary_logloss"],
        "first_metric_only": True,
        "max_depth": cfg.max_depth,
        "bagging_freq": 1,
        "scale_pos_weight": scale_pos_weight,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1 if training_rows < SINGLE_THREAD_ROWS else cfg.num_threads,
        "feature_pre_filter": False,
        "verbosity": -1,
        **candidate,
    }


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL_COLUMN].to_numpy("float64")


def binned_dataset(
    matrix: np.ndarray,
    y: np.ndarray,
    *,
    params: dict[str, Any],
    columns: FeatureColumns,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """The rows binned with `params`, or on the bins of `reference` (validation rows on the training bins);
    no reference to the matrix is kept (`free_raw_data`)."""
    return lgb.Dataset(
        matrix,
        label=y,
        reference=reference,
        feature_name=columns.all,
        categorical_feature=columns.categorical,
        params=params,
        free_raw_data=True,
    ).construct()


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
    train_set = binned_dataset(train_matrix, y_train, params=params, columns=columns)
    validation_set = binned_dataset(
        validation_matrix, y_validation, params=params, columns=columns, reference=train_set
    )
    return train_set, validation_set


def boost(
    train_set: lgb.Dataset,
    validation_set: lgb.Dataset | None,
    *,
    params: dict[str, Any],
    cfg: TrainConfig,
) -> lgb.Booster:
    """One LightGBM fit on constructed Datasets; booster cut at its best iteration.

    With a validation set: early stopping on it (`cfg.early_stopping_rounds`, at most
    `cfg.num_boost_round` rounds). Without: exactly `cfg.num_boost_round` rounds.
    """
    if validation_set is None:
        return lgb.train(params, train_set, num_boost_round=cfg.num_boost_round)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[validation_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def fit_booster(
    train_matrix: np.ndarray,
    y_train: np.ndarray,
    validation_matrix: np.ndarray | None,
    y_validation: np.ndarray | None,
    *,
    params: dict[str, Any],
    columns: FeatureColumns,
    cfg: TrainConfig,
    customer_ids: pd.Series | None = None,
) -> lgb.Booster:
    """One LightGBM fit: early stopping on validation, or `cfg.num_boost_round` rounds without one.

    `customer_ids` (the customer of each training row) is for fits that partition rows by customer; unused here.
    """
    if validation_matrix is None or y_validation is None:
        train_set = binned_dataset(train_matrix, y_train, params=params, columns=columns)
        return boost(train_set, None, params=params, cfg=cfg)
    train_set, validation_set = lightgbm_datasets(
        train_matrix, y_train, validation_matrix, y_validation, params=params, columns=columns
    )
    return boost(train_set, validation_set, params=params, cfg=cfg)


class BoosterFit(Protocol):
    """Fits one LightGBM configuration: `fit_booster`'s signature (and its booster cut at the best round)."""

    def __call__(
        self,
        train_matrix: np.ndarray,
        y_train: np.ndarray,
        validation_matrix: np.ndarray | None,
        y_validation: np.ndarray | None,
        *,
        params: dict[str, Any],
        columns: FeatureColumns,
        cfg: TrainConfig,
        customer_ids: pd.Series | None = None,
    ) -> lgb.Booster: ...


def customer_sample_mask(customer_ids: pd.Series, *, fraction: float, seed: int) -> np.ndarray:
    """Rows of about `fraction` of the customers (all their rows), chosen by a seeded hash of the customer id.

    A customer is in or out whatever the other rows are, so the same customers are kept in every
    snapshot and in every frame (training and validation) for a given seed.
    """
    if fraction >= 1.0:
        return np.ones(len(customer_ids), dtype=bool)
    return customer_hashes(customer_ids, seed=seed) < np.uint64(fraction * 2.0**64)


def customer_hashes(customer_ids: pd.Series, *, seed: int) -> np.ndarray:
    """A seeded 64-bit hash per row of its customer id (uint64): the same customer, the same hash."""
    hash_key = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()  # 16 characters, as pandas needs
    return pd.util.hash_pandas_object(customer_ids.astype("str"), index=False, hash_key=hash_key).to_numpy()


def cross_fitted_log_odds(
    rows: pd.DataFrame, *, fit_and_score: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray], folds: int, seed: int
) -> np.ndarray | None:
    """Each row of `rows` scored by a model fitted on the other customers: `fit_and_score(fit_rows, held_rows)`
    returns log-odds for `held_rows`. Customers go to `folds` folds by a seeded hash of their id, so all of a
    customer's snapshots are held out together. None when `rows` cannot be split so: a fold without rows, or
    one whose fitting rows hold a single class.
    """
    fold = customer_hashes(rows["customer_id"], seed=seed) % np.uint64(folds)
    y = _labels(rows)
    if any((fold == k).sum() == 0 or np.unique(y[fold != k]).size < 2 for k in range(folds)):
        return None
    log_odds = np.empty(len(rows))
    for k in range(folds):  # one fit per fold
        held = fold == k
        log_odds[held] = fit_and_score(rows[~held], rows[held])
    return log_odds


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
    cfg: TrainConfig,
    dataset_params: dict[str, Any],
    customer_ids: pd.Series | None = None,
) -> TrialFit:
    """params -> booster on these rows. With `fit_booster` the Datasets are built once and shared by every call."""
    if fit is not fit_booster:
        return lambda params: fit(
            train_matrix,
            y_train,
            validation_matrix,
            y_validation,
            params=params,
            columns=columns,
            cfg=cfg,
            customer_ids=customer_ids,
        )
    train_set, validation_set = lightgbm_datasets(
        train_matrix, y_train, validation_matrix, y_validation, params=dataset_params, columns=columns
    )
    return lambda params: boost(train_set, validation_set, params=params, cfg=cfg)


@dataclass
class LightGBMFit:
    """What `fit_lightgbm` produced: the refitted model, the search record and the out-of-fold log-odds."""

    model: ChurnModel
    trials: list[dict[str, Any]]
    best_params: dict[str, Any]
    out_of_fold_raw: np.ndarray
    calibration_losses: dict[str, float]
    calibrated_on: str  # CROSS_FITTED (on `train`'s rows) or OUT_OF_FOLD (the folds' validation rows)
    calibration_raw: np.ndarray  # the log-odds the calibrator was fitted on, in the rows' order
    out_of_time_losses: dict[str, float] = field(default_factory=dict)  # `out_of_time_check`'s, when it ran


def _fold_trials(
    fold_number: int,
    fold_train: pd.DataFrame,
    fold_validation: pd.DataFrame,
    *,
    candidate_params: list[dict[str, Any]],
    columns: FeatureColumns,
    encoder: CategoryEncoder,
    cfg: TrainConfig,
    fit: BoosterFit,
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Every candidate fitted on one fold (early stopping on its validation snapshot).

    Returns (one record per candidate, the log-odds of each candidate on all the fold's validation rows).
    On a large fold the fits run on a customer sample (`search_sample_fraction`); they still score every
    validation row, which is out of sample for them either way.
    """
    logger = get_logger()
    train_matrix = feature_matrix(fold_train, feature_names=columns.all, encoder=encoder)
    validation_matrix = feature_matrix(fold_validation, feature_names=columns.all, encoder=encoder)
    y_train, y_validation = _labels(fold_train), _labels(fold_validation)
    fraction = search_sample_fraction(len(y_train), sample_rows=cfg.search_sample_rows, trials=len(candidate_params))
    if fraction < 1.0:
        in_train = customer_sample_mask(fold_train["customer_id"], fraction=fraction, seed=cfg.seed)
        in_validation = customer_sample_mask(fold_validation["customer_id"], fraction=fraction, seed=cfg.seed)
        logger.info(
            "fold %d: search on a customer sample: %d of %d training rows",
            fold_number + 1,
            int(in_train.sum()),
            len(y_train),
        )
    else:
        in_train = in_validation = slice(None)  # all rows, as views (no copy of the matrices)
    search_fit = trial_fit(
        fit,
        train_matrix[in_train],
        y_train[in_train],
        validation_matrix[in_validation],
        y_validation[in_validation],
        columns=columns,
        cfg=cfg,
        dataset_params=candidate_params[0],
        customer_ids=fold_train["customer_id"][in_train],
    )
    del train_matrix  # binned into the Datasets (or copied by the sample): not read again
    records, raw_scores = [], []
    for number, params in enumerate(candidate_params):
        booster = search_fit(params)
        raw = booster.predict(validation_matrix, raw_score=True)
        pr_auc = float(average_precision_score(y_validation, raw))  # a ranking metric: log-odds rank as probabilities
        records.append(
            {
                "trial": number,
                "fold": fold_number,
                "best_iteration": booster.current_iteration(),
                "train_rows": int(len(y_train) if fraction == 1.0 else in_train.sum()),
                "validation_rows": len(y_validation),
                "validation_pr_auc": pr_auc,
                "validation_log_loss_uncalibrated": float(log_loss(y_validation, expit(raw), labels=[0.0, 1.0])),
            }
        )
        raw_scores.append(raw)
    return records, raw_scores


def fit_lightgbm(
    train: pd.DataFrame,
    folds: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    columns: FeatureColumns,
    horizon_days: int,
    cfg: TrainConfig,
    fit: BoosterFit = fit_booster,
) -> LightGBMFit:
    """Choose LightGBM's configuration and rounds on `folds`, refit on all of `train`, calibrate out of fold.

    Every candidate (`search_candidates` over the grid for `train`'s size) is fitted on each fold with
    early stopping on its validation snapshot. The candidate with the best mean validation PR-AUC over
    the folds wins (ties: the earlier, default first); its rounds are the mean of its folds' best
    iterations. The final booster is that configuration with those rounds on every row of `train`.
    The calibrator is fitted on the winner's out-of-fold log-odds (the folds' validation rows, in fold
    order) and kept only when it lowers their log loss (`fit_calibrator(log_odds=True)`).
    """
    encoder = CategoryEncoder.fit(train, columns.categorical)
    y_all = _labels(train)
    scale_pos_weight = float((y_all == 0).sum() / y_all.sum())
    tier, space = search_space(len(y_all))
    constraints = columns.monotone_constraints
    candidates = search_candidates(
        trials=cfg.search_trials, seed=cfg.seed, max_depth=cfg.max_depth, space=space, monotone=any(constraints)
    )
    candidate_params = [
        lightgbm_params(
            candidate,
            scale_pos_weight=scale_pos_weight,
            cfg=cfg,
            training_rows=len(y_all),
            monotone_constraints=constraints,
        )
        for candidate in candidates
    ]
    fold_records: list[list[dict[str, Any]]] = []
    fold_raw: list[list[np.ndarray]] = []
    for number, (fold_train, fold_validation) in enumerate(folds):
        records, raw = _fold_trials(
            number,
            fold_train,
            fold_validation,
            candidate_params=candidate_params,
            columns=columns,
            encoder=encoder,
            cfg=cfg,
            fit=fit,
        )
        fold_records.append(records)
        fold_raw.append(raw)
    trials = []
    for number, candidate in enumerate(candidates):
        per_fold = [records[number] for records in fold_records]
        trials.append(
            {
                "trial": number,
                "size_tier": tier,
                **candidate,
                "rounds": max(1, int(round(np.mean([r["best_iteration"] for r in per_fold])))),
                "validation_pr_auc": float(np.mean([r["validation_pr_auc"] for r in per_fold])),
                "validation_log_loss_uncalibrated": float(
                    np.mean([r["validation_log_loss_uncalibrated"] for r in per_fold])
                ),
                "folds": per_fold,
            }
        )
        get_logger().info(
            "trial %d/%d: mean validation PR-AUC %.4f over %d folds (%d rounds)",
            number + 1,
            len(candidates),
            trials[-1]["validation_pr_auc"],
            len(per_fold),
            trials[-1]["rounds"],
        )
    # Strictly better only: on ties the earlier (simpler, default-first) candidate stays.
    best_number = max(range(len(trials)), key=lambda n: (trials[n]["validation_pr_auc"], -n))
    params = candidate_params[best_number]
    rounds = trials[best_number]["rounds"]
    out_of_fold_raw = np.concatenate([raw[best_number] for raw in fold_raw])
    cross_fitted = cross_fitted_trees(
        train, params=params, rounds=rounds, columns=columns, horizon_days=horizon_days, cfg=cfg, fit=fit
    )
    if cross_fitted is None:
        calibrated_on, calibration_raw = OUT_OF_FOLD, out_of_fold_raw
        y_calibration = np.concatenate([_labels(validation) for _, validation in folds])
    else:
        calibrated_on, calibration_raw, y_calibration = CROSS_FITTED, cross_fitted, y_all
    calibrator, calibration_losses = fit_calibrator(
        calibration_raw, y_calibration, method=cfg.calibration, seed=cfg.seed, log_odds=True
    )
    out_of_time: dict[str, float] = {}
    if calibrated_on == CROSS_FITTED:
        y_out_of_fold = np.concatenate([_labels(validation) for _, validation in folds])
        calibrator, out_of_time = out_of_time_check(calibrator, out_of_fold_raw, y_out_of_fold)
    model = refit_lightgbm(
        train,
        params=params,
        rounds=rounds,
        columns=columns,
        calibrator=calibrator,
        horizon_days=horizon_days,
        cfg=cfg,
        fit=fit,
    )
    get_logger().info(
        "trial %d refitted on all %d training rows (%d snapshots' worth): %d rounds; calibration: %s",
        best_number + 1,
        len(y_all),
        train["snapshot_date"].nunique(),
        rounds,
        calibrator.method,
    )
    return LightGBMFit(
        model=model,
        trials=trials,
        best_params={**params, "best_iteration": rounds, "size_tier": tier, "trial": best_number},
        out_of_fold_raw=out_of_fold_raw,
        calibration_losses=calibration_losses,
        calibrated_on=calibrated_on,
        calibration_raw=calibration_raw,
        out_of_time_losses=out_of_time,
    )


def out_of_time_check(
    calibrator: ProbabilityCalibrator, raw: np.ndarray, y: np.ndarray
) -> tuple[ProbabilityCalibrator, dict[str, float]]:
    """(`calibrator`, or the model's own probability "none" when `calibrator` raises the log loss of `raw`; the two
    log losses by method, {} for a "none" calibrator). `calibrator` was fitted on cross-fitted predictions of the
    training snapshots; `raw` are the rolling-origin folds' out-of-fold log-odds of later snapshots, labels `y`.
    A map that sharpens or shifts probabilities within the training snapshots but makes later ones worse does not
    carry over time (a shop whose churn rate moves with the season: Online Retail II's sigmoid took LightGBM's
    test log loss from 0.585 to 0.615)."""
    if calibrator.method == "none":
        return calibrator, {}
    losses = {method: float(log_loss(y, kept.transform(raw), labels=[0.0, 1.0]))
              for method, kept in (("none", ProbabilityCalibrator("none")), (calibrator.method, calibrator))}
    return (calibrator if losses[calibrator.method] <= losses["none"] else ProbabilityCalibrator("none")), losses


def cross_fit_affordable(rows: int, *, cfg: TrainConfig) -> bool:
    """Whether `rows` training rows are few enough to cross-fit the calibration (`cfg.calibration_cross_fit_rows`)."""
    return cfg.calibration_cross_fit_rows == 0 or rows <= cfg.calibration_cross_fit_rows


def cross_fitted_trees(
    rows: pd.DataFrame,
    *,
    params: dict[str, Any],
    rounds: int,
    columns: FeatureColumns,
    horizon_days: int,
    cfg: TrainConfig,
    fit: BoosterFit = fit_booster,
) -> np.ndarray | None:
    """LightGBM log-odds of `rows`, each from `params` boosted `rounds` rounds on the other customer folds
    (`cross_fitted_log_odds` with `cfg.calibration_folds`); None when the rows cannot be split, or when they
    are more than `cfg.calibration_cross_fit_rows` (`cross_fit_affordable`)."""

    def fit_and_score(fit_rows: pd.DataFrame, held_rows: pd.DataFrame) -> np.ndarray:
        none = ProbabilityCalibrator("none")
        return refit_lightgbm(
            fit_rows, params=params, rounds=rounds, columns=columns, calibrator=none,
            horizon_days=horizon_days, cfg=cfg, fit=fit,
        ).predict_raw(held_rows)

    return _calibration_cross_fit(rows, fit_and_score, cfg=cfg)


def cross_fitted_linear(rows: pd.DataFrame, *, feature_names: Sequence[str], cfg: TrainConfig) -> np.ndarray | None:
    """Logistic (`LinearScore`) log-odds of `rows`, each fitted on the other customer folds, as `cross_fitted_trees`."""

    def fit_and_score(fit_rows: pd.DataFrame, held_rows: pd.DataFrame) -> np.ndarray:
        return LinearScore.fit(
            fit_rows, _labels(fit_rows), feature_names=feature_names, seed=cfg.seed, fit_rows=cfg.logistic_fit_rows
        ).raw(held_rows)

    return _calibration_cross_fit(rows, fit_and_score, cfg=cfg)


def _calibration_cross_fit(
    rows: pd.DataFrame, fit_and_score: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray], *, cfg: TrainConfig
) -> np.ndarray | None:
    """`cross_fitted_log_odds` with the calibration's folds and seed; None above `cfg.calibration_cross_fit_rows`."""
    if not cross_fit_affordable(len(rows), cfg=cfg):
        return None
    return cross_fitted_log_odds(rows, fit_and_score=fit_and_score, folds=cfg.calibration_folds, seed=cfg.seed)


def refit_lightgbm(
    train: pd.DataFrame,
    *,
    params: dict[str, Any],
    rounds: int,
    columns: FeatureColumns,
    calibrator: ProbabilityCalibrator,
    horizon_days: int,
    cfg: TrainConfig,
    fit: BoosterFit = fit_booster,
) -> ChurnModel:
    """`params` boosted `rounds` rounds (no early stopping) on every row of `train`, with `calibrator`."""
    encoder = CategoryEncoder.fit(train, columns.categorical)
    y = _labels(train)
    params = {**params, "scale_pos_weight": float((y == 0).sum() / y.sum())}
    booster = fit(
        feature_matrix(train, feature_names=columns.all, encoder=encoder),
        y,
        None,
        None,
        params=params,
        columns=columns,
        cfg=cfg.model_copy(update={"num_boost_round": rounds}),
        customer_ids=train["customer_id"],
    )
    return ChurnModel(
        feature_names=columns.all,
        categorical_features=columns.categorical,
        encoder=encoder,
        booster=booster,
        calibrator=calibrator,
        horizon_days=horizon_days,
        params=params,
    )


@dataclass
class LogisticFit:
    """The logistic candidate: its score fitted on all training rows, and its out-of-fold log-odds."""

    score: LinearScore
    out_of_fold_raw: np.ndarray


def fit_logistic(
    train: pd.DataFrame,
    folds: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    columns: FeatureColumns,
    cfg: TrainConfig,
) -> LogisticFit:
    """Logistic regression on every numeric feature (`LinearScore`): fitted per fold (out-of-fold log-odds on
    the folds' validation rows, in fold order), then on all of `train`."""

    def fitted(rows: pd.DataFrame) -> LinearScore:
        return LinearScore.fit(
            rows, _labels(rows), feature_names=columns.numeric, seed=cfg.seed, fit_rows=cfg.logistic_fit_rows
        )

    out_of_fold = np.concatenate([fitted(fold_train).raw(validation) for fold_train, validation in folds])
    return LogisticFit(score=fitted(train), out_of_fold_raw=out_of_fold)


@dataclass(frozen=True)
class ModelChoice:
    """Which candidate `churn train` keeps, by mean out-of-fold ROC-AUC, and the blend weight tried."""

    chosen: str
    blend_weight: float
    weights: dict[str, float]
    fold_roc_auc: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "rule": CHOICE_RULE,
            "blend_weight": self.blend_weight,
            "candidates": list(self.weights),
            "out_of_fold_roc_auc": self.fold_roc_auc,
        }


def _mean_fold_roc_auc(y: np.ndarray, raw: np.ndarray, fold_ids: np.ndarray) -> float:
    return float(np.mean([roc_auc_score(y[fold_ids == k], raw[fold_ids == k]) for k in np.unique(fold_ids)]))


def choose_model(
    lightgbm_raw: np.ndarray, logistic_raw: np.ndarray, y: np.ndarray, fold_ids: np.ndarray
) -> ModelChoice:
    """Pick LightGBM, the logistic model or their blend on out-of-fold log-odds (see CHOICE_RULE).

    The blend is `w * LightGBM + (1 - w) * logistic` on the log-odds scale, `w` from BLEND_WEIGHTS by mean
    fold ROC-AUC; it is a candidate only when it beats both parts by at least BLEND_MIN_GAIN.
    """
    scores = {w: _mean_fold_roc_auc(y, w * lightgbm_raw + (1.0 - w) * logistic_raw, fold_ids) for w in BLEND_WEIGHTS}
    fold_roc_auc = {LIGHTGBM: scores[1.0], LOGISTIC: scores[0.0]}
    weights = {LIGHTGBM: 1.0, LOGISTIC: 0.0}
    best_weight = max(BLEND_WEIGHTS[1:-1], key=lambda w: (scores[w], w))
    if scores[best_weight] >= max(scores[0.0], scores[1.0]) + BLEND_MIN_GAIN:
        fold_roc_auc[BLEND] = scores[best_weight]
        weights[BLEND] = best_weight
    # Ties go to the earlier candidate: LightGBM, then the logistic model, then the blend.
    chosen = max(weights, key=lambda name: (fold_roc_auc[name], -list(weights).index(name)))
    return ModelChoice(chosen, weights.get(BLEND, weights[chosen]), weights, fold_roc_auc)


def candidate_model(
    lightgbm_model: ChurnModel, linear: LinearScore, *, weight: float, calibrator: ProbabilityCalibrator
) -> ChurnModel:
    """`lightgbm_model`'s booster and encoder blended with `linear` at `weight`, with `calibrator`."""
    return ChurnModel(
        feature_names=lightgbm_model.feature_names_,
        categorical_features=lightgbm_model.categorical_features_,
        encoder=lightgbm_model.encoder_,
        booster=lightgbm_model.booster_,
        calibrator=calibrator,
        horizon_days=lightgbm_model.horizon_days_,
        params=lightgbm_model.params_,
        linear=linear if weight < 1.0 else None,
        blend_weight=weight,
    )


def comparison_to_baselines(
    y: np.ndarray,
    probabilities: dict[str, np.ndarray],
    *,
    candidates: Sequence[str],
    baselines: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Each candidate's ROC-AUC and PR-AUC difference to the best baseline (per metric) on these rows,
    with a paired bootstrap 95% interval, and a plain statement for LightGBM."""
    if not baselines:
        return {"best_baseline": None, "candidates": {}, "statement": "no baseline could be fitted: no comparison"}
    full = {name: weighted_ranking_metrics(y, probabilities[name], np.ones((1, len(y)))) for name in baselines}
    best = {
        metric: max(baselines, key=lambda b: (full[b][metric][0], -list(baselines).index(b)))
        for metric in BOOTSTRAP_METRICS
    }
    # Only the candidates and the references are resampled: the other baselines enter no difference.
    compared_models = {name: probabilities[name] for name in dict.fromkeys([*candidates, *best.values()])}
    differences = paired_bootstrap(y, compared_models, reference=best, resamples=resamples, seed=seed)
    compared = {name: differences[name] for name in candidates}
    return {
        "best_baseline": best,
        "resamples": resamples,
        "candidates": compared,
        "statement": lead_statement(LIGHTGBM, compared[LIGHTGBM]["roc_auc"], metric="ROC-AUC"),
    }


CANDIDATE_NAMES = {LIGHTGBM: "LightGBM", LOGISTIC: "the logistic model", BLEND: "the blend"}


def lead_statement(name: str, difference: dict[str, float], *, metric: str) -> str:
    """A plain sentence on whether candidate `name` beats the reference, from a `paired_bootstrap` entry."""
    name = CANDIDATE_NAMES.get(name, name)
    reference, value = baseline_name(difference["reference"]), difference["difference"]
    interval = f"95% interval {difference['low']:+.4f} to {difference['high']:+.4f}"
    if value <= 0:
        return f"{name} does not beat the best baseline ({reference}): {metric} {value:+.4f} ({interval})"
    if difference["low"] <= 0:
        return (
            f"{name} leads the best baseline ({reference}) by {metric} {value:+.4f}, but the {interval} "
            "includes 0: the lead may be noise"
        )
    return f"{name} beats the best baseline ({reference}) by {metric} {value:+.4f} ({interval})"


def train_models(
    features: pd.DataFrame,
    *,
    specs: Sequence[FeatureSpecLike],
    split: TimeSplit,
    cfg: TrainConfig,
    retention: RetentionSettings,
    fit: BoosterFit | None = None,
) -> TrainResult:
    """Fit LightGBM and the baselines on `split` of `features` and evaluate them out of fold and on test.

    `features`: the snapshot table (`snapshot_date`, `customer_id`, feature columns, `churned`).
    Metrics (see pipeline.evaluate) per split and model: "lightgbm" (as saved: calibrated, or its own
    probability when calibration did not help), "lightgbm_uncalibrated", and each baseline that could be
    fitted. "validation" holds the out-of-fold predictions (every fold's validation snapshot). `fit` fits
    each LightGBM configuration (default `fit_booster`); train.engine=dask needs one that runs on a cluster.
    """
    if fit is None and cfg.engine != "local":
        raise TrainError(
            f"train.engine={cfg.engine!r} needs a cluster: run `churn train` (it opens one), or call "
            "pipeline.dask_engine.train_models_dask; or use train.engine=local"
        )
    parts = split_frame(features, split)
    folds = fold_frames(features, split)
    columns, dropped = select_feature_columns(parts["train"], specs)
    lightgbm = fit_lightgbm(
        parts["train"],
        folds,
        columns=columns,
        horizon_days=split.horizon_days,
        cfg=cfg,
        fit=fit or fit_booster,
    )
    model = lightgbm.model
    fits = fit_baselines(
        parts["train"],
        folds,
        rfm_features=columns.rfm,
        calibration=cfg.calibration,
        seed=cfg.seed,
        fit_rows=cfg.logistic_fit_rows,
    )
    baselines, skipped = fits.fitted, fits.skipped
    for name, reason in skipped.items():
        get_logger().warning("baseline %s skipped: %s", name, reason)
    out_of_fold = pd.concat([validation for _, validation in folds])
    frames = {"test": parts["test"], "validation": out_of_fold}
    # A baseline that cannot be scored on a split (e.g. its BTYD fit failed there) is reported as failed there,
    # never scored as a constant; one that failed on a fold was not fitted and has failed on both splits.
    failures = {
        "test": {**fits.failed, **{b: baseline.failure(parts["test"]) for b, baseline in baselines.items()}},
        "validation": {**fits.failed, **{b: None for b in baselines}},
    }
    for name in SPLIT_NAMES:
        for baseline, reason in failures[name].items():
            if reason:
                get_logger().warning("baseline %s on the %s snapshot(s): %s", baseline, name, reason)
    labels = {name: _labels(frames[name]) for name in SPLIT_NAMES}
    raw_test = model.predict_raw(parts["test"])  # one booster pass
    probabilities = {
        "test": {
            LIGHTGBM: model.calibrator_.transform(raw_test),
            LIGHTGBM_UNCALIBRATED: expit(raw_test),  # what predict_uncalibrated gives (binary objective)
            **{b: baseline.predict_proba(parts["test"]) for b, baseline in baselines.items() if not failures["test"][b]},
        },
        "validation": {
            LIGHTGBM: model.calibrator_.transform(lightgbm.out_of_fold_raw),
            LIGHTGBM_UNCALIBRATED: expit(lightgbm.out_of_fold_raw),
            **fits.out_of_fold,
        },
    }

    def evaluate(name: str, model_name: str) -> dict[str, Any]:
        return classification_metrics(
            labels[name],
            probabilities[name][model_name],
            values=customer_values(frames[name], retention=retention),
            retention=retention,
        )

    metrics: dict[str, Any] = {
        name: {
            **{m: evaluate(name, m) for m in (LIGHTGBM, LIGHTGBM_UNCALIBRATED)},
            **{
                b: baseline_metrics(failures[name][b], partial(evaluate, name, b))
                for b in BASELINE_DESCRIPTIONS
                if b in failures[name]
            },
        }
        for name in SPLIT_NAMES
    }
    # Candidates: LightGBM, the logistic model on every numeric feature, and their blend when it helps on the folds.
    logistic = fit_logistic(parts["train"], folds, columns=columns, cfg=cfg)
    fold_ids = np.concatenate([np.full(len(validation), k) for k, (_, validation) in enumerate(folds)])
    choice = choose_model(lightgbm.out_of_fold_raw, logistic.out_of_fold_raw, labels["validation"], fold_ids)
    raw = {
        "test": (raw_test, logistic.score.raw(parts["test"])),
        "validation": (lightgbm.out_of_fold_raw, logistic.out_of_fold_raw),
    }
    candidates: dict[str, ChurnModel] = {LIGHTGBM: model}
    calibration_trees, calibration_linear, y_calibration, cross_fitted = candidate_calibration_rows(
        parts["train"], lightgbm, logistic, labels["validation"], cfg=cfg
    )
    for name, weight in choice.weights.items():
        if name == LIGHTGBM:
            continue
        blended = {part: weight * trees + (1.0 - weight) * linear for part, (trees, linear) in raw.items()}
        calibrator, _ = fit_calibrator(
            weight * calibration_trees + (1.0 - weight) * calibration_linear, y_calibration,
            method=cfg.calibration, seed=cfg.seed, log_odds=True,
        )
        if cross_fitted:
            calibrator, _ = out_of_time_check(calibrator, blended["validation"], labels["validation"])
        candidates[name] = candidate_model(model, logistic.score, weight=weight, calibrator=calibrator)
        for part in SPLIT_NAMES:
            after = LIGHTGBM_UNCALIBRATED if name == LOGISTIC else LOGISTIC
            probabilities[part] = _insert_after(probabilities[part], after, name, calibrator.transform(blended[part]))
            metrics[part] = _insert_after(metrics[part], after, name, evaluate(part, name))
    chosen = candidates[choice.chosen]
    comparison = comparison_to_baselines(
        labels["test"],
        probabilities["test"],
        candidates=list(choice.weights),
        baselines=[b for b in BASELINE_DESCRIPTIONS if b in probabilities["test"]],
        resamples=cfg.bootstrap_resamples,
        seed=cfg.seed,
    )
    metrics["model_choice"] = {**choice.as_dict(), "statement": choice_statement(choice, comparison)}
    metrics["comparison"] = comparison
    get_logger().info(choice_summary(metrics))
    kept = model.calibrator_.method
    metrics["calibration"] = {
        "fitted_on": lightgbm.calibrated_on,
        "lightgbm_method": kept,
        "lightgbm_out_of_fold_log_loss": lightgbm.calibration_losses,
        "lightgbm_out_of_time_log_loss": lightgbm.out_of_time_losses,
        "lightgbm_calibrated": kept != "none",
        "lightgbm_statement": calibration_statement(kept, lightgbm.calibration_losses, lightgbm.calibrated_on,
                                                    out_of_time=lightgbm.out_of_time_losses),
        "candidate_methods": {name: candidate.calibrator_.method for name, candidate in candidates.items()},
        "baseline_methods": {b: baseline.calibrator.method for b, baseline in baselines.items()},
        "note": CALIBRATION_NOTE,
    }
    metrics["split"] = {
        **split.as_dict(),
        "rows": {"train": int(len(parts["train"])), "validation": int(len(out_of_fold)), "test": int(len(parts["test"]))},
    }
    metrics["skipped_baselines"] = skipped
    return TrainResult(
        model=chosen,
        split=split,
        columns=columns,
        dropped_features=dropped,
        baselines=baselines,
        skipped_baselines=skipped,
        trials=lightgbm.trials,
        best_params=lightgbm.best_params,
        metrics=metrics,
        labels=labels,
        probabilities=probabilities,
        test_features=parts["test"],
    )


def _insert_after(mapping: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    """`mapping` with `key: value` placed right after `after` (at the end when `after` is absent)."""
    items = list(mapping.items())
    position = next((i + 1 for i, (k, _) in enumerate(items) if k == after), len(items))
    return dict([*items[:position], (key, value), *items[position:]])


def choice_statement(choice: ModelChoice, comparison: dict[str, Any]) -> str:
    """One sentence: the candidate kept, why, and how it compares with the best baseline on test."""
    folds = ", ".join(f"{name} {value:.4f}" for name, value in choice.fold_roc_auc.items())
    blend = f" (blend weight {choice.blend_weight:.1f} on LightGBM)" if choice.chosen == BLEND else ""
    text = f"model kept: {choice.chosen}{blend}, best mean out-of-fold ROC-AUC ({folds})"
    if comparison.get("candidates"):
        lead = comparison["candidates"][choice.chosen]["roc_auc"]
        text += "; on test " + lead_statement(choice.chosen, lead, metric="ROC-AUC")
    return text


def choice_summary(metrics: dict[str, Any]) -> str:
    """The model choice's sentence, then LightGBM's comparison only when another candidate was kept (the
    choice sentence already compares the kept one)."""
    choice, comparison = metrics["model_choice"], metrics["comparison"]
    lightgbm_too = [] if choice["chosen"] == LIGHTGBM else [comparison["statement"]]
    return "; ".join([choice["statement"], *lightgbm_too])


def calibration_statement(
    method: str, losses: dict[str, float], fitted_on: str = CROSS_FITTED, *, out_of_time: dict[str, float] | None = None
) -> str:
    """One sentence: which probability map LightGBM keeps, and the log losses behind it (`fitted_on`:
    CROSS_FITTED or OUT_OF_FOLD predictions; `out_of_time`: `out_of_time_check`'s log losses, when it ran)."""
    others = ", ".join(f"{m} {loss:.4f}" for m, loss in losses.items() if m != "none")
    tried = next((m for m in (out_of_time or {}) if m != "none"), None)
    if method == "none" and tried is not None:
        return (
            f"LightGBM kept uncalibrated: a {tried} map lowered its {fitted_on} log loss from {losses['none']:.4f} to "
            f"{losses[tried]:.4f}, but raised the rolling-origin folds' out-of-fold log loss of later snapshots from "
            f"{out_of_time['none']:.4f} to {out_of_time[tried]:.4f}: it does not carry over time"
        )
    if method == "none":
        return (
            f"LightGBM kept uncalibrated: its own probabilities' {fitted_on} log loss {losses['none']:.4f} "
            f"is not lowered by {CALIBRATION_MIN_GAIN} or more by a calibrator ({others})"
        )
    later = (f"; on the rolling-origin folds' later snapshots {out_of_time[method]:.4f} against "
             f"{out_of_time['none']:.4f}" if tried is not None else "")
    return (
        f"LightGBM calibrated ({method}): {fitted_on} log loss {losses[method]:.4f} "
        f"against {losses['none']:.4f} uncalibrated (cross-validated: {others}){later}"
    )


def candidate_calibration_rows(
    train: pd.DataFrame, lightgbm: LightGBMFit, logistic: LogisticFit, y_out_of_fold: np.ndarray, *, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(LightGBM log-odds, logistic log-odds, labels, whether cross-fitted) that the logistic and blend candidates'
    calibrators are fitted on: cross-fitted on `train` when LightGBM's were, else the folds' out-of-fold ones
    (`y_out_of_fold`)."""
    if lightgbm.calibrated_on == CROSS_FITTED:
        linear = cross_fitted_linear(train, feature_names=logistic.score.feature_names, cfg=cfg)
        if linear is not None:  # the same customer folds as LightGBM's, so always split
            return lightgbm.calibration_raw, linear, _labels(train), True
    return lightgbm.out_of_fold_raw, logistic.out_of_fold_raw, y_out_of_fold, False


def production_model(
    features: pd.DataFrame, result: TrainResult, *, cfg: TrainConfig, fit: BoosterFit | None = None
) -> tuple[ChurnModel, list[str]]:
    """The model `churn train` registers: `result`'s chosen candidate refitted on every labelled snapshot.

    Every snapshot whose label window has closed (the test snapshot and all before it) trains it, with
    the LightGBM configuration and rounds the folds chose, the logistic part refitted too when the
    candidate has one (same blend weight), and its calibrator fitted again on cross-fitted predictions of
    these rows (`result`'s calibrator when they cannot be split; none when `result`'s had none); the test metrics of `result` estimate
    its quality. Returns (model, ISO dates of its training snapshots).
    """
    dates = labelled_snapshots(features)
    rows = rows_of(features, dates, part="production training")
    params = {k: v for k, v in result.best_params.items() if k not in ("best_iteration", "size_tier", "trial")}
    rounds = int(result.best_params["best_iteration"])
    chosen, fit = result.model, fit or fit_booster
    horizon_days = result.split.horizon_days
    weight = chosen.blend_weight_ if chosen.linear_ is not None else 1.0
    calibrator = chosen.calibrator_
    trees_log_odds = cross_fitted_trees(
        rows, params=params, rounds=rounds, columns=result.columns, horizon_days=horizon_days, cfg=cfg, fit=fit
    )
    linear_log_odds = (
        cross_fitted_linear(rows, feature_names=chosen.linear_.feature_names, cfg=cfg)
        if chosen.linear_ is not None
        else np.zeros(len(rows))
    )
    # A candidate kept uncalibrated (nothing helped, or the map did not carry over time) stays so: its test
    # metrics are those of its own probabilities.
    if calibrator.method != "none" and trees_log_odds is not None and linear_log_odds is not None:
        calibrator, _ = fit_calibrator(
            weight * trees_log_odds + (1.0 - weight) * linear_log_odds, _labels(rows), method=cfg.calibration,
            seed=cfg.seed, log_odds=True,
        )
    trees = refit_lightgbm(
        rows, params=params, rounds=rounds, columns=result.columns, calibrator=calibrator,
        horizon_days=horizon_days, cfg=cfg, fit=fit,
    )
    if chosen.linear_ is None:
        return trees, [d.date().isoformat() for d in dates]
    linear = LinearScore.fit(
        rows,
        _labels(rows),
        feature_names=chosen.linear_.feature_names,
        seed=cfg.seed,
        fit_rows=cfg.logistic_fit_rows,
    )
    model = candidate_model(trees, linear, weight=weight, calibrator=calibrator)
    return model, [d.date().isoformat() for d in dates]


KEPT = "kept"


def backtest_summary(results: Sequence[TrainResult], *, shortfall: str | None = None) -> dict[str, Any]:
    """Per fold the split, the candidate kept and the test metrics; per model and metric the mean and spread
    over folds ("kept": whichever candidate each fold kept, i.e. what `churn train` would have registered);
    and the test ROC-AUC lead of LightGBM and of the kept model over each fold's best baseline, per fold and
    on average, with a plain statement; `shortfall` (`split.backtest_shortfall`: fewer folds than asked, or None)."""
    kept = [r.metrics["model_choice"]["chosen"] for r in results]
    tests = [{"test": {**r.metrics["test"], KEPT: r.metrics["test"][name]}} for r, name in zip(results, kept)]
    leads: dict[str, list[float]] = {LIGHTGBM: [], KEPT: []}
    for r, name in zip(results, kept):
        candidates = r.metrics["comparison"]["candidates"]
        if candidates:
            leads[LIGHTGBM].append(candidates[LIGHTGBM]["roc_auc"]["difference"])
            leads[KEPT].append(candidates[name]["roc_auc"]["difference"])
    lead = {
        name: {"per_fold": values, "mean": float(np.mean(values))} for name, values in leads.items() if values
    }
    return {
        "folds": [
            {"split": r.split.as_dict(), "kept": name, "test": r.metrics["test"]} for r, name in zip(results, kept)
        ],
        "summary": summarise_folds(tests),
        "lead_over_best_baseline_roc_auc": lead,
        "statement": backtest_statement(lead, kept),
        "shortfall": shortfall,
    }


def backtest_statement(lead: dict[str, dict[str, Any]], kept: Sequence[str]) -> str:
    """One sentence: LightGBM's and the kept model's test ROC-AUC lead over the best baseline per backtest fold."""
    if not lead:
        return f"backtest over {snapshot_count_phrase(len(kept))}: no baseline could be fitted, no comparison"

    def folds(name: str) -> str:
        values = ", ".join(f"{v:+.4f}" for v in lead[name]["per_fold"])
        return f"{values} (mean {lead[name]['mean']:+.4f})"

    return (
        f"backtest over {snapshot_count_phrase(len(kept))}: ROC-AUC minus the best baseline's, "
        f"LightGBM {folds(LIGHTGBM)}; the model kept ({', '.join(kept)}) {folds(KEPT)}"
    )
