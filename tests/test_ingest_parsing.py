"""The parse helpers against a reference that parses one value at a time (the oracle).

The helpers decide per column which values Arrow casts at once and which pandas parses. The
oracle knows nothing of that: it reads each value alone, with the rule the README states (ISO 8601,
offsets honoured, naive values are wall-clock time in the source's zone; plain decimal numbers;
ids stripped, blank is missing). Hypothesis draws mixes of ISO variants, naive values in several
zones, numbers and junk; every value must parse to the same thing as alone.
"""

from __future__ import annotations

import math
import re
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_series_equal

from pipeline.sources import parse_ids, parse_numbers, parse_timestamps, skipped_clock_rows

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
JUNK = ("", "  ", "not a date", "31/12/2024", "2024-13-01", "2024-02-30", "20240101", "12,50 EUR", "ten",
        "nan", "inf", "-Infinity", "1e", ".", "-", "+", "1_000", "0x1F", "١٢", "NA", "2024-01-01 25:00:00")


# --- the oracle: one value at a time ------------------------------------------------------------

DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def one_id(value: str | None) -> str | None:
    stripped = None if value is None else value.strip()
    return stripped or None


def one_number(value: str | None) -> float:
    """A plain decimal number that a float holds in full: not infinite, not below the least normal float (2.2e-308)
    unless zero, and no nonzero number read as 0 ('1e-400')."""
    text = "" if value is None else value.strip()
    number = float(text) if DECIMAL.fullmatch(text) else math.nan
    written_zero = not re.search(r"[1-9]", re.split("[eE]", text)[0])
    if not math.isfinite(number) or (number == 0 and not written_zero) or 0 < abs(number) < sys.float_info.min:
        return math.nan
    return number


def one_timestamp(value: str | None, timezone: str) -> pd.Timestamp:
    """UTC; NaT when pandas' ISO 8601 reader rejects the value. A wall time that DST repeats is the
    first one (summer time); one that DST skips moves forward to the end of the gap."""
    if value is None:
        return pd.NaT
    try:
        parsed = pd.to_datetime(value, format="ISO8601")
    except (ValueError, OverflowError):
        return pd.NaT
    if parsed.tzinfo is None:
        parsed = parsed.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
    return parsed.tz_convert("UTC")


def oracle(values: pd.Series, one, dtype: str, **options) -> pd.Series:
    items = [None if pd.isna(v) else v for v in values]
    return pd.Series([one(v, **options) for v in items], index=values.index, dtype=dtype)


# --- strategies ---------------------------------------------------------------------------------


@st.composite
def iso_values(draw: st.DrawFn) -> str:
    """ISO 8601 variants: date only, 'T' or ' ', hours/minutes/seconds, fractions, Z or offsets;
    days up to 31 in every month (so some dates do not exist), DST changes included."""
    date = f"{draw(st.integers(2023, 2025))}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 31)):02d}"
    if draw(st.booleans()):
        return date
    time = f"{draw(st.sampled_from('T '))}{draw(st.integers(0, 23)):02d}"
    if draw(st.integers(0, 9)):
        time += f":{draw(st.integers(0, 59)):02d}"
        if draw(st.integers(0, 4)):
            time += f":{draw(st.integers(0, 59)):02d}"
            if draw(st.booleans()):
                time += "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=1, max_size=9)))
    zone = draw(st.sampled_from(["", "", "", "Z", "+00:00", "+01:00", "-05:00", "+0530", "-0800"]))
    return date + time + zone


def _usual(fraction_digits: int | None) -> st.SearchStrategy[str]:
    """One fixed plain layout, as most values of a real export share it."""
    fraction = "" if fraction_digits is None else "." + "1" * fraction_digits
    return st.builds(
        lambda d, h, m, s: f"2024-03-{d:02d} {h:02d}:{m:02d}:{s:02d}{fraction}",
        st.integers(1, 31), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
    )


def columns(value: st.SearchStrategy[str | None]) -> st.SearchStrategy[pd.Series]:
    return st.lists(value, min_size=1, max_size=40).map(lambda items: pd.Series(items, dtype="str"))


timestamp_columns = st.one_of(
    columns(st.one_of(iso_values(), st.sampled_from(JUNK), st.none())),
    st.sampled_from([None, 0, 3, 6]).flatmap(
        lambda digits: columns(st.one_of(_usual(digits), _usual(digits), _usual(digits), iso_values(),
                                         st.sampled_from(JUNK), st.none()))
    ),
    st.sampled_from([None, 0, 3, 6]).flatmap(lambda digits: columns(st.one_of(_usual(digits), st.none()))),
)

