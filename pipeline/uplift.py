"""Per-customer uplift of each retention action, learned from past campaigns (T-learner), and its evaluation.

Training rows come from past at-risk lists: the treated and control customers of each action, their
point-in-time features as of the list's date (the same feature code as churn training) and whether
they churned in the horizon after it. Per action a T-learner fits two LightGBM classifiers on the
numeric features, P(churn | control, x) and P(churn | treated, x); then per customer

- reduction(x) = p_control(x) - p_treated(x): churn prevented, in probability points;
- uplift(x) = clip(reduction(x) / p_control(x), 0, 1): the share of churn prevented, the playbook's
  quantity, so scoring keeps expected net value = P(churn) x uplift x value - cost.

Evaluation on held-out campaigns (later lists, never seen in fitting): customers ranked by predicted
reduction; the Qini curve (Radcliffe 2007: retained treated minus retained control scaled to the
treated count, among the top share) and the uplift curve (difference in retention rates times the
customers ranked so far) per share of customers, both divided by the number of customers. The Qini
coefficient and AUUC are the areas between each curve and the random-ranking line; a constant uplift
ranks at random, so its expected Qini coefficient is 0. Intervals: percentiles of a Poisson bootstrap
over customers. The model "beats constant uplift" when the lower end of the Qini interval is above 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from pipeline.errors import ScoreError

ROW_KEYS = ["as_of", "customer_id", "action", "treated", "churned"]
CURVE_POINTS = 101


@dataclass(frozen=True)
class TLearner:
    """Two boosters for one action: churn if untreated (control) and churn if treated."""

    action: str
    feature_names: list[str]
    control: lgb.Booster
    treatment: lgb.Booster


def booster_params(*, seed: int) -> dict:
    """Small, regularised trees: campaigns hold thousands of customers, not millions."""
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 7,
        "max_depth": 4,
        "min_data_in_leaf": 100,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
        "verbose": -1,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
    }


def uplift_rows(
    lists: Mapping[object, pd.DataFrame], features: Mapping[object, pd.DataFrame], churned: Mapping[object, pd.Series]
) -> pd.DataFrame:
    """Treated and control customers of every list with their features and outcome.

    Input per list date: the at-risk list (customer_id, action, group), the features as of that date
    (customer_id + feature columns) and `churned` (bool Series indexed by customer_id).
    Output: ROW_KEYS + feature columns, one row per (list, customer) in treatment or control.
    """
    parts = []
    for as_of, listed in lists.items():
        arms = listed[listed["group"].isin(["treatment", "control"])]
        frame = arms[["customer_id", "action"]].assign(
            as_of=str(as_of),
            treated=(arms["group"] == "treatment").to_numpy(),
            churned=churned[as_of].reindex(arms["customer_id"]).to_numpy(dtype=bool),
        )
        parts.append(frame.merge(features[as_of], on="customer_id", how="left", validate="one_to_one"))
    if not parts:
        raise ScoreError("no past at-risk lists to learn uplift from")
    rows = pd.concat(parts, ignore_index=True)
    return rows[ROW_KEYS + [c for c in rows.columns if c not in ROW_KEYS]]


def _matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    return frame.reindex(columns=list(feature_names)).to_numpy(dtype=float, na_value=np.nan)


def fit_t_learner(rows: pd.DataFrame, *, action: str, feature_names: Sequence[str], rounds: int, seed: int) -> TLearner:
    """Fit the two boosters of `action` on its rows; ScoreError when an arm has no churner or no stayer."""
    mine = rows[rows["action"] == action]
    boosters = {}
    for arm, treated in (("control", False), ("treatment", True)):
        part = mine[mine["treated"] == treated]
        labels = part["churned"].to_numpy(dtype=float)
        if len(np.unique(labels)) < 2:
            raise ScoreError(f"cannot learn the uplift of '{action}': its {arm} group has {len(part)} customers, all with the same outcome")
        data = lgb.Dataset(_matrix(part, feature_names), label=labels, feature_name=list(feature_names), free_raw_data=True)
        boosters[arm] = lgb.train(booster_params(seed=seed), data, num_boost_round=rounds)
    return TLearner(action=action, feature_names=list(feature_names), control=boosters["control"], treatment=boosters["treatment"])


def predict_uplift(learner: TLearner, features: pd.DataFrame) -> pd.DataFrame:
    """Per row of `features` (same index): p_control, p_treated, reduction, uplift (see the module docstring)."""
    x = _matrix(features, learner.feature_names)
    p_control = learner.control.predict(x)
    p_treated = learner.treatment.predict(x)
    reduction = p_control - p_treated
    with np.errstate(invalid="ignore", divide="ignore"):
        uplift = np.clip(np.where(p_control > 0, reduction / p_control, 0.0), 0.0, 1.0)
    return pd.DataFrame(
        {"p_control": p_control, "p_treated": p_treated, "reduction": reduction, "uplift": uplift}, index=features.index
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _curves(order: np.ndarray, treated: np.ndarray, retained: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Qini and uplift curves (rows: weight vectors) at CURVE_POINTS shares, per customer; and the shares."""
    t, r = treated[order], retained[order]
    w = weights[:, order]
    n_t, n_c = np.cumsum(w * t, axis=1), np.cumsum(w * ~t, axis=1)
    r_t, r_c = np.cumsum(w * (t & r), axis=1), np.cumsum(w * (~t & r), axis=1)
    total = w.sum(axis=1, keepdims=True)
    n = len(order)
    positions = np.unique(np.clip(np.round(np.linspace(0, n, CURVE_POINTS)).astype(int) - 1, 0, n - 1))
    # As scikit-uplift's qini_curve / uplift_curve: a ratio with an empty denominator counts as 0.
    qini = r_t - r_c * _ratio(n_t, n_c)
    rate_gap = _ratio(r_t, n_t) - _ratio(r_c, n_c)
    uplift = rate_gap * (n_t + n_c)
    share = (positions + 1) / n
    return qini[:, positions] / total, uplift[:, positions] / total, share


