"""`churn monitor`: every past at-risk list whose horizon has passed, against what happened.

For each list in the scores folder (pipeline.run.history): realised churn of the untreated (control +
not selected) and treated customers, ROC-AUC, PR-AUC, Brier, ECE with a reliability figure, and
predicted vs observed churn per risk tier (pipeline.monitor). Each list is one MLflow run in the
`monitor.experiment` experiment (the same run again when monitored again, tagged with its date). The
table of all lists, beside the training run's test metrics (the bundle's metrics.json), is printed and
written to `<reports>/monitoring.csv` and `monitoring.png`.

Exit code for schedulers: the result's `alerts` list the thresholds (`monitor.min_roc_auc`,
`monitor.max_calibration_error`) the LATEST list breaks; `churn monitor` exits with code 3 then.
Older lists are shown but do not alert again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from rich.table import Table

from pipeline.config import Config
from pipeline.errors import ScoreError
from pipeline.io import output_set, write_csv
from pipeline.monitor import MONITOR_COLUMNS, alerts, list_metrics, tier_table
from pipeline.plots import new_figure, reliability_figure
from pipeline.plots_review import save_figure
from pipeline.progress import console, get_logger
from pipeline.run.history import lists_with_outcomes
from pipeline.tracking import metric_key, tracking_settings, use_experiment

ALERT_EXIT_CODE = 3
TRAINING_METRICS = ("roc_auc", "pr_auc", "brier", "ece")


def training_test_metrics(cfg: Config) -> dict[str, float]:
    """The calibrated model's test metrics from the bundle's metrics.json ({} without a bundle)."""
    path = cfg.bundle_dir / "metrics.json"
    if not path.is_file():
        return {}
    test = json.loads(path.read_text(encoding="utf-8")).get("test", {}).get("lightgbm", {})
    return {name: float(test[name]) for name in TRAINING_METRICS if isinstance(test.get(name), (int, float))}


def monitoring_figure(table: pd.DataFrame, training: dict[str, float]):
    """ROC-AUC, ECE and predicted vs observed churn (untreated) per list date, training test values as lines."""
    figure, axes = new_figure(size=(12, 3.6), ncols=3)
    dates = pd.to_datetime(table["as_of"])
    for ax, metric, label in ((axes[0], "roc_auc", "ROC-AUC"), (axes[1], "ece", "calibration error (ECE)")):
        ax.plot(dates, table[metric], marker="o", label="realised on the list")
        if metric in training:
            ax.axhline(training[metric], linestyle="--", color="grey", label="training test snapshot")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    axes[2].plot(dates, 100 * table["predicted_churn_untreated"], marker="o", label="predicted")
    axes[2].plot(dates, 100 * table["observed_churn_untreated"], marker="s", label="observed")
    axes[2].plot(dates, 100 * table["observed_churn_treated"], marker="^", linestyle=":", label="observed, treated")
    axes[2].set_title("churn of untreated customers (%)", fontsize=9)
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return figure


def monitoring_table(table: pd.DataFrame, training: dict[str, float]) -> Table:
    rich = Table(title="Past at-risk lists against what happened (untreated = control + not selected)")
    for name in ("list", "customers", "predicted", "observed", "treated obs.", "ROC-AUC", "PR-AUC", "ECE"):
        rich.add_column(name, justify="left" if name == "list" else "right", no_wrap=name == "list")
    for row in table.to_dict("records"):
        rich.add_row(
            row["as_of"] + (" (in-sample)" if row["model_saw_outcomes"] is True else ""), f"{row['customers']}", f"{row['predicted_churn_untreated']:.3f}", f"{row['observed_churn_untreated']:.3f}",
            f"{row['observed_churn_treated']:.3f}", f"{row['roc_auc']:.3f}", f"{row['pr_auc']:.3f}", f"{row['ece']:.3f}",
        )
    if training:
        rich.add_row("training test", "", "", "", "", *(f"{training[m]:.3f}" if m in training else "-" for m in ("roc_auc", "pr_auc", "ece")))
    return rich


def _log_list(cfg: Config, row: dict, tiers: pd.DataFrame, figure_path: Path, source: str) -> str:
    experiment_id = use_experiment(tracking_settings(cfg), cfg.monitor.experiment)
    found = mlflow.search_runs([experiment_id], filter_string=f"tags.as_of = '{row['as_of']}'", output_format="list")
    start = {"run_id": found[0].info.run_id} if found else {"experiment_id": experiment_id, "run_name": f"monitor {row['as_of']}"}
    with mlflow.start_run(**start) as run:
        mlflow.set_tags({"stage": "monitor", "as_of": row["as_of"], "scores_file": source})
        mlflow.log_metrics({k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and np.isfinite(v)})
        mlflow.log_metrics(
            {metric_key("tier", str(t["risk_tier"]), name): float(t[name]) for t in tiers.to_dict("records")
             for name in ("predicted_churn", "observed_churn", "customers")}
        )
        mlflow.log_dict({"metrics": row, "tiers": tiers.to_dict("records")}, "monitor/list.json")
        mlflow.log_artifact(str(figure_path), "monitor")
    return run.info.run_id


def run(cfg: Config, *, quiet: bool) -> dict[str, Any]:
    """Monitor every past list; return the table, per-list tiers, alerts of the latest list and paths."""
    lists = lists_with_outcomes(cfg)
    if not lists:
        raise ScoreError(
            f"no past at-risk list in {cfg.scores_dir} whose horizon has passed by the latest validated order: "
            "nothing to monitor yet (ingest newer orders, or score earlier dates)"
        )
    reports = Path(cfg.reports_dir)
    rows, tiers, figures = [], {}, {}
    for item in lists:
        date = item.as_of.isoformat()
        seen = item.summary.get("model_saw_outcomes")  # a sentence, False, or None/absent: not known
        rows.append({**list_metrics(item.scores, as_of=date), "model_saw_outcomes": bool(seen) if seen is not None else None})
        tiers[date] = tier_table(item.scores)
        untreated = item.scores[item.scores["group"].isin(["control", "none"])]
        figures[date] = reliability_figure(
            untreated["churned"].to_numpy(float), {"churn model": untreated["churn_probability"].to_numpy(float)},
            split_name=f"list of {date}, untreated",
        )
    table = pd.DataFrame(rows, columns=MONITOR_COLUMNS)
    training = training_test_metrics(cfg)
    table_path, figure_path = reports / "monitoring.csv", reports / "monitoring.png"
    reliability_paths = {date: reports / "monitoring" / f"reliability_{date}.png" for date in figures}
    with output_set(reports, stage="monitor") as outputs:  # the table, its figure and every reliability figure
        outputs.write(table_path, lambda path: write_csv(table, path))
        outputs.write(figure_path, lambda path: save_figure(monitoring_figure(table, training), path))
        for date, figure in figures.items():
            outputs.write(reliability_paths[date], lambda path, figure=figure: save_figure(figure, path))
    run_ids = {
        item.as_of.isoformat(): _log_list(
            cfg, row, tiers[row["as_of"]], reliability_paths[row["as_of"]], item.path.name
        )
        for item, row in zip(lists, rows)
    }
    latest_alerts = alerts(rows[-1], min_roc_auc=cfg.monitor.min_roc_auc, max_calibration_error=cfg.monitor.max_calibration_error)
    if not quiet:
        console().print(monitoring_table(table, training))
    log = get_logger()
    in_sample = [row["as_of"] for row in rows if row["model_saw_outcomes"] is True]
    if in_sample:
        log.warning("lists scored by a model trained on their own outcomes (in-sample, their realised figures flatter "
                    "it; see their summaries' model_saw_outcomes): %s", ", ".join(in_sample))
    for sentence in latest_alerts:
        log.warning("ALERT: %s; consider retraining (`churn train`)", sentence)
    log.info("monitored %d past lists -> %s, %s", len(rows), table_path, figure_path)
    return {"table": table, "tiers": tiers, "training": training, "alerts": latest_alerts, "table_path": str(table_path),
            "figure_path": str(figure_path), "mlflow_run_ids": run_ids}
