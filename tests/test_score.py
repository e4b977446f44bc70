"""score_customers on a tiny real ChurnModel (LightGBM + calibrator) and hand-made features."""

from __future__ import annotations

import datetime as dt

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from conftest import minimal_config
from synthetic import spec
from pipeline.config import RiskTiersConfig, ScoreConfig
from pipeline.errors import ScoreError
from pipeline.model import CategoryEncoder, ChurnModel, ProbabilityCalibrator
from pipeline.playbook import playbook_from_dict
from pipeline.run.score import unmeasurable_actions
from pipeline.score import (
    action_measurability,
    output_columns,
    reasons_scope,
    relative_tiers_would_list,
    risk_tiers,
    score_customers,
    summarise_scores,
    tier_thresholds,
    tiers_summary,
)

AS_OF = dt.date(2025, 10, 1)
NUMERIC = ["recency_days", "open_tickets", "is_detractor", "monetary_365d", "frequency_all"]
CATEGORICAL = ["top_category"]


SPECS = [
    spec("recency_days", reason="no order for {recency_days:.0f} days"),
    spec("open_tickets", reason="{open_tickets:.0f} support tickets still open"),
    spec("is_detractor", reason="gave a low NPS score (detractor)"),
    spec("monetary_365d", reason="spent {monetary_365d:.0f} in the last year"),
    spec("frequency_all", reason="{frequency_all:.0f} orders so far"),
    spec("top_category", "customer", "categorical"),
]
PLAYBOOK = playbook_from_dict(
    {
        "actions": [
            {
                "name": "service_recovery",
                "description": "call",
                "channel": "phone",
                "cost": 15.0,
                "uplift": 0.25,
                "capacity": 40,
                "eligibility": {
                    "any": [
                        {"feature": "open_tickets", "operator": ">", "value": 0},
                        {"feature": "is_detractor", "operator": "==", "value": 1},
                    ]
                },
            },
            {"name": "category_offer", "description": "offer", "channel": "email", "cost": 3.0, "uplift": 0.08,
             "eligibility": {"all": [{"feature": "top_category", "operator": "not_null"}]}},
        ]
    },
    known_features=[*NUMERIC, *CATEGORICAL],
)


def make_features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "recency_days": rng.exponential(60, n).round(),
            "open_tickets": rng.poisson(0.3, n).astype(float),
            "is_detractor": (rng.random(n) < 0.2).astype(float),
            "monetary_365d": rng.gamma(2.0, 150.0, n).round(2),
            "frequency_all": (rng.poisson(3, n) + 1).astype(float),
            "top_category": rng.choice(["toys", "books", "garden"], n),
        }
    ).astype({"customer_id": "str", "top_category": "str"})
    logit = -2.0 + 0.02 * frame["recency_days"] + 0.9 * frame["open_tickets"] + 1.2 * frame["is_detractor"]
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return frame, churned.to_numpy()


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    frame, churned = make_features(1500, seed=1)
    encoder = CategoryEncoder.fit(frame, CATEGORICAL)
    names = [*NUMERIC, *CATEGORICAL]
    proto = ChurnModel(
        feature_names=names, categorical_features=CATEGORICAL, encoder=encoder, booster=None,  # type: ignore[arg-type]
        calibrator=ProbabilityCalibrator("sigmoid"), horizon_days=90,
    )
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 20, "learning_rate": 0.1, "verbose": -1,
              "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(proto.matrix(frame), churned), num_boost_round=40)
    raw = booster.predict(proto.matrix(frame), raw_score=True)
    return ChurnModel(
        feature_names=names, categorical_features=CATEGORICAL, encoder=encoder, booster=booster,
        calibrator=ProbabilityCalibrator("sigmoid").fit(raw, churned), horizon_days=90,
    )


class CountingModel:
    """Wraps a ChurnModel and records how many rows `contributions` was asked for."""

    def __init__(self, model: ChurnModel) -> None:
        self.model = model
        self.feature_names_ = model.feature_names_
        self.contribution_rows: list[int] = []

    def check_features(self, df):
        return self.model.check_features(df)

    def predict_proba(self, df):
        return self.model.predict_proba(df)

    def contributions(self, df):
        self.contribution_rows.append(len(df))
        return self.model.contributions(df)


CFG = ScoreConfig(budget=600.0, control_share=0.2, seed=3, value_horizon_days=365)


