"""A simulated history of retention campaigns on the synthetic shop, with a planted heterogeneous effect.

`simulate_campaign_history(frames, dates=, horizon_days=, seed=)` takes the contract-shaped frames of
`pipeline.demo_data.generate_demo` and, for each campaign date in turn:

1. scores the active customers (an order in the 365 days before the date) with an earlier model: a
   logistic regression on simple recency/frequency/service state, fitted on the window that closed
   at the date (its labels are already known then);
2. puts the at-risk customers (probability >= MEDIUM_RISK) on the list with one campaign action drawn
   at random (an exploration campaign: every action reaches responders and non-responders alike),
   and holds out a random `control_share` of them as the control group;
3. plants the effect: a treated customer who would have made no purchase in `[date, date + horizon)`
   is saved with probability `planted_uplift` (an extra order in the window, copied from their last
   purchase). The share of churn an action prevents is therefore exactly `planted_uplift` per customer:
   service recovery works for detractors and customers with unresolved tickets (PLANTED_EFFECTS) and
   barely for others; the category offer works for frequent buyers (>= FREQUENT_ORDERS orders in the
   past year).

The lists have the columns of `churn score`'s at-risk table that `churn measure`, `churn monitor`
and `churn uplift` read (no reasons: the earlier model gave none). The truth (each listed customer's
planted uplift and whether they would have churned untreated) is returned for tests only and never
written next to the lists. Vectorised over customers; one loop over the campaign dates, because each
campaign sees the orders the earlier ones saved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.contract import purchase_lines

MEDIUM_RISK, HIGH_RISK = 0.25, 0.5
FREQUENT_ORDERS = 3
LOOKBACK_DAYS = 365
SIMULATED_MODEL = "simulated-earlier-model"
# action -> (share of churn prevented for responders, for everyone else)
PLANTED_EFFECTS = {
    "service_recovery": (0.55, 0.03),
    "category_offer": (0.60, 0.02),
}
# The default playbook's cost and (planned) uplift, so expected values on the lists read as `churn score`'s.
CAMPAIGN_ACTIONS = {
    "service_recovery": {"cost": 18.0, "uplift": 0.20},
    "category_offer": {"cost": 6.0, "uplift": 0.08},
}
LIST_COLUMNS = [
    "customer_id",
    "churn_probability",
    "risk_tier",
    "action",
    "action_cost",
    "customer_value",
    "expected_net_value",
    "group",
    "model_name",
    "model_version",
    "as_of",
]


@dataclass(frozen=True)
class CampaignHistory:
    """The shop's frames with the saved orders added, one list per campaign date, and the planted truth."""

    frames: dict[str, pd.DataFrame]
    lists: dict[dt.date, pd.DataFrame]
    truth: dict[dt.date, pd.DataFrame]


def campaign_dates(*, data_end: dt.date, horizon_days: int, count: int, spacing_months: int = 2) -> list[dt.date]:
    """`count` month starts, `spacing_months` apart, the latest whose horizon has passed by `data_end`."""
    if count < 1:
        raise ValueError("count must be at least 1")
    latest = pd.Timestamp(data_end - dt.timedelta(days=horizon_days - 1)).to_period("M").to_timestamp()
    if latest.date() + dt.timedelta(days=horizon_days) > data_end + dt.timedelta(days=1):
        latest -= pd.DateOffset(months=1)
    return sorted((latest - pd.DateOffset(months=spacing_months * k)).date() for k in range(count))


def _ts(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day)


def customer_state(frames: dict[str, pd.DataFrame], *, as_of: dt.date) -> pd.DataFrame:
    """State of every customer with an order before `as_of` (naive timestamps, as generate_demo gives).

    Output (index customer_id): orders_365d (distinct orders with a purchase line), days_since_order,
    spend_365d, active (an order in the 365 days before), detractor (latest NPS before `as_of` is 0-6),
    unresolved (a ticket open at `as_of`, or closed unresolved in the 365 days before), frequent
    (orders_365d >= FREQUENT_ORDERS).
    """
    t = _ts(as_of)
    tx = frames["transactions"]
    past = tx[(tx["ordered_at"] < t) & purchase_lines(tx)]
    recent = past[past["ordered_at"] >= t - pd.Timedelta(days=LOOKBACK_DAYS)]
    per = past.groupby("customer_id").agg(last=("ordered_at", "max"))
    per["orders_365d"] = recent.groupby("customer_id")["order_id"].nunique().reindex(per.index).fillna(0)
    per["spend_365d"] = recent.groupby("customer_id")["amount"].sum().reindex(per.index).fillna(0.0)
    per["days_since_order"] = (t - per["last"]).dt.total_seconds() / 86_400
    per["active"] = per["orders_365d"] > 0

    feedback = frames["feedback"]
    nps = feedback[(feedback["kind"] == "nps") & (feedback["submitted_at"] < t)].sort_values("submitted_at", kind="stable")
    latest_nps = nps.groupby("customer_id")["score"].last()
    per["detractor"] = (latest_nps.reindex(per.index) <= 6).fillna(False).astype(bool)

    tickets = frames["support_tickets"]
    opened = tickets["opened_at"] < t
    still_open = opened & (tickets["closed_at"].isna() | (tickets["closed_at"] >= t))
    closed_unresolved = (
        opened
        & (tickets["closed_at"] < t)
        & (tickets["closed_at"] >= t - pd.Timedelta(days=LOOKBACK_DAYS))
        & (tickets["resolved"].astype("boolean") == False)  # noqa: E712 (nullable boolean: missing is not False)
    ).fillna(False)
    trouble = tickets.loc[(still_open | closed_unresolved).to_numpy(), "customer_id"].unique()
    per["unresolved"] = per.index.isin(trouble)
    per["frequent"] = per["orders_365d"] >= FREQUENT_ORDERS
    return per.drop(columns="last")


