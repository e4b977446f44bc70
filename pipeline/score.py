"""Score customers: probability -> risk tier -> action within budget -> control group -> reasons.

`score_customers` is pure: features and a loaded model in, the at-risk table out. Per-customer
contributions (LightGBM `pred_contrib`, TreeSHAP: 0.3-2 ms a customer, against ~10 us for the
probability) are computed only for the customers who need reasons: every customer selected for an
action, and the `score.reason_limit` highest-risk customers of the tiers in `score.reason_tiers`.
Column `reasons_status` says for every row whether it was explained and, if not, why.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from pipeline.actions import (
    NO_ACTION_NOT_WORTH,
    NO_ACTION_REASONS,
    allocate_budget,
    assign_control,
    best_actions,
    customer_value,
    no_action_reasons,
)
from pipeline.config import RELATIVE_HIGH, RELATIVE_MEDIUM, RiskTiersConfig, ScoreConfig
from pipeline.errors import ScoreError
from pipeline.measure import control_share_to_detect, detectable_reduction
from pipeline.playbook import Playbook, eligibility_matrix
from pipeline.reasons import ReasonSpec, reason_columns, top_reasons, typical_values

TIER_HIGH, TIER_MEDIUM, TIER_LOW = "high", "medium", "low"
AT_RISK_TIERS = (TIER_HIGH, TIER_MEDIUM)

# reasons_status values: why a row has reasons or not.
REASONS_EXPLAINED = "explained"  # contributions computed; reason_1.. hold the drivers that raise the risk
REASONS_NO_DRIVER = "no_risk_driver"  # contributions computed, but no feature with a reason template raises the risk
REASONS_TIER_SKIPPED = "tier_not_explained"  # not selected, and the risk tier is not in score.reason_tiers
REASONS_OVER_LIMIT = "over_reason_limit"  # in a reason tier, but not among the score.reason_limit riskiest
REASONS_STATUSES = (REASONS_EXPLAINED, REASONS_NO_DRIVER, REASONS_TIER_SKIPPED, REASONS_OVER_LIMIT)


class ScoringModel(Protocol):
    """What scoring needs from pipeline.model.ChurnModel."""

    feature_names_: list[str]

    def check_features(self, df: pd.DataFrame) -> None: ...

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray: ...

    def contributions(self, df: pd.DataFrame) -> pd.DataFrame: ...


def output_columns(n_reasons: int = 3) -> list[str]:
    """Columns of the at-risk table, in order."""
    return [
        "customer_id",
        "churn_probability",
        "risk_tier",
        *reason_columns(n_reasons),
        "reasons_status",
        "action",
        "action_cost",
        "customer_value",
        "expected_net_value",
        "uplift_source",
        "no_action_reason",
        "best_action",
        "best_action_net_value",
        "group",
        "model_name",
        "model_version",
        "as_of",
    ]


TREATMENT_RECORD = ("customer_id", "group", "action")  # what a list hands out, and what `churn measure` reads


def changed_treatments(existing: pd.DataFrame, new: pd.DataFrame) -> int:
    """Customers whose group or action differ between two at-risk lists of one day, or who are in one list only.
    Input: both with the TREATMENT_RECORD columns (customer_id, group, action; no action equals no action)."""
    columns = list(TREATMENT_RECORD)
    merged = existing[columns].astype("str").fillna("").merge(
        new[columns].astype("str").fillna(""), on="customer_id", how="outer", suffixes=("_then", "_now"),
        indicator=True)
    differ = ((merged["_merge"] != "both") | (merged["group_then"] != merged["group_now"])
              | (merged["action_then"] != merged["action_now"]))
    return int(differ.sum())


@dataclass(frozen=True)
class TierThresholds:
    """One list's churn probabilities from which a customer is in the high and the medium tier (above 1, or inf: no
    customer can be), and what they came from: `setting` (score.risk_tiers) and, for relative tiers, the mean churn
    probability of the `customers` scored."""

    high: float
    medium: float
    setting: RiskTiersConfig
    mean_probability: float | None = None
    customers: int | None = None


def mean_probability(probability: pd.Series) -> float:
    """The mean of `probability`, the same whatever the order of its values (summed sorted): the list's thresholds
    are found again from the written table, in another order, and must come out equal to the last bit."""
    return float(np.sort(probability.to_numpy(dtype=float)).mean())


def tier_thresholds(probability: pd.Series, *, tiers: RiskTiersConfig) -> TierThresholds:
    """The tier thresholds of a list whose customers have these churn probabilities: `tiers` itself, or with
    `tiers.relative_to` mean_probability its multiples of their mean churn probability. A multiple of the mean above
    1 is reached by nobody; so is any multiple of a mean of 0 (inf: nobody is more at risk than the others)."""
    if tiers.relative_to is None:
        return TierThresholds(high=tiers.high, medium=tiers.medium, setting=tiers)
    mean = mean_probability(probability)
    high, medium = (multiple * mean if mean > 0 else math.inf for multiple in (tiers.high, tiers.medium))
    return TierThresholds(high=high, medium=medium, setting=tiers, mean_probability=mean, customers=len(probability))


def action_probability_floor(cfg: ScoreConfig, thresholds: TierThresholds) -> float:
    """score.min_probability, or the list's medium tier threshold when it is not set."""
    return thresholds.medium if cfg.min_probability is None else cfg.min_probability


