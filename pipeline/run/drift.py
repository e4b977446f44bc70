"""Drift check of a `churn score` run (called by pipeline.run.score): today's population against the
model's training test snapshot, from the reference the bundle's manifest carries (pipeline.drift)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from pipeline.config import Config
from pipeline.drift import drift_table, drift_warnings
from pipeline.labels import churn_labels_from_partitions
from pipeline.progress import get_logger


def recent_observed_rate(tables: Sequence[Any], *, as_of: dt.date, cfg: Config, horizon_days: int) -> float | None:
    """Churn rate of the latest window that has closed by `as_of` (labels as of as_of - horizon), or None."""
    labels = churn_labels_from_partitions(
        list(tables), as_of=as_of - dt.timedelta(days=horizon_days), lookback_days=cfg.features.lookback_days,
        horizon_days=horizon_days,
    )
    return float(labels["churned"].mean()) if len(labels) else None


def scoring_drift(
    cfg: Config, features: pd.DataFrame, scores: pd.DataFrame, *, reference: dict | None, observed_rate: float | None
) -> dict[str, Any] | None:
    """The drift block of the scoring summary (None when the bundle has no reference); warns in the log.

    Block: reference snapshot, predicted and recently observed churn rate, the `monitor.drift_top` largest
    shifts (feature, psi, missing shares) and the warnings."""
    log = get_logger()
    if not reference:
        log.info("the model bundle has no drift reference (trained before drift checks existed): drift not checked")
        return None
    table = drift_table(features, scores["churn_probability"].to_numpy(float), reference)
    predicted_rate = float(scores["churn_probability"].mean())
    settings = cfg.monitor
    warnings = drift_warnings(
        table, predicted_rate=predicted_rate, observed_rate=observed_rate, psi_warning=settings.psi_warning,
        missing_share_warning=settings.missing_share_warning, churn_rate_gap_warning=settings.churn_rate_gap_warning,
    )
    for sentence in warnings:
        log.warning("DRIFT: %s. The model may be stale: consider retraining (`churn train`).", sentence)
    top = table.head(settings.drift_top).round(6)
    return {
        "reference_snapshot": reference.get("snapshot"),
        "predicted_rate": round(predicted_rate, 6),
        "recent_observed_rate": None if observed_rate is None else round(observed_rate, 6),
        "largest_shifts": top.to_dict("records"),
        "warnings": warnings,
        "retrain_recommended": bool(warnings),
    }