def planted_uplift(state: pd.DataFrame, action: pd.Series) -> np.ndarray:
    """Share of churn each customer's action prevents (PLANTED_EFFECTS); 0 where the action is missing.

    `state` from `customer_state`, `action` aligned with it (str or missing).
    """
    responder = {
        "service_recovery": (state["detractor"] | state["unresolved"]).to_numpy(),
        "category_offer": state["frequent"].to_numpy(),
    }
    effect = np.zeros(len(state))
    for name, (strong, weak) in PLANTED_EFFECTS.items():  # one pass per action, not per customer
        mine = (action == name).to_numpy()
        effect[mine] = np.where(responder[name][mine], strong, weak)
    return effect


def _no_purchase(transactions: pd.DataFrame, customers: pd.Index, *, start: dt.date, horizon_days: int) -> np.ndarray:
    """True per customer without a purchase line in [start, start + horizon_days)."""
    t = _ts(start)
    tx = transactions
    window = tx[(tx["ordered_at"] >= t) & (tx["ordered_at"] < t + pd.Timedelta(days=horizon_days)) & purchase_lines(tx)]
    return ~customers.isin(window["customer_id"].unique())


def _model_inputs(state: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [
            np.log1p(state["orders_365d"].to_numpy(float)),
            np.log1p(state["days_since_order"].to_numpy(float)),
            state["detractor"].to_numpy(float),
            state["unresolved"].to_numpy(float),
        ]
    )


def earlier_model_probability(
    frames: dict[str, pd.DataFrame], state: pd.DataFrame, *, as_of: dt.date, horizon_days: int
) -> np.ndarray:
    """P(no purchase in the horizon) for the rows of `state`, from a logistic regression fitted on the
    customers active at `as_of - horizon_days` and whether they bought in the window that closed at `as_of`."""
    start = as_of - dt.timedelta(days=horizon_days)
    before = customer_state(frames, as_of=start)
    before = before[before["active"]]
    churned = _no_purchase(frames["transactions"], before.index, start=start, horizon_days=horizon_days)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(_model_inputs(before), churned)
    return model.predict_proba(_model_inputs(state))[:, 1]


def _saved_orders(
    transactions: pd.DataFrame, customers: pd.Index, *, as_of: dt.date, horizon_days: int, rng: np.random.Generator
) -> pd.DataFrame:
    """One extra order per customer in `customers`, in [as_of, as_of + horizon): a copy of their last
    purchase line before `as_of`, moved in time (delivery times move with it; none past the data's end)."""
    t = _ts(as_of)
    tx = transactions
    past = tx[(tx["ordered_at"] < t) & purchase_lines(tx) & tx["customer_id"].isin(customers)]
    last = past.sort_values("ordered_at", kind="stable").groupby("customer_id").tail(1).sort_values("customer_id")
    when = t + pd.to_timedelta(rng.uniform(0, horizon_days - 1, len(last)) * 86_400, unit="s").round("s")
    shift = when - last["ordered_at"].to_numpy()
    data_end = tx["ordered_at"].max()
    saved = last.assign(
        order_id=(f"R{as_of:%Y%m%d}-" + pd.Series(np.arange(len(last)), index=last.index).astype("str").str.zfill(6)).astype("str"),
        ordered_at=when,
    )
    for column in ("promised_delivery_at", "delivered_at"):
        if column in saved.columns:
            moved = saved[column] + shift
            saved[column] = moved.where(moved <= data_end)
    return saved


