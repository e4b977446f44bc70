"""`churn measure --scores data/<project>/scores/at_risk_D.parquet`: treated vs control, once the horizon has passed.

Reads the scores file (and its summary JSON for the model's horizon and the playbook's planned
uplifts), the validated transactions, refuses while the transactions do not yet cover
`[D, D + horizon)`, and writes `measured_D.csv` and `measured_D.json` next to the scores; logs a run
to the scoring experiment in MLflow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from pipeline.config import Config
from pipeline.errors import ScoreError
from pipeline.events import load_events
from pipeline.features.registry import feature_specs
from pipeline.io import complete_interrupted_publishes, output_set, write_csv, write_json
from pipeline.labels import horizon_passed
from pipeline.measure import chance_note, check_scores, measure_campaign
from pipeline.playbook import feature_kinds
from pipeline.plots_review import measured_effect_figure, save_figure
from pipeline.progress import get_logger, timed
from pipeline.run import playbook_update
from pipeline.run.history import list_timezone, read_scores, read_summary
from pipeline.snapshot import in_business_time_pandas, latest_event_date
from pipeline.tracking import metric_key, tracking_settings, use_experiment


def check_horizon_passed(as_of: dt.date, horizon_days: int, *, data_until: dt.date | None) -> None:
    """Raise ScoreError unless the transactions reach the end of [as_of, as_of + horizon_days).

    The same rule as for training labels (`pipeline.labels.horizon_passed`).
    """
    if not horizon_passed(as_of, horizon_days=horizon_days, last_event_date=data_until):
        window_end = as_of + dt.timedelta(days=horizon_days)
        seen = data_until.isoformat() if data_until else "no transactions"
        raise ScoreError(
            f"the {horizon_days}-day horizon after {as_of} has not passed: churn is measured on orders up to "
            f"{window_end - dt.timedelta(days=1)}, but the validated transactions end on {seen}. Ingest newer data "
            f"and run `churn measure` again on or after {window_end}."
        )


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (NaN -> null)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (np.integer,)) else v) for k, v in row.items()}
        for row in clean.to_dict("records")
    ]


def _log_to_mlflow(cfg: Config, result: pd.DataFrame, meta: dict[str, Any], *, figure_path: Path) -> str:
    experiment_id = use_experiment(tracking_settings(cfg), cfg.mlflow.scoring_experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"measure {meta['as_of']}") as run:
        mlflow.set_tags({"stage": "measure", "as_of": meta["as_of"], "model_version": str(meta.get("model_version"))})
        mlflow.log_params({"as_of": meta["as_of"], "horizon_days": meta["horizon_days"], "scores_file": meta["scores_file"]})
        metrics = {
            metric_key(str(row["action"]), column): float(row[column])
            for row in result.to_dict("records")
            for column in ("n_treatment", "n_control", "churn_treatment", "churn_control", "churn_reduction",
                           "churn_reduction_low", "churn_reduction_high", "uplift", "uplift_low", "uplift_high",
                           "realised_net_value", "realised_net_value_low", "realised_net_value_high",
                           "expected_net_value")
            if pd.notna(row[column])
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict({**meta, "results": _json_records(result)}, "measure/results.json")
        mlflow.log_artifact(str(figure_path), "measure")
    return run.info.run_id


def results_table(result: pd.DataFrame, *, as_of: dt.date) -> Table:
    """Treated vs control per action: counts, churn rates, churn reduction and share prevented with 95% CIs."""
    table = Table(title=f"Campaign of {as_of}: treated vs control")
    for name in ("action", "treated", "control", "churn treated", "churn control", "reduction [95% CI]",
                 "prevented [95% CI]", "realised value [95% CI]"):
        table.add_column(name, justify="left" if name == "action" else "right")
    for row in result.to_dict("records"):
        table.add_row(
            str(row["action"]),
            f"{row['n_treatment']:.0f}",
            f"{row['n_control']:.0f}",
            f"{row['churn_treatment']:.3f}",
            f"{row['churn_control']:.3f}",
            f"{row['churn_reduction']:.3f} [{row['churn_reduction_low']:.3f}, {row['churn_reduction_high']:.3f}]",
            f"{row['uplift']:.3f} [{row['uplift_low']:.3f}, {row['uplift_high']:.3f}]",
            f"{row['realised_net_value']:,.0f} [{row['realised_net_value_low']:,.0f}, "
            f"{row['realised_net_value_high']:,.0f}]",
        )
    return table


def run(cfg: Config, *, scores_path: Path, quiet: bool, update_playbook: bool = False) -> dict[str, Any]:
    """Measure the campaign of the scoring run in `scores_path`; return the results and output paths.

    With `update_playbook`, then pool every measured campaign of the folder and write the next playbook
    version (pipeline.run.playbook_update)."""
    complete_interrupted_publishes(cfg.paths.data_dir)
    complete_interrupted_publishes(Path(scores_path).parent)
    scores = read_scores(scores_path, scores_dir=cfg.scores_dir)
    as_of = check_scores(scores)
    summary = read_summary(scores_path)
    horizon_days = int(summary.get("horizon_days") or cfg.features.horizon_days)
    # The campaign's window [as_of, as_of + horizon) in days of the business time zone the list was scored in.
    transactions = in_business_time_pandas(load_events(cfg.validated_dir).transactions, list_timezone(summary))
    check_horizon_passed(as_of, horizon_days, data_until=latest_event_date(transactions))
    planned = {name: spec["uplift"] for name, spec in summary.get("playbook", {}).get("actions", {}).items()}
    with timed(f"measuring the campaign of {as_of}"):
        result = measure_campaign(scores, transactions, horizon_days=horizon_days, planned_uplift=planned)
    folder = Path(scores_path).parent
    csv_path = folder / f"measured_{as_of.isoformat()}.csv"
    json_path = csv_path.with_suffix(".json")
    meta = {
        "as_of": as_of.isoformat(),
        "horizon_days": horizon_days,
        "scores_file": Path(scores_path).name,
        "model_name": summary.get("model_name"),
        "model_version": summary.get("model_version"),
        "confidence": 0.95,
        "chance_note": chance_note(result, confidence=0.95),
    }
    figure_path = csv_path.with_suffix(".png")
    with output_set(folder, stage="measure") as outputs:  # the three files as one set
        outputs.write(csv_path, lambda path: write_csv(result, path))
        outputs.write(json_path, lambda path: write_json({**meta, "results": _json_records(result)}, path))
        outputs.write(figure_path, lambda path: save_figure(measured_effect_figure(result), path))
    run_id = _log_to_mlflow(cfg, result, meta, figure_path=figure_path)
    if not quiet:
        Console().print(results_table(result, as_of=as_of))
    overall = result.iloc[-1]
    get_logger().info(
        "measured %d treated vs %d control: churn %.3f vs %.3f, share of churn prevented %.3f [%.3f, %.3f] -> %s",
        overall["n_treatment"], overall["n_control"], overall["churn_treatment"], overall["churn_control"],
        overall["uplift"], overall["uplift_low"], overall["uplift_high"], csv_path,
    )
    if meta["chance_note"]:
        get_logger().info("%s", meta["chance_note"])
    outcome = {**meta, "results_path": str(csv_path), "summary_path": str(json_path), "mlflow_run_id": run_id, "results": result}
    if update_playbook:
        outcome["playbook_update"] = playbook_update.run(
            cfg, scores_folder=folder, known_features=feature_kinds(feature_specs(cfg.features)), quiet=quiet
        )
    return outcome