def _area_above_random(curve: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Area between each curve and the line from (0, 0) to its end point, over share 0..1."""
    x = np.concatenate([[0.0], share])
    y = np.concatenate([np.zeros((curve.shape[0], 1)), curve], axis=1)
    random = y[:, -1:] * x[None, :]
    return np.trapezoid(y - random, x, axis=1)


def qini_evaluation(
    reduction: np.ndarray, treated: np.ndarray, churned: np.ndarray, *, bootstrap: int, seed: int, confidence: float = 0.95
) -> tuple[dict, pd.DataFrame]:
    """Qini coefficient and AUUC with bootstrap intervals, and the curves.

    Input per customer: predicted churn `reduction` (higher = rank first), `treated` (bool), `churned` (bool).
    Output: ({qini, qini_low, qini_high, auuc, auuc_low, auuc_high, n, n_treatment, n_control},
    curves: share, qini, qini_random, uplift, uplift_random, per customer of the evaluation set).
    """
    treated = np.asarray(treated, dtype=bool)
    retained = ~np.asarray(churned, dtype=bool)
    if treated.all() or (~treated).all():
        raise ScoreError("the Qini curve needs treated and control customers in the evaluation set")
    order = np.lexsort((np.arange(len(treated)), -np.asarray(reduction, dtype=float)))
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(len(treated)), rng.poisson(1.0, size=(bootstrap, len(treated)))]).astype(float)
    qini, uplift, share = _curves(order, treated, retained, weights)
    qini_area, uplift_area = _area_above_random(qini, share), _area_above_random(uplift, share)
    tail = (1 - confidence) / 2 * 100
    summary = {
        "qini": float(qini_area[0]),
        "qini_low": float(np.percentile(qini_area[1:], tail)),
        "qini_high": float(np.percentile(qini_area[1:], 100 - tail)),
        "auuc": float(uplift_area[0]),
        "auuc_low": float(np.percentile(uplift_area[1:], tail)),
        "auuc_high": float(np.percentile(uplift_area[1:], 100 - tail)),
        "n": int(len(treated)),
        "n_treatment": int(treated.sum()),
        "n_control": int((~treated).sum()),
    }
    curves = pd.DataFrame(
        {
            "share": share,
            "qini": qini[0],
            "qini_random": qini[0, -1] * share,
            "uplift": uplift[0],
            "uplift_random": uplift[0, -1] * share,
        }
    )
    return summary, curves


def held_out_split(rows: pd.DataFrame, *, holdout: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(fit rows, held-out rows, held-out dates): the latest `holdout` list dates are held out."""
    dates = sorted(rows["as_of"].unique())
    if len(dates) <= holdout:
        raise ScoreError(
            f"uplift.holdout_campaigns={holdout} needs more past campaigns than that to learn from; found {len(dates)}"
        )
    held = dates[-holdout:]
    mask = rows["as_of"].isin(held).to_numpy()
    return rows[~mask], rows[mask], held
