"""`churn features`: snapshot files, labels where the horizon has passed, determinism, errors."""

from __future__ import annotations

import datetime as dt
import ctypes
import io
import json
import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal
from rich.console import Console
from typer.testing import CliRunner

from conftest import minimal_config
from pipeline.cli import app
from pipeline.config import config_from_dict
from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.features import build_features, feature_names
from pipeline.features.store import read_snapshots, snapshot_dates, snapshot_frame, snapshot_path
from pipeline.io import sha256_file, write_parquet
from pipeline.labels import label_churn
from pipeline.run import features as runner

DATES = [dt.date(2024, 3, 1), dt.date(2024, 4, 1), dt.date(2024, 5, 1)]


def events() -> Events:
    rows = []
    for i, customer in enumerate(["a", "b", "c", "d", "e", "f"]):
        for month in range(1, 6 - i % 3):
            rows.append((f"{customer}{month}", customer, pd.Timestamp(2024, month, 3 + i, tz="UTC"), 10.0 * month))
    transactions = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount"])
    # the data ends on 2024-05-08: with a 30-day horizon, 03-01 and 04-01 are labelled, 05-01 is not
    feedback = pd.DataFrame({"customer_id": ["a"], "submitted_at": [pd.Timestamp("2024-02-10", tz="UTC")],
                             "kind": ["nps"], "score": [2.0]})
    return Events.from_frames(transactions=transactions, feedback=feedback)


def raw_config(folder, **features) -> dict:
    return minimal_config(
        str(folder / "raw.csv"),
        snapshots={"dates": [d.isoformat() for d in DATES]},
        paths={"data_dir": str(folder / "data"), "models_dir": str(folder / "models")},
        features={"lookback_days": 60, "horizon_days": 30, "windows_days": [30, 90], **features},
    )


def workspace(folder, **features):
    cfg = config_from_dict(raw_config(folder, **features), base_dir=folder)
    for name, frame in events().items():
        write_parquet(frame, cfg.validated_dir / f"{name}.parquet")
    return cfg


def test_run_writes_one_file_per_snapshot_with_labels_where_known(tmp_path):
    cfg = workspace(tmp_path)
    summary = runner.run(cfg, quiet=True)
    assert snapshot_dates(cfg.features_dir) == DATES
    table = read_snapshots(cfg.features_dir)
    assert list(table.columns) == ["snapshot_date", "customer_id", *feature_names(cfg.features), "churned"]
    assert str(table["snapshot_date"].dtype) == "datetime64[us, UTC]" and table["churned"].dtype == "float64"
    ev = events()
    for d in DATES:
        part = table[table["snapshot_date"] == pd.Timestamp(d, tz="UTC")].drop(columns=["snapshot_date", "churned"])
        assert_frame_equal(part.reset_index(drop=True), build_features(ev, as_of=d, cfg=cfg.features))
    labelled = table[table["snapshot_date"] < pd.Timestamp("2024-05-01", tz="UTC")]
    expected = pd.concat([label_churn(ev.transactions, as_of=d, lookback_days=60, horizon_days=30) for d in DATES[:2]],
                         ignore_index=True)
    np.testing.assert_array_equal(labelled["churned"].to_numpy(), expected["churned"].to_numpy(float))
    assert table.loc[table["snapshot_date"] == pd.Timestamp("2024-05-01", tz="UTC"), "churned"].isna().all()
    rows = summary["snapshots"]
    assert [r["labelled"] for r in rows] == [True, True, False] and rows[2]["churn_rate"] is None
    first = table[table["snapshot_date"] == pd.Timestamp(DATES[0], tz="UTC")]
    assert rows[0]["customers"] == len(first) > 0
    assert rows[0]["churn_rate"] == pytest.approx(first["churned"].mean())