number_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**12, 10**12).map(str),
    st.decimals(places=3, allow_nan=False, allow_infinity=False).map(str),
    st.from_regex(r"\A\s?[+-]?(\d{0,3}\.?\d{0,3})([eE][+-]?\d{0,3})?\s?\Z"),
    st.sampled_from(JUNK),
    st.none(),
)

id_text = st.one_of(
    st.from_regex(r"\A\s{0,2}[A-Za-z0-9_-]{0,6}\s{0,2}\Z"),
    st.sampled_from(["", " ", "\t", "\u00a0x\u00a0", "\u3000", "c1"]),
    st.none(),
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


DST_BERLIN = pd.Series(["2024-10-27 02:30:00", "2024-03-31 02:30:00", "2024-10-27 01:30:00"] * 2 + ["x"], dtype="str")


@pytest.mark.slow
@FAST
@given(values=timestamp_columns, timezone=st.sampled_from(ZONES))
@example(values=DST_BERLIN, timezone="Europe/Berlin")  # repeated, skipped and plain wall times, usual layout
@example(values=DST_BERLIN.str.replace(" ", "T"), timezone="Europe/Berlin")  # the same through the ISO rules
def test_timestamps_parse_as_each_value_alone(values: pd.Series, timezone: str) -> None:
    new = parse_timestamps(values, date_format=None, timezone=timezone)
    assert_series_equal(new, oracle(values, one_timestamp, "datetime64[us, UTC]", timezone=timezone))


@pytest.mark.slow
@FAST
@given(values=columns(number_text))
@example(values=pd.Series(["1e-400", "0e5", "-0.000", "1e400", "5e-324", "2.2250738585072014e-308"], dtype="str"))
def test_numbers_parse_as_each_value_alone(values: pd.Series) -> None:
    assert_series_equal(parse_numbers(values), oracle(values, one_number, "float64"))


@pytest.mark.slow
@FAST
@given(values=columns(id_text))
def test_ids_parse_as_each_value_alone(values: pd.Series) -> None:
    assert_series_equal(parse_ids(values), oracle(values, one_id, "str"))


def test_a_mostly_usual_column_with_junk_keeps_every_value_in_place() -> None:
    values = pd.Series(["2024-03-01 10:00:00"] * 5 + ["2024-03-01T10:00:00+01:00", "junk", None, "2024-03-02"],
                       index=np.arange(100, 109), dtype="str")
    new = parse_timestamps(values, date_format=None, timezone="Europe/Berlin")
    assert_series_equal(new, oracle(values, one_timestamp, "datetime64[us, UTC]", timezone="Europe/Berlin"))
    assert new.isna().tolist() == [False] * 6 + [True, True, False]


def test_timestamps_that_repeat_are_parsed_once_each_with_the_same_result():
    import numpy as np

    from pipeline.sources import each_distinct_once, parse_timestamps

    times = pd.Series(["1/31/2024 9:30", "1/31/2024 9:30", None, "2/29/2024 23:59", "2/30/2024 1:00"] * 50, dtype="str")
    calls = []

    def parse(text: pd.Series) -> pd.Series:
        calls.append(len(text))
        return parse_timestamps(text, date_format="%m/%d/%Y %H:%M", timezone="Europe/London")

    once = each_distinct_once(times, parse)
    assert calls == [3]  # the three distinct values, not 250
    expected = pd.to_datetime(times, format="%m/%d/%Y %H:%M", errors="coerce").dt.tz_localize("Europe/London")
    assert once.equals(expected.dt.tz_convert("UTC").astype(once.dtype))
    assert once.isna().to_numpy().tolist() == [False, False, True, False, True] * 50
    unique = pd.Series([f"2024-01-{d:02d} 10:00:00" for d in range(1, 29)], dtype="str")
    assert each_distinct_once(unique, lambda text: pd.Series(np.arange(len(text)))).tolist() == list(range(28))


def test_times_written_with_a_utc_suffix_are_utc_whatever_the_sources_time_zone():
    """BigQuery and many SQL dumps write '2024-01-31 10:00:00 UTC'; ISO 8601 parsing alone read none of them."""
    from pipeline.sources import parse_timestamps

    times = pd.Series(["2024-01-31 10:00:00 UTC", "2024-02-01 11:30:00.5 UTC", "2024-01-31 10:00:00 GMT",
                       "2024-01-31 10:00:00", None], dtype="str")
    parsed = parse_timestamps(times, date_format=None, timezone="Europe/Berlin")
    expected = [pd.Timestamp(t, tz="UTC") for t in ("2024-01-31 10:00:00", "2024-02-01 11:30:00.5",
                                                    "2024-01-31 10:00:00", "2024-01-31 09:00:00")]
    assert parsed.tolist()[:4] == expected and pd.isna(parsed.iloc[4])  # the fourth: Berlin's wall-clock time


def test_numbers_a_float_does_not_hold_in_full_are_no_numbers() -> None:
    # before: '1e-400' read as 0 (an underflow), and 1e-310 kept, in text and in a typed column alike
    text = pd.Series(["1e-400", "-1e-310", "0e5", "0.000", "12.5", "1e400"], dtype="str")
    assert parse_numbers(text).tolist()[2:5] == [0.0, 0.0, 12.5]
    assert parse_numbers(text).iloc[[0, 1, 5]].isna().all()
    typed = pd.Series([1e-310, 0.0, 2.5, np.inf])
    assert parse_numbers(typed).isna().tolist() == [True, False, False, True]


def test_only_wall_times_no_clock_showed_are_counted_as_skipped() -> None:
    # Berlin skipped 02:00-03:00 on 2024-03-31 and repeated 02:00-03:00 on 2024-10-27.
    values = pd.Series(["2024-03-31 02:30:00", "2024-03-31 02:00:00", "2024-03-31 03:00:00", "2024-03-31T03:00+02:00",
                        "2024-10-27 02:30:00", "2024-03-31 01:59:59", None, "junk", "2024-03-31T02:59:00"], dtype="str")
    parsed = parse_timestamps(values, date_format=None, timezone="Europe/Berlin")
    assert skipped_clock_rows(values, parsed, date_format=None, timezone="Europe/Berlin").tolist() == [0, 1, 8]
    assert len(skipped_clock_rows(values, parsed, date_format=None, timezone="UTC")) == 0
    layout = pd.Series(["03/31/2024 02:15", "03/31/2024 03:15"], dtype="str")
    parsed = parse_timestamps(layout, date_format="%m/%d/%Y %H:%M", timezone="Europe/Berlin")
    assert skipped_clock_rows(layout, parsed, date_format="%m/%d/%Y %H:%M", timezone="Europe/Berlin").tolist() == [0]
    # Lord Howe moves its clock 30 minutes (02:00 -> 02:30): pandas reads 02:15 as 03:00, beside the jump, not on it
    half = pd.Series(["2023-10-01 02:15:00", "2023-10-01 02:45:00", "2023-10-01 01:50:00"], dtype="str")
    parsed = parse_timestamps(half, date_format=None, timezone="Australia/Lord_Howe")
    assert skipped_clock_rows(half, parsed, date_format=None, timezone="Australia/Lord_Howe").tolist() == [0]
    typed = pd.Series(pd.to_datetime(["2024-03-31 02:15", "2024-03-31 04:15"]))  # naive Parquet times
    parsed = parse_timestamps(typed, date_format=None, timezone="Europe/Berlin")
    assert skipped_clock_rows(typed, parsed, date_format=None, timezone="Europe/Berlin").tolist() == [0]


@pytest.mark.parametrize("timezone", ["America/New_York", "Asia/Tokyo", "Europe/London"])
def test_wall_times_at_the_ends_of_the_years_a_zone_has_rules_for_are_read(timezone: str) -> None:
    # before: '9999-12-31 23:59:59' in New York stopped ingest (pandas cannot localize beyond the year 9999)
    values = pd.Series(["9999-12-31 23:59:59", "0001-01-01", "2024-06-01 12:00:00"], dtype="str")
    parsed = parse_timestamps(values, date_format=None, timezone=timezone)
    assert parsed.iloc[:2].tolist() == [pd.Timestamp("9999-12-31 23:59:59", tz="UTC"),
                                        pd.Timestamp("0001-01-01", tz="UTC")]
    assert parsed.iloc[2] == pd.Timestamp("2024-06-01 12:00", tz=timezone).tz_convert("UTC")
