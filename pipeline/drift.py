"""Drift: today's scored population against the model's training test snapshot.

`drift_reference(features, probability, churned, ...)` summarises the test snapshot at training time
(JSON, stored in the model bundle's manifest): per numeric feature the decile bin edges of its present
values, the share of rows per bin and the share missing; per categorical feature the share of its 20
most frequent values plus 'other'; the same for the churn score; and the observed churn rate.

`drift_table(features, probability, reference)` bins today's values on the reference edges and gives,
per feature and for the score ('churn_probability'), the population stability index
PSI = sum over bins (current - reference) x ln(current / reference), shares floored at 1e-4, the
missing bucket counted as a bin, and the missing shares then and now. Rules of thumb: PSI < 0.1
stable, 0.1-0.25 moderate shift, > 0.25 large shift. Features ranked within their own population (`ranked`,
e.g. the RFM quintile scores) are left out: the ranking fixes their shares, so their PSI only measures a
block of tied customers crossing a quintile boundary (two-order customers scored 3 one month, 2 the next),
not a change in the customers; the values they rank are compared instead.
`drift_warnings(table, ...)` -> plain sentences when a PSI or a missing-share change passes its
`monitor.*` threshold, or the predicted churn rate is far from the recently observed one.
`retraining_adds_labels(...)` says whether retraining could learn anything newer than the model did: right
after training, drift is a fact about today's population, not a stale model.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from pipeline.labels import horizon_passed

SCORE = "churn_probability"
BINS = 10
TOP_CATEGORIES = 20
OTHER = "__other__"
FLOOR = 1e-4
DRIFT_COLUMNS = ["feature", "psi", "missing_share_reference", "missing_share_current", "missing_change"]


def _numeric_reference(values: np.ndarray) -> dict:
    present = values[~np.isnan(values)]
    missing = 1 - len(present) / len(values) if len(values) else 0.0
    if len(present) == 0:
        return {"kind": "numeric", "edges": [], "shares": [], "missing_share": missing}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {"kind": "numeric", "edges": edges.tolist(), "shares": (counts / len(values)).tolist(), "missing_share": missing}


def _categorical_reference(values: pd.Series) -> dict:
    text = values.astype("str")
    missing = float(values.isna().mean()) if len(values) else 0.0
    counts = text[values.notna()].value_counts()
    top = counts.iloc[:TOP_CATEGORIES]
    shares = {str(k): float(v) / len(values) for k, v in top.items()}
    shares[OTHER] = float(counts.iloc[TOP_CATEGORIES:].sum()) / len(values) if len(values) else 0.0
    return {"kind": "categorical", "shares": shares, "missing_share": missing}


def drift_reference(
    features: pd.DataFrame,
    probability: np.ndarray,
    churned: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    snapshot: str,
) -> dict:
    """JSON-able summary of the training test snapshot (see the module docstring)."""
    reference = {
        "snapshot": snapshot,
        "rows": int(len(features)),
        "churn_rate": float(np.mean(churned)) if len(churned) else math.nan,
        "predicted_rate": float(np.mean(probability)) if len(probability) else math.nan,
        "features": {},
    }
    for name in numeric:
        if name in features.columns:
            reference["features"][name] = _numeric_reference(features[name].to_numpy(dtype=float, na_value=np.nan))
    for name in categorical:
        if name in features.columns:
            reference["features"][name] = _categorical_reference(features[name])
    reference["score"] = _numeric_reference(np.asarray(probability, dtype=float))
    return reference


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins (shares floored at FLOOR)."""
    r = np.maximum(np.asarray(reference, dtype=float), FLOOR)
    c = np.maximum(np.asarray(current, dtype=float), FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric_shares(values: np.ndarray, edges: list[float]) -> tuple[np.ndarray, float]:
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), present, side="right"), minlength=len(edges) + 1)
    n = max(len(values), 1)
    return counts / n, 1 - len(present) / n


