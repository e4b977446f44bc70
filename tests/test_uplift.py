"""Uplift learning: Qini / AUUC by hand, T-learner on a planted effect, held-out split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ScoreError
from pipeline.uplift import fit_t_learner, held_out_split, predict_uplift, qini_evaluation, uplift_rows


def test_qini_by_hand():
    # Ranked: treated retained, control churned, treated churned, control retained.
    summary, curves = qini_evaluation(
        np.array([4.0, 3.0, 2.0, 1.0]), np.array([True, False, True, False]), np.array([False, True, True, False]),
        bootstrap=20, seed=0,
    )
    # Qini per customer at 1/4..4/4: r_t - r_c * n_t / n_c = 1, 1, 1, 1 - 1 * 2 / 2 = 0, divided by 4.
    assert curves["qini"].tolist() == [0.25, 0.25, 0.25, 0.0]
    assert curves["qini_random"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert summary["qini"] == pytest.approx(0.25 * 0.25 / 2 + 0.25 * 0.25 * 2 + 0.25 * 0.25 / 2)
    # Uplift curve: (r_t/n_t - r_c/n_c) * k / 4 = (1-0)*1/4, (1-0)*2/4, (1/2-0)*3/4, (1/2-1/2)*4/4.
    assert curves["uplift"].tolist() == [0.25, 0.5, 0.375, 0.0]
    assert (summary["n_treatment"], summary["n_control"]) == (2, 2)


def test_qini_of_a_random_ranking_is_near_zero_and_of_the_true_ranking_positive():
    rng = np.random.default_rng(0)
    n = 6000
    responder = rng.random(n) < 0.4
    treated = rng.random(n) < 0.5
    churned = rng.random(n) < np.where(treated & responder, 0.2, 0.5)
    true, _ = qini_evaluation(responder.astype(float), treated, churned, bootstrap=100, seed=1)
    random, _ = qini_evaluation(rng.random(n), treated, churned, bootstrap=100, seed=1)
    # Expected area: 0.3 x 0.5 retained per treated responder ranked first; by hand 0.0072 + 0.0108 = 0.018.
    assert true["qini"] == pytest.approx(0.018, abs=0.005) and true["qini_low"] > 0
    assert random["qini_low"] < 0 < random["qini_high"]


def test_qini_needs_both_arms():
    with pytest.raises(ScoreError, match="treated and control"):
        qini_evaluation(np.ones(3), np.ones(3, dtype=bool), np.zeros(3, dtype=bool), bootstrap=20, seed=0)


def planted_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    treated = rng.random(n) < 0.5
    churn = np.where(treated & (x > 0.5), 0.15, 0.5)
    return pd.DataFrame(
        {"as_of": "2025-01-01", "customer_id": np.arange(n).astype(str), "action": "call", "treated": treated,
         "churned": rng.random(n) < churn, "x": x, "noise": rng.random(n)}
    )


def test_t_learner_finds_the_planted_responders():
    learner = fit_t_learner(planted_rows(4000, 1), action="call", feature_names=["x", "noise"], rounds=100, seed=0)
    fresh = pd.DataFrame({"x": [0.1, 0.2, 0.8, 0.9], "noise": [0.5, 0.5, 0.5, 0.5]})
    predicted = predict_uplift(learner, fresh)
    assert (predicted["uplift"].between(0, 1)).all()
    assert predicted["reduction"].iloc[2:].min() > 0.2 > predicted["reduction"].iloc[:2].abs().max()
    held = planted_rows(3000, 2)
    summary, _ = qini_evaluation(predict_uplift(learner, held)["reduction"].to_numpy(), held["treated"], held["churned"],
                                 bootstrap=100, seed=0)
    assert summary["qini_low"] > 0


def test_t_learner_refuses_an_arm_with_one_outcome():
    rows = planted_rows(400, 3).assign(churned=False)
    with pytest.raises(ScoreError, match="control group has .* all with the same outcome"):
        fit_t_learner(rows, action="call", feature_names=["x"], rounds=5, seed=0)


def test_uplift_rows_keep_treated_and_control_with_features():
    listed = pd.DataFrame({"customer_id": ["a", "b", "c"], "action": ["call", "call", None], "group": ["treatment", "control", "none"]})
    features = pd.DataFrame({"customer_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    churned = pd.Series([True, False, True], index=["a", "b", "c"])
    rows = uplift_rows({"d": listed}, {"d": features}, {"d": churned})
    assert rows.to_dict("list") == {"as_of": ["d", "d"], "customer_id": ["a", "b"], "action": ["call", "call"],
                                    "treated": [True, False], "churned": [True, False], "x": [1.0, 2.0]}


def test_held_out_split_keeps_the_latest_campaigns():
    rows = pd.DataFrame({"as_of": ["2025-01-01", "2025-03-01", "2025-05-01", "2025-05-01"], "v": [1, 2, 3, 4]})
    fit, held, dates = held_out_split(rows, holdout=1)
    assert dates == ["2025-05-01"] and fit["v"].tolist() == [1, 2] and held["v"].tolist() == [3, 4]
    with pytest.raises(ScoreError, match="holdout_campaigns=3 needs more past campaigns"):
        held_out_split(rows, holdout=3)
