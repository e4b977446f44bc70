"""Point-in-time correctness (property test) and the per-customer / population split (Dask path)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import (
    build_features,
    customer_aggregates,
    features_from_partitions,
    partitioned_event_tables,
    population_features,
)
from pipeline.features.tables import SOURCE_COLUMNS, customer_partitions, partition_bounds
from pipeline.labels import churn_labels_from_partitions, label_churn
from pipeline.run.features import features_and_labels_streamed, partition_count
from pipeline.snapshot import to_polars

AS_OF = dt.date(2024, 7, 1)
T = pd.Timestamp("2024-07-01", tz="UTC")
CFG = FeaturesConfig(snapshots={"dates": [AS_OF]}, windows_days=[30, 90], lookback_days=120)
CUSTOMERS = ["a", "b", "c", "d"]

# Hours from t, often within a day and a half of it: where the midnight of another time zone than the business one
# would cut.
hours_before_or_after = st.integers(-36, 36) | st.integers(min_value=-200 * 24, max_value=20 * 24)
hours_at_or_after = st.integers(0, 36) | st.integers(min_value=0, max_value=100 * 24)
maybe_delay = st.none() | st.integers(min_value=0, max_value=30 * 24)


def at(hours: int | None, base: pd.Timestamp = T) -> pd.Timestamp | None:
    return None if hours is None else base + pd.Timedelta(hours=hours)


def transaction_rows(offsets):
    return st.lists(st.tuples(
        st.sampled_from(["o1", "o2", "o3", "o4"]), st.sampled_from(CUSTOMERS), offsets,
        st.integers(-2000, 5000).map(lambda c: c / 100), st.sampled_from([None, "x", "y"]),
        st.sampled_from([None, 0.0, 3.0]), maybe_delay, maybe_delay,
    ), max_size=8)


def feedback_rows(offsets):
    return st.lists(st.tuples(st.sampled_from(CUSTOMERS), offsets, st.sampled_from(["nps", "csat", "review"]),
                              st.integers(0, 10)), max_size=5)


def ticket_rows(offsets):
    """(customer, opening, closing delay, reply delay, resolved, status_known_at delay: the export's newest time)."""
    return st.lists(st.tuples(st.sampled_from(CUSTOMERS), offsets, maybe_delay, maybe_delay,
                              st.sampled_from([None, True, False]), maybe_delay), max_size=4)


def loyalty_rows(offsets):
    return st.lists(st.tuples(
        st.sampled_from(CUSTOMERS), offsets, st.sampled_from(["enroll", "earn", "redeem", "tier_change", "expire"]),
        st.sampled_from([None, 50.0, -20.0, 700.0]), st.sampled_from([None, "bronze", "gold", " Gold", "vip", ""]),
    ), max_size=5)


def frames(tx, fb, tk, ly, *, prefix: str, t: pd.Timestamp = T) -> dict[str, pd.DataFrame]:
    transactions = pd.DataFrame(
        [(o, c, at(h, t), amount, cat, disc, at(p, at(h, t)), at(d, at(h, t)))
         for o, c, h, amount, cat, disc, p, d in tx],
        columns=["order_id", "customer_id", "ordered_at", "amount", "category", "discount",
                 "promised_delivery_at", "delivered_at"],
    )
    feedback = pd.DataFrame(
        [(c, at(h, t), kind, float(score if kind == "nps" else min(max(score, 1), 5))) for c, h, kind, score in fb],
        columns=["customer_id", "submitted_at", "kind", "score"],
    )
    tickets = pd.DataFrame(
        [(f"{prefix}{i}", c, at(h, t), at(close, at(h, t)), at(reply, at(h, t)), res, at(known, at(h, t)))
         for i, (c, h, close, reply, res, known) in enumerate(tk)],
        columns=["ticket_id", "customer_id", "opened_at", "closed_at", "first_response_at", "resolved",
                 "status_known_at"],
    ).astype({"resolved": "boolean"})
    loyalty = pd.DataFrame([(c, at(h, t), kind, pts, tier) for c, h, kind, pts, tier in ly],
                           columns=["customer_id", "occurred_at", "kind", "points", "tier"])
    return {"transactions": transactions, "feedback": feedback, "support_tickets": tickets, "loyalty_events": loyalty}


def concat(base: dict[str, pd.DataFrame], extra: dict[str, pd.DataFrame]) -> Events:
    merged = {name: pd.concat([frame, extra[name]], ignore_index=True) if name in extra else frame
              for name, frame in base.items()}
    return Events.from_frames(**merged)


def future_changed(base: dict[str, pd.DataFrame], t: pd.Timestamp = T) -> dict[str, pd.DataFrame]:
    """The same events, but every value that lies at or after t replaced by another one after t (or null)."""
    changed = {name: frame.copy() for name, frame in base.items()}
    tx, tk = changed["transactions"], changed["support_tickets"]
    late = tx["delivered_at"].notna() & (pd.to_datetime(tx["delivered_at"], utc=True) >= t)
    tx.loc[late, "delivered_at"] = None
    closed, known = (pd.to_datetime(tk[c], utc=True) for c in ("closed_at", "status_known_at"))
    resolved_known = (closed < t) | (closed.isna() & (known < t))  # with its closing time, else from its export's
    for column in ("closed_at", "first_response_at", "status_known_at"):
        after = tk[column].notna() & (pd.to_datetime(tk[column], utc=True) >= t)
        tk.loc[after, column] = t + pd.Timedelta(days=400)
    tk.loc[~resolved_known, "resolved"] = ~tk.loc[~resolved_known, "resolved"].fillna(False)
    return changed


# The snapshot's midnight in the business time zone. The 200 days before each hold both DST changes, the fall-back
# hour's wall times repeating (events are on whole hours from t, so they fall on it); Sydney's midnight comes
# before UTC's, so a cut left at UTC midnight would take in the events of its first 11 hours.
ZONED = [("UTC", AS_OF), ("America/Los_Angeles", dt.date(2024, 11, 15)), ("Australia/Sydney", dt.date(2024, 10, 20))]


@pytest.mark.slow
@pytest.mark.parametrize(("zone", "as_of"), ZONED)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.tuples(transaction_rows(hours_before_or_after), feedback_rows(hours_before_or_after),
                   ticket_rows(hours_before_or_after), loyalty_rows(hours_before_or_after),
                   st.lists(st.tuples(st.sampled_from(CUSTOMERS), hours_before_or_after), max_size=4,
                            unique_by=lambda r: r[0])),
    later=st.tuples(transaction_rows(hours_at_or_after), feedback_rows(hours_at_or_after),
                    ticket_rows(hours_at_or_after), loyalty_rows(hours_at_or_after),
                    st.lists(st.sampled_from(["n1", "n2", "n3"]), max_size=3, unique=True), hours_at_or_after),
)
def test_events_at_or_after_t_change_no_feature(zone, as_of, base, later):
    t = pd.Timestamp(as_of, tz=zone).tz_convert("UTC")
    cfg = FeaturesConfig(snapshots={"dates": [as_of]}, windows_days=[30, 90], lookback_days=120, timezone=zone)
    tx, fb, tk, ly, signups = base
    base_frames = frames(tx, fb, tk, ly, prefix="t", t=t)
    base_frames["customers"] = pd.DataFrame(
        [(c, at(h, t), "north") for c, h in signups], columns=["customer_id", "signup_at", "region"]
    )
    ltx, lfb, ltk, lly, new_customers, signup_hours = later
    extra = frames(ltx, lfb, ltk, lly, prefix="later", t=t)
    extra["customers"] = pd.DataFrame({"customer_id": new_customers, "signup_at": at(signup_hours, t),
                                       "region": "south"})
    expected = build_features(Events.from_frames(**base_frames), as_of=as_of, cfg=cfg)
    assert_frame_equal(build_features(concat(base_frames, extra), as_of=as_of, cfg=cfg), expected)
    assert_frame_equal(build_features(Events.from_frames(**future_changed(base_frames, t)), as_of=as_of, cfg=cfg),
                       expected)


