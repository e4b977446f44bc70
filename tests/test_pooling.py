"""Pooled measured uplift per action and the playbook version that carries it."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import FeaturesConfig
from pipeline.errors import ScoreError
from pipeline.features.registry import feature_specs
from pipeline.playbook import playbook_from_dict
from pipeline.measure import relative_reduction
from pipeline.pooling import adopted_uplift, holds_no_effect_note, next_version_path, pooled_uplift, repeat_factors, updated_playbook


def campaign_rows(*rows):
    return pd.DataFrame(
        rows, columns=["as_of", "action", "n_treatment", "n_control", "churn_treatment", "churn_control"]
    )


def test_two_equal_campaigns_pool_to_their_ratio_with_a_narrower_interval():
    measured = campaign_rows(
        ("2025-01-01", "call", 100, 100, 0.2, 0.4),
        ("2025-03-01", "call", 100, 100, 0.2, 0.4),
        ("2025-03-01", "all", 100, 100, 0.2, 0.4),  # ignored
    )
    row = pooled_uplift(measured).iloc[0]
    variance = 1 / 20 - 1 / 100 + 1 / 40 - 1 / 100  # Katz, one campaign
    se = math.sqrt(variance / 2)
    assert row["action"] == "call"
    assert row["campaigns"] == ["2025-01-01", "2025-03-01"]
    assert (row["n_treatment"], row["n_control"]) == (200, 200)
    assert row["uplift"] == pytest.approx(0.5)
    assert row["uplift_low"] == pytest.approx(1 - 0.5 * math.exp(1.959964 * se), abs=1e-6)
    assert row["uplift_high"] == pytest.approx(1 - 0.5 * math.exp(-1.959964 * se), abs=1e-6)
    assert row["churn_reduction"] == pytest.approx(0.2)
    assert row["i_squared"] == pytest.approx(0.0)


def test_campaigns_that_disagree_show_heterogeneity():
    measured = campaign_rows(("a", "call", 1000, 1000, 0.1, 0.4), ("b", "call", 1000, 1000, 0.4, 0.4))
    assert pooled_uplift(measured).iloc[0]["i_squared"] > 0.9


def test_a_campaign_without_control_churners_has_no_ratio():
    measured = campaign_rows(("a", "call", 50, 50, 0.0, 0.0), ("b", "call", 100, 100, 0.2, 0.4))
    row = pooled_uplift(measured).iloc[0]
    assert row["campaigns_without_ratio"] == 1
    assert row["uplift"] == pytest.approx(0.5)


def test_a_control_group_that_all_churned_still_has_a_variance():
    """44 treated (43 churned) against 3 control customers who all churned: without a correction the control's
    churn had no variance and the interval was +-0.04 around the uplift, where one control customer kept would have
    moved it by 0.5. With 0.5 added to each cell of such a campaign the interval is wide, in both the campaign's
    own measure and the pooled one."""
    rows = campaign_rows(("a", "onboarding", 44, 3, 43 / 44, 1.0))
    pooled = pooled_uplift(rows).iloc[0]
    assert pooled["uplift_high"] - pooled["uplift_low"] > 0.5
    uplift, low, high = relative_reduction(np.array([43]), np.array([44]), np.array([3]), np.array([3]), z=1.959964)
    assert high[0] - low[0] > 0.5
    se = math.sqrt(1 / 43.5 - 1 / 45 + 1 / 3.5 - 1 / 4)  # Katz on the corrected table
    assert low[0] == pytest.approx(1 - (43.5 / 45) / (3.5 / 4) * math.exp(1.959964 * se))


def test_campaigns_where_nobody_was_treated_pool_to_no_uplift_with_the_stated_coverage():
    """400 seeded sets of five campaigns in which treated and control churn alike (60%), with control groups of 40 as
    a 10% hold-out gives: the pooled uplift must be unbiased and its 95% interval hold 0 about 95% of the time.
    Inverse-variance pooling of log risk ratios gave +0.023 on average and held 0 in 90% of the sets: a campaign
    whose control churned more by chance had the smaller variance and the larger weight."""
    rng = np.random.default_rng(0)
    sets, campaigns, n_treatment, n_control = 400, 5, 400, 40
    churned_t = rng.binomial(n_treatment, 0.6, (sets, campaigns)).ravel()
    churned_c = rng.binomial(n_control, 0.6, (sets, campaigns)).ravel()
    measured = pd.DataFrame({
        "as_of": np.tile([f"2025-0{i + 1}-01" for i in range(campaigns)], sets),
        "action": np.repeat([f"action{j:03d}" for j in range(sets)], campaigns),
        "n_treatment": n_treatment, "n_control": n_control,
        "churn_treatment": churned_t / n_treatment, "churn_control": churned_c / n_control,
    })
    pooled = pooled_uplift(measured)
    assert abs(pooled["uplift"].mean()) < 0.008
    assert ((pooled["uplift_low"] <= 0) & (pooled["uplift_high"] >= 0)).mean() >= 0.925
    assert abs(pooled["churn_reduction"].mean()) < 0.005


def test_mantel_haenszel_by_hand():
    """Two campaigns: treated 30 of 100 and 10 of 50 churned, control 20 of 50 and 8 of 20."""
    row = pooled_uplift(campaign_rows(("a", "call", 100, 50, 0.3, 0.4), ("b", "call", 50, 20, 0.2, 0.4))).iloc[0]
    r, s = 30 * 50 / 150 + 10 * 20 / 70, 20 * 100 / 150 + 8 * 50 / 70
    p = (100 * 50 * 50 - 30 * 20 * 150) / 150**2 + (50 * 20 * 18 - 10 * 8 * 70) / 70**2
    assert row["uplift"] == pytest.approx(1 - r / s)
    assert row["uplift_low"] == pytest.approx(1 - (r / s) * math.exp(1.959964 * math.sqrt(p / (r * s))), abs=1e-6)
    w = [100 * 50 / 150, 50 * 20 / 70]
    assert row["churn_reduction"] == pytest.approx((w[0] * 0.1 + w[1] * 0.2) / sum(w))


def test_pooling_names_missing_columns():
    with pytest.raises(ScoreError, match=r"lack the columns \['churn_control'\]"):
        pooled_uplift(campaign_rows(("a", "call", 1, 1, 0.0, 0.0)).drop(columns="churn_control"))


def test_pooling_needs_treated_and_control():
    with pytest.raises(ScoreError, match="both treated and control"):
        pooled_uplift(campaign_rows(("a", "call", 0, 10, 0.0, 0.5)))


def test_next_version_never_reuses_a_name(tmp_path):
    current = tmp_path / "playbook.yaml"
    assert next_version_path(current) == tmp_path / "playbook.v2.yaml"
    (tmp_path / "playbook.v2.yaml").write_text("x")
    (tmp_path / "playbook.v5.yaml").write_text("x")
    assert next_version_path(current) == tmp_path / "playbook.v6.yaml"
    assert next_version_path(tmp_path / "playbook.v2.yaml") == tmp_path / "playbook.v6.yaml"


def test_updated_playbook_replaces_the_measured_uplift_and_keeps_the_rest(repo_root):
    raw = yaml.safe_load((repo_root / "configs" / "playbook.yaml").read_text(encoding="utf-8"))
    pooled = pooled_uplift(campaign_rows(("2025-01-01", "service_recovery", 100, 100, 0.2, 0.4)))
    new, changes = updated_playbook(raw, pooled, based_on="playbook.yaml", measured_on=dt.date(2026, 1, 2))
    actions = {a["name"]: a for a in new["actions"]}
    # planned 0.2 (spread 0.2), measured 0.5 with the standard error its interval gives: averaged by precision
    error = (pooled.iloc[0]["uplift_high"] - pooled.iloc[0]["uplift_low"]) / (2 * 1.959964)
    weight = error**-2 / (error**-2 + 0.2**-2)
    assert 0.5 < weight < 1
    assert actions["service_recovery"]["uplift"] == pytest.approx(weight * 0.5 + (1 - weight) * 0.2, abs=1e-4)
    assert actions["service_recovery"]["measured"]["uplift"] == 0.5
    assert actions["service_recovery"]["measured"]["weight"] == pytest.approx(weight, abs=1e-4)
    assert actions["service_recovery"]["measured"]["planned_uplift"] == 0.2
    assert actions["service_recovery"]["measured"]["campaigns"] == ["2025-01-01"]
    assert actions["service_recovery"]["measured"]["method"] == "Mantel-Haenszel pooled risk ratio"
    assert actions["service_recovery"]["measured"]["repeat_factor"] == 1.0
    assert actions["category_offer"] == {a["name"]: a for a in raw["actions"]}["category_offer"]
    assert (new["version"], new["based_on"]) == (2, "playbook.yaml")
    assert changes["action"].tolist() == ["service_recovery"]
    assert raw["actions"][0]["uplift"] == 0.2  # the input is not changed
    specs = feature_specs(FeaturesConfig(snapshots={"dates": ["2024-01-01"]}))
    known = {s.name: ("categorical" if s.kind == "categorical" else "numeric") for s in specs}
    playbook = playbook_from_dict(new, known_features=known)  # eligibility groups may nest (any/all)
    assert playbook.version == 2 and playbook.actions[0].measured.low == pytest.approx(round(pooled.iloc[0]["uplift_low"], 4))


def test_a_negative_measured_effect_is_weighed_against_the_plan_and_clipped_to_zero(repo_root):
    raw = yaml.safe_load((repo_root / "configs" / "playbook.yaml").read_text(encoding="utf-8"))
    pooled = pooled_uplift(campaign_rows(("2025-01-01", "category_offer", 100, 100, 0.5, 0.4)))
    new, _ = updated_playbook(raw, pooled, based_on="playbook.yaml", measured_on=dt.date(2026, 1, 2))
    offer = {a["name"]: a for a in new["actions"]}["category_offer"]
    assert offer["measured"]["uplift"] == pytest.approx(-0.25)
    assert 0 < offer["uplift"] < 0.08  # a campaign of 100 + 100 moves the planned 0.08 toward it, not to 0
    large = pooled_uplift(campaign_rows(("2025-01-01", "category_offer", 20_000, 20_000, 0.5, 0.4)))
    new, _ = updated_playbook(raw, large, based_on="playbook.yaml", measured_on=dt.date(2026, 1, 2))
    assert {a["name"]: a for a in new["actions"]}["category_offer"]["uplift"] == 0.0  # a precise harm: off


def test_a_noisy_measurement_moves_the_plan_little_and_a_precise_one_much():
    plan = {"actions": [{"name": "call", "uplift": 0.1}]}
    assert 0.1 < adopted_uplift(0.1, None, 0.3, -0.2, 0.8, confidence=0.95)[0] < 0.13  # weight 0.13
    assert adopted_uplift(0.1, None, 0.3, 0.28, 0.32, confidence=0.95)[0] == pytest.approx(0.3, abs=0.01)
    assert adopted_uplift(0.1, 0.5, 0.3, -0.2, 0.8, confidence=0.95)[0] > 0.2  # a plan held loosely moves more
    assert adopted_uplift(0.0, None, 0.3, 0.1, 0.5, confidence=0.95)[0] > 0  # a plan of 0 still moves
    assert adopted_uplift(0.1, None, 0.3, float("nan"), float("nan"), confidence=0.95) == (0.3, 1.0)
    # A second update pools every campaign again: it starts from the plan the first replaced, not from its result.
    pooled = pooled_uplift(campaign_rows(("a", "call", 400, 400, 0.3, 0.4)))
    first, _ = updated_playbook(plan, pooled, based_on="p.yaml", measured_on=dt.date(2026, 1, 2))
    second, changes = updated_playbook(first, pooled, based_on="p.v2.yaml", measured_on=dt.date(2026, 2, 2))
    assert second["actions"][0]["uplift"] == first["actions"][0]["uplift"]
    assert second["actions"][0]["measured"]["planned_uplift"] == changes.loc[0, "planned_uplift"] == 0.1
    first["actions"][0]["measured"]["planned_uplift"] = None  # a hand-edited block without its plan: the uplift is
    third, _ = updated_playbook(first, pooled, based_on="p.v2.yaml", measured_on=dt.date(2026, 2, 2))
    assert third["actions"][0]["measured"]["planned_uplift"] == first["actions"][0]["uplift"]


def test_repeat_factors_count_customers_in_several_campaigns_once():
    """Customer a is a control in three campaigns, b in one: sum(k^2) / sum(k) = (9 + 1) / 4 = 2.5 for the control
    group; the treated c, d, e are in one campaign each (1.0). The action's factor is the larger."""
    arms = pd.DataFrame({
        "as_of": ["m1", "m2", "m3", "m1", "m1", "m2", "m3", "m1"],
        "customer_id": ["a", "a", "a", "b", "c", "d", "e", "f"],
        "action": ["call"] * 7 + ["mail"],
        "group": ["control"] * 4 + ["treatment"] * 3 + ["treatment"],
    })
    assert repeat_factors(arms).to_dict() == {"call": 2.5, "mail": 1.0}


