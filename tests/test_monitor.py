"""Monitoring of past lists: metrics on the untreated by hand, tiers, alerts; the runner and its exit code."""

from __future__ import annotations

import math

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import minimal_config
from pipeline.cli import app
from pipeline.errors import ScoreError
from pipeline.monitor import alerts, list_metrics, tier_table


def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "churn_probability": [0.9, 0.6, 0.3, 0.2, 0.8, 0.1],
            "risk_tier": ["high", "high", "medium", "low", "high", "low"],
            "group": ["control", "none", "none", "none", "treatment", "control"],
            "churned": [True, False, True, False, False, False],
        }
    )


def test_list_metrics_judge_the_model_on_the_untreated_only():
    row = list_metrics(scores(), as_of="2025-01-01")
    # untreated: p = .9 .6 .3 .2 .1, y = 1 0 1 0 0; pairs (churned > stayed): .9 beats all 3, .3 beats .2 and .1 -> 5/6
    assert row["roc_auc"] == pytest.approx(5 / 6)
    assert (row["untreated"], row["treated"], row["customers"]) == (5, 1, 6)
    assert row["observed_churn_untreated"] == pytest.approx(0.4)
    assert row["predicted_churn_untreated"] == pytest.approx(2.1 / 5)
    assert (row["predicted_churn_treated"], row["observed_churn_treated"]) == (0.8, 0.0)
    assert row["brier"] == pytest.approx((0.01 + 0.36 + 0.49 + 0.04 + 0.01) / 5)


def test_one_class_gives_no_auc():
    row = list_metrics(scores().assign(churned=False), as_of="2025-01-01")
    assert math.isnan(row["roc_auc"]) and math.isnan(row["pr_auc"])


def test_tier_table_predicted_vs_observed():
    table = tier_table(scores())
    assert table["risk_tier"].tolist() == ["high", "medium", "low"]
    assert table["customers"].tolist() == [2, 1, 2]
    assert table["predicted_churn"].tolist() == pytest.approx([0.75, 0.3, 0.15])
    assert table["observed_churn"].tolist() == [0.5, 1.0, 0.0]


def test_monitoring_needs_outcomes():
    with pytest.raises(ScoreError, match=r"lacks the columns \['churned'\]"):
        list_metrics(scores().drop(columns="churned"), as_of="2025-01-01")


def test_alerts_name_the_broken_threshold():
    row = {"as_of": "2025-01-01", "roc_auc": 0.6, "ece": 0.2}
    assert alerts(row, min_roc_auc=0.5, max_calibration_error=0.3) == []
    found = alerts(row, min_roc_auc=0.7, max_calibration_error=0.1)
    assert found[0].startswith("realised ROC-AUC 0.600 of the list of 2025-01-01 is below monitor.min_roc_auc=0.7")
    assert "monitor.max_calibration_error=0.1" in found[1]


@pytest.mark.slow
def test_churn_monitor_runs_every_past_list_and_exits_3_on_an_alert(campaign_cfg):
    config = str(campaign_cfg.config_path)
    ok = CliRunner().invoke(app, ["monitor", "-q", "-c", config])
    assert ok.exit_code == 0, ok.output
    table = pd.read_csv(campaign_cfg.reports_dir / "monitoring.csv")
    assert len(table) == 4 and (table["roc_auc"] > 0.6).all()
    assert table["model_saw_outcomes"].isna().all()  # the simulated campaigns' summaries do not say: not known
    runs = mlflow.search_runs(experiment_names=[campaign_cfg.monitor.experiment])
    assert sorted(runs["tags.as_of"]) == sorted(table["as_of"])  # one run per list, reused when run again
    alert = CliRunner().invoke(app, ["monitor", "-q", "-c", config, "--set", "monitor.min_roc_auc=0.99"])
    assert alert.exit_code == 3
    assert len(mlflow.search_runs(experiment_names=[campaign_cfg.monitor.experiment])) == 4


def test_bad_monitor_and_uplift_settings_name_the_key(tmp_path):
    from pipeline.config import config_from_dict
    from pipeline.errors import ConfigError

    raw = minimal_config("t.csv")
    with pytest.raises(ConfigError, match="monitor.min_roc_auc"):
        config_from_dict({**raw, "monitor": {"min_roc_auc": 2}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="uplift.holdout_campaigns"):
        config_from_dict({**raw, "uplift": {"holdout_campaigns": 0}}, base_dir=tmp_path)
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert (cfg.monitor.min_roc_auc, cfg.uplift.use_model) == (0.65, False)


def test_a_list_scored_by_a_model_that_learned_its_outcomes_is_marked_in_sample():
    from pipeline.run.monitor import monitoring_table

    row = {**list_metrics(scores(), as_of="2025-01-01"), "model_saw_outcomes": True}
    table = monitoring_table(pd.DataFrame([row, {**row, "as_of": "2025-02-01", "model_saw_outcomes": False},
                                           {**row, "as_of": "2025-03-01", "model_saw_outcomes": None}]), {})
    assert list(table.columns[0].cells) == ["2025-01-01 (in-sample)", "2025-02-01", "2025-03-01"]  # None: not known
