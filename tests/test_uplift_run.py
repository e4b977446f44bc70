"""`churn uplift` on the simulated campaign history: planted responders ranked first, saved models, better allocation."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.actions import allocate_budget
from pipeline.campaigns import CAMPAIGN_ACTIONS, PLANTED_EFFECTS, campaign_dates, customer_state, planted_uplift, simulate_campaign_history
from pipeline.demo_data import generate_demo
from pipeline.errors import ScoreError
from pipeline.run import uplift as runner
from pipeline.uplift import fit_t_learner, held_out_split, predict_uplift
from tests.conftest import CAMPAIGN_TEST_CUSTOMERS, CAMPAIGN_TEST_LISTS


@pytest.fixture(scope="module")
def rows(campaign_cfg):
    return runner.training_rows(campaign_cfg)


@pytest.fixture(scope="module")
def truth(campaign_cfg):
    """The same simulation the campaign workspace holds (same seed), with its planted truth."""
    frames = generate_demo(customers=CAMPAIGN_TEST_CUSTOMERS, seed=42)
    end = frames["transactions"]["ordered_at"].max().date()
    dates = campaign_dates(data_end=end, horizon_days=campaign_cfg.features.horizon_days, count=CAMPAIGN_TEST_LISTS)
    return simulate_campaign_history(frames, dates=dates, horizon_days=campaign_cfg.features.horizon_days, seed=42)


@pytest.mark.slow
def test_uplift_run_ranks_planted_responders_first_and_saves_text_models(campaign_cfg, tmp_path):
    result = runner.run(campaign_cfg, quiet=True)
    evaluation = result["evaluation"]
    assert set(evaluation) == set(PLANTED_EFFECTS)
    recovery = evaluation["service_recovery"]
    assert recovery["qini_low"] > 0 and recovery["beats_constant"]
    assert evaluation["category_offer"]["qini"] > 0
    folder = runner.uplift_dir(campaign_cfg)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{a}.{arm}.txt" for a in PLANTED_EFFECTS for arm in ("control", "treatment")] + ["uplift.json"]
    )
    loaded = runner.load_uplift_models(folder)
    assert "service_recovery" in loaded
    copy = tmp_path / "uplift"
    shutil.copytree(folder, copy)
    (copy / "service_recovery.control.txt").write_text("tampered", encoding="utf-8")
    with pytest.raises(ScoreError, match="does not match its checksum"):
        runner.load_uplift_models(copy)


@pytest.mark.slow
def test_learned_uplift_allocates_better_than_the_constant_playbook(rows, truth):
    rows, feature_names = rows
    fit, held, dates = held_out_split(rows, holdout=1)
    fresh = held.drop_duplicates("customer_id").set_index("customer_id")
    as_of = max(truth.lists)
    listed = truth.lists[as_of].set_index("customer_id").loc[fresh.index]
    would_churn = truth.truth[as_of].set_index("customer_id").loc[fresh.index, "would_churn"].to_numpy()
    state = customer_state(truth.frames, as_of=as_of).loc[fresh.index]
    p, value = listed["churn_probability"].to_numpy(), listed["customer_value"].to_numpy()

    def allocation(uplift_by_action: dict[str, np.ndarray]) -> float:
        names = list(CAMPAIGN_ACTIONS)
        cost = np.array([CAMPAIGN_ACTIONS[a]["cost"] for a in names])
        net = np.column_stack([p * uplift_by_action[a] * value for a in names]) - cost
        best = net.argmax(axis=1)
        candidates = pd.DataFrame({"action": np.array(names)[best], "action_cost": cost[best],
                                   "expected_net_value": net[np.arange(len(p)), best]})
        chosen = allocate_budget(candidates, budget=3000.0).to_numpy()
        action = pd.Series(np.where(chosen, candidates["action"], None), index=state.index, dtype="str")
        realised = would_churn * planted_uplift(state, action) * value - np.where(chosen, candidates["action_cost"], 0.0)
        return float(realised[chosen].sum())

    constant = allocation({a: np.full(len(p), spec["uplift"]) for a, spec in CAMPAIGN_ACTIONS.items()})
    learned = allocation(
        {a: predict_uplift(fit_t_learner(fit, action=a, feature_names=feature_names, rounds=100, seed=0), fresh)["uplift"].to_numpy()
         for a in CAMPAIGN_ACTIONS}
    )
    assert learned > constant, (learned, constant)


def test_score_uses_the_uplift_models_that_beat_constant_uplift(campaign_cfg, demo_trained, tmp_path):
    from pipeline.config import PathsConfig, UpliftConfig
    from pipeline.run import score

    source = runner.uplift_dir(campaign_cfg)
    if not source.is_dir():
        runner.run(campaign_cfg, quiet=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validated").symlink_to(demo_trained.validated_dir)
    cfg = demo_trained.model_copy(
        update={
            "paths": PathsConfig(data_dir=tmp_path / "data", models_dir=tmp_path / "models"),
            "uplift": UpliftConfig(use_model=True),
        }
    )
    shutil.copytree(source, runner.uplift_dir(cfg))
    result = score.run(cfg, as_of=None, bundle=demo_trained.bundle_dir, quiet=True)
    scores = pd.read_parquet(result["scores_path"])
    selected = scores[scores["group"] != "none"]
    assert selected["uplift_source"].notna().all() and scores.loc[scores["group"] == "none", "uplift_source"].isna().all()
    assert "model" in set(selected["uplift_source"])
    assert selected.loc[selected["action"] == "service_recovery", "uplift_source"].eq("model").all()
    assert result["uplift_sources"]["model"] == int((selected["uplift_source"] == "model").sum())