def test_repeated_customers_widen_the_pooled_intervals():
    measured = campaign_rows(("a", "call", 100, 100, 0.2, 0.4), ("b", "call", 100, 100, 0.2, 0.4))
    plain, repeated = pooled_uplift(measured).iloc[0], pooled_uplift(measured, repeats=pd.Series({"call": 4.0})).iloc[0]
    assert repeated["uplift"] == plain["uplift"] and repeated["repeat_factor"] == 4.0 and plain["repeat_factor"] == 1.0
    half_width = [math.log(1 - row["uplift_low"]) - math.log(1 - row["uplift"]) for row in (plain, repeated)]
    assert half_width[1] == pytest.approx(2 * half_width[0])
    assert repeated["churn_reduction_high"] - repeated["churn_reduction"] == pytest.approx(
        2 * (plain["churn_reduction_high"] - plain["churn_reduction"]))


def test_no_treated_churner_in_any_campaign_pools_with_a_half_added_to_every_cell():
    """8 and 9 treated, none churned; control 3 of 10 and 2 of 10: a ratio of 0 has no log, so the cells get 0.5
    each, as a single campaign's interval does (before: uplift 1.0 without an interval, and a crash printing it)."""
    row = pooled_uplift(campaign_rows(("a", "call", 8, 10, 0.0, 0.3), ("b", "call", 9, 10, 0.0, 0.2))).iloc[0]
    assert row["uplift_low"] < row["uplift"] < row["uplift_high"] < 1 and np.isfinite(row["uplift_low"])
    r = 0.5 * 11 / 20 + 0.5 * 11 / 21
    s = 3.5 * 9 / 20 + 2.5 * 10 / 21
    assert row["uplift"] == pytest.approx(1 - r / s)


def test_an_interval_holding_zero_is_named_when_the_playbook_takes_its_estimate():
    changes = pd.DataFrame({"action": ["call", "mail", "sms"], "planned_uplift": [0.2, 0.04, 0.1],
                            "measured_uplift": [0.054, 0.3, -0.056], "uplift_low": [-0.074, 0.1, -0.249],
                            "uplift_high": [0.167, 0.45, 0.108], "campaigns": ["a", "a", "a"]})
    assert holds_no_effect_note(changes) == (
        "the measured uplift of call 0.054 [-0.074, 0.167]; sms -0.056 [-0.249, 0.108] holds 0 in its interval: these "
        "campaigns cannot tell it from no effect, so the new playbook weighs it against the planned uplift by "
        "precision (column weight); measure more campaigns before relying on it")
    assert holds_no_effect_note(changes.iloc[[1]]) is None