def score(features, model, cfg=CFG, playbook=PLAYBOOK):
    return score_customers(
        features, model, playbook=playbook, specs=SPECS, as_of=AS_OF, cfg=cfg, model_name="churn-test", model_version="3"
    )


def test_risk_tiers_use_thresholds_inclusively():
    tiers = risk_tiers(pd.Series([0.5, 0.49, 0.25, 0.1]), high=0.5, medium=0.25)
    assert tiers.tolist() == ["high", "medium", "medium", "low"]


def test_scores_have_the_issue_columns_and_consistent_choices(model):
    features, _ = make_features(400, seed=2)
    result = score(features, model)
    assert list(result.columns) == output_columns(3) == [
        "customer_id", "churn_probability", "risk_tier", "reason_1", "reason_2", "reason_3", "reasons_status",
        "action", "action_cost", "customer_value", "expected_net_value", "uplift_source", "no_action_reason",
        "best_action", "best_action_net_value", "group", "model_name", "model_version", "as_of",
    ]
    assert len(result) == 400 and result["customer_id"].is_unique
    assert result["churn_probability"].is_monotonic_decreasing
    selected = result[result["group"] != "none"]
    assert len(selected) > 0
    assert selected["action"].notna().all() and (selected["expected_net_value"] > 0).all()
    assert selected["reason_1"].notna().all()
    assert selected["action_cost"].sum() <= CFG.budget
    assert (selected["action"] == "service_recovery").sum() <= 40
    not_selected = result[result["group"] == "none"]
    assert not_selected["action"].isna().all() and not_selected["action_cost"].isna().all()
    at_risk = result[result["risk_tier"].isin(["high", "medium"])]
    assert at_risk["reason_1"].notna().mean() > 0.9
    assert set(result["model_name"]) == {"churn-test"} and set(result["model_version"]) == {"3"}
    assert set(result["as_of"]) == {AS_OF}
    # service recovery only for customers eligible for it
    by_id = features.set_index("customer_id")
    recovery = selected.loc[selected["action"] == "service_recovery", "customer_id"]
    eligible = (by_id.loc[recovery, "open_tickets"] > 0) | (by_id.loc[recovery, "is_detractor"] == 1)
    assert eligible.all()


def test_contributions_only_for_customers_who_need_reasons(model):
    features, _ = make_features(400, seed=2)
    counting = CountingModel(model)
    result = score(features, counting)
    needs = (result["group"] != "none") | result["risk_tier"].isin(["high", "medium"])
    assert counting.contribution_rows == [int(needs.sum())]
    assert counting.contribution_rows[0] < len(features)
    assert result.loc[~needs, ["reason_1", "reason_2", "reason_3"]].isna().all().all()


def test_same_inputs_give_identical_scores(model):
    features, _ = make_features(300, seed=4)
    first = score(features, model)
    second = score(features.sample(frac=1.0, random_state=0), model)  # row order must not matter
    pd.testing.assert_frame_equal(first, second)


def test_summary_counts(model):
    features, _ = make_features(300, seed=4)
    result = score(features, model)
    summary = summarise_scores(result, budget=CFG.budget, as_of=AS_OF)
    assert summary["customers_scored"] == 300
    assert summary["selected"] == summary["treatment"] + summary["control"] == int((result["group"] != "none").sum())
    assert summary["budget_used"] <= summary["budget_committed"] <= CFG.budget
    assert sum(v["treatment"] + v["control"] for v in summary["actions"].values()) == summary["selected"]
    assert sum(summary["tiers"].values()) == 300


