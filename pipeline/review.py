"""Helpers for the review notebooks: turn the pipeline's outputs into tables to look at.

Pure functions take the outputs as DataFrames or the JSON the stages wrote and return DataFrames;
they compute nothing the stages already do. The few readers at the end (`find_config`,
`latest_file`, `load_training_run`, ...) only locate and read what the stages wrote: the ingest
report, feature snapshots, the MLflow training run, at-risk lists and `churn measure` results.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline.errors import ConfigError, ScoreError, TrainError
from pipeline.features.store import LABEL, SNAPSHOT_DATE
from pipeline.labels import purchase_times
from pipeline.snapshot import cut_frame

NO_ACTION = "no action"
TIER_ORDER = ("high", "medium", "low")
REPORT_COLUMNS = ("input_rows", "validated_rows", "quarantined_rows", "bad_share", "duplicate_rows")


# --- ingest -------------------------------------------------------------------------------------------


def ingest_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """Ingest report -> one row per configured source (index `source`): input_rows, validated_rows,
    quarantined_rows, bad_share, duplicate_rows."""
    rows = {name: entry for name, entry in report["sources"].items() if entry.get("configured", True)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(REPORT_COLUMNS))
    return table.rename_axis("source").astype({"bad_share": "float64"})


def quarantine_reasons(report: Mapping[str, Any]) -> pd.DataFrame:
    """Ingest report -> columns source, reason, rows: the top quarantine reasons, most rows first."""
    records = [
        {"source": name, "reason": item["reason"], "rows": int(item["rows"])}
        for name, entry in report["sources"].items()
        for item in entry.get("top_reasons", [])
    ]
    frame = pd.DataFrame.from_records(records, columns=["source", "reason", "rows"]).astype({"rows": "int64"})
    return frame.sort_values(["rows", "source"], ascending=[False, True], kind="stable").reset_index(drop=True)


# --- cohorts and churn over time -------------------------------------------------------------------------


def _month_label(index: np.ndarray) -> np.ndarray:
    return np.array([f"{i // 12:04d}-{i % 12 + 1:02d}" for i in np.unique(index)], dtype=object)[
        np.searchsorted(np.unique(index), index)
    ]


def active_months(purchases: pl.LazyFrame, *, last_month: int) -> pl.LazyFrame:
    """Purchases (customer_id, ordered_at UTC) -> distinct (customer_id, month) up to `last_month`,
    with first (the customer's first month); months are year * 12 + month - 1."""
    at = pl.col("ordered_at").dt.convert_time_zone("UTC")
    month = (at.dt.year().cast(pl.Int64) * 12 + at.dt.month().cast(pl.Int64) - 1).alias("month")
    months = purchases.select("customer_id", month).filter(pl.col("month") <= last_month)
    per_customer = months.group_by("customer_id").agg(pl.col("month").unique())
    return per_customer.with_columns(pl.col("month").list.min().alias("first")).explode("month")


def cohort_retention(transactions: pd.DataFrame, *, as_of: dt.date) -> pd.DataFrame:
    """Share of each first-order-month cohort that buys again k months later, from orders before `as_of`.

    Input: contract-shaped transactions (customer_id, ordered_at, amount, quantity; months are those of the UTC clock, or of
    the business time zone's after `pipeline.snapshot.in_business_time`); purchases are the purchase
    lines (as for the churn label), cut at `as_of` by `pipeline.snapshot`. Only whole calendar
    months before the month of `as_of` count.
    Output: one row per cohort and month offset (zeros included), sorted: cohort ("YYYY-MM"),
    months_since_first (int64, 0 = the first-order month), cohort_size, active_customers (int64),
    retention (float64, active_customers / cohort_size).

    The rows are reduced in polars to the distinct (customer, month) pairs and then to one count per
    (cohort, offset): only that small table reaches pandas.
    """
    purchases = cut_frame(purchase_times(transactions), "transactions", as_of=as_of)
    columns = ["cohort", "months_since_first", "cohort_size", "active_customers", "retention"]
    last_month = as_of.year * 12 + as_of.month - 2  # the last complete month before as_of
    counts = (
        active_months(purchases, last_month=last_month)
        .group_by("first", (pl.col("month") - pl.col("first")).alias("offset"))
        .len()
        .collect()
        .to_pandas()
        .set_index(["first", "offset"])["len"]
    )
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype="str" if c == "cohort" else "int64") for c in columns}).astype(
            {"retention": "float64"}
        )
    sizes = counts.xs(0, level="offset").sort_index()
    cohorts = sizes.index.to_numpy()
    offsets = last_month - cohorts  # the last observed offset per cohort
    grid_first = np.repeat(cohorts, offsets + 1)
    grid_offset = np.concatenate([np.arange(n + 1) for n in offsets])
    grid = pd.MultiIndex.from_arrays([grid_first, grid_offset], names=["first", "offset"])
    active_customers = counts.reindex(grid, fill_value=0).to_numpy(dtype="int64")
    cohort_size = sizes.reindex(grid_first).to_numpy(dtype="int64")
    return pd.DataFrame(
        {
            "cohort": pd.Series(_month_label(grid_first), dtype="str"),
            "months_since_first": grid_offset.astype("int64"),
            "cohort_size": cohort_size,
            "active_customers": active_customers,
            "retention": active_customers / cohort_size,
        }
    )