def _row(name: str, current_values, spec: dict) -> dict:
    if spec["kind"] == "numeric":
        shares, missing = _numeric_shares(np.asarray(current_values, dtype=float), spec["edges"])
        reference_shares = np.asarray(spec["shares"], dtype=float)
    else:
        values = pd.Series(current_values)
        n = max(len(values), 1)
        known = [k for k in spec["shares"] if k != OTHER]
        text = values[values.notna()].astype("str")
        counts = text.value_counts()
        shares = np.array([counts.get(k, 0) / n for k in known] + [counts[~counts.index.isin(known)].sum() / n])
        missing = float(values.isna().mean()) if len(values) else 0.0
        reference_shares = np.array([spec["shares"][k] for k in known] + [spec["shares"][OTHER]])
    value = psi(np.append(reference_shares, spec["missing_share"]), np.append(shares, missing))
    return {
        "feature": name,
        "psi": value,
        "missing_share_reference": float(spec["missing_share"]),
        "missing_share_current": float(missing),
        "missing_change": float(missing - spec["missing_share"]),
    }


def drift_table(
    features: pd.DataFrame, probability: np.ndarray, reference: dict, *, ranked: Collection[str] = ()
) -> pd.DataFrame:
    """PSI and missing shares per reference feature present in `features`, and for the score; largest PSI first.

    Columns: DRIFT_COLUMNS. A reference feature missing from `features` is left out (scoring checks columns),
    and so are the `ranked` ones (ranks within the population: see the module docstring).
    """
    rows = [_row(SCORE, np.asarray(probability, dtype=float), reference["score"])]
    rows += [
        _row(name, features[name].to_numpy(dtype=float, na_value=np.nan) if spec["kind"] == "numeric" else features[name], spec)
        for name, spec in reference["features"].items()
        if name in features.columns and name not in ranked
    ]
    table = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    return table.sort_values(["psi", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def drift_warnings(
    table: pd.DataFrame,
    *,
    predicted_rate: float,
    observed_rate: float | None,
    psi_warning: float,
    missing_share_warning: float,
    churn_rate_gap_warning: float,
) -> list[str]:
    """Plain sentences for each drift threshold passed (empty when none)."""
    found = []
    shifted = table[(table["psi"] > psi_warning) & (table["feature"] != SCORE)]
    if not shifted.empty:
        names = ", ".join(f"{row.feature} (PSI {row.psi:.2f})" for row in shifted.itertuples())
        found.append(f"features shifted since the training test snapshot: {names} (monitor.psi_warning={psi_warning})")
    score = table[table["feature"] == SCORE]
    if not score.empty and score["psi"].iloc[0] > psi_warning:
        found.append(f"the churn score's distribution shifted: PSI {score['psi'].iloc[0]:.2f} (monitor.psi_warning={psi_warning})")
    missing = table[table["missing_change"].abs() > missing_share_warning]
    if not missing.empty:
        names = ", ".join(
            f"{row.feature} ({row.missing_share_reference:.0%} -> {row.missing_share_current:.0%})" for row in missing.itertuples()
        )
        found.append(f"the share of missing values changed: {names} (monitor.missing_share_warning={missing_share_warning})")
    if observed_rate is not None and not math.isnan(observed_rate) and abs(predicted_rate - observed_rate) > churn_rate_gap_warning:
        found.append(
            f"the predicted churn rate {predicted_rate:.1%} is far from the recently observed {observed_rate:.1%} "
            f"(monitor.churn_rate_gap_warning={churn_rate_gap_warning})"
        )
    return found


def retraining_adds_labels(
    snapshot_dates: Sequence[dt.date], *, training_snapshots: Sequence[str], horizon_days: int, data_ends: dt.date | None
) -> bool:
    """Whether one of `snapshot_dates` (the snapshots retraining would build) is later than the newest of the
    model's `training_snapshots` (ISO dates) and has its label window closed by `data_ends`: only then can
    retraining on this data learn from newer labels than the model did."""
    newest = max(dt.date.fromisoformat(str(s)[:10]) for s in training_snapshots)
    return any(
        d > newest and horizon_passed(d, horizon_days=horizon_days, last_event_date=data_ends) for d in snapshot_dates
    )
