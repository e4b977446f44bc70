"""`churn train`: read the feature snapshots, split by time, train and evaluate, track in MLflow.

Reads `cfg.features_dir/snapshot=*.parquet`, fits LightGBM and the baselines on the out-of-time split
(pipeline.split, pipeline.train), logs the run, registers the model, writes the bundle to
`cfg.bundle_dir` and moves the `champion` alias when the new model is at least as good
(pipeline.tracking). With `backtest=True` the fit is repeated over `cfg.train.backtest_folds` rolling
test snapshots; the mean and spread per metric go to MLflow and `cfg.reports_dir/backtest.json`.

`train.engine: dask` (`churn train --engine dask`) fits the LightGBM booster with
`lightgbm.DaskLGBMClassifier` on a Dask cluster ($DASK_SCHEDULER_ADDRESS, else a LocalCluster), held
open for every fold; everything else (split, baselines, calibration, metrics, MLflow, bundle,
champion) is the same. The hyper-parameter search is skipped on Dask: `train.search_trials` is
logged as 1 (see `pipeline.dask_engine`). The engine is the run's `train.engine` param and
`train_engine` tag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from pipeline.config import Config
from pipeline.evaluate import RetentionSettings
from pipeline.io import write_json
from pipeline.progress import console, get_logger, timed, track
from pipeline.split import drop_treated_rows, labelled_snapshots, rolling_splits, time_split
from pipeline.train import BoosterFit, TrainResult, backtest_summary, production_model, train_models

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


# Short column labels: the metrics table fits an 80-column terminal with every candidate and baseline.
MODEL_LABELS = {
    "lightgbm": "LGBM",
    "lightgbm_uncalibrated": "uncal.",
    "logistic": "logit",
    "recency_rule": "recency",
    "logistic_rfm": "RFM logit",
    "btyd": "BG/NBD",
    "pareto_nbd": "P/NBD",
}
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
    if any(values.get("status", "ok") != "ok" for values in models.values()):
        table.add_row("status", *(str(values.get("status", "ok")).split(":")[0] for values in models.values()))
    for metric, label in TABLE_METRICS.items():
        table.add_row(label, *(_number(values.get(metric), metric=metric) for values in models.values()))
    failed = [f"{MODEL_LABELS.get(m, m)} {values['status']}" for m, values in models.items()
              if values.get("status", "ok") != "ok"]
    if failed:
        table.caption = "\n".join([*(c for c in [caption] if c), *failed])
    return table


def backtest_table(backtest: dict[str, Any]) -> Table:
    """Rich table: mean ± std over the backtest folds of the test metrics, one row per model (fits 80 columns)."""
    tests = ", ".join(fold["split"]["test"] for fold in backtest["folds"])
    models = backtest["summary"]
    table = Table(
        title=f"backtest over {len(backtest['folds'])} test snapshots ({tests}): mean ± std", box=box.SIMPLE_HEAD
    )
    metrics = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_top_decile")
    table.add_column("model", no_wrap=True)
    for metric in metrics:
        table.add_column(TABLE_METRICS[metric], justify="right")
    for model, values in models.items():
        cells = [
            f"{values[metric]['mean']:.3f}±{values[metric]['std']:.3f}".replace("±0.", "±.")
            if metric in values
            else "n/a"
            for metric in metrics
        ]
        table.add_row(MODEL_LABELS.get(model, model), *cells)
    return table


def _difference(entry: dict[str, float]) -> str:
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def comparison_table(metrics: dict[str, Any]) -> Table:
    """Rich table: each candidate's out-of-fold and test ROC-AUC, and its test ROC-AUC and PR-AUC difference
    to the best baseline with the paired bootstrap 95% interval; the kept candidate marked."""
    comparison, choice = metrics.get("comparison", {}), metrics.get("model_choice", {})
    best = comparison.get("best_baseline") or {}
    table = Table(
        title="candidates against the best baseline on test (difference [paired bootstrap 95% interval])",
        caption=f"best baseline: ROC-AUC {best.get('roc_auc', 'none')}, PR-AUC {best.get('pr_auc', 'none')}",
        box=box.SIMPLE_HEAD,
    )
    for header in ("candidate", "OOF ROC-AUC", "ROC-AUC", "Δ ROC-AUC", "Δ PR-AUC"):
        table.add_column(header, justify="left" if header == "candidate" else "right", no_wrap=True)
    for name, differences in comparison.get("candidates", {}).items():
        label = f"{name} (kept)" if name == choice.get("chosen") else name
        table.add_row(
            label,
            _number(choice.get("out_of_fold_roc_auc", {}).get(name)),
            _number(metrics["test"][name]["roc_auc"]),
            _difference(differences["roc_auc"]),
            _difference(differences["pr_auc"]),
        )
    return table


def training_statements(metrics: dict[str, Any]) -> list[str]:
    """The plain sentences `churn train` prints: LightGBM against the best baseline, the model kept, calibration."""
    return [
        metrics.get("comparison", {}).get("statement", ""),
        metrics.get("model_choice", {}).get("statement", ""),
        metrics.get("calibration", {}).get("lightgbm_statement", ""),
    ]


def engine_config(cfg: Config) -> Config:
    """`cfg` as `train.engine` runs it: for dask, checks the extra is installed and drops the search.

    Raises ConfigError naming train.engine when dask is chosen but not installed.
    """
    if cfg.train.engine == "local":
        return cfg
    from pipeline.dask_engine import dask_train_settings, require_dask

    require_dask("train.engine")
    if cfg.train.search_trials > 1:
        get_logger().info(
            "train.engine=dask: no hyper-parameter search (train.search_trials=%d -> 1, the default configuration)",
            cfg.train.search_trials,
        )
    return cfg.model_copy(update={"train": dask_train_settings(cfg.train)})


@contextmanager
def training_engine(cfg: Config) -> Iterator[tuple[Callable[..., TrainResult], BoosterFit | None]]:
    """(`train_models`, the default booster fit), or for train.engine=dask `train_models_dask` and the Dask
    booster fit on a client open until exit."""
    if cfg.train.engine == "local":
        yield train_models, None
        return
    from pipeline.dask_engine import dask_client, train_lightgbm_dask, train_models_dask

    with dask_client() as client:
        get_logger().info("train.engine=dask: LightGBM on %s", client.scheduler.address)
        yield partial(train_models_dask, client=client), partial(train_lightgbm_dask, client=client)


def run(cfg: Config, *, backtest: bool, quiet: bool) -> TrainOutcome:
    """Train, evaluate, track and (maybe) promote; print the metrics tables unless `quiet`."""
    import mlflow

    from pipeline.features.registry import feature_specs
    from pipeline.features.store import check_settings_match, read_snapshots, recorded_settings
    from pipeline.io import complete_interrupted_publishes
    from pipeline.run.history import treated_customers
    from pipeline.tracking import input_fingerprints, log_training_run

    logger = get_logger()
    complete_interrupted_publishes(cfg.paths.data_dir)  # a killed `churn features` finished, not read half-renamed
    cfg = engine_config(cfg)
    retention = retention_settings(cfg)
    specs = feature_specs(cfg.features)
    horizon = cfg.features.horizon_days
    with timed("train"):
        features = read_snapshots(cfg.features_dir, expected=cfg.features)
        recorded = recorded_settings(cfg.features_dir, expected=cfg.features)
        check_settings_match(recorded, cfg.features, features_dir=cfg.features_dir)
        if recorded is None:
            logger.warning(
                "the feature snapshots record no feature settings (built by an older version): run `churn features` "
                "so that the model records the inputs it was trained on and scoring can check them"
            )
        untreated = drop_treated_rows(features, treated_customers(cfg), horizon_days=horizon)
        if len(untreated) < len(features):
            logger.info(
                "%d snapshot rows left out: their customers were treated by a past at-risk list within the label "
                "window, so the label measures the action, not the risk",
                len(features) - len(untreated),
            )
        features = untreated
        labelled = labelled_snapshots(features)
        split = time_split(labelled, horizon_days=horizon, folds=cfg.train.cv_folds)
        logger.info(
            "split: train %s..%s (%d snapshots, refit), %d validation folds (%s), test %s",
            split.train[0].date(),
            split.train[-1].date(),
            len(split.train),
            len(split.folds),
            ", ".join(str(d.date()) for d in split.validation),
            split.test.date(),
        )
        report = None
        with training_engine(cfg) as (fit_models, booster_fit):
            result = fit_models(features, specs=specs, split=split, cfg=cfg.train, retention=retention)
            production, production_snapshots = production_model(
                features, result, cfg=cfg.train, fit=booster_fit
            )
            if backtest:
                splits = rolling_splits(
                    labelled, horizon_days=horizon, folds=cfg.train.backtest_folds, validation_folds=cfg.train.cv_folds
                )
                folds = [result]
                for fold_split in track(splits[1:], description="backtest folds", quiet=quiet):
                    folds.append(
                        fit_models(features, specs=specs, split=fold_split, cfg=cfg.train, retention=retention)
                    )
                report = backtest_summary(folds)
        if report is not None:
            write_json(report, Path(cfg.reports_dir) / "backtest.json")
        record = log_training_run(
            cfg,
            result,
            retention=retention,
            fingerprints=input_fingerprints(cfg),
            backtest=report,
            production=production,
            production_snapshots=production_snapshots,
            manifest_extra={"training_inputs": recorded["settings"]["inputs"] if recorded else None},
        )
        mlflow.MlflowClient(cfg.tracking_uri()).set_tag(record.run_id, "train_engine", cfg.train.engine)
    if not quiet:
        out = console()
        out.print(metrics_table(result.metrics, split="test"))
        out.print(metrics_table(result.metrics, split="validation"))
        if report is not None:
            out.print(backtest_table(report))
        out.print(comparison_table(result.metrics))
        for sentence in training_statements(result.metrics):
            out.print(sentence, highlight=False)
        out.print(
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
