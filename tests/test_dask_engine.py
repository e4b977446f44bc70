"""The Dask path gives the single-machine features exactly, and a model as good as the local one.

Runs on a LocalCluster of 2 thread workers (processes=False: starts in about a second). Skipped when
the optional `dask[distributed]` extra is not installed.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

pytest.importorskip("distributed")
pytest.importorskip("dask.dataframe")

from pipeline.dask_engine import (  # noqa: E402
    best_iteration,
    customer_partition,
    dask_client,
    dask_features,
    dask_labels,
    gathered,
    idle_workers,
    load_partitioned_tables,
    train_lightgbm_dask,
)
from pipeline.errors import ConfigError, FeatureError  # noqa: E402
from pipeline.events import load_events  # noqa: E402
from pipeline.labels import labels_and_came_back, next_window_covered  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, processes=False) as dask_test_client:
        yield dask_test_client


def test_customer_partition_is_stable_and_in_range():
    ids = pd.Series(["C1", "C2", "C3", "C1", "C2"], dtype="str")
    parts = customer_partition(ids, partitions=3)
    assert parts.dtype == np.int64
    assert set(parts) <= {0, 1, 2}
    assert parts[0] == parts[3] and parts[1] == parts[4]
    # Same id, same partition, whatever the frame it comes in (another source, another process).
    assert customer_partition(pd.Series(["C3"], dtype="str"), partitions=3)[0] == parts[2]
    with pytest.raises(ValueError, match="partitions must be at least 1"):
        customer_partition(ids, partitions=0)


def test_each_partition_holds_the_customers_of_its_number(tmp_path, client):
    """Partition i holds the customers whose `customer_partition` is i, in every source: none is left empty while
    another holds two numbers' customers (a shuffle on the number hashed it again: 0 and 768 of 3,000 rows)."""
    from pipeline.dask_engine import load_partitioned_events

    customers = pd.Series([f"c{i}" for i in range(1000)], dtype="str")
    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(3000)], "customer_id": pd.concat([customers] * 3),
                           "ordered_at": pd.Timestamp("2024-01-01", tz="UTC"), "amount": 1.0})
    orders.reset_index(drop=True).to_parquet(tmp_path / "transactions.parquet")
    events = client.gather(load_partitioned_events(tmp_path, partitions=8, client=client))
    expected = customer_partition(customers, partitions=8)
    for number, part in enumerate(events):
        held = set(part.transactions["customer_id"])
        assert held == set(customers[expected == number]) and len(part.transactions) == 3 * len(held)


@pytest.mark.slow
@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
def test_dask_tables_from_validated_files_give_the_same_features_and_labels(demo_ingested, client, zone):
    from pipeline.features import event_tables, features_from_tables
    from pipeline.labels import churn_labels
    from pipeline.snapshot import latest_event_date

    cfg = demo_ingested.features.model_copy(update={"timezone": zone})
    events = load_events(demo_ingested.validated_dir)
    tables = event_tables(events, timezone=zone)
    purchases = tables.orders.lazy().filter("is_purchase").select("customer_id", "ordered_at")
    partitioned = load_partitioned_tables(demo_ingested.validated_dir, partitions=4, client=client, timezone=zone)
    try:
        assert partitioned.last_event_date == latest_event_date(events.transactions, timezone=zone)
        for as_of in (dt.date(2024, 6, 1), dt.date(2025, 9, 1)):
            assert_frame_equal(
                dask_features(partitioned, as_of=as_of, cfg=cfg),
                features_from_tables(tables, as_of=as_of, cfg=cfg),
                check_exact=True,
            )
            assert_frame_equal(
                dask_labels(partitioned, as_of=as_of, lookback_days=cfg.lookback_days, horizon_days=cfg.horizon_days),
                churn_labels(purchases, as_of=as_of, lookback_days=cfg.lookback_days, horizon_days=cfg.horizon_days),
            )
    finally:
        partitioned.release()


