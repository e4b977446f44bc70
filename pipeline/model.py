"""The fitted churn model: everything learned from data, in one object that scoring loads.

`ChurnModel` holds the feature list, the category encodings, the LightGBM booster, optionally a linear
score (`LinearScore`: logistic regression coefficients, scaler, imputation) and the weight that blends
the two log-odds scores (1: LightGBM alone, 0: the logistic model alone), and the probability
calibrator. Scoring calls its methods and never re-implements a transformation:

- `check_features(frame)`: raises ScoreError naming missing feature columns, or columns of another kind;
- `predict_proba(frame)`: calibrated P(churn within the horizon), 1-D;
- `predict_uncalibrated(frame)`: the model's own probability (logistic function of its log-odds);
- `contributions(frame)`: per-feature terms of the log-odds score: LightGBM `pred_contrib` and the
  linear terms, weighted as blended; bias dropped.

Serialisation, with no pickle (nothing loaded can run code; a forged file can at worst give wrong numbers):

- every fitted part turns itself into JSON-safe values (dicts, lists, strings, finite numbers) with
  `to_dict()` and is rebuilt by the class method `from_dict(data)`: `CategoryEncoder`,
  `ProbabilityCalibrator` (isotonic thresholds, or the Platt scaler and logistic coefficients);
- the LightGBM booster is kept in LightGBM's own text format (`Booster.model_to_string`, read back
  with `lgb.Booster(model_str=...)`), in its own file;
- `ChurnModel.to_files()` gives `{file name: text}` (`model.json`: kind, feature list, encoder,
  calibrator, horizon, parameters, linear score, blend weight; `booster.txt`), and `ChurnModel.from_files(files)` rebuilds the
  model. `pipeline.bundle` writes, checksums and optionally signs whatever `to_files` returns.

To add a part (a logistic model's coefficients and scaler, a blend's weights): give it
`to_dict`/`from_dict` over plain numbers and lists (numpy arrays via `.tolist()`), store it under a
new key of the dict `ChurnModel.to_dict` returns and read it back in `ChurnModel.from_dict`
(raising ValueError on anything malformed); a further booster goes into its own `.txt` file in
`to_files`. Bump `MODEL_DOCUMENT_VERSION` when an older reader could misread the new document.
Never store an object that needs pickle, `eval` or an import by name to load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
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
MODEL_DOCUMENT_FILE = "model.json"
BOOSTER_FILE = "booster.txt"
MODEL_KIND = "lightgbm"
# 2: a linear score and a blend weight (a version-1 reader would ignore them and score LightGBM alone).
# 3: an isotonic calibrator with a Platt tie-break (a version-2 reader would drop it and tie scores again).
# 4: the linear score's training range per feature (a version-3 reader would let it extrapolate again).
# 5: a sigmoid calibrator's score range (a version-4 reader would let it extrapolate again).
MODEL_DOCUMENT_VERSION = 5
READABLE_DOCUMENT_VERSIONS = (1, 2, 3, 4, 5)


def _floats(values: Any, *, name: str) -> np.ndarray:
    """A 1-D float array of finite numbers read from a JSON list; ValueError naming `name` otherwise."""
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{name} must be a list of numbers")
    array = np.asarray(values, dtype="float64")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers")
    return array


def _strings(values: Any, *, name: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a list of strings")
    return list(values)


def _json_value(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers; ValueError for anything JSON cannot hold exactly."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot store the non-finite number {value} as JSON")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    raise ValueError(f"cannot store a {type(value).__name__} as JSON")
# "none": the model's own probability (logistic of its log-odds score), kept when no calibrator lowered
# the out-of-fold log loss.
CalibratorKind = Literal["isotonic", "sigmoid", "none"]
# The isotonic map is a step function: customers of one step would tie and lose the model's ranking (on
# CDNOW's test snapshot ROC-AUC 0.7452 -> 0.7447). So an isotonic calibrator gives
# (1 - TIE_BREAK_WEIGHT) * isotonic + TIE_BREAK_WEIGHT * Platt: strictly increasing in the score (the Platt
# slope is positive), so the calibrated probabilities rank customers exactly as the score does, and each
# probability moves by less than TIE_BREAK_WEIGHT. The cross-validated log loss that chooses the method
# is the mixture's.
TIE_BREAK_WEIGHT = 0.01
# A calibrator knows nothing of scores beyond those it was fitted on. A sigmoid extrapolated: a baseline whose score
# barely varied where it was calibrated (Pareto/NBD's expected purchases on a groceries export, spread 0.0025) met
# test scores 100 spreads away and said 0.0001 or 0.99 (test log loss 1.37, a constant's 0.69). So beyond the scores
# it saw, a sigmoid's log-odds go on from its edge at TIE_BREAK_WEIGHT of its slope: nearly its edge probability,
# still strictly increasing (the ranking is the score's). Isotonic regression holds its edge steps beyond them, and an
# edge step rested on as few as 5 of 21,256 rows (a churn rate of 0: out-of-fold log loss 2.45 for the scores below
# it): its edge steps now hold at least EDGE_ROWS rows (a tenth of them, on fewer than 10 * EDGE_ROWS rows).
EDGE_ROWS = 100
# A calibrator must lower the log loss by at least this much to be kept: on a few thousand rows, a Platt fit
# to already calibrated log-odds lowers the cross-validated loss by up to ~0.0004 by chance.
CALIBRATION_MIN_GAIN = 0.001


def check_feature_columns(features: pd.DataFrame, feature_names: Sequence[str]) -> None:
    """Raise ScoreError naming every expected feature column that `features` lacks."""
    missing = [name for name in feature_names if name not in features.columns]
    if missing:
        raise ScoreError(
            f"the feature table lacks {len(missing)} column(s) the model was trained on: {', '.join(missing)}. "
            "Build features with the same pipeline version (and features config) as training, or retrain."
        )


def check_feature_kinds(features: pd.DataFrame, feature_names: Sequence[str], categorical: Sequence[str]) -> None:
    """Raise ScoreError naming the first feature of `feature_names` that `features` holds as numbers while the model
    learned it as a category (`categorical`), or as text while it learned numbers: a customer attribute whose kind
    (sources.customers.attributes) changed since training would be read as unseen categories, or its words as
    numbers. Columns without a value tell nothing and pass."""
    for name in feature_names:
        values = features[name]
        held_as_numbers = pd.api.types.is_numeric_dtype(values.dtype)
        if (name in categorical) == held_as_numbers and values.notna().any():
            learned, held = ("a category", "numbers") if name in categorical else ("a number", "text")
            raise ScoreError(
                f"the model learned {name} as {learned}, but the features hold {held} (the kind of a customer "
                "attribute in sources.customers.attributes changed since training?): run `churn features` and "
                "`churn train` with this config, or give the attribute the kind it had"
            )


def fit_rows_sample(y: np.ndarray, *, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of at most `limit` of the rows labelled `y`: all of them, or a seeded random sample. A sample
    that drew one class of two gets one row of the other in place of one of its own (a logistic regression needs
    both; a tiny train.logistic_fit_rows could draw one), else it is the plain sample."""
    rows = len(y)
    if rows <= limit:
        return np.arange(rows)
    rng = np.random.default_rng(seed)
    positions = rng.choice(rows, size=limit, replace=False)
    drawn = np.unique(y[positions])
    if len(drawn) == 1 and len(np.unique(y)) > 1:
        positions[0] = rng.choice(np.flatnonzero(y != drawn[0]))
    return np.sort(positions)


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
            codes = pd.Index(categories, dtype=object).get_indexer(values).astype("float64")  # -1: missing or unseen
            codes[codes < 0] = np.nan
            encoded[col] = codes
        return encoded

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: {"categories": {column: [values...]}}."""
        return {"categories": {col: list(values) for col, values in self.categories_.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoryEncoder:
        """Inverse of `to_dict`; ValueError when `data` is malformed."""
        categories = data.get("categories") if isinstance(data, Mapping) else None
        if not isinstance(categories, Mapping):
            raise ValueError("encoder.categories must be a mapping")
        return cls({str(col): _strings(values, name=f"encoder.categories.{col}") for col, values in categories.items()})


def feature_matrix(features: pd.DataFrame, *, feature_names: Sequence[str], encoder: CategoryEncoder) -> np.ndarray:
    """Float matrix, columns in `feature_names` order: categories as codes, numeric columns as float64.

    Raises ScoreError naming missing columns, or a numeric column holding non-numbers.
    """
    check_feature_columns(features, feature_names)
    encoded = encoder.transform(features)
    # Filled column by column into one preallocated array: no second full-size copy (as column_stack
    # of a list of columns would hold) at millions of rows. Column-major, so that each column is written
    # contiguously (row-major writes of a column touch a cache line per value: 20 s for 2.8M rows x 75
    # features); LightGBM, scikit-learn and numpy read either layout.
    matrix = np.empty((len(features), len(feature_names)), dtype="float64", order="F")
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


def _fit_platt(scores: np.ndarray, y: np.ndarray) -> Pipeline:
    """Platt scaling: a logistic regression on the standardised score (nearly unpenalised)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=1e4)).fit(scores[:, None], y)