def test_summary_says_what_each_actions_groups_can_measure():
    selected = pd.DataFrame({
        "action": ["winback"] * 4 + ["onboarding"] * 2,
        "group": ["treatment", "treatment", "treatment", "control", "treatment", "treatment"],
        "churn_probability": [0.6, 0.8, 0.7, 0.5, 0.4, 0.4],
        "customer_value": [100.0, 50.0, 0.0, 100.0, 10.0, 10.0],
        "action_cost": [2.0] * 6,
        # expected net value = probability x uplift (0.1) x value - cost; no value: no planned drop to read
        "expected_net_value": [4.0, 2.0, -2.0, 3.0, -1.6, -1.6],
    })
    counts = pd.DataFrame({"treatment": [3, 2], "control": [1, 0]}, index=["winback", "onboarding"])
    found = action_measurability(selected, counts)
    assert found["winback"]["expected_churn"] == pytest.approx(0.65)
    assert found["winback"]["planned_reduction"] == pytest.approx((0.06 + 0.08 + 0.05) / 3, abs=1e-6)
    assert found["winback"]["detectable_reduction"] == pytest.approx(2.801585 * np.sqrt(0.65 * 0.35 * (1 / 3 + 1)), abs=1e-5)
    assert found["winback"]["control_share_to_detect"] is None  # four customers cannot measure 6 points
    assert found["onboarding"]["detectable_reduction"] is None  # nobody in control
    lines = unmeasurable_actions(found)
    assert lines[0] == (
        "winback: with 1 in control and 3 treated, this list tells from chance no drop in churn at all (80% power, 95% "
        "confidence), and the playbook expects a drop of 6.3 points (its uplift times each customer's churn probability, 65% on "
        "average): this list alone cannot measure it; no control share would with 4 customers; pooled over several "
        "lists (churn measure --update-playbook) the interval narrows")
    assert lines[1] == "onboarding: 2 treated and 0 in control, so this list cannot measure its effect"
    larger = {**found["winback"], "detectable_reduction": 0.2, "control_share_to_detect": 0.31}
    assert ("tells from chance only a drop in churn of 20.0 points or more" in unmeasurable_actions({"w": larger})[0]
            and unmeasurable_actions({"w": larger})[0].endswith(
                "a control share of 0.31 would (score.control_share; fewer treated)"))
    measurable = {**found["winback"], "detectable_reduction": 0.05}
    assert unmeasurable_actions({"winback": measurable}) == []


def test_zero_budget_selects_nobody(model):
    features, _ = make_features(100, seed=5)
    result = score(features, model, cfg=CFG.model_copy(update={"budget": 0.0}))
    assert (result["group"] == "none").all()


def test_missing_feature_column_fails_clearly(model):
    features, _ = make_features(50, seed=6)
    with pytest.raises(ScoreError, match="lacks 1 column\\(s\\) the model was trained on: open_tickets"):
        score(features.drop(columns="open_tickets"), model)


def test_duplicate_or_empty_customers_fail_clearly(model):
    features, _ = make_features(5, seed=6)
    with pytest.raises(ScoreError, match="repeats customers"):
        score(pd.concat([features, features.iloc[:1]]), model)
    with pytest.raises(ScoreError, match="no customers to score"):
        score(features.iloc[:0], model)


def test_reason_tiers_can_limit_contributions_to_the_selected(model):
    features, _ = make_features(400, seed=2)
    counting = CountingModel(model)
    result = score(features, counting, cfg=CFG.model_copy(update={"reason_tiers": []}))
    selected = result["group"] != "none"
    assert counting.contribution_rows == [int(selected.sum())]
    assert result.loc[selected, "reason_1"].notna().all()
    assert result.loc[~selected, "reason_1"].isna().all()


def test_reason_limit_explains_the_riskiest_of_the_tiers_and_every_selected(model):
    features, _ = make_features(400, seed=2)
    counting = CountingModel(model)
    result = score(features, counting, cfg=CFG.model_copy(update={"reason_limit": 25}))
    selected = result["group"] != "none"
    in_tiers = result["risk_tier"].isin(["high", "medium"])
    riskiest = pd.Series(False, index=result.index)
    riskiest[result.index[in_tiers][:25]] = True  # result is sorted by probability, then customer_id
    should_explain = selected | riskiest
    assert 25 < int(should_explain.sum()) < int((selected | in_tiers).sum())
    assert counting.contribution_rows == [int(should_explain.sum())]
    explained = result["reasons_status"].isin(["explained", "no_risk_driver"])
    assert explained.equals(should_explain)
    assert result.loc[result["reasons_status"] == "explained", "reason_1"].notna().all()
    assert result.loc[~explained, ["reason_1", "reason_2", "reason_3"]].isna().all().all()
    assert (result.loc[~explained & in_tiers, "reasons_status"] == "over_reason_limit").all()
    assert (result.loc[~explained & ~in_tiers, "reasons_status"] == "tier_not_explained").all()
    summary = summarise_scores(result, budget=CFG.budget, as_of=AS_OF)
    assert sum(summary["reasons"].values()) == len(result)
    assert summary["reasons"]["over_reason_limit"] == int((~explained & in_tiers).sum()) > 0


def test_reasons_status_says_why_a_row_has_no_reasons(model):
    features, _ = make_features(400, seed=2)
    result = score(features, model)
    statuses = set(result["reasons_status"])
    assert statuses <= {"explained", "no_risk_driver", "tier_not_explained"}
    has_reason = result["reason_1"].notna()
    assert (has_reason == (result["reasons_status"] == "explained")).all()
    not_needed = (result["group"] == "none") & (result["risk_tier"] == "low")
    assert (result.loc[not_needed, "reasons_status"] == "tier_not_explained").all()


