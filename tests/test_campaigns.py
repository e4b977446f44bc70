"""The simulated campaign history: dates, planted effect, untouched control group, measured = planted."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.campaigns import (
    PLANTED_EFFECTS,
    campaign_dates,
    customer_state,
    planted_uplift,
    simulate_campaign_history,
)
from pipeline.demo_data import generate_demo
from pipeline.measure import measure_campaign
from pipeline.pooling import pooled_uplift

HORIZON = 90


@pytest.fixture(scope="module")
def history():
    frames = generate_demo(customers=3000, seed=11)
    dates = campaign_dates(data_end=dt.date(2025, 12, 31), horizon_days=HORIZON, count=4)
    return frames, simulate_campaign_history(frames, dates=dates, horizon_days=HORIZON, seed=3)


def test_campaign_dates_end_where_the_horizon_has_passed():
    assert campaign_dates(data_end=dt.date(2025, 12, 31), horizon_days=90, count=3) == [
        dt.date(2025, 6, 1), dt.date(2025, 8, 1), dt.date(2025, 10, 1)
    ]
    # [2025-10-01, +93 days) ends after 2025-12-31: one month earlier.
    assert campaign_dates(data_end=dt.date(2025, 12, 31), horizon_days=93, count=1) == [dt.date(2025, 9, 1)]
    with pytest.raises(ValueError, match="at least 1"):
        campaign_dates(data_end=dt.date(2025, 12, 31), horizon_days=90, count=0)


def test_planted_uplift_follows_the_responder_rules():
    state = pd.DataFrame(
        {"detractor": [True, False, False, False, True], "unresolved": [False, True, False, False, False],
         "frequent": [False, False, False, True, True]}
    )
    action = pd.Series(["service_recovery", "service_recovery", "service_recovery", "category_offer", None], dtype="str")
    strong, weak = PLANTED_EFFECTS["service_recovery"]
    assert planted_uplift(state, action).tolist() == [strong, strong, weak, PLANTED_EFFECTS["category_offer"][0], 0.0]


def test_customer_state_reads_the_latest_nps_and_open_tickets():
    t = pd.Timestamp
    frames = {
        "transactions": pd.DataFrame({"order_id": ["o1", "o2", "o3"], "customer_id": ["a", "a", "b"],
                                      "ordered_at": [t("2025-01-05"), t("2025-02-05"), t("2023-01-01")],
                                      "amount": [10.0, 20.0, 5.0]}),
        "feedback": pd.DataFrame({"customer_id": ["a", "a"], "kind": ["nps", "nps"], "score": [2.0, 9.0],
                                  "submitted_at": [t("2025-01-01"), t("2025-02-01")]}),
        "support_tickets": pd.DataFrame({"customer_id": ["b"], "opened_at": [t("2025-02-20")],
                                         "closed_at": [pd.NaT], "resolved": [pd.NA]}),
    }
    state = customer_state(frames, as_of=dt.date(2025, 3, 1))
    assert state.loc["a", ["orders_365d", "spend_365d", "active", "detractor", "unresolved"]].tolist() == [2, 30.0, True, False, False]
    assert state.loc["b", ["orders_365d", "active", "unresolved"]].tolist() == [0, False, True]


def test_only_treated_customers_get_saved_orders(history):
    frames, simulated = history
    before, after = frames["transactions"], simulated.frames["transactions"]
    added = after[~after["order_id"].isin(before["order_id"])]
    saved = pd.concat([truth[truth["saved"]] for truth in simulated.truth.values()])
    assert len(added) == len(saved) > 0
    assert set(added["customer_id"]) <= set(saved["customer_id"])
    assert (saved["group"] == "treatment").all() and saved["would_churn"].all()
    for as_of, listed in simulated.lists.items():
        assert listed["group"].isin(["treatment", "control", "none"]).all()
        assert listed["action"].isna().eq(listed["group"] == "none").all()


@pytest.mark.slow
def test_measured_uplift_per_action_covers_the_planted_effect(history):
    """A 95% interval misses 1 time in 20, so three independent histories: each action's interval must
    cover its planted effect in at least two, and the estimates average within 0.05 of it."""
    frames, simulated = history
    covered = {action: [] for action in PLANTED_EFFECTS}
    errors = {action: [] for action in PLANTED_EFFECTS}
    for seed in (4, 5, 6):
        run = simulate_campaign_history(frames, dates=sorted(simulated.lists), horizon_days=HORIZON, seed=seed)
        transactions = run.frames["transactions"]
        transactions = transactions.assign(ordered_at=transactions["ordered_at"].dt.tz_localize("UTC"))
        measured = pd.concat(
            [measure_campaign(listed, transactions, horizon_days=HORIZON).assign(as_of=str(as_of))
             for as_of, listed in run.lists.items()]
        )
        pooled = pooled_uplift(measured).set_index("action")
        truth = pd.concat(run.truth.values())
        truth = truth[truth["group"] != "none"]
        # The planted share of churn prevented: among customers who would churn untreated, the mean effect.
        planted = truth[truth["would_churn"]].groupby("action")["planted_uplift"].mean()
        for action in PLANTED_EFFECTS:
            row = pooled.loc[action]
            covered[action].append(row["uplift_low"] <= planted[action] <= row["uplift_high"])
            errors[action].append(row["uplift"] - planted[action])
            assert row["uplift_high"] - row["uplift_low"] < 0.2
    for action in PLANTED_EFFECTS:
        assert sum(covered[action]) >= 2, (action, covered[action], errors[action])
        assert abs(np.mean(errors[action])) < 0.05, (action, errors[action])