def _tickets_workspace(folder, *, customers: int = 60, seed: int = 8):
    """Validated files of a shop whose help desk export has no resolution times: a third of its tickets are resolved
    by status, known from the export's newest time (2024-05-01 12:00). Returns that time."""
    from pipeline.events import Events

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-06-01", tz="UTC")
    n = customers * 6
    ordered = start + pd.to_timedelta(rng.integers(0, 330 * 24, n), unit="h")
    transactions = pd.DataFrame({"order_id": [f"o{i}" for i in range(n)],
                                 "customer_id": [f"c{i:03d}" for i in rng.integers(0, customers, n)],
                                 "ordered_at": ordered, "amount": np.round(rng.uniform(5, 80, n), 2)})
    m = customers * 2
    opened = start + pd.to_timedelta(rng.integers(0, 330 * 24, m), unit="h")
    export = opened.max()
    by_status = rng.uniform(0, 1, m) < 0.35
    tickets = pd.DataFrame({
        "ticket_id": [f"t{i}" for i in range(m)], "customer_id": [f"c{i:03d}" for i in rng.integers(0, customers, m)],
        "opened_at": opened,
        "closed_at": (opened + pd.to_timedelta(rng.integers(1, 200, m), unit="h")).where(~by_status),
        "resolved": pd.array(by_status | (rng.uniform(0, 1, m) < 0.7), dtype="boolean"),
        "status_known_at": pd.Series(export, index=range(m)).where(by_status),
    })
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in Events.from_frames(transactions=transactions, support_tickets=tickets).items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return export


