"""Measured effect of a retention campaign: churn of treated vs control customers after scoring.

A customer churned when they made no purchase (a purchase line, `pipeline.contract.purchase_line`, as in
`pipeline.labels`) in `[as_of, as_of + horizon_days)`: the training label's definition. Per action
and overall ("all"):

- churn_reduction = churn(control) - churn(treatment), with Newcombe's hybrid score interval for a
  difference of two independent proportions (method 10 in Newcombe 1998, built from Wilson intervals;
  unlike the Wald interval it keeps its coverage near 0 or 1 and with small groups).
- uplift = 1 - churn(treatment) / churn(control): the share of churn prevented, the quantity the
  playbook's `uplift` assumes. Interval from the log risk ratio (Katz et al. 1978), with a 0.5
  correction when a cell of the two-by-two table is empty (no churner, or nobody kept, in a group: 3 of 3 control
  customers churned gave an interval of +-0.04 without it); missing when the control group has no churn at all.
- realised value: mean spend in the window of treated minus control customers, times the number
  treated, minus the cost of the actions given; next to the expected net value the scoring predicted.
  Its interval comes from the standard error of that difference of means (Welch): spend is heavy-tailed
  and control groups are small, so a realised value far from 0 is often chance (on a real export where
  nobody was treated, one action's read 27,403 with an interval from -4,665 to 59,472).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.actions import GROUP_CONTROL, GROUP_TREATMENT
from pipeline.contract import purchase_lines
from pipeline.errors import ScoreError

ALL_ACTIONS = "all"
MEASURE_COLUMNS = [
    "action",
    "n_treatment",
    "n_control",
    "churn_treatment",
    "churn_control",
    "churn_reduction",
    "churn_reduction_low",
    "churn_reduction_high",
    "uplift",
    "uplift_low",
    "uplift_high",
    "planned_uplift",
    "spend_treatment",
    "spend_control",
    "incremental_spend",
    "action_cost",
    "realised_net_value",
    "realised_net_value_low",
    "realised_net_value_high",
    "expected_net_value",
]


def wilson_interval(successes: np.ndarray, n: np.ndarray, *, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for proportions (vectorised); NaN where n == 0."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.asarray(successes, dtype=float) / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def newcombe_difference(
    x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, *, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference p1 - p2 and its Newcombe hybrid score interval (low, high)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = np.asarray(x1, float) / n1, np.asarray(x2, float) / n2
    l1, u1 = wilson_interval(x1, n1, z=z)
    l2, u2 = wilson_interval(x2, n2, z=z)
    difference = p1 - p2
    low = difference - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


def relative_reduction(
    x_treat: np.ndarray, n_treat: np.ndarray, x_control: np.ndarray, n_control: np.ndarray, *, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 - risk ratio (treated / control) with a log risk-ratio interval; NaN without control churn."""
    x_t, n_t, x_c, n_c = (np.asarray(a, dtype=float) for a in (x_treat, n_treat, x_control, n_control))
    zero_cell = (x_t == 0) | (x_c == 0) | (x_t == n_t) | (x_c == n_c)  # an empty cell: no variance otherwise
    ct, cc = np.where(zero_cell, x_t + 0.5, x_t), np.where(zero_cell, x_c + 0.5, x_c)
    nt, nc = np.where(zero_cell, n_t + 1.0, n_t), np.where(zero_cell, n_c + 1.0, n_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (x_t / n_t) / (x_c / n_c)
        se = np.sqrt(1 / ct - 1 / nt + 1 / cc - 1 / nc)
        log_ratio = np.log((ct / nt) / (cc / nc))
    undefined = (x_c == 0) | (n_t == 0) | (n_c == 0)
    low = np.where(undefined, np.nan, 1 - np.exp(log_ratio + z * se))
    high = np.where(undefined, np.nan, 1 - np.exp(log_ratio - z * se))
    return np.where(undefined, np.nan, 1 - ratio), low, high


DETECTION_POWER = 0.8  # the chance of a campaign telling a true effect from chance, in the usual sample-size formula


def _detection_z(confidence: float, power: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2) + stats.norm.ppf(power))


