"""Scoring with learned uplift: per-customer uplift replaces the playbook's where known; the source per row."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.actions import best_actions, uplift_matrix
from pipeline.playbook import playbook_from_dict


def book():
    return playbook_from_dict(
        {"actions": [
            {"name": "call", "description": "c", "channel": "phone", "cost": 10.0, "uplift": 0.1},
            {"name": "mail", "description": "m", "channel": "email", "cost": 1.0, "uplift": 0.05,
             "measured": {"uplift": 0.05, "low": 0.01, "high": 0.09, "campaigns": ["2025-01-01"]}},
        ]},
        known_features=[],
    )


def test_learned_uplift_replaces_the_playbook_value_where_known():
    index = pd.Index(["a", "b"])
    learned = pd.DataFrame({"call": [0.5, float("nan")]}, index=index)
    values, sources = uplift_matrix(book(), index, learned)
    assert values.tolist() == [[0.5, 0.05], [0.1, 0.05]]
    assert sources.tolist() == [["model", "measured"], ["playbook", "measured"]]


def test_best_action_uses_the_learned_uplift_and_says_so():
    index = pd.Index(["a", "b"])
    probability = pd.Series([0.5, 0.5], index=index)
    value = pd.Series([100.0, 100.0], index=index)
    eligible = pd.DataFrame({"call": [True, True], "mail": [True, True]}, index=index)
    learned = pd.DataFrame({"call": [0.5, 0.0]}, index=index)
    # a: call 0.5*0.5*100-10 = 15 > mail 0.5*0.05*100-1 = 1.5; b: call 0*... -10 < mail 1.5
    result = best_actions(probability, value, eligible, book(), uplift=learned)
    assert result["action"].tolist() == ["call", "mail"]
    assert result["expected_net_value"].tolist() == pytest.approx([15.0, 1.5])
    assert result["uplift_source"].tolist() == ["model", "measured"]
    constant = best_actions(probability, value, eligible, book())
    assert constant["uplift_source"].tolist() == ["measured", "measured"]  # 0.5*0.1*100-10 = -5 < 1.5
