"""The Dask path: the same feature and LightGBM code, run on a `dask.distributed` cluster.

Features. Every source is split by a stable hash of `customer_id` into partitions, so that each
partition holds *all* the events of its customers. On each worker the single-machine functions run
unchanged: `event_tables` once per partition (where the events' UTC instants become business time,
`FeaturesConfig.timezone`), then `customer_aggregates_from_tables` per snapshot.
The per-customer tables are gathered and concatenated, and the population step
(`population_features_from_aggregates`: BG/NBD fit, RFM quintiles, segments) runs once on the whole
snapshot. Rows keep their input order inside a partition, so the result equals the single-machine
`build_features` exactly. Labels come from the same `churn_labels` on each partition's purchases.

Training. `train_lightgbm_dask` fits `lightgbm.DaskLGBMClassifier` with the parameters the local path
chose and returns a plain `lightgbm.Booster` (via `.to_local()`), so it goes into the same
`ChurnModel` as a local fit. LightGBM's Dask interface has no early stopping (LightGBM issues #3712
and #4189; setting it can hang, #7009): it grows `num_boost_round` trees and the best prefix is then
chosen on the validation rows by the rule `lgb.early_stopping` applies locally (first metric:
average precision; stop after `early_stopping_rounds` without improvement). Training rows are
partitioned by customer (`customer_partition`, one partition per worker), as the features are. The
same fit serves the rolling-origin folds (early stopped as above) and the refit on all training rows
with the rounds the folds chose (no validation rows: every round is kept).

`train_models_dask` is `pipeline.train.train_models` with that fit: the same split, baselines,
calibration and metrics, so the runner logs, registers and bundles it exactly as a local model.
The hyper-parameter search is skipped on Dask (`dask_train_settings`: one trial, the default
configuration): without early stopping every Dask trial grows all `num_boost_round` trees, and a
local search would need the training table on one machine, which is what the Dask engine is for.

Cluster. `dask_client()` connects to `DASK_SCHEDULER_ADDRESS` when it is set, else starts a
`LocalCluster` (one single-threaded worker process per core). Dask is the optional extra
`pip install '.[dask]'`; without it the Dask engine fails with a ConfigError saying so.

Stalls. Every wait for the features' tasks goes through `gathered`, which never waits forever: with
distributed 2026.8.0 a LocalCluster of worker processes sometimes kept tasks "processing" on a worker
that ran nothing, and `Client.gather` waited forever (about one test run in a dozen; killing the
worker made the scheduler run them again). A worker that holds the same tasks without executing any
for `features.dask_stall_seconds` is restarted once; a second stall is a FeatureError naming the setting.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline.config import DASK_STALL_SECONDS, FeaturesConfig, TrainConfig
from pipeline.errors import ConfigError, FeatureError
from pipeline.events import Events
from pipeline.features import (
    EventTables,
    customer_aggregates_from_tables,
    event_tables,
)
from pipeline.features.build import population_features_and_fits, to_pandas_features
from pipeline.labels import churn_labels, churned_who_came_back
from pipeline.progress import get_logger
from pipeline.snapshot import latest_event_date, snapshot_time

if TYPE_CHECKING:
    from pipeline.evaluate import RetentionSettings
    from pipeline.split import TimeSplit
    from pipeline.train import FeatureSpecLike, TrainResult

SCHEDULER_ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
INSTALL_HINT = "the Dask engine needs the optional extra: pip install '.[dask]' (dask[distributed])"
PARTITION_COLUMN = "_partition"
ROW_COLUMN = "_row"
# Validation rows per grid step when choosing the best boosting round (see `best_iteration`).
VALIDATION_ROWS_PER_STEP = 50_000
STALL_SETTING = "features.dask_stall_seconds"


def _distributed() -> Any:
    """The `distributed` module, or ConfigError naming the extra to install."""
    try:
        import distributed  # the optional `dask` extra: imported only when the Dask engine runs
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return distributed


def require_dask(setting: str) -> None:
    """Raise ConfigError naming `setting` (e.g. "train.engine") when the Dask extra is not installed."""
    try:
        _distributed()
        import dask.array  # noqa: F401
    except (ConfigError, ImportError):
        raise ConfigError(f"{setting}=dask: {INSTALL_HINT}; or set {setting}=local") from None


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
        n_workers=n_workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        # The scheduler's HTTP routes (health, metrics) still listen: on a free port, not on 8787,
        # which another cluster on the machine may hold ("Port 8787 is already in use" warnings).
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def idle_workers(processing: Mapping[str, Sequence[Any]], executing: Mapping[str, Mapping[Any, Any]]) -> dict[str, frozenset]:
    """The workers that have tasks processing (`Client.processing()`: worker -> keys) but execute none
    (`Client.call_stack()`: worker -> executing key -> stack), each with the keys it holds."""
    return {worker: frozenset(keys) for worker, keys in processing.items() if keys and not executing.get(worker)}


def gathered(futures: Sequence[Any], *, client: Any, stall_seconds: float = DASK_STALL_SECONDS) -> list[Any]:
    """`client.gather(futures)`, but a stalled cluster is restarted once, then an error instead of a wait forever.

    Stalled: a worker keeps the same tasks processing without executing any for `stall_seconds` (see the
    module docstring). Such workers are restarted (`Client.restart_workers`: the scheduler runs their tasks
    again and recomputes what they held); FeatureError naming `features.dask_stall_seconds` when it happens
    again, when a stalled worker has no nanny to restart it, or when the cluster has no workers for that long.
    Raises the first failed task's error.
    """
    distributed = _distributed()
    futures = list(futures)
    poll = min(5.0, stall_seconds / 4)
    held: dict[str, tuple[frozenset, float]] = {}  # idle worker -> (its tasks, since when it holds them idle)
    restarted = False
    no_workers_since: float | None = None
    while True:
        try:
            with client.as_current():  # `wait` asks the current client, which need not be the default one
                distributed.wait(futures, timeout=poll)
        except TimeoutError:
            pass
        else:
            return client.gather(futures)
        now = time.monotonic()
        processing = client.processing()  # every worker of the cluster, with the tasks it holds
        if not processing:  # they died (or never joined): tasks wait for workers
            no_workers_since = no_workers_since or now
            if now - no_workers_since >= stall_seconds:
                raise FeatureError(f"the Dask cluster has had no workers for {stall_seconds:g} s ({STALL_SETTING}): "
                                   "see the workers' logs for why they stopped")
            continue
        no_workers_since = None
        idle = idle_workers(processing, client.call_stack())
        held = {worker: held[worker] if worker in held and held[worker][0] == keys else (keys, now)
                for worker, keys in idle.items()}
        stalled = sorted(worker for worker, (_, since) in held.items() if now - since >= stall_seconds)
        if not stalled:
            continue
        workers = client.scheduler_info()["workers"]
        tasks = sum(len(held[worker][0]) for worker in stalled)
        problem = (f"the Dask workers {', '.join(stalled)} held {tasks} task(s) for {stall_seconds:g} s without running "
                   f"them ({STALL_SETTING})")
        if restarted or not all(workers.get(worker, {}).get("nanny") for worker in stalled):
            raise FeatureError(f"{problem}{', also after a restart' if restarted else ' and cannot be restarted'}: "
                               "see the workers' logs (memory?), or raise the setting if tasks there wait that "
                               "long for data")
        get_logger().warning("%s: restarting them", problem)
        try:
            client.restart_workers(stalled)
        except Exception as exc:  # noqa: BLE001 - any failure to restart leaves the stall: say so, with its cause
            raise FeatureError(f"{problem} and restarting them failed ({exc})") from exc
        restarted, held = True, {}


# --- partitioning by customer -------------------------------------------------------------------


def customer_partition(customer_id: pd.Series, *, partitions: int) -> np.ndarray:
    """Partition number (0..partitions-1, int64) of each customer_id: a stable 64-bit hash modulo `partitions`.

    The hash has a fixed key, so every process and every source maps a customer to the same partition.
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    hashes = pd.util.hash_pandas_object(customer_id.astype("str"), index=False).to_numpy()
    return (hashes % np.uint64(partitions)).astype(np.int64)


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
        .reset_index(drop=True)
        for name, frame in frames.items()
    }
    return Events.from_frames(**ordered)