def detectable_reduction(
    churn: np.ndarray, n_treatment: np.ndarray, n_control: np.ndarray, *, confidence: float = 0.95,
    power: float = DETECTION_POWER,
) -> np.ndarray:
    """The smallest drop in churn rate (control minus treated, absolute) that a campaign with these group sizes tells
    from chance (`confidence`, two-sided) with probability `power`, when churn is about `churn` in both groups (the
    normal approximation of the sample-size formula for two proportions); inf where a group is empty."""
    churn = np.asarray(churn, dtype=float)
    with np.errstate(divide="ignore"):
        spread = 1 / np.asarray(n_treatment, dtype=float) + 1 / np.asarray(n_control, dtype=float)
    return _detection_z(confidence, power) * np.sqrt(churn * (1 - churn) * spread)


def control_share_to_detect(
    reduction: float, churn: float, selected: int, *, confidence: float = 0.95, power: float = DETECTION_POWER
) -> float | None:
    """The smallest share of `selected` customers to hold out so that their campaign detects a drop in churn of
    `reduction` (as `detectable_reduction`); None when no share can (half in control detects the least)."""
    variance = churn * (1 - churn)
    if variance <= 0:
        return None if reduction <= 0 else 0.0
    # 1/(N(1-s)) + 1/(Ns) <= R  <=>  K s(1-s) >= 1 with K = N R; s(1-s) is at most 1/4, at s = 1/2.
    k = selected * (reduction / _detection_z(confidence, power)) ** 2 / variance
    return None if k < 4 else float((1 - np.sqrt(1 - 4 / k)) / 2)


def outcomes_after(
    customers: pd.Series, transactions: pd.DataFrame, *, as_of: dt.date, horizon_days: int
) -> pd.DataFrame:
    """Per customer in `customers`: purchases and net spend in [as_of, as_of + horizon_days), and churned.

    Output: index = the customer ids, columns orders (distinct orders with a purchase line, int),
    spend (net amount incl. returns, float), churned (no purchase in the window, bool).
    """
    start = pd.Timestamp(as_of, tz="UTC")
    end = start + pd.Timedelta(days=horizon_days)
    window = transactions[
        (transactions["ordered_at"] >= start)
        & (transactions["ordered_at"] < end)
        & transactions["customer_id"].isin(customers)
    ]
    purchase_orders = window["order_id"].where(purchase_lines(window))
    per_customer = window.assign(purchase_order=purchase_orders).groupby("customer_id").agg(
        orders=("purchase_order", "nunique"), spend=("amount", "sum")
    )
    result = per_customer.reindex(pd.Index(customers, name="customer_id")).fillna({"orders": 0, "spend": 0.0})
    result["orders"] = result["orders"].astype(int)
    result["churned"] = result["orders"] == 0
    return result


def check_scores(scores: pd.DataFrame) -> dt.date:
    """Raise ScoreError unless `scores` is one scoring run with a group column; return its as_of."""
    needed = ["customer_id", "group", "action", "action_cost", "expected_net_value", "as_of"]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ScoreError(f"the scores file lacks the columns {missing}: is it an at_risk_*.parquet from `churn score`?")
    dates = pd.to_datetime(scores["as_of"]).dt.date.unique()
    if len(dates) != 1:
        raise ScoreError(f"the scores file mixes several as_of dates ({sorted(dates)}); measure one scoring run")
    return dates[0]