def _platt_to_dict(platt: Pipeline) -> dict[str, Any]:
    scaler, logistic = platt[0], platt[-1]
    return {
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": logistic.coef_.ravel().tolist(),
        "intercept": logistic.intercept_.tolist(),
    }


def _platt_from_dict(data: Mapping[str, Any], *, name: str) -> Pipeline:
    """Inverse of `_platt_to_dict`; ValueError naming `name` when malformed."""
    parts = {key: _floats(data.get(key), name=f"{name}.{key}") for key in ("mean", "scale", "coef", "intercept")}
    if any(len(values) != 1 for values in parts.values()) or parts["scale"][0] <= 0:
        raise ValueError(f"{name} mean, scale, coef and intercept must hold one number each (scale > 0)")
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = parts["mean"], parts["scale"], parts["scale"] ** 2
    scaler.n_features_in_, scaler.n_samples_seen_ = 1, 1
    logistic = LogisticRegression(C=1e4)
    logistic.coef_, logistic.intercept_ = parts["coef"].reshape(1, 1), parts["intercept"]
    logistic.classes_, logistic.n_features_in_ = np.array([0.0, 1.0]), 1
    return make_pipeline(scaler, logistic)


def _platt_slope(platt: Pipeline) -> float:
    return float(platt[-1].coef_.ravel()[0])