@pytest.mark.slow
def test_every_engine_reads_tickets_resolved_by_status_alike_and_old_files_without_the_column(tmp_path, client):
    """Local (pandas Events), polars runner (read_validated) and Dask give the same ticket features, with
    status_known_at and from a file written before it existed (read as all null)."""
    from pipeline.config import FeaturesConfig
    from pipeline.features import event_tables, event_tables_from_frames, features_from_tables
    from pipeline.run.features import read_validated, validated_coverage

    export = _tickets_workspace(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    (old / "transactions.parquet").write_bytes((tmp_path / "new" / "transactions.parquet").read_bytes())
    pd.read_parquet(tmp_path / "new" / "support_tickets.parquet").drop(columns="status_known_at").to_parquet(
        old / "support_tickets.parquet", index=False)
    before, after = export.date(), export.date() + dt.timedelta(days=1)  # the export's time is 12:00 on its day
    cfg = FeaturesConfig(snapshots={"dates": [after]}, btyd=False)
    found = {}
    for folder in (tmp_path / "new", old):
        local = event_tables(load_events(folder))
        runner = event_tables_from_frames(read_validated(folder))
        partitioned = load_partitioned_tables(folder, partitions=3, client=client)
        try:
            for as_of in (before, after):
                expected = features_from_tables(local, as_of=as_of, cfg=cfg)
                assert_frame_equal(features_from_tables(runner, as_of=as_of, cfg=cfg), expected, check_exact=True)
                assert_frame_equal(dask_features(partitioned, as_of=as_of, cfg=cfg), expected, check_exact=True)
                found[folder.name, as_of] = expected.set_index("customer_id")["open_tickets"]
        finally:
            partitioned.release()
        assert validated_coverage(folder)["support_tickets"] == ["customer_id", "opened_at", "closed_at", "resolved"]
    tickets = pd.read_parquet(tmp_path / "new" / "support_tickets.parquet")
    by_status = tickets.loc[tickets["status_known_at"].notna()].groupby("customer_id").size()
    # On the export's day they are open in both; after it, open only where the file does not say when it was taken.
    assert_series_equal(found["new", before], found["old", before])
    gone = found["old", after] - found["new", after]
    assert gone.sum() > 0
    assert_series_equal(gone, by_status.reindex(gone.index, fill_value=0).astype(float), check_names=False)


def test_load_partitioned_tables_without_ingest_names_the_command(tmp_path, client):
    with pytest.raises(FeatureError, match="run `churn ingest` first"):
        load_partitioned_tables(tmp_path, partitions=2, client=client)


def test_event_tables_survive_a_trip_to_another_process():
    """Dask moves a partition's tables between workers by pickling them: a lock inside them made that fail, and
    distributed then waited forever for the task that needed them (a test run in a dozen hung)."""
    import pickle

    from pipeline.config import FeaturesConfig
    from pipeline.features import event_tables, features_from_tables
    from test_features_pit import AS_OF, synthetic_events

    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    tables = event_tables(synthetic_events(100, seed=2))
    expected = features_from_tables(tables, as_of=AS_OF, cfg=cfg)
    assert_frame_equal(features_from_tables(pickle.loads(pickle.dumps(tables)), as_of=AS_OF, cfg=cfg), expected,
                       check_exact=True)


def test_dask_weighs_event_tables_by_their_arrays():
    """The scheduler keeps a partition's tasks where its tables are unless moving them is cheap: their size must be
    their data's (it was 56 bytes, an empty object's, so tasks were sent to the other worker with the tables)."""
    import pickle

    from dask.sizeof import sizeof

    from pipeline.features import event_tables
    from test_features_pit import synthetic_events

    tables = event_tables(synthetic_events(100, seed=2))
    assert 0.5 < sizeof(tables) / len(pickle.dumps(tables)) < 1.5


@pytest.mark.slow
def test_a_task_placed_on_another_worker_than_its_tables_gets_them(tmp_path):
    """The scheduler may run a snapshot's task on the worker that does not hold the partition's tables (it is idle):
    the tables are then sent over, and the result is the one computed where they are."""
    from pipeline.config import FeaturesConfig
    from pipeline.features import customer_aggregates_from_tables
    from test_features_pit import AS_OF, synthetic_events

    for name, frame in synthetic_events(100, seed=2).items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    with dask_client(workers=2) as client:  # worker processes: what moves between them is pickled
        partitioned = load_partitioned_tables(tmp_path, partitions=4, client=client, stall_seconds=5)
        workers = sorted(client.scheduler_info()["workers"])
        holders = client.who_has(list(partitioned.tables))
        elsewhere = [next(w for w in workers if w not in holders[table.key]) for table in partitioned.tables]
        moved = [client.submit(customer_aggregates_from_tables, table, as_of=AS_OF, cfg=cfg, workers=[worker],
                               pure=False) for table, worker in zip(partitioned.tables, elsewhere)]
        in_place = client.map(customer_aggregates_from_tables, partitioned.tables, as_of=AS_OF, cfg=cfg, pure=False)
        got, expected = gathered(moved, client=client, stall_seconds=5), gathered(in_place, client=client)
    assert sum(part.height for part in got) == 87  # the customers active before AS_OF
    assert all(part.equals(same) for part, same in zip(got, expected))


def test_idle_workers_are_those_with_tasks_processing_and_none_executing():
    processing = {"tcp://a": ("x", "y"), "tcp://b": ("z",), "tcp://c": ()}
    assert idle_workers(processing, {}) == {"tcp://a": frozenset({"x", "y"}), "tcp://b": frozenset({"z"})}
    assert idle_workers(processing, {"tcp://a": {"x": ["stack"]}, "tcp://b": {}}) == {"tcp://b": frozenset({"z"})}


def _wait_for(gate: str) -> None:
    while not Path(gate).exists():
        time.sleep(0.05)


def _plus_one(value: int) -> int:
    return value + 1


def _pause(dask_worker) -> None:
    from distributed.core import Status

    dask_worker.status = Status.paused  # as the worker's memory monitor does


def _stalled_task(client, gate: Path):
    """A task the scheduler has processing on a worker that runs nothing (a paused one): the stall's signature."""
    worker = sorted(client.scheduler_info()["workers"])[0]
    blocker = client.submit(_wait_for, str(gate), workers=[worker], pure=False)  # runs until `gate` exists
    while not client.call_stack().get(worker):
        time.sleep(0.05)
    task = client.submit(_plus_one, 1, workers=[worker], allow_other_workers=True, pure=False)
    while task.key not in client.processing()[worker]:
        time.sleep(0.05)
    client.run(_pause, workers=[worker])
    gate.touch()
    blocker.result()
    assert idle_workers(client.processing(), client.call_stack()) == {worker: frozenset({task.key})}
    return task


@pytest.mark.slow
def test_a_worker_that_holds_tasks_without_running_them_is_restarted_and_the_results_come(caplog, tmp_path):
    import distributed

    # memory_limit=0: no memory monitor, which would resume the paused worker by itself
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                                  dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        task = _stalled_task(client, tmp_path / "gate")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pipeline"):
            assert gathered([task], client=client, stall_seconds=2) == [2]
        assert time.monotonic() - started < 60
    assert "held 1 task(s) for 2 s without running them (features.dask_stall_seconds): restarting them" in caplog.text


def test_a_stalled_worker_that_cannot_be_restarted_is_an_error_naming_the_setting(tmp_path):
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, memory_limit=0,
                                  dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        task = _stalled_task(client, tmp_path / "gate")
        with pytest.raises(FeatureError, match=r"the Dask workers \S+ held 1 task\(s\) for 1 s without running them "
                                               r"\(features\.dask_stall_seconds\) and cannot be restarted: see the "
                                               r"workers' logs \(memory\?\), or raise the setting"):
            gathered([task], client=client, stall_seconds=1)


def test_a_cluster_without_workers_is_an_error_naming_the_setting():
    import distributed

    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": ":0"}) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        with pytest.raises(FeatureError, match=r"the Dask cluster has had no workers for 1 s "
                                               r"\(features\.dask_stall_seconds\): see the workers' logs"):
            gathered([client.submit(_plus_one, 1, pure=False)], client=client, stall_seconds=1)


