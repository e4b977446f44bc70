"""The timeline machinery behind the features: exact sorting, cut positions, prefix sums, numbering."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.errors import FeatureError
from pipeline.features.tables import (
    _number_customers,
    _product_days,
    runs_in_order,
)
from pipeline.features.timeline import DAY_US, NONE, Cut, PrefixSums, Timeline, carry_index, latest_before, order_by



@settings(max_examples=200, deadline=None)
@given(st.data())
def test_order_by_is_a_stable_lexicographic_sort(data):
    n = data.draw(st.integers(1, 60))
    keys = [
        data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 5))),  # few values: many ties
        data.draw(hnp.arrays(np.int64, n, elements=st.integers(-(2**62), 2**62))),  # wide: cut to fit
        data.draw(hnp.arrays(np.uint64, n, elements=st.integers(0, 2**64 - 1))),  # hashes
    ]
    expected = np.lexsort((np.arange(n), *reversed(keys)))
    assert order_by(*keys).tolist() == expected.tolist()
    assert order_by(keys[2], keys[0]).tolist() == np.lexsort((np.arange(n), keys[0], keys[2])).tolist()


def test_order_by_of_nothing():
    assert order_by(np.zeros(0, dtype=np.int64)).tolist() == []


def timeline() -> tuple[Timeline, np.ndarray, np.ndarray]:
    codes = np.array([0, 0, 0, 2, 2, 3])  # customer 1 has no rows
    days = np.array([10, 12, 12, 5, 30, 11])
    return Timeline.build(codes, days, customers=4), codes, days


@pytest.mark.parametrize("day", [-100, 5, 6, 11, 12, 13, 31, 10**6])
def test_positions_split_the_rows_known_before_a_day(day):
    found, codes, days = timeline()
    expected = [int(np.flatnonzero((codes < c) | ((codes == c) & (days < day))).size) for c in range(4)]
    assert found.positions(day).tolist() == expected
    assert found.all_positions(day).tolist() == expected
    assert found.positions(day, np.array([3, 0])).tolist() == [expected[3], expected[0]]
    assert found.starts().tolist() == [0, 3, 3, 5]


def test_prefix_sums_give_window_sums_and_carried_rows_the_latest_row():
    found, codes, days = timeline()
    sums = PrefixSums.of(ones=np.ones(6, dtype=np.int64), value=np.array([1, 2, 4, 8, 16, 32]))
    cut = Cut(t=dt.datetime(1970, 1, 13, tzinfo=dt.UTC), codes=np.arange(4))  # day 12
    start, end = cut.rows(found)
    known = sums.at(end) - sums.at(start)
    assert known["ones"].tolist() == [1, 0, 1, 1] and known["value"].tolist() == [1, 0, 8, 32]
    recent = sums.at(end) - sums.at(cut.positions(found, cut.since(1)))  # day 11 only
    assert recent["value"].tolist() == [0, 0, 0, 32]
    flagged = carry_index(np.array([False, True, False, True, False, False]), codes)
    assert flagged.tolist() == [NONE, 1, 1, 3, 3, NONE]
    assert latest_before(flagged, start, end).tolist() == [NONE, NONE, 3, NONE]


def test_sums_read_at_a_cut_are_memoised_and_one_value_reads_like_the_whole_row():
    found, _, _ = timeline()
    sums = PrefixSums.of(ones=np.ones(6, dtype=np.int64), value=np.array([1, 2, 4, 8, 16, 32]))
    cut = Cut(t=dt.datetime(1970, 1, 13, tzinfo=dt.UTC), codes=np.array([0, 2, 3]))  # day 12
    before = cut.sums_at(found, sums, cut.day)
    assert cut.sums_at(found, sums, cut.day) is before  # a second family reading it gets the same arrays
    assert (before - cut.sums_at(found, sums, None))["value"].tolist() == [1, 8, 32]
    since_11 = cut.positions(found, cut.since(1))
    # prefix sums of the rows before day 11: [1], [1 + 2 + 4 + 8], [1 + 2 + 4 + 8 + 16]
    assert sums.column_at("value", since_11).tolist() == sums.at(since_11)["value"].tolist() == [1, 15, 31]


def test_two_customer_ids_with_the_same_hash_are_an_error_not_a_merge():
    transactions = pl.DataFrame({"customer_id": ["a", "b"]})
    lines = {
        "hash": np.array([7, 7], dtype=np.uint64),  # as if "a" and "b" had the same 64-bit hash
        "check": np.array([1, 2], dtype=np.uint64),
        "at_us": np.array([0, 1], dtype=np.int64),
        "order": np.array([0, 0], dtype=np.uint64),
    }
    with pytest.raises(FeatureError, match="same 64-bit hash"):
        _number_customers(transactions, lines)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_product_window_counts_the_distinct_products_bought_in_the_days_before_each_cut(data):
    n = data.draw(st.integers(0, 40))
    rows = sorted(data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30)), min_size=n, max_size=n)))
    codes = np.array([c for c, _ in rows], dtype=np.int64)  # lines in (customer, time) order, as prepared
    at_us = np.array([d for _, d in rows], dtype=np.int64) * DAY_US
    products = data.draw(st.lists(st.sampled_from(["p", "q", "r", None]), min_size=n, max_size=n))
    purchase = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    window = data.draw(st.integers(1, 12))
    found = _product_days(pl.Series(products, dtype=pl.String), {"is_purchase": purchase, "at_us": at_us},
                          np.arange(n), codes, 3)
    stream = found.window(window)
    for day in range(-1, 45):
        cut = Cut(t=dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day), codes=np.arange(3))
        start, end = cut.rows(stream.timeline)
        counted = (stream.sums.at(end) - stream.sums.at(start))["delta"].tolist()
        first_start, first_end = cut.rows(found.first.timeline)
        bought = (found.first.sums.at(first_end) - found.first.sums.at(first_start))["delta"].tolist()
        for c in range(3):
            bought_at = [(p, d) for (code, d), p, buys in zip(rows, products, purchase)
                         if code == c and p is not None and buys and d < day]
            assert counted[c] == len({p for p, d in bought_at if d >= day - window})
            assert bought[c] == len({p for p, _ in bought_at})


def test_runs_in_order_lists_the_runs_rows_one_run_after_the_other():
    # rows 0-1, 2, 3-5 are runs 0, 1, 2; taken in the order 2, 0, 1
    assert runs_in_order(np.array([0, 2, 3]), np.array([2, 1, 3]), np.array([2, 0, 1])).tolist() == [3, 4, 5, 0, 1, 2]
    assert runs_in_order(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_runs_in_order_is_the_stable_sort_of_the_rows_by_their_runs_key(sizes, random):
    keys = list(range(len(sizes)))
    random.shuffle(keys)  # a distinct key per run
    row_keys = np.repeat(keys, sizes)
    starts = np.cumsum(sizes) - np.array(sizes)
    found = runs_in_order(starts, np.array(sizes), np.argsort(keys))
    assert found.tolist() == np.argsort(row_keys, kind="stable").tolist()
