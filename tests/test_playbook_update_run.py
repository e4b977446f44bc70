"""`churn demo-data --campaigns` then `churn measure --update-playbook`: real files, real MLflow store."""

from __future__ import annotations

import shutil

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ScoreError
from pipeline.features.registry import feature_specs
from pipeline.playbook import feature_kinds
from pipeline.pooling import repeat_factors
from pipeline.run import measure, playbook_update


def test_campaign_lists_are_written_like_scoring_runs(campaign_cfg):
    lists = sorted(campaign_cfg.scores_dir.glob("at_risk_*.parquet"))
    assert len(lists) == 4
    assert all(path.with_suffix(".json").is_file() and path.with_suffix(".csv").is_file() for path in lists)


@pytest.mark.slow
def test_update_playbook_writes_a_new_version_and_keeps_the_old(campaign_cfg, tmp_path):
    lists = sorted(campaign_cfg.scores_dir.glob("at_risk_*.parquet"))
    for path in lists[:-1]:
        measure.run(campaign_cfg, scores_path=path, quiet=True)
    before = campaign_cfg.score.playbook.read_text(encoding="utf-8")
    config_path = campaign_cfg.config_path
    result = CliRunner().invoke(
        app, ["measure", "--scores", str(lists[-1]), "--update-playbook", "-q", "-c", str(config_path)]
    )
    assert result.exit_code == 0, result.output
    assert campaign_cfg.score.playbook.read_text(encoding="utf-8") == before
    new_path = campaign_cfg.score.playbook.with_name("playbook.v2.yaml")
    new = yaml.safe_load(new_path.read_text(encoding="utf-8"))
    recovery = {a["name"]: a for a in new["actions"]}["service_recovery"]
    assert recovery["measured"]["planned_uplift"] == 0.2
    assert len(recovery["measured"]["campaigns"]) == 4
    between = sorted([recovery["measured"]["planned_uplift"], max(recovery["measured"]["uplift"], 0.0)])
    assert between[0] - 1e-4 <= recovery["uplift"] <= between[1] + 1e-4  # the plan and the measurement, weighed
    runs = mlflow.search_runs(
        experiment_names=[campaign_cfg.mlflow.scoring_experiment], filter_string="tags.stage = 'update_playbook'"
    )
    assert len(runs) >= 1 and "metrics.service_recovery_uplift" in runs.columns

    again = playbook_update.run(
        campaign_cfg, scores_folder=campaign_cfg.scores_dir,
        known_features=feature_kinds(feature_specs(campaign_cfg.features)), quiet=True,
    )
    assert again["playbook_path"].endswith("playbook.v3.yaml")  # never overwrites v2
    unsure = again["changes"][(again["changes"]["uplift_low"] <= 0) & (again["changes"]["uplift_high"] >= 0)]
    assert (again["holds_no_effect"] is None) == unsure.empty
    # The demo's past lists select many of the same customers: the intervals count each of them about once.
    arms = pd.concat([pd.read_parquet(path, columns=["customer_id", "action", "group"]).assign(as_of=path.stem)
                      for path in lists])
    expected = repeat_factors(arms[arms["group"].isin(["treatment", "control"])])
    pooled = again["pooled"].set_index("action")["repeat_factor"]
    assert pooled.to_dict() == pytest.approx(expected.reindex(pooled.index).to_dict()) and (pooled > 1).any()


def test_a_measured_campaign_whose_list_is_gone_is_pooled_as_sharing_no_customers(campaign_cfg, tmp_path, caplog):
    lists = sorted(campaign_cfg.scores_dir.glob("at_risk_*.parquet"))
    folder = tmp_path / "scores"
    folder.mkdir()
    for path in lists[:2]:
        measure.run(campaign_cfg, scores_path=path, quiet=True)
        shutil.copy(path.with_name(f"measured_{path.stem[-10:]}.json"), folder)
    shutil.copy(lists[1], folder)  # the first campaign's list is gone
    pooled = playbook_update.run(campaign_cfg, scores_folder=folder,
                                 known_features=feature_kinds(feature_specs(campaign_cfg.features)), quiet=True)
    assert f"the at-risk lists of the campaigns of {lists[0].stem[-10:]} are not in {folder}" in caplog.text
    assert (pooled["pooled"]["repeat_factor"] >= 1).all()


def test_a_campaign_measured_from_the_csv_list_is_read_as_measure_reads_it(campaign_cfg, tmp_path):
    """The repeat factor reads each measured campaign's own list: the CSV twin when that was measured, and a list
    that cannot be read is a clear error, not a traceback."""
    lists = sorted(campaign_cfg.scores_dir.glob("at_risk_*.parquet"))
    folder = tmp_path / "scores"
    folder.mkdir()
    for path in lists[:2]:
        shutil.copy(path.with_suffix(".csv"), folder)
        shutil.copy(path.with_suffix(".json"), folder)
        measure.run(campaign_cfg, scores_path=folder / path.with_suffix(".csv").name, quiet=True)
    known = feature_kinds(feature_specs(campaign_cfg.features))
    pooled = playbook_update.run(campaign_cfg, scores_folder=folder, known_features=known, quiet=True)["pooled"]
    arms = pd.concat([pd.read_csv(folder / path.with_suffix(".csv").name, dtype=str).assign(as_of=path.stem)
                      for path in lists[:2]])
    expected = repeat_factors(arms[arms["group"].isin(["treatment", "control"])])
    assert pooled.set_index("action")["repeat_factor"].to_dict() == pytest.approx(expected.to_dict())
    (folder / lists[0].with_suffix(".csv").name).write_text("customer_id\n")  # no longer a list
    with pytest.raises(ScoreError, match="the scores file lacks the columns|cannot read the scores file"):
        playbook_update.run(campaign_cfg, scores_folder=folder, known_features=known, quiet=True)
