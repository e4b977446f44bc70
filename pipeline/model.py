"""The fitted churn model: everything learned from data, in one object that scoring loads.

`ChurnModel` holds the feature list, the category encodings, the LightGBM booster and the probability
calibrator. Scoring calls its methods and never re-implements a transformation:

- `check_features(frame)`: raises ScoreError naming missing feature columns;
- `predict_proba(frame)`: calibrated P(churn within the horizon), 1-D;
- `predict_uncalibrated(frame)`: the booster's own probability;
- `contributions(frame)`: LightGBM `pred_contrib` (log-odds scale) per feature, bias dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.errors import ScoreError

# Calibrated probabilities are kept inside [FLOOR, 1 - FLOOR]: an isotonic step at exactly 0 or 1
# would make one surprising customer cost an infinite log loss.
PROBABILITY_FLOOR = 1e-4
CalibrationMethod = Literal["isotonic", "sigmoid"]


def check_feature_columns(features: pd.DataFrame, feature_names: Sequence[str]) -> None:
    """Raise ScoreError naming every expected feature column that `features` lacks."""
    missing = [name for name in feature_names if name not in features.columns]
    if missing:
        raise ScoreError(
            f"the feature table lacks {len(missing)} column(s) the model was trained on: {', '.join(missing)}. "
            "Build features with the same pipeline version (and features config) as training, or retrain."
        )


@dataclass
class CategoryEncoder:
    """Maps each categorical column to integer codes learned on training rows; unseen or missing -> NaN."""

    categories_: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, features: pd.DataFrame, columns: Sequence[str]) -> CategoryEncoder:
        """Learn the sorted distinct non-missing values of each column in `columns`."""
        return cls({col: sorted(features[col].dropna().astype(str).unique().tolist()) for col in columns})

    def transform(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        """Column -> float codes (0..k-1; NaN for a missing or unseen category)."""
        encoded = {}
        for col, categories in self.categories_.items():
            values = features[col].astype("str").where(features[col].notna())
            codes = pd.Categorical(values, categories=categories).codes.astype("float64")
            codes[codes < 0] = np.nan
            encoded[col] = codes
        return encoded


def feature_matrix(features: pd.DataFrame, *, feature_names: Sequence[str], encoder: CategoryEncoder) -> np.ndarray:
    """Float matrix, columns in `feature_names` order: categories as codes, numeric columns as float64.

    Raises ScoreError naming missing columns, or a numeric column holding non-numbers.
    """
    check_feature_columns(features, feature_names)
    encoded = encoder.transform(features)
    # Filled column by column into one preallocated array: no second full-size copy (as column_stack
    # of a list of columns would hold) at millions of rows.
    matrix = np.empty((len(features), len(feature_names)), dtype="float64")
    for position, name in enumerate(feature_names):
        if name in encoded:
            matrix[:, position] = encoded[name]
            continue
        try:
            column = pd.to_numeric(features[name], errors="raise")
        except (TypeError, ValueError) as exc:
            raise ScoreError(f"feature column '{name}' must be numeric: {exc}") from None
        matrix[:, position] = column.to_numpy(dtype="float64", na_value=np.nan)
    return matrix


@dataclass
class ProbabilityCalibrator:
    """Monotone map from a model score to a probability: isotonic regression or Platt (sigmoid) scaling."""

    method: CalibrationMethod
    estimator_: IsotonicRegression | Pipeline | None = None

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        scores = np.asarray(scores, dtype="float64")
        if self.method == "isotonic":
            self.estimator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
        else:
            self.estimator_ = make_pipeline(StandardScaler(), LogisticRegression(C=1e4)).fit(scores[:, None], y)
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype="float64")
        if self.estimator_ is None:
            raise ValueError("the calibrator is not fitted")
        if self.method == "isotonic":
            probabilities = self.estimator_.predict(scores)
        else:
            probabilities = self.estimator_.predict_proba(scores[:, None])[:, 1]
        return np.clip(probabilities, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)


def cross_validated_log_loss(
    scores: np.ndarray, y: np.ndarray, *, method: CalibrationMethod, seed: int, folds: int = 5
) -> float:
    """Out-of-fold log loss of a calibrator fitted on the other folds of the same rows (stratified)."""
    scores = np.asarray(scores, dtype="float64")
    y = np.asarray(y, dtype="float64")
    folds = int(min(folds, y.sum(), len(y) - y.sum()))
    if folds < 2:
        return float("nan")
    out_of_fold = np.empty(len(y))
    for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(scores, y):
        calibrator = ProbabilityCalibrator(method).fit(scores[fit_rows], y[fit_rows])
        out_of_fold[held_rows] = calibrator.transform(scores[held_rows])
    return float(log_loss(y, out_of_fold, labels=[0.0, 1.0]))


def fit_calibrator(
    scores: np.ndarray, y: np.ndarray, *, method: Literal["auto", "isotonic", "sigmoid"], seed: int
) -> tuple[ProbabilityCalibrator, dict[str, float]]:
    """Fit a calibrator on (`scores`, `y`); "auto" picks the method with the lower 5-fold CV log loss.

    Choosing by cross-validation, not by in-sample loss, stops isotonic (the more flexible map) winning
    just because it memorises the calibration rows. Returns the calibrator and the CV losses.
    """
    candidates: list[CalibrationMethod] = ["isotonic", "sigmoid"] if method == "auto" else [method]
    losses = {m: cross_validated_log_loss(scores, y, method=m, seed=seed) for m in candidates}
    chosen = min(candidates, key=lambda m: (np.nan_to_num(losses[m], nan=np.inf), candidates.index(m)))
    return ProbabilityCalibrator(chosen).fit(scores, y), losses


class ChurnModel:
    """LightGBM churn model with its feature list, category encodings and calibrator.

    Parameters are the fitted parts; build one with `pipeline.train.fit_lightgbm`. Learned attributes
    end with an underscore, as in scikit-learn.
    """

    def __init__(
        self,
        *,
        feature_names: Sequence[str],
        categorical_features: Sequence[str],
        encoder: CategoryEncoder,
        booster: lgb.Booster,
        calibrator: ProbabilityCalibrator,
        horizon_days: int,
        params: dict[str, object] | None = None,
    ) -> None:
        unknown = set(categorical_features) - set(feature_names)
        if unknown:
            raise ValueError(f"categorical features {sorted(unknown)} are not in feature_names")
        self.feature_names_ = list(feature_names)
        self.categorical_features_ = list(categorical_features)
        self.encoder_ = encoder
        self.booster_ = booster
        self.calibrator_ = calibrator
        self.horizon_days_ = int(horizon_days)
        self.params_ = dict(params or {})

    @property
    def numeric_features_(self) -> list[str]:
        return [name for name in self.feature_names_ if name not in self.categorical_features_]

    def check_features(self, features: pd.DataFrame) -> None:
        """Raise ScoreError naming the feature columns `features` lacks."""
        check_feature_columns(features, self.feature_names_)

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The float matrix LightGBM sees (see `feature_matrix`)."""
        return feature_matrix(features, feature_names=self.feature_names_, encoder=self.encoder_)

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        """The booster's log-odds score, 1-D."""
        return self.booster_.predict(self.matrix(features), raw_score=True)

    def predict_uncalibrated(self, features: pd.DataFrame) -> np.ndarray:
        """The booster's probability before calibration, 1-D."""
        return self.booster_.predict(self.matrix(features))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn within `horizon_days_`, 1-D."""
        return self.calibrator_.transform(self.predict_raw(features))

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the log-odds score (TreeSHAP, `pred_contrib`); bias column dropped.

        Index: `features.index`; columns: `feature_names_`. Rows sum (with the bias) to `predict_raw`.
        """
        contrib = self.booster_.predict(self.matrix(features), pred_contrib=True)
        return pd.DataFrame(contrib[:, :-1], index=features.index, columns=self.feature_names_)

    def feature_importance(self, *, kind: Literal["gain", "split"] = "gain") -> pd.Series:
        """Total gain (or split count) per feature, sorted descending."""
        values = self.booster_.feature_importance(importance_type=kind)
        return pd.Series(values, index=self.feature_names_, name=f"importance_{kind}").sort_values(ascending=False)