@pytest.mark.slow
def test_same_inputs_twice_give_identical_files(tmp_path):
    """Twice in this process and once in a fresh one (other polars category codes): same bytes."""
    cfg = workspace(tmp_path)
    runner.run(cfg, quiet=True)
    first = {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES}
    runner.run(cfg, quiet=True)
    assert {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES} == first
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw_config(tmp_path)), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pipeline", "features", "--config", str(config), "--quiet"], check=True,
                   cwd=tmp_path, capture_output=True)
    assert {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES} == first


def test_snapshots_computed_at_once_give_the_same_files_as_one_at_a_time(tmp_path):
    cfg = workspace(tmp_path, snapshot_workers=1)
    runner.run(cfg, quiet=True)
    one_at_a_time = {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES}
    runner.run(workspace(tmp_path, snapshot_workers=3), quiet=True)
    assert {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES} == one_at_a_time


def test_tables_prepared_per_customer_partition_give_the_same_files(tmp_path):
    cfg = workspace(tmp_path)
    runner.run(cfg, quiet=True)
    whole = {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES}
    small = workspace(tmp_path)  # 24 rows: 6 partitions (below the smallest partition_rows a config may set)
    runner.run(small.model_copy(update={"features": small.features.model_copy(update={"partition_rows": 4})}),
               quiet=True)
    assert {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES} == whole


@pytest.mark.parametrize(("rows", "partition_rows", "expected"), [(0, 5, 1), (5, 5, 1), (6, 5, 2), (10**7, 5 * 10**6, 2)])
def test_partition_count(rows, partition_rows, expected):
    assert runner.partition_count(rows, partition_rows=partition_rows) == expected


def test_ordered_map_keeps_order_and_runs_exactly_workers_items_at_once():
    running, most_at_once, lock = [0], [0], threading.Lock()
    started = []

    def slow_square(x):
        with lock:
            started.append(x)
            running[0] += 1
            most_at_once[0] = max(most_at_once[0], running[0])
        time.sleep(0.05)  # long enough that the other worker starts meanwhile
        with lock:
            running[0] -= 1
        return x * x

    results = runner.ordered_map(slow_square, range(10), workers=2)
    assert next(results) == 0
    assert len(started) <= 3  # the first result, its running neighbour and the one submitted in its place
    assert list(results) == [x * x for x in range(1, 10)]
    assert most_at_once[0] == 2  # two threads at work: not one after the other, and never three


def test_ordered_map_raises_the_error_of_a_failed_item():
    def fail_on_three(x):
        if x == 3:
            raise ValueError("item 3")
        return x

    with pytest.raises(ValueError, match="item 3"):
        list(runner.ordered_map(fail_on_three, range(6), workers=2))


def test_a_snapshot_before_the_data_is_written_empty(tmp_path, caplog):
    cfg = workspace(tmp_path)
    cfg = cfg.model_copy(update={"features": cfg.features.model_copy(
        update={"snapshots": cfg.features.snapshots.model_copy(update={"dates": [dt.date(2020, 1, 1)]})})})
    summary = runner.run(cfg, quiet=True)
    assert summary["snapshots"][0]["customers"] == 0
    assert read_snapshots(cfg.features_dir).empty
    assert "no eligible customers" in caplog.text


