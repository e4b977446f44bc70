"""Durations written as text (`pipeline.durations.durations_read`): each form read to the microsecond (the figures
below are computed by hand: 1 hour = 3,600,000,000 µs), the two-part clock read by the unit of its first part, and
what no form reads left unread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import ReadOptions
from pipeline.durations import (
    AMBIGUOUS_CLOCK,
    CLOCK,
    DAY_WORDS,
    DAYS_CLOCK,
    ISO,
    NUMBER,
    SHORT_CLOCK,
    WORDS,
    durations_read,
)

HOUR, MINUTE, SECOND, DAY = 3_600_000_000, 60_000_000, 1_000_000, 86_400_000_000


def read(cells: list, unit: str = "minutes", **options) -> pd.DataFrame:
    return durations_read(pd.Series(cells, dtype="str"), unit=unit, read=ReadOptions(**options))


@pytest.mark.parametrize(("cell", "microseconds", "form"), [
    # Freshdesk's 'First response time (in hrs)'; a clock past 24 hours; a spreadsheet's [h]:mm:ss; Python's 0:01:30.5
    ("00:12:34", 12 * MINUTE + 34 * SECOND, CLOCK),
    ("36:15:00", 36 * HOUR + 15 * MINUTE, CLOCK),
    ("100:00:01", 100 * HOUR + SECOND, CLOCK),
    ("0:01:30.5", 90 * SECOND + 500_000, CLOCK),
    ("00:00:00.000001", 1, CLOCK),
    ("00:00:01,25", 1_250_000, CLOCK),
    ("-0:05:00", -5 * MINUTE, CLOCK),  # negative: ingest quarantines it
    # pandas' and Python's text of a timedelta (Python's is how an Excel duration cell reads)
    ("1 days 02:03:04", DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND, DAYS_CLOCK),
    ("1 day, 2:03:04", DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND, DAYS_CLOCK),
    ("2 days, 0:00:00.500000", 2 * DAY + 500_000, DAYS_CLOCK),
    ("0 days 00:00:00.000123", 123, DAYS_CLOCK),
    ("-1 day, 23:59:00", -MINUTE, DAYS_CLOCK),  # Python: a day back, 23:59 forward
    ("-1 days +23:59:00", -MINUTE, DAYS_CLOCK),  # pandas, the same
    # ISO 8601, pandas' isoformat among them, a decimal comma as the standard allows
    ("PT1H30M", HOUR + 30 * MINUTE, ISO),
    ("P1DT2H", DAY + 2 * HOUR, ISO),
    ("P0DT1H30M0.5S", HOUR + 30 * MINUTE + 500_000, ISO),
    ("P1W", 7 * DAY, ISO),
    ("PT0,5S", 500_000, ISO),
    ("P2D", 2 * DAY, ISO),
    ("pt45m", 45 * MINUTE, ISO),
    # words
    ("2h 30m", 2 * HOUR + 30 * MINUTE, WORDS),
    ("2h30m", 2 * HOUR + 30 * MINUTE, WORDS),
    ("45 min", 45 * MINUTE, WORDS),
    ("1.5 hours", HOUR + 30 * MINUTE, WORDS),
    ("2 hrs 30 mins", 2 * HOUR + 30 * MINUTE, WORDS),
    ("1 hour and 30 minutes", HOUR + 30 * MINUTE, WORDS),
    ("1 Hour, 5 Seconds", HOUR + 5 * SECOND, WORDS),
    ("90 sec", 90 * SECOND, WORDS),
    ("1d 4h", DAY + 4 * HOUR, DAY_WORDS),
    ("3 days", 3 * DAY, DAY_WORDS),
])
def test_each_text_form_is_read_to_the_microsecond_whatever_the_unit(cell, microseconds, form):
    for unit in ("seconds", "minutes", "hours", "days"):  # the unit is for numbers (and '1:30') only
        found = read([cell], unit)
        assert found["microseconds"].tolist() == [microseconds], unit
        assert found["form"].tolist() == [form], unit


def test_a_number_means_unit_and_a_column_may_mix_numbers_with_text():
    found = read(["90", "2.5", "01:30:00", "", None, "PT2M", "0.1"], "minutes")
    assert found["microseconds"].tolist()[:2] == [90 * MINUTE, 2 * MINUTE + 30 * SECOND]
    assert found["microseconds"].tolist()[2] == 90 * MINUTE
    assert np.isnan(found["microseconds"].tolist()[3]) and np.isnan(found["microseconds"].tolist()[4])  # blank
    assert found["microseconds"].tolist()[5:] == [2 * MINUTE, 6 * SECOND]  # 0.1 minute: 6 s, not 5.999999
    assert found["form"].tolist() == [NUMBER, NUMBER, CLOCK, np.nan, np.nan, ISO, NUMBER]
    typed = durations_read(pd.Series([1.5, np.nan]), unit="hours", read=ReadOptions())  # a Parquet float column
    assert typed["microseconds"].tolist()[0] == 90 * MINUTE and typed["form"].tolist() == [NUMBER, np.nan]


def test_a_two_part_clock_counts_unit_in_its_first_part_and_is_not_read_with_seconds_or_days():
    # Freshdesk's 'Time tracked' in hours (1:30 = 1 h 30 min); a call's talk time in minutes (1:30 = 1 min 30 s)
    assert read(["1:30", "78:00", "0:45.5"], "hours")["microseconds"].tolist() == [
        HOUR + 30 * MINUTE, 78 * HOUR, 45 * MINUTE + 30 * SECOND]
    assert read(["1:30", "8:15", "0:45.5"], "minutes")["microseconds"].tolist() == [
        90 * SECOND, 8 * MINUTE + 15 * SECOND, 45 * SECOND + 500_000]
    assert read(["1:30"], "hours")["form"].tolist() == [SHORT_CLOCK]
    for unit in ("seconds", "days"):  # hours:minutes or minutes:seconds? Never guessed
        found = read(["1:30", "90"], unit)
        assert np.isnan(found["microseconds"].iloc[0]) and found["form"].tolist() == [AMBIGUOUS_CLOCK, NUMBER]


@pytest.mark.parametrize("cell", [
    "soon", "1w", "2 weeks", "P1M", "P1Y", "P", "PT", "1:75", "1:2:3", "25:61:00", "1:30:00:00", "h", "-",
    "1 mo", "1,5 hours",  # a decimal comma, with read.decimal '.': neither 1.5 nor 15 hours
])
def test_what_no_form_reads_is_left_unread(cell):
    found = read([cell])
    assert np.isnan(found["microseconds"].iloc[0]) and found["form"].isna().all(), cell


def test_the_numbers_of_words_follow_the_sources_decimal_and_thousands_marks():
    found = read(["1,5 hours", "2,5", "1.200 min"], "minutes", decimal=",", thousands=".")
    assert found["microseconds"].tolist() == [90 * MINUTE, 2 * MINUTE + 30 * SECOND, 1200 * MINUTE]
    assert found["form"].tolist() == [WORDS, NUMBER, WORDS]
    assert read(["1.5 hours"], decimal=",")["form"].isna().all()  # '.' is no decimal mark there: not read
