"""Measurement: treated vs control churn, intervals, realised value, recovery of a planted effect."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ScoreError
from pipeline.measure import (
    chance_note,
    control_share_to_detect,
    detectable_reduction,
    MEASURE_COLUMNS,
    measure_campaign,
    newcombe_difference,
    outcomes_after,
    relative_reduction,
    wilson_interval,
)

AS_OF = dt.date(2025, 1, 1)


def scores_frame(groups: list[str], actions: list[str | None], cost: float = 5.0) -> pd.DataFrame:
    n = len(groups)
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"c{i}" for i in range(n)], dtype="str"),
            "group": pd.Series(groups, dtype="str"),
            "action": pd.Series(actions, dtype="str"),
            "action_cost": [cost if a is not None else np.nan for a in actions],
            "expected_net_value": [2.0 if a is not None else np.nan for a in actions],
            "as_of": [AS_OF] * n,
        }
    )


def orders(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.Series([r[0] for r in rows], dtype="str"),
            "customer_id": pd.Series([r[1] for r in rows], dtype="str"),
            "ordered_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "amount": [r[3] for r in rows],
        }
    )


def test_wilson_and_newcombe_match_published_example():
    # Newcombe (1998), example (a): 56/70 vs 48/80 -> difference 0.2, method 10 CI 0.0524 to 0.3339.
    # Wilson interval of 56/70 computed by hand from the score formula.
    low, high = wilson_interval(np.array([56]), np.array([70]), z=1.959964)
    assert (low[0], high[0]) == pytest.approx((0.6918, 0.8770), abs=1e-4)
    diff, lo, hi = newcombe_difference(np.array([56]), np.array([70]), np.array([48]), np.array([80]), z=1.959964)
    assert (diff[0], lo[0], hi[0]) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_relative_reduction_uses_log_risk_ratio():
    uplift, low, high = relative_reduction(np.array([20]), np.array([100]), np.array([40]), np.array([100]), z=1.959964)
    se = np.sqrt(1 / 20 - 1 / 100 + 1 / 40 - 1 / 100)
    assert uplift[0] == pytest.approx(0.5)
    assert low[0] == pytest.approx(1 - 0.5 * np.exp(1.959964 * se))
    assert high[0] == pytest.approx(1 - 0.5 * np.exp(-1.959964 * se))
    undefined, _, _ = relative_reduction(np.array([0]), np.array([10]), np.array([0]), np.array([10]), z=1.96)
    assert np.isnan(undefined[0])


def test_outcomes_count_orders_in_the_window_only():
    tx = orders(
        [
            ("o1", "c0", "2024-12-31T23:59:00Z", 10.0),  # before as_of
            ("o2", "c0", "2025-01-01T00:00:00Z", 20.0),  # first instant of the window
            ("o2", "c0", "2025-01-01T00:00:00Z", 5.0),  # same order, second line
            ("o3", "c1", "2025-01-31T00:00:00Z", 7.0),  # first instant after a 30-day window
            ("o4", "c1", "2025-01-10T00:00:00Z", -9.0),  # a refund is no purchase, but counts in spend
        ]
    )
    result = outcomes_after(pd.Series(["c0", "c1"]), tx, as_of=AS_OF, horizon_days=30)
    expected = pd.DataFrame(
        {"orders": [1, 0], "spend": [25.0, -9.0], "churned": [False, True]},
        index=pd.Index(["c0", "c1"], name="customer_id"),
    )
    pd.testing.assert_frame_equal(result, expected)


def test_goods_given_back_at_no_price_in_the_window_are_no_purchase():
    tx = orders([("C1", "c0", "2025-01-05", 0.0), ("o2", "c1", "2025-01-06", 0.0)]).assign(quantity=[-1.0, 1.0])
    result = outcomes_after(pd.Series(["c0", "c1"]), tx, as_of=AS_OF, horizon_days=30)
    assert result["churned"].tolist() == [True, False]  # c1 took a free item: a purchase


def test_measure_hand_computed_case():
    scores = scores_frame(
        ["treatment", "treatment", "control", "control", "none"], ["call", "call", "call", "call", None]
    )
    tx = orders([("o1", "c0", "2025-01-05", 100.0), ("o2", "c2", "2025-01-06", 40.0)])
    result = measure_campaign(scores, tx, horizon_days=30, planned_uplift={"call": 0.2})
    assert list(result.columns) == MEASURE_COLUMNS
    assert result["action"].tolist() == ["call", "all"]
    row = result.iloc[0]
    assert (row["n_treatment"], row["n_control"]) == (2, 2)
    assert (row["churn_treatment"], row["churn_control"], row["churn_reduction"]) == (0.5, 0.5, 0.0)
    assert row["planned_uplift"] == 0.2
    assert (row["spend_treatment"], row["spend_control"], row["incremental_spend"]) == (50.0, 20.0, 30.0)
    assert row["action_cost"] == 10.0
    assert row["realised_net_value"] == 30.0 * 2 - 10.0
    margin = 1.959964 * math.sqrt(np.var([100.0, 0.0], ddof=1) / 2 + np.var([40.0, 0.0], ddof=1) / 2)  # Welch
    assert row["realised_net_value_low"] == pytest.approx((30.0 - margin) * 2 - 10.0, abs=1e-3)
    assert row["realised_net_value_high"] == pytest.approx((30.0 + margin) * 2 - 10.0, abs=1e-3)
    assert row["expected_net_value"] == 4.0
    assert np.isnan(result.iloc[1]["planned_uplift"])


def test_measure_recovers_a_planted_effect_within_its_interval():
    rng = np.random.default_rng(2024)
    n_per_arm, churn_control, effect = 6000, 0.4, 0.3
    actions = rng.choice(["call", "mail"], 2 * n_per_arm)
    groups = np.repeat(["treatment", "control"], n_per_arm)
    scores = scores_frame(groups.tolist(), actions.tolist())
    churn_rate = np.where(groups == "treatment", churn_control * (1 - effect), churn_control)
    stays = rng.random(2 * n_per_arm) >= churn_rate
    days = rng.integers(0, 90, stays.sum())
    tx = pd.DataFrame(
        {
            "order_id": pd.Series([f"o{i}" for i in range(stays.sum())], dtype="str"),
            "customer_id": scores["customer_id"][stays].to_numpy(),
            "ordered_at": pd.Timestamp(AS_OF, tz="UTC") + pd.to_timedelta(days, unit="D"),
            "amount": 50.0,
        }
    )
    result = measure_campaign(scores, tx, horizon_days=90).set_index("action")
    for action in ("call", "mail", "all"):
        row = result.loc[action]
        assert row["uplift_low"] <= effect <= row["uplift_high"], action
        assert row["churn_reduction_low"] <= churn_control * effect <= row["churn_reduction_high"], action
    overall = result.loc["all"]
    assert overall["uplift_low"] > 0  # the effect is detected, not just covered
    assert overall["uplift"] == pytest.approx(effect, abs=0.05)
    assert overall["incremental_spend"] > 0


def test_measure_refuses_bad_scores():
    with pytest.raises(ScoreError, match=r"lacks the columns \['group'"):
        measure_campaign(pd.DataFrame({"customer_id": ["a"]}), orders([]), horizon_days=30)
    none_only = scores_frame(["none"], [None])
    with pytest.raises(ScoreError, match="no treatment or control customers"):
        measure_campaign(none_only, orders([]), horizon_days=30)
    mixed = scores_frame(["treatment", "control"], ["call", "call"]).assign(as_of=[AS_OF, dt.date(2025, 2, 1)])
    with pytest.raises(ScoreError, match="mixes several as_of dates"):
        measure_campaign(mixed, orders([]), horizon_days=30)


def _measured(*rows) -> pd.DataFrame:
    """`measure_campaign`-shaped rows: action, n_treatment, n_control, churn_reduction_low, churn_reduction_high."""
    return pd.DataFrame(rows, columns=["action", "n_treatment", "n_control", "churn_reduction_low",
                                       "churn_reduction_high"])


def test_an_interval_apart_from_zero_among_several_actions_may_be_chance():
    two = _measured(("call", 400, 45, 0.047, 0.287), ("mail", 857, 95, -0.143, 0.056), ("all", 1257, 140, -0.05, 0.11))
    assert chance_note(two) == (
        "call: the churn reduction's 95% interval excludes 0. With 2 actions measured, at least one interval does so by "
        "chance in 10% of campaigns that change nothing: pool it with the other campaigns (churn measure "
        "--update-playbook, whose interval counts customers the campaigns share about once) before relying on it")
    harmful = _measured(("call", 400, 45, -0.3, -0.01), ("mail", 9, 1, -0.2, 0.1), ("sms", 9, 1, -0.2, 0.1))
    assert chance_note(harmful).startswith("call: ") and "With 3 actions measured" in chance_note(harmful)
    assert "in 14% of campaigns" in chance_note(harmful)
    assert chance_note(two.iloc[[0, 2]]) is None  # one action: its interval says it all
    assert chance_note(_measured(("call", 400, 45, -0.1, 0.2), ("mail", 857, 95, -0.1, 0.05))) is None
    assert chance_note(_measured(("call", 400, 45, 0.1, 0.2), ("mail", 857, 0, np.nan, np.nan))) is None  # no control


def test_realised_value_has_no_interval_with_a_single_customer_in_an_arm():
    scores = scores_frame(["treatment", "treatment", "control"], ["call", "call", "call"])
    row = measure_campaign(scores, orders([("o1", "c0", "2025-01-05", 100.0)]), horizon_days=30).iloc[0]
    assert np.isfinite(row["realised_net_value"])
    assert np.isnan(row["realised_net_value_low"]) and np.isnan(row["realised_net_value_high"])


def test_detectable_reduction_hand_computed_and_empty_groups():
    # z = 1.959964 + 0.841621; sqrt(0.5 * 0.5 * (1/100 + 1/100)) = 0.0707107
    assert float(detectable_reduction(0.5, 100, 100)) == pytest.approx(2.801585 * 0.0707107, rel=1e-5)
    assert np.isinf(detectable_reduction(0.5, 100, 0))


def test_a_drop_of_the_detectable_size_is_told_from_chance_in_about_80_percent_of_campaigns():
    # The formula is the normal approximation; the campaigns are measured with Newcombe's interval.
    rng = np.random.default_rng(3)
    n_t, n_c, control_churn = 900, 120, 0.6
    drop = float(detectable_reduction(control_churn, n_t, n_c))
    x_t = rng.binomial(n_t, control_churn - drop, 4000)
    x_c = rng.binomial(n_c, control_churn, 4000)
    _, low, _ = newcombe_difference(x_c, n_c, x_t, n_t, z=1.959964)
    assert 0.74 < float((low > 0).mean()) < 0.86


def test_control_share_to_detect_gives_the_share_whose_groups_detect_the_drop():
    share = control_share_to_detect(0.08, 0.6, 2000)
    assert share is not None and 0 < share < 0.5
    n_c = 2000 * share
    assert float(detectable_reduction(0.6, 2000 - n_c, n_c)) == pytest.approx(0.08)
    assert control_share_to_detect(0.02, 0.6, 2000) is None  # even half in control tells only ~6 points
    assert float(detectable_reduction(0.6, 1000, 1000)) > 0.02
    assert control_share_to_detect(0.1, 0.0, 50) == 0.0  # nobody churns: no spread to tell apart