def test_tiers_the_config_does_not_name_are_warned_about_once_naming_them_and_the_setting(tmp_path, caplog):
    cfg = workspace(tmp_path, loyalty_tiers={"bronze": 0, "silver": 500, "gold": 2000})
    loyalty = pd.DataFrame({
        "customer_id": ["a", "a", "b", "c", "c"],
        "occurred_at": pd.to_datetime(["2024-01-05", "2024-02-05", "2024-01-05", "2024-01-05", "2024-02-05"], utc=True),
        "kind": ["tier_change"] * 5,
        "points": [None] * 5,
        "tier": ["Gold", "Diamond", " SILVER ", "VIP", "VIP"],  # Gold and SILVER are configured, in another case
    })
    write_parquet(Events.from_frames(loyalty_events=loyalty).loyalty_events, cfg.validated_dir / "loyalty_events.parquet")
    summary = runner.run(cfg, quiet=True)
    message = ("loyalty tiers in the data that features.loyalty_tiers does not name: 'Diamond', 'VIP' (configured: "
               "bronze, silver, gold): their members get no points_to_next_tier")
    assert summary["tier_warning"].startswith(message)
    assert caplog.text.count("features.loyalty_tiers does not name") == 1  # once, not per snapshot
    caplog.clear()
    loyalty["tier"] = ["Gold", "gold", " SILVER ", None, "Bronze"]
    write_parquet(Events.from_frames(loyalty_events=loyalty).loyalty_events, cfg.validated_dir / "loyalty_events.parquet")
    assert runner.run(cfg, quiet=True)["tier_warning"] is None and "loyalty_tiers" not in caplog.text


def pause_workspace(folder, *, returning: int):
    """Eight customers buy on 02-10 and are churned at 03-01 (30-day horizon); `returning` of them buy again on 04-10,
    in the horizon after the label window; one steady customer buys every month to 05-08, so that horizon is covered."""
    rows = [(f"p{i}-{day}", f"p{i}", day) for i in range(8) for day in ["2024-02-10", *["2024-04-10"] * (i < returning)]]
    rows += [(f"r-{day}", "r", day) for day in ["2024-02-10", "2024-03-10", "2024-04-10", "2024-05-08"]]
    return orders_workspace(folder, rows, dates=["2024-03-01", "2024-04-01"])


def orders_workspace(folder, rows: list[tuple[str, str, str]], *, dates: list[str]):
    """A workspace whose validated transactions are `rows` (order_id, customer_id, day; 10.00 each), snapshots `dates`."""
    transactions = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at"]).assign(amount=10.0)
    transactions["ordered_at"] = pd.to_datetime(transactions["ordered_at"], utc=True)
    raw = raw_config(folder)
    raw["features"]["snapshots"] = {"dates": dates}
    cfg = config_from_dict(raw, base_dir=folder)
    for name, frame in Events.from_frames(transactions=transactions).items():
        write_parquet(frame, cfg.validated_dir / f"{name}.parquet")
    return cfg


def test_the_run_counts_churned_customers_who_bought_again_in_the_next_horizon_and_warns_when_many_did(
    tmp_path, caplog
):
    summary = runner.run(pause_workspace(tmp_path, returning=4), quiet=True)
    first, second = summary["snapshots"]
    assert (first["churned"], first["came_back"]) == (8, 4)  # r bought in March
    assert second["labelled"] and second["churned"] is None  # 04-01 + 60 days runs past 05-08
    assert summary["pause_warning"].startswith("50% of the customers labelled churned (no purchase in the 30 days")
    report = json.loads(runner.labels_report_path(config_from_dict(raw_config(tmp_path), base_dir=tmp_path)).read_text())
    assert report["pause_warning"] == summary["pause_warning"] and report["horizon_days"] == 30
    assert [(row["date"], row["churned"], row["came_back"]) for row in report["snapshots"]] == [
        ("2024-03-01", 8, 4), ("2024-04-01", None, None)]
    assert "labels: 50% of the customers labelled churned" in caplog.text
    caplog.clear()
    quiet = runner.run(pause_workspace(tmp_path / "few", returning=1), quiet=True)
    assert quiet["snapshots"][0]["came_back"] == 1 and quiet["pause_warning"] is None
    assert "of the customers labelled churned" not in caplog.text
    shown = Console(width=200, file=io.StringIO())
    shown.print(runner._summary_table(quiet))
    assert "of them back in the next horizon" in shown.file.getvalue() and "12.5%" in shown.file.getvalue()


