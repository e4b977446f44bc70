"""Monitoring: how a past at-risk list's predictions compare with what happened once its horizon passed.

The model is judged on the customers whose outcome the retention actions did not change: the control
group and the customers not selected (group 'none'). Treated customers are reported apart (their
churn is lowered by the action, so it says nothing about the model's calibration).

`list_metrics(scores)` -> one row of numbers per list: customers, realised churn of the untreated and
of the treated, mean predicted churn of each, ROC-AUC, PR-AUC, Brier and ECE (pipeline.evaluate's
equal-frequency ECE) on the untreated. `tier_table(scores)` -> predicted vs observed churn per risk
tier (untreated). `alerts(row, ...)` -> the plain sentences a scheduler's alert carries.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from pipeline.errors import ScoreError
from pipeline.evaluate import expected_calibration_error

UNTREATED_GROUPS = ("control", "none")
TIER_ORDER = ("high", "medium", "low")
MONITOR_COLUMNS = [
    "as_of",
    "customers",
    "untreated",
    "treated",
    "predicted_churn_untreated",
    "observed_churn_untreated",
    "predicted_churn_treated",
    "observed_churn_treated",
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "model_saw_outcomes",  # the scoring model was trained on label windows overlapping the list's (in-sample)
]


def check_outcomes(scores: pd.DataFrame) -> None:
    """Raise ScoreError unless `scores` has the columns monitoring reads (outcomes added)."""
    needed = ["churn_probability", "risk_tier", "group", "churned"]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ScoreError(f"the at-risk list lacks the columns {missing} for monitoring")


def list_metrics(scores: pd.DataFrame, *, as_of: str) -> dict:
    """Monitoring numbers of one past list (see MONITOR_COLUMNS); metrics NaN when undefined (one class)."""
    check_outcomes(scores)
    untreated = scores[scores["group"].isin(UNTREATED_GROUPS)]
    treated = scores[scores["group"] == "treatment"]
    y = untreated["churned"].to_numpy(dtype=float)
    p = untreated["churn_probability"].to_numpy(dtype=float)
    both_classes = len(np.unique(y)) == 2
    return {
        "as_of": as_of,
        "customers": int(len(scores)),
        "untreated": int(len(untreated)),
        "treated": int(len(treated)),
        "predicted_churn_untreated": float(p.mean()) if len(p) else math.nan,
        "observed_churn_untreated": float(y.mean()) if len(y) else math.nan,
        "predicted_churn_treated": float(treated["churn_probability"].mean()) if len(treated) else math.nan,
        "observed_churn_treated": float(treated["churned"].mean()) if len(treated) else math.nan,
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both_classes else math.nan,
        "brier": float(brier_score_loss(y, p)) if len(y) else math.nan,
        "ece": expected_calibration_error(y, p) if len(y) else math.nan,
    }


def tier_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per risk tier (high, medium, low present), untreated customers: customers, predicted, observed churn."""
    check_outcomes(scores)
    untreated = scores[scores["group"].isin(UNTREATED_GROUPS)]
    table = untreated.groupby("risk_tier").agg(
        customers=("churned", "size"), predicted_churn=("churn_probability", "mean"), observed_churn=("churned", "mean")
    )
    present = [tier for tier in TIER_ORDER if tier in table.index]
    return table.reindex(present).rename_axis("risk_tier").reset_index()


def alerts(row: dict, *, min_roc_auc: float, max_calibration_error: float) -> list[str]:
    """Sentences for each threshold the list's realised metrics break (empty when none)."""
    found = []
    if not math.isnan(row["roc_auc"]) and row["roc_auc"] < min_roc_auc:
        found.append(
            f"realised ROC-AUC {row['roc_auc']:.3f} of the list of {row['as_of']} is below monitor.min_roc_auc={min_roc_auc}"
        )
    if not math.isnan(row["ece"]) and row["ece"] > max_calibration_error:
        found.append(
            f"realised calibration error (ECE) {row['ece']:.3f} of the list of {row['as_of']} is above "
            f"monitor.max_calibration_error={max_calibration_error}"
        )
    return found
