"""`churn train`: read the feature snapshots, split by time, train and evaluate, track in MLflow.

Reads `cfg.features_dir/snapshot=*.parquet`, fits LightGBM and the baselines on the out-of-time split
(pipeline.split, pipeline.train), logs the run, registers the model, writes the bundle to
`cfg.bundle_dir` and moves the `champion` alias when the new model is at least as good
(pipeline.tracking). With `backtest=True` the fit is repeated over `cfg.train.backtest_folds` rolling
test snapshots; the mean and spread per metric go to MLflow and `cfg.reports_dir/backtest.json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from pipeline.config import Config
from pipeline.evaluate import RetentionSettings
from pipeline.io import write_json
from pipeline.progress import get_logger, timed, track
from pipeline.split import labelled_snapshots, rolling_splits, time_split
from pipeline.train import backtest_summary, train_models

# metric -> column header (short, so the table fits an 80-column terminal)
TABLE_METRICS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "log_loss": "log loss",
    "brier": "Brier",
    "ece": "ECE",
    "lift_top_decile": "lift@10%",
    "capture_top_decile": "capt@10%",
    "realised_retention_value": "value",
}


MODEL_LABELS = {"lightgbm_uncalibrated": "uncalibrated", "recency_rule": "recency", "logistic_rfm": "logistic"}
VALUE_NOTE = "value: realised net retention value of contacting the top customers within score.budget"


@dataclass(frozen=True)
class TrainOutcome:
    """What `run` did: MLflow run and model version, champion decision, bundle, metrics, backtest."""

    run_id: str
    model_version: str
    promoted: bool
    reason: str
    bundle_path: Path
    metrics: dict[str, Any]
    backtest: dict[str, Any] | None


def retention_settings(cfg: Config) -> RetentionSettings:
    """The retention value metric's assumptions from the config (budget from score.budget)."""
    return RetentionSettings(
        budget=cfg.score.budget,
        contact_cost=cfg.train.contact_cost,
        uplift=cfg.train.retention_uplift,
        default_customer_value=cfg.train.default_customer_value,
        value_feature=cfg.train.customer_value_feature,
    )


def _number(value: float | None, *, metric: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.0f}" if metric.endswith("retention_value") else f"{value:.3f}"


def metrics_table(metrics: dict[str, Any], *, split: str) -> Table:
    """Rich table of `split`: one row per metric, one column per model (fits 80 columns)."""
    dates = metrics.get("split", {})
    title = f"{split} metrics (snapshot {dates.get(split, '?')}, {dates.get('rows', {}).get(split, '?')} customers)"
    caption = metrics.get("calibration", {}).get("note") if split == "validation" else VALUE_NOTE
    models = metrics.get(split, {})
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for model in models:
        table.add_column(MODEL_LABELS.get(model, model), justify="right")
    for metric, label in TABLE_METRICS.items():
        table.add_row(label, *(_number(values.get(metric), metric=metric) for values in models.values()))
    return table


def backtest_table(backtest: dict[str, Any]) -> Table:
    """Rich table: mean ± std over the backtest folds of the test metrics, one column per model."""
    tests = ", ".join(fold["split"]["test"] for fold in backtest["folds"])
    models = backtest["summary"]
    table = Table(
        title=f"backtest over {len(backtest['folds'])} test snapshots ({tests}): mean ± std", box=box.SIMPLE_HEAD
    )
    table.add_column("metric", no_wrap=True)
    for model in models:
        table.add_column(MODEL_LABELS.get(model, model), justify="right")
    for metric in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile"):
        cells = [
            f"{values[metric]['mean']:.3f}±{values[metric]['std']:.3f}".replace("±0.", "±.")
            if metric in values
            else "n/a"
            for values in models.values()
        ]
        table.add_row(TABLE_METRICS[metric], *cells)
    return table


def run(cfg: Config, *, backtest: bool, quiet: bool) -> TrainOutcome:
    """Train, evaluate, track and (maybe) promote; print the metrics tables unless `quiet`."""
    from pipeline.features.registry import feature_specs
    from pipeline.features.store import read_snapshots
    from pipeline.tracking import input_fingerprints, log_training_run

    logger = get_logger()
    retention = retention_settings(cfg)
    specs = feature_specs(cfg.features)
    horizon = cfg.features.horizon_days
    with timed("train"):
        features = read_snapshots(cfg.features_dir)
        labelled = labelled_snapshots(features)
        split = time_split(labelled, horizon_days=horizon)
        logger.info(
            "split: train %s..%s (%d snapshots), validation %s, test %s",
            split.train[0].date(),
            split.train[-1].date(),
            len(split.train),
            split.validation.date(),
            split.test.date(),
        )
        result = train_models(features, specs=specs, split=split, settings=cfg.train, retention=retention)
        report = None
        if backtest:
            splits = rolling_splits(labelled, horizon_days=horizon, folds=cfg.train.backtest_folds)
            folds = [result]
            for fold_split in track(splits[1:], description="backtest folds", quiet=quiet):
                folds.append(
                    train_models(features, specs=specs, split=fold_split, settings=cfg.train, retention=retention)
                )
            report = backtest_summary(folds)
            write_json(report, Path(cfg.reports_dir) / "backtest.json")
        record = log_training_run(
            cfg, result, retention=retention, fingerprints=input_fingerprints(cfg), backtest=report
        )
    if not quiet:
        console = Console()
        console.print(metrics_table(result.metrics, split="test"))
        console.print(metrics_table(result.metrics, split="validation"))
        if report is not None:
            console.print(backtest_table(report))
        console.print(
            f"model {cfg.train.model_name} version {record.model_version}: {record.decision.label} "
            f"({record.decision.reason}); bundle {record.bundle_path}; MLflow run {record.run_id}",
            highlight=False,
        )
    return TrainOutcome(
        run_id=record.run_id,
        model_version=record.model_version,
        promoted=record.decision.promote,
        reason=record.decision.reason,
        bundle_path=record.bundle_path,
        metrics=result.metrics,
        backtest=report,
    )
