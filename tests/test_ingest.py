"""Pure ingest functions on tiny inline frames: parsing, rules, reasons, reference time, splitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal, assert_series_equal

from pipeline.config import IngestConfig, SourceConfig
from pipeline.contract import CONTRACTS, empty_frame
from pipeline.errors import IngestError
from pipeline.ingest import (
    ParsedSource,
    check_validated,
    duplicate_rows,
    find_problems,
    ingest_sources,
    keep_rows,
    parse_source,
    data_start,
    reference_time,
    repeated,
    row_reasons,
    validation_schema,
)
from pipeline.ingest_notes import free_order_note, order_gap_note, order_total_note, orders_per_day, thin_end_note
from pipeline.sources import (
    RawSource,
    SourceResult,
    empty_problems,
    parse_booleans,
    parse_ids,
    parse_numbers,
    parse_timestamps,
    row_origin,
)

UTC = "datetime64[us, UTC]"


def raw_source(name: str, rows: dict[str, list], *, file: str = "in.csv") -> RawSource:
    """A RawSource as the CSV reader makes it: every column str, None for empty cells."""
    frame = pd.DataFrame({column: pd.Series(values, dtype="str") for column, values in rows.items()})
    origin = pd.DataFrame(
        {"source_file": pd.Series([file] * len(frame), dtype="str"), "source_row": np.arange(1, len(frame) + 1)}
    )
    return RawSource(name=name, frame=frame, origin=origin, files=(Path(file),))


def source_config(**settings) -> SourceConfig:
    return SourceConfig(path=Path("in.csv"), **settings)


def ingest(raws: dict[str, RawSource], *, configs: dict[str, SourceConfig] | None = None, **settings):
    configs = configs or {}
    sources = {name: configs.get(name, source_config()) for name in raws}
    return ingest_sources(raws, sources=sources, cfg=IngestConfig(**settings))


def transactions(**overrides) -> RawSource:
    rows = {
        "order_id": ["o1", "o1", "o2"],
        "customer_id": ["c1", "c1", "c2"],
        "ordered_at": ["2024-01-01 10:00:00", "2024-01-01 10:00:00", "2024-01-02 11:00:00"],
        "amount": ["10.5", "10.5", "-3"],
    }
    rows.update(overrides)
    return raw_source("transactions", rows)


def ts(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True), dtype=UTC)


# --- parsing --------------------------------------------------------------------------------------


def test_parse_numbers_rejects_text_commas_and_infinity():
    raw = pd.Series(["1", " -2.5 ", "1e3", ".5", "12,50", "ten", "inf", None], dtype="str")
    expected = pd.Series([1.0, -2.5, 1000.0, 0.5, np.nan, np.nan, np.nan, np.nan])
    assert_series_equal(parse_numbers(raw), expected)


def test_parse_numbers_with_a_decimal_comma_and_a_thousands_separator():
    raw = pd.Series(["2,55", " -1.234,5 ", "1.234.567", "7", "12.50", "1e3", ",5", "1,2,3", "", None], dtype="str")
    assert_series_equal(parse_numbers(raw, decimal=",", thousands="."),
                        pd.Series([2.55, -1234.5, 1234567.0, 7.0, 1250.0, 1000.0, 0.5, np.nan, np.nan, np.nan]))
    # without a thousands separator a '.' is neither mark: '12.50' is not read as 12.5 nor as 1250
    assert_series_equal(parse_numbers(raw, decimal=","),
                        pd.Series([2.55, np.nan, np.nan, 7.0, np.nan, 1000.0, 0.5, np.nan, np.nan, np.nan]))
    assert_series_equal(parse_numbers(pd.Series(["1,234.5", "1 234", "2"], dtype="str"), thousands=","),
                        pd.Series([1234.5, np.nan, 2.0]))
    assert_series_equal(parse_numbers(pd.Series(["1 234,5", "1\u00a0234,5"], dtype="str"), decimal=",", thousands=" "),
                        pd.Series([1234.5, np.nan]))
    typed = pd.Series([1.5, 2.0])  # a typed column (Parquet) is read as it is
    assert_series_equal(parse_numbers(typed, decimal=",", thousands="."), typed)


def test_parse_booleans_accepts_words_and_digits():
    raw = pd.Series(["true", "No", "1", "0", "YES", "maybe", None], dtype="str")
    expected = pd.Series([True, False, True, False, True, pd.NA, pd.NA], dtype="boolean")
    assert_series_equal(parse_booleans(raw), expected)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), st.sampled_from(["", ".0", ".00", "."]))
def test_parse_ids_gives_integer_ids_one_text_whatever_their_type(number, decimals):
    text = pd.Series([f" {number}{decimals} ", str(number)], dtype="str")
    assert parse_ids(text).tolist() == [str(number)] * 2
    assert parse_ids(pd.Series([float(number)])).tolist() == [str(number)]  # a float Parquet column
    assert parse_ids(pd.Series([number], dtype="int64")).tolist() == [str(number)]


def test_parse_ids_keeps_other_text_and_folds_case_only_when_asked():
    raw = pd.Series(["17850.5", "0017850", "AB-1.0", "Ab1", None], dtype="str")
    assert parse_ids(raw).tolist()[:4] == ["17850.5", "0017850", "AB-1.0", "Ab1"]
    assert parse_ids(raw, case="lower").tolist()[3] == "ab1"
    assert parse_ids(raw, case="upper").tolist()[3] == "AB1"


def test_parse_ids_strips_and_treats_blank_as_missing():
    raw = pd.Series([" c1 ", "", "  ", None, "007"], dtype="str")
    assert_series_equal(parse_ids(raw), pd.Series(["c1", None, None, None, "007"], dtype="str"))
    assert parse_ids(pd.Series([7.0, 8.5])).tolist() == ["7", "8.5"]


def test_naive_timestamps_are_read_in_the_source_time_zone():
    raw = pd.Series(["2024-01-15 12:00:00", "2024-07-15 12:00:00", "2024-07-15T12:00:00+00:00", "nope"], dtype="str")
    parsed = parse_timestamps(raw, date_format=None, timezone="Europe/Berlin")
    # Winter UTC+1, summer UTC+2; an explicit offset wins over the zone.
    assert_series_equal(parsed, ts("2024-01-15 11:00", "2024-07-15 10:00", "2024-07-15 12:00", None))


def test_explicit_date_format_and_impossible_dates():
    raw = pd.Series(["19970101", "19971301", "1997-01-01"], dtype="str")
    parsed = parse_timestamps(raw, date_format="%Y%m%d", timezone="America/New_York")
    assert_series_equal(parsed, ts("1997-01-01 05:00", None, None))
    iso = parse_timestamps(pd.Series(["2024-02-29", "2024-02-30"], dtype="str"), date_format=None, timezone="UTC")
    assert_series_equal(iso, ts("2024-02-29", None))


def test_a_column_mostly_in_one_layout_still_parses_every_other_iso_form():
    # Most values share one length (the fast path); the others go through the ISO rules, index kept.
    usual = ["2024-01-15 12:00:00", "2024-07-15 12:00:00", "2024-07-16 08:30:00", "2024-07-17 09:00:00"]
    others = ["2024-07-18", "2024-07-18T12:00:00+00:00", "2024-07-18 10", "31/12/2024"]
    raw = pd.Series(usual + others, index=np.arange(10, 18), dtype="str")
    parsed = parse_timestamps(raw, date_format=None, timezone="Europe/Berlin")
    expected = ts(
        "2024-01-15 11:00", "2024-07-15 10:00", "2024-07-16 06:30", "2024-07-17 07:00",
        "2024-07-17 22:00", "2024-07-18 12:00", "2024-07-18 08:00", None,
    )
    assert_series_equal(parsed, expected.set_axis(raw.index))


def test_an_impossible_date_in_the_usual_layout_is_not_a_timestamp_and_spoils_no_other():
    raw = pd.Series(["2024-02-29 10:00:00", "2024-02-30 10:00:00", "2024-03-01 10:00:00", "2024-03-02"], dtype="str")
    parsed = parse_timestamps(raw, date_format=None, timezone="UTC")
    assert_series_equal(parsed, ts("2024-02-29 10:00", None, "2024-03-01 10:00", "2024-03-02 00:00"))


def test_ids_share_the_raw_column_unless_something_is_stripped_or_blank():
    clean = pd.Series(["c1", None, "c2"], dtype="str")
    assert_series_equal(parse_ids(clean), clean)
    messy = pd.Series([" c1", "", "c2 "], dtype="str")
    assert_series_equal(parse_ids(messy), pd.Series(["c1", None, "c2"], dtype="str"))


def test_row_origin_numbers_rows_within_each_file():
    origin = row_origin([Path("a.csv"), Path("b.csv")], [2, 3])
    assert origin["source_file"].astype("str").tolist() == ["a.csv", "a.csv", "b.csv", "b.csv", "b.csv"]
    assert origin["source_row"].tolist() == [1, 2, 1, 2, 3]


# --- rules and reasons --------------------------------------------------------------------------


def test_feedback_rules_quarantine_each_bad_row_with_its_reason():
    raw = raw_source(
        "feedback",
        {
            "customer_id": ["c1", "c2", "c3", None, "c5", "c6", "c7"],
            "submitted_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "not a date", "2024-01-06", "2024-01-07"],
            "kind": ["nps", "nps", "csat", "nps", "review", "survey", "review"],
            "score": ["9", "-1", "6", "8", "4", "3", "ten"],
        },
    )
    result = ingest(
        {"feedback": raw, "transactions": transactions()}, max_bad_share=1.0, max_anonymous_share=1.0
    ).sources["feedback"]
    expected = raw.frame.iloc[1:].reset_index(drop=True).assign(
        source_file="in.csv",
        source_row=np.arange(2, 8),
        reason=[
            "score: outside 0-10 for nps",
            "score: outside 1-5 for csat (another scale? set sources.feedback.score_scales: {csat: [low, high]})",
            "anonymous",
            "submitted_at: not a timestamp",
            "kind: not one of nps, csat, review ('survey'; map each onto one of them with sources.feedback.recode: "
            "{kind: {survey: <kind>}})",
            "score: not a number (words: 'ten'; give each a number with sources.feedback.recode: {score: {ten: "
            "<number>}}, or leave their rows out with sources.feedback.exclude: {score: [ten]})",
        ],
    )
    expected = expected.astype({"source_file": "str", "reason": "str"})
    assert_frame_equal(result.quarantine, expected)
    assert result.validated["customer_id"].tolist() == ["c1"]
    assert result.report["input_rows"] == result.report["validated_rows"] + result.report["quarantined_rows"] == 7


def test_a_row_with_several_problems_lists_them_all_in_column_order():
    raw = raw_source(
        "feedback",
        {"customer_id": [None], "submitted_at": ["yesterday"], "kind": ["nps"], "score": ["11"]},
    )
    result = ingest(
        {"feedback": raw, "transactions": transactions()}, max_bad_share=1.0, max_anonymous_share=1.0
    ).sources["feedback"]
    assert result.quarantine["reason"].tolist() == [
        "anonymous; submitted_at: not a timestamp; score: outside 0-10 for nps"
    ]


def test_support_tickets_closed_before_opened_bad_channel_and_resolved_words():
    raw = raw_source(
        "support_tickets",
        {
            "ticket_id": ["t1", "t2", "t3", "t4"],
            "customer_id": ["c1", "c1", "c2", "c2"],
            "opened_at": ["2024-01-05 10:00", "2024-01-05 10:00", "2024-01-05 10:00", "2024-01-05 10:00"],
            "closed_at": ["2024-01-06 10:00", "2024-01-04 10:00", None, "2024-01-07 10:00"],
            "channel": ["email", "chat", "fax", "phone"],
            "resolved": ["yes", "0", None, "maybe"],
        },
    )
    result = ingest({"support_tickets": raw, "transactions": transactions()}, max_bad_share=1.0).sources[
        "support_tickets"
    ]
    assert result.quarantine["reason"].tolist() == [
        "closed_at: before opened_at",
        "channel: not one of phone, email, chat, social, other ('fax'; map each onto one of them with "
        "sources.support_tickets.recode: {channel: {fax: <channel>}})",
        "resolved: not true/false/yes/no/1/0 ('maybe'; say what each means with sources.support_tickets.recode: "
        "{resolved: {maybe: false}}, or true where it means yes)",
    ]
    assert result.validated["ticket_id"].tolist() == ["t1"]
    assert result.validated["resolved"].tolist() == [True]
    assert str(result.validated["resolved"].dtype) == "boolean"


def test_transactions_negative_discount_and_non_numeric_amount_are_bad_order_lines_are_fine():
    raw = transactions(discount=["0", "2.5", "-1"], amount=["10.5", "12,50 EUR", "-3"])
    result = ingest({"transactions": raw}, max_bad_share=1.0).sources["transactions"]
    assert result.quarantine["reason"].tolist() == [
        "amount: not a number (a currency sign? set sources.transactions.read.currency: 'EUR' and read.decimal: ',')",
        "discount: negative"]
    # The surviving order line keeps its order id; a negative amount (a return) is valid.
    assert result.validated["order_id"].tolist() == ["o1"]


def test_exact_duplicate_rows_are_kept_and_counted():
    result = ingest({"transactions": transactions()}).sources["transactions"]
    assert result.report["duplicate_rows"] == 1
    assert len(result.validated) == 3


def test_duplicates_are_equal_raw_rows_not_rows_that_parse_alike():
    # Rows 1 and 2 parse to the same values but differ as written ('2' vs '2.0'): not duplicates.
    raw = transactions(amount=["2", "2", "2.0"], ordered_at=["2024-01-01 10:00:00"] * 3, order_id=["o1"] * 3,
                       customer_id=["c1"] * 3)
    parsed = parse_source(raw, source_config())
    assert duplicate_rows(raw.frame, typed=parsed.typed) == 1
    assert duplicate_rows(raw.frame) == 1


def test_repeated_keys_match_a_plain_duplicate_search_across_partitions():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**64, 300_000, dtype=np.uint64)  # large enough for several partitions
    keys[rng.integers(0, len(keys), 500)] = keys[rng.integers(0, len(keys), 500)]
    assert (repeated(keys) == pd.Series(keys).duplicated(keep=False).to_numpy()).all()
    many = keys.copy()  # a third of the keys repeating: past the few a lookup after one sort handles
    many[rng.integers(0, len(keys), 100_000)] = many[rng.integers(0, len(keys), 100_000)]
    assert (repeated(many) == pd.Series(many).duplicated(keep=False).to_numpy()).all()
    assert repeated(np.array([5, 7, 5], dtype=np.uint64)).tolist() == [True, False, True]
    assert repeated(np.array([], dtype=np.uint64)).tolist() == []


def test_validated_rows_that_break_the_contract_are_reported_as_a_bug():
    schema = validation_schema("transactions", latest_allowed=None, labels={})
    validated = empty_frame("transactions")
    check_validated(validated, schema, name="transactions")  # an empty frame of the contract passes
    row = pd.DataFrame({"order_id": ["o1"], "customer_id": ["c1"], "amount": [1.0], "discount": [-1.0]})
    broken = pd.concat([validated, row.astype({"order_id": "str", "customer_id": "str"})], ignore_index=True)
    with pytest.raises(IngestError, match=r"transactions: validated rows break the contract \(.*\); this is a bug"):
        check_validated(broken, schema, name="transactions")


def test_validated_frame_holds_exactly_the_contract_columns_in_utc():
    result = ingest({"transactions": transactions()}).sources["transactions"]
    expected_dtypes = empty_frame("transactions").dtypes
    assert list(result.validated.columns) == CONTRACTS["transactions"].columns
    assert_series_equal(result.validated.dtypes, expected_dtypes)
    assert result.validated["ordered_at"].iloc[2] == pd.Timestamp("2024-01-02 11:00", tz="UTC")


def test_extra_columns_are_kept_aside_keyed_by_validated_row():
    raw = transactions(amount=["1", "oops", "3"], store=["s1", "s2", "s3"])
    result = ingest({"transactions": raw}, max_bad_share=1.0).sources["transactions"]
    expected = pd.DataFrame(
        {
            "validated_row": np.array([0, 1], dtype=np.int64),
            "source_file": pd.Series(["in.csv", "in.csv"], dtype="str"),
            "source_row": np.array([1, 3]),
            "store": pd.Series(["s1", "s3"], dtype="str"),
        }
    )
    assert_frame_equal(result.extra, expected)
    assert "store" in result.quarantine.columns  # rejected rows keep every column as read
    assert result.report["extra_columns"] == ["store"]


def test_rename_map_and_reasons_name_the_files_columns():
    raw = raw_source("transactions", {"OrderNo": ["1"], "Client": ["c1"], "When": ["bad"], "Net": ["5"]})
    config = source_config(rename={"OrderNo": "order_id", "Client": "customer_id", "When": "ordered_at", "Net": "amount"})
    result = ingest({"transactions": raw}, configs={"transactions": config}, max_bad_share=1.0)
    assert result.sources["transactions"].quarantine["reason"].tolist() == ["When: not a timestamp"]
    assert list(result.sources["transactions"].quarantine.columns[:4]) == ["OrderNo", "Client", "When", "Net"]


def test_one_order_per_row_synthesises_order_ids():
    raw = raw_source("transactions", {"customer_id": ["1", "1", "2"], "ordered_at": ["2024-01-01"] * 3, "amount": ["1", "2", "3"]})
    result = ingest({"transactions": raw}, configs={"transactions": source_config(one_order_per_row=True)})
    assert result.sources["transactions"].validated["order_id"].tolist() == ["R1", "R2", "R3"]


def test_row_reasons_joins_in_column_order():
    problems = pd.DataFrame(
        {"row": [4, 1, 4], "column": ["score", "kind", "customer_id"], "reason": ["score: x", "kind: y", "customer_id: z"]}
    )
    reasons = row_reasons(problems, column_order=["customer_id", "kind", "score"])
    assert reasons.to_dict() == {1: "kind: y", 4: "customer_id: z; score: x"}
    assert row_reasons(empty_problems(), column_order=["customer_id"]).empty


# --- reference time and the future ---------------------------------------------------------------


def _parsed_transactions(times: list[str]):
    n = len(times)
    raw = raw_source(
        "transactions",
        {"order_id": [f"o{i}" for i in range(n)], "customer_id": ["c"] * n, "ordered_at": times, "amount": ["1"] * n},
    )
    return {"transactions": parse_source(raw, source_config())}


def test_reference_time_ignores_far_future_outliers():
    times = [str(day.date()) for day in pd.date_range("2024-01-01", "2024-12-31", freq="D")]
    clean = reference_time(_parsed_transactions(times))
    assert clean == pd.Timestamp("2024-12-31", tz="UTC")
    # Even 3% of rows in 2099 cannot become the reference.
    corrupt = reference_time(_parsed_transactions(times + ["2099-01-01"] * 11))
    assert corrupt == pd.Timestamp("2024-12-31", tz="UTC")


def test_data_start_ignores_far_past_outliers():
    times = [str(day.date()) for day in pd.date_range("2024-01-01", "2024-12-31", freq="D")]
    assert data_start(_parsed_transactions(times)) == pd.Timestamp("2024-01-01", tz="UTC")
    # 1900-01-01 and the Unix epoch (common stand-ins for 'unknown'), even 3% of rows, cannot become the start.
    corrupt = data_start(_parsed_transactions(["1900-01-01"] * 6 + ["1970-01-01"] * 5 + times))
    assert corrupt == pd.Timestamp("2024-01-01", tz="UTC")


def test_data_start_keeps_a_sparse_but_real_beginning():
    # A shop whose first years had an order every few months, then many.
    sparse = [str(day.date()) for day in pd.date_range("2019-01-01", "2022-12-31", freq="90D")]
    busy = [str(day.date()) for day in pd.date_range("2023-01-01", "2024-12-31", freq="D")] * 3
    assert data_start(_parsed_transactions(sparse + busy)) == pd.Timestamp(sparse[0], tz="UTC")
    assert data_start(_parsed_transactions([])) is None


def test_reference_time_keeps_a_quiet_but_real_tail():
    # Most activity early, then sparse purchases every few weeks until the end (like CDNOW).
    busy = [str(day.date()) for day in pd.date_range("2024-01-01", "2024-03-31", freq="D")] * 5
    sparse = [str(day.date()) for day in pd.date_range("2024-04-01", "2024-12-31", freq="20D")]
    assert reference_time(_parsed_transactions(busy + sparse)) == pd.Timestamp(sparse[-1], tz="UTC")


def test_reference_time_without_timestamps_is_none():
    assert reference_time(_parsed_transactions([])) is None


def test_timestamps_beyond_reference_plus_tolerance_are_quarantined():
    times = [str(day.date()) for day in pd.date_range("2024-01-01", "2024-12-31", freq="D")]
    raw = raw_source(
        "transactions",
        {
            "order_id": [f"o{i}" for i in range(len(times) + 2)],
            "customer_id": ["c"] * (len(times) + 2),
            "ordered_at": times + ["2025-01-01 12:00:00", "2099-01-01"],
            "amount": ["1"] * (len(times) + 2),
        },
    )
    result = ingest({"transactions": raw}, future_tolerance_days=1).sources["transactions"]
    # 2025-01-01 12:00 is within a day of the end (2024-12-31); 2099 is not.
    assert result.quarantine["ordered_at"].tolist() == ["2099-01-01"]
    assert result.quarantine["reason"].str.startswith("ordered_at: later than the data's end + tolerance").all()
    assert result.report["quarantined_rows"] == 1


# --- sources as a whole --------------------------------------------------------------------------


def test_a_source_over_the_bad_share_fails_naming_source_share_and_reasons():
    raw = transactions(amount=["x", "y", "1"])
    with pytest.raises(IngestError, match=r"source transactions: 66\.7% of 3 rows are bad \(limit 20%\); top reasons: amount: not a number \(2 rows\)"):
        ingest({"transactions": raw})


def test_a_fully_bad_source_fails_and_says_nothing_was_written():
    feedback = raw_source("feedback", {"customer_id": ["c"], "submitted_at": ["x"], "kind": ["nps"], "score": ["1"]})
    with pytest.raises(IngestError, match=r"source feedback: 100\.0% of 1 rows are bad.*Nothing was written"):
        ingest({"transactions": transactions(), "feedback": feedback})


def test_header_only_transactions_are_an_error_other_sources_may_be_empty():
    empty = raw_source("transactions", {"order_id": [], "customer_id": [], "ordered_at": [], "amount": []})
    with pytest.raises(IngestError, match=r"source transactions: in\.csv has a header but no rows"):
        ingest({"transactions": empty})
    feedback = raw_source("feedback", {"customer_id": [], "submitted_at": [], "kind": [], "score": []})
    result = ingest({"transactions": transactions(), "feedback": feedback})
    assert result.sources["feedback"].report["input_rows"] == 0
    assert_frame_equal(result.sources["feedback"].validated, empty_frame("feedback"))


def test_unconfigured_sources_come_back_empty_and_say_so():
    result = ingest({"transactions": transactions()})
    report = result.report["sources"]["feedback"]
    assert report["configured"] is False
    assert report["notes"] == ["not configured: treated as a source without rows"]
    assert_frame_equal(result.sources["feedback"].validated, empty_frame("feedback"))
    assert set(result.sources) == set(CONTRACTS)


def test_earn_rows_with_negative_points_are_counted_in_a_note():
    """LoyaltyLion writes a refund's reversal as an earn with negative points; the features take them off the
    balance, and the report says how many there are (a redeem written negative, as usual, gets no note)."""
    loyalty = raw_source("loyalty_events", {
        "customer_id": ["c1", "c1", "c1", "c2", "c2"],
        "occurred_at": ["2024-01-01 10:00:00"] * 5,
        "kind": ["earn", "earn", "earn", "redeem", "earn"],
        "points": ["120", "-120", "-50", "-500", "-1"],
    })
    notes = ingest({"transactions": transactions(), "loyalty_events": loyalty}).sources["loyalty_events"].report["notes"]
    assert [n for n in notes if "negative points" in n] == [
        "3 earn rows have negative points (refund reversals or manual deductions?): they are taken off the points "
        "balance, not counted as points earned; if the export means redemptions or expiries by them, map those "
        "words to redeem or expire with recode"]
    positive = raw_source("loyalty_events", {"customer_id": ["c1"], "occurred_at": ["2024-01-01 10:00:00"],
                                             "kind": ["earn"], "points": ["120"]})
    notes = ingest({"transactions": transactions(), "loyalty_events": positive}).sources["loyalty_events"].report["notes"]
    assert not [n for n in notes if "negative points" in n]


def test_a_rule_that_cannot_run_is_reported_as_a_bug_not_as_bad_rows():
    typed = empty_frame("feedback").astype({"score": "str"})
    typed.loc[0] = ["c1", pd.Timestamp("2024-01-01", tz="UTC"), "nps", "abc", None, None, None]
    parsed = ParsedSource(name="feedback", typed=typed, problems=empty_problems(), labels={})
    with pytest.raises(IngestError, match=r"source feedback: validation rule\(s\) could not run: score: outside 0-10 for nps.*a bug"):
        find_problems(parsed, latest_allowed=None)


def test_keep_rows_equals_a_take_of_the_kept_rows_with_the_same_dtypes():
    frame = pd.DataFrame({
        "text": pd.Series(["a", None, " c", "d"], dtype="str"),
        "when": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-04-01"], utc=True)).astype(UTC),
        "number": [1.5, np.nan, -2.0, 3.0],
        "flag": pd.Series([True, None, False, True], dtype="boolean"),
        "file": pd.Categorical(["f1", "f1", "f2", "f2"]),
    }, index=np.arange(10, 14))
    keep = np.array([True, False, True, True])
    kept = keep_rows(frame, keep)
    assert_frame_equal(kept, frame.take(np.flatnonzero(keep)).reset_index(drop=True))
    assert_frame_equal(keep_rows(frame, np.zeros(4, dtype=bool)), frame.iloc[:0].reset_index(drop=True))


def test_duplicate_count_equals_pandas_duplicated_on_the_raw_rows():
    rng = np.random.default_rng(7)
    rows = 2_000
    raw = transactions(
        order_id=[f"o{i}" for i in rng.integers(0, 300, rows)],
        customer_id=[f"c{i}" for i in rng.integers(0, 5, rows)],
        ordered_at=[f"2024-01-0{i} 10:00:00" for i in rng.integers(1, 4, rows)],
        amount=[str(value) for value in rng.choice(["1", "1.0", "2", "x", " 2"], rows)],
        discount=[None] * rows,
    )
    parsed = parse_source(raw, source_config())
    expected = int(raw.frame.duplicated().sum())
    assert expected > 0
    assert duplicate_rows(raw.frame, typed=parsed.typed) == expected
    assert duplicate_rows(raw.frame) == expected


def test_parse_numbers_with_a_currency_sign_or_code():
    raw = pd.Series(["£2.55", "-£2.55", "£ -2.55", "2.55 £", "£1,234.50", "$3", "GBP 4", "7", None], dtype="str")
    assert_series_equal(parse_numbers(raw, currency="£", thousands=","),
                        pd.Series([2.55, -2.55, -2.55, 2.55, 1234.5, np.nan, np.nan, 7.0, np.nan]))
    euros = pd.Series(["12,50 EUR", "EUR 1.234,5", "12,50 USD"], dtype="str")
    assert_series_equal(parse_numbers(euros, currency="EUR", decimal=",", thousands="."), pd.Series([12.5, 1234.5, np.nan]))


@pytest.mark.parametrize(("cells", "read", "hint"), [
    (["£2.55", "£3", "x"], {}, " (a currency sign? set sources.transactions.read.currency: '£')"),
    (["12,50 EUR", "1,5 EUR"], {}, " (a currency sign? set sources.transactions.read.currency: 'EUR' and read.decimal: ',')"),
    (["$2", "$3"], {"currency": "£"}, " (a currency sign? set sources.transactions.read.currency: '$')"),
    (["2,55", "1.234,5"], {}, " (a decimal comma? set sources.transactions.read.decimal: ',' and, if the numbers "
                              "have one, read.thousands)"),
    (["ten", "£3", "n/a"], {}, ""),  # most are not numbers with a sign: no guess
])
def test_number_cells_that_cannot_be_read_say_which_setting_would_read_them(cells, read, hint):
    from pipeline.config import ReadOptions
    from pipeline.ingest import _number_reason

    assert _number_reason(pd.Series(cells, dtype="str"), read=ReadOptions(**read), source="transactions") == (
        "not a number" + hint)


def _purchases_per_day(orders_per_day, lines_per_order=1) -> SourceResult:
    """Validated transactions with orders_per_day[i] orders on day i from 2024-01-01, of `lines_per_order` purchase
    lines each (or lines_per_order[i] on day i)."""
    day = np.repeat(np.arange(len(orders_per_day)), orders_per_day)
    at = pd.Timestamp("2024-01-01 10:00", tz="UTC") + pd.to_timedelta(day, unit="D")
    orders = pd.DataFrame({"ordered_at": at, "order_id": [f"o{i}" for i in range(len(day))], "amount": 10.0})
    lines = np.broadcast_to(lines_per_order, len(orders_per_day))[day]
    return SourceResult("transactions", orders.loc[orders.index.repeat(lines)].reset_index(drop=True),
                        pd.DataFrame(), pd.DataFrame(), {})


def test_orders_count_once_a_day_however_their_lines_lie():
    """Hand-made: o1 has two lines on day 0 apart (o2 between them) and one on day 1, o3 a return only on day 1."""
    lines = pd.DataFrame({
        "ordered_at": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00", "2024-01-02 09:00",
                                      "2024-01-02 10:00", "2024-01-02 11:00"], utc=True),
        "order_id": ["o1", "o2", "o1", "o1", "o3", "o2"],
        "amount": [5.0, 6.0, 7.0, 8.0, -3.0, 1.0],
    })
    first, counts = orders_per_day(SourceResult("transactions", lines, pd.DataFrame(), pd.DataFrame(), {}))
    assert first == (pd.Timestamp("2024-01-01") - pd.Timestamp("1970-01-01")).days and counts.tolist() == [2, 2]


def test_a_month_without_purchases_between_busy_months_is_named_as_a_missing_export_or_a_closure():
    """Monthly export files joined by a glob, one of them missing: the labels of every snapshot whose window covers
    that month count its customers as not buying. Hand-made counts: 20 lines a day for 200 days."""
    steady = np.full(200, 20)
    hole = steady.copy()
    hole[60:91] = 0  # 2024-03-01 .. 2024-03-31
    hole[59] = 2  # a quiet day next to it belongs to it (quiet: fewer than 25% of the daily lines around)
    assert order_gap_note(_purchases_per_day(hole)) == (
        "purchases nearly stop from 2024-02-29 to 2024-03-31: 2 orders in those 32 days (UTC), against an average of at least "
        "20 a day in the 28 days before and after them. A missing export file, or a closure? Every snapshot whose label "
        "window covers those days counts its customers as not buying then; add the missing orders, or leave those "
        "snapshots out (features.snapshots)")
    long_hole = np.full(400, 20)
    long_hole[100:190] = 0  # three months: the spans before and after a 28-day span inside it are empty too
    assert order_gap_note(_purchases_per_day(long_hole)).startswith(
        "purchases nearly stop from 2024-04-10 to 2024-07-08: 0 orders in those 90 days")
    two = steady.copy()
    two[40:70] = 0
    two[130:160] = 0
    # the other one is named by days around it (its quiet days: 2024-05-10 to 2024-06-08)
    assert "2024-03-10 (and 1 more such span, within 2024-05-05 to 2024-06-13): " in order_gap_note(
        _purchases_per_day(two))


def test_a_month_of_small_orders_is_no_gap_the_orders_are_counted_not_their_lines():
    """A wholesaler: 2 orders a day of 10 lines each, then a month when the orders go on with one line each. Its lines
    drop to a tenth (what a missing file looks like when lines are counted), its orders do not: no note. A month with
    no orders at all is still named, in orders."""
    small_month = np.full(200, 10)
    small_month[60:91] = 1
    assert order_gap_note(_purchases_per_day(np.full(200, 2), lines_per_order=small_month)) is None
    hole = _purchases_per_day(np.r_[np.full(60, 2), np.zeros(31, dtype=int), np.full(109, 2)], lines_per_order=10)
    assert order_gap_note(hole).startswith("purchases nearly stop from 2024-03-01 to 2024-03-31: 0 orders in those "
                                           "31 days (UTC), against an average of at least 2 a day")


def test_growth_seasons_and_a_holiday_week_are_not_gaps():
    holiday = np.full(200, 20)
    holiday[60:71] = 0  # eleven days (Online Retail closes from 2010-12-23 to 2011-01-03)
    peak = np.full(200, 20)
    peak[100:130] = 200  # a season ten times as busy
    growing = np.linspace(0, 40, 200).astype(int)  # a shop that starts from nothing
    closed_between = np.r_[np.full(60, 20), np.zeros(60, dtype=int), np.full(60, 400)]  # two months shut: named
    billing = np.zeros(540, dtype=int)
    billing[np.flatnonzero(pd.date_range("2024-01-01", periods=540).day == 1)] = 100  # a subscription billed on the 1st
    wholesaler = np.zeros(400, dtype=int)
    wholesaler[::35] = 60  # one 60-line order every five weeks
    for counts in (holiday, peak, growing, np.full(80, 20), billing, wholesaler):
        assert order_gap_note(_purchases_per_day(counts)) is None
    assert order_gap_note(_purchases_per_day(closed_between)) is not None
    assert order_gap_note(SourceResult("transactions", pd.DataFrame({"ordered_at": pd.Series([], dtype="datetime64[us, UTC]"),
                                                                     "amount": pd.Series([], dtype=float)}),
                                       pd.DataFrame(), pd.DataFrame(), {})) is None


def _orders(same: int, different: int, **columns) -> SourceResult:
    """Validated transactions: `same` orders of two lines (products A and B) with one amount each, then `different`
    orders whose two lines give different amounts; `columns` overrides product_id / quantity or adds unit_price."""
    orders = same + different
    frame = pd.DataFrame({
        "order_id": np.repeat([f"o{i}" for i in range(orders)], 2),
        "amount": np.r_[np.full(2 * same, 50.0), np.tile([10.0, 20.0], different)],
        "product_id": np.tile(["A", "B"], orders),
        "quantity": 1.0,
    })
    return SourceResult("transactions", frame.assign(**columns), pd.DataFrame(), pd.DataFrame(), {})


def _free_and_paid(free: int, paid: int, *, line_amounts=(0.0, 0.0)) -> SourceResult:
    """Validated transactions: `free` orders of two lines with `line_amounts`, then `paid` orders of one 10.0 line."""
    frame = pd.DataFrame({
        "order_id": [*np.repeat([f"f{i}" for i in range(free)], 2), *[f"p{i}" for i in range(paid)]],
        "amount": [*np.tile(line_amounts, free), *np.full(paid, 10.0)],
    })
    return SourceResult("transactions", frame, pd.DataFrame(), pd.DataFrame(), {})


def test_free_order_note_counts_orders_worth_0_on_every_line():
    assert free_order_note(_free_and_paid(60, 940)).startswith(
        "60 of the 1,000 orders (6%) are worth 0 on every line (free trials, samples, replacements?): each counts as a "
        "purchase")
    assert free_order_note(_free_and_paid(40, 960)) is None  # 4%: a shop's odd free order
    assert free_order_note(_free_and_paid(40, 400)) is None  # 9%, but too few to name
    assert free_order_note(_free_and_paid(60, 940, line_amounts=(0.0, 5.0))) is None  # a free gift in a paid order
    assert free_order_note(_free_and_paid(60, 940, line_amounts=(10.0, -10.0))) is None  # an exchange: goods moved


def test_order_total_note_needs_nine_in_ten_of_fifty_orders_whose_lines_differ(monkeypatch):
    assert order_total_note(_orders(45, 5)).startswith("in 90% of the 50 orders whose lines differ in product_id")
    assert order_total_note(_orders(44, 6)) is None
    assert order_total_note(_orders(49, 0)) is None  # too few orders to tell
    assert order_total_note(_orders(60, 0, product_id="A")) is None  # one product, one quantity: lines alike
    totals = np.repeat(50.0 + np.arange(60), 2)  # orders of other totals: one amount everywhere is no order total
    assert order_total_note(_orders(60, 0, product_id="A", quantity=np.tile([1.0, 2.0], 60))) is None
    assert order_total_note(_orders(60, 0, product_id="A", quantity=np.tile([1.0, 2.0], 60), amount=totals)).startswith(
        "in 100% of the 60 orders whose lines differ in product_id or quantity")
    assert order_total_note(_orders(60, 0, product_id=None, quantity=np.nan)) is None  # nothing tells lines apart
    # A shop with one price: every line's amount is its own quantity x unit price, however alike the amounts.
    assert order_total_note(_orders(60, 0, unit_price=50.0)) is None
    assert order_total_note(_orders(60, 0, unit_price=16.0, amount=totals)).startswith("in 100% of the 60 orders")
    refunded = _orders(60, 0)
    refunded.validated.loc[len(refunded.validated)] = ["o0", -50.0, None, np.nan]  # a refund row of order o0
    assert order_total_note(refunded).startswith("in 100% of the 60 orders")
    # The first lines hold 50 orders whose amounts differ: they settle it, the 800 orders after them are not read.
    late = _orders(800, 0).validated.assign(order_id=lambda frame: "x" + frame["order_id"])
    mixed = SourceResult("transactions", pd.concat([_orders(0, 50).validated, late], ignore_index=True),
                         pd.DataFrame(), pd.DataFrame(), {})
    assert order_total_note(mixed) is not None
    monkeypatch.setattr("pipeline.ingest_notes.ONE_ORDER_SAMPLE", 100)
    assert order_total_note(mixed) is None


def test_a_data_end_past_the_last_busy_day_is_named():
    """A late row two weeks after the export's real end (a test order): the data's end moves with it, and the label
    windows ending in those days count every customer as not buying. Hand-made counts: 20 lines a day."""
    late = np.r_[np.full(100, 20), np.zeros(14, dtype=int), 1]
    assert thin_end_note(_purchases_per_day(late)) == (
        "purchases nearly stop over the data's last 15 days, 2024-04-10 to 2024-04-24: 1 order (UTC), "
        "against an average of 20 a day in the 28 days before. Late rows past the export's real end (a test order, a "
        "pre-order, a time zone slip), orders not yet written when it was exported, or a closure? The data's end is "
        "its latest order (2024-04-24), so every snapshot whose label window ends in those days counts its customers "
        "as not buying then; end the data on the last busy day (ingest.latest: 2024-04-09), or leave those snapshots "
        "out (features.snapshots)")
    lagging = np.r_[np.full(100, 20), np.full(10, 3)]  # the last ten days' orders mostly not yet written
    assert thin_end_note(_purchases_per_day(lagging)).startswith(
        "purchases nearly stop over the data's last 10 days, 2024-04-10 to 2024-04-19: 30 orders")


def test_a_busy_end_a_short_quiet_end_a_week_without_weekends_or_a_long_decline_is_no_thin_end():
    weekdays = np.tile([20, 20, 20, 20, 20, 0, 0], 20)  # closed at weekends, the data ending on a Sunday
    partial = np.r_[np.full(100, 20), np.full(6, 2)]  # six quiet days: too few to name
    decline = np.r_[np.full(90, 400), np.full(300, 60)]  # a cohort's first purchases, then its repeat buyers
    late_start = np.r_[np.zeros(30, dtype=int), np.full(20, 20)]  # too little before the end to compare with
    peak_end = np.r_[np.full(300, 20), np.full(30, 200), np.full(14, 20)]  # a season ten times busier, then back
    for counts in (np.full(100, 20), weekdays, partial, decline, late_start, np.full(30, 20), peak_end):
        assert thin_end_note(_purchases_per_day(counts)) is None
    assert thin_end_note(_purchases_per_day(np.r_[np.full(100, 20), np.full(7, 2)])) is not None
    assert thin_end_note(SourceResult("transactions", pd.DataFrame({
        "ordered_at": pd.Series([], dtype="datetime64[us, UTC]"), "amount": pd.Series([], dtype=float)}),
        pd.DataFrame(), pd.DataFrame(), {})) is None


def test_recode_keys_in_another_case_than_the_export_are_named_in_the_reason():
    # a Freshdesk Status 'Open' recoded as 'open: false': keys are compared as written, so the rows stay unread
    raw = raw_source("support_tickets", {
        "ticket_id": ["t1", "t2", "t3"], "customer_id": ["c1", "c1", "c2"],
        "opened_at": ["2024-01-05 10:00"] * 3, "resolved": ["Open", "Pending", "Closed"]})
    configs = {"support_tickets": source_config(recode={"resolved": {"open": "false", "pending": "false",
                                                                     "Closed": "true"}})}
    result = ingest({"support_tickets": raw, "transactions": transactions()}, configs=configs,
                    max_bad_share=1.0).sources["support_tickets"]
    assert result.quarantine["reason"].tolist() == [
        "resolved: not true/false/yes/no/1/0 ('Open', 'Pending'; say what each means with "
        "sources.support_tickets.recode: {resolved: {Open: false}}, or true where it means yes; its recode lists "
        "'open' and 'pending' in another case: keys are compared as written)"] * 2
    assert result.validated["resolved"].tolist() == [True]
    feedback = raw_source("feedback", {"customer_id": ["c1", "c2"], "submitted_at": ["2024-01-05 10:00"] * 2,
                                       "kind": ["csat", "csat"], "score": ["Good", "4"]})
    configs = {"feedback": source_config(recode={"score": {"good": "5"}})}
    result = ingest({"feedback": feedback, "transactions": transactions()}, configs=configs,
                    max_bad_share=1.0).sources["feedback"]
    assert result.quarantine["reason"].tolist() == [
        "score: not a number (words: 'Good'; give each a number with sources.feedback.recode: {score: {Good: "
        "<number>}}, or leave their rows out with sources.feedback.exclude: {score: [Good]}; its recode lists 'good' "
        "in another case: keys are compared as written)"]
