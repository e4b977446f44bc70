"""`churn measure` runner on a simulated campaign: real files, real MLflow store."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import minimal_config
from pipeline.config import config_from_dict
from pipeline.contract import conform
from pipeline.errors import ScoreError
from pipeline.io import write_json, write_parquet

AS_OF = dt.date(2025, 1, 1)
HORIZON = 90
EFFECT, CHURN_CONTROL = 0.4, 0.5


def workspace(tmp_path, mlflow_uri):
    raw = minimal_config(
        "data/raw/transactions.csv",
        snapshots={"dates": ["2024-06-01"]},
        paths={"data_dir": "data", "models_dir": "models"},
        features={"horizon_days": HORIZON},
        mlflow={"tracking_uri": mlflow_uri, "artifact_root": "mlartifacts", "scoring_experiment": "test-measure"},
    )
    return config_from_dict(raw, base_dir=tmp_path)


def simulated_campaign(cfg, *, data_until: dt.date, seed: int = 5):
    """Scores (+ summary) and validated transactions where treatment prevents EFFECT of the churn."""
    rng = np.random.default_rng(seed)
    n = 8000
    groups = np.where(rng.random(n) < 0.5, "treatment", "control")
    actions = rng.choice(["service_recovery", "category_offer"], n)
    scores = pd.DataFrame(
        {
            "customer_id": pd.Series([f"c{i:05d}" for i in range(n)], dtype="str"),
            "churn_probability": 0.5,
            "risk_tier": pd.Series(["high"] * n, dtype="str"),
            "action": pd.Series(actions, dtype="str"),
            "action_cost": np.where(actions == "service_recovery", 15.0, 3.0),
            "customer_value": 200.0,
            "expected_net_value": 4.0,
            "group": pd.Series(groups, dtype="str"),
            "as_of": [AS_OF] * n,
        }
    )
    churn = np.where(groups == "treatment", CHURN_CONTROL * (1 - EFFECT), CHURN_CONTROL)
    stays = rng.random(n) < 1 - churn
    before = pd.DataFrame(
        {"order_id": [f"p{i}" for i in range(n)], "customer_id": scores["customer_id"], "ordered_at": pd.Timestamp("2024-11-01", tz="UTC"), "amount": 40.0}
    )
    after = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(int(stays.sum()))],
            "customer_id": scores["customer_id"][stays].to_numpy(),
            "ordered_at": pd.Timestamp(AS_OF, tz="UTC") + pd.to_timedelta(rng.integers(0, 60, stays.sum()), unit="D"),
            "amount": 50.0,
        }
    )
    last = pd.DataFrame({"order_id": ["last"], "customer_id": ["someone"], "ordered_at": [pd.Timestamp(data_until, tz="UTC")], "amount": [1.0]})
    transactions = conform(pd.concat([before, after, last], ignore_index=True), "transactions")
    write_parquet(transactions, cfg.validated_dir / "transactions.parquet")
    scores_path = cfg.scores_dir / f"at_risk_{AS_OF}.parquet"
    write_parquet(scores, scores_path)
    write_json(
        {"horizon_days": HORIZON, "model_version": "7", "playbook": {"actions": {"service_recovery": {"uplift": 0.2}, "category_offer": {"uplift": 0.08}}}},
        scores_path.with_suffix(".json"),
    )
    return scores_path


def test_measure_run_recovers_planted_effect_and_logs(tmp_path, mlflow_uri):
    from pipeline.run import measure

    cfg = workspace(tmp_path, mlflow_uri)
    scores_path = simulated_campaign(cfg, data_until=AS_OF + dt.timedelta(days=HORIZON - 1))
    outcome = measure.run(cfg, scores_path=scores_path, quiet=True)
    csv_path = cfg.scores_dir / f"measured_{AS_OF}.csv"
    assert outcome["results_path"] == str(csv_path) and csv_path.is_file()
    results = pd.read_csv(csv_path).set_index("action")
    assert list(results.index) == ["category_offer", "service_recovery", "all"]
    for action in results.index:
        assert results.loc[action, "uplift_low"] <= EFFECT <= results.loc[action, "uplift_high"], action
    assert results.loc["all", "uplift_low"] > 0
    assert results.loc["service_recovery", "planned_uplift"] == 0.2
    stored = json.loads(csv_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert stored["horizon_days"] == HORIZON and stored["results"][-1]["action"] == "all"
    apart = [a for a in ("category_offer", "service_recovery") if results.loc[a, "churn_reduction_low"] > 0]
    assert stored["chance_note"] == outcome["chance_note"]
    assert (stored["chance_note"] or "").startswith(", ".join(apart) + ": ") if apart else stored["chance_note"] is None

    import mlflow

    run = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(outcome["mlflow_run_id"])
    assert run.data.tags["stage"] == "measure"
    assert run.data.metrics["all_uplift"] == pytest.approx(results.loc["all", "uplift"])
    assert csv_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logged = {a.path for a in mlflow.MlflowClient(tracking_uri=mlflow_uri).list_artifacts(run.info.run_id, "measure")}
    assert f"measure/measured_{AS_OF}.png" in logged


def test_measure_refuses_before_the_horizon_has_passed(tmp_path, mlflow_uri):
    from pipeline.run import measure

    cfg = workspace(tmp_path, mlflow_uri)
    scores_path = simulated_campaign(cfg, data_until=AS_OF + dt.timedelta(days=HORIZON - 2))
    with pytest.raises(ScoreError, match=r"the 90-day horizon after 2025-01-01 has not passed: .* up to 2025-03-31, .* end on 2025-03-30"):
        measure.run(cfg, scores_path=scores_path, quiet=True)
    assert not list(cfg.scores_dir.glob("measured_*"))


def test_measure_cli_names_a_missing_scores_file(tmp_path, mlflow_uri):
    import yaml

    from pipeline.cli import app

    raw = minimal_config(
        "data/raw/transactions.csv",
        snapshots={"dates": ["2024-06-01"]},
        paths={"data_dir": "data", "models_dir": "models"},
        mlflow={"tracking_uri": mlflow_uri, "artifact_root": "mlartifacts"},
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = CliRunner().invoke(app, ["measure", "--scores", str(tmp_path / "nope.parquet"), "--config", str(config), "-q"])
    assert result.exit_code == 1
    assert "scores file not found" in result.output
