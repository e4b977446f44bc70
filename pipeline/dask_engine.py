"""The Dask path: the same feature and LightGBM code, run on a `dask.distributed` cluster.

Features. Every source is split by a stable hash of `customer_id` into partitions, so that each
partition holds *all* the events of its customers. On each worker the single-machine functions run
unchanged: `event_tables` once per partition, then `customer_aggregates_from_tables` per snapshot.
The per-customer tables are gathered and concatenated, and the population step
(`population_features_from_aggregates`: BG/NBD fit, RFM quintiles, segments) runs once on the whole
snapshot. Rows keep their input order inside a partition, so the result equals the single-machine
`build_features` exactly. Labels come from the same `churn_labels` on each partition's purchases.

Training. `train_lightgbm_dask` fits `lightgbm.DaskLGBMClassifier` with the parameters the local path
chose and returns a plain `lightgbm.Booster` (via `.to_local()`), so it goes into the same
`ChurnModel` as a local fit. LightGBM's Dask interface has no early stopping (LightGBM issues #3712
and #4189; setting it can hang, #7009): it grows `num_boost_round` trees and the best prefix is then
chosen on the validation rows by the rule `lgb.early_stopping` applies locally (first metric:
average precision; stop after `early_stopping_rounds` without improvement).

Cluster. `dask_client()` connects to `DASK_SCHEDULER_ADDRESS` when it is set, else starts a
`LocalCluster` (one single-threaded worker process per core). Dask is the optional extra
`pip install '.[dask]'`; without it the Dask engine fails with a ConfigError saying so.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline.config import FeaturesConfig, TrainConfig
from pipeline.errors import ConfigError, FeatureError
from pipeline.events import Events
from pipeline.features import (
    EventTables,
    customer_aggregates_from_tables,
    event_tables,
    population_features_from_aggregates,
)
from pipeline.features.build import to_pandas_features
from pipeline.labels import churn_labels
from pipeline.snapshot import latest_event_date, snapshot_time

SCHEDULER_ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
INSTALL_HINT = "the Dask engine needs the optional extra: pip install '.[dask]' (dask[distributed])"
PARTITION_COLUMN = "_partition"
ROW_COLUMN = "_row"
# Validation rows per grid step when choosing the best boosting round (see `best_iteration`).
VALIDATION_ROWS_PER_STEP = 50_000


def _distributed() -> Any:
    """The `distributed` module, or ConfigError naming the extra to install."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return distributed


@contextmanager
def dask_client(
    *, address: str | None = None, workers: int | None = None, processes: bool = True
) -> Iterator[Any]:
    """A `distributed.Client`: to `address`, else to $DASK_SCHEDULER_ADDRESS, else to a new LocalCluster.

    The LocalCluster has `workers` single-threaded workers (default: one per core), no dashboard, and
    is closed on exit. `processes=False` runs the workers as threads (fast start-up, for tests).
    """
    distributed = _distributed()
    # The p2p shuffle logs a WARNING for every shuffle it starts and ends: routine, not a problem.
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    address = address or os.environ.get(SCHEDULER_ADDRESS_ENV) or None
    if address:
        with distributed.Client(address) as client:
            yield client
        return
    n_workers = workers or max(1, os.cpu_count() or 1)
    with distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


# --- partitioning by customer -------------------------------------------------------------------


def customer_partition(customer_id: pd.Series, *, partitions: int) -> np.ndarray:
    """Partition number (0..partitions-1, int64) of each customer_id: a stable 64-bit hash modulo `partitions`.

    The hash has a fixed key, so every process and every source maps a customer to the same partition.
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    hashes = pd.util.hash_pandas_object(customer_id.astype("str"), index=False).to_numpy()
    return (hashes % np.uint64(partitions)).astype(np.int64)


def split_events(events: Events, *, partitions: int) -> list[Events]:
    """`events` split into `partitions` Events by `customer_partition`; rows keep their order in each part."""
    pieces: dict[str, list[pd.DataFrame]] = {}
    for name, frame in events.items():
        part = customer_partition(frame["customer_id"], partitions=partitions)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(partitions + 1))
        pieces[name] = [
            frame.take(order[bounds[i] : bounds[i + 1]]).reset_index(drop=True) for i in range(partitions)
        ]
    return [Events(**{name: frames[i] for name, frames in pieces.items()}) for i in range(partitions)]


def _with_partition_keys(frame: pd.DataFrame, *, partitions: int, partition_info: dict | None = None) -> pd.DataFrame:
    """Add `_partition` (customer hash partition) and `_row` (input order: file block, row in block)."""
    block = (partition_info or {}).get("number", 0)
    return frame.assign(
        **{
            PARTITION_COLUMN: customer_partition(frame["customer_id"], partitions=partitions),
            ROW_COLUMN: (np.int64(block) << np.int64(40)) + np.arange(len(frame), dtype=np.int64),
        }
    )


def _events_from_parts(**frames: pd.DataFrame) -> Events:
    """One partition's frames (input order restored, helper columns dropped) as contract-shaped Events."""
    ordered = {
        name: frame.sort_values(ROW_COLUMN, kind="stable").drop(columns=[PARTITION_COLUMN, ROW_COLUMN])
        for name, frame in frames.items()
    }
    return Events.from_frames(**ordered)