def synthetic_events(customers: int, seed: int) -> Events:
    """Customers buy at their own rate between their first day and the day they drop out."""
    rng = np.random.default_rng(seed)
    n = customers * 12
    rate = rng.gamma(0.7, 1.0, customers)
    buyer = rng.choice(customers, n, p=rate / rate.sum())
    first = rng.uniform(0, 300, customers)
    last = first + rng.exponential(200, customers)
    days_after_start = first[buyer] + rng.uniform(0, 1, n) * (np.minimum(last, 500)[buyer] - first[buyer])
    ordered = T - pd.Timedelta(days=500) + pd.to_timedelta(np.round(days_after_start * 24), unit="h")
    transactions = pd.DataFrame({
        "order_id": [f"o{i}" for i in rng.integers(0, n // 2, n)],
        "customer_id": [f"c{i:04d}" for i in buyer],
        "ordered_at": ordered,
        "amount": np.round(rng.normal(40, 30, n), 2),
        "category": rng.choice(["x", "y", "z"], n),
        "discount": rng.choice([0.0, 2.5], n),
        "promised_delivery_at": ordered + pd.Timedelta(days=3),
        "delivered_at": ordered + pd.to_timedelta(rng.integers(24, 150, n), unit="h"),
    })
    feedback = pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in rng.integers(0, customers, n // 4)],
        "submitted_at": T - pd.to_timedelta(rng.integers(0, 500 * 24, n // 4), unit="h"),
        "kind": "nps", "score": rng.integers(0, 11, n // 4).astype(float),
    })
    # Tickets, some resolved by status without a closed_at: their export's newest time lies between the two
    # snapshots the tests read (2024-03-01 and AS_OF), so they are open at the first and resolved at the second.
    m = n // 5
    opened = T - pd.to_timedelta(rng.integers(0, 400 * 24, m), unit="h")
    closed = opened + pd.to_timedelta(rng.integers(1, 300, m), unit="h")
    by_status = rng.uniform(0, 1, m) < 0.3
    resolved = rng.choice([True, False], m, p=[0.8, 0.2])
    support_tickets = pd.DataFrame({
        "ticket_id": [f"t{i}" for i in range(m)],
        "customer_id": [f"c{i:04d}" for i in rng.integers(0, customers, m)],
        "opened_at": opened,
        "closed_at": closed.where(~by_status & (rng.uniform(0, 1, m) < 0.9)),
        "first_response_at": opened + pd.to_timedelta(rng.integers(0, 48, m), unit="h"),
        "resolved": pd.array(resolved | by_status, dtype="boolean"),
        "status_known_at": pd.Series(T - pd.Timedelta(days=60), index=range(m)).where(by_status),
    })
    return Events.from_frames(transactions=transactions, feedback=feedback, support_tickets=support_tickets)


def test_partitioned_by_customer_equals_single_machine_exactly():
    """The Dask path: per-customer step on customer partitions, concatenated, then the population step."""
    events = synthetic_events(300, seed=3)
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    customer_ids = events.transactions["customer_id"].drop_duplicates().sort_values()
    parts = np.array_split(customer_ids.to_numpy()[::-1], 3)  # any split by customer, any order
    for as_of in (AS_OF, dt.date(2024, 3, 1)):
        aggregates = pd.concat([
            customer_aggregates(Events.from_frames(**{
                name: frame[frame["customer_id"].isin(part)] for name, frame in events.items()
            }), as_of=as_of, cfg=cfg)
            for part in parts
        ], ignore_index=True)
        partitioned = population_features(aggregates, cfg=cfg)
        single = build_features(events, as_of=as_of, cfg=cfg)
        assert single["btyd_p_alive"].notna().all()  # the fit succeeded, so BTYD is compared too
        assert_frame_equal(partitioned, single, check_exact=True)


def range_partitioned_tables(events, *, partitions: int) -> list:
    """The polars engine's event tables of `events` in `partitions` customer ranges, each customer in one."""
    frames = {name: to_polars(frame[SOURCE_COLUMNS[name]]) for name, frame in events.items()}
    tables = partitioned_event_tables(frames, partitions=partitions)
    assert len(tables) == partitions
    assert sum(t.customers for t in tables) == events.transactions["customer_id"].nunique()
    return tables


def test_tables_prepared_per_customer_partition_give_the_same_features_and_labels():
    """The polars engine's memory-bounded path: event tables per customer partition, read together."""
    events = synthetic_events(300, seed=4)
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    tables = range_partitioned_tables(events, partitions=4)
    for as_of in (AS_OF, dt.date(2024, 3, 1)):
        assert_frame_equal(features_from_partitions(tables, as_of=as_of, cfg=cfg),
                           build_features(events, as_of=as_of, cfg=cfg), check_exact=True)
        assert_frame_equal(churn_labels_from_partitions(tables, as_of=as_of, lookback_days=365, horizon_days=90),
                           label_churn(events.transactions, as_of=as_of, lookback_days=365, horizon_days=90))


def test_customer_partitions_keep_every_row_once_and_each_customer_in_one_partition():
    events = synthetic_events(200, seed=6)
    frames = {name: to_polars(frame) for name, frame in events.items()}
    parts = list(customer_partitions(frames, partitions=3))
    for name, frame in frames.items():
        assert sum(part[name].height for part in parts) == frame.height
        owners = [set(part[name]["customer_id"]) for part in parts]
        assert all(not (owners[i] & owners[j]) for i in range(3) for j in range(i + 1, 3))
    transactions = parts[1]["transactions"]
    assert transactions.equals(frames["transactions"].filter(pl.col("customer_id").is_in(transactions["customer_id"].implode())))
    with pytest.raises(ValueError, match="partitions must be at least 1"):
        next(customer_partitions(frames, partitions=0))


def test_customer_partitions_are_ranges_of_customer_id_so_their_customers_concatenate_in_order():
    events = synthetic_events(200, seed=6)
    frames = {name: to_polars(frame) for name, frame in events.items()}
    parts = list(customer_partitions(frames, partitions=3))
    ids = [part["transactions"]["customer_id"].unique().sort() for part in parts]
    assert all(len(i) for i in ids)
    assert all(ids[k].max() < ids[k + 1].min() for k in range(2))
    rows = [part["transactions"].height for part in parts]
    assert max(rows) - min(rows) < 0.2 * frames["transactions"].height  # about the same rows each


def test_partition_bounds_weigh_customers_by_their_rows():
    ids = pl.Series("customer_id", ["a", "a", "a", "b", "c", "c", "d"])
    # 7 rows in 3 parts: a (3 rows) | b, c (3 rows) | d (1 row)
    assert partition_bounds(ids, partitions=3).to_list() == ["b", "d"]
    assert partition_bounds(ids, partitions=1).to_list() == []
    assert partition_bounds(pl.Series("customer_id", ["a", "a"]), partitions=4).to_list() == []


def test_partition_bounds_on_a_row_sample_keep_the_partitions_about_equal():
    rng = np.random.default_rng(4)
    rows = rng.geometric(0.05, size=3_000)  # customers of 1 to ~150 rows
    ids = pl.Series("customer_id", [f"c{k:05d}" for k in range(3_000)]).gather(
        rng.permutation(np.repeat(np.arange(3_000), rows)))
    bounds = partition_bounds(ids, partitions=4, sample_rows=2_000)  # every ~30th row counted
    assert bounds.is_sorted() and bounds.n_unique() == 3
    sizes = np.bincount(bounds.search_sorted(ids, side="right").to_numpy(), minlength=4)
    assert sizes.max() - sizes.min() < 0.1 * len(ids)
    assert partition_bounds(ids, partitions=4, sample_rows=len(ids)).to_list() == (
        partition_bounds(ids, partitions=4, sample_rows=10**9).to_list())  # no sample when it would be all rows


def test_more_partitions_than_customers_give_the_same_features():
    events = synthetic_events(3, seed=2)
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    tables = range_partitioned_tables(events, partitions=5)
    # Not bit for bit: polars divides a 3-row column and a 2-row one differently in the last bit (recency_days).
    assert_frame_equal(features_from_partitions(tables, as_of=AS_OF, cfg=cfg),
                       build_features(events, as_of=AS_OF, cfg=cfg), rtol=1e-12)


def test_row_order_of_the_input_does_not_matter():
    events = synthetic_events(100, seed=5)
    shuffled = Events.from_frames(**{name: frame.sample(frac=1.0, random_state=1) for name, frame in events.items()})
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]})
    assert_frame_equal(build_features(shuffled, as_of=AS_OF, cfg=cfg), build_features(events, as_of=AS_OF, cfg=cfg),
                       check_exact=True)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo"])
def test_features_and_labels_streamed_one_partition_at_a_time_equal_those_of_all_tables(zone):
    """Scoring reads one date: it prepares a partition's tables, reads them and drops them before the next."""
    events = synthetic_events(300, seed=4)
    frames = {name: to_polars(frame[SOURCE_COLUMNS[name]]) for name, frame in events.items()}
    rows = frames["transactions"].height
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, timezone=zone)
    cfg = cfg.model_copy(update={"partition_rows": max(1, rows // 4)})  # below what a config may set: 4 partitions
    assert partition_count(rows, partition_rows=cfg.partition_rows) >= 4
    features, labels = features_and_labels_streamed(frames, as_of=AS_OF, labels_as_of=dt.date(2024, 3, 1), cfg=cfg,
                                                    horizon_days=60)
    assert_frame_equal(features, build_features(events, as_of=AS_OF, cfg=cfg), check_exact=True)
    assert_frame_equal(labels, label_churn(events.transactions, as_of=dt.date(2024, 3, 1), lookback_days=365,
                                           horizon_days=60, timezone=zone))
