"""Simple baselines fitted on the same out-of-time split as LightGBM, to judge whether it earns its keep.

- `recency_rule`: the longer since the last order, the likelier churn (score = `recency_days`).
- `logistic_rfm`: logistic regression on the numeric RFM features (median imputation and scaling
  fitted on the training rows only; on at most `fit_rows` of them (`train.logistic_fit_rows`), a seeded
  random sample: a handful of coefficients does not need millions of rows).
- `btyd`: BG/NBD's expected purchases over the horizon, negated (fewer expected purchases,
  likelier churn); `1 - btyd_p_alive` when expected purchases are absent.
- `pareto_nbd`: the same with Pareto/NBD (`pnbd_expected_purchases`, else `1 - pnbd_p_alive`).

Like LightGBM, every baseline is fitted on each rolling-origin fold's training rows and scores the fold's
validation snapshot; the calibrator turning its score into a probability is fitted on these
out-of-fold scores, and the baseline itself is then refitted on all training rows. A baseline whose
features are absent (or empty) is skipped with a reason.

A baseline that cannot be scored on a snapshot has *failed* there and is never scored as a constant
(`FittedBaseline.failure`): its feature is missing for every customer of a snapshot (the BTYD fit
failed on it: `pipeline.features.btyd` leaves its features NaN and logs why), or its score is the
same for every customer; one whose out-of-fold score ranks churners no higher than the others (more
days since the last order where the newest customers churn most) has failed on both splits, since its
calibration keeps that order and gives every customer one probability (`calibrated_flat`). Its metrics
for that split are then `{"status": "failed: <reason>"}` with no numbers (`baseline_metrics`); a baseline that failed on a fold's validation snapshot is not
fitted and is reported as failed on both splits (out of fold and test). A baseline scored normally has `"status": "ok"` plus its
metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.model import ProbabilityCalibrator, fit_calibrator, fit_rows_sample

LABEL = "churned"
# Used when the feature registry marks no numeric feature as family "rfm".
DEFAULT_RFM_FEATURES = (
    "recency_days",
    "frequency_all",
    "frequency_90d",
    "monetary_365d",
    "tenure_days",
    "overdue_ratio",
)


OK = "ok"


@dataclass
class FittedBaseline:
    """A baseline's scoring function (learned on all training rows) and its calibrator (out-of-fold scores)."""

    name: str
    description: str
    features: list[str]
    score: Callable[[pd.DataFrame], np.ndarray]
    calibrator: ProbabilityCalibrator
    calibration_cv_log_loss: dict[str, float]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.calibrator.transform(self.score(features))

    def failure(self, features: pd.DataFrame) -> str | None:
        """Why this baseline cannot be scored on `features` ("failed: <reason>"), None when it can."""
        return scoring_failure(self.name, self.features, self.score, features)


def scoring_failure(
    name: str, columns: Sequence[str], score: Callable[[pd.DataFrame], np.ndarray], features: pd.DataFrame
) -> str | None:
    """"failed: <reason>" when a feature of `columns` is missing for every customer of a snapshot of
    `features` (per `snapshot_date` when present), or the score is the same for every row; else None."""
    if features.empty:
        return None
    groups = features.groupby("snapshot_date", sort=True) if "snapshot_date" in features.columns else [(None, features)]
    for snapshot, rows in groups:
        for column in columns:
            if rows[column].isna().all():
                where = f" on snapshot {pd.Timestamp(snapshot).date()}" if snapshot is not None else ""
                return (f"failed: {column} is missing for every customer{where} "
                        f"(the {MODEL_NAMES.get(name, name)} fit failed; see the features log)")
    values = score(features)
    if len(values) > 1 and np.ptp(values) == 0:
        return f"failed: {name} gives every customer the same score"
    return None


def calibrated_flat(name: str, scores: np.ndarray, y: np.ndarray, probabilities: np.ndarray) -> str | None:
    """"failed: <reason>" when the calibration maps the out-of-fold `scores` (labels `y`) to one probability
    (`probabilities`, the calibrated scores): the score ranks churners no higher than the others there, and a
    calibration keeping its order (the isotonic map) is flat; else None."""
    if np.ptp(probabilities) > 0:
        return None
    if np.ptp(y) == 0:
        outcome = "churned" if y[0] else "stayed"
        return f"failed: every customer of the validation folds {outcome}, so {name} is calibrated to one probability"
    return (f"failed: {name} ranks churners no higher than the others on the validation folds (ROC-AUC "
            f"{roc_auc_score(y, scores):.2f} of its score), so its calibration, which keeps that order, gives every "
            "customer the same probability")


def baseline_metrics(failure: str | None, metrics: Callable[[], dict[str, float]]) -> dict[str, object]:
    """The metrics.json entry of a baseline on one split: {"status": "failed: ..."} alone, or
    {"status": "ok", **metrics()}."""
    return {"status": failure} if failure else {"status": OK, **metrics()}


