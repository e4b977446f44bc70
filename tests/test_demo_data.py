"""The demo-data generator: contract shape, determinism, realism, planted churn causes, bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.config import IngestConfig, SourceConfig
from pipeline.contract import CONTRACTS, empty_frame
from pipeline.demo_data import BAD_VALUES, as_strings, generate_demo, inject_bad_rows
from pipeline.errors import ConfigError
from pipeline.ingest import ANONYMOUS, ingest_sources
from pipeline.run import demo_data as demo_runner
from pipeline.sources import RawSource

CUSTOMERS = 3000


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return generate_demo(customers=CUSTOMERS, seed=11)


def test_every_source_has_the_contract_columns_and_types(shop):
    assert set(shop) == set(CONTRACTS)
    for name, frame in shop.items():
        expected = empty_frame(name).dtypes.astype(str).str.replace(r"\[us, UTC\]", "[s]", regex=True)
        expected = expected.drop("unit_price", errors="ignore")  # the demo's lines carry amount, not unit prices
        expected = expected.drop(list(CONTRACTS[name].derived))  # ingest derives these: no export gives them
        assert frame.dtypes.astype(str).to_dict() == expected.to_dict(), name
        assert len(frame) > 0, name


def test_same_seed_same_shop_other_seed_other_shop(shop):
    again = generate_demo(customers=CUSTOMERS, seed=11)
    for name in shop:
        assert_frame_equal(shop[name], again[name])
    other = generate_demo(customers=CUSTOMERS, seed=12)
    assert not shop["transactions"]["amount"].equals(other["transactions"]["amount"])


def test_ids_are_present_and_events_fall_in_the_period(shop):
    end = pd.Timestamp("2026-01-01")
    for name, frame in shop.items():
        spec = CONTRACTS[name]
        for column in spec.id_columns:
            assert frame[column].notna().all(), (name, column)
        for column in spec.timestamp_columns:
            if column != "promised_delivery_at":
                assert (frame[column].dropna() < end).all(), (name, column)
    assert shop["customers"]["customer_id"].is_unique
    assert set(shop["transactions"]["customer_id"]) <= set(shop["customers"]["customer_id"])


def test_transactions_look_like_a_shop(shop):
    tx = shop["transactions"]
    lines_per_order = tx[tx["amount"] > 0].groupby("order_id").size()
    assert lines_per_order.max() > 1 and lines_per_order.mean() > 1.3  # order lines
    assert tx["category"].nunique() == 8
    returns = tx[tx["amount"] < 0]
    assert 0.02 < len(returns) / len(tx) < 0.10
    assert returns["order_id"].isin(tx.loc[tx["amount"] > 0, "order_id"]).all()  # a return refers to its order
    assert (tx["discount"] >= 0).all() and (tx["discount"] > 0).mean() > 0.1
    late = tx["delivered_at"] > tx["promised_delivery_at"]
    assert 0.03 < late.mean() < 0.2
    spend = tx[tx["amount"] > 0].groupby("customer_id")["amount"].sum()
    assert spend.max() > 10 * spend.median()  # heavy tail
    orders_by_month = tx.drop_duplicates("order_id")["ordered_at"].dt.month.value_counts()
    assert orders_by_month[[11, 12]].mean() > 1.3 * orders_by_month[[1, 2, 3, 4, 5, 6, 7, 8, 9]].mean()  # Nov/Dec peak
    signups = shop["customers"]["signup_at"]
    assert signups.dt.year.value_counts()[[2023, 2024, 2025]].min() > CUSTOMERS * 0.1  # acquired over time


def test_feedback_tickets_and_loyalty_look_real(shop):
    feedback = shop["feedback"]
    assert set(feedback["kind"]) == {"nps", "csat", "review"}
    ranges = {"nps": (0, 10), "csat": (1, 5), "review": (1, 5)}
    for kind, (low, high) in ranges.items():
        scores = feedback.loc[feedback["kind"] == kind, "score"]
        assert scores.between(low, high).all() and scores.nunique() > 3, kind
    tickets = shop["support_tickets"]
    assert tickets["closed_at"].isna().any() and tickets["closed_at"].notna().mean() > 0.9  # some still open
    assert (tickets["resolved"] == False).any()  # noqa: E712 - some unresolved
    assert (tickets["closed_at"].dropna() >= tickets.loc[tickets["closed_at"].notna(), "opened_at"]).all()
    loyalty = shop["loyalty_events"]
    assert set(loyalty["kind"]) == {"enroll", "earn", "redeem", "tier_change", "expire"}
    balance = loyalty.groupby("customer_id")["points"].sum()
    assert (balance >= 0).all()  # never redeem or expire more than earned
    # Points follow spend: a member's earned points equal the floor of each order's value after joining.
    earned = loyalty.loc[loyalty["kind"] == "earn", "points"]
    assert earned.sum() > 0 and (earned == earned.round()).all()


def _churn_table(shop: dict[str, pd.DataFrame], snapshot: str) -> pd.DataFrame:
    """Customers with an order in the year before `snapshot`: churned = no order in the next 90 days,
    with the state at the snapshot (latest NPS a detractor, a ticket open or closed unresolved in the
    last 90 days, loyalty member)."""
    t = pd.Timestamp(snapshot)
    tx, feedback, tickets, loyalty = (shop[n] for n in ("transactions", "feedback", "support_tickets", "loyalty_events"))
    recent = tx[(tx["ordered_at"] < t) & (tx["ordered_at"] >= t - pd.Timedelta(days=365))]
    table = pd.DataFrame({"customer_id": recent["customer_id"].unique()})
    future = tx[(tx["ordered_at"] >= t) & (tx["ordered_at"] < t + pd.Timedelta(days=90))]
    table["churned"] = ~table["customer_id"].isin(future["customer_id"])
    nps = feedback[(feedback["kind"] == "nps") & (feedback["submitted_at"] < t)].sort_values("submitted_at")
    latest = nps.groupby("customer_id")["score"].last()
    table["detractor"] = table["customer_id"].map(latest).le(6)
    is_open = (tickets["opened_at"] < t) & ~(tickets["closed_at"] < t)
    unresolved = (tickets["closed_at"] < t) & (tickets["closed_at"] >= t - pd.Timedelta(days=90)) & ~tickets["resolved"]
    table["ticket_trouble"] = table["customer_id"].isin(tickets.loc[is_open | unresolved.fillna(False), "customer_id"])
    members = loyalty.loc[(loyalty["kind"] == "enroll") & (loyalty["occurred_at"] < t), "customer_id"]
    table["member"] = table["customer_id"].isin(members)
    return table


def test_planted_causes_show_in_the_raw_data(shop):
    table = pd.concat([_churn_table(shop, day) for day in ("2024-07-01", "2025-01-01", "2025-06-01")])
    rate = {
        cause: (table.loc[table[cause], "churned"].mean(), table.loc[~table[cause], "churned"].mean())
        for cause in ("detractor", "ticket_trouble", "member")
    }
    assert rate["detractor"][0] > 1.25 * rate["detractor"][1], rate
    assert rate["ticket_trouble"][0] > 1.25 * rate["ticket_trouble"][1], rate
    assert rate["member"][0] < 0.85 * rate["member"][1], rate


def _raw_sources(frames: dict[str, pd.DataFrame]) -> dict[str, RawSource]:
    return {
        name: RawSource(
            name=name,
            frame=frame,
            origin=pd.DataFrame({"source_file": "demo", "source_row": np.arange(1, len(frame) + 1)}, index=frame.index),
            files=(Path("demo"),),
        )
        for name, frame in frames.items()
    }


def test_bad_rows_are_about_the_asked_share_and_exactly_what_ingest_rejects():
    clean = generate_demo(customers=800, seed=5)
    dirty = inject_bad_rows(clean, seed=5, share=0.04)
    result = ingest_sources(
        _raw_sources(dirty), sources={name: SourceConfig(path=Path("demo")) for name in dirty}, cfg=IngestConfig()
    )
    for name, frame in dirty.items():
        added = len(frame) - len(clean[name])
        assert abs(added / len(frame) - 0.04) < 0.002, name
        report = result.sources[name].report
        assert report["quarantined_rows"] == added, name  # every injected row, and only those
        reasons = " ".join(result.sources[name].quarantine["reason"])
        for column, _ in BAD_VALUES[name]:
            assert (ANONYMOUS if column == "customer_id" else column) in reasons, (name, column)


def test_bad_rows_are_strings_and_deterministic():
    clean = generate_demo(customers=200, seed=1)
    dirty = inject_bad_rows(clean, seed=3)
    assert all((frame.dtypes == "str").all() for frame in dirty.values())
    for name in clean:
        assert_frame_equal(dirty[name], inject_bad_rows(clean, seed=3)[name])
    assert_frame_equal(inject_bad_rows(clean, seed=3, share=0.0)["feedback"], as_strings(clean["feedback"]))


def test_as_strings_writes_what_a_csv_export_holds():
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(["2024-01-02 03:04:05", None]).astype("datetime64[s]"),
            "score": [9.0, 2.5],
            "resolved": pd.array([True, pd.NA], dtype="boolean"),
        }
    )
    expected = pd.DataFrame(
        {
            "at": pd.Series(["2024-01-02 03:04:05", None], dtype="str"),
            "score": pd.Series(["9", "2.5"], dtype="str"),
            "resolved": pd.Series(["true", None], dtype="str"),
        }
    )
    assert_frame_equal(as_strings(frame), expected)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="customers must be at least 1"):
        generate_demo(customers=0, seed=1)
    with pytest.raises(ValueError, match="share must be in"):
        inject_bad_rows({}, seed=1, share=1.0)


def test_runner_wrote_every_configured_source_as_csv(demo_cfg):
    for name, source in demo_cfg.sources.configured().items():
        header = source.path.read_text(encoding="utf-8").splitlines()[0]
        expected = [column for column in CONTRACTS[name].input_dtypes if column != "unit_price"]  # lines carry amount
        assert header.split(",") == expected, name


def test_runner_refuses_a_glob_or_parquet_target_and_bad_counts(tmp_path, demo_cfg):
    glob_cfg = demo_cfg.model_copy(
        update={"sources": demo_cfg.sources.model_copy(update={"transactions": SourceConfig(path=tmp_path / "*.csv")})}
    )
    with pytest.raises(ConfigError, match=r"sources\.transactions\.path is .*: demo-data writes one CSV per source"):
        demo_runner.run(glob_cfg, customers=10, seed=1, quiet=True)
    for path in ("orders.xlsx", "orders.parquet"):  # a workbook or Parquet file is not written as CSV under its name
        other = demo_cfg.model_copy(update={"sources": demo_cfg.sources.model_copy(
            update={"transactions": SourceConfig(path=tmp_path / path)})})
        with pytest.raises(ConfigError, match=rf"sources\.transactions\.path is .*{path}: demo-data writes one CSV"):
            demo_runner.run(other, customers=10, seed=1, quiet=True)
        assert not (tmp_path / path).exists()
    zipped_member = demo_cfg.model_copy(update={"sources": demo_cfg.sources.model_copy(  # not written over the archive
        update={"transactions": SourceConfig(path=tmp_path / "orders.zip", member="orders.csv")})})
    with pytest.raises(ConfigError, match=r"sources\.transactions\.path is .*orders\.zip: demo-data writes one CSV"):
        demo_runner.run(zipped_member, customers=10, seed=1, quiet=True)
    assert not (tmp_path / "orders.zip").exists()
    for path in ("orders.zip", "orders.csv.gz"):  # a user's download at the path is not written over with CSV text
        (tmp_path / path).write_bytes(b"the shop's archive")
        packed = demo_cfg.model_copy(update={"sources": demo_cfg.sources.model_copy(
            update={"transactions": SourceConfig(path=tmp_path / path)})})
        with pytest.raises(ConfigError, match=rf"sources\.transactions\.path is .*{path}: demo-data writes one CSV"):
            demo_runner.run(packed, customers=10, seed=1, quiet=True)
        assert (tmp_path / path).read_bytes() == b"the shop's archive"
    with pytest.raises(ConfigError, match="--customers must be at least 1"):
        demo_runner.run(demo_cfg, customers=0, seed=1, quiet=True)