def retention_matrix(cohorts: pd.DataFrame) -> pd.DataFrame:
    """`cohort_retention` output -> cohorts (rows, with their size) x months since first order (columns)."""
    wide = cohorts.pivot(index="cohort", columns="months_since_first", values="retention")
    sizes = cohorts.drop_duplicates("cohort").set_index("cohort")["cohort_size"]
    return wide.set_index(pd.MultiIndex.from_arrays([wide.index, sizes.reindex(wide.index)], names=["cohort", "customers"]))


def churn_by_snapshot(features: pd.DataFrame) -> pd.DataFrame:
    """Feature snapshots (snapshot_date, customer_id, ..., churned) -> one row per snapshot date:
    snapshot_date, customers (eligible), churned (count; NaN when the horizon has not passed),
    churn_rate (float64; NaN when unlabelled)."""
    grouped = features.groupby(SNAPSHOT_DATE, sort=True)[LABEL]
    table = pd.DataFrame(
        {"customers": grouped.size(), "churned": grouped.sum(min_count=1), "churn_rate": grouped.mean()}
    ).reset_index()
    return table.astype({"customers": "int64", "churned": "float64", "churn_rate": "float64"})


def came_back_table(labels_report: Mapping[str, Any]) -> pd.DataFrame:
    """`churn features`' labels report -> one row per snapshot whose next horizon the data cover: snapshot_date,
    churned (customers labelled churned), came_back (of them, those who purchased in the horizon after their label
    window), came_back_share."""
    rows = [row for row in labels_report.get("snapshots", []) if row.get("came_back") is not None and row["churned"]]
    table = pd.DataFrame(rows, columns=["date", "churned", "came_back"]).rename(columns={"date": "snapshot_date"})
    table["came_back_share"] = table["came_back"] / table["churned"]
    return table.astype({"churned": "int64", "came_back": "int64", "came_back_share": "float64"})