def simulate_campaign(
    frames: dict[str, pd.DataFrame],
    *,
    as_of: dt.date,
    horizon_days: int,
    control_share: float,
    rng: np.random.Generator,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """One campaign on `as_of`: (frames with the saved orders, the at-risk list, the truth).

    List columns: LIST_COLUMNS, one row per active customer, sorted by churn_probability (highest first).
    Truth columns: customer_id, action, group, planted_uplift, would_churn (no purchase in the horizon
    without the action), saved (the action kept them).
    """
    state = customer_state(frames, as_of=as_of)
    state = state[state["active"]].sort_index()
    probability = earlier_model_probability(frames, state, as_of=as_of, horizon_days=horizon_days)
    at_risk = probability >= MEDIUM_RISK
    names = np.array(list(CAMPAIGN_ACTIONS), dtype=object)
    action = pd.Series(np.where(at_risk, names[rng.integers(0, len(names), len(state))], None), index=state.index, dtype="str")
    control = rng.random(len(state)) < control_share
    group = np.where(at_risk, np.where(control, "control", "treatment"), "none")

    uplift = planted_uplift(state, action)
    would_churn = _no_purchase(frames["transactions"], state.index, start=as_of, horizon_days=horizon_days)
    saved = (group == "treatment") & would_churn & (rng.random(len(state)) < uplift)
    extra = _saved_orders(frames["transactions"], state.index[saved], as_of=as_of, horizon_days=horizon_days, rng=rng)
    transactions = pd.concat([frames["transactions"], extra], ignore_index=True)
    transactions = transactions.sort_values("ordered_at", kind="stable").reset_index(drop=True)

    cost = action.map({name: spec["cost"] for name, spec in CAMPAIGN_ACTIONS.items()}).astype(float).to_numpy()
    planned = action.map({name: spec["uplift"] for name, spec in CAMPAIGN_ACTIONS.items()}).astype(float).to_numpy()
    value = state["spend_365d"].to_numpy(float).clip(min=0.0)
    tiers = np.where(probability >= HIGH_RISK, "high", np.where(at_risk, "medium", "low"))
    listed = pd.DataFrame(
        {
            "customer_id": pd.Series(state.index, dtype="str"),
            "churn_probability": probability,
            "risk_tier": pd.Series(tiers, dtype="str"),
            "action": pd.Series(action.to_numpy(), dtype="str"),
            "action_cost": cost,
            "customer_value": value,
            "expected_net_value": probability * planned * value - cost,
            "group": pd.Series(group, dtype="str"),
            "model_name": pd.Series([SIMULATED_MODEL] * len(state), dtype="str"),
            "model_version": pd.Series(["0"] * len(state), dtype="str"),
            "as_of": [as_of] * len(state),
        }
    )
    order = np.lexsort((listed["customer_id"].to_numpy(), -probability))
    truth = pd.DataFrame(
        {
            "customer_id": listed["customer_id"],
            "action": listed["action"],
            "group": listed["group"],
            "planted_uplift": uplift,
            "would_churn": would_churn,
            "saved": saved,
        }
    )
    return (
        {**frames, "transactions": transactions},
        listed.iloc[order].reset_index(drop=True)[LIST_COLUMNS],
        truth,
    )


def simulate_campaign_history(
    frames: dict[str, pd.DataFrame],
    *,
    dates: list[dt.date],
    horizon_days: int,
    seed: int,
    control_share: float = 0.5,
) -> CampaignHistory:
    """Run `simulate_campaign` on each date in order; each sees the orders the earlier ones saved."""
    if not 0.0 < control_share < 1.0:
        raise ValueError("control_share must be between 0 and 1")
    rng = np.random.default_rng(seed)
    lists, truth = {}, {}
    for as_of in sorted(dates):
        frames, lists[as_of], truth[as_of] = simulate_campaign(
            frames, as_of=as_of, horizon_days=horizon_days, control_share=control_share, rng=rng
        )
    return CampaignHistory(frames=frames, lists=lists, truth=truth)


def list_summary(listed: pd.DataFrame, *, as_of: dt.date, horizon_days: int) -> dict:
    """The summary JSON written next to a simulated list (the fields `churn measure` and `churn monitor` read)."""
    treated = listed["group"] == "treatment"
    return {
        "as_of": as_of.isoformat(),
        "simulated": True,
        "customers_scored": int(len(listed)),
        "at_risk": int(listed["risk_tier"].isin(["high", "medium"]).sum()),
        "treatment": int(treated.sum()),
        "control": int((listed["group"] == "control").sum()),
        "model_name": SIMULATED_MODEL,
        "model_version": "0",
        "horizon_days": horizon_days,
        "measure_after": (as_of + dt.timedelta(days=horizon_days)).isoformat(),
        "risk_tiers": {"high": HIGH_RISK, "medium": MEDIUM_RISK},
        "budget_used": round(float(listed.loc[treated, "action_cost"].sum()), 6),
        "expected_net_value": round(float(listed.loc[treated, "expected_net_value"].sum()), 6),
        "playbook": {"path": "simulated", "actions": CAMPAIGN_ACTIONS},
    }
