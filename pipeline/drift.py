"""Drift: today's scored population against the model's training test snapshot.

`drift_reference(features, probability, churned, ...)` summarises the test snapshot at training time
(JSON, stored in the model bundle's manifest): per numeric feature the decile bin edges of its present
values rounded to SIGNIFICANT_DIGITS (a change in the fourth digit is no shift in the customers: a P(alive) of
0.99994 against 0.9999999, everyone's in the NBD limit of a BG/NBD fit, once read as PSI 4.3), the share of rows
per bin, the share missing, 100 quantiles (at 0.5%, 1.5%, ..., 99.5%) and the standard deviation of the rounded
values; per categorical feature the share of its 20
most frequent values plus 'other'; the same for the churn score; the observed churn rate; and, when given, what the
snapshot's BTYD fits found (`fits`: `pipeline.features.btyd.fit_record`s).

`drift_table(features, probability, reference)` bins today's values on the reference edges and gives,
per feature and for the score ('churn_probability'), the population stability index
PSI = sum over bins (current - reference) x ln(current / reference), shares floored at 1e-4, the
missing bucket counted as a bin, and the missing shares then and now. Rules of thumb: PSI < 0.1
stable, 0.1-0.25 moderate shift, > 0.25 large shift. For numeric features and the score it also gives `shift`:
how far the values moved, the Wasserstein distance between the two distributions (the mean gap between their
quantiles) in reference standard deviations, as Evidently measures drift of numeric columns. PSI counts customers
crossing bin edges, and a feature with few distinct values has many of them on an edge: monthly invoices 28 days
apart in February and 31 in March move half the customers across the edge at 28 (PSI 1.2 on a subscription
export, every month), though the values moved by 0.02 standard deviations. Features ranked within their own population (`ranked`,
e.g. the RFM quintile scores) are left out: the ranking fixes their shares, so their PSI only measures a
block of tied customers crossing a quintile boundary (two-order customers scored 3 one month, 2 the next),
not a change in the customers; the values they rank are compared instead.
`drift_warnings(table, ...)` -> plain sentences when a PSI (for numbers: with a shift of at least
`monitor.min_shift`; unknown for a reference stored before shifts were) or a missing-share change passes its
`monitor.*` threshold, or the predicted churn rate is far from the recently observed one.
A BTYD fit can land in another place on the scoring day than at the test snapshot (the no-dropout NBD limit at one
and not at the other: on a groceries export P(alive) read as PSI 6.7): its features then move with the fit, not
necessarily with the customers. `changed_fits(...)` finds such fits from the two snapshots' fit records, and the
warnings name the shifted features of each in a sentence of their own that says so (the records of both snapshots
are needed: a bundle from before they were kept gets the general sentence).
`retraining_adds_labels(...)` says whether retraining could learn anything newer than the model did: right
after training, drift is a fact about today's population, not a stale model.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.features.btyd import FIT_OUTCOMES
from pipeline.labels import horizon_passed

SCORE = "churn_probability"
BINS = 10
TOP_CATEGORIES = 20
OTHER = "__other__"
FLOOR = 1e-4
QUANTILE_LEVELS = (np.arange(100) + 0.5) / 100
SIGNIFICANT_DIGITS = 3  # numeric values are binned and measured as rounded to this many significant digits
DRIFT_COLUMNS = ["feature", "psi", "shift", "missing_share_reference", "missing_share_current", "missing_change"]


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """`values` rounded to `digits` significant digits (0, NaN and infinities unchanged)."""
    finite = np.isfinite(values) & (values != 0)
    magnitude = np.floor(np.log10(np.abs(values, where=finite, out=np.ones_like(values)), where=finite,
                                  out=np.zeros_like(values)))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.where(finite, np.round(values * scale) / scale, values)


def _numeric_reference(values: np.ndarray) -> dict:
    present = significant(values[~np.isnan(values)], SIGNIFICANT_DIGITS)
    missing = 1 - len(present) / len(values) if len(values) else 0.0
    if len(present) == 0:
        return {"kind": "numeric", "edges": [], "shares": [], "missing_share": missing, "quantiles": [], "std": None,
                "significant_digits": SIGNIFICANT_DIGITS}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {
        "kind": "numeric", "edges": edges.tolist(), "shares": (counts / len(values)).tolist(), "missing_share": missing,
        "quantiles": np.quantile(present, QUANTILE_LEVELS).tolist(), "std": float(np.std(present)),
        "significant_digits": SIGNIFICANT_DIGITS,
    }


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
    fits: Sequence[Mapping[str, Any]] | None = None,
) -> dict:
    """JSON-able summary of the training test snapshot (see the module docstring); `fits`: the records of its BTYD
    fits, kept under "fits" (left out when None: not recorded)."""
    reference = {
        "snapshot": snapshot,
        "rows": int(len(features)),
        "churn_rate": float(np.mean(churned)) if len(churned) else math.nan,
        "predicted_rate": float(np.mean(probability)) if len(probability) else math.nan,
        "features": {},
        **({"fits": [dict(fit) for fit in fits]} if fits is not None else {}),
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


def standardised_shift(spec: dict, present: np.ndarray) -> float:
    """Wasserstein distance between the reference's and `present`'s values (mean absolute gap of their quantiles at
    QUANTILE_LEVELS) in reference standard deviations; NaN when the reference stored no quantiles (a bundle from
    before shifts were measured) or either side has no values. A feature constant in the reference (deviation 0) is
    measured in its own units."""
    reference = np.asarray(spec.get("quantiles") or [], dtype=float)
    if len(reference) != len(QUANTILE_LEVELS) or len(present) == 0:
        return math.nan
    distance = float(np.mean(np.abs(np.quantile(present, QUANTILE_LEVELS) - reference)))
    return distance / spec["std"] if spec["std"] > 0 else distance


def _numeric_shares(values: np.ndarray, edges: list[float]) -> tuple[np.ndarray, float]:
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), present, side="right"), minlength=len(edges) + 1)
    n = max(len(values), 1)
    return counts / n, 1 - len(present) / n


def _row(name: str, current_values, spec: dict) -> dict:
    if spec["kind"] == "numeric":
        values = np.asarray(current_values, dtype=float)
        digits = spec.get("significant_digits")  # None: a bundle from before the rounding
        values = values if digits is None else significant(values, digits)
        shares, missing = _numeric_shares(values, spec["edges"])
        reference_shares = np.asarray(spec["shares"], dtype=float)
        shift = standardised_shift(spec, values[~np.isnan(values)])
    else:
        values = pd.Series(current_values)
        n = max(len(values), 1)
        known = [k for k in spec["shares"] if k != OTHER]
        text = values[values.notna()].astype("str")
        counts = text.value_counts()
        shares = np.array([counts.get(k, 0) / n for k in known] + [counts[~counts.index.isin(known)].sum() / n])
        missing = float(values.isna().mean()) if len(values) else 0.0
        reference_shares = np.array([spec["shares"][k] for k in known] + [spec["shares"][OTHER]])
        shift = math.nan
    value = psi(np.append(reference_shares, spec["missing_share"]), np.append(shares, missing))
    return {
        "feature": name,
        "psi": value,
        "shift": shift,
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


def changed_fits(
    then: Sequence[Mapping[str, Any]] | None,
    now: Sequence[Mapping[str, Any]] | None,
    *,
    reference_snapshot: str,
    as_of: str,
) -> list[dict[str, Any]]:
    """The BTYD fits whose outcome differs between the reference snapshot (`then`: its fit records) and the scoring
    day `as_of` (`now`), in `now`'s order: {"model", "features", "then", "now" (FIT_OUTCOMES keys),
    "reference_snapshot", "as_of"}. Empty when either side has no records (an older bundle, BTYD off)."""
    if not then or not now:
        return []
    before = {fit.get("model"): fit.get("outcome") for fit in then}
    return [
        {"model": fit["model"], "features": list(fit.get("features") or []), "then": before[fit["model"]],
         "now": fit.get("outcome"), "reference_snapshot": reference_snapshot, "as_of": as_of}
        for fit in now
        if fit.get("model") in before and before[fit["model"]] != fit.get("outcome")
    ]


def drift_warnings(
    table: pd.DataFrame,
    *,
    predicted_rate: float,
    observed_rate: float | None,
    psi_warning: float,
    missing_share_warning: float,
    churn_rate_gap_warning: float,
    min_shift: float = 0.0,
    fits: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """Plain sentences for each drift threshold passed (empty when none). A PSI above `psi_warning` counts only with a
    `shift` of at least `min_shift` standard deviations, or an unknown one (categories, an older reference).
    The shifted features of a fit in `fits` (`changed_fits`) get a sentence of their own naming the change of fit."""
    found = []
    moved = (table["psi"] > psi_warning) & ~(table["shift"] < min_shift)
    shifted = table[moved & (table["feature"] != SCORE)]
    threshold = f"monitor.psi_warning={psi_warning}, monitor.min_shift={min_shift}"
    with_fit = []
    for fit in fits:
        rows = shifted[shifted["feature"].isin(fit["features"])]
        shifted = shifted[~shifted["feature"].isin(fit["features"])]
        if not rows.empty:
            with_fit.append(
                f"{fit['model']} features shifted with their fit, not necessarily with the customers: {_names(rows)}; "
                f"the {fit['model']} fit {_found(fit['now'])} on the scoring day {fit['as_of']} and "
                f"{_found(fit['then'])} at the training test snapshot {fit['reference_snapshot']} ({threshold})")
    if not shifted.empty:
        found.append(f"features shifted since the training test snapshot: {_names(shifted)} ({threshold})")
    found += with_fit
    score = table[moved & (table["feature"] == SCORE)]
    if not score.empty:
        found.append(f"the churn score's distribution shifted: {_moved(next(score.itertuples()))} ({threshold})")
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


def _names(rows: pd.DataFrame) -> str:
    """'a (PSI 1.23, values moved 0.40 standard deviations), b (PSI 0.30)' for the rows of a drift table."""
    return ", ".join(f"{row.feature} ({_moved(row)})" for row in rows.itertuples())


def _found(outcome: str | None) -> str:
    """What a fit with `outcome` found, in words (FIT_OUTCOMES; an unknown outcome as it was recorded)."""
    return FIT_OUTCOMES.get(str(outcome), f"ended as {outcome!r}")


def _moved(row) -> str:
    """'PSI 1.23, values moved 0.40 standard deviations' (the shift left out when unknown)."""
    if math.isnan(row.shift):
        return f"PSI {row.psi:.2f}"
    return f"PSI {row.psi:.2f}, values moved {row.shift:.2f} standard deviations"


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