def test_dask_engine_without_the_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install '\.\[dask\]'"):
        with dask_client():
            pass


@pytest.fixture(scope="module")
def training_matrices(demo_features):
    """Train/validation/test matrices and the default LightGBM parameters of the demo snapshot table."""
    from pipeline.features.registry import feature_specs
    from pipeline.features.store import read_snapshots
    from pipeline.model import CategoryEncoder, feature_matrix
    from pipeline.split import LABEL_COLUMN, fold_frames, labelled_snapshots, split_frame, time_split
    from pipeline.train import lightgbm_params, search_candidates, select_feature_columns

    cfg = demo_features
    features = read_snapshots(cfg.features_dir)
    split = time_split(labelled_snapshots(features), horizon_days=cfg.features.horizon_days)
    fold_train, fold_validation = fold_frames(features, split)[0]
    parts = {"train": fold_train, "validation": fold_validation, "test": split_frame(features, split)["test"]}
    columns, _ = select_feature_columns(parts["train"], feature_specs(cfg.features))
    encoder = CategoryEncoder.fit(parts["train"], columns.categorical)
    matrices = {name: feature_matrix(part, feature_names=columns.all, encoder=encoder) for name, part in parts.items()}
    labels = {name: part[LABEL_COLUMN].to_numpy("float64") for name, part in parts.items()}
    settings = cfg.train.model_copy(update={"num_boost_round": 400})
    candidate = search_candidates(trials=1, seed=settings.seed, max_depth=settings.max_depth)[0]
    params = lightgbm_params(
        candidate,
        scale_pos_weight=float((labels["train"] == 0).sum() / labels["train"].sum()),
        cfg=settings,
        training_rows=len(labels["train"]),
    )
    return matrices, labels, columns, params, settings