def label_comparison(snapshot: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One labelled snapshot -> median and share-missing of `columns` for churned vs retained customers.

    Output index: feature; columns: median_retained, median_churned, missing_retained, missing_churned.
    """
    labelled = snapshot[snapshot[LABEL].notna()]
    group = labelled[LABEL].map({0.0: "retained", 1.0: "churned"})
    medians = labelled[list(columns)].groupby(group).median().T
    missing = labelled[list(columns)].isna().groupby(group).mean().T
    table = pd.concat({"median": medians, "missing": missing}, axis=1)
    table.columns = [f"{stat}_{who}" for stat, who in table.columns]
    ordered = [f"{stat}_{who}" for stat in ("median", "missing") for who in ("retained", "churned")]
    return table.reindex(columns=ordered).rename_axis("feature")


# --- the training run --------------------------------------------------------------------------------------


def metrics_table(metrics: Mapping[str, Any], *, split: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """metrics.json of a training run -> one row per model (index `model`) of `split` ("test"/"validation")."""
    table = pd.DataFrame.from_dict(dict(metrics[split]), orient="index").rename_axis("model")
    return table if columns is None else table.reindex(columns=list(columns))


def backtest_folds(backtest: Mapping[str, Any]) -> pd.DataFrame:
    """backtest.json -> one row per fold and model: test_snapshot, model, then one column per metric."""
    records = [
        {"test_snapshot": fold["split"]["test"], "model": model, **values}
        for fold in backtest["folds"]
        for model, values in fold["test"].items()
    ]
    return pd.DataFrame.from_records(records)


def backtest_spread(backtest: Mapping[str, Any]) -> pd.DataFrame:
    """backtest.json -> columns model, metric, mean, std, n (the summary over the folds)."""
    records = [
        {"model": model, "metric": metric, **{k: float(v) for k, v in stats.items()}}
        for model, per_metric in backtest["summary"].items()
        for metric, stats in per_metric.items()
    ]
    return pd.DataFrame.from_records(records, columns=["model", "metric", "mean", "std", "n"])


def top_contributions(contributions: pd.DataFrame, *, n: int = 5, values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-customer contributions (rows: customers, columns: features, log-odds) -> each customer's `n`
    largest by absolute value: columns customer (the input index), rank (1..n), feature, contribution,
    and `value` (the customer's feature value) when `values` (same index, feature columns) is given.
    Customers keep their input order."""
    long = contributions.rename_axis(index="customer", columns="feature").stack().rename("contribution").reset_index()
    order = pd.Series(np.arange(len(contributions)), index=contributions.index)
    long = long.assign(_order=order.reindex(long["customer"]).to_numpy(), _size=long["contribution"].abs())
    ordered = long.sort_values(["_order", "_size"], ascending=[True, False], kind="stable")
    top = ordered.groupby("_order", sort=False).head(n).drop(columns=["_order", "_size"])
    top.insert(1, "rank", top.groupby("customer", sort=False).cumcount().to_numpy() + 1)
    if values is not None:
        cells = values.astype("object").rename_axis(index="customer", columns="feature").stack(future_stack=True)
        top["value"] = cells.reindex(pd.MultiIndex.from_frame(top[["customer", "feature"]])).to_numpy()
    return top.reset_index(drop=True)


# --- scoring and the campaign ------------------------------------------------------------------------------


def tier_by_action(scores: pd.DataFrame) -> pd.DataFrame:
    """At-risk list -> customers per risk tier (rows: high, medium, low) and action (columns; customers
    without an action under "no action"), control-group customers counted with their action."""
    action = scores["action"].astype("object").where(scores["action"].notna(), NO_ACTION)
    table = pd.crosstab(scores["risk_tier"], action).reindex(index=list(TIER_ORDER), fill_value=0)
    ordered = sorted(c for c in table.columns if c != NO_ACTION) + ([NO_ACTION] if NO_ACTION in table.columns else [])
    return table.reindex(columns=ordered).rename_axis(index="risk_tier", columns="action")


def budget_by_action(scores: pd.DataFrame, *, budget: float) -> pd.DataFrame:
    """At-risk list -> per action (index) the treated and control customers, the cost spent on the
    treated, its share of `budget`, and the expected net value of the treated; a "total" row last."""
    selected = scores[scores["group"].isin(["treatment", "control"])]
    treated = selected["group"] == "treatment"
    frame = pd.DataFrame(
        {
            "action": selected["action"].astype("str"),
            "treatment": treated.astype("int64"),
            "control": (~treated).astype("int64"),
            "cost": selected["action_cost"].where(treated, 0.0),
            "expected_net_value": selected["expected_net_value"].where(treated, 0.0),
        }
    )
    table = frame.groupby("action").sum()
    table.loc["total"] = table.sum()
    table["budget_share"] = table["cost"] / budget if budget > 0 else np.nan
    return table[["treatment", "control", "cost", "budget_share", "expected_net_value"]]


# --- readers of the pipeline's outputs --------------------------------------------------------------------


def find_config(path: str | Path) -> Path:
    """`path` as given, else relative to a parent folder of the current one (notebooks run in notebooks/)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.is_file():
        return candidate.resolve()
    for folder in Path.cwd().resolve().parents:
        if (folder / candidate).is_file():
            return (folder / candidate).resolve()
    raise ConfigError(f"config file not found: {path} (set CHURN_CONFIG to its path)")


def dated_files(folder: Path, prefix: str, suffix: str) -> dict[dt.date, Path]:
    """Files `<prefix>YYYY-MM-DD<suffix>` in `folder`, by date (sorted)."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d{{4}}-\d{{2}}-\d{{2}}){re.escape(suffix)}$")
    found = [(pattern.match(p.name), p) for p in Path(folder).glob(f"{prefix}*{suffix}")] if Path(folder).is_dir() else []
    return dict(sorted((dt.date.fromisoformat(m.group(1)), p) for m, p in found if m))


