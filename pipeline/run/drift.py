"""Drift check of a `churn score` run (called by pipeline.run.score): today's population against the
model's training test snapshot, from the reference the bundle's manifest carries (pipeline.drift)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.config import Config
from pipeline.drift import changed_fits, drift_table, drift_warnings, retraining_adds_labels
from pipeline.features.rfm import RANKED_COLUMNS
from pipeline.progress import get_logger
from pipeline.run.features import resolved_snapshot_dates


def observed_rate(labels: pd.DataFrame) -> float | None:
    """Churn rate of `labels` (the latest window closed by the scoring day: labels as of as_of - horizon), or None."""
    return float(labels["churned"].mean()) if len(labels) else None


def newer_labels_since_training(
    cfg: Config, *, training_snapshots: Sequence[str] | None, horizon_days: int, data_ends: dt.date | None
) -> bool | None:
    """Whether retraining with `cfg` on the validated data (ending `data_ends`) would train on a labelled
    snapshot newer than the model's newest (`retraining_adds_labels`); None when the bundle lists no training
    snapshots or the config gives no snapshot dates on this data."""
    if not training_snapshots:
        return None
    dates, _ = resolved_snapshot_dates(cfg, last_date=data_ends)
    if not dates:
        return None
    return retraining_adds_labels(
        dates, training_snapshots=training_snapshots, horizon_days=horizon_days, data_ends=data_ends
    )


def scoring_drift(
    cfg: Config,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    reference: dict | None,
    observed_rate: float | None,
    newer_labels: bool | None = None,
    newest_training_snapshot: str | None = None,
    fits: Sequence[Mapping[str, Any]] | None = None,
    as_of: dt.date | None = None,
) -> dict[str, Any] | None:
    """The drift block of the scoring summary (None when the bundle has no reference); warns in the log.

    Block: reference snapshot, predicted and recently observed churn rate, the `monitor.drift_top` largest
    shifts (feature, psi, missing shares), the warnings, whether retraining is recommended,
    `retraining_adds_labels` (`newer_labels`: None when unknown) and `changed_fits`: the BTYD fits that found
    otherwise on the scoring day `as_of` (`fits`: its fit records) than at the reference snapshot (`changed_fits`;
    empty when either side, or `as_of`, is not given). Retraining is recommended on a warning
    unless retraining could learn from no newer labels than the model did (`newer_labels` False): then the
    log says the model is as recent as the data allows, since advising a retrain would be false."""
    log = get_logger()
    if not reference:
        log.info("the model bundle has no drift reference (trained before drift checks existed): drift not checked")
        return None
    table = drift_table(features, scores["churn_probability"].to_numpy(float), reference, ranked=RANKED_COLUMNS)
    predicted_rate = float(scores["churn_probability"].mean())
    settings = cfg.monitor
    changed = [] if as_of is None else changed_fits(
        reference.get("fits"), fits, reference_snapshot=str(reference.get("snapshot")), as_of=as_of.isoformat())
    warnings = drift_warnings(
        table, predicted_rate=predicted_rate, observed_rate=observed_rate, psi_warning=settings.psi_warning,
        missing_share_warning=settings.missing_share_warning, churn_rate_gap_warning=settings.churn_rate_gap_warning,
        min_shift=settings.min_shift, fits=changed,
    )
    as_recent_as_data = newer_labels is False
    for sentence in warnings:
        if as_recent_as_data:
            log.warning(
                "DRIFT: %s. The model already learned from the newest labelled snapshot (%s): retraining on this "
                "data would add no newer labels, so read today's list with this shift in mind.",
                sentence, newest_training_snapshot,
            )
        else:
            log.warning("DRIFT: %s. The model may be stale: consider retraining (`churn train`).", sentence)
    top = table.head(settings.drift_top).round(6).astype(object)
    top = top.where(top.notna(), None)  # JSON has no NaN: an unknown shift (categories, an older reference) is null
    return {
        "reference_snapshot": reference.get("snapshot"),
        "predicted_rate": round(predicted_rate, 6),
        "recent_observed_rate": None if observed_rate is None else round(observed_rate, 6),
        "largest_shifts": top.to_dict("records"),
        "warnings": warnings,
        "retrain_recommended": bool(warnings) and not as_recent_as_data,
        "retraining_adds_labels": newer_labels,
        "changed_fits": changed,
    }
