"""The one function that cuts events at a snapshot date (pipeline.snapshot)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl
import pytest
from pandas.testing import assert_frame_equal

from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.snapshot import cut_events, cut_frame, known_since, latest_event_date, snapshot_time

AS_OF = dt.date(2024, 7, 1)


def ts(text: str | None) -> pd.Timestamp | None:
    return None if text is None else pd.Timestamp(text, tz="UTC")


@pytest.fixture
def events() -> Events:
    return Events.from_frames(
        transactions=pd.DataFrame({
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["a", "a", "b", "b"],
            "ordered_at": [ts("2024-06-01"), ts("2024-06-30 23:59:59"), ts("2024-07-01"), ts("2024-05-01")],
            "amount": [10.0, 20.0, 30.0, 40.0],
            "promised_delivery_at": [ts("2024-06-05"), ts("2024-07-03"), ts("2024-07-04"), None],
            "delivered_at": [ts("2024-06-04"), ts("2024-07-01"), ts("2024-07-02"), ts("2024-06-30 12:00")],
        }),
        feedback=pd.DataFrame({
            "customer_id": ["a", "a"],
            "submitted_at": [ts("2024-06-30"), ts("2024-07-01")],
            "kind": ["nps", "nps"],
            "score": [3.0, 9.0],
        }),
        support_tickets=pd.DataFrame({
            "ticket_id": ["t1", "t2", "t3", "t4"],
            "customer_id": ["a", "a", "b", "b"],
            "opened_at": [ts("2024-06-01"), ts("2024-06-20"), ts("2024-07-01"), ts("2024-06-25")],
            "closed_at": [ts("2024-06-02"), ts("2024-07-01"), ts("2024-07-02"), None],
            "first_response_at": [ts("2024-06-01 02:00"), ts("2024-07-05"), None, ts("2024-06-26")],
            "resolved": pd.array([True, True, True, pd.NA], dtype="boolean"),
        }),
        loyalty_events=pd.DataFrame({
            "customer_id": ["a", "a"],
            "occurred_at": [ts("2024-06-30 23:00"), ts("2024-07-01")],
            "kind": ["earn", "earn"],
            "points": [5.0, 7.0],
        }),
        customers=pd.DataFrame({
            "customer_id": ["a", "b", "c"],
            "signup_at": [ts("2024-01-01"), None, ts("2024-07-01")],
            "region": ["north", "south", "east"],
        }),
    )


def test_cut_events_applies_each_source_rule(events):
    cut = cut_events(events, as_of=AS_OF)
    expected = Events.from_frames(
        transactions=pd.DataFrame({
            "order_id": ["o1", "o2", "o4"],
            "customer_id": ["a", "a", "b"],
            "ordered_at": [ts("2024-06-01"), ts("2024-06-30 23:59:59"), ts("2024-05-01")],
            "amount": [10.0, 20.0, 40.0],
            # promised dates are known when ordering; delivery at or after t is not known yet
            "promised_delivery_at": [ts("2024-06-05"), ts("2024-07-03"), None],
            "delivered_at": [ts("2024-06-04"), None, ts("2024-06-30 12:00")],
        }),
        feedback=pd.DataFrame({
            "customer_id": ["a"], "submitted_at": [ts("2024-06-30")], "kind": ["nps"], "score": [3.0],
        }),
        support_tickets=pd.DataFrame({
            "ticket_id": ["t1", "t2", "t4"],
            "customer_id": ["a", "a", "b"],
            "opened_at": [ts("2024-06-01"), ts("2024-06-20"), ts("2024-06-25")],
            # t2 closes exactly at t: still open at t, so not resolved yet; its reply came after t
            "closed_at": [ts("2024-06-02"), None, None],
            "first_response_at": [ts("2024-06-01 02:00"), None, ts("2024-06-26")],
            "resolved": pd.array([True, pd.NA, pd.NA], dtype="boolean"),
        }),
        loyalty_events=pd.DataFrame({
            "customer_id": ["a"], "occurred_at": [ts("2024-06-30 23:00")], "kind": ["earn"], "points": [5.0],
        }),
        customers=pd.DataFrame({
            "customer_id": ["a", "b"], "signup_at": [ts("2024-01-01"), None], "region": ["north", "south"],
        }),
    )
    for name, frame in cut.items():
        assert_frame_equal(frame, getattr(expected, name), obj=name)


def test_cut_events_does_not_mutate_and_is_idempotent(events):
    before = {name: frame.copy() for name, frame in events.items()}
    once = cut_events(events, as_of=AS_OF)
    twice = cut_events(once, as_of=AS_OF)
    for name, frame in events.items():
        assert_frame_equal(frame, before[name])
        assert_frame_equal(getattr(twice, name), getattr(once, name))


def test_cut_events_of_empty_sources_keeps_the_contract():
    cut = cut_events(Events.from_frames(), as_of=AS_OF)
    for name, frame in cut.items():
        assert_frame_equal(frame, getattr(Events.from_frames(), name))


def test_cut_frame_works_on_lazy_frames_with_extra_columns():
    frame = pl.DataFrame({
        "ordered_at": [snapshot_time(AS_OF) - dt.timedelta(hours=1), snapshot_time(AS_OF)],
        "extra": [1, 2],
    })
    result = cut_frame(frame.lazy(), "transactions", as_of=AS_OF).collect()
    assert result["extra"].to_list() == [1]


@pytest.mark.parametrize("bad", [dt.datetime(2024, 7, 1), "2024-07-01", pd.Timestamp("2024-07-01")])
def test_snapshot_date_must_be_a_date(events, bad):
    with pytest.raises(FeatureError, match="must be a datetime.date"):
        cut_events(events, as_of=bad)


def test_unknown_source_is_rejected():
    with pytest.raises(FeatureError, match="cannot cut unknown source 'orders'"):
        cut_frame(pl.DataFrame({"x": [1]}), "orders", as_of=AS_OF)


def test_snapshot_time_is_midnight_utc():
    assert snapshot_time(AS_OF) == dt.datetime(2024, 7, 1, tzinfo=dt.UTC)


def test_latest_event_date(events):
    assert latest_event_date(events.transactions) == dt.date(2024, 7, 1)
    assert latest_event_date(Events.from_frames().transactions) is None


def test_a_ticket_resolved_by_status_is_resolved_from_its_status_known_at_on():
    # t1: resolved by status, no closed_at, its export's newest time 2024-06-20 12:00; t2: closed on 06-25, its
    # status_known_at (were it set) does not count; t3: not resolved by status: open whatever the export says.
    tickets = pl.DataFrame({
        "ticket_id": ["t1", "t2", "t3"],
        "opened_at": [ts("2024-06-01"), ts("2024-06-01"), ts("2024-06-01")],
        "closed_at": [None, ts("2024-06-25"), None],
        "resolved": [True, True, False],
        "status_known_at": [ts("2024-06-20 12:00"), ts("2024-06-10"), ts("2024-06-20 12:00")],
    }).with_columns(pl.col(c).dt.cast_time_unit("us") for c in ("opened_at", "closed_at", "status_known_at"))
    for day, resolved, known in [
        (dt.date(2024, 6, 20), [None, None, None], [None, ts("2024-06-10"), None]),  # 12:00 is after t: open
        (dt.date(2024, 6, 21), [True, None, False], [ts("2024-06-20 12:00"), ts("2024-06-10"), ts("2024-06-20 12:00")]),
        (dt.date(2024, 6, 26), [True, True, False], [ts("2024-06-20 12:00"), ts("2024-06-10"), ts("2024-06-20 12:00")]),
    ]:
        cut = cut_frame(tickets, "support_tickets", as_of=day)
        assert cut["resolved"].to_list() == resolved, day
        assert cut["status_known_at"].to_list() == known, day
        t = snapshot_time(day)
        # known_since is the same rule in another form: resolved is kept exactly when it is known before t
        since = tickets.select(known_since("support_tickets", "resolved"))["opened_at"]
        assert [s is not None and s < t for s in since] == [r is not None for r in resolved], day
    assert tickets.select(known_since("support_tickets", "resolved"))["opened_at"].to_list() == [
        ts("2024-06-20 12:00"), ts("2024-06-25"), ts("2024-06-20 12:00")]


def test_tickets_without_status_known_at_or_closed_at_columns_are_cut_as_before():
    tickets = pl.DataFrame({"opened_at": [ts("2024-06-01")], "resolved": [True]}).with_columns(
        pl.col("opened_at").dt.cast_time_unit("us"))
    assert cut_frame(tickets, "support_tickets", as_of=AS_OF)["resolved"].to_list() == [None]  # open: no closed_at
    with_close = tickets.with_columns(closed_at=pl.col("opened_at"))
    assert cut_frame(with_close, "support_tickets", as_of=AS_OF)["resolved"].to_list() == [True]