def test_annual_renewals_labelled_churned_between_payments_are_named(tmp_path, caplog):
    """Twenty annual subscribers pay on 2023-01-10 and renew on 2024-01-12: at 2024-03-01 (30-day horizon) they are
    labelled churned; one monthly subscriber pays every month. The labels report and the log name them."""
    rows = [(f"a{i}-{day}", f"a{i}", day) for i in range(20) for day in ["2023-01-10", "2024-01-12"]]
    rows += [(f"m-{month}", "m", f"2023-{month:02d}-05") for month in range(1, 13)]
    rows += [(f"m-{month}-24", "m", f"2024-{month:02d}-05") for month in range(1, 5)]
    cfg = orders_workspace(tmp_path, rows, dates=["2024-03-01"])
    summary = runner.run(cfg, quiet=True)
    assert (summary["snapshots"][0]["labelled_churned"], summary["snapshots"][0]["yearly_gap"]) == (20, 20)
    assert summary["yearly_buyers_warning"].startswith("100% of the customers labelled churned (no purchase in the 30 "
                                                       "days after a snapshot; 20 labels of snapshot 2024-03-01) had "
                                                       "bought about a year apart")
    report = json.loads(runner.labels_report_path(cfg).read_text())
    assert report["yearly_buyers_warning"] == summary["yearly_buyers_warning"]
    assert "labels: 100% of the customers labelled churned" in caplog.text


def test_a_marketplace_where_almost_nobody_buys_again_is_named_before_training(tmp_path, caplog):
    """Two hundred one-time buyers (a marketplace: Olist's 12 of 4,744 bought again within 90 days), three customers
    who come back every month and one steady buyer: `churn features` names the handful who bought again in the
    latest labelled snapshot (churn train's test) and over every labelled snapshot, before anything is trained."""
    rows = [(f"o{i}", f"o{i}", "2024-01-20") for i in range(100)] + [(f"q{i}", f"q{i}", "2024-02-20") for i in range(100)]
    rows += [(f"r{i}-{day}", f"r{i}", day) for i in range(3) for day in ["2024-01-10", "2024-02-10", "2024-03-10"]]
    rows += [(f"s-{month}", "s", f"2024-{month:02d}-05") for month in range(1, 5)]
    cfg = orders_workspace(tmp_path, rows, dates=["2024-02-01", "2024-03-01"])
    summary = runner.run(cfg, quiet=True)
    assert [(row["customers"], row["labelled_churned"]) for row in summary["snapshots"]] == [(104, 100), (204, 200)]
    assert summary["few_labels_warning"] == (
        "the test snapshot 2024-03-01 (the latest labelled one, which churn train tests on) holds only 4 customers who "
        "bought again (of 204 customers, churn rate 98.0%): the model learns from 8 labels of customers who bought "
        "again in all 2 labelled snapshots, and churn train's test metrics, comparison with the baselines and champion "
        "decision rest on this snapshot's 4: read the intervals, not the leads; where almost nobody buys again within "
        "30 days, a longer features.horizon_days labels more of them as buying again, if the data covers it")
    assert json.loads(runner.labels_report_path(cfg).read_text())["few_labels_warning"] == summary["few_labels_warning"]
    assert "labels: the test snapshot 2024-03-01" in caplog.text
    shop = [{"date": "2024-02-01", "customers": 300, "labelled": True, "labelled_churned": 150},
            {"date": "2024-03-01", "customers": 310, "labelled": True, "labelled_churned": 160},
            {"date": "2024-04-01", "customers": 320, "labelled": False, "labelled_churned": None}]
    assert runner.few_labels_at_test_warning(shop, horizon_days=30) is None
    shop[1]["labelled_churned"] = 270  # 40 bought again at the latest labelled snapshot (the unlabelled one is not it)
    assert runner.few_labels_at_test_warning(shop, horizon_days=30).startswith(
        "the test snapshot 2024-03-01 (the latest labelled one, which churn train tests on) holds only 40 customers "
        "who bought again (of 310 customers, churn rate 87.1%): the model learns from 190 labels")