def test_reasons_scope_ranks_by_probability_and_keeps_the_selected():
    index = pd.Index([f"c{i}" for i in range(6)])
    probability = pd.Series([0.9, 0.3, 0.95, 0.6, 0.6, 0.1], index=index)
    tiers = risk_tiers(probability, high=0.5, medium=0.25)
    selected = pd.Series([False, False, False, False, False, True], index=index)
    status = reasons_scope(probability, tiers, selected, reason_tiers=["high", "medium"], reason_limit=3)
    assert status.tolist() == [
        "explained", "over_reason_limit", "explained", "explained", "over_reason_limit", "explained",
    ]  # c3 and c4 tie at 0.6: index order decides
    unlimited = reasons_scope(probability, tiers, selected, reason_tiers=["high"], reason_limit=None)
    assert unlimited.tolist() == [
        "explained", "tier_not_explained", "explained", "explained", "explained", "explained",
    ]
    nobody = reasons_scope(probability, tiers, selected, reason_tiers=["high"], reason_limit=0)
    assert nobody.tolist() == [
        "over_reason_limit", "tier_not_explained", "over_reason_limit", "over_reason_limit", "over_reason_limit",
        "explained",
    ]


def test_reason_limit_zero_or_empty_tiers_explains_only_the_selected(model):
    features, _ = make_features(400, seed=2)
    counting = CountingModel(model)
    limited = score(features, counting, cfg=CFG.model_copy(update={"reason_limit": 0}))
    selected = limited["group"] != "none"
    assert counting.contribution_rows == [int(selected.sum())]
    no_tiers = score(features, model, cfg=CFG.model_copy(update={"reason_tiers": []}))
    columns = ["reason_1", "reason_2", "reason_3"]
    pd.testing.assert_frame_equal(limited[columns], no_tiers[columns])


def test_reason_limit_is_validated_naming_the_key(tmp_path):
    import yaml

    from pipeline.config import load_config
    from pipeline.errors import ConfigError

    raw = minimal_config(score={"reason_limit": -1})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"score\.reason_limit: Input should be greater than or equal to 0"):
        load_config(path)
    raw["score"] = {"reason_limit": None}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_config(path).score.reason_limit is None
    raw["score"] = {"reason_limit": "many"}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"score\.reason_limit: Input should be a valid integer"):
        load_config(path)


def test_every_at_risk_customer_without_an_action_says_why(model):
    features, _ = make_features(400, seed=2)
    result = score(features, model)
    at_risk = result["risk_tier"].isin(["high", "medium"])
    untreated = result["group"] != "treatment"
    assert result.loc[at_risk & untreated, "no_action_reason"].notna().all()
    assert result.loc[result["group"] == "treatment", "no_action_reason"].isna().all()
    assert (result.loc[result["group"] == "control", "no_action_reason"] == "held out as control group").all()
    worthless = result["no_action_reason"] == "best action not worth its cost"
    assert (result.loc[worthless, "best_action_net_value"] <= 0).all()
    summary = summarise_scores(result, budget=CFG.budget, as_of=AS_OF)
    assert sum(summary["no_action"].values()) == int(result["no_action_reason"].notna().sum())
    assert summary["budget_spent_on_treated"] + summary["budget_held_back_for_control"] + summary["budget_left"] == (
        pytest.approx(CFG.budget)
    )


def test_low_risk_customers_are_treated_only_below_an_explicit_floor(model):
    features, _ = make_features(400, seed=2)
    default = score(features, model)  # floor: the medium tier's threshold
    assert (default.loc[default["group"] != "none", "churn_probability"] >= CFG.risk_tiers.medium).all()
    anyone = score(features, model, cfg=CFG.model_copy(update={"min_probability": 0.0, "budget": 5000.0}))
    assert (anyone.loc[anyone["group"] != "none", "risk_tier"] == "low").any()
    strict = score(features, model, cfg=CFG.model_copy(update={"min_probability": 0.6}))
    below = strict["churn_probability"] < 0.6
    assert (strict.loc[below, "group"] == "none").all()
    at_risk_below = below & strict["risk_tier"].isin(["high", "medium"])
    assert (strict.loc[at_risk_below, "no_action_reason"] == "churn probability below score.min_probability").all()
    summary = summarise_scores(anyone, budget=5000.0, as_of=AS_OF)
    assert summary["treated_below_high_tier"] == int(
        ((anyone["group"] == "treatment") & (anyone["risk_tier"] != "high")).sum()
    ) > 0