@pytest.mark.slow
def test_dask_trained_model_scores_within_001_roc_auc_of_the_local_one(training_matrices, client):
    from sklearn.metrics import roc_auc_score

    from pipeline.train import fit_booster

    matrices, labels, columns, params, settings = training_matrices
    fit_args = (matrices["train"], labels["train"], matrices["validation"], labels["validation"])
    local = fit_booster(*fit_args, params=params, columns=columns, cfg=settings)
    on_dask = train_lightgbm_dask(*fit_args, params=params, columns=columns, cfg=settings, client=client)
    assert 1 <= on_dask.current_iteration() < settings.num_boost_round  # cut at its best round
    assert on_dask.feature_name() == columns.all
    local_auc = roc_auc_score(labels["test"], local.predict(matrices["test"]))
    dask_auc = roc_auc_score(labels["test"], on_dask.predict(matrices["test"]))
    assert local_auc > 0.7
    assert abs(dask_auc - local_auc) <= 0.01


@pytest.mark.slow
def test_best_iteration_matches_lightgbm_early_stopping(training_matrices):
    import lightgbm as lgb

    from pipeline.train import fit_booster

    matrices, labels, columns, params, settings = training_matrices
    stopped = fit_booster(
        matrices["train"], labels["train"], matrices["validation"], labels["validation"],
        params=params, columns=columns, cfg=settings,
    )
    full = lgb.train(
        {k: v for k, v in params.items() if k not in ("metric", "first_metric_only")},
        lgb.Dataset(matrices["train"], label=labels["train"], feature_name=columns.all,
                    categorical_feature=columns.categorical),
        num_boost_round=stopped.current_iteration() + settings.early_stopping_rounds + 20,
    )
    found = best_iteration(full, matrices["validation"], labels["validation"], patience=settings.early_stopping_rounds)
    assert found == stopped.current_iteration()


@pytest.mark.slow
def test_features_runner_with_the_dask_engine_writes_the_same_files(demo_features, tmp_path):
    import shutil

    from pipeline.run import features as features_runner

    cfg = demo_features
    shutil.copytree(cfg.validated_dir, tmp_path / "validated")
    dask_cfg = cfg.model_copy(
        update={
            "paths": cfg.paths.model_copy(update={"data_dir": tmp_path}),
            "features": cfg.features.model_copy(update={"engine": "dask", "dask_partitions": 3, "dask_stall_seconds": 60}),
        }
    )
    summary = features_runner.run(dask_cfg, quiet=True)
    expected = sorted(cfg.features_dir.glob("snapshot=*.parquet"))
    assert len(summary["snapshots"]) == len(expected) > 0
    for path in expected:
        assert (dask_cfg.features_dir / path.name).read_bytes() == path.read_bytes(), path.name
    # the churned customers who bought again in the next horizon: as the local engine's tables count them
    tables, last_date = features_runner.prepared_tables(cfg)
    horizon = cfg.features.horizon_days
    covered = [row for row in summary["snapshots"] if row["churned"] is not None]
    assert covered
    for row in covered:
        as_of = dt.date.fromisoformat(row["date"])
        assert next_window_covered(as_of, horizon_days=horizon, last_event_date=last_date)
        assert (row["churned"], row["came_back"]) == labels_and_came_back(
            tables, as_of=as_of, lookback_days=cfg.features.lookback_days, horizon_days=horizon, came_back=True)[1]


@pytest.mark.slow
def test_features_runner_engines_write_the_same_files_in_a_business_time_zone(demo_ingested, tmp_path):
    """Both runners take `features.timezone` (Los Angeles here) to every place they read days: same files."""
    import shutil

    from pipeline.features.store import recorded_settings
    from pipeline.run import features as features_runner

    written = {}
    for engine in ("polars", "dask"):
        shutil.copytree(demo_ingested.validated_dir, tmp_path / engine / "validated")
        cfg = demo_ingested.model_copy(update={
            "paths": demo_ingested.paths.model_copy(update={"data_dir": tmp_path / engine}),
            "features": demo_ingested.features.model_copy(
                update={"engine": engine, "dask_partitions": 3, "dask_stall_seconds": 60, "timezone": "America/Los_Angeles"}),
        })
        features_runner.run(cfg, quiet=True)
        written[engine] = {path.name: path.read_bytes() for path in cfg.features_dir.glob("snapshot=*.parquet")}
        assert recorded_settings(cfg.features_dir)["settings"]["timezone"] == "America/Los_Angeles"
    assert written["polars"] and written["polars"] == written["dask"]