def load_partitioned_events(validated_dir: Path, *, partitions: int, client: Any) -> list[Any]:
    """Validated Parquet -> `partitions` futures of `Events`, each holding all events of its customers.

    Reads with dask.dataframe on the workers and shuffles every source on the customer hash, so no
    process ever holds all events. A source without a validated file is an empty frame (as in
    `load_events`). Raises FeatureError when the transactions file is missing.
    """
    import dask
    import dask.dataframe as dd

    validated_dir = Path(validated_dir)
    if not (validated_dir / "transactions.parquet").is_file():
        raise FeatureError(
            f"no validated transactions at {validated_dir / 'transactions.parquet'}: run `churn ingest` first"
        )
    parts: dict[str, list[Any]] = {}
    for f in fields(Events):
        path = validated_dir / f"{f.name}.parquet"
        if not path.is_file():
            continue
        frame = dd.read_parquet(str(path))
        meta = frame._meta.assign(**{PARTITION_COLUMN: np.int64(0), ROW_COLUMN: np.int64(0)})
        keyed = frame.map_partitions(_with_partition_keys, partitions=partitions, meta=meta)
        # Shuffling on the integer partition number puts equal numbers together in every source alike.
        parts[f.name] = keyed.shuffle(PARTITION_COLUMN, npartitions=partitions).to_delayed()
    per_partition = [
        dask.delayed(_events_from_parts)(**{name: delayed[i] for name, delayed in parts.items()})
        for i in range(partitions)
    ]
    return client.compute(per_partition)


# --- features on partitions ---------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionedTables:
    """Futures of `EventTables`, one per customer partition, held on the workers; reused for every snapshot."""

    client: Any
    tables: tuple[Any, ...]
    last_event_date: dt.date | None

    def release(self) -> None:
        """Drop the workers' copies."""
        self.client.cancel(list(self.tables))


def _latest_order_date(events: Events) -> dt.date | None:
    return latest_event_date(events.transactions)


def partitioned_tables(event_partitions: Sequence[Any], *, client: Any) -> PartitionedTables:
    """`event_tables` on each partition (futures of `Events`, or `Events` to scatter), on the workers."""
    distributed = _distributed()
    futures = [client.scatter(p) if isinstance(p, Events) else p for p in event_partitions]
    latest = [d for d in client.gather(client.map(_latest_order_date, futures, pure=False)) if d is not None]
    tables = client.map(event_tables, futures, pure=False)
    # Once the tables exist, the events are released as soon as the caller drops its futures.
    distributed.wait(tables)
    for table in tables:
        if table.status == "error":
            table.result()  # raises the worker's exception (e.g. FeatureError) here
    return PartitionedTables(client=client, tables=tuple(tables), last_event_date=max(latest, default=None))


def load_partitioned_tables(validated_dir: Path, *, partitions: int, client: Any) -> PartitionedTables:
    """Validated Parquet -> `PartitionedTables` (see `load_partitioned_events`)."""
    return partitioned_tables(load_partitioned_events(validated_dir, partitions=partitions, client=client), client=client)