def test_a_list_where_no_customer_reaches_the_medium_tier_says_why_it_names_nobody(model):
    """Kaggle's Retail_Data_Transactions (churn rate 11% at a 180-day horizon): every probability was below 0.18, so
    the list had 0 at risk, no reasons and no actions, and the summary said only '0 at risk (high or medium tier)'."""
    from pipeline.run.score import no_one_at_risk

    features, _ = make_features(300, seed=3)
    highest = score(features, model)["churn_probability"].max()
    medium = (np.floor(highest * 100) + 1) / 100  # the next hundredth above the highest probability
    tiers = RiskTiersConfig(high=medium + 0.005, medium=medium)
    calm = score(features, model, cfg=CFG.model_copy(update={"risk_tiers": tiers}))
    summary = summarise_scores(calm, budget=CFG.budget, as_of=AS_OF)
    assert summary["at_risk"] == 0
    summary["risk_tiers"] = {"high": tiers.high, "medium": medium}
    assert summary["highest_probability"] == pytest.approx(highest) and medium > highest
    # the highest is said to three digits: 'the highest is 0.99' beside a tier of 0.99 (0.987) read as reaching it
    assert no_one_at_risk(summary) == [
        f"no customer reaches the medium tier's churn probability {medium:.2f} (the highest is {highest:.3f}), so "
        "none is listed at risk, explained or offered an action: lower score.risk_tiers to list the riskiest"]
    listed = summarise_scores(score(features, model), budget=CFG.budget, as_of=AS_OF)
    assert listed["at_risk"] > 0 and no_one_at_risk({**listed, "risk_tiers": {"high": 0.5, "medium": 0.25}}) == []


# A low-churn shop: nobody reaches the fixed tiers (0.25), the mean is 0.06; hand computed: 3 x 0.06 = 0.18 lists
# c0000 (0.19) in the high tier, 2 x 0.06 = 0.12 lists c0001 (0.13) in the medium one, c0002 (0.11) stays low.
LOW_CHURN = [0.19, 0.13, 0.11, 0.05, 0.04, 0.03, 0.02, 0.01, 0.01, 0.01]
RELATIVE = RiskTiersConfig(high=3, medium=2, relative_to="mean_probability")


class FixedRiskModel(CountingModel):
    """The tiny model's contributions, with each customer's churn probability given."""

    def __init__(self, model: ChurnModel, probability: dict[str, float]) -> None:
        super().__init__(model)
        self.probability = probability

    def predict_proba(self, df):
        return df["customer_id"].map(self.probability).to_numpy(dtype=float)


# Worth its cost for anyone (0.01 x 0.5 x value): who is treated is the probability floor's choice alone.
CHEAP_OFFER = playbook_from_dict(
    {"actions": [{"name": "category_offer", "description": "offer", "channel": "email", "cost": 0.01, "uplift": 0.5,
                  "eligibility": {"all": [{"feature": "top_category", "operator": "not_null"}]}}]},
    known_features=[*NUMERIC, *CATEGORICAL],
)


def test_relative_tiers_list_the_riskiest_of_a_low_churn_shop_that_fixed_tiers_miss(model):
    features, _ = make_features(len(LOW_CHURN), seed=5)
    fixed = FixedRiskModel(model, dict(zip(features["customer_id"], LOW_CHURN, strict=True)))
    generous = CFG.model_copy(update={"budget": 5000.0})
    absolute = score(features, fixed, cfg=generous, playbook=CHEAP_OFFER).set_index("customer_id")
    assert (absolute["risk_tier"] == "low").all() and (absolute["group"] == "none").all()
    assert (absolute["reasons_status"] == "tier_not_explained").all() and fixed.contribution_rows == []

    relative = score(features, fixed, cfg=generous.model_copy(update={"risk_tiers": RELATIVE}),
                     playbook=CHEAP_OFFER).set_index("customer_id")
    assert relative["risk_tier"].to_dict() == {
        "c0000": "high", "c0001": "medium", **{f"c{i:04d}": "low" for i in range(2, len(LOW_CHURN))}}
    assert fixed.contribution_rows == [2]  # the two at risk are explained, nobody else
    assert set(relative.index[relative["reasons_status"] != "tier_not_explained"]) == {"c0000", "c0001"}
    # the action floor is the list's medium threshold (0.12): the two at risk get the offer, the low tier nothing
    assert set(relative.index[relative["group"] != "none"]) == {"c0000", "c0001"}
    assert relative.loc[relative["risk_tier"] == "low", "no_action_reason"].isna().all()