def _numeric(features: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(features[column], errors="coerce").to_numpy("float64", na_value=np.nan)


def _usable(train: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns present in `train` with at least one non-missing value."""
    return [c for c in columns if c in train.columns and train[c].notna().any()]


def _column_score(column: str, *, sign: float, fill: float) -> Callable[[pd.DataFrame], np.ndarray]:
    def score(features: pd.DataFrame) -> np.ndarray:
        values = _numeric(features, column)
        return sign * np.where(np.isnan(values), fill, values)

    return score


def _recency_score(train: pd.DataFrame) -> tuple[list[str], Callable[[pd.DataFrame], np.ndarray]] | str:
    if not _usable(train, ["recency_days"]):
        return "feature recency_days is absent or empty"
    # A customer without a known last order is treated as the most lapsed one seen in training.
    fill = float(np.nanmax(_numeric(train, "recency_days")))
    return ["recency_days"], _column_score("recency_days", sign=1.0, fill=fill)


def _btyd_score(
    train: pd.DataFrame, *, prefix: str = "btyd"
) -> tuple[list[str], Callable[[pd.DataFrame], np.ndarray]] | str:
    """Score from `<prefix>_expected_purchases` (negated), else `1 - <prefix>_p_alive`."""
    expected, alive_column = f"{prefix}_expected_purchases", f"{prefix}_p_alive"
    if _usable(train, [expected]):
        return [expected], _column_score(expected, sign=-1.0, fill=0.0)
    if _usable(train, [alive_column]):
        alive = _column_score(alive_column, sign=1.0, fill=0.0)
        return [alive_column], lambda features: 1.0 - alive(features)
    return f"features {expected} and {alive_column} are absent or empty (features.btyd: false?)"


def _logistic_rfm_score(
    train: pd.DataFrame, rfm_features: Sequence[str], *, seed: int, fit_rows: int
) -> tuple[list[str], Callable[[pd.DataFrame], np.ndarray]] | str:
    columns = _usable(train, rfm_features)
    if not columns:
        return f"none of the RFM features {list(rfm_features)} is present"
    labels = train[LABEL].to_numpy("float64")
    positions = fit_rows_sample(labels, limit=fit_rows, seed=seed)
    y = labels[positions]
    pipeline: Pipeline = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)
    ).fit(_frame(train, columns)[positions], y)

    def score(features: pd.DataFrame) -> np.ndarray:
        return pipeline.decision_function(_frame(features, columns))

    return columns, score


def _frame(features: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return np.column_stack([_numeric(features, c) for c in columns])


BASELINE_DESCRIPTIONS = {
    "recency_rule": "score = recency_days, calibrated out of fold",
    "logistic_rfm": "logistic regression on RFM features (median imputation, scaling), calibrated out of fold",
    "btyd": "BG/NBD: score = -btyd_expected_purchases (or 1 - btyd_p_alive), calibrated out of fold",
    "pareto_nbd": "Pareto/NBD: score = -pnbd_expected_purchases (or 1 - pnbd_p_alive), calibrated out of fold",
}
MODEL_NAMES = {"btyd": "BG/NBD", "pareto_nbd": "Pareto/NBD"}


def baseline_name(key: str) -> str:
    """A baseline as the printed tables name it ('BG/NBD' for btyd; other keys as they are)."""
    return MODEL_NAMES.get(key, key)
Builder = Callable[[pd.DataFrame], "tuple[list[str], Callable[[pd.DataFrame], np.ndarray]] | str"]


@dataclass(frozen=True)
class BaselineFits:
    """What `fit_baselines` produced: fitted baselines, skipped and failed ones, out-of-fold probabilities."""

    fitted: dict[str, FittedBaseline]
    skipped: dict[str, str]
    failed: dict[str, str]
    out_of_fold: dict[str, np.ndarray]


def fit_baselines(
    train: pd.DataFrame,
    folds: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    rfm_features: Sequence[str],
    calibration: Literal["auto", "isotonic", "sigmoid"],
    seed: int,
    fit_rows: int,
) -> BaselineFits:
    """Fit every baseline on each fold, calibrate on the out-of-fold scores, refit on all of `train`.

    Frames hold the feature columns and `churned`; `folds` are (training rows, validation rows), and the
    out-of-fold rows are the folds' validation rows concatenated in that order. Skipped: features absent;
    failed ("failed: <reason>"): cannot be scored on a fold's validation snapshot (see `scoring_failure`).
    """
    builders: dict[str, Builder] = {
        "recency_rule": _recency_score,
        "logistic_rfm": lambda rows: _logistic_rfm_score(rows, rfm_features, seed=seed, fit_rows=fit_rows),
        "btyd": _btyd_score,
        "pareto_nbd": lambda rows: _btyd_score(rows, prefix="pnbd"),
    }
    fitted: dict[str, FittedBaseline] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    out_of_fold: dict[str, np.ndarray] = {}
    y_out_of_fold = np.concatenate([validation[LABEL].to_numpy("float64") for _, validation in folds])
    for name, build in builders.items():
        built = build(train)
        fold_built = [build(fold_train) for fold_train, _ in folds]
        reason = next((b for b in [built, *fold_built] if isinstance(b, str)), None)
        if reason is not None:
            skipped[name] = reason
            continue
        assert not isinstance(built, str)
        pairs = [(b, validation) for b, (_, validation) in zip(fold_built, folds, strict=True) if not isinstance(b, str)]
        failure = next((f for b, validation in pairs if (f := scoring_failure(name, b[0], b[1], validation))), None)
        if failure:
            failed[name] = failure
            continue
        scores = np.concatenate([b[1](validation) for b, validation in pairs])
        calibrator, losses = fit_calibrator(scores, y_out_of_fold, method=calibration, seed=seed)
        probabilities = calibrator.transform(scores)
        if flat := calibrated_flat(name, scores, y_out_of_fold, probabilities):
            failed[name] = flat
            continue
        columns, score = built
        fitted[name] = FittedBaseline(name, BASELINE_DESCRIPTIONS[name], columns, score, calibrator, losses)
        out_of_fold[name] = probabilities
    return BaselineFits(fitted, skipped, failed, out_of_fold)