def _between_knots(isotonic: IsotonicRegression, scores: np.ndarray) -> np.ndarray:
    """`isotonic`'s predictions of `scores`, each held between the values of the two knots around it. The linear
    interpolation can round a score just below a knot to a hair above that knot's value (5.6e-17 above it for a
    score of -2.6e-146 against the knot at 0, found by the monotonicity property test), so that the map would
    decrease there."""
    knots, values = isotonic.X_thresholds_, isotonic.y_thresholds_
    right = np.minimum(np.searchsorted(knots, scores, side="left"), len(knots) - 1)
    left = np.maximum(right - 1, 0)
    return np.clip(isotonic.predict(scores), values[left], values[right])


def edge_pooled(scores: np.ndarray) -> np.ndarray:
    """`scores` with the lowest and highest EDGE_ROWS (a tenth of them, on fewer rows) raised and lowered to the
    EDGE_ROWS-th lowest and highest: isotonic regression pools tied scores, so its edge steps then hold at least
    that many rows."""
    rows = min(EDGE_ROWS, len(scores) // 10)
    if rows < 2:
        return scores
    ordered = np.partition(scores, [rows - 1, len(scores) - rows])
    return np.clip(scores, ordered[rows - 1], ordered[len(scores) - rows])


@dataclass
class ProbabilityCalibrator:
    """Monotone map from a model score to a probability: isotonic regression (with a Platt tie-break, see
    TIE_BREAK_WEIGHT; edge steps of at least EDGE_ROWS rows), Platt (sigmoid) scaling (nearly holding its edge
    probabilities beyond the scores it was fitted on, `range_`: see EDGE_ROWS), or "none" (the logistic function of
    a log-odds score: the model's own probability, nothing learned).

    Every map is strictly increasing in the score (isotonic: when the Platt slope is positive, i.e. the score
    ranks churners higher at all), so calibrating never changes how the model ranks customers, except where
    probabilities are clipped to [PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR].
    """

    method: CalibratorKind
    estimator_: IsotonicRegression | Pipeline | None = None
    tie_break_: Pipeline | None = None
    range_: tuple[float, float] | None = None  # sigmoid: the scores fitted on (None: a document before version 5)

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        scores = np.asarray(scores, dtype="float64")
        if self.method == "none":
            return self
        if self.method == "isotonic":
            self.estimator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(edge_pooled(scores), y)
            platt = _fit_platt(scores, y)
            # A score that does not rank churners higher has nothing to break ties with.
            self.tie_break_ = platt if _platt_slope(platt) > 0 else None
        else:
            self.estimator_ = _fit_platt(scores, y)
            self.range_ = (float(scores.min()), float(scores.max()))
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype="float64")
        if self.method == "none":
            return np.clip(expit(scores), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        if self.estimator_ is None:
            raise ValueError("the calibrator is not fitted")
        if self.method == "isotonic":
            probabilities = _between_knots(self.estimator_, scores)
            if self.tie_break_ is not None:
                platt = self.tie_break_.predict_proba(scores[:, None])[:, 1]
                probabilities = (1.0 - TIE_BREAK_WEIGHT) * probabilities + TIE_BREAK_WEIGHT * platt
        else:
            log_odds = self.estimator_.decision_function(scores[:, None])
            if self.range_ is not None:
                edge = self.estimator_.decision_function(np.clip(scores, *self.range_)[:, None])
                log_odds = edge + TIE_BREAK_WEIGHT * (log_odds - edge)  # the same inside the range
            probabilities = expit(log_odds)
        return np.clip(probabilities, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the fitted map.

        isotonic: {"method", "x": thresholds, "y": values, "tie_break": Platt numbers or null,
        "tie_break_weight"}; sigmoid: {"method", "mean", "scale", "coef", "intercept"} (the standard scaler
        and the logistic regression on one score) and "low", "high" (the scores it was fitted on); none: {"method"}.
        """
        if self.method == "none":
            return {"method": "none"}
        if self.estimator_ is None:
            raise ValueError("the calibrator is not fitted")
        if self.method == "isotonic":
            return {
                "method": "isotonic",
                "x": self.estimator_.X_thresholds_.tolist(),
                "y": self.estimator_.y_thresholds_.tolist(),
                "tie_break": None if self.tie_break_ is None else _platt_to_dict(self.tie_break_),
                "tie_break_weight": TIE_BREAK_WEIGHT,
            }
        held = {} if self.range_ is None else {"low": self.range_[0], "high": self.range_[1]}
        return {"method": "sigmoid", **_platt_to_dict(self.estimator_), **held}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbabilityCalibrator:
        """Inverse of `to_dict`, giving the same probabilities; ValueError when `data` is malformed.

        Isotonic: refitted on its own thresholds, which reproduces them exactly (they are already
        monotone, with distinct x); its tie-break (absent in documents before version 3: none) is read
        like a sigmoid. Sigmoid: the scaler's and the logistic regression's fitted attributes are set from
        the stored numbers, and its score range (absent in documents before version 5: it extrapolates, as then).
        """
        method = data.get("method") if isinstance(data, Mapping) else None
        if method == "none":
            return cls("none")
        if method == "isotonic":
            x, y = _floats(data.get("x"), name="calibrator.x"), _floats(data.get("y"), name="calibrator.y")
            if len(x) == 0 or len(x) != len(y) or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
                raise ValueError("calibrator.x and calibrator.y must be equally long, x increasing and y non-decreasing")
            calibrator = cls("isotonic")
            calibrator.estimator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x, y)
            tie_break = data.get("tie_break")
            if tie_break is not None:
                if not isinstance(tie_break, Mapping) or data.get("tie_break_weight") != TIE_BREAK_WEIGHT:
                    raise ValueError(
                        f"calibrator.tie_break must be a mapping with calibrator.tie_break_weight {TIE_BREAK_WEIGHT}"
                    )
                calibrator.tie_break_ = _platt_from_dict(tie_break, name="calibrator.tie_break")
                if _platt_slope(calibrator.tie_break_) <= 0:
                    raise ValueError("calibrator.tie_break.coef must be positive")
            return calibrator
        if method == "sigmoid":
            if ("low" in data) != ("high" in data):
                raise ValueError("calibrator.low and calibrator.high go together")
            if "low" not in data:
                return cls("sigmoid", _platt_from_dict(data, name="calibrator"))
            low, high = _floats([data["low"], data["high"]], name="calibrator.low and calibrator.high")
            if low > high:
                raise ValueError("calibrator.low must not exceed calibrator.high")
            return cls("sigmoid", _platt_from_dict(data, name="calibrator"), range_=(float(low), float(high)))
        raise ValueError(f"calibrator.method must be 'isotonic', 'sigmoid' or 'none', got {method!r}")


def signed_log(values: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|): keeps the order and sign, tames heavy tails (spend, counts, ratios)."""
    return np.sign(values) * np.log1p(np.abs(values))


@dataclass
class LinearScore:
    """Logistic regression on numeric features: signed log, median imputation, standardisation, coefficients.

    All fitted numbers are arrays over `feature_names` (learned on training rows only), so the score is
    `standardised(frame) @ coefficients + intercept` and a feature's contribution is its term of that sum.
    Values are clipped to the range the training rows had (`lows`..`highs`, signed-log scale) before they
    are standardised: a line fitted where a feature barely varies (in an export's first months everyone's
    tenure is under 90 days) must not extrapolate to values it never saw, which turned its ranking around.
    """

    feature_names: list[str]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    coefficients: np.ndarray
    intercept: float
    lows: np.ndarray | None = None  # None: read from a document without a range (version 3 or older)
    highs: np.ndarray | None = None

    @classmethod
    def fit(
        cls, features: pd.DataFrame, y: np.ndarray, *, feature_names: Sequence[str], seed: int, fit_rows: int
    ) -> LinearScore:
        """Fit on at most `fit_rows` rows of `features` (a seeded random sample), labels `y` (0/1)."""
        positions = fit_rows_sample(np.asarray(y), limit=fit_rows, seed=seed)
        values = signed_log(_numeric_matrix(features.iloc[positions], feature_names))
        observed = ~np.isnan(values).all(axis=0)  # a feature missing in every row gets median 0 (no value)
        medians = np.zeros(values.shape[1])
        medians[observed] = np.nanmedian(values[:, observed], axis=0)
        filled = np.where(np.isnan(values), medians, values)
        means, scales = filled.mean(axis=0), filled.std(axis=0)
        scales = np.where(scales > 0, scales, 1.0)
        logistic = LogisticRegression(C=1.0, max_iter=1000).fit((filled - means) / scales, np.asarray(y)[positions])
        coefficients, intercept = logistic.coef_.ravel(), float(logistic.intercept_[0])
        return cls(
            list(feature_names), medians, means, scales, coefficients, intercept, filled.min(axis=0), filled.max(axis=0)
        )

    def standardised(self, features: pd.DataFrame) -> np.ndarray:
        """The rows as the regression sees them (n x features): signed log, imputed, clipped to the training
        range, standardised."""
        values = signed_log(_numeric_matrix(features, self.feature_names))
        filled = np.where(np.isnan(values), self.medians, values)
        if self.lows is not None and self.highs is not None:
            filled = np.clip(filled, self.lows, self.highs)
        return (filled - self.means) / self.scales

    def raw(self, features: pd.DataFrame) -> np.ndarray:
        """Log-odds score, 1-D."""
        return self.standardised(features) @ self.coefficients + self.intercept

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """Each feature's term of the log-odds score (n x features); rows sum with the intercept to `raw`."""
        return self.standardised(features) * self.coefficients

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": list(self.feature_names),
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "coefficients": self.coefficients.tolist(),
            "intercept": float(self.intercept),
            **({} if self.lows is None or self.highs is None else {"lows": self.lows.tolist(), "highs": self.highs.tolist()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearScore:
        """Inverse of `to_dict`; ValueError when `data` is malformed."""
        if not isinstance(data, Mapping):
            raise ValueError("linear must be a mapping")
        names = _strings(data.get("feature_names"), name="linear.feature_names")
        arrays = {key: _floats(data.get(key), name=f"linear.{key}") for key in ("medians", "means", "scales", "coefficients")}
        if any(len(values) != len(names) for values in arrays.values()) or (arrays["scales"] <= 0).any():
            raise ValueError("linear medians, means, scales and coefficients need one number per feature (scales > 0)")
        intercept = _floats([data.get("intercept")], name="linear.intercept")[0]
        ranges = {key: _floats(data[key], name=f"linear.{key}") for key in ("lows", "highs") if key in data}
        if len(ranges) == 1 or any(len(values) != len(names) for values in ranges.values()) or (
            ranges and (ranges["lows"] > ranges["highs"]).any()
        ):
            raise ValueError("linear lows and highs go together, one number per feature each (lows <= highs)")
        return cls(
            names, arrays["medians"], arrays["means"], arrays["scales"], arrays["coefficients"], float(intercept),
            ranges.get("lows"), ranges.get("highs"),
        )


def _numeric_matrix(features: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    check_feature_columns(features, feature_names)
    return np.column_stack(
        [pd.to_numeric(features[name], errors="coerce").to_numpy("float64", na_value=np.nan) for name in feature_names]
    ).reshape(len(features), len(feature_names))


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
    scores: np.ndarray,
    y: np.ndarray,
    *,
    method: Literal["auto", "isotonic", "sigmoid"],
    seed: int,
    log_odds: bool = False,
) -> tuple[ProbabilityCalibrator, dict[str, float]]:
    """Fit a calibrator on (`scores`, `y`); "auto" picks the method with the lower 5-fold CV log loss.

    Choosing by cross-validation, not by in-sample loss, stops isotonic (the more flexible map) winning
    just because it memorises the calibration rows. With `log_odds=True` (scores are a model's log-odds)
    "none" competes too, at the log loss of the model's own probabilities (nothing fitted, so that loss is
    honest): the calibrator is kept only when it lowers the log loss by at least CALIBRATION_MIN_GAIN.
    When these rows rank churners lower by the score (a Platt slope of 0 or less), a sigmoid fitted on them is
    decreasing and would turn the ranking around: then a model keeps its own probabilities ("none") and
    other scores (the baselines') get the isotonic map, which never decreases, whatever `method` asks.
    Returns the calibrator and the losses by method.
    """
    candidates: list[CalibratorKind] = ["isotonic", "sigmoid"] if method == "auto" else [method]
    losses = {m: cross_validated_log_loss(scores, y, method=m, seed=seed) for m in candidates}
    chosen = min(candidates, key=lambda m: (np.nan_to_num(losses[m], nan=np.inf), candidates.index(m)))
    ranks_churners_higher = _platt_slope(_fit_platt(np.asarray(scores, dtype="float64"), y)) > 0
    if log_odds:
        losses["none"] = float(log_loss(y, ProbabilityCalibrator("none").transform(scores), labels=[0.0, 1.0]))
        helps = np.nan_to_num(losses[chosen], nan=np.inf) < losses["none"] - CALIBRATION_MIN_GAIN
        if not helps or not ranks_churners_higher:
            chosen = "none"
    elif not ranks_churners_higher:
        chosen = "isotonic"
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
        linear: LinearScore | None = None,
        blend_weight: float = 1.0,
    ) -> None:
        unknown = set(categorical_features) - set(feature_names)
        if unknown:
            raise ValueError(f"categorical features {sorted(unknown)} are not in feature_names")
        if not 0.0 <= blend_weight <= 1.0 or (blend_weight < 1.0 and linear is None):
            raise ValueError("blend_weight must be within [0, 1], and below 1 only with a linear score")
        if linear is not None and set(linear.feature_names) - set(feature_names):
            raise ValueError("the linear score's features must be among feature_names")
        self.feature_names_ = list(feature_names)
        self.categorical_features_ = list(categorical_features)
        self.encoder_ = encoder
        self.booster_ = booster
        self.calibrator_ = calibrator
        self.horizon_days_ = int(horizon_days)
        self.params_ = dict(params or {})
        self.linear_ = linear
        self.blend_weight_ = float(blend_weight)

    def check_features(self, features: pd.DataFrame) -> None:
        """Raise ScoreError naming the feature columns `features` lacks, or holds as another kind than the model
        learned them (`check_feature_kinds`)."""
        check_feature_columns(features, self.feature_names_)
        check_feature_kinds(features, self.feature_names_, self.categorical_features_)

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The float matrix LightGBM sees (see `feature_matrix`)."""
        return feature_matrix(features, feature_names=self.feature_names_, encoder=self.encoder_)

    @property
    def kind_(self) -> str:
        """"lightgbm", "logistic" or "blend": which scores make the log-odds (see `blend_weight_`)."""
        if self.blend_weight_ == 1.0:
            return "lightgbm"
        return "logistic" if self.blend_weight_ == 0.0 else "blend"

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        """The log-odds score, 1-D: blend_weight x the booster's + (1 - blend_weight) x the linear score's."""
        raw = np.zeros(len(features))
        if self.blend_weight_ > 0.0:
            raw += self.blend_weight_ * self.booster_.predict(self.matrix(features), raw_score=True)
        if self.blend_weight_ < 1.0 and self.linear_ is not None:
            raw += (1.0 - self.blend_weight_) * self.linear_.raw(features)
        return raw

    def predict_uncalibrated(self, features: pd.DataFrame) -> np.ndarray:
        """The probability before calibration (logistic function of `predict_raw`), 1-D."""
        return expit(self.predict_raw(features))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn within `horizon_days_`, 1-D."""
        return self.calibrator_.transform(self.predict_raw(features))

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the log-odds score (TreeSHAP `pred_contrib`, plus the linear terms,
        each weighted as in the blend); bias dropped.

        Index: `features.index`; columns: `feature_names_`. Rows sum (with the biases) to `predict_raw`.
        """
        contributions = pd.DataFrame(0.0, index=features.index, columns=self.feature_names_)
        if self.blend_weight_ > 0.0:
            contrib = self.booster_.predict(self.matrix(features), pred_contrib=True)
            contributions += self.blend_weight_ * contrib[:, :-1]
        if self.blend_weight_ < 1.0 and self.linear_ is not None:
            contributions[self.linear_.feature_names] += (1.0 - self.blend_weight_) * self.linear_.contributions(features)
        return contributions

    def feature_importance(self, *, kind: Literal["gain", "split"] = "gain") -> pd.Series:
        """Total gain (or split count) per feature, sorted descending."""
        values = self.booster_.feature_importance(importance_type=kind)
        return pd.Series(values, index=self.feature_names_, name=f"importance_{kind}").sort_values(ascending=False)

    # --- serialisation (no pickle; see the module docstring) ---

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description of everything but the booster (which `to_files` stores as text)."""
        return {
            "kind": MODEL_KIND,
            "document_version": MODEL_DOCUMENT_VERSION,
            "feature_names": list(self.feature_names_),
            "categorical_features": list(self.categorical_features_),
            "encoder": self.encoder_.to_dict(),
            "calibrator": self.calibrator_.to_dict(),
            "horizon_days": self.horizon_days_,
            "params": _json_value(self.params_),
            "booster_file": BOOSTER_FILE,
            "linear": None if self.linear_ is None else self.linear_.to_dict(),
            "blend_weight": self.blend_weight_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, booster_text: str) -> ChurnModel:
        """Inverse of `to_dict`, with the booster's LightGBM text; ValueError when anything is malformed."""
        if not isinstance(data, Mapping) or data.get("kind") != MODEL_KIND:
            raise ValueError(f"kind must be {MODEL_KIND!r}")
        if data.get("document_version") not in READABLE_DOCUMENT_VERSIONS:
            raise ValueError(
                f"document_version is {data.get('document_version')!r}; this version reads "
                f"{' or '.join(map(str, READABLE_DOCUMENT_VERSIONS))}"
            )
        feature_names = _strings(data.get("feature_names"), name="feature_names")
        horizon_days = data.get("horizon_days")
        if not isinstance(horizon_days, int) or isinstance(horizon_days, bool) or horizon_days <= 0:
            raise ValueError("horizon_days must be a positive whole number")
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise ValueError("params must be a mapping")
        try:
            booster = lgb.Booster(model_str=booster_text)
        except lgb.basic.LightGBMError as exc:
            raise ValueError(f"the booster is not a LightGBM text model: {exc}") from None
        if booster.num_feature() != len(feature_names):
            raise ValueError(f"the booster has {booster.num_feature()} features, feature_names {len(feature_names)}")
        return cls(
            feature_names=feature_names,
            categorical_features=_strings(data.get("categorical_features"), name="categorical_features"),
            encoder=CategoryEncoder.from_dict(data.get("encoder")),
            booster=booster,
            calibrator=ProbabilityCalibrator.from_dict(data.get("calibrator")),
            horizon_days=horizon_days,
            params=dict(params),
            linear=None if data.get("linear") is None else LinearScore.from_dict(data["linear"]),
            blend_weight=_floats([data.get("blend_weight", 1.0)], name="blend_weight")[0],
        )

    def to_files(self) -> dict[str, str]:
        """{file name: text}: `model.json` (see `to_dict`) and the booster in LightGBM's text format."""
        document = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
        return {MODEL_DOCUMENT_FILE: document, BOOSTER_FILE: self.booster_.model_to_string()}

    @classmethod
    def from_files(cls, files: Mapping[str, str]) -> ChurnModel:
        """Inverse of `to_files`; ValueError (never code execution) when a file is missing or malformed."""
        if MODEL_DOCUMENT_FILE not in files:
            raise ValueError(f"{MODEL_DOCUMENT_FILE} is missing")
        try:
            data = json.loads(files[MODEL_DOCUMENT_FILE])
        except json.JSONDecodeError as exc:
            raise ValueError(f"{MODEL_DOCUMENT_FILE} is not valid JSON ({exc})") from None
        booster_file = data.get("booster_file") if isinstance(data, dict) else None
        if booster_file not in files:
            raise ValueError(f"{MODEL_DOCUMENT_FILE} names the booster file {booster_file!r}, which is not in the bundle")
        return cls.from_dict(data, booster_text=files[booster_file])
