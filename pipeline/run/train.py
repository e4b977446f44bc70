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

from rich.console import Console
from rich.table import Table

from pipeline.config import Config
from pipeline.evaluate import RetentionSettings
from pipeline.io import write_json
from pipeline.progress import get_logger, timed, track
from pipeline.split import labelled_snapshots, rolling_splits, time_split
from pipeline.train import backtest_summary, train_models

TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile", "capture_top_decile", "realised_retention_value")


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


def _number(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def metrics_table(metrics: dict[str, Any], *, split: str) -> Table:
    """Rich table: one row per model, the main metrics of `split` as columns."""
    dates = metrics.get("split", {})
    title = f"{split} metrics (snapshot {dates.get(split, '?')}, {dates.get('rows', {}).get(split, '?')} customers)"
    table = Table(title=title, caption=metrics.get("calibration", {}).get("note") if split == "validation" else None)
    table.add_column("model")
    for name in TABLE_METRICS:
        table.add_column(name, justify="right")
    for model, values in metrics.get(split, {}).items():
        table.add_row(model, *(_number(values.get(name)) for name in TABLE_METRICS))
    return table


def backtest_table(backtest: dict[str, Any]) -> Table:
    """Rich table: mean ± std over the backtest folds of the test metrics, per model."""
    tests = ", ".join(fold["split"]["test"] for fold in backtest["folds"])
    table = Table(title=f"backtest over {len(backtest['folds'])} test snapshots ({tests}): mean ± std")
    table.add_column("model")
    for name in TABLE_METRICS:
        table.add_column(name, justify="right")
    for model, values in backtest["summary"].items():
        cells = [
            f"{_number(values[name]['mean'])} ± {_number(values[name]['std'])}" if name in values else "n/a"
            for name in TABLE_METRICS
        ]
        table.add_row(model, *cells)
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
            split.train[0].date(), split.train[-1].date(), len(split.train), split.validation.date(), split.test.date(),
        )
        result = train_models(features, specs=specs, split=split, settings=cfg.train, retention=retention)
        report = None
        if backtest:
            splits = rolling_splits(labelled, horizon_days=horizon, folds=cfg.train.backtest_folds)
            folds = [result]
            for fold_split in track(splits[1:], description="backtest folds", quiet=quiet):
                folds.append(train_models(features, specs=specs, split=fold_split, settings=cfg.train, retention=retention))
            report = backtest_summary(folds)
            write_json(report, Path(cfg.reports_dir) / "backtest.json")
        record = log_training_run(cfg, result, retention=retention, fingerprints=input_fingerprints(cfg), backtest=report)
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
