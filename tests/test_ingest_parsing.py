"""The parse helpers against the implementation they replaced (kept here as the oracle only).

The old helpers tried a whole-column Arrow cast first and redid the work when it failed; the new
ones decide up front which values to cast. The values that parse, and what they parse to, must not
change: hypothesis draws mixes of ISO variants, naive values in several zones, numbers and junk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_series_equal

from pipeline.contract import TIMESTAMP
from pipeline.sources import (
    NAIVE_ISO_PATTERN,
    NUMBER_PATTERN,
    PLAIN_ISO_LENGTHS,
    _arrow_strings,
    _localize,
    _parse_iso_with_pandas,
    parse_ids,
    parse_numbers,
    parse_timestamps,
)

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
JUNK = ("", "  ", "not a date", "31/12/2024", "2024-13-01", "2024-02-30", "20240101", "12,50 EUR", "ten",
        "nan", "inf", "-Infinity", "1e", ".", "-", "+", "1_000", "0x1F", "١٢", "NA", "2024-01-01 25:00:00")


# --- the old implementation (oracle) ------------------------------------------------------------


def old_parse_ids(values: pd.Series) -> pd.Series:
    text = values.astype("str")
    stripped = text.str.strip()
    if not stripped.equals(text):
        text = stripped
    blank = (text == "").to_numpy(dtype=bool, na_value=False)
    return text.where(~blank, None).astype("str") if blank.any() else text


def old_parse_numbers(values: pd.Series) -> pd.Series:
    text = pc.utf8_trim_whitespace(_arrow_strings(values))
    try:
        numbers = pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        plain = pc.match_substring_regex(text, NUMBER_PATTERN)
        numbers = pc.cast(pc.if_else(plain, text, pa.scalar(None, pa.large_string())), pa.float64())
    series = pd.Series(numbers.to_numpy(zero_copy_only=False), index=values.index, dtype="float64")
    return series.where(np.isfinite(series))


def _old_usual_layout(arrow: pa.Array) -> pa.Array | None:
    lengths = pc.binary_length(arrow)
    common = pc.mode(lengths)
    if len(common) == 0 or common[0]["mode"].as_py() not in PLAIN_ISO_LENGTHS:
        return None
    return pc.fill_null(pc.equal(lengths, common[0]["mode"]), False)


def _old_parse_iso(text: pd.Series, arrow: pa.Array, timezone: str) -> pd.Series:
    plain = pc.fill_null(pc.match_substring_regex(arrow, NAIVE_ISO_PATTERN), False)
    try:
        naive = pc.cast(pc.if_else(plain, arrow, pa.scalar(None, pa.large_string())), pa.timestamp("us"))
    except pa.ArrowInvalid:
        return _parse_iso_with_pandas(text, timezone)
    parsed = _localize(pd.Series(naive.to_numpy(zero_copy_only=False), index=text.index), timezone)
    rest = np.flatnonzero(~plain.to_numpy(zero_copy_only=False) & text.notna().to_numpy())
    if len(rest):
        parsed.iloc[rest] = _parse_iso_with_pandas(text.iloc[rest], timezone).astype(parsed.dtype)
    return parsed


def old_parse_timestamps(values: pd.Series, timezone: str) -> pd.Series:
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype=TIMESTAMP)
    text = values.astype("str")
    arrow = _arrow_strings(text)
    try:
        naive = pc.cast(arrow, pa.timestamp("us"))
        return _localize(pd.Series(naive.to_numpy(zero_copy_only=False), index=text.index), timezone).astype(TIMESTAMP)
    except pa.ArrowInvalid:
        pass
    usual = _old_usual_layout(arrow)
    if usual is None:
        return _old_parse_iso(text, arrow, timezone).astype(TIMESTAMP)
    try:
        naive = pc.cast(pc.if_else(usual, arrow, pa.scalar(None, pa.large_string())), pa.timestamp("us"))
    except pa.ArrowInvalid:
        return _old_parse_iso(text, arrow, timezone).astype(TIMESTAMP)
    parsed = _localize(pd.Series(naive.to_numpy(zero_copy_only=False), index=text.index), timezone)
    rest = np.flatnonzero(~usual.to_numpy(zero_copy_only=False) & text.notna().to_numpy())
    if len(rest):
        others = text.iloc[rest]
        parsed.iloc[rest] = _old_parse_iso(others, _arrow_strings(others), timezone).astype(parsed.dtype)
    return parsed.astype(TIMESTAMP)


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


@FAST
@given(values=timestamp_columns, timezone=st.sampled_from(ZONES))
def test_timestamps_parse_exactly_as_before(values: pd.Series, timezone: str) -> None:
    new = parse_timestamps(values, date_format=None, timezone=timezone)
    assert_series_equal(new, old_parse_timestamps(values, timezone))


@FAST
@given(values=columns(number_text))
def test_numbers_parse_exactly_as_before(values: pd.Series) -> None:
    assert_series_equal(parse_numbers(values), old_parse_numbers(values))


@FAST
@given(values=columns(id_text))
def test_ids_parse_exactly_as_before(values: pd.Series) -> None:
    assert_series_equal(parse_ids(values), old_parse_ids(values))


def test_a_mostly_usual_column_with_junk_keeps_every_value_in_place() -> None:
    values = pd.Series(["2024-03-01 10:00:00"] * 5 + ["2024-03-01T10:00:00+01:00", "junk", None, "2024-03-02"],
                       index=np.arange(100, 109), dtype="str")
    new = parse_timestamps(values, date_format=None, timezone="Europe/Berlin")
    assert_series_equal(new, old_parse_timestamps(values, "Europe/Berlin"))
    assert new.isna().tolist() == [False] * 6 + [True, True, False]