def latest_file(folder: Path, prefix: str, suffix: str, *, hint: str) -> Path:
    """The latest dated file (see `dated_files`); ScoreError with `hint` when there is none."""
    files = dated_files(folder, prefix, suffix)
    if not files:
        raise ScoreError(f"no {prefix}YYYY-MM-DD{suffix} in {folder}: {hint}")
    return files[max(files)]


@dataclass(frozen=True)
class TrainingRun:
    """A training run read back from MLflow: ids, tags, metrics.json, backtest (or None), plot files."""

    run_id: str
    experiment_id: str
    run_name: str
    tags: dict[str, str]
    metrics: dict[str, Any]
    backtest: dict[str, Any] | None
    plots: dict[str, Path]
    champion_version: str | None
    champion_run_id: str | None


def find_latest_training_run(tracking_uri: str, *, experiment: str, model_name: str) -> Any | None:
    """The newest top-level training run of `model_name` in `experiment` (an mlflow Run), or None.

    Training runs carry the tag `model_name`; their nested baseline runs do not, so they are skipped.
    """
    # MLflow (~3 s to import) only in the run readers: `churn ingest` uses this module's cohort table.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.model_name = '{model_name}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    return runs[0] if runs else None


def latest_training_run_id(tracking_uri: str, *, experiment: str, model_name: str) -> str:
    """Id of the newest training run of `model_name`; TrainError saying what to run when there is none."""
    run = find_latest_training_run(tracking_uri, experiment=experiment, model_name=model_name)
    if run is None:
        raise TrainError(
            f"no training run of '{model_name}' in experiment '{experiment}' at {tracking_uri}: run `churn train` first"
        )
    return run.info.run_id


def load_run_bundle(tracking_uri: str, *, run_id: str, dest: Path) -> Any:
    """The model bundle logged by training run `run_id`, downloaded into `dest`, checksums verified
    (`pipeline.bundle.load_bundle`): a LoadedBundle with model, manifest and metrics."""
    import mlflow  # see find_latest_training_run

    from pipeline.bundle import BUNDLE_ARTIFACT_PATH, load_bundle  # loads LightGBM: only when needed (start-up)

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=BUNDLE_ARTIFACT_PATH, dst_path=str(dest), tracking_uri=tracking_uri
    )
    return load_bundle(Path(local))


def load_training_run(tracking_uri: str, *, run_id: str, model_name: str, dest: Path) -> TrainingRun:
    """Read a training run's tags, metrics.json, backtest.json (when logged) and plots (downloaded into
    `dest`) from MLflow, and the current champion of `model_name`."""
    import mlflow  # see find_latest_training_run
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = client.get_run(run_id)
    listed = {item.path for folder in ("metrics", "backtest") for item in client.list_artifacts(run_id, folder)}

    def read_json(artifact: str) -> dict[str, Any] | None:
        if artifact not in listed:
            return None
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(dest), tracking_uri=tracking_uri
        )
        return json.loads(Path(local).read_text(encoding="utf-8"))

    plots_dir = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots", dst_path=str(dest), tracking_uri=tracking_uri)
    )
    try:
        champion = client.get_model_version_by_alias(model_name, "champion")
    except MlflowException:
        champion = None
    return TrainingRun(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        run_name=run.info.run_name,
        tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        metrics=read_json("metrics/metrics.json") or {},
        backtest=read_json("backtest/backtest.json"),
        plots={p.stem: p for p in sorted(plots_dir.glob("*.png"))},
        champion_version=str(champion.version) if champion is not None else None,
        champion_run_id=champion.run_id if champion is not None else None,
    )
