"""Every refusal of the learning-loop commands is one clear sentence (no traceback), with a test each."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import PathsConfig, config_from_dict
from pipeline.errors import ConfigError, ScoreError
from pipeline.run import demo_data, monitor, playbook_update, uplift
from tests.conftest import minimal_config


@pytest.fixture()
def no_lists(campaign_cfg, tmp_path):
    """The campaign workspace's validated data with an empty scores folder."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validated").symlink_to(campaign_cfg.validated_dir)
    return campaign_cfg.model_copy(update={"paths": PathsConfig(data_dir=tmp_path / "data", models_dir=tmp_path / "models")})


def test_monitor_and_uplift_without_past_lists_say_what_to_do(no_lists):
    with pytest.raises(ScoreError, match="no past at-risk list .* nothing to monitor yet"):
        monitor.run(no_lists, quiet=True)
    with pytest.raises(ScoreError, match=r"no past at-risk list .* `churn demo-data --campaigns N`"):
        uplift.run(no_lists, quiet=True)


def test_missing_or_unreadable_measured_campaigns_are_named(tmp_path):
    with pytest.raises(ScoreError, match=r"no measured campaigns \(measured_\*.json\) in .*: run `churn measure"):
        playbook_update.read_measured(tmp_path)
    (tmp_path / "measured_2025-01-01.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ScoreError, match="cannot read the measured campaign .*measured_2025-01-01.json"):
        playbook_update.read_measured(tmp_path)


def test_update_playbook_refuses_when_no_playbook_action_was_measured(campaign_cfg, tmp_path):
    results = [{"action": "gift_card", "n_treatment": 100, "n_control": 100, "churn_treatment": 0.2, "churn_control": 0.4}]
    (tmp_path / "measured_2025-01-01.json").write_text(json.dumps({"as_of": "2025-01-01", "results": results}), encoding="utf-8")
    with pytest.raises(ScoreError, match="no action of the playbook was measured .* the playbook is unchanged"):
        playbook_update.run(campaign_cfg, scores_folder=tmp_path, known_features={}, quiet=True)


def test_missing_uplift_models_name_the_command(tmp_path):
    with pytest.raises(ScoreError, match=r"no uplift models at .*: run `churn uplift` first, or set uplift.use_model: false"):
        uplift.load_uplift_models(tmp_path)


def test_negative_campaign_count_is_a_config_error(tmp_path):
    cfg = config_from_dict(minimal_config(), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"--campaigns must be 0 or more \(got -1\)"):
        demo_data.run(cfg, customers=10, seed=1, quiet=True, campaigns=-1)


def test_cli_prints_one_line_without_traceback(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("sources: {transactions: {path: t.csv}}\nfeatures: {snapshots: {dates: [2024-01-01]}}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["monitor", "-q", "-c", str(config)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "no validated transactions" in result.output
