"""Playbook: validation naming the action and rule, and vectorised eligibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import FeaturesConfig
from pipeline.errors import ConfigError, ScoreError
from pipeline.features.registry import feature_specs
from pipeline.playbook import eligibility_matrix, feature_kinds, load_playbook, playbook_from_dict

KNOWN = {"points_balance": "numeric", "open_tickets": "numeric", "top_category": "categorical", "nps_last": "numeric"}


def action(name: str = "loyalty_offer", **fields) -> dict:
    base = {"name": name, "description": "d", "channel": "email", "cost": 2.0, "uplift": 0.1}
    return {**base, **fields}


def rules(*items, combinator: str = "all") -> dict:
    return {combinator: list(items)}


def test_valid_playbook_lists_actions_capacities_and_features():
    raw = {
        "actions": [
            action("a", capacity=5, eligibility=rules({"feature": "open_tickets", "operator": ">", "value": 0})),
            action("b", eligibility=rules({"feature": "top_category", "operator": "in", "value": ["toys"]})),
            action("c"),
        ]
    }
    playbook = playbook_from_dict(raw, known_features=KNOWN)
    assert playbook.names == ["a", "b", "c"]
    assert playbook.capacities() == {"a": 5}
    assert playbook.features_used() == ["open_tickets", "top_category"]


def test_unknown_feature_names_action_and_rule():
    raw = {
        "actions": [
            action(
                eligibility=rules(
                    {"feature": "open_tickets", "operator": ">", "value": 0},
                    {"feature": "pointz", "operator": ">=", "value": 100},
                )
            )
        ]
    }
    with pytest.raises(ConfigError, match=r"playbook action 'loyalty_offer' rule 2: unknown feature 'pointz' \(did you mean 'points_balance'\?\)"):
        playbook_from_dict(raw, known_features=KNOWN)


def test_nested_rule_is_numbered_by_path():
    nested = rules(
        {"feature": "open_tickets", "operator": ">", "value": 0},
        rules({"feature": "nps_last", "operator": "<", "value": 7}, {"feature": "nope", "operator": "is_null"}, combinator="any"),
    )
    with pytest.raises(ConfigError, match=r"action 'loyalty_offer' rule 2.2: unknown feature 'nope'"):
        playbook_from_dict({"actions": [action(eligibility=nested)]}, known_features=KNOWN)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"feature": "open_tickets", "operator": "~=", "value": 1}, r"rule 1: operator: Input should be"),
        ({"feature": "open_tickets", "operator": "in", "value": 3}, r"rule 1: operator 'in' needs a non-empty list"),
        ({"feature": "open_tickets", "operator": "is_null", "value": 3}, r"rule 1: operator 'is_null' takes no value"),
        ({"feature": "open_tickets", "operator": ">"}, r"rule 1: operator '>' needs a single value"),
        ({"feature": "open_tickets", "operator": ">", "value": "many"}, r"rule 1: operator '>' needs a number"),
        ({"feature": "open_tickets", "operator": ">", "value": 1, "extra": 2}, r"rule 1: extra: unknown key"),
    ],
)
def test_malformed_rule_names_the_rule(rule, message):
    with pytest.raises(ConfigError, match=r"playbook action 'loyalty_offer' " + message):
        playbook_from_dict({"actions": [action(eligibility=rules(rule))]}, known_features=KNOWN)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"feature": "top_category", "operator": "<", "value": 3}, "operator '<' cannot order the categorical feature 'top_category'"),
        ({"feature": "top_category", "operator": "==", "value": 3}, "categorical feature 'top_category' is compared with text"),
        ({"feature": "nps_last", "operator": "in", "value": ["low"]}, "numeric feature 'nps_last' is compared with numbers"),
    ],
)
def test_rule_value_must_fit_the_feature_kind(rule, message):
    with pytest.raises(ConfigError, match=r"action 'loyalty_offer' rule 1: " + message):
        playbook_from_dict({"actions": [action(eligibility=rules(rule))]}, known_features=KNOWN)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"actions": []}, r"actions: List should have at least 1 item"),
        ({"actions": [action("a"), action("a")]}, r"repeated: \['a'\]"),
        ({"actions": [action(cost=-1)]}, r"action 'loyalty_offer': cost: Input should be greater than or equal to 0"),
        ({"actions": [action(uplift=1.5)]}, r"action 'loyalty_offer': uplift: Input should be less than or equal to 1"),
        ({"actions": [action(eligibility={"all": [], "any": []})]}, r"exactly one of 'all' or 'any'"),
        ([1, 2], r"the top level must be a mapping"),
    ],
)
def test_malformed_playbook_fails_with_clear_message(raw, message):
    with pytest.raises(ConfigError, match=message):
        playbook_from_dict(raw, known_features=KNOWN)


def test_load_playbook_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="playbook not found"):
        load_playbook(tmp_path / "nope.yaml", known_features=KNOWN)
    bad = tmp_path / "bad.yaml"
    bad.write_text("actions: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_playbook(bad, known_features=KNOWN)


def test_eligibility_is_vectorised_and_false_on_missing_values():
    raw = {
        "actions": [
            action("tickets", eligibility=rules({"feature": "open_tickets", "operator": ">", "value": 0})),
            action("not_toys", eligibility=rules({"feature": "top_category", "operator": "!=", "value": "toys"})),
            action("not_in", eligibility=rules({"feature": "top_category", "operator": "not_in", "value": ["toys", "books"]})),
            action("no_nps", eligibility=rules({"feature": "nps_last", "operator": "is_null"})),
            action(
                "either",
                eligibility=rules(
                    rules(
                        {"feature": "nps_last", "operator": "<=", "value": 6},
                        {"feature": "points_balance", "operator": ">=", "value": 100},
                    ),
                    {"feature": "top_category", "operator": "==", "value": "books"},
                    combinator="any",
                ),
            ),
            action("everyone"),
        ]
    }
    playbook = playbook_from_dict(raw, known_features=KNOWN)
    features = pd.DataFrame(
        {
            "open_tickets": [0.0, 2.0, np.nan, 1.0],
            "top_category": ["toys", "books", None, "garden"],
            "nps_last": [3.0, np.nan, 9.0, 5.0],
            "points_balance": [150.0, 0.0, 500.0, 50.0],
        },
        index=["c1", "c2", "c3", "c4"],
    ).astype({"top_category": "str"})
    expected = pd.DataFrame(
        {
            "tickets": [False, True, False, True],
            "not_toys": [False, True, False, True],
            "not_in": [False, False, False, True],
            "no_nps": [False, True, False, False],
            "either": [True, True, False, False],
            "everyone": [True, True, True, True],
        },
        index=["c1", "c2", "c3", "c4"],
    )
    pd.testing.assert_frame_equal(eligibility_matrix(features, playbook), expected)


def test_eligibility_fails_when_feature_table_lacks_a_rule_feature():
    playbook = playbook_from_dict(
        {"actions": [action(eligibility=rules({"feature": "open_tickets", "operator": ">", "value": 0}))]},
        known_features=KNOWN,
    )
    with pytest.raises(ScoreError, match=r"the playbook uses features the feature table does not have: \['open_tickets'\]"):
        eligibility_matrix(pd.DataFrame({"nps_last": [1.0]}), playbook)


def test_default_playbook_is_valid_and_covers_the_practice(repo_root):
    raw = yaml.safe_load((repo_root / "configs" / "playbook.yaml").read_text(encoding="utf-8"))
    names = {rule["feature"] for a in raw["actions"] for rule in _flatten(a.get("eligibility", {}))}
    playbook = playbook_from_dict(raw, known_features=names)
    assert set(playbook.names) == {
        "service_recovery",
        "tier_upgrade_offer",
        "points_reminder",
        "category_offer",
        "winback_survey",
        "referral_invite",
        "onboarding_series",
    }
    assert all(0 < a.uplift < 1 and a.cost > 0 and a.source for a in playbook.actions)


def test_default_playbook_matches_the_feature_registry(repo_root):
    specs = feature_specs(FeaturesConfig(snapshots={"dates": ["2024-01-01"]}))
    known = {s.name: ("categorical" if s.kind == "categorical" else "numeric") for s in specs}
    playbook = load_playbook(repo_root / "configs" / "playbook.yaml", known_features=known)
    assert set(playbook.features_used()) <= set(known)


def _flatten(group: dict) -> list[dict]:
    items = group.get("all", group.get("any", []))
    return [r for item in items for r in (_flatten(item) if ("all" in item or "any" in item) else [item])]


def test_min_p_alive_keeps_an_action_from_customers_almost_surely_gone():
    from pipeline.playbook import eligibility_matrix

    raw = {"actions": [
        {"name": "call", "description": "d", "channel": "phone", "cost": 18.0, "uplift": 0.2, "min_p_alive": 0.05},
        {"name": "mail", "description": "d", "channel": "email", "cost": 1.0, "uplift": 0.05},
    ]}
    book = playbook_from_dict(raw, known_features=["btyd_p_alive"])
    features = pd.DataFrame({"btyd_p_alive": [0.001, 0.05, float("nan"), 0.9]})
    matrix = eligibility_matrix(features, book)
    assert matrix["call"].tolist() == [False, True, True, True]  # unknown P(alive): left to the rules
    assert matrix["mail"].all()
    assert eligibility_matrix(features.drop(columns="btyd_p_alive"), book)["call"].all()  # BTYD off


def test_default_playbook_onboards_only_recent_first_time_buyers(repo_root):
    from pipeline.config import FeaturesConfig
    from pipeline.features.registry import feature_specs
    from pipeline.playbook import eligibility_matrix, load_playbook
    from pipeline.playbook import feature_kinds

    specs = feature_specs(FeaturesConfig(snapshots={"dates": ["2025-01-01"]}))
    book = load_playbook(repo_root / "configs" / "playbook.yaml", known_features=feature_kinds(specs))
    names = [s.name for s in specs]
    features = pd.DataFrame({name: [0.0] * 3 for name in names})
    features["frequency_all"] = [1.0, 1.0, 3.0]
    features["tenure_days"] = [20.0, 352.0, 400.0]
    features["recency_days"] = [20.0, 352.0, 100.0]
    features["overdue_ratio"] = [1.0, 1.0, 1.0]
    features["btyd_p_alive"] = [0.5, 0.5, 0.5]
    matrix = eligibility_matrix(features, book)
    assert matrix["onboarding_series"].tolist() == [True, False, False]
    assert matrix["winback_survey"].tolist() == [False, True, False]  # the lapsed one-time buyer


def test_the_starter_playbook_is_the_repository_playbook_and_loads(repo_root):
    from pipeline.features.registry import feature_specs
    from pipeline.playbook import playbook_or_starter, starter_playbook_text

    # One text: the demo's configs/playbook.yaml is what a config without a playbook starts from.
    assert starter_playbook_text() == (repo_root / "configs" / "playbook.yaml").read_text(encoding="utf-8")
    known = feature_kinds(feature_specs(FeaturesConfig()))
    missing = repo_root / "no-such-folder" / "playbook.yaml"
    book = playbook_or_starter(missing, starter=True, known_features=known)
    assert book.actions and not missing.parent.exists()  # checked, nothing written
    with pytest.raises(ConfigError, match="playbook not found"):
        playbook_or_starter(missing, starter=False, known_features=known)  # a named playbook must exist