def test_every_engine_gives_the_same_customer_attribute_features(tmp_path, client):
    """sources.customers.attributes on Dask: the attribute_<slug> columns travel with their customers' partitions and
    give the single-machine features exactly (pandas Events, the polars runner's reader, Dask); validated customers
    without a listed column: the same one-line error on every engine."""
    from pipeline.config import FeaturesConfig
    from pipeline.events import Events
    from pipeline.features import event_tables, event_tables_from_frames, features_from_tables
    from pipeline.run.features import read_validated

    rng = np.random.default_rng(3)
    n, customers = 400, 80
    transactions = pd.DataFrame({
        "order_id": [f"o{i}" for i in range(n)], "customer_id": [f"c{i:03d}" for i in rng.integers(0, customers, n)],
        "ordered_at": pd.Timestamp("2023-06-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 360 * 24, n), unit="h"),
        "amount": np.round(rng.uniform(5, 80, n), 2)})
    known = rng.permutation(customers)[:60]  # 20 customers absent from the customers source
    people = pd.DataFrame({
        "customer_id": [f"c{i:03d}" for i in known],
        "signup_at": pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 600, 60), unit="D"),
        "region": rng.choice(["north", "south"], 60),
        "attribute_segment": rng.choice(["Gold", "Silver", None], 60),
        "attribute_plan": rng.choice(["basic", "pro"], 60),
        "attribute_seats": np.where(rng.random(60) < 0.2, np.nan, rng.integers(1, 50, 60) + 0.5)})
    for name, frame in Events.from_frames(transactions=transactions, customers=people).items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    cfg = FeaturesConfig(snapshots={"dates": ["2024-03-01"]}, btyd=False,
                         customer_attributes=["Segment", "Plan", "Seats"], number_attributes=["Seats"])
    attributes = cfg.attribute_columns
    local = event_tables(load_events(tmp_path), attributes=attributes)
    runner = event_tables_from_frames(read_validated(tmp_path, attributes=attributes), attributes=attributes)
    partitioned = load_partitioned_tables(tmp_path, partitions=3, client=client, attributes=attributes)
    try:
        for as_of in (dt.date(2024, 3, 1), dt.date(2024, 6, 1)):
            expected = features_from_tables(local, as_of=as_of, cfg=cfg)
            assert expected["attribute_segment"].notna().sum() > 10 and expected["attribute_plan"].isna().sum() > 5
            assert expected["attribute_seats"].dtype == "float64" and expected["attribute_seats"].notna().sum() > 10
            assert_frame_equal(features_from_tables(runner, as_of=as_of, cfg=cfg), expected, check_exact=True)
            assert_frame_equal(dask_features(partitioned, as_of=as_of, cfg=cfg), expected, check_exact=True)
        with pytest.raises(FeatureError, match=r"the validated customers hold attribute_seats as numbers, but sources"
                                               r"\.customers\.attributes reads it as text \(kind category\)"):
            dask_features(partitioned, as_of=dt.date(2024, 3, 1), cfg=cfg.model_copy(update={"number_attributes": []}))
    finally:
        partitioned.release()
    with pytest.raises(FeatureError, match=r"the validated customers lack attribute_tier \(sources\.customers\."
                                           r"attributes\): .* re-run `churn ingest`"):
        load_partitioned_tables(tmp_path, partitions=2, client=client, attributes=["attribute_tier"])