def load_partitioned_events(validated_dir: Path, *, partitions: int, client: Any) -> list[Any]:
    """Validated Parquet -> `partitions` futures of `Events`, each holding all events of its customers.

    Reads with dask.dataframe on the workers and shuffles every source on the customer hash, so no
    process ever holds all events. A source without a validated file is an empty frame (as in
    `load_events`). Raises FeatureError when the transactions file is missing.
    """
    import dask  # the optional `dask` extra (see `_distributed`)
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
        # Output partition i holds partition number i, in every source alike. (A shuffle on the number hashed the
        # numbers 0..n-1 again: two numbers shared an output and others stayed empty, 0 and 768 rows of 3,000.)
        divisions = [*range(partitions), partitions - 1]
        parts[f.name] = keyed.set_index(PARTITION_COLUMN, divisions=divisions, drop=False).to_delayed()
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
    stall_seconds: float = DASK_STALL_SECONDS  # see `gathered`

    def release(self) -> None:
        """Drop the workers' copies."""
        self.client.cancel(list(self.tables))


def _latest_order_date(events: Events, *, timezone: str) -> dt.date | None:
    return latest_event_date(events.transactions, timezone=timezone)


def partitioned_tables(
    event_partitions: Sequence[Any], *, client: Any, timezone: str = "UTC", attributes: Sequence[str] = (),
    stall_seconds: float = DASK_STALL_SECONDS,
) -> PartitionedTables:
    """`event_tables` on each partition (futures of `Events`, UTC instants), on the workers, on the days of the
    business time zone `timezone`, keeping the customers' attribute columns `attributes`; waits as `gathered`."""
    futures = list(event_partitions)
    latest = [d for d in gathered(client.map(_latest_order_date, futures, timezone=timezone, pure=False),
                                  client=client, stall_seconds=stall_seconds) if d is not None]
    tables = client.map(event_tables, futures, timezone=timezone, attributes=list(attributes), pure=False)
    # Once the tables exist, the events are released as soon as the caller drops its futures. The tables stay
    # on the workers: only their customer counts come back (raises the worker's exception, e.g. FeatureError, here).
    gathered(client.map(_customers, tables, pure=False), client=client, stall_seconds=stall_seconds)
    return PartitionedTables(client=client, tables=tuple(tables), last_event_date=max(latest, default=None),
                             stall_seconds=stall_seconds)


