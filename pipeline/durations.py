"""Durations as help desks, call centres and spreadsheets write them, read into microseconds.

`durations_read(values, unit=..., read=...)` reads a duration column (`sources.<name>.after`) cell by cell, in
vectorised Arrow kernels (one regular expression per form over the cells that are not plain numbers; no loop
over rows or over distinct values). The forms, as real exports write them:

- a number of `unit` ('90', '2.5'; '2,5' with `read.decimal: ','`): Zendesk's `First reply time in minutes`;
- a clock H:MM:SS, hours past 24 and a fraction of a second allowed ('36:15:00', '0:01:30.5'): Freshdesk's
  `First response time (in hrs)`, a spreadsheet's [h]:mm:ss cell saved as text;
- a two-part clock ('1:30'), which is ambiguous: hours:minutes in a help desk's hours (Freshdesk's `Time tracked`,
  Jira Service Management's '78:00'), minutes:seconds in a call centre's talk time. It is read by `unit`: h:mm with
  `unit: hours`, m:ss with `unit: minutes` (the first part counts `unit`, as a plain number would); with seconds or
  days it is not read (`AMBIGUOUS_CLOCK`), never guessed;
- days and a clock: pandas' '1 days 02:03:04' and Python's '1 day, 2:03:04' (how an Excel duration cell reads);
- ISO 8601 ('PT1H30M', 'P1DT2H', 'P1W'; pandas' isoformat 'P0DT1H30M0S'), without years or months (their length
  varies);
- words ('2h 30m', '45 min', '1.5 hours', '2 hrs 30 mins', '1d 4h'): days, hours, minutes, seconds, largest first;
  a day is 24 hours (`DAY_WORDS` says so in the note: Jira's time tracking counts a working day of 8); weeks,
  months and years are not read.

A leading minus makes a duration negative (Python's '-1 day, 23:59:00' is one minute before), which ingest
quarantines. The numbers of words are read with the source's `read` settings (`parse_numbers`); those of clocks
and ISO 8601 take '.' or ',' as the decimal mark, as the standard does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import ReadOptions
from pipeline.sources import is_text, numbers_as_read, parse_numbers, text_array

UNIT_MICROSECONDS = {"seconds": 1_000_000, "minutes": 60_000_000, "hours": 3_600_000_000, "days": 86_400_000_000}
WEEK_MICROSECONDS = 7 * UNIT_MICROSECONDS["days"]

NUMBER = "number"
CLOCK = "clock"
SHORT_CLOCK = "short clock"
DAYS_CLOCK = "days and clock"
ISO = "ISO 8601"
WORDS = "words"
DAY_WORDS = "words with days"
AMBIGUOUS_CLOCK = "ambiguous clock"  # '1:30' with unit seconds or days: not read
FORMS = (NUMBER, CLOCK, SHORT_CLOCK, DAYS_CLOCK, ISO, WORDS, DAY_WORDS, AMBIGUOUS_CLOCK)
# A two-part clock's parts by the unit of its first part; other units leave it unread (AMBIGUOUS_CLOCK).
SHORT_CLOCK_UNITS = {"hours": ("hours", "minutes"), "minutes": ("minutes", "seconds")}
SHORT_CLOCK_LAYOUTS = {"hours": "h:mm", "minutes": "m:ss"}  # how notes and reasons name those readings

_DECIMAL = r"\d+(?:[.,]\d+)?"
_SECONDS = r"[0-5]\d(?:[.,]\d+)?"
CLOCK_PATTERN = rf"^(?P<sign>[+-]?)(?P<hours>\d+):(?P<minutes>[0-5]\d):(?P<seconds>{_SECONDS})$"
SHORT_CLOCK_PATTERN = rf"^(?P<sign>[+-]?)(?P<first>\d+):(?P<second>{_SECONDS})$"
# Python writes '-1 day, 23:59:00' and pandas '-1 days +23:59:00' for one minute before: the sign is the days'.
DAYS_CLOCK_PATTERN = (rf"^(?P<days>[+-]?\d+) days?,? \+?(?P<hours>\d+):(?P<minutes>[0-5]\d):"
                      rf"(?P<seconds>{_SECONDS})$")
ISO_PATTERN = (rf"^(?P<sign>[+-]?)p(?:(?P<weeks>{_DECIMAL})w)?(?:(?P<days>{_DECIMAL})d)?"
               rf"(?:t(?:(?P<hours>{_DECIMAL})h)?(?:(?P<minutes>{_DECIMAL})m)?(?:(?P<seconds>{_DECIMAL})s)?)?$")
WORD_UNITS = {"days": "days?|d", "hours": "hours?|hrs?|h", "minutes": "minutes?|mins?|m",
              "seconds": "seconds?|secs?|s"}
_WORD_NUMBER = r"\d+(?:[.,']\d+)*"  # read with the source's decimal and thousands marks
_WORD_GAP = r"\s*,?\s*(?:and\s+)?"  # '2h 30m', '2h30m', '1 hour, 30 minutes', '1 hour and 30 minutes'
WORDS_PATTERN = "^(?P<sign>[+-]?)\\s*" + "".join(
    rf"(?:(?P<{name}>{_WORD_NUMBER})\s*(?:{units}){_WORD_GAP})?" for name, units in WORD_UNITS.items()) + "$"


def durations_read(values: pd.Series, *, unit: str, read: ReadOptions) -> pd.DataFrame:
    """Each cell of a duration column (`values`, as read) in microseconds, and the form it was read in.

    Output, on `values`' index: `microseconds` (float64, whole numbers; NaN where blank or not read) and `form` (one
    of FORMS, NaN where blank or not read; AMBIGUOUS_CLOCK for a two-part clock that `unit` does not read)."""
    numbers = numbers_as_read(values, read).to_numpy()
    micro = np.rint(numbers * UNIT_MICROSECONDS[unit])
    form = np.where(np.isnan(numbers), None, NUMBER).astype(object)
    if is_text(values):
        rest = np.flatnonzero(np.isnan(numbers) & values.notna().to_numpy())
        if len(rest):
            text = pc.utf8_lower(pc.utf8_trim_whitespace(text_array(values.iloc[rest])))
            rest_micro, rest_form = _text_durations(text, unit=unit, read=read)
            micro[rest], form[rest] = rest_micro, rest_form
    return pd.DataFrame({"microseconds": micro, "form": pd.Categorical(form, categories=FORMS)}, index=values.index)


def _text_durations(text: pa.Array, *, unit: str, read: ReadOptions) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds, form) of lower-cased, stripped `text` that is no plain number. The patterns exclude each other,
    so each runs only on the cells no pattern before it matched (a column of clocks is read in one pass)."""
    micro = np.full(len(text), np.nan)
    form = np.full(len(text), None, dtype=object)
    pending = np.arange(len(text))
    for pattern, reader in ((CLOCK_PATTERN, _clock), (SHORT_CLOCK_PATTERN, _short_clock),
                            (DAYS_CLOCK_PATTERN, _days_clock), (ISO_PATTERN, _iso), (WORDS_PATTERN, _words)):
        if not len(pending):
            break
        rows, parts = _matches(text if len(pending) == len(text) else text.take(pending), pattern)
        micro[pending[rows]], form[pending[rows]] = reader(parts, unit=unit, read=read)
        pending = np.delete(pending, rows)
    return np.rint(micro), form