def test_relative_thresholds_are_multiples_of_the_mean_the_same_in_any_order():
    probability = pd.Series(LOW_CHURN, index=[f"c{i}" for i in range(len(LOW_CHURN))])
    thresholds = tier_thresholds(probability, tiers=RELATIVE)
    assert thresholds.mean_probability == pytest.approx(0.06) and thresholds.customers == 10
    assert (thresholds.high, thresholds.medium) == (3 * thresholds.mean_probability, 2 * thresholds.mean_probability)
    for seed in range(20):  # summed in another order, a mean can differ in its last bit: a customer at the threshold
        shuffled = tier_thresholds(probability.sample(frac=1.0, random_state=seed), tiers=RELATIVE)
        assert (shuffled.high, shuffled.medium) == (thresholds.high, thresholds.medium)
    fixed = tier_thresholds(probability, tiers=RiskTiersConfig())
    assert (fixed.high, fixed.medium, fixed.mean_probability) == (0.5, 0.25, None)


def test_a_relative_tier_above_certainty_holds_nobody_and_is_recorded_as_null():
    """Where most customers churn (mean 0.4), 3 x the mean is 1.2: no churn probability reaches it; 2 x is 0.8."""
    probability = pd.Series([0.9, 0.5, 0.1, 0.1])
    thresholds = tier_thresholds(probability, tiers=RELATIVE)
    assert thresholds.high == pytest.approx(1.2) and thresholds.medium == pytest.approx(0.8)
    assert risk_tiers(probability, high=thresholds.high, medium=thresholds.medium).tolist() == [
        "medium", "low", "low", "low"]
    recorded = tiers_summary(thresholds)
    assert recorded["risk_tiers"] == {"high": None, "medium": thresholds.medium}
    assert recorded["risk_tiers_from"] == {"relative_to": "mean_probability", "multiples": {"high": 3.0, "medium": 2.0},
                                           "mean_probability": thresholds.mean_probability, "customers": 4}
    zero = tier_thresholds(pd.Series([0.0, 0.0]), tiers=RELATIVE)  # nobody is riskier than the others
    assert (zero.high, zero.medium) == (np.inf, np.inf)
    assert tiers_summary(zero)["risk_tiers"] == {"high": None, "medium": None}


def test_fixed_tiers_are_recorded_as_before():
    assert tiers_summary(tier_thresholds(pd.Series([0.3]), tiers=RiskTiersConfig())) == {
        "risk_tiers": {"high": 0.5, "medium": 0.25}}


def _low_churn_summary(tiers: RiskTiersConfig) -> dict:
    """The summary fields the sentences read, for the LOW_CHURN customers scored with `tiers`."""
    probability = pd.Series(LOW_CHURN)
    thresholds = tier_thresholds(probability, tiers=tiers)
    at_risk = int((probability >= thresholds.medium).sum())
    return {"customers_scored": len(LOW_CHURN), "at_risk": at_risk, "highest_probability": 0.19,
            **tiers_summary(thresholds)}


def test_relative_tiers_are_said_in_words():
    from pipeline.run.score import no_one_at_risk, relative_tiers_sentences

    summary = _low_churn_summary(RELATIVE)
    assert relative_tiers_sentences(summary) == [
        "high tier: churn probability 0.18 or more, 3 times the mean 0.06 of the 10 customers scored; "
        "medium tier: churn probability 0.12 or more, twice the mean"]
    assert no_one_at_risk(summary) == [] and relative_tiers_sentences(_low_churn_summary(RiskTiersConfig())) == []
    wide = tiers_summary(tier_thresholds(pd.Series([0.9, 0.5, 0.1, 0.1]), tiers=RELATIVE))
    assert relative_tiers_sentences({**wide, "customers_scored": 4}) == [
        "high tier: nobody, as 3 times the mean 0.40 of the 4 customers scored is 1.20, above any churn probability; "
        "medium tier: churn probability 0.80 or more, twice the mean"]
    flat = tiers_summary(tier_thresholds(pd.Series([0.0, 0.0]), tiers=RELATIVE))
    assert relative_tiers_sentences(flat) == [
        "high tier: nobody, as every one of the 2 customers scored has churn probability 0; "
        "medium tier: nobody, as every one of the 2 customers scored has churn probability 0"]


