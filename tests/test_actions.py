"""Value model, best action per customer, budget knapsack and control group."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.actions import (
    _greedy,
    allocate_budget,
    assign_control,
    best_actions,
    customer_value,
    no_action_reasons,
)
from pipeline.config import ScoreConfig
from pipeline.errors import ScoreError
from pipeline.playbook import playbook_from_dict

IDS = pd.Index(["a", "b", "c"], name="customer_id")


def playbook(*actions: tuple[str, float, float]):
    raw = {"actions": [{"name": n, "description": n, "channel": "email", "cost": c, "uplift": u} for n, c, u in actions]}
    return playbook_from_dict(raw, known_features=[])


def candidates(cost, value, action=None) -> pd.DataFrame:
    n = len(cost)
    return pd.DataFrame(
        {
            "action": pd.Series(action if action is not None else ["x"] * n, dtype="str"),
            "action_cost": np.asarray(cost, dtype=float),
            "expected_net_value": np.asarray(value, dtype=float),
        }
    )


def test_run_rate_value_scales_the_longest_monetary_window():
    features = pd.DataFrame(
        {"monetary_90d": [50.0, 0.0, 10.0], "monetary_365d": [730.0, np.nan, -20.0]}, index=IDS
    )
    value = customer_value(features, cfg=ScoreConfig(value_horizon_days=180, value_margin=0.5))
    pd.testing.assert_series_equal(value, pd.Series([180.0, 0.0, 0.0], index=IDS, name="customer_value"))


def test_btyd_value_undoes_the_survival_discount():
    features = pd.DataFrame(
        {"btyd_expected_purchases": [2.0, 0.5], "btyd_p_alive": [0.5, 1.0], "avg_order_value": [30.0, 40.0]},
        index=["a", "b"],
    )
    value = customer_value(features, cfg=ScoreConfig(value_model="btyd", value_horizon_days=180), btyd_horizon_days=90)
    pd.testing.assert_series_equal(value, pd.Series([240.0, 40.0], index=["a", "b"], name="customer_value"))
    with pytest.raises(ScoreError, match="needs the horizon of btyd_expected_purchases"):
        customer_value(features, cfg=ScoreConfig(value_model="btyd"))


def test_value_models_name_missing_columns():
    with pytest.raises(ScoreError, match="needs a monetary_<N>d feature column"):
        customer_value(pd.DataFrame({"x": [1.0]}), cfg=ScoreConfig())
    with pytest.raises(ScoreError, match=r"'btyd' needs the feature columns \['btyd_p_alive'"):
        customer_value(pd.DataFrame({"btyd_expected_purchases": [1.0]}), cfg=ScoreConfig(value_model="btyd"))


def test_best_action_maximises_expected_net_value_among_eligible():
    book = playbook(("call", 20.0, 0.3), ("mail", 1.0, 0.05))
    probability = pd.Series([0.8, 0.1, 0.5], index=IDS)
    value = pd.Series([200.0, 200.0, 100.0], index=IDS)
    eligibility = pd.DataFrame({"call": [True, True, True], "mail": [True, True, False]}, index=IDS)
    # a: call 0.8*0.3*200-20=28, mail 0.8*0.05*200-1=7 -> call
    # b: call 0.1*0.3*200-20=-14, mail 0.1*0.05*200-1=0 -> mail (0.0)
    # c: only call: 0.5*0.3*100-20=-5
    result = best_actions(probability, value, eligibility, book)
    expected = pd.DataFrame(
        {
            "action": pd.Series(["call", "mail", "call"], dtype="str", index=IDS),
            "action_cost": [20.0, 1.0, 20.0],
            "expected_net_value": [28.0, 0.0, -5.0],
            "uplift_source": pd.Series(["playbook"] * 3, dtype="str", index=IDS),
        },
        index=IDS,
    )
    pd.testing.assert_frame_equal(result, expected)


def test_no_eligible_action_gives_missing_action():
    book = playbook(("call", 20.0, 0.3))
    result = best_actions(
        pd.Series([0.9], index=["a"]), pd.Series([100.0], index=["a"]), pd.DataFrame({"call": [False]}, index=["a"]), book
    )
    assert result["action"].isna().all() and result["action_cost"].isna().all() and result["expected_net_value"].isna().all()


def _brute_force(cost, value, action, budget, capacities) -> float:
    best = 0.0
    for bits in itertools.product([False, True], repeat=len(cost)):
        chosen = np.array(bits, dtype=bool)
        if (value[chosen] <= 0).any() or cost[chosen].sum() > budget + 1e-9:
            continue
        if any((action[chosen] == name).sum() > cap for name, cap in capacities.items()):
            continue
        best = max(best, float(value[chosen].sum()))
    return best


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.integers(0, 12), st.floats(-10, 30, allow_nan=False), st.sampled_from(["x", "y"])),
        min_size=1,
        max_size=9,
    ),
    budget=st.integers(0, 40),
    capacity=st.none() | st.integers(0, 3),
)
def test_knapsack_matches_brute_force_on_tiny_cases(items, budget, capacity):
    cost = np.array([i[0] for i in items], dtype=float)
    value = np.array([i[1] for i in items])
    action = np.array([i[2] for i in items], dtype=object)
    capacities = {} if capacity is None else {"x": capacity}
    chosen = allocate_budget(candidates(cost, value, action), budget=budget, capacities=capacities).to_numpy()
    assert cost[chosen].sum() <= budget + 1e-9
    assert (value[chosen] > 0).all()
    if capacity is not None:  # (without one, the brute force below is the whole check)
        assert (action[chosen] == "x").sum() <= capacity
    # Within the solver's tolerance: an item worth 1e-9 may be left out (Hypothesis found exactly that case).
    assert value[chosen].sum() == pytest.approx(_brute_force(cost, value, action, budget, capacities), abs=1e-6)


def test_knapsack_beats_greedy_by_probability_on_expected_value():
    # Three very likely churners are worth little; two less likely ones are worth a lot.
    probability = pd.Series([0.95, 0.9, 0.85, 0.4, 0.35])
    value = pd.Series([20.0, 20.0, 20.0, 500.0, 400.0])
    book = playbook(("call", 10.0, 0.3))
    cands = best_actions(probability, value, pd.DataFrame({"call": [True] * 5}), book)
    chosen = allocate_budget(cands, budget=20.0)
    baseline = pd.Series([True, True, False, False, False])  # riskiest first until the budget of 20 is spent
    net = cands["expected_net_value"]
    assert chosen.tolist() == [False, False, False, True, True]
    assert net[chosen].sum() == pytest.approx(0.4 * 0.3 * 500 - 10 + 0.35 * 0.3 * 400 - 10)
    assert net[chosen].sum() > net[baseline].sum()


def test_knapsack_beats_plain_density_greedy_when_a_big_item_is_worth_more():
    # Density greedy takes the small dense item and then cannot afford the big one.
    chosen = allocate_budget(candidates([1.0, 10.0], [2.0, 15.0]), budget=10.0)
    assert chosen.tolist() == [False, True]


def test_capacity_limits_each_action_and_negative_values_are_never_chosen():
    cands = candidates([1.0] * 5, [5.0, 4.0, 3.0, -1.0, 0.0], action=["x", "x", "x", "y", "y"])
    chosen = allocate_budget(cands, budget=100.0, capacities={"x": 2})
    assert chosen.tolist() == [True, True, False, False, False]


def test_large_instance_uses_core_and_is_never_worse_than_greedy():
    rng = np.random.default_rng(3)
    n = 20_000
    cost = rng.choice([1.0, 2.5, 6.0, 18.0], n)
    value = rng.normal(2.0, 6.0, n)
    action = rng.choice(["a", "b", "c"], n)
    cands = candidates(cost, value, action)
    budget, capacities = 3000.0, {"a": 300}
    chosen = allocate_budget(cands, budget=budget, capacities=capacities, exact_limit=500).to_numpy()
    usable = value > 0
    order = np.lexsort((np.arange(n), -value, -(value / cost)))
    order = order[usable[order]]
    codes = np.where(action[order] == "a", 0, -1)
    greedy_taken = _greedy(cost[order], codes, np.array([300]), budget)
    assert cost[chosen].sum() <= budget
    assert (action[chosen] == "a").sum() <= 300
    assert (value[chosen] > 0).all()
    assert value[chosen].sum() >= value[order][greedy_taken].sum() - 1e-9


def test_empty_or_hopeless_candidates_choose_nobody():
    assert not allocate_budget(candidates([5.0], [-1.0]), budget=100).any()
    assert not allocate_budget(candidates([500.0], [10.0]), budget=100).any()
    assert not allocate_budget(candidates([], []), budget=100).any()


def test_control_group_is_seeded_and_near_its_share_for_every_action():
    n = 20_000
    selected = pd.Series(np.arange(n) % 4 != 0, index=[f"c{i}" for i in range(n)])
    action = np.where(np.arange(n) % 2 == 0, "call", "mail")
    groups = assign_control(selected, share=0.2, seed=11)
    pd.testing.assert_series_equal(groups, assign_control(selected, share=0.2, seed=11))
    assert set(groups[~selected]) == {"none"}
    assert set(groups[selected]) == {"treatment", "control"}
    for name in ("call", "mail"):
        in_action = selected & (action == name)
        share = (groups[in_action] == "control").mean()
        assert share == pytest.approx(0.2, abs=3 * np.sqrt(0.2 * 0.8 / in_action.sum()))
    assert not groups.equals(assign_control(selected, share=0.2, seed=12))


def test_a_customer_held_out_once_is_held_out_in_every_list_of_the_seed():
    """Lists scored month after month select overlapping customers in another order: the control customers of a
    list are never among the treated of another, so no control customer carries an earlier treatment."""
    rng = np.random.default_rng(3)
    ids = np.array([f"k{i}" for i in range(5000)])
    lists = [pd.Series(rng.random(5000) < 0.6, index=ids).sample(frac=1, random_state=seed) for seed in range(4)]
    groups = [assign_control(selected, share=0.1, seed=7) for selected in lists]
    controls = set().union(*(set(g.index[g == "control"]) for g in groups))
    treated = set().union(*(set(g.index[g == "treatment"]) for g in groups))
    assert controls and not controls & treated
    integer_ids = assign_control(pd.Series(True, index=[17850, 12346]), share=0.5, seed=7)
    assert integer_ids.tolist() == assign_control(pd.Series(True, index=["17850", "12346"]), share=0.5, seed=7).tolist()


def test_control_share_is_unbiased_for_small_actions():
    # 200 actions of 3 customers each: rounding each to the nearest count would give 0 controls.
    selected = pd.Series(True, index=range(600))
    share = (assign_control(selected, share=0.1, seed=1) == "control").mean()
    assert share == pytest.approx(0.1, abs=3 * np.sqrt(0.1 * 0.9 / 600))


def test_zero_share_gives_no_control():
    groups = assign_control(pd.Series([True, False, True]), share=0.0, seed=1)
    assert groups.tolist() == ["treatment", "none", "treatment"]


def test_every_customer_not_treated_gets_a_no_action_reason():
    ids = pd.Index(list("abcdefg"))
    cands = pd.DataFrame(
        {
            "action": pd.Series(["call", "call", "mail", None, "mail", "call", "mail"], index=ids, dtype="str"),
            "action_cost": [10.0, 10.0, 1.0, np.nan, 1.0, 10.0, 1.0],
            "expected_net_value": [5.0, 4.0, -0.5, np.nan, 2.0, 3.0, 1.0],
        },
        index=ids,
    )
    groups = pd.Series(["treatment", "control", "none", "none", "none", "none", "none"], index=ids, dtype="str")
    below = pd.Series([False, False, False, False, False, False, True], index=ids)
    result = no_action_reasons(cands, groups, below_min_probability=below, capacities={"call": 2})
    assert result.tolist()[1:] == [
        "held out as control group",
        "best action not worth its cost",
        "no eligible action",
        "budget used up",  # 'mail' has no capacity: only the budget can have stopped it
        "action capacity reached",  # 'call' was chosen twice (treatment and control), its capacity
        "churn probability below score.min_probability",
    ]
    assert pd.isna(result.iloc[0])