def _matches(text: pa.Array, pattern: str) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """(positions of `text` that `pattern` reads, its named groups at those positions: '' where a group is absent)."""
    found = pc.extract_regex(text, pattern)
    matched = pc.fill_null(pc.is_valid(found), False)
    rows = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
    kept = pc.filter(found, matched)
    return rows, {kept.type.field(i).name: kept.field(i) for i in range(kept.type.num_fields)}


def _decimal(part: pa.Array) -> np.ndarray:
    """A group of digits with '.' or ',' as decimal mark as numbers; 0 where empty."""
    digits = pc.replace_substring(part, ",", ".")
    return pc.cast(pc.if_else(pc.equal(digits, ""), "0", digits), pa.float64()).to_numpy(zero_copy_only=False)


def _word_number(part: pa.Array, read: ReadOptions) -> np.ndarray:
    """A group of a words duration read with the source's decimal and thousands marks; NaN where empty or unread."""
    return parse_numbers(pd.Series(part.to_numpy(zero_copy_only=False), dtype="str"), decimal=read.decimal,
                         thousands=read.thousands).to_numpy()


def _signed(parts: dict[str, pa.Array], micro: np.ndarray) -> np.ndarray:
    """`micro` negated where the `sign` group is '-'."""
    minus = pc.equal(parts["sign"], "-").to_numpy(zero_copy_only=False)
    return np.where(minus, -micro, micro)