def dask_features(tables: PartitionedTables, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """The `build_features` output for `as_of`, per-customer step on the workers, population step here."""
    snapshot_time(as_of)
    client = tables.client
    futures = client.map(customer_aggregates_from_tables, tables.tables, as_of=as_of, cfg=cfg, pure=False)
    aggregates = pl.concat(client.gather(futures), how="vertical_relaxed")
    return to_pandas_features(population_features_from_aggregates(aggregates, cfg=cfg), cfg=cfg)


def _partition_labels(tables: EventTables, *, as_of: dt.date, lookback_days: int, horizon_days: int) -> pd.DataFrame:
    purchases = tables.orders.lazy().filter("is_purchase").select("customer_id", "ordered_at")
    return churn_labels(purchases, as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days)


def dask_labels(tables: PartitionedTables, *, as_of: dt.date, lookback_days: int, horizon_days: int) -> pd.DataFrame:
    """`churn_labels` for `as_of` over all partitions: customer_id ("str"), churned (int8), sorted by customer_id."""
    client = tables.client
    futures = client.map(
        _partition_labels, tables.tables, as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days,
        pure=False,
    )
    labels = pd.concat(client.gather(futures), ignore_index=True)
    return labels.sort_values("customer_id", kind="stable").reset_index(drop=True)


def build_features_dask(
    events: Events, *, as_of: dt.date, cfg: FeaturesConfig, client: Any, partitions: int | None = None
) -> pd.DataFrame:
    """`build_features(events, as_of=, cfg=)` computed on `client`: equal to it, row for row.

    Input: validated `Events` (uncut). `partitions` defaults to `cfg.dask_partitions`.
    """
    snapshot_time(as_of)
    parts = split_events(events, partitions=partitions or cfg.dask_partitions)
    tables = partitioned_tables(parts, client=client)
    try:
        return dask_features(tables, as_of=as_of, cfg=cfg)
    finally:
        tables.release()


# --- LightGBM on Dask ---------------------------------------------------------------------------

# Parameters LightGBM's Dask interface sets itself (threads per worker) or that only serve local
# early stopping, which `best_iteration` replaces.
LOCAL_ONLY_PARAMS = ("num_threads", "metric", "first_metric_only")


def best_iteration(booster: Any, matrix: np.ndarray, labels: np.ndarray, *, patience: int, step: int = 1) -> int:
    """The boosting round early stopping on validation average precision would keep.

    Rounds are scored on a grid of `step` (1 = every round, as `lgb.early_stopping`); the scan stops
    `patience` rounds after the best. Cost: one pass over all trees, plus one average precision per step.
    """
    from sklearn.metrics import average_precision_score

    total = booster.current_iteration()
    raw = np.zeros(len(labels))
    best_score, best_round = -math.inf, total
    for start in range(0, total, step):
        rounds = min(step, total - start)
        raw += booster.predict(matrix, raw_score=True, start_iteration=start, num_iteration=rounds)
        score = average_precision_score(labels, raw)  # a ranking metric: raw scores rank like probabilities
        if score > best_score:
            best_score, best_round = score, start + rounds
        elif start + rounds - best_round >= patience:
            break
    return best_round


def train_lightgbm_dask(
    train_matrix: np.ndarray,
    y_train: np.ndarray,
    validation_matrix: np.ndarray,
    y_validation: np.ndarray,
    *,
    params: dict[str, Any],
    columns: Any,
    settings: TrainConfig,
    client: Any | None = None,
) -> Any:
    """`pipeline.train.fit_booster` on Dask: same inputs, returns a plain `lgb.Booster` cut at its best round.

    `columns` is a `pipeline.train.FeatureColumns` (names and categorical features). `client` defaults
    to the current `distributed` client (e.g. one opened with `dask_client()` around training).
    Training rows are split into one chunk per worker; `num_boost_round` trees are grown (no early
    stopping on Dask), then cut by `best_iteration` on the validation rows.
    """
    import dask.array as da
    import lightgbm as lgb

    distributed = _distributed()
    client = client or distributed.default_client()
    workers = max(1, len(client.scheduler_info()["workers"]))
    chunk = max(1, math.ceil(len(y_train) / workers))
    features = da.from_array(np.ascontiguousarray(train_matrix, dtype="float64"), chunks=(chunk, train_matrix.shape[1]))
    target = da.from_array(np.asarray(y_train, dtype="float64"), chunks=(chunk,))
    dask_params = {key: value for key, value in params.items() if key not in LOCAL_ONLY_PARAMS}
    classifier = lgb.DaskLGBMClassifier(client=client, n_estimators=settings.num_boost_round, **dask_params)
    with warnings.catch_warnings():
        # Dask sets the threads per worker itself and says so for the sklearn default n_jobs.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        classifier.fit(features, target, feature_name=list(columns.all), categorical_feature=list(columns.categorical))
    booster = classifier.to_local().booster_
    step = max(1, len(y_validation) // VALIDATION_ROWS_PER_STEP)
    best = best_iteration(
        booster, validation_matrix, np.asarray(y_validation), patience=settings.early_stopping_rounds, step=step
    )
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