def test_a_list_naming_nobody_says_how_many_relative_tiers_would_list():
    from pipeline.run.score import no_one_at_risk

    summary = _low_churn_summary(RiskTiersConfig())
    assert summary["at_risk"] == 0
    # mean 0.06: 1.5 x = 0.09 lists 0.19, 0.13 and 0.11; 2 x = 0.12 the first two
    summary["relative_tiers_would_list"] = relative_tiers_would_list(pd.Series(LOW_CHURN))
    assert summary["relative_tiers_would_list"] == {
        "setting": {"high": 2.0, "medium": 1.5, "relative_to": "mean_probability"},
        "mean_probability": pytest.approx(0.06), "at_risk": 3, "high": 2}
    assert no_one_at_risk(summary) == [
        "no customer reaches the medium tier's churn probability 0.25 (the highest is 0.19), so none is listed at "
        "risk, explained or offered an action: lower score.risk_tiers to list the riskiest, or set them relative to "
        "the mean churn probability 0.06: score.risk_tiers {high: 2, medium: 1.5, relative_to: mean_probability} "
        "would list the 3 customers at 1.5 times the mean or more (2 at twice the mean or more, the high tier)"]
    # mean 0.11: nobody reaches 1.5 x (0.165), 0.14 reaches 1.25 x (0.1375): the looser setting is named
    looser = relative_tiers_would_list(pd.Series([0.14, 0.1, 0.1, 0.1]))
    assert looser == {"setting": {"high": 1.5, "medium": 1.25, "relative_to": "mean_probability"},
                      "mean_probability": pytest.approx(0.11), "at_risk": 1, "high": 0}
    assert no_one_at_risk({**summary, "highest_probability": 0.14, "relative_tiers_would_list": looser})[0].endswith(
        "score.risk_tiers {high: 1.5, medium: 1.25, relative_to: mean_probability} would list the 1 customer at 1.25 "
        "times the mean or more (0 at 1.5 times the mean or more, the high tier)")
    flat = relative_tiers_would_list(pd.Series([0.1, 0.1, 0.11]))
    assert no_one_at_risk({**summary, "highest_probability": 0.11, "relative_tiers_would_list": flat}) == [
        "no customer reaches the medium tier's churn probability 0.25 (the highest is 0.11), so none is listed at "
        "risk, explained or offered an action: lower score.risk_tiers to list the riskiest; relative tiers would list "
        "nobody either: the highest is less than 1.25 times the mean 0.103 (score.risk_tiers {high: 1.5, medium: "
        "1.25, relative_to: mean_probability})"]


def test_a_list_where_nearly_everyone_reaches_the_medium_tier_says_it_sets_nobody_apart(model):
    """Tableau Superstore at a 180-day horizon (about half the customers churn in training; a model at chance): all
    693 customers scored had churn probabilities of 0.29 to 0.45, so the fixed tiers listed 693 of 693 at risk without
    a word."""
    from pipeline.run.score import everyone_at_risk, probability_text

    features, _ = make_features(300, seed=3)
    scores = score(features, model)
    lowest = scores["churn_probability"].min()
    medium = np.floor(lowest * 100) / 100 if lowest >= 0.01 else 0.005  # below every probability
    tiers = RiskTiersConfig(high=max(0.5, medium + 0.01), medium=medium)
    everyone = score(features, model, cfg=CFG.model_copy(update={"risk_tiers": tiers}))
    summary = {**summarise_scores(everyone, budget=CFG.budget, as_of=AS_OF),
               "risk_tiers": {"high": tiers.high, "medium": medium}}
    assert summary["at_risk"] == summary["customers_scored"] == 300
    assert summary["lowest_probability"] == pytest.approx(lowest, abs=1e-6)
    line = (f"300 of the 300 customers scored (100%) reach the medium tier's churn probability {medium:.2f} (the lowest "
            f"is {probability_text(lowest)}), so being listed at risk sets nobody apart: raise score.risk_tiers")
    assert everyone_at_risk(summary) == [line]
    summary["relative_tiers_would_list"] = relative_tiers_would_list(everyone["churn_probability"])
    would = summary["relative_tiers_would_list"]
    assert would["at_risk"] > 0
    assert everyone_at_risk(summary)[0].startswith(line + ", or set them relative to the mean churn probability ")
    flat = relative_tiers_would_list(pd.Series([0.36, 0.37, 0.38]))
    assert flat["at_risk"] == 0
    assert everyone_at_risk({**summary, "highest_probability": 0.45, "relative_tiers_would_list": flat})[0] == (
        line + "; relative tiers would list nobody: the highest (0.45) is less than 1.25 times the mean 0.37 "
        "(score.risk_tiers {high: 1.5, medium: 1.25, relative_to: mean_probability}), so the model hardly tells these "
        "customers apart")
    # a list of the riskiest few, or a relative one, says nothing
    listed = {**summarise_scores(scores, budget=CFG.budget, as_of=AS_OF), "risk_tiers": {"high": 0.5, "medium": 0.25}}
    assert listed["at_risk"] < 0.9 * 300 and everyone_at_risk(listed) == []
    assert everyone_at_risk({**summary, "risk_tiers_from": {"relative_to": "mean_probability"}}) == []