def _reachable(threshold: float) -> float | None:
    return threshold if threshold <= 1.0 else None


def tiers_summary(thresholds: TierThresholds) -> dict:
    """The summary's record of the tiers: `risk_tiers` {high, medium}, the churn probabilities from which a customer is
    in each (null: a relative threshold above 1, reached by nobody), and with relative tiers `risk_tiers_from`: the
    setting, the mean churn probability and the number of customers it was taken over."""
    found: dict = {"risk_tiers": {"high": _reachable(thresholds.high), "medium": _reachable(thresholds.medium)}}
    setting = thresholds.setting
    if setting.relative_to is not None:
        found["risk_tiers_from"] = {
            "relative_to": setting.relative_to,
            "multiples": {"high": setting.high, "medium": setting.medium},
            "mean_probability": thresholds.mean_probability,
            "customers": thresholds.customers,
        }
    return found


# The relative tiers a list that names nobody suggests, strictest first: the default multiples, then looser ones.
SUGGESTED_MULTIPLES = ((RELATIVE_HIGH, RELATIVE_MEDIUM), (1.5, 1.25))


def relative_tiers_would_list(probability: pd.Series) -> dict:
    """What relative risk tiers would list among customers with these churn probabilities: the strictest setting of
    SUGGESTED_MULTIPLES that lists anyone (else the loosest), the mean churn probability, and how many customers it
    would put at risk (high or medium tier) and in the high tier."""
    p = probability.to_numpy(dtype=float)
    for high, medium in SUGGESTED_MULTIPLES:  # a few settings, not customers
        tiers = RiskTiersConfig(high=high, medium=medium, relative_to="mean_probability")
        thresholds = tier_thresholds(probability, tiers=tiers)
        at_risk = int((p >= thresholds.medium).sum())
        if at_risk:
            break
    return {
        "setting": {"high": tiers.high, "medium": tiers.medium, "relative_to": tiers.relative_to},
        "mean_probability": thresholds.mean_probability,
        "at_risk": at_risk,
        "high": int((p >= thresholds.high).sum()),
    }


def risk_tiers(probability: pd.Series, *, high: float, medium: float) -> pd.Series:
    """'high' (p >= high), 'medium' (p >= medium) or 'low', as str."""
    p = probability.to_numpy(dtype=float)
    tiers = np.where(p >= high, TIER_HIGH, np.where(p >= medium, TIER_MEDIUM, TIER_LOW))
    return pd.Series(tiers, index=probability.index, name="risk_tier", dtype="str")


