"""`churn train`: read the feature snapshots, split by time, train and evaluate, track in MLflow.

Reads `cfg.features_dir/snapshot=*.parquet`, fits LightGBM and the baselines on the out-of-time split
(pipeline.split, pipeline.train), writes the figures (`cfg.reports_dir/training/plots`) and the bundle
(`cfg.bundle_dir`), and has pipeline.tracking log the run and those files, register the model and move the
`champion` alias when the new model is at least as good (`track_training`).
With `backtest=True` the fit is repeated over `cfg.train.backtest_folds` rolling
test snapshots (fewer when the history holds fewer: a warning and the printed output say so); the mean and
spread per metric go to MLflow and `cfg.reports_dir/backtest.json`.

`train.engine: dask` (`churn train --engine dask`) fits the LightGBM booster with
`lightgbm.DaskLGBMClassifier` on a Dask cluster ($DASK_SCHEDULER_ADDRESS, else a LocalCluster), held
open for every fold; everything else (split, baselines, calibration, metrics, MLflow, bundle,
champion) is the same. The hyper-parameter search is skipped on Dask: `train.search_trials` is
logged as 1 (see `pipeline.dask_engine`). The engine is the run's `train.engine` param and
`train_engine` tag.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from rich import box
from rich.table import Table

from pipeline import plots
from pipeline.bundle import save_bundle
from pipeline.config import Config, config_as_dict, data_identity
from pipeline.dask_engine import dask_client, dask_train_settings, require_dask, train_lightgbm_dask, train_models_dask
from pipeline.evaluate import (
    STATIC_ATTRIBUTES,
    RetentionSettings,
    attribute_leak_warning,
    chance_ranking_warning,
    few_labels_warning,
)
from pipeline.features.registry import feature_specs
from pipeline.features.store import (
    check_settings_match,
    read_btyd_fits,
    read_snapshots,
    recorded_settings,
    snapshot_path,
    snapshot_row_counts,
)
from pipeline.io import complete_interrupted_publishes, read_report, write_json
from pipeline.model import ChurnModel
from pipeline.progress import console, get_logger, timed, track
from pipeline.run.features import event_span, labels_report_path
from pipeline.run.history import treated_customers
from pipeline.run.ingest import report_path
from pipeline.split import (
    LABEL_COLUMN,
    SNAPSHOT_COLUMN,
    backtest_shortfall,
    drop_treated_rows,
    labelled_snapshots,
    rolling_splits,
    rows_of,
    short_history_note,
    snapshot_count_phrase,
    snapshots_within_rows,
    time_split,
)
from pipeline.tracking import (
    PromotionDecision,
    bundle_manifest_fields,
    file_fingerprints,
    log_baseline_runs,
    log_contents,
    log_files,
    model_fingerprint,
    promotion_decision,
    publish_version,
    register_model,
    same_as_champion,
    start_training_run,
    tracking_settings,
    training_run_contents,
    unchanged_decision,
)
from pipeline.train import (
    BoosterFit,
    TrainResult,
    backtest_summary,
    choice_summary,
    production_model,
    train_models,
)

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
VALUE_NOTE = (
    "value: realised net retention value of contacting, within score.budget, the customers whose expected gain "
    "(probability x train.retention_uplift x their value) exceeds train.contact_cost, largest gain first"
)


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
    snapshots = dates.get(split, "?")  # the test snapshot, or the list of validation snapshots
    shown = ", ".join(map(str, snapshots)) if isinstance(snapshots, list) else snapshots
    label = "snapshots" if isinstance(snapshots, list) and len(snapshots) > 1 else "snapshot"
    title = f"{split} metrics ({label} {shown}, {dates.get('rows', {}).get(split, '?')} customers)"
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
    count = len(backtest["folds"])
    spread = "mean ± std" if count > 1 else "one fold, so no spread (± .000)"
    table = Table(title=f"backtest over {snapshot_count_phrase(count)} ({tests}): {spread}", box=box.SIMPLE_HEAD)
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
        folds = int(max(v.get("n", 0) for v in values.values()))
        label = MODEL_LABELS.get(model, model)
        # A candidate some folds did not have (the blend) is averaged over fewer test snapshots: say how many.
        if folds < len(backtest["folds"]):
            label = f"{label} {folds}/{len(backtest['folds'])}"
            table.caption = "n/N: a model only some folds had, averaged over n of the N test snapshots"
        table.add_row(label, *cells)
    return table


def _difference(entry: dict[str, float]) -> str:
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def comparison_table(metrics: dict[str, Any]) -> Table:
    """Rich table: each candidate's out-of-fold and test ROC-AUC, and its test ROC-AUC and PR-AUC difference
    to the best baseline with the paired bootstrap 95% interval; the kept candidate marked."""
    comparison, choice = metrics.get("comparison", {}), metrics.get("model_choice", {})
    best = comparison.get("best_baseline") or {}
    table = Table(
        title="candidates against the best baseline on test (difference \\[paired bootstrap 95% interval])",
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
    """The plain sentences `churn train` prints: the model kept with LightGBM against the best baseline, said
    once (`choice_summary`), then calibration."""
    return [choice_summary(metrics), metrics.get("calibration", {}).get("lightgbm_statement", "")]


def engine_config(cfg: Config) -> Config:
    """`cfg` as `train.engine` runs it: for dask, checks the extra is installed and drops the search.

    Raises ConfigError naming train.engine when dask is chosen but not installed.
    """
    if cfg.train.engine == "local":
        return cfg
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
    with dask_client() as client:
        get_logger().info("train.engine=dask: LightGBM on %s", client.scheduler.address)
        yield partial(train_models_dask, client=client), partial(train_lightgbm_dask, client=client)


def input_fingerprints(cfg: Config) -> dict[str, dict[str, str]]:
    """sha256 of every validated source file and every feature snapshot file."""
    return {
        "validated": file_fingerprints(Path(cfg.validated_dir).glob("*.parquet"), root=Path(cfg.validated_dir)),
        "features": file_fingerprints(Path(cfg.features_dir).glob("snapshot=*.parquet"), root=Path(cfg.features_dir)),
    }


def contributions_source(kind: str, blend_weight: float) -> str:
    """Which model's contributions and importance the figures show, for their titles: the kept candidate
    (`ChurnModel.kind_`: lightgbm, logistic or blend with `blend_weight` on LightGBM)."""
    if kind == "lightgbm":
        return "kept model: LightGBM (TreeSHAP)"
    if kind == "logistic":
        return "kept model: logistic regression (linear terms)"
    return f"kept model: blend, {blend_weight:.1f} LightGBM (TreeSHAP) + {1 - blend_weight:.1f} logistic (linear terms)"


def training_figures(result: TrainResult, *, rows: int = 2000) -> dict[str, Figure]:
    """The test snapshot's evaluation figures by artifact file name. The importance and contribution figures
    describe the kept model (`result.model`: LightGBM, logistic or blend) on its first `rows` test customers:
    importance is each feature's mean |contribution| to the model's log-odds."""
    y_test = result.labels["test"]
    curves = result.probabilities["test"]
    calibrated = {k: v for k, v in curves.items() if k != "lightgbm_uncalibrated"}
    model = result.model
    contributions = model.contributions(result.test_features.head(rows))
    values = pd.DataFrame(
        model.matrix(result.test_features.head(rows)), index=contributions.index, columns=model.feature_names_
    )
    source = contributions_source(model.kind_, model.blend_weight_)
    measure = f"mean |contribution| to the log-odds, {len(contributions):,} test customers"
    return {
        "plots/roc_test.png": plots.roc_figure(y_test, calibrated, split_name="test"),
        "plots/precision_recall_test.png": plots.precision_recall_figure(y_test, calibrated, split_name="test"),
        "plots/reliability_test.png": plots.reliability_figure(y_test, curves, split_name="test"),
        "plots/lift_gain_test.png": plots.lift_gain_figure(y_test, calibrated, split_name="test"),
        "plots/feature_importance.png": plots.feature_importance_figure(
            contributions.abs().mean(), model=source, measure=measure
        ),
        "plots/shap_summary_test.png": plots.shap_summary_figure(contributions, values, model=source, seed=0),
    }


def save_training_figures(result: TrainResult, *, folder: Path) -> list[Path]:
    """`training_figures` as PNG under `folder` (e.g. folder/plots/roc_test.png); returns their paths."""
    return [plots.save_figure(figure, folder / name) for name, figure in training_figures(result).items()]


@dataclass(frozen=True)
class TrainingRecord:
    """What tracking a training produced: MLflow run and experiment, model version, decision, local bundle."""

    run_id: str
    experiment_id: str
    model_version: str
    decision: PromotionDecision
    bundle_path: Path


def track_training(
    cfg: Config,
    result: TrainResult,
    *,
    retention: RetentionSettings,
    fingerprints: Mapping[str, Mapping[str, str]],
    backtest: Mapping[str, Any] | None = None,
    production: ChurnModel | None = None,
    production_snapshots: list[str] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    left_out: Sequence[str] = (),
    warnings: Mapping[str, str] | None = None,
    test_fits: Sequence[Mapping[str, Any]] | None = None,
) -> TrainingRecord:
    """Log one training to MLflow, register the model, write and log the bundle, decide the champion.

    The registered model is `production` (the evaluated configuration refitted on `production_snapshots`)
    when given, else `result.model`; the metrics are always `result`'s (the evaluated fit's).
    `manifest_extra`: more fields for the bundle manifest (e.g. `training_inputs`, the sources and columns
    present at training, which `churn score` checks). The ingest report of the data (when `churn ingest` wrote one)
    is logged with the inputs, and `left_out` (labelled snapshots not read) and `warnings` (tag -> text) are tagged.
    `test_fits`: the records of the test snapshot's BTYD fits, kept with the drift reference (`read_btyd_fits`).

    Order: figures (under `cfg.reports_dir/training`), then one run with its metadata and metrics, nested
    baseline runs and the figures; the pyfunc model registered (none when the model's files equal the
    champion's: "unchanged"), the champion decision, the bundle at `cfg.bundle_dir` logged under "bundle",
    and last the alias, so that it only ever points at a version whose bundle is stored.
    """
    settings = tracking_settings(cfg)
    model = result.model if production is None else production
    trained_on = result.split.as_dict()["train"] if production_snapshots is None else production_snapshots
    figures_dir = Path(cfg.reports_dir) / "training"
    figures = save_training_figures(result, folder=figures_dir)
    manifest = {
        **bundle_manifest_fields(result, model=model, champion_metric=settings.champion_metric, test_fits=test_fits),
        **(manifest_extra or {}),
    }
    contents = training_run_contents(
        result,
        model=model,
        config=config_as_dict(cfg),
        fingerprints=fingerprints,
        trained_on=trained_on,
        model_name=settings.model_name,
        engine=cfg.train.engine,
        backtest=backtest,
        ingest_report=read_report(report_path(cfg)),
        labels_report=read_report(labels_report_path(cfg)),
        left_out=left_out,
        warnings=warnings,
    )
    with start_training_run(settings, result) as run:
        log_contents(contents)
        log_baseline_runs(result, experiment_id=run.info.experiment_id)
        log_files(figures, root=figures_dir)
        write_bundle = partial(
            save_bundle, model, metrics=result.metrics, run_id=run.info.run_id, training_snapshots=trained_on
        )
        fingerprint = model_fingerprint(model)
        champion = same_as_champion(settings, fingerprint)
        if champion is not None:
            # The same model as the champion: no new version (every rerun of `make demo` would add one).
            version = str(champion.version)
            decision = unchanged_decision(
                result.metrics, champion=version, fingerprint=fingerprint, metric=settings.champion_metric
            )
            manifest = {**manifest, "champion_at_training": True, "same_as_champion_run": champion.run_id}
        else:
            with tempfile.TemporaryDirectory(prefix="pyfunc-") as folder:
                packaged = write_bundle(path=Path(folder) / "bundle", model_version=None, extra=manifest)
                version = register_model(settings, model, bundle=packaged, features=result.test_features)
            decision = promotion_decision(settings, result, retention=retention, trained_from=data_identity(cfg))
            if decision.other_project is not None:
                get_logger().warning("not promoted: %s", decision.reason)
            manifest = {**manifest, "champion_at_training": decision.promote}
        bundle_path = write_bundle(path=cfg.bundle_dir, model_version=version, extra=manifest)
        publish_version(settings, version, decision=decision, bundle_path=bundle_path, fingerprint=fingerprint)
    return TrainingRecord(run.info.run_id, run.info.experiment_id, version, decision, bundle_path)


def run(cfg: Config, *, backtest: bool, quiet: bool) -> TrainOutcome:
    """Train, evaluate, track and (maybe) promote; print the metrics tables unless `quiet`."""
    logger = get_logger()
    complete_interrupted_publishes(cfg.paths.data_dir)  # a killed `churn features` finished, not read half-renamed
    cfg = engine_config(cfg)
    retention = retention_settings(cfg)
    specs = feature_specs(cfg.features)
    horizon = cfg.features.horizon_days
    with timed("train"):
        counts = snapshot_row_counts(cfg.features_dir)
        dates, left_out = snapshots_within_rows(
            counts, max_rows=cfg.train.max_training_rows, horizon_days=horizon, folds=cfg.train.cv_folds,
            backtest_folds=cfg.train.backtest_folds if backtest else 1)
        if left_out:
            rows = int(counts.loc[counts["snapshot_date"].isin(dates), "rows"].sum())
            logger.warning(
                "the %d oldest labelled snapshots (%s..%s) are left out: with them training would read more than "
                "train.max_training_rows (%s) rows; it reads %s rows of %d snapshots%s. Raise the setting (or set 0) "
                "if memory allows", len(left_out), left_out[0], left_out[-1], f"{cfg.train.max_training_rows:,}",
                f"{rows:,}", len(dates),
                ", more than the setting: the split needs them" if rows > cfg.train.max_training_rows else "")
        features = read_snapshots(cfg.features_dir, dates if left_out else None, expected=cfg.features)
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
        short_history = short_history_note(*event_span(cfg.validated_dir, timezone=cfg.features.zone),
                                           horizon_days=horizon)
        split = time_split(labelled, horizon_days=horizon, folds=cfg.train.cv_folds, short_history=short_history)
        logger.info(
            "split: train %s..%s (%d snapshots, refit), %d validation folds (%s), test %s",
            split.train[0].date(),
            split.train[-1].date(),
            len(split.train),
            len(split.folds),
            ", ".join(str(d.date()) for d in split.validation),
            split.test.date(),
        )
        attributes = (*STATIC_ATTRIBUTES, *cfg.features.attribute_columns)
        looked_at = features[[c for c in (SNAPSHOT_COLUMN, LABEL_COLUMN, "recency_days", *attributes)
                              if c in features.columns]]  # a few columns: the rows are copied
        test_rows = rows_of(looked_at, [split.test], part="test")
        leak = attribute_leak_warning(rows_of(looked_at, split.train, part="training"), test_rows, label=LABEL_COLUMN,
                                      attributes=attributes)
        if leak:
            logger.warning("%s", leak)
        few = few_labels_warning(test_rows, label=LABEL_COLUMN, snapshot=str(split.test.date()), horizon_days=horizon)
        if few:
            logger.warning("%s", few)
        report = None
        with training_engine(cfg) as (fit_models, booster_fit):
            result = fit_models(features, specs=specs, split=split, cfg=cfg.train, retention=retention)
            chosen = result.metrics["model_choice"]["chosen"]
            chance = chance_ranking_warning(
                result.labels["test"], result.probabilities["test"][chosen], model=chosen,
                snapshot=str(split.test.date()), resamples=cfg.train.bootstrap_resamples, seed=cfg.train.seed)
            if chance:
                logger.warning("%s", chance)
                result.metrics["chance_ranking"] = chance  # in the bundle's metrics.json: churn score repeats it
            production, production_snapshots = production_model(
                features, result, cfg=cfg.train, fit=booster_fit
            )
            logger.info(
                "the model to register: %s refitted on all %d labelled snapshots (%s..%s, the test snapshot "
                "included) with the rounds the folds chose; the test metrics are the evaluated fit's",
                production.kind_, len(production_snapshots), production_snapshots[0], production_snapshots[-1])
            if backtest:
                splits = rolling_splits(
                    labelled, horizon_days=horizon, folds=cfg.train.backtest_folds, validation_folds=cfg.train.cv_folds
                )
                shortfall = backtest_shortfall(
                    labelled, splits, horizon_days=horizon, folds=cfg.train.backtest_folds
                )
                if shortfall:
                    logger.warning(shortfall)
                folds = [result]
                for fold_split in track(splits[1:], description="backtest folds", quiet=quiet):
                    folds.append(
                        fit_models(features, specs=specs, split=fold_split, cfg=cfg.train, retention=retention)
                    )
                report = backtest_summary(folds, shortfall=shortfall)
        if report is not None:
            write_json(report, Path(cfg.reports_dir) / "backtest.json")
        record = track_training(
            cfg,
            result,
            retention=retention,
            fingerprints=input_fingerprints(cfg),
            backtest=report,
            production=production,
            production_snapshots=production_snapshots,
            manifest_extra={"training_inputs": recorded["settings"]["inputs"] if recorded else None,
                            "trained_from": data_identity(cfg), "timezone": cfg.features.zone},
            left_out=[str(d) for d in left_out],
            warnings={tag: text for tag, text in (("attribute_leak", leak), ("few_test_labels", few),
                                                  ("chance_test_ranking", chance)) if text} or None,
            test_fits=read_btyd_fits(snapshot_path(cfg.features_dir, split.test.date())),
        )
    if not quiet:
        out = console()
        out.print(metrics_table(result.metrics, split="test"))
        out.print(metrics_table(result.metrics, split="validation"))
        if report is not None:
            out.print(backtest_table(report))
            if report["shortfall"]:
                out.print(report["shortfall"], highlight=False)
            out.print(report["statement"], highlight=False)
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