def test_customers_a_past_list_treated_are_left_out_of_the_pause_counts(tmp_path, caplog):
    """The four who came back were treated by a list of 03-20: their return may be its doing, not a pause."""
    cfg = pause_workspace(tmp_path, returning=4)
    scores = pd.DataFrame({"customer_id": [f"p{i}" for i in range(8)], "group": ["treatment"] * 4 + ["none"] * 4,
                           "action": ["call"] * 4 + [None] * 4, "action_cost": 1.0, "expected_net_value": 1.0,
                           "as_of": dt.date(2024, 3, 20)})
    write_parquet(scores, cfg.scores_dir / "at_risk_2024-03-20.parquet")
    summary = runner.run(cfg, quiet=True)
    assert (summary["snapshots"][0]["churned"], summary["snapshots"][0]["came_back"]) == (4, 0)
    assert summary["pause_warning"] is None and "of the customers labelled churned" not in caplog.text
    (cfg.scores_dir / "at_risk_2024-03-20.parquet").write_text("not parquet")
    summary = runner.run(cfg, quiet=True)  # an unreadable list: the counts keep everyone, with a warning
    assert summary["snapshots"][0]["came_back"] == 4 and "the past at-risk lists cannot be read" in caplog.text


def test_cli_features_prints_the_summary(tmp_path):
    workspace(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw_config(tmp_path)), encoding="utf-8")
    result = CliRunner().invoke(app, ["features", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "2024-03-01" in result.output and "horizon not passed" in result.output


def test_missing_validated_data_is_a_clear_error(tmp_path):
    cfg = config_from_dict(raw_config(tmp_path), base_dir=tmp_path)
    with pytest.raises(FeatureError, match="run `churn ingest`"):
        runner.run(cfg, quiet=True)


def test_read_snapshots_errors(tmp_path):
    with pytest.raises(FeatureError, match="run `churn features`"):
        read_snapshots(tmp_path / "nothing")
    cfg = workspace(tmp_path)
    runner.run(cfg, quiet=True)
    assert len(read_snapshots(cfg.features_dir, [DATES[1]])["snapshot_date"].unique()) == 1
    with pytest.raises(FeatureError, match="no feature snapshot for 2023-01-01"):
        read_snapshots(cfg.features_dir, [dt.date(2023, 1, 1)])


def test_snapshot_frame_refuses_labels_of_other_customers():
    features = pd.DataFrame({"customer_id": pd.Series(["a", "b"], dtype="str"), "x": [1.0, 2.0]})
    labels = pd.DataFrame({"customer_id": pd.Series(["a", "c"], dtype="str"), "churned": pd.Series([0, 1], dtype="int8")})
    with pytest.raises(FeatureError, match="must use the same eligibility"):
        snapshot_frame(features, labels, as_of=DATES[0])


def test_an_error_while_the_writer_makes_a_snapshot_stops_the_run_and_keeps_the_previous_files(tmp_path, monkeypatch):
    cfg = workspace(tmp_path)
    runner.run(cfg, quiet=True)
    before = {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES}
    labels_of = runner.labels_and_came_back

    def faulty(tables, *, as_of, **window):  # a fault injected: labels missing their last customer from DATES[1] on
        labels, came_back = labels_of(tables, as_of=as_of, **window)
        return labels.iloc[: -1 if as_of >= DATES[1] else None], came_back

    monkeypatch.setattr(runner, "labels_and_came_back", faulty)
    with pytest.raises(FeatureError, match=f"snapshot {DATES[1]}: .* must use the same eligibility"):
        runner.run(cfg, quiet=True)
    assert {d: sha256_file(snapshot_path(cfg.features_dir, d)) for d in DATES} == before


class _MallocInfo(ctypes.Structure):
    """glibc's `struct mallinfo2` (<malloc.h>): bytes in the heap, in separate mappings, free in the heap."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
    )]


def test_no_huge_page_advice_inside_the_features_run_and_numpys_setting_after_it():
    set_advice = np._core.multiarray._set_madvise_hugepage  # returns the setting it replaces
    was = set_advice(True)
    try:
        with runner.freed_memory_kept():
            assert set_advice(False) is False  # numpy asked for no huge pages inside the run
        assert set_advice(True) is True  # numpy's setting again after it
        set_advice(False)
        with runner.no_huge_page_advice():
            pass
        assert set_advice(False) is False  # "as before" is off when it was off
    finally:
        set_advice(was)


def test_freed_memory_kept_keeps_large_freed_blocks_in_the_heap_until_exit():
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    mallinfo2.restype = _MallocInfo
    block = 64 * 2**20
    with runner.freed_memory_kept():
        mapped_before = mallinfo2().hblkhd
        array = np.ones(block // 8)
        assert mallinfo2().hblkhd - mapped_before < block  # from the heap, not a mapping of its own
        del array
        inside = mallinfo2()
        assert inside.fordblks >= block  # freed, and kept in the heap for the next allocation
    after = mallinfo2()
    assert inside.arena - after.arena >= block  # trimmed on exit: peak memory unchanged
    array = np.ones(block // 8)
    assert mallinfo2().hblkhd - after.hblkhd >= block  # glibc's defaults again: a large block is mapped
    del array


def test_a_source_whose_events_all_come_after_the_last_labelled_snapshot_is_warned_about(tmp_path, caplog):
    # a help desk export of the last days only: no snapshot the model learns from sees one of its tickets
    cfg = workspace(tmp_path)  # labelled: 03-01 and 04-01; feedback on 02-10 is seen
    tickets = pd.DataFrame({"ticket_id": ["1", "2"], "customer_id": ["a", "b"],
                            "opened_at": pd.to_datetime(["2024-04-03 10:00", "2024-05-06 09:00"], utc=True)})
    write_parquet(Events.from_frames(support_tickets=tickets).support_tickets,
                  cfg.validated_dir / "support_tickets.parquet")
    summary = runner.run(cfg, quiet=True)
    assert summary["unseen_sources_warning"].startswith(
        "support_tickets: its rows run from 2024-04-03 to 2024-05-06, none before the last labelled snapshot "
        "(2024-04-01): the model learns nothing from them")
    assert "feedback" not in summary["unseen_sources_warning"]
    assert caplog.text.count("none before the last labelled snapshot") == 1
    caplog.clear()
    tickets["opened_at"] = pd.to_datetime(["2024-03-20 10:00", "2024-05-06 09:00"], utc=True)  # one seen by 04-01
    write_parquet(Events.from_frames(support_tickets=tickets).support_tickets,
                  cfg.validated_dir / "support_tickets.parquet")
    assert runner.run(cfg, quiet=True)["unseen_sources_warning"] is None
    assert "last labelled snapshot" not in caplog.text


def test_btyd_fits_that_fail_at_every_snapshot_are_one_warning(tmp_path, caplog):
    """Six customers: too few for BG/NBD and Pareto/NBD at each of the three snapshots. Six warnings said so before."""
    cfg = workspace(tmp_path, btyd=True)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        summary = runner.run(cfg, quiet=True)
    warned = [record.getMessage() for record in caplog.records
              if record.levelno >= logging.WARNING and "BTYD" in record.getMessage()]
    assert warned == [summary["btyd_warning"]]
    assert summary["btyd_warning"].startswith(
        "BTYD: BG/NBD and Pareto/NBD could not be fitted at 3 of 3 snapshots (BG/NBD at 3, Pareto/NBD at 3; "
        "2024-03-01 to 2024-05-01), and their features are NaN there; at 2024-03-01: BG/NBD failed: ")
    assert sum("BTYD at 2024-04-01: Pareto/NBD failed" in record.getMessage() for record in caplog.records) == 1