def _customers(tables: EventTables) -> int:
    return tables.customers


def load_partitioned_tables(
    validated_dir: Path, *, partitions: int, client: Any, timezone: str = "UTC", attributes: Sequence[str] = (),
    stall_seconds: float = DASK_STALL_SECONDS,
) -> PartitionedTables:
    """Validated Parquet -> `PartitionedTables` on the days of `timezone`, with the customers' attribute columns
    `attributes` (see `load_partitioned_events`; FeatureError when the validated customers lack one, or when the
    cluster stalls: `gathered`)."""
    return partitioned_tables(load_partitioned_events(validated_dir, partitions=partitions, client=client),
                              client=client, timezone=timezone, attributes=attributes, stall_seconds=stall_seconds)


def dask_features(tables: PartitionedTables, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """The `build_features` output for `as_of`, per-customer step on the workers, population step here."""
    return dask_features_and_fits(tables, as_of=as_of, cfg=cfg)[0]


def dask_features_and_fits(
    tables: PartitionedTables, *, as_of: dt.date, cfg: FeaturesConfig
) -> tuple[pd.DataFrame, list[dict]]:
    """`dask_features`, and the records of the snapshot's BTYD fits (`pipeline.features.btyd.fit_record`)."""
    snapshot_time(as_of)
    client = tables.client
    futures = client.map(customer_aggregates_from_tables, tables.tables, as_of=as_of, cfg=cfg, pure=False)
    aggregates = pl.concat(gathered(futures, client=client, stall_seconds=tables.stall_seconds), how="vertical_relaxed")
    features, fits = population_features_and_fits(aggregates, cfg=cfg, as_of=as_of)
    return to_pandas_features(features, cfg=cfg), fits


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
    return _in_customer_order(gathered(futures, client=client, stall_seconds=tables.stall_seconds))


def _in_customer_order(labels: list[pd.DataFrame]) -> pd.DataFrame:
    """The partitions' labels as one frame sorted by customer_id, as `churn_labels_from_partitions` gives them."""
    return pd.concat(labels, ignore_index=True).sort_values("customer_id", kind="stable").reset_index(drop=True)


def _partition_labels_and_came_back(
    tables: EventTables, *, as_of: dt.date, lookback_days: int, horizon_days: int, left_out: list[str]
) -> tuple[pd.DataFrame, tuple[int, int]]:
    labels = _partition_labels(tables, as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days)
    later = _partition_labels(tables, as_of=as_of + dt.timedelta(days=2 * horizon_days), lookback_days=horizon_days,
                              horizon_days=0)
    return labels, churned_who_came_back(labels, later["customer_id"], left_out)


def dask_labels_and_came_back(
    tables: PartitionedTables, *, as_of: dt.date, lookback_days: int, horizon_days: int, came_back: bool,
    left_out: list[str],
) -> tuple[pd.DataFrame, tuple[int, int] | None]:
    """`labels_and_came_back` over all partitions of the cluster: (`dask_labels`; with `came_back`, the customers
    labelled churned and, of them, those who purchased in the horizon after their label window, without the
    customers `left_out`), in one pass."""
    if not came_back:
        return dask_labels(tables, as_of=as_of, lookback_days=lookback_days, horizon_days=horizon_days), None
    futures = tables.client.map(
        _partition_labels_and_came_back, tables.tables, as_of=as_of, lookback_days=lookback_days,
        horizon_days=horizon_days, left_out=left_out, pure=False,
    )
    parts = gathered(futures, client=tables.client, stall_seconds=tables.stall_seconds)
    labels = _in_customer_order([labels for labels, _ in parts])
    return labels, (sum(c for _, (c, _) in parts), sum(b for _, (_, b) in parts))


# --- LightGBM on Dask ---------------------------------------------------------------------------

# Parameters LightGBM's Dask interface sets itself (threads per worker) or that only serve local
# early stopping, which `best_iteration` replaces.
LOCAL_ONLY_PARAMS = ("num_threads", "metric", "first_metric_only")


def best_iteration(booster: Any, matrix: np.ndarray, labels: np.ndarray, *, patience: int, step: int = 1) -> int:
    """The boosting round early stopping on validation average precision would keep.

    Rounds are scored on a grid of `step` (1 = every round, as `lgb.early_stopping`); the scan stops
    `patience` rounds after the best. Cost: one pass over all trees, plus one average precision per step.
    """
    # scikit-learn, LightGBM and pipeline.train (~2-3 s each) are imported in the training functions only:
    # `churn features` imports this module for the Dask feature engine.
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


def _chunks_on_workers(
    matrix: np.ndarray, labels: np.ndarray, *, part: np.ndarray, workers: list[str], client: Any
) -> tuple[Any, Any]:
    """Dask arrays of `matrix` and `labels` whose chunk i (the rows with `part == i`) is held by `workers[i]`.

    Placing every chunk on a known worker (rather than where the scheduler happens to run it) makes the
    Dask fit repeatable: LightGBM's distributed bins and ranks depend on which worker holds which rows.
    Empty partitions get no chunk (a LightGBM worker needs rows).
    """
    import dask.array as da  # the optional `dask` extra

    xs, ys = [], []
    for number, worker in enumerate(workers):
        rows = np.flatnonzero(part == number)
        if len(rows) == 0:
            continue
        # hash=False: equal chunks of two partitions must stay two chunks, each on its own worker.
        x, y = client.scatter([matrix[rows], labels[rows]], workers=[worker], hash=False)
        xs.append(da.from_delayed(x, shape=(len(rows), matrix.shape[1]), dtype=matrix.dtype))
        ys.append(da.from_delayed(y, shape=(len(rows),), dtype=labels.dtype))
    return da.concatenate(xs), da.concatenate(ys)


def train_lightgbm_dask(
    train_matrix: np.ndarray,
    y_train: np.ndarray,
    validation_matrix: np.ndarray | None,
    y_validation: np.ndarray | None,
    *,
    params: dict[str, Any],
    columns: Any,
    cfg: TrainConfig,
    client: Any | None = None,
    customer_ids: pd.Series | None = None,
) -> Any:
    """`pipeline.train.fit_booster` on Dask: same inputs, returns a plain `lgb.Booster` cut at its best round.

    `columns` is a `pipeline.train.FeatureColumns` (names and categorical features). `client` defaults
    to the current `distributed` client (e.g. one opened with `dask_client()` around training).
    Training rows go into one chunk per worker (workers sorted by address; chunk i on worker i): by
    `customer_partition` of `customer_ids` (the customer of each training row, in row order) when
    given, else in equal consecutive blocks. With `seed` and `deterministic` in `params`, the same
    inputs on the same workers give the same booster.
    `num_boost_round` trees are grown (no early stopping on Dask), then cut by `best_iteration` on
    the validation rows; without validation rows (a refit with a chosen number of rounds) all are kept.
    """
    import lightgbm as lgb  # training only (see `best_iteration`)

    distributed = _distributed()
    client = client or distributed.default_client()
    workers = sorted(client.scheduler_info()["workers"])
    train_matrix = np.ascontiguousarray(train_matrix, dtype="float64")
    y_train = np.asarray(y_train, dtype="float64")
    if customer_ids is None:
        part = np.arange(len(y_train)) * len(workers) // max(1, len(y_train))
    elif len(customer_ids) != len(y_train):
        raise ValueError(f"customer_ids has {len(customer_ids)} rows, the training matrix {len(y_train)}")
    else:
        part = customer_partition(customer_ids, partitions=len(workers))
    features, target = _chunks_on_workers(train_matrix, y_train, part=part, workers=workers, client=client)
    dask_params = {key: value for key, value in params.items() if key not in LOCAL_ONLY_PARAMS}
    classifier = lgb.DaskLGBMClassifier(client=client, n_estimators=cfg.num_boost_round, **dask_params)
    with warnings.catch_warnings():
        # Dask sets the threads per worker itself and says so for the sklearn default n_jobs.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        classifier.fit(features, target, feature_name=list(columns.all), categorical_feature=list(columns.categorical))
    booster = classifier.to_local().booster_
    if validation_matrix is None or y_validation is None:
        return lgb.Booster(model_str=booster.model_to_string())
    step = max(1, len(y_validation) // VALIDATION_ROWS_PER_STEP)
    best = best_iteration(
        booster, validation_matrix, np.asarray(y_validation), patience=cfg.early_stopping_rounds, step=step
    )
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def dask_train_settings(cfg: TrainConfig) -> TrainConfig:
    """`cfg` as the Dask engine runs it: no hyper-parameter search (one trial, the default configuration)."""
    return cfg.model_copy(update={"search_trials": 1})


def train_models_dask(
    features: pd.DataFrame,
    *,
    specs: Sequence[FeatureSpecLike],
    split: TimeSplit,
    cfg: TrainConfig,
    retention: RetentionSettings,
    client: Any,
) -> TrainResult:
    """`pipeline.train.train_models` with LightGBM fitted on `client` (see `train_lightgbm_dask`).

    Same inputs and `TrainResult` as `train_models` (same split, baselines, calibration, metrics); the
    booster is a plain local one, so the model is saved and scored like a local one. The search is
    skipped (`dask_train_settings`).
    """
    from pipeline.train import train_models  # training only (see `best_iteration`)

    fit = partial(train_lightgbm_dask, client=client)
    return train_models(
        features, specs=specs, split=split, cfg=dask_train_settings(cfg), retention=retention, fit=fit
    )