def measure_campaign(
    scores: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    horizon_days: int,
    confidence: float = 0.95,
    planned_uplift: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Treated vs control churn per action and overall ('all' row last).

    Input: `scores` (customer_id, group, action, action_cost, expected_net_value, as_of: one date) and
    contract-shaped `transactions` (customer_id, order_id, ordered_at, amount).
    Output: one row per action plus 'all', columns MEASURE_COLUMNS (see the module docstring).
    """
    as_of = check_scores(scores)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    arms = scores[scores["group"].isin([GROUP_TREATMENT, GROUP_CONTROL])]
    if arms.empty:
        raise ScoreError("the scores file has no treatment or control customers: nothing to measure")
    outcome = outcomes_after(arms["customer_id"], transactions, as_of=as_of, horizon_days=horizon_days)
    frame = pd.DataFrame(
        {
            "action": arms["action"].to_numpy(dtype=object),
            "treated": (arms["group"] == GROUP_TREATMENT).to_numpy(),
            "churned": outcome["churned"].to_numpy(),
            "spend": outcome["spend"].to_numpy(),
            "cost": arms["action_cost"].fillna(0.0).to_numpy(),
            "expected": arms["expected_net_value"].fillna(0.0).to_numpy(),
        }
    )
    overall = frame.assign(action=ALL_ACTIONS)
    both = pd.concat([frame, overall], ignore_index=True)
    summary = both.groupby(["action", "treated"]).agg(
        n=("churned", "size"), churned=("churned", "sum"), spend=("spend", "mean"), spread=("spend", "var"),
        cost=("cost", "sum"),
        expected=("expected", "sum"),
    )
    wide = summary.unstack("treated").fillna(0)
    order = sorted(a for a in wide.index if a != ALL_ACTIONS) + [ALL_ACTIONS]
    wide = wide.reindex(order)

    def col(name: str, treated: bool) -> np.ndarray:
        return wide[(name, treated)].to_numpy(dtype=float) if (name, treated) in wide.columns else np.zeros(len(wide))

    n_t, n_c = col("n", True), col("n", False)
    x_t, x_c = col("churned", True), col("churned", False)
    reduction, reduction_low, reduction_high = newcombe_difference(x_c, n_c, x_t, n_t, z=z)
    uplift, uplift_low, uplift_high = relative_reduction(x_t, n_t, x_c, n_c, z=z)
    spend_t = np.where(n_t > 0, col("spend", True), np.nan)
    spend_c = np.where(n_c > 0, col("spend", False), np.nan)
    incremental = spend_t - spend_c
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = z * np.sqrt(np.where((n_t > 1) & (n_c > 1), col("spread", True) / n_t + col("spread", False) / n_c,
                                      np.nan))
    cost = col("cost", True)
    planned = planned_uplift or {}
    with np.errstate(invalid="ignore", divide="ignore"):
        churn_t, churn_c = x_t / n_t, x_c / n_c
    return pd.DataFrame(
        {
            "action": pd.Series(order, dtype="str"),
            "n_treatment": n_t.astype(int),
            "n_control": n_c.astype(int),
            "churn_treatment": churn_t,
            "churn_control": churn_c,
            "churn_reduction": reduction,
            "churn_reduction_low": reduction_low,
            "churn_reduction_high": reduction_high,
            "uplift": uplift,
            "uplift_low": uplift_low,
            "uplift_high": uplift_high,
            "planned_uplift": [planned.get(a, np.nan) for a in order],
            "spend_treatment": spend_t,
            "spend_control": spend_c,
            "incremental_spend": incremental,
            "action_cost": cost,
            "realised_net_value": incremental * n_t - cost,
            "realised_net_value_low": (incremental - margin) * n_t - cost,
            "realised_net_value_high": (incremental + margin) * n_t - cost,
            "expected_net_value": col("expected", True),
        }
    )[MEASURE_COLUMNS]


def chance_note(result: pd.DataFrame, *, confidence: float = 0.95) -> str | None:
    """A sentence when several actions were measured (`measure_campaign` rows) and the churn-reduction interval of
    some of them excludes 0: with k actions, at least one such interval excludes 0 by chance in 1 - confidence^k of
    the campaigns that change nothing. None otherwise."""
    actions = result[result["action"] != ALL_ACTIONS]
    measured = actions[(actions["n_treatment"] > 0) & (actions["n_control"] > 0)]
    apart = measured[(measured["churn_reduction_low"] > 0) | (measured["churn_reduction_high"] < 0)]
    if len(measured) < 2 or apart.empty:
        return None
    named = ", ".join(apart["action"])
    return (f"{named}: the churn reduction's {confidence:.0%} interval excludes 0. With {len(measured)} actions "
            f"measured, at least one interval does so by chance in {1 - confidence ** len(measured):.0%} of campaigns "
            "that change nothing: pool it with the other campaigns (churn measure --update-playbook, whose interval "
            "counts customers the campaigns share about once) before relying on it")