def test_a_relative_list_naming_nobody_names_the_multiple():
    from pipeline.run.score import no_one_at_risk

    summary = _low_churn_summary(RiskTiersConfig(high=5, medium=4, relative_to="mean_probability"))
    assert summary["at_risk"] == 0 and "relative_tiers_would_list" not in summary
    assert no_one_at_risk(summary) == [
        "no customer reaches the medium tier's churn probability 0.24, 4 times the mean 0.06 (the highest is 0.19), "
        "so none is listed at risk, explained or offered an action: lower score.risk_tiers.medium (a multiple of the "
        "mean above 1), or where most customers churn give fixed probabilities (no relative_to)"]
    summary = {**summary, "risk_tiers": {"high": None, "medium": None}}
    assert no_one_at_risk(summary)[0].startswith("no customer reaches the medium tier, 4 times the mean 0.06 (the ")




def test_where_most_customers_churn_relative_tiers_list_nobody_and_the_summary_says_why(model):
    """Mean 0.625: twice it is 1.25, which no churn probability reaches; nobody is at risk or treated."""
    from pipeline.run.score import summary_sentences

    high_churn = [0.95, 0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    features, _ = make_features(len(high_churn), seed=5)
    fixed = FixedRiskModel(model, dict(zip(features["customer_id"], high_churn, strict=True)))
    cfg = CFG.model_copy(update={"budget": 5000.0, "risk_tiers": RELATIVE})
    scores = score(features, fixed, cfg=cfg, playbook=CHEAP_OFFER)
    assert (scores["risk_tier"] == "low").all() and (scores["group"] == "none").all()
    thresholds = tier_thresholds(scores["churn_probability"], tiers=RELATIVE)
    summary = {**summarise_scores(scores, budget=5000.0, as_of=AS_OF), **tiers_summary(thresholds),
               "min_probability": None}
    lines = summary_sentences(summary, CHEAP_OFFER)
    assert lines[:3] == [
        "10 customers scored, 0 at risk (high or medium tier)",
        "high tier: nobody, as 3 times the mean 0.625 of the 10 customers scored is 1.88, above any churn probability; "
        "medium tier: nobody, as twice the mean is 1.25, above any churn probability",
        "0 treated (0 of them below the high tier; no actions: nobody can reach the medium tier), "
        "0 held out as control",
    ]
    assert ("no customer reaches the medium tier, twice the mean 0.625 (the highest is 0.95), so none is listed at "
            "risk, explained or offered an action: lower score.risk_tiers.medium (a multiple of the mean above 1), or "
            "where most customers churn give fixed probabilities (no relative_to)") in lines


def test_the_summary_counts_each_at_risk_tier(model):
    """The first summary sentence says how many of the at-risk customers are in each tier (fixed tiers 0.5/0.25)."""
    from pipeline.run.score import summary_sentences

    churn = [0.95, 0.9, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05]
    features, _ = make_features(len(churn), seed=5)
    fixed = FixedRiskModel(model, dict(zip(features["customer_id"], churn, strict=True)))
    scores = score(features, fixed, cfg=CFG, playbook=CHEAP_OFFER)
    thresholds = tier_thresholds(scores["churn_probability"], tiers=CFG.risk_tiers)
    summary = {**summarise_scores(scores, budget=CFG.budget, as_of=AS_OF), **tiers_summary(thresholds),
               "min_probability": 0.25}
    assert summary_sentences(summary, CHEAP_OFFER)[0] == (
        "10 customers scored, 5 at risk (3 in the high tier, 2 in the medium tier)")
