"""Measured uplift per action pooled over campaigns, and the playbook version that carries it.

`pooled_uplift(measured)` combines the per-campaign results of `churn measure` (one row per campaign
and action: n and churn rate of treated and control) into one estimate per action:

- uplift (share of churn prevented, the playbook's quantity) = 1 - the Mantel-Haenszel risk ratio of the
  campaigns, interval 1 - exp(log RR +- z se) with the Greenland-Robins (1985) variance of its log. Its weights
  (control churners x treated / all) do not grow with a campaign's own effect, as inverse-variance weights of log
  risk ratios do: with the control groups of a few dozen customers that campaigns hold, a campaign whose control
  churned more by chance got a smaller variance, more weight, and a higher pooled uplift (five campaigns of a
  real export where nobody was treated pooled to 0.136 [0.049, 0.215] for one action; Mantel-Haenszel: 0.078,
  its interval holding 0). A campaign without control churners still counts (as in the Cochrane handbook's
  default); with none in any campaign the ratio is undefined (`campaigns_without_ratio` counts such campaigns).
- churn_reduction (control minus treated churn) pooled with the Mantel-Haenszel weights treated x control / all,
  its variance from the campaigns' Wald variances, for reference.
- Campaigns share customers: lists scored month after month select many of the same customers, and a persistent
  control group (`pipeline.actions.assign_control`) holds the same ones in every list; their outcomes in
  overlapping windows move together, so the campaigns are not independent samples. `repeat_factors` measures it
  per action and group (k-bar = sum of k^2 / sum of k over customers, k = the campaigns a customer is in, as in a
  design effect with outcomes fully correlated), and both intervals are widened by the larger of the two: a
  customer in five campaigns counts about once in their width.
- Cochran's Q and I^2 (of inverse-variance weighted log risk ratios, 0.5 added to every cell of a campaign with a
  zero cell) say whether the campaigns disagree more than chance allows (I^2 near 0: they agree).

`updated_playbook(raw, pooled, ...)` returns a new playbook mapping in which each measured action's
`uplift` is the planned and the measured value combined by their precision (`adopted_uplift`: the planned value
with its standard deviation, the action's `uplift_sd` or by default the planned value itself, as a normal prior;
the measured one with the standard error its interval gives), clipped to 0..1 as the playbook requires. Its
`measured` block records the measured value and interval, the campaigns, the counts, the planned value and the
measurement's weight. Taking the measured value alone, as before, let a noisy interval switch an action off: five
Online Retail campaigns where nobody was treated measured `onboarding_series` at -0.056 [-0.249, 0.108], and the
playbook took 0 for it.
`next_version_path(path)` names the new file (`playbook.v2.yaml`, `.v3`, ...); nothing is overwritten.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.errors import ScoreError

POOLED_COLUMNS = [
    "action",
    "campaigns",
    "n_campaigns",
    "campaigns_without_ratio",
    "n_treatment",
    "n_control",
    "churn_treatment",
    "churn_control",
    "uplift",
    "uplift_low",
    "uplift_high",
    "churn_reduction",
    "churn_reduction_low",
    "churn_reduction_high",
    "i_squared",
    "repeat_factor",
]
_VERSION = re.compile(r"^(?P<stem>.+?)\.v(?P<number>\d+)$")


def check_measured(measured: pd.DataFrame) -> None:
    """Raise ScoreError unless `measured` has the per-campaign columns pooling needs."""
    needed = ["as_of", "action", "n_treatment", "n_control", "churn_treatment", "churn_control"]
    missing = [c for c in needed if c not in measured.columns]
    if missing:
        raise ScoreError(f"the measured campaigns lack the columns {missing}: are they measured_*.json from `churn measure`?")


def _i_squared(estimate: np.ndarray, variance: np.ndarray, groups: np.ndarray) -> pd.Series:
    """Per group: I^2 of the estimates around their inverse-variance pooled value (Cochran's Q), over the rows with a
    finite positive variance."""
    ok = np.isfinite(estimate) & np.isfinite(variance) & (variance > 0)
    frame = pd.DataFrame({"g": groups[ok], "w": 1 / variance[ok], "e": estimate[ok]})
    frame["we"] = frame["w"] * frame["e"]
    sums = frame.groupby("g").agg(w=("w", "sum"), we=("we", "sum"), k=("e", "size"))
    pooled = sums["we"] / sums["w"]
    frame["q"] = frame["w"] * (frame["e"] - pooled.reindex(frame["g"]).to_numpy()) ** 2
    q = frame.groupby("g")["q"].sum().reindex(sums.index)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(np.where(q > 0, np.clip((q - (sums["k"] - 1)) / q, 0.0, 1.0), 0.0), index=sums.index)


def mantel_haenszel_log_risk_ratio(
    x_t: np.ndarray, n_t: np.ndarray, x_c: np.ndarray, n_c: np.ndarray, groups: np.ndarray
) -> pd.DataFrame:
    """Per group of campaigns (x_t churners of n_t treated, x_c of n_c control): pooled (log of the Mantel-Haenszel
    risk ratio treated / control) and se (Greenland-Robins). A campaign with an empty cell (no churner, or nobody
    kept, in either group, but some churner) counts with 0.5 added to each of its cells: a ratio of 0 has no log, and a group whose
    every customer churned gave its churn no variance (3 of 3 control customers churned: an interval of +-0.04 around
    the uplift, where one customer more kept would have moved it by 0.5). NaN where no control customer churned."""
    plain = _mantel_haenszel_sums(x_t, n_t, x_c, n_c, groups)
    # A campaign where nobody churned tells nothing of a ratio: it stays out of the sums, uncorrected (Cochrane).
    empty = ((x_t == 0) | (x_c == 0) | (x_t == n_t) | (x_c == n_c)) & ~((x_t == 0) & (x_c == 0))
    half = np.where(empty, 0.5, 0.0)
    sums = _mantel_haenszel_sums(x_t + half, n_t + 2 * half, x_c + half, n_c + 2 * half, groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(plain["s"] > 0, np.log(sums["r"] / sums["s"]), np.nan)
        se = np.where(plain["s"] > 0, np.sqrt(sums["p"] / (sums["r"] * sums["s"])), np.nan)
    return pd.DataFrame({"pooled": pooled, "se": se}, index=sums.index)


def _mantel_haenszel_sums(
    x_t: np.ndarray, n_t: np.ndarray, x_c: np.ndarray, n_c: np.ndarray, groups: np.ndarray
) -> pd.DataFrame:
    """Per group: r = sum x_t n_c / N, s = sum x_c n_t / N and the Greenland-Robins p = sum (n_t n_c (x_t + x_c) -
    x_t x_c N) / N^2, N = n_t + n_c."""
    total = n_t + n_c
    frame = pd.DataFrame({"g": groups, "r": x_t * n_c / total, "s": x_c * n_t / total,
                          "p": (n_t * n_c * (x_t + x_c) - x_t * x_c * total) / total**2})
    return frame.groupby("g")[["r", "s", "p"]].sum()


def mantel_haenszel_difference(
    x_t: np.ndarray, n_t: np.ndarray, x_c: np.ndarray, n_c: np.ndarray, groups: np.ndarray
) -> pd.DataFrame:
    """Per group of campaigns: pooled (control minus treated churn, Mantel-Haenszel weights n_t n_c / (n_t + n_c))
    and se (from the campaigns' Wald variances)."""
    p_t, p_c = x_t / n_t, x_c / n_c
    weight = n_t * n_c / (n_t + n_c)
    frame = pd.DataFrame({"g": groups, "w": weight, "wd": weight * (p_c - p_t),
                          "wwv": weight**2 * (p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)})
    sums = frame.groupby("g")[["w", "wd", "wwv"]].sum()
    return pd.DataFrame({"pooled": sums["wd"] / sums["w"], "se": np.sqrt(sums["wwv"]) / sums["w"]}, index=sums.index)


def repeat_factors(arms: pd.DataFrame) -> pd.Series:
    """Per action (index): the larger over its treated and control groups of sum(k^2) / sum(k), k = the number of
    campaigns each customer is in with that action and group. `arms`: as_of, customer_id, action, group
    ('treatment' or 'control') of the measured lists. 1 when no customer is in two campaigns."""
    counts = arms.groupby(["action", "group", "customer_id"], observed=True)["as_of"].nunique()
    by_group = (counts**2).groupby(level=["action", "group"]).sum() / counts.groupby(level=["action", "group"]).sum()
    return by_group.groupby(level="action").max().rename("repeat_factor")


def pooled_uplift(
    measured: pd.DataFrame, *, confidence: float = 0.95, repeats: pd.Series | None = None
) -> pd.DataFrame:
    """One row per action (sorted), columns POOLED_COLUMNS, from per-campaign rows of `churn measure`.

    Input columns: as_of (date or ISO text), action, n_treatment, n_control, churn_treatment, churn_control;
    the 'all' rows of `churn measure` are ignored. Actions without treated and control customers are left out.
    `repeats`: `repeat_factors` of the campaigns' lists (per action; 1 where missing), by which the variances grow.
    """
    check_measured(measured)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rows = measured[(measured["action"] != "all") & (measured["n_treatment"] > 0) & (measured["n_control"] > 0)]
    if rows.empty:
        raise ScoreError("no measured campaign has both treated and control customers: nothing to pool")
    n_t, n_c = rows["n_treatment"].to_numpy(float), rows["n_control"].to_numpy(float)
    x_t = np.round(rows["churn_treatment"].to_numpy(float) * n_t)
    x_c = np.round(rows["churn_control"].to_numpy(float) * n_c)
    action = rows["action"].astype(str).to_numpy()

    zero = (x_t == 0) | (x_c == 0) | (x_t == n_t) | (x_c == n_c)
    ct, cc = np.where(zero, x_t + 0.5, x_t), np.where(zero, x_c + 0.5, x_c)
    nt, nc = np.where(zero, n_t + 1, n_t), np.where(zero, n_c + 1, n_c)
    has_ratio = x_c > 0
    log_rr = np.where(has_ratio, np.log((ct / nt) / (cc / nc)), np.nan)
    spread = _i_squared(log_rr, 1 / ct - 1 / nt + 1 / cc - 1 / nc, action)
    ratio = mantel_haenszel_log_risk_ratio(x_t, n_t, x_c, n_c, action)
    difference = mantel_haenszel_difference(x_t, n_t, x_c, n_c, action)

    frame = pd.DataFrame({"action": action, "as_of": rows["as_of"].astype(str).to_numpy(), "n_t": n_t, "n_c": n_c,
                          "x_t": x_t, "x_c": x_c, "no_ratio": ~has_ratio})
    totals = frame.groupby("action").agg(
        campaigns=("as_of", lambda dates: sorted(set(dates))),
        n_treatment=("n_t", "sum"), n_control=("n_c", "sum"), x_t=("x_t", "sum"), x_c=("x_c", "sum"),
        campaigns_without_ratio=("no_ratio", "sum"),
    )
    ratio, difference, spread = (part.reindex(totals.index) for part in (ratio, difference, spread))
    given = repeats if repeats is not None else pd.Series(dtype=float)
    repeat = given.reindex(totals.index).fillna(1.0).clip(lower=1.0)
    ratio["se"], difference["se"] = ratio["se"] * np.sqrt(repeat), difference["se"] * np.sqrt(repeat)
    result = pd.DataFrame(
        {
            "action": totals.index.astype(str),
            "campaigns": totals["campaigns"].to_numpy(),
            "n_campaigns": totals["campaigns"].map(len).to_numpy(),
            "campaigns_without_ratio": totals["campaigns_without_ratio"].astype(int).to_numpy(),
            "n_treatment": totals["n_treatment"].astype(int).to_numpy(),
            "n_control": totals["n_control"].astype(int).to_numpy(),
            "churn_treatment": (totals["x_t"] / totals["n_treatment"]).to_numpy(),
            "churn_control": (totals["x_c"] / totals["n_control"]).to_numpy(),
            "uplift": 1 - np.exp(ratio["pooled"].to_numpy()),
            "uplift_low": 1 - np.exp(ratio["pooled"].to_numpy() + z * ratio["se"].to_numpy()),
            "uplift_high": 1 - np.exp(ratio["pooled"].to_numpy() - z * ratio["se"].to_numpy()),
            "churn_reduction": difference["pooled"].to_numpy(),
            "churn_reduction_low": (difference["pooled"] - z * difference["se"]).to_numpy(),
            "churn_reduction_high": (difference["pooled"] + z * difference["se"]).to_numpy(),
            "i_squared": spread.fillna(0.0).to_numpy(),
            "repeat_factor": repeat.to_numpy(),
        }
    )
    return result.sort_values("action").reset_index(drop=True)[POOLED_COLUMNS]


def next_version_path(path: Path) -> Path:
    """The next free versioned name beside `path`: playbook.yaml -> playbook.v2.yaml (or v3 if v2 exists...)."""
    path = Path(path)
    match = _VERSION.match(path.stem)
    stem = match.group("stem") if match else path.stem
    taken = [int(m.group("number")) for p in path.parent.glob(f"{stem}.v*{path.suffix}") if (m := _VERSION.match(p.stem))]
    number = max([int(match.group("number")) if match else 1, *taken]) + 1
    return path.with_name(f"{stem}.v{number}{path.suffix}")


def _rounded(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


CHANGE_COLUMNS = ["action", "planned_uplift", "measured_uplift", "uplift_low", "uplift_high", "weight", "uplift",
                  "campaigns"]
MIN_PLANNED_SD = 0.02  # the default spread of a planned uplift of 0 (or near it): otherwise nothing could move it


def adopted_uplift(
    planned: float, planned_sd: float | None, measured: float, low: float, high: float, *, confidence: float
) -> tuple[float, float]:
    """(the uplift a playbook takes, the measurement's weight in it): `planned` with its standard deviation
    (`planned_sd`, by default max(planned, MIN_PLANNED_SD): a starting assumption is known to its order of magnitude)
    and `measured` with the standard error its interval (`low`, `high` at `confidence`) gives, averaged by their
    precisions as a normal prior and likelihood combine; clipped to 0..1. Without a usable interval the measured
    value is taken whole."""
    spread = planned_sd if planned_sd is not None else max(planned, MIN_PLANNED_SD)
    error = (high - low) / (2 * stats.norm.ppf(0.5 + confidence / 2))
    if not np.isfinite(error) or error <= 0:
        return float(np.clip(measured, 0.0, 1.0)), 1.0
    weight = error**-2 / (error**-2 + spread**-2)
    return float(np.clip(weight * measured + (1 - weight) * planned, 0.0, 1.0)), float(weight)


def updated_playbook(
    raw: Mapping[str, Any], pooled: pd.DataFrame, *, based_on: str, measured_on: dt.date, confidence: float = 0.95
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A new playbook mapping with each measured action's uplift replaced, and the table of changes.

    Input: `raw` (the current playbook YAML as a mapping), `pooled` (from `pooled_uplift`).
    Actions without a pooled ratio (no control churner in any campaign) keep their value. The planned value is the
    one the first update replaced (`measured.planned_uplift`), so that a later update, pooling every campaign again,
    does not count the earlier ones twice.
    Output: (new mapping with `version` = old + 1 and `based_on`, changes: action, planned_uplift, measured_uplift,
    uplift_low, uplift_high, weight, uplift (adopted), campaigns).
    """
    new = copy.deepcopy(dict(raw))
    by_action = {row["action"]: row for row in pooled.to_dict("records")}
    changes = []
    for action in new.get("actions", []):
        row = by_action.get(action.get("name"))
        if row is None or not np.isfinite(row["uplift"]):
            continue
        earlier = action.get("measured") or {}
        planned = earlier.get("planned_uplift")
        planned = action.get("uplift") if planned is None else planned
        adopted, weight = adopted_uplift(float(planned), action.get("uplift_sd"), float(row["uplift"]),
                                         float(row["uplift_low"]), float(row["uplift_high"]), confidence=confidence)
        action["uplift"] = round(adopted, 4)
        action["measured"] = {
            "uplift": _rounded(row["uplift"]),
            "low": _rounded(row["uplift_low"]),
            "high": _rounded(row["uplift_high"]),
            "confidence": confidence,
            "campaigns": [str(d) for d in row["campaigns"]],
            "n_treatment": int(row["n_treatment"]),
            "n_control": int(row["n_control"]),
            "planned_uplift": planned,
            "weight": _rounded(weight),
            "measured_on": measured_on.isoformat(),
            "method": "Mantel-Haenszel pooled risk ratio",
            "repeat_factor": _rounded(row.get("repeat_factor", 1.0)),
        }
        changes.append({"action": action["name"], "planned_uplift": planned, "measured_uplift": _rounded(row["uplift"]),
                        "uplift_low": _rounded(row["uplift_low"]), "uplift_high": _rounded(row["uplift_high"]),
                        "weight": _rounded(weight), "uplift": action["uplift"],
                        "campaigns": ", ".join(str(d) for d in row["campaigns"])})
    new["version"] = int(raw.get("version") or 1) + 1
    new["based_on"] = based_on
    return new, pd.DataFrame(changes, columns=CHANGE_COLUMNS)


def holds_no_effect_note(changes: pd.DataFrame) -> str | None:
    """A sentence naming the actions of `updated_playbook`'s changes whose measured interval holds 0 (uplift_low <= 0
    <= uplift_high): the new playbook takes their estimate, but the campaigns cannot tell it from no effect. None
    when every interval lies above or below 0."""
    unsure = changes[(changes["uplift_low"] <= 0) & (changes["uplift_high"] >= 0)]
    if unsure.empty:
        return None
    shown = "; ".join(f"{row.action} {row.measured_uplift:.3f} [{row.uplift_low:.3f}, {row.uplift_high:.3f}]"
                      for row in unsure.itertuples())
    return (f"the measured uplift of {shown} holds 0 in its interval: these campaigns cannot tell it from no effect, "
            "so the new playbook weighs it against the planned uplift by precision (column weight); measure more "
            "campaigns before relying on it")