def reasons_scope(
    probability: pd.Series,
    tiers: pd.Series,
    selected: pd.Series,
    *,
    reason_tiers: Iterable[str],
    reason_limit: int | None,
) -> pd.Series:
    """Who gets reasons, and why not the others: `reasons_status` per customer (same index, str).

    Input: churn probability, risk tier and the selected flag per customer (one index).
    Output: REASONS_EXPLAINED for every selected customer and for the `reason_limit` highest-probability
    customers of `reason_tiers` (ties: index order; None = no limit); REASONS_OVER_LIMIT for the other
    customers of those tiers; REASONS_TIER_SKIPPED for the rest.
    """
    in_reason_tier = tiers.isin(list(reason_tiers)).to_numpy()
    explained = in_reason_tier.copy()
    if reason_limit is not None:
        tier_rows = np.flatnonzero(in_reason_tier)
        by_risk = tier_rows[np.argsort(-probability.to_numpy(dtype=float)[tier_rows], kind="stable")]
        explained[by_risk[reason_limit:]] = False
    explained |= selected.to_numpy(dtype=bool)
    status = np.where(explained, REASONS_EXPLAINED, np.where(in_reason_tier, REASONS_OVER_LIMIT, REASONS_TIER_SKIPPED))
    return pd.Series(status, index=probability.index, name="reasons_status", dtype="str")


def _checked_features(features: pd.DataFrame) -> pd.DataFrame:
    if "customer_id" not in features.columns:
        raise ScoreError("the feature table has no customer_id column")
    if features.empty:
        raise ScoreError("no customers to score: nobody ordered in the lookback window before the as-of date")
    duplicated = features["customer_id"].duplicated()
    if duplicated.any():
        example = features.loc[duplicated, "customer_id"].iloc[0]
        raise ScoreError(f"the feature table repeats customers (e.g. {example!r}); expected one row per customer")
    return features.set_index("customer_id", drop=False).rename_axis(None).sort_index()