def _hours_minutes_seconds(parts: dict[str, pa.Array]) -> np.ndarray:
    """The microseconds of the `hours`, `minutes` and `seconds` groups of a clock."""
    return sum(_decimal(parts[name]) * UNIT_MICROSECONDS[name] for name in ("hours", "minutes", "seconds"))


def _clock(parts: dict[str, pa.Array], **_) -> tuple[np.ndarray, str]:
    return _signed(parts, _hours_minutes_seconds(parts)), CLOCK


def _short_clock(parts: dict[str, pa.Array], *, unit: str, **_) -> tuple[np.ndarray, str]:
    """'1:30' by the unit of its first part (SHORT_CLOCK_UNITS); not read (NaN, AMBIGUOUS_CLOCK) with other units."""
    if unit not in SHORT_CLOCK_UNITS:
        return np.full(len(parts["first"]), np.nan), AMBIGUOUS_CLOCK
    first, second = SHORT_CLOCK_UNITS[unit]
    return _signed(parts, _decimal(parts["first"]) * UNIT_MICROSECONDS[first]
                   + _decimal(parts["second"]) * UNIT_MICROSECONDS[second]), SHORT_CLOCK


def _days_clock(parts: dict[str, pa.Array], **_) -> tuple[np.ndarray, str]:
    days = pc.cast(parts["days"], pa.float64()).to_numpy(zero_copy_only=False)
    return days * UNIT_MICROSECONDS["days"] + _hours_minutes_seconds(parts), DAYS_CLOCK


def _iso(parts: dict[str, pa.Array], **_) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 durations; 'P' or 'PT' alone (no amount) is none: NaN, no form."""
    given = np.logical_or.reduce([parts[name].to_numpy(zero_copy_only=False) != ""
                                  for name in ("weeks", "days", "hours", "minutes", "seconds")])
    total = _decimal(parts["weeks"]) * WEEK_MICROSECONDS + sum(
        _decimal(parts[name]) * UNIT_MICROSECONDS[name] for name in ("days", "hours", "minutes", "seconds"))
    return np.where(given, _signed(parts, total), np.nan), np.where(given, ISO, None)


def _words(parts: dict[str, pa.Array], *, read: ReadOptions, **_) -> tuple[np.ndarray, np.ndarray]:
    """Words durations (DAY_WORDS with a day part); not read (NaN, no form) without an amount, or with a number the
    source's marks do not read ('1,5 h' with decimal '.': neither 1.5 nor 15 hours)."""
    present = {name: parts[name].to_numpy(zero_copy_only=False) != "" for name in WORD_UNITS}
    amounts = {name: _word_number(parts[name], read) for name in WORD_UNITS}
    read_ok = np.logical_or.reduce(list(present.values()))
    for name in WORD_UNITS:
        read_ok &= ~(present[name] & np.isnan(amounts[name]))
    total = sum(np.nan_to_num(amounts[name]) * UNIT_MICROSECONDS[name] for name in WORD_UNITS)
    return (np.where(read_ok, _signed(parts, total), np.nan),
            np.where(read_ok, np.where(present["days"], DAY_WORDS, WORDS), None))