def score_customers(
    features: pd.DataFrame,
    model: ScoringModel,
    *,
    playbook: Playbook,
    specs: Iterable[ReasonSpec],
    as_of: dt.date,
    cfg: ScoreConfig,
    model_name: str,
    model_version: str,
    reason_context: Callable[[pd.DataFrame, dt.date], pd.DataFrame] | None = None,
    btyd_horizon_days: int | None = None,
    uplift: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The at-risk table for `features` (one row per customer, from build_features as of `as_of`).

    Output: `output_columns(cfg.reasons)`, one row per scored customer, sorted by churn_probability
    (highest first) then customer_id. action / action_cost / expected_net_value are filled only for
    the customers selected within the budget (group 'treatment' or 'control'); reasons only for the
    rows `reasons_scope` marks (the selected, and the `cfg.reason_limit` riskiest of `cfg.reason_tiers`);
    `reasons_status` says which rows were explained and why the others were not.
    The tiers' thresholds are `tier_thresholds` of the customers' probabilities (score.risk_tiers: fixed, or
    relative to their mean). Customers below `action_probability_floor` (score.min_probability, default the medium
    tier's threshold) get no action. `no_action_reason` says, for every at-risk (high or medium tier) customer not
    treated, why (`actions.no_action_reasons`); `best_action` / `best_action_net_value` are the eligible
    action with the highest expected net value for every customer, whether chosen or not.
    `reason_context(features, as_of)` adds derived columns for the reason templates (the registry's
    `reason_context_frame`); `btyd_horizon_days` is the horizon of btyd_expected_purchases (used by
    the 'btyd' value model only). `uplift`: per-customer uplift of some actions (index = customer_id,
    columns = action names) from `churn uplift`'s models; the playbook's uplift for the others
    (column uplift_source says which, per selected row).
    """
    frame = _checked_features(features)
    model.check_features(frame)
    probability = pd.Series(model.predict_proba(frame), index=frame.index, name="churn_probability")
    thresholds = tier_thresholds(probability, tiers=cfg.risk_tiers)
    tiers = risk_tiers(probability, high=thresholds.high, medium=thresholds.medium)
    value = customer_value(frame, cfg=cfg, btyd_horizon_days=btyd_horizon_days)
    best = best_actions(probability, value, eligibility_matrix(frame, playbook), playbook, uplift=uplift)
    below_floor = probability < action_probability_floor(cfg, thresholds)
    candidates = best.copy()
    candidates.loc[below_floor.to_numpy(), :] = np.nan  # too unlikely to churn to act on, whatever their value
    selected = allocate_budget(
        candidates, budget=cfg.budget, capacities=playbook.capacities(), exact_limit=cfg.exact_limit
    )
    groups = assign_control(selected, share=cfg.control_share, seed=cfg.seed)
    no_action = no_action_reasons(
        best, groups, below_min_probability=below_floor, capacities=playbook.capacities()
    ).where(tiers.isin(AT_RISK_TIERS) | groups.eq("control"))

    status = reasons_scope(
        probability, tiers, selected, reason_tiers=cfg.reason_tiers, reason_limit=cfg.reason_limit
    )
    explained = frame.loc[(status == REASONS_EXPLAINED).to_numpy()]
    if explained.empty:
        reasons = pd.DataFrame(index=frame.index, columns=reason_columns(cfg.reasons), dtype="str")
    else:
        specs = list(specs)
        reasons = top_reasons(
            model.contributions(explained),
            explained,
            specs=specs,
            as_of=as_of,
            n=cfg.reasons,
            context=reason_context,
            typical=typical_values(frame, specs),  # "below the typical customer": median of everyone scored
        ).reindex(frame.index)
    status = status.mask((status == REASONS_EXPLAINED) & reasons[reason_columns(cfg.reasons)[0]].isna(), REASONS_NO_DRIVER)

    chosen = candidates.where(selected, other=np.nan)
    table = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("str"),
            "churn_probability": probability,
            "risk_tier": tiers,
            **{column: reasons[column].astype("str") for column in reasons.columns},
            "reasons_status": status,
            "action": chosen["action"].astype("str"),
            "action_cost": chosen["action_cost"].astype(float),
            "customer_value": value.astype(float),
            "expected_net_value": chosen["expected_net_value"].astype(float),
            "uplift_source": chosen["uplift_source"].astype("str"),
            "no_action_reason": no_action.astype("str"),
            "best_action": best["action"].astype("str"),
            "best_action_net_value": best["expected_net_value"].astype(float),
            "group": groups,
            "model_name": pd.Series(model_name, index=frame.index, dtype="str"),
            "model_version": pd.Series(str(model_version), index=frame.index, dtype="str"),
            "as_of": pd.Series([as_of] * len(frame), index=frame.index, dtype=object),
        },
        index=frame.index,
    )
    ordered = table.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="stable")
    return ordered.reset_index(drop=True)[output_columns(cfg.reasons)]


def action_measurability(selected: pd.DataFrame, per_action: pd.DataFrame) -> dict[str, dict]:
    """Per action of the `selected` rows (treatment and control; `per_action`: their counts, columns treatment and
    control): the counts; expected_churn (mean churn probability); planned_reduction, the drop in churn the action's
    uplift expects (mean of probability × uplift, that is (expected_net_value + action_cost) / customer_value);
    detectable_reduction, the smallest drop this list's groups tell from chance (`measure.detectable_reduction`; None
    without a control or treated group); control_share_to_detect, the control share at which this many customers
    would detect the planned drop (None when no share would)."""
    value = selected["customer_value"].where(selected["customer_value"] > 0)
    rows = selected.assign(planned=(selected["expected_net_value"] + selected["action_cost"]) / value)
    means = rows.groupby("action")[["churn_probability", "planned"]].mean()
    found = {}
    for action, counts in per_action.iterrows():  # one row per playbook action chosen: a handful
        churn, planned = float(means.at[action, "churn_probability"]), float(means.at[action, "planned"])
        n_t, n_c = int(counts["treatment"]), int(counts["control"])
        detectable = float(detectable_reduction(churn, n_t, n_c)) if n_t and n_c else None
        share = control_share_to_detect(planned, churn, n_t + n_c) if np.isfinite(planned) else None
        found[str(action)] = {
            "treatment": n_t, "control": n_c, "expected_churn": round(churn, 6),
            "planned_reduction": round(planned, 6) if np.isfinite(planned) else None,
            "detectable_reduction": None if detectable is None else round(detectable, 6),
            "control_share_to_detect": None if share is None else round(share, 4),
        }
    return found


def summarise_scores(scores: pd.DataFrame, *, budget: float, as_of: dt.date) -> dict:
    """Headline numbers of a scoring run (JSON-able, deterministic for equal inputs).

    budget_used (= budget_spent_on_treated) counts the treatment group only; the control group's share
    of what the knapsack chose (budget_held_back_for_control) is not spent: it is held back to measure
    the effect; budget_committed is both, budget_left what the knapsack left over. no_action counts the
    at-risk customers without an action by reason; not_worth_its_cost gives, per best action, how many
    and their average expected net value (<= 0).
    """
    treated = scores["group"] == "treatment"
    control = scores["group"] == "control"
    selected = scores["group"] != "none"
    per_action = (
        scores[selected]
        .groupby(["action", "group"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=["treatment", "control"], fill_value=0)
    )
    tiers = scores["risk_tier"].value_counts()
    reasons = scores["reasons_status"].value_counts()
    no_action = scores["no_action_reason"].value_counts()
    not_worth = scores[scores["no_action_reason"] == NO_ACTION_NOT_WORTH].groupby("best_action")["best_action_net_value"]
    spent = float(scores.loc[treated, "action_cost"].sum())
    held_back = float(scores.loc[control, "action_cost"].sum())
    return {
        "as_of": as_of.isoformat(),
        "customers_scored": int(len(scores)),
        "at_risk": int(tiers.reindex(list(AT_RISK_TIERS), fill_value=0).sum()),
        "highest_probability": round(float(scores["churn_probability"].max()), 6) if len(scores) else None,
        "lowest_probability": round(float(scores["churn_probability"].min()), 6) if len(scores) else None,
        "selected": int(selected.sum()),
        "treatment": int(treated.sum()),
        "control": int(control.sum()),
        "treated_below_high_tier": int((treated & (scores["risk_tier"] != TIER_HIGH)).sum()),
        "tiers": {tier: int(tiers.get(tier, 0)) for tier in (TIER_HIGH, TIER_MEDIUM, TIER_LOW)},
        "reasons": {status: int(reasons.get(status, 0)) for status in REASONS_STATUSES},
        "no_action": {reason: int(no_action.get(reason, 0)) for reason in NO_ACTION_REASONS},
        "not_worth_its_cost": {
            str(action): {"customers": int(values.size), "mean_expected_net_value": round(float(values.mean()), 6)}
            for action, values in not_worth
        },
        "actions": action_measurability(scores[selected], per_action),
        "budget": float(budget),
        "budget_used": round(spent, 6),
        "budget_spent_on_treated": round(spent, 6),
        "budget_held_back_for_control": round(held_back, 6),
        "budget_committed": round(spent + held_back, 6),
        "budget_left": round(float(budget) - spent - held_back, 6),
        "expected_net_value": round(float(scores.loc[treated, "expected_net_value"].sum()), 6),
        "expected_net_value_committed": round(float(scores.loc[selected, "expected_net_value"].sum()), 6),
    }
