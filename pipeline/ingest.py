"""Contract validation: split each source's raw rows into validated rows and quarantined rows.

Pure functions over `RawSource`s (see `pipeline.sources`); the runner `pipeline.run.ingest` reads
and writes. Steps, for every configured source:

1. `parse_source`: rename onto contract names, parse each column into its contract type; a value
   that is present but cannot be parsed is a problem ("not a timestamp", "not a number"). Ids are
   normalised (`parse_ids`); a transactions source without amount gets it derived from quantity x
   unit_price (`derive_amount`); a time given by the source's `after` is its `from` time plus a file column's
   duration (read as a number or in a text form by `pipeline.durations`, added by `time_after`; bad durations:
   `duration_problems`), in the order of `after_order` (a `from` time that `after` gives too comes first). A time on
   a date exports write for 'none' (`PLACEHOLDER_DAYS`: 9999-12-31, 1900-01-01, ...) is refused in a required column
   and read as missing, with a note, in an optional one.
2. `reference_time` and `data_start`: the data's own latest and earliest time, over every source
   (robust to corrupt far-future and far-past values; see their docstrings); an optional time outside them is read as
   missing, with a note, and a required one at Unix time zero refused as a placeholder (`with_far_times_read`).
3. `find_problems`: value rules declared once as a pandera schema (`validation_schema`: ids
   present, ranges, allowed kinds, nothing after the reference time plus the tolerance or before
   the start, money within ±ingest.max_abs_amount, closed before opened, ...); `rule_problems` calls
   each of the schema's checks on the whole column and turns its boolean result into (row, column,
   reason) rows. A row without customer_id gets the reason 'anonymous' (a guest checkout).
4. `split_source`: rows without problems -> contract-shaped validated frame; rows with problems ->
   quarantine, unchanged as read, with every problem of the row in `reason` ('; '-joined);
   unknown extra columns of validated rows -> an `extra` frame keyed by `validated_row`; the customers export's
   columns named in `sources.customers.attributes` are no extra: they follow the contract columns as
   `attribute_<slug>` columns (`attribute_values`): text, or numbers for those of kind number.
5. `check_validated`: pandera validates the validated frame against the same schema (columns,
   order, dtypes, nullability, rules); a failure there is a bug, never bad data.

Why pandera is used this way (measured on 1M demo transactions with 3% bad rows, 2 cores):
`schema.validate(lazy=True)` took 0.05 s on clean rows but 0.45-0.7 s with 3% bad rows, nearly
all of it building failure-case tables (a frame-wide rule is reported once per column of each
failing row), and still 0.5 s when run on the bad rows alone. Calling the same Check objects
directly gives the same verdicts, with pandera's own null handling, in 0.03-0.06 s whatever the
share of bad rows. So the schema stays the single, readable statement of the rules and the final
check on what leaves ingest, while per-row reasons come from vectorised boolean results.

`ingest_sources` runs all of it and raises IngestError when any source's bad share (rows without
customer_id are 'anonymous', quarantined but not bad) or anonymous share exceeds its limit, before
anything is written. The notes on what looks wrong or is worth saying in the parsed and validated rows
(quiet spans of orders, ids written more than one way, tickets closed before their reply, ...) are
`pipeline.ingest_notes`; this module calls them and adds them to the report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import pandera.pandas as pa
import polars as pl
import pyarrow as pa_arrow
import pyarrow.compute as pa_compute
from pandas.api.types import union_categoricals

from pipeline.config import (
    SOURCE_NAMES,
    CurrencyRates,
    CustomerAttribute,
    IngestConfig,
    ReadOptions,
    SourceConfig,
    TimeAfter,
    after_order,
)
from pipeline.contract import (
    AMOUNT_FACTORS,
    BOOLEAN,
    FEEDBACK_KINDS,
    FEEDBACK_SCORE_RANGES,
    FLOAT,
    LOYALTY_KINDS,
    STRING,
    TICKET_CHANNELS,
    TIMESTAMP,
    attribute_columns,
    contract,
    empty_frame,
)
from pipeline.durations import AMBIGUOUS_CLOCK, SHORT_CLOCK_LAYOUTS, UNIT_MICROSECONDS, durations_read
from pipeline.errors import IngestError
from pipeline.ingest_notes import (
    identifier_attribute_notes,
    closed_before_reply_note,
    constant_money_note,
    currency_counts,
    dates_on_both_sides_note,
    differing_attributes_note,
    differs_from_row_above,
    discount_share_note,
    discount_share_of_net_note,
    discount_share_read_note,
    distinct_ids,
    fractional_nps_note,
    free_order_note,
    id_match_notes,
    late_first_response_note,
    minor_unit_note,
    mixed_currency_note,
    negative_earn_note,
    one_order_each_note,
    order_gap_note,
    orders_per_day,
    order_total_note,
    outsized_id_note,
    resolved_without_close,
    resolved_without_close_note,
    split_id_note,
    thin_end_note,
    time_after_note,
    unmapped_column_notes,
    unread_attributes_note,
    unset_zone_note,
    utc_offset_note,
)
from pipeline.progress import get_logger
from pipeline.snapshot import instant_us, snapshot_time
from pipeline.sources import (
    NUMBER_PATTERN,
    RawSource,
    SourceResult,
    blank_cells,
    export_setting,
    cell_text,
    columns_shown,
    concat_as_read,
    empty_problems,
    hidden_ids,
    invisible_ids,
    holds_dates,
    infer_date_format,
    is_text,
    kept_mask,
    local_day,
    minus_for_accounting,
    parse_booleans,
    parse_ids,
    numbers_as_read,
    parse_timestamps,
    rounded_ids,
    skipped_clock_rows,
    synthetic_order_ids,
    text_array,
    text_series,
    value_text,
    yaml_word,
)

MISSING = "missing"
ANONYMOUS = "anonymous"  # the reason of a row without customer_id (a guest checkout): not a bad row
# A feedback row without a score beside answered ones: a survey sent but not answered (survey tools export those
# rows blank). Not a bad row; when no row of the source has a score, the score column is mapped wrong: missing.
UNANSWERED = "missing (a survey sent but not answered?)"
ROUNDED_ID = ("in scientific notation: a spreadsheet rounded these ids, so different ones look alike; re-export with "
              "the column formatted as text")
HIDDEN_ID = ("shown as '#######' (a spreadsheet's sign of a column too narrow for its values, saved as shown), so "
             "different ids look alike; re-export with the column wide enough or formatted as text")
INVISIBLE_ID = ("holds an invisible or control character (a zero-width space, byte-order mark, NUL, tab, ...), so it "
                "does not match the same id written without it; remove the character in the export")
# The reason of a row whose record a more recent file of the source holds too (overlapping exports): not a bad row.
REPEATED = "repeated in a more recent export file (overlapping exports): the latest copy is kept"
# The contract columns that name one record of a source; the others (a delivery time, a ticket's close, an order's
# status in a file column) may change between two exports of the same record. Other sources: every column.
RECORD_IDENTITY = {
    "transactions": ("order_id", "customer_id", "ordered_at", "product_id", "quantity", "unit_price", "amount",
                     "discount"),
    "feedback": ("feedback_id", "customer_id", "submitted_at", "kind", "score", "order_id", "comment"),
    "support_tickets": ("ticket_id", "customer_id", "opened_at"),
}
HEADER_AGAIN = "repeats the header row (exports joined one below the other?)"  # not a bad row either
# The reason of an order's lines that a later block of the same file repeats line for line (two exports joined one
# below the other without a second header, such as the two overlapping sheets of a workbook): not a bad row.
REPEATED_BLOCK = ("repeated later in the same file: the order's lines appear again as a separate block, line for line "
                  "(exports joined one below the other?): the last copy is kept")
# A customers export with more than one row per customer (an address history, say): the first valid row is kept.
LATER_ATTRIBUTES = ("customer_id: another row holds this customer's attributes (one row per customer: the first of the "
                    "most recent file is kept)")
# One answer written on several rows (a review of a checkout of several orders, on each order): counted once.
SAME_ANSWER = ("feedback_id: another row holds this answer (the same feedback_id, customer, time, kind and score: "
               "one answer about several orders is counted once)")
ANSWER_IDENTITY = ("feedback_id", "customer_id", "submitted_at", "kind", "score")
EXCLUDED_PREFIX = "excluded by "  # rows left out on purpose (a source's `exclude` setting): not bad either
EXCLUDED = EXCLUDED_PREFIX + "sources.{source}.exclude: {column} is {value!r}"
EXCLUDED_FILLED = EXCLUDED_PREFIX + "sources.{source}.exclude_when_filled: {column} is filled"
FROM_ORDER = " (on its order's other lines; this line leaves it blank)"  # an exclusion a filled line took
PARTITION_KEYS = 2**16  # keys per hash partition in `repeated`
TOP_REASONS = 5
# Timestamps that record a past fact; promised delivery dates may lie after the data's end.
FORWARD_LOOKING = frozenset({"promised_delivery_at"})
# reference_time: look for the end of the data among the top 5% of times; a jump of more than
# max(30 days, 10% of the 5th-95th percentile span) starts the region of corrupt future values.
REFERENCE_QUANTILE = 0.95
REFERENCE_MIN_GAP = pd.Timedelta(days=30)
REFERENCE_GAP_SHARE = 0.10
# data_start: the same walk down from the 5th percentile; a jump of more than max(2 years, 25% of
# the 5th-95th percentile span) ends the data (histories thin out towards their start).
START_MIN_GAP = pd.Timedelta(days=730)
START_GAP_SHARE = 0.25
# Money columns: a word in one is no amount (its reason suggests no recode).
BOUNDED_MONEY = {"transactions": ("amount", "unit_price", "discount"), "loyalty_events": ("points",)}
# Columns bounded by ingest.max_abs_amount: the money, and quantities, all summed as int64 ten-thousandths downstream.
BOUNDED = {**BOUNDED_MONEY, "transactions": (*BOUNDED_MONEY["transactions"], "quantity")}
# Deadlines: a column of dates without a time of day is kept by the end of its day (a promised delivery date).
END_OF_DAY = frozenset({("transactions", "promised_delivery_at")})
# Time-ordered pairs (later, earlier): the later one may not come before the earlier one.
TIME_ORDER = {
    "transactions": (("delivered_at", "ordered_at"), ("promised_delivery_at", "ordered_at")),
    "support_tickets": (("closed_at", "opened_at"), ("first_response_at", "opened_at")),
}
ALLOWED_VALUES = {
    ("feedback", "kind"): FEEDBACK_KINDS,
    ("support_tickets", "channel"): TICKET_CHANNELS,
    ("loyalty_events", "kind"): LOYALTY_KINDS,
}
# Dates exports write for "none" (`placeholder_rows`): the ends of a date type's range (0001-01-01, the least .NET and
# Java dates; 9999-12-31, the "open end" of SQL and SAP tables), the day zero of SQL Server (1900-01-01; 1753-01-01,
# its datetime's least) and of spreadsheets (1899-12-30/31, within a day of 1899-12-31), and far ends picked by hand
# (2099-12-31, 2999-12-31). A time within a day of one is one, whatever its zone: no shop's history lies there.
PLACEHOLDER_DAYS = ("0001-01-01", "1753-01-01", "1899-12-31", "1900-01-01", "2099-12-31", "2999-12-31", "9999-12-31")
# Unix time zero (what a zero timestamp reads as) is a real day of an old history (a customer's signup): it is a
# placeholder only outside the data's own span (`far_time_rows`), as every time there is in an optional column.
EPOCH_DAY = "1970-01-01"
DAY_MICROSECONDS = 86_400_000_000
PLACEHOLDER_TIME = "a placeholder date that exports write for 'none' (9999-12-31, 1900-01-01, 0001-01-01, ...), no time"
SHOWN_PLACEHOLDERS = 3


@dataclass(frozen=True)
class ParsedSource:
    """typed: the contract columns in contract dtypes, index = input row.
    problems: one row per unparseable value (row, column, reason).
    labels: contract column -> the file's column name (for reasons a user can find).
    derived: contract columns computed from others (e.g. amount from quantity x unit_price).
    notes: how columns were read, for the report (e.g. an inferred date format)."""

    name: str
    typed: pd.DataFrame
    problems: pd.DataFrame
    labels: dict[str, str]
    derived: dict[str, str] = field(default_factory=dict)  # contract column -> how it was computed
    notes: list[str] = field(default_factory=list)  # how columns were read, for the report (e.g. a date format)
    warnings: list[str] = field(default_factory=list)  # the notes a user must see when ingest runs (also in notes)
    # Transactions with a `refunds` column: the rows that give a refund (`parsed_refunds`).
    refunds: pd.DataFrame | None = None


@dataclass(frozen=True)
class IngestResult:
    sources: dict[str, SourceResult]
    reference: pd.Timestamp | None
    report: dict = field(default_factory=dict)


def _problems(rows: np.ndarray, column: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"row": rows.astype(np.int64), "column": column, "reason": reason})


def map_columns(raw: RawSource, source: SourceConfig, *, export_number: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """The contract columns present in `raw` under contract names, and contract -> file name labels.

    `combine` joins file columns into one (`joined_text`), `constants` fill a column with one value. With
    `one_order_per_row`, order_id is synthesised from the input row ('R1', 'R2', ...; 'R1/1' in the first of
    `other_exports`: `export_number`).
    """
    spec = contract(raw.name)
    labels = {source.rename.get(column, column): column for column in raw.frame.columns}
    present = {name: raw.frame[labels[name]] for name in spec.input_dtypes if name in labels}
    for name, parts in source.combine.items():
        present[name] = joined_text(raw.frame, parts)
        labels[name] = " + ".join(parts)
    for name, value in source.constants.items():
        present[name] = pd.Series(value, index=raw.frame.index, dtype="str")
        labels[name] = f"{name} (sources.{raw.name}.constants)"
    if source.one_order_per_row and raw.name == "transactions":
        present["order_id"] = synthetic_order_ids(len(raw.frame), export_number=export_number)
        labels["order_id"] = "order_id (one per row)"
    return pd.DataFrame(present, index=raw.frame.index, copy=False), labels


ORDER_FIELDS = ("customer_id", "ordered_at")  # one value per order: a line may take it from its order's other lines


def file_columns(columns: Iterable[str], source: SourceConfig, contract_column: str) -> list[str]:
    """The file columns that give `contract_column` under the mapping: its `combine` parts, else the column renamed
    onto it (or named so); [] when none (absent, or a constant)."""
    if contract_column in source.combine:
        return list(source.combine[contract_column])
    return [column for column in columns if source.rename.get(column, column) == contract_column]


def _with_values_at(values: pd.Series, rows: np.ndarray, new: np.ndarray) -> pd.Series:
    """`values` with those at positions `rows` replaced by `new` (text columns by one Arrow pass)."""
    if not is_text(values):
        result = values.copy()
        result.iloc[rows] = new
        return result
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    text = text_array(values)
    replaced = pa_compute.replace_with_mask(text, pa_arrow.array(mask), pa_arrow.array(new, type=text.type))
    return text_series(replaced, values.index)


def currency_columns(source: SourceConfig) -> list[str]:
    """The file column `currency_rates` names, if set."""
    return [] if source.currency_rates is None else [source.currency_rates.column]


def refund_columns(source: SourceConfig) -> list[str]:
    """The file columns of order-level refunds and their time (`refunds` with `per: order`), if set: an order's other
    lines may take them."""
    if source.refunds is None or source.refunds.per != "order":
        return []
    return [source.refunds.column, *([source.refunds.at] if source.refunds.at else [])]


def with_order_fields_filled(raw: RawSource, source: SourceConfig) -> RawSource:
    """Transactions whose export writes an order's own fields on its first line only (a Shopify order export: the
    other lines leave the e-mail, the time and the status blank): a blank cell of the file columns giving
    ORDER_FIELDS takes the one value the other lines of its order hold (none when they hold two); so does a blank
    cell of a column named by `exclude`, `exclude_when_filled`, `returns_when`, `currency_rates` or `refunds` (per
    order), on a line that lacks an order field too (a flag that other lines leave blank is the line's own). A note
    counts the lines. Other sources, or nothing to fill: `raw` unchanged.

    Only the orders with a blank cell are looked at: on a complete export this costs a few Arrow passes.
    """
    if raw.name != "transactions" or source.one_order_per_row:
        return raw
    columns = list(raw.frame.columns)
    order_columns = file_columns(columns, source, "order_id")

    def fillable(names: Iterable[str]) -> list[str]:
        return [c for c in dict.fromkeys(names) if c in columns and c not in order_columns]

    fields = fillable(c for f in ORDER_FIELDS for c in file_columns(columns, source, f))
    fill = fillable([*fields, *source.exclude, *source.exclude_when_filled, *source.returns_when,
                     *currency_columns(source), *refund_columns(source)])
    if not order_columns or not fields:
        return raw
    frame = raw.frame
    blanks = {column: blank_cells(frame[column]) for column in fill}
    # A line-level flag (a blank `Returned` beside a `yes` on another line) is not an order field: flags are taken only
    # by lines that lack the order's own fields too (the later lines of a Shopify order).
    some_blank = np.logical_or.reduce([blanks[column] for column in fields])
    for column in fill:
        if column not in fields:
            blanks[column] = blanks[column] & some_blank
    if not some_blank.any():
        return raw
    # Each line's order as written (ids are stripped when parsed: the lines with a blank, and the lines written
    # like their orders, are the candidates; their orders are then compared stripped).
    written = text_array(joined_text(frame, order_columns) if len(order_columns) > 1 else frame[order_columns[0]])
    blank_rows = np.flatnonzero(some_blank)
    incomplete = pa_compute.unique(pa_compute.utf8_trim_whitespace(written.take(pa_arrow.array(blank_rows))))
    in_orders = pa_compute.fill_null(pa_compute.is_in(written, value_set=incomplete), False)
    rows = np.union1d(np.flatnonzero(in_orders.to_numpy(zero_copy_only=False)), blank_rows)
    key = pd.Series(pa_compute.utf8_trim_whitespace(written.take(pa_arrow.array(rows))).to_pandas())
    key = key.where(key != "")  # a line without an order id belongs to no order
    filled_lines = np.zeros(len(frame), dtype=bool)
    updates = {}
    for column in fill:
        blank = blanks[column][rows]
        groups = frame[column].iloc[rows].reset_index(drop=True).where(~blank).groupby(key, sort=False)
        taken = blank & (groups.transform("nunique") == 1).to_numpy(dtype=bool)
        if taken.any():
            updates[column] = _with_values_at(frame[column], rows[taken], groups.transform("first").to_numpy()[taken])
            filled_lines[rows[taken]] = True
    if not updates:
        return raw
    names = ", ".join(column for column in fill if column in updates)
    note = (f"{int(filled_lines.sum()):,} order lines with blank cells in {names} took their order's values from its "
            "other lines (an export that writes an order's fields on its first line only)")
    return dataclasses.replace(raw, frame=frame.assign(**updates), notes=(*raw.notes, note))


def joined_text(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The text of `columns` (`cell_text`) joined by a space per row; missing where any of them is missing or blank."""
    parts = [cell_text(frame[column]) for column in columns]
    missing = np.logical_or.reduce([(part.isna() | (part == "")).to_numpy(dtype=bool) for part in parts])
    return parts[0].str.cat(parts[1:], sep=" ").where(~missing)


def recoded(values: pd.Series, words: Mapping[str, str]) -> pd.Series:
    """`values` as text (`cell_text`), with each value that is a key of `words` replaced by its word; other values as
    they are."""
    text = cell_text(values)
    listed = text.isin(list(words))
    return text.where(~listed, text.map(words)) if listed.any() else text


def folded_to_allowed(values: pd.Series, allowed: tuple[str, ...]) -> tuple[pd.Series, int, str]:
    """`values` (text) where a value is one of `allowed` but for case and surrounding whitespace ('NPS', ' Earn')
    replaced by it; the number of values replaced and an example ('NPS' as 'nps'), or (values, 0, '')."""
    other = np.flatnonzero(~values.isin(allowed).to_numpy(dtype=bool) & values.notna().to_numpy(dtype=bool))
    folded = values.iloc[other].str.strip().str.lower()
    fixed = folded.isin(allowed).to_numpy(dtype=bool)
    if not fixed.any():
        return values, 0, ""
    rows, words = other[fixed], folded[fixed]
    result = values.copy()
    result.iloc[rows] = words.to_numpy()
    return result, len(rows), f"{values.iloc[rows[0]]!r} as {words.iloc[0]!r}"


def _unparsed(values: pd.Series, parsed: pd.Series) -> np.ndarray:
    """Rows where the raw cell holds something (not null, not blank) but the parsed value is null."""
    rows = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
    if len(rows) and (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        rows = rows[(values.iloc[rows].astype("str").str.strip() != "").to_numpy(dtype=bool)]
    return rows


# An accounting negative: '(12.50)', '(£12.50)', '£(12.50)', or a trailing minus as ERP exports write it ('12.50-').
ACCOUNTING_PATTERN = r"^\S{0,3}\(\s*\S{0,3}\s*[\d.,' ]+\s*\S{0,3}\)\S{0,3}$|^\S{0,3}\s*\d[\d.,' ]*\s*\S{0,3}\s*-$"
# A number with a currency sign or code before it (after a sign) or after it: '$12.50', '-£3', '12,50 EUR'.
CURRENCY_PATTERN = r"^[+-]?\s*([$€£¥₹₽₩₺₪₫฿₴₦₱]|[A-Z]{3})\s*[+-]?[\d.,' ]+$|^[+-]?[\d.,' ]+\s*([$€£¥₹₽₩₺₪₫฿₴₦₱]|[A-Z]{3})$"
REASON_SAMPLE = 1_000  # unread number cells looked at for a hint
# Numbers written with a decimal comma ('2,55', '-1.234,5', '1 234,5'): what a plain number reader rejects.
DECIMAL_COMMA_PATTERN = r"^[+-]?\d{1,3}(?:[. \u00a0\u202f']?\d{3})*,\d+$"


def without_guest_ids(ids: pd.Series, guest_ids: Sequence[str], *, case: str) -> tuple[pd.Series, int]:
    """Parsed customer `ids` with those of `guest_ids` (normalised like them: `parse_ids` with `case`) made empty, and
    how many were."""
    guests = ids.isin(parse_ids(pd.Series(list(guest_ids), dtype="str"), case=case).dropna()).to_numpy()
    return (ids.mask(guests), int(guests.sum())) if guests.any() else (ids, 0)


WORD_PATTERN = r"[^\W\d_]{2,}"  # letters ('good', 'on hold'): a word, not a number in another layout
NOT_WORDS = ("inf", "infinity", "nan")  # what a number reader names, not an export's own word
SHOWN_WORDS = 3


def _frequent_words(text: pd.Series) -> list[str] | None:
    """The most frequent values of `text` (stripped cells), at most SHOWN_WORDS, when most of them are words
    (`WORD_PATTERN`, not 'inf' or 'nan'); None otherwise."""
    words = text.str.contains(WORD_PATTERN) & ~text.str.lower().str.lstrip("+-").isin(NOT_WORDS)
    if not len(text) or words.mean() <= 0.5:
        return None
    return _most_frequent(text[words])


def _most_frequent(cells: pd.Series) -> list[str]:
    """The most frequent values of `cells`, most first, at most SHOWN_WORDS."""
    return cells.value_counts(sort=True).index[:SHOWN_WORDS].tolist()


def _recode_keys(words: Sequence[str], value: str) -> str:
    """A recode's keys for `words`, each mapped onto `value`: "offered: <number>, 'yes': <number>"."""
    return ", ".join(f"{yaml_word(word)}: {value}" for word in words)


def words_reason(
    unread: pd.Series, *, column: str, label: str, setting: str, boolean: bool = False, listed: Sequence[str] = ()
) -> str | None:
    """The hint for cells of a number (or true/false, `boolean`) column that hold words ('offered', 'good', 'on hold'):
    the words, and the `recode` that maps them onto the contract's values or the `exclude` that leaves their rows
    out; and the keys of the column's recode (`listed`) that are words of the cells in another case ('open' for
    'Open': not matched, keys are compared as written). None when most of them are not words."""
    every = max(1, len(unread) // REASON_SAMPLE)
    words = _frequent_words(unread.iloc[::every].astype("str").str.strip())
    if words is None:
        return None
    shown = ", ".join(repr(word) for word in words) + (", ..." if len(words) == SHOWN_WORDS else "")
    case = _recode_case_hint(unread, listed)
    if boolean:
        return (f"({shown}; say what each means with {setting}.recode: {{{column}: {{{yaml_word(words[0])}: false}}}}, "
                f"or true where it means yes{case})")
    keys = _recode_keys(words, "<number>")
    return (f"(words: {shown}; give each a number with {setting}.recode: {{{column}: {{{keys}}}}}, or leave their rows "
            f"out with {setting}.exclude: {{{yaml_word(label)}: [{', '.join(yaml_word(w) for w in words)}]}}{case})")


def _recode_case_hint(unread: pd.Series, listed: Sequence[str]) -> str:
    """'; its recode lists 'open' in another case: keys are compared as written' when keys of the column's recode
    (`listed`) are cells of `unread` in another case; '' otherwise (a pass over every cell only when there are keys)."""
    folded = set(unread.dropna().astype("str").str.strip().str.lower()) if listed else set()
    cased = [key for key in listed if key.strip().lower() in folded]
    named = [repr(key) for key in cased[:SHOWN_WORDS]]
    return (f"; its recode lists {' and '.join([', '.join(named[:-1]), named[-1]] if len(named) > 1 else named)} in "
            "another case: keys are compared as written" if cased else "")


def unknown_words_reason(unread: pd.Series, *, allowed: Sequence[str], column: str, setting: str,
                         listed: Sequence[str] = ()) -> str:
    """The reason of cells of a column of contract words (a feedback or loyalty kind, a ticket channel) that are none
    of `allowed`: the most frequent of them (at most SHOWN_WORDS) and the `recode` that maps them, with the keys of the
    column's recode (`listed`) written in another case (`_recode_case_hint`)."""
    words = _most_frequent(unread.astype("str").str.strip())
    shown = ", ".join(repr(word) for word in words) + (", ..." if unread.nunique() > SHOWN_WORDS else "")
    keys = _recode_keys(words, f"<{column}>")
    return (f"not one of {', '.join(allowed)} ({shown}; map each onto one of them with {setting}.recode: "
            f"{{{column}: {{{keys}}}}}{_recode_case_hint(unread, listed)})")


def _number_reason(unread: pd.Series, *, read: ReadOptions, source: str, words: dict | None = None) -> str:
    """The quarantine reason of number cells that could not be read (`unread`): 'not a number', with a hint when
    most of them have a decimal comma (and the decimal mark is '.'), or a currency sign other than the
    configured one (naming the most frequent), or are words (`words_reason`, given `words`: its column, label and
    setting)."""
    every = max(1, len(unread) // REASON_SAMPLE)  # evenly spaced: the hint only needs what most cells look like
    text = unread.iloc[::every].astype("str").str.strip()
    if read.accounting_negatives:  # '(12,50)' is read as '-12,50': the hints look at that
        text = text_series(minus_for_accounting(text_array(text)), text.index)
    if read.decimal == "." and text.str.match(DECIMAL_COMMA_PATTERN).mean() > 0.5:
        return (f"not a number (a decimal comma? set sources.{source}.read.decimal: ',' and, if the numbers have "
                "one, read.thousands)")
    if not read.accounting_negatives and text.str.match(ACCOUNTING_PATTERN).mean() > 0.5:
        return (f"not a number (a negative in parentheses or with a trailing minus? set sources.{source}.read."
                "accounting_negatives: true)")
    signs = text.str.extract(CURRENCY_PATTERN).bfill(axis=1).iloc[:, 0]
    if signs.notna().mean() > 0.5 and signs.mode().iloc[0] != read.currency:
        sign = signs.mode().iloc[0]
        numbers = text.str.replace(sign, "", regex=False).str.strip(" +-")
        comma = read.decimal == "." and numbers.str.match(DECIMAL_COMMA_PATTERN).mean() > 0.5
        return (f"not a number (a currency sign? set sources.{source}.read.currency: {sign!r}"
                + (" and read.decimal: ','" if comma else "") + ")")
    if true_or_false(unread):
        keys = _recode_keys(_most_frequent(cell_text(unread).str.strip()), "<number>")
        count = (f" To count them, give each a number with {words['setting']}.recode: {{{words['column']}: {{{keys}}}}}"
                 if words is not None else "")
        return f"not a number (true/false values, as a yes/no column holds: is the right column mapped?{count})"
    if text.str.fullmatch(NUMBER_PATTERN).mean() > 0.5:  # plain numbers no float holds: 1e400, 1e-400
        return (f"not a number (beyond the range a number is held in, e.g. {text.iloc[0]!r}: no value an export "
                "writes)")
    hint = words_reason(unread, **words) if words is not None else None
    return f"not a number {hint}" if hint else "not a number"


def true_or_false(unread: pd.Series) -> bool:
    """Whether number cells that could not be read (`unread`) are true/false values: a boolean column (Parquet,
    JSON), or text that `parse_booleans` reads in every cell ('true', 'no')."""
    return pd.api.types.is_bool_dtype(unread.dtype) or bool(len(unread)) and bool(parse_booleans(unread).notna().all())


def attribute_values(
    raw: RawSource, attributes: Sequence[CustomerAttribute], *, read: ReadOptions = ReadOptions(),
    export: str | None = None,
) -> dict[str, pd.Series]:
    """The file columns of `attributes` (sources.customers.attributes) of `raw` as {attribute_<slug>: values}: a
    category as text as the export shows it (`value_text`), stripped of surrounding blanks, a blank one null; a
    number as float64 read with the export's `read` settings as amounts are (`numbers_as_read`), a cell that holds
    no number null (`unread_numbers_notes` counts them). IngestError naming the setting when the files lack one
    (`export`: the config key of an export under other_exports, named too)."""
    missing = [attribute.column for attribute in attributes if attribute.column not in raw.frame.columns]
    if missing:
        where = f" of {export}" if export else ""
        raise IngestError(f"sources.{raw.name}.attributes: column {missing[0]!r} is not in the files{where} (their "
                          f"columns: {columns_shown(raw.frame)}); name a column of the export, as it is written there")
    values = {}
    for attribute in attributes:
        if attribute.kind == "number":
            values[attribute.feature] = numbers_as_read(raw.frame[attribute.column], read)
        else:
            text = value_text(raw.frame[attribute.column])
            values[attribute.feature] = text.mask(text == "")
    return values


def _near_days(times: pd.Series, days: Sequence[str]) -> np.ndarray:
    """Whether each of `times` (UTC) lies within a day of one of `days` (so on that day in any zone's wall clock)."""
    micro = times.to_numpy(dtype="datetime64[us]").view(np.int64)  # NaT is the least int64: near no day
    near = np.zeros(len(micro), dtype=bool)
    for day in days:
        start = np.datetime64(day, "us").astype(np.int64)
        near |= (micro >= start - DAY_MICROSECONDS) & (micro < start + 2 * DAY_MICROSECONDS)
    return near


def placeholder_rows(times: pd.Series) -> np.ndarray:
    """Rows of `times` (UTC) on a date that exports write for 'none' (PLACEHOLDER_DAYS, within a day)."""
    return np.flatnonzero(_near_days(times, PLACEHOLDER_DAYS))


def far_time_rows(times: pd.Series, *, earliest: pd.Timestamp | None, latest: pd.Timestamp | None) -> np.ndarray:
    """Rows of `times` (UTC) before `earliest` or after `latest` (the data's own span; None: no such bound)."""
    far = np.zeros(len(times), dtype=bool)
    if earliest is not None:
        far |= (times < earliest).fillna(False).to_numpy(dtype=bool)
    if latest is not None:
        far |= (times > latest).fillna(False).to_numpy(dtype=bool)
    return np.flatnonzero(far)


def placeholder_note(shown: pd.Series, *, label: str, why: str) -> str:
    """The note on the cells of an optional date read as missing (`shown`: their values as text): how many, the most
    frequent (at most SHOWN_PLACEHOLDERS, with their counts) and `why`."""
    counts = shown.value_counts(sort=True)
    values = ", ".join(f"{value!r} ({count:,})" for value, count in counts.head(SHOWN_PLACEHOLDERS).items())
    return (f"{label}: {len(shown):,} date{'s' if len(shown) != 1 else ''} read as missing ({why}): {values}"
            + (", ..." if len(counts) > SHOWN_PLACEHOLDERS else ""))


def with_far_times_read(
    parsed: ParsedSource, *, earliest: pd.Timestamp | None, latest: pd.Timestamp | None
) -> ParsedSource:
    """`parsed` with its times outside the data's own span (`earliest` to `latest`, the latter for past facts only;
    `time_bounds`) read as stand-ins for 'none': in an optional column read as missing, with a note per column
    (`placeholder_note`); in a required one, refused as a placeholder when within a day of Unix time zero (EPOCH_DAY),
    left to the schema's bounds otherwise (a typo in a year is no placeholder)."""
    spec = contract(parsed.name)
    emptied, found, notes = {}, [], []
    span = (f"far outside the data's span, {earliest:%Y-%m-%d} to {latest:%Y-%m-%d} UTC: stand-ins for 'none'?"
            if earliest is not None and latest is not None else "far outside the data's span: stand-ins for 'none'?")
    for column in spec.timestamp_columns:
        times = parsed.typed[column]
        far = far_time_rows(times, earliest=earliest, latest=None if column in FORWARD_LOOKING else latest)
        required = column in spec.required
        if required:
            far = far[_near_days(times.iloc[far], [EPOCH_DAY])]
        if not len(far):
            continue
        label = _label(parsed.labels, column)
        if required:
            found.append(_problems(far, column, (
                f"{EPOCH_DAY} (Unix time zero), far before the data's start ({earliest:%Y-%m-%d} UTC): a placeholder "
                "for 'none', no time")).assign(label=label))
        else:
            notes.append(placeholder_note(times.iloc[far].dt.strftime("%Y-%m-%d %H:%M UTC"), label=label, why=span))
        kept = np.ones(len(times), dtype=bool)
        kept[far] = False
        emptied[column] = times.where(kept)
    if not emptied:
        return parsed
    problems = parsed.problems
    if found:
        labelled = "label" in problems.columns  # several exports: each problem names its export's column
        problems = pd.concat([problems, *(f if labelled else f.drop(columns="label") for f in found)],
                             ignore_index=True)
    return dataclasses.replace(parsed, typed=parsed.typed.assign(**emptied), problems=problems,
                               notes=[*parsed.notes, *notes])


def parse_source(
    raw: RawSource, source: SourceConfig, *, id_case: str = "keep", guest_ids: Sequence[str] = (),
    setting: str | None = None, export_number: int = 0, attributes: Sequence[CustomerAttribute] = (),
    business_zone: str = "UTC",
) -> ParsedSource:
    """Parse `raw` into contract dtypes; values present but unparseable become nulls plus problems.

    Ids are normalised by `parse_ids` (`id_case`: keep, lower or upper); a customer id of `guest_ids` (normalised
    alike) becomes empty, so that its row is a guest's (anonymous). `setting`: the export's config key (notes name
    it; sources.<name> by default; `export_number`: its place among the source's exports). A transactions source
    without `amount` but with quantity and unit_price gets amount derived (`derive_amount`). `attributes`: the file
    columns of sources.customers.attributes, added after the contract columns (`attribute_values`; a note counts the
    cells of a number that hold none, `unread_numbers_notes`). `business_zone`: the zone whose days the later stages
    count; times without a zone read as UTC only because the export's `timezone` is unset get a warning
    (`unset_zone_note`)."""
    spec = contract(raw.name)
    mapped, labels = map_columns(raw, source, export_number=export_number)
    labels.update({target: f"{target} (= {time_after_how(after)})" for target, after in source.after.items()})
    given = [*mapped.columns, *source.after]  # the contract columns the export gives, through a duration too
    if raw.name == "transactions":
        check_delivery_mapping(given, labels, export=setting or f"sources.{raw.name}")
    named = attribute_values(raw, attributes, read=source.read, export=setting if export_number else None)
    typed, problems, zoneless = {}, [], {}
    notes = unread_numbers_notes(raw, attributes, named, read=source.read, export=setting if export_number else None)
    for column, dtype in spec.dtypes.items():
        if column not in mapped:
            typed[column] = pd.Series(pd.NA if dtype == BOOLEAN else None, index=mapped.index, dtype=dtype)
            continue
        values = mapped[column] if column not in source.recode else recoded(mapped[column], source.recode[column])
        if dtype == TIMESTAMP:
            parsed, reason, read_notes = parse_timestamp_column(values, source, label=labels.get(column, column),
                                                              export=setting if export_number else None)
            notes.extend(read_notes)
            example = zoneless_time(values, parsed, source, business_zone=business_zone)
            if example is not None:
                zoneless[labels.get(column, column)] = example
            stand_ins = placeholder_rows(parsed)
            if len(stand_ins):  # before the rules that compare times: 9999-12-31 is no deadline
                if column in spec.required:
                    problems.append(_problems(stand_ins, column, PLACEHOLDER_TIME))
                else:
                    notes.append(placeholder_note(value_text(values.iloc[stand_ins]), label=labels.get(column, column),
                                                  why="placeholders that exports write for 'none'"))
                parsed, values = parsed.copy(), values.copy()
                parsed.iloc[stand_ins] = pd.NaT
                values.iloc[stand_ins] = None  # refused or read as missing: not unparsed as well
        elif dtype == FLOAT:
            parsed, reason = numbers_as_read(values, source.read), "not a number"
        elif dtype == BOOLEAN:
            parsed, reason = parse_booleans(values), "not true/false/yes/no/1/0"
        elif column in spec.id_columns or column in ("feedback_id", "order_id", "product_id"):
            parsed, reason = parse_ids(values, case=id_case), ROUNDED_ID
            rounded = rounded_ids(parsed)
            marked = {why: rows for why, rows in ((HIDDEN_ID, hidden_ids(parsed)), (INVISIBLE_ID, invisible_ids(parsed)))
                     if len(rows)}
            unread = np.unique(np.concatenate([rounded, *marked.values()]))
            if len(unread):  # unparsed: quarantined as bad, not as a guest
                parsed = parsed.copy()
                parsed.iloc[unread] = None
            if marked:
                values = values.copy()
                for why, rows in marked.items():
                    problems.append(_problems(rows, column, why))
                    values.iloc[rows] = None  # its reason is given: not unparsed as well
        else:
            parsed, reason = values.astype(STRING), ""
            if (raw.name, column) in ALLOWED_VALUES:
                parsed, fixed, example = folded_to_allowed(parsed, ALLOWED_VALUES[(raw.name, column)])
                if fixed:
                    notes.append(f"{labels.get(column, column)}: {fixed:,} value{'s' * (fixed != 1)} read in the "
                                 f"contract's lower case (e.g. {example})")
                unknown = np.flatnonzero(parsed.notna().to_numpy() & ~parsed.isin(ALLOWED_VALUES[(raw.name, column)])
                                         .to_numpy(dtype=bool))
                if len(unknown):  # named here, with their words; left empty for the schema's rules
                    problems.append(_problems(unknown, column, unknown_words_reason(
                        parsed.iloc[unknown], allowed=ALLOWED_VALUES[(raw.name, column)], column=column,
                        setting=setting or f"sources.{raw.name}", listed=list(source.recode.get(column, {})))))
                    parsed = parsed.copy()
                    parsed.iloc[unknown] = None
        if reason:
            failed = _unparsed(values, parsed)
            if len(failed):
                words = None if column in BOUNDED_MONEY.get(raw.name, ()) else {  # a word is no amount of money
                    "column": column, "label": labels.get(column, column), "setting": setting or f"sources.{raw.name}",
                    "listed": list(source.recode.get(column, {}))}
                if dtype == FLOAT:
                    reason = _number_reason(values.iloc[failed], read=source.read, source=raw.name, words=words)
                elif dtype == BOOLEAN and words is not None:
                    hint = words_reason(values.iloc[failed], **words, boolean=True)
                    reason += f" {hint}" if hint else ""
                problems.append(_problems(failed, column, reason))
        typed[column] = parsed
    for target in after_order(source.after):  # after every time is read: `from` is one of them, or given before
        after = source.after[target]
        typed[target], found, note = times_after(raw, source, mapped, typed[after.start], target=target,
                                                 start_label=labels.get(after.start, after.start),
                                                 export=setting or f"sources.{raw.name}")
        problems.append(found)
        notes.append(note)
    typed.update(named)
    problems_frame = pd.concat(problems, ignore_index=True) if problems else empty_problems()
    for later, earlier in TIME_ORDER.get(raw.name, ()):
        if later in given and earlier in given:
            if (raw.name, later) in END_OF_DAY:  # a deadline on the order's day is at its end, after the order
                typed[later], note = dates_as_end_of_day(typed[later], timezone=source.timezone,
                                                         label=labels.get(later, later))
            else:
                typed[later], note = with_same_day_dates_not_before(
                    typed[later], typed[earlier], timezone=source.timezone, later=labels.get(later, later),
                    earlier=labels.get(earlier, earlier))
            notes.extend([note] if note else [])
            if raw.name == "support_tickets":
                both = dates_on_both_sides_note(typed[later], typed[earlier], timezone=source.timezone,
                                                later=labels.get(later, later), earlier=labels.get(earlier, earlier),
                                                what=TICKET_STEPS[later])
                notes.extend([both] if both else [])
    if source.discount_is == "share" and "discount" in mapped:  # before currency_rates: a share has no currency
        typed["discount"], above, note = discounts_from_shares(mapped, typed, export=setting or f"sources.{raw.name}")
        problems_frame = pd.concat([problems_frame, above], ignore_index=True)
        notes.extend([note] if note else [])
    if guest_ids and "customer_id" in typed:  # after the parse check: a guest's id was read, it names nobody
        typed["customer_id"], guests = without_guest_ids(typed["customer_id"], guest_ids, case=id_case)
        notes.extend([f"{guests:,} row{'s name' if guests != 1 else ' names'} a guest id of ingest.guest_ids: read as "
                      "a guest's (anonymous)"] if guests else [])
    if "score" in given:  # as the export wrote them, before score_scales maps them
        fractions = fractional_nps_note(typed["score"], typed["kind"], label=labels.get("score", "score"))
        notes.extend([fractions] if fractions else [])
    for kind, scale in source.score_scales.items():
        typed["score"], rescaled = on_contract_scale(typed["score"], typed["kind"], of_kind=kind, scale=scale)
        if rescaled:
            low, high = FEEDBACK_SCORE_RANGES[kind]
            notes.append(f"{rescaled:,} {kind} scores read on a {scale[0]:g}-{scale[1]:g} scale (sources.{raw.name}."
                         f"score_scales) and mapped onto {low:g}-{high:g}")
    notes += [note for key in ("exclude", "returns_when") for note in value_match_notes(
        raw, getattr(source, key), setting=key, export=setting or f"sources.{raw.name}")]
    notes += [f"{setting or f'sources.{raw.name}'}.exclude_when_filled: no row of {column} is filled, so it leaves "
              "nothing out" for column in source.exclude_when_filled
              if blank_cells(file_column(raw, column, setting="exclude_when_filled")).all()]
    returns = rows_with_values(raw, source.returns_when, setting="returns_when")
    if len(returns):
        for column in ("amount", "quantity"):
            typed[column] = _negative_at(typed[column], returns)
        notes.append(f"{len(returns):,} rows are returns by sources.{raw.name}.returns_when: their amount and "
                     "quantity are negative")
    factors = None
    if source.currency_rates is not None:
        factors, unknown, note = currency_factors(raw, source.currency_rates)
        for column in MONEY_COLUMNS:
            typed[column] = typed[column].where(factors.isna(), typed[column] * factors)
        problems_frame = pd.concat([problems_frame, unknown], ignore_index=True)
        notes.append(note)
    refunds = None
    if raw.name == "transactions" and source.refunds is not None:
        refunds, unread, refund_notes = parsed_refunds(raw, source, factors=factors,
                                                       export=setting or f"sources.{raw.name}")
        notes += refund_notes + value_match_notes(raw, source.refunds.when, setting="refunds.when",
                                   export=setting or f"sources.{raw.name}")
        problems_frame = pd.concat([problems_frame, unread], ignore_index=True)  # refunds that are not numbers
    derived = {target: time_after_how(after) for target, after in source.after.items()}
    if raw.name == "transactions" and "amount" not in mapped and all(f in mapped for f in AMOUNT_FACTORS):
        with_discount = "discount" in mapped
        typed["amount"] = derive_amount(typed["quantity"], typed["unit_price"], typed["discount"])
        share = with_discount and source.discount_is == "share"
        derived["amount"] = "quantity × unit_price" + (" × (1 − discount)" if share else
                                                       " − discount" if with_discount else "")
        labels["amount"] = f"amount (= {derived['amount']})"
        too_large = discount_beyond_price(typed["quantity"], typed["unit_price"], typed["discount"])
        if len(too_large):
            problems_frame = pd.concat([problems_frame, _problems(too_large, "discount", (
                f"more than {labels.get('quantity', 'quantity')} × {labels.get('unit_price', 'unit_price')} (an "
                "order's whole discount on one of its lines? map each line's own discount)"))], ignore_index=True)
    zone = unset_zone_note(zoneless, setting=setting or f"sources.{raw.name}", business_zone=business_zone)
    return ParsedSource(name=raw.name, typed=pd.DataFrame(typed, index=mapped.index, copy=False),
                        problems=problems_frame, labels=labels, derived=derived, notes=notes, refunds=refunds,
                        warnings=[zone] if zone else [])


def times_after(
    raw: RawSource, source: SourceConfig, mapped: pd.DataFrame, start: pd.Series, *, target: str, start_label: str,
    export: str,
) -> tuple[pd.Series, pd.DataFrame, str]:
    """(the contract time `target` that `source.after` gives as a duration after `start` (its `from` time, read or
    given by `after` itself), its problems (`duration_problems`), its note (`time_after_note`)). `mapped`: the export's
    contract columns as read; `export`: its config key."""
    after = source.after[target]
    values = raw.frame[after.column]
    durations = durations_read(values, unit=after.unit, read=source.read)
    times = time_after(start, durations["microseconds"])
    if after.start in source.after:  # empty where its own duration is blank (a ticket not answered yet)
        start_blank = blank_cells(raw.frame[source.after[after.start].column])
    elif after.start in mapped and after.start not in contract(raw.name).required:
        start_blank = blank_cells(mapped[after.start])
    else:  # a required `from` time left blank is 'missing' already
        start_blank = np.zeros(len(values), dtype=bool)
    found = duration_problems(values, durations, start, target=target, after=after, start_label=start_label,
                              start_blank=start_blank, read=source.read, source=raw.name, export=export)
    note = time_after_note(values, times, durations["form"], target=target, after=after, start_label=start_label,
                           start_dates=holds_dates(start, source.timezone))
    return times, found, note


def discounts_from_shares(
    mapped: pd.DataFrame, typed: dict[str, pd.Series], *, export: str
) -> tuple[pd.Series, pd.DataFrame, str | None]:
    """(the money each line's discount takes off where the export writes shares (`discount_is: share`): a share of
    quantity × unit_price (`discount_from_share`) when both are mapped, else of the line's price before the discount
    when the export gives amount after it (`discount_from_share_of_net`); the rows whose share is above 1 (problems),
    the note (`discount_share_read_note`)). IngestError when neither is mapped. `mapped`: the contract columns as
    read; `typed`: parsed."""
    lacking = [column for column in AMOUNT_FACTORS if column not in mapped]
    if lacking and "amount" in mapped:
        money, above = discount_from_share_of_net(typed["discount"], typed["amount"])
        found = _problems(above, "discount", f"a share above 1 ({export}.discount_is: share reads 0.15 as 15% off)")
        return money, found, discount_share_of_net_note(mapped["discount"], typed["discount"], typed["amount"], money,
                                                        export=export)
    if lacking:  # no amount either: the missing-column check stops such an export before this
        raise IngestError(f"{export}.discount_is: share takes off a share of quantity × unit_price or of a mapped "
                          f"amount's price before the discount, but none of them is mapped; map them with "
                          f"{export}.rename, or remove discount_is")
    money, above = discount_from_share(typed["discount"], typed["quantity"], typed["unit_price"])
    found = _problems(above, "discount", f"a share above 1 ({export}.discount_is: share reads 0.15 as 15% off)")
    return money, found, discount_share_read_note(mapped["discount"], {**typed, "discount": money}, export=export)


def check_delivery_mapping(columns: Iterable[str], labels: dict[str, str], *, export: str) -> None:
    """Raise IngestError when a transactions export (its contract `columns`, `labels`: contract -> file column)
    gives promised_delivery_at but no delivered_at: every order would count as not delivered, late by the days since
    its promise (Northwind's RequiredDate beside no delivery date: up to 27 'late deliveries' a customer, 258 days late
    in the median)."""
    if "promised_delivery_at" in columns and "delivered_at" not in columns:
        raise IngestError(
            f"{export}: promised_delivery_at is mapped (from {labels.get('promised_delivery_at')!r}) but delivered_at "
            "is not, so every order would count as not delivered and late since its promise (late_deliveries, "
            f"lateness_days_mean, undelivered_orders); map the delivery time onto delivered_at with {export}.rename, "
            "or leave promised_delivery_at unmapped")


TICKET_STEPS = {"closed_at": ("closed", "resolution_hours_mean"), "first_response_at": ("answered",
                                                                                "first_response_hours_mean")}


def dates_as_end_of_day(times: pd.Series, *, timezone: str, label: str) -> tuple[pd.Series, str]:
    """`times` (a deadline: a promised delivery) and a note, where `times` holds dates without a time of day: each is
    read as the last microsecond of its day in `timezone`, since a promise dated '2018-08-13' is kept by a delivery
    at any time that day (read as the start of the day, a delivery at 15:00 on it was 15 hours late, and a promise
    on the order's own day came before the order). (`times`, "") for any other column."""
    if not holds_dates(times, timezone):
        return times, ""
    return local_day(times, timezone, days_after=1) - pd.Timedelta(microseconds=1), (
        f"{label} holds dates without a time of day: a promise is kept by the end of its day, so each is read as its "
        "day's last moment (a delivery at any time on the promised day is on time)")


def with_same_day_dates_not_before(
    times: pd.Series, earlier_times: pd.Series, *, timezone: str, later: str, earlier: str
) -> tuple[pd.Series, str]:
    """`times` (a later time value: a ticket's close, an order's delivery) and a note, where `times` is a column of
    dates without a time of day (every value at midnight in `timezone`, the reading of '2025-03-04'): such a date on
    the day of `earlier_times` is read as at that time (the earliest moment the date allows that is not before it),
    where it would otherwise read as before it; other dates stay the start of their day. The note
    says how many, and that durations from `earlier` are then lower bounds (`later`, `earlier`: the columns' labels).
    (`times`, "") for any other column."""
    if not holds_dates(times, timezone):
        return times, ""
    day = local_day(times, timezone)
    fixed = ((times < earlier_times) & (day == local_day(earlier_times, timezone))).fillna(False).to_numpy(dtype=bool)
    if not fixed.any():
        return times, ""
    return times.where(~fixed, earlier_times), (
        f"{later} holds dates without a time of day: each is read as the start of its day, and {int(fixed.sum()):,} on "
        f"the day of {earlier} as at {earlier} (not before it); hours from {earlier} to {later} are lower bounds, up to "
        "a day short")


def parsed_refunds(
    raw: RawSource, source: SourceConfig, *, factors: pd.Series | None, export: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(the rows whose `refunds` column gives money back: row, refund (positive, in the features' currency),
    per_order, column, export, at (the refund's time by `refunds.at`; NaT without it, where blank or unreadable, or a
    placeholder date: PLACEHOLDER_DAYS, as in an optional time column), at_column, at_problem (why `at` could not be
    read, else empty); problems for cells that are not numbers; the note on placeholder times).
    Blank and zero cells give none, nor do the rows `refunds.when` does not flag; a negative cell is read as its size."""
    setting = source.refunds
    values = file_column(raw, setting.column, setting="refunds.column", export=export)
    if setting.when:  # only the flagged rows give their refund: the others' cells count as blank
        for column in setting.when:
            file_column(raw, column, setting="refunds.when", export=export)
        flagged = np.zeros(len(values), dtype=bool)
        flagged[rows_with_values(raw, setting.when, setting="refunds.when")] = True
        values = values.where(flagged)
    read = source.read
    numbers = numbers_as_read(values, read)
    failed = _unparsed(values, numbers)
    problems = empty_problems()
    if len(failed):
        reason = _number_reason(values.iloc[failed], read=read, source=raw.name)
        if true_or_false(values.iloc[failed]):
            reason = (f"not a number (a true/false column? {export}.refunds takes the money refunded; mark refunded "
                      "rows with returns_when or leave them out with exclude)")
        problems = _problems(failed, setting.column, reason)
    refund = numbers.abs() if factors is None else numbers.abs() * factors
    rows = np.flatnonzero(refund.notna().to_numpy() & (refund != 0).to_numpy())
    at = pd.Series(pd.NaT, index=values.index, dtype=TIMESTAMP)
    at_problem, notes = np.full(len(values), "", dtype=object), []
    if setting.at is not None:
        times = file_column(raw, setting.at, setting="refunds.at", export=export)
        at, reason, _ = parse_timestamp_column(times, source, label=setting.at)
        at_problem[_unparsed(times, at)] = reason
        stand_ins = np.intersect1d(placeholder_rows(at), rows)  # 9999-12-31 would count toward the data's end
        if len(stand_ins):
            notes.append(placeholder_note(value_text(times.iloc[stand_ins]), label=f"{setting.at} (refunds.at)",
                                          why="placeholders that exports write for 'none': those refunds are timed "
                                              "at their order, as without refunds.at"))
            at = at.copy()
            at.iloc[stand_ins] = pd.NaT
    found = pd.DataFrame({"row": rows.astype(np.int64), "refund": refund.to_numpy(dtype=np.float64)[rows],
                          "per_order": setting.per == "order", "column": setting.column, "export": export,
                          "at": at.to_numpy()[rows], "at_column": setting.at or "", "at_problem": at_problem[rows]})
    return found, problems, notes


NUMERIC_READINGS = {  # how an inferred numeric layout (`pipeline.sources.NUMERIC_FORMATS`) is named in the note
    "unix": "as Unix time (seconds since 1970-01-01 UTC, date format",
    "unix_ms": "as Unix time (milliseconds since 1970-01-01 UTC, date format",
    "excel": "as a spreadsheet's date serial (days since 1899-12-30, date format",
}


def parse_timestamp_column(
    values: pd.Series, source: SourceConfig, *, label: str, export: str | None = None
) -> tuple[pd.Series, str, list[str]]:
    """(UTC timestamps, the reason for values left unparsed, notes for the report; the layout note names `export`,
    the config key of an export under other_exports, so that a source's exports of one column name tell apart).

    Without `read.date_format`, a column whose present values are mostly not ISO 8601 is read with the one
    common layout that reads them (`infer_date_format`), and a note says which; when both day/month
    orders read every value, nothing is guessed and the reason says to set `read.date_format`. Wall times in the
    hour a daylight-saving change skips are read as the first moment after it, and a note counts them
    (`skipped_clock_note`)."""
    date_format = source.read.date_format
    parsed = parse_timestamps(values, date_format=date_format, timezone=source.timezone)
    failed = _unparsed(values, parsed)
    present = len(values) - int(values.isna().sum())
    reason, notes, guessed = "not a timestamp", [], None
    if date_format is None and len(failed) and len(failed) >= 0.5 * present:
        guess = infer_date_format(values.iloc[failed].astype("str").str.strip())
        if guess.tied:
            reason = f"not a timestamp (day/month order ambiguous: set read.date_format, e.g. '{guess.tied[0]}')"
        guessed = guess.date_format
    if guessed is not None:
        rest = parse_timestamps(values.iloc[failed], date_format=guessed, timezone=source.timezone)
        parsed = parsed.copy()
        parsed.iloc[failed] = rest.to_numpy()
        how = NUMERIC_READINGS.get(guessed, "with the date format") + f" '{guessed}'"
        how += ")" if guessed in NUMERIC_READINGS else ""
        named, key = (f"{label} of {export}", f"{export}.read.date_format") if export else (label, "read.date_format")
        notes.append(f"{named} read {how}, the only common layout that reads its values (not ISO 8601); set "
                     f"{key} to choose another")
    skipped = skipped_clock_rows(values, parsed, date_format=date_format, timezone=source.timezone)
    if guessed is not None:
        rest = skipped_clock_rows(values.iloc[failed], parsed.iloc[failed], date_format=guessed,
                                  timezone=source.timezone)
        skipped = np.union1d(skipped, failed[rest])
    note = skipped_clock_note(values, parsed, skipped, label=label, timezone=source.timezone)
    return parsed, reason, notes + ([note] if note else [])


ZONE_SAMPLE = 1_000  # times read again in the business zone to find those that carry no zone of their own


def zoneless_time(
    values: pd.Series, parsed: pd.Series, source: SourceConfig, *, business_zone: str
) -> tuple[str, pd.Timestamp] | None:
    """(a value as written, its instant) of a time column (`values` as read, `parsed` by `parse_timestamp_column`)
    that carries no zone of its own, so that the source's `timezone` decided its instant, when that `timezone` was left
    at its default UTC while the days counted are `business_zone`'s (not UTC). Found on an even sample read again in
    `business_zone`: a time with an offset, a 'Z' or Unix seconds reads the same in both. None otherwise."""
    if business_zone == "UTC" or "timezone" in source.model_fields_set:
        return None
    present = np.flatnonzero(parsed.notna().to_numpy())
    sample = present[:: max(1, len(present) // ZONE_SAMPLE)]
    if not len(sample):
        return None
    again, _, _ = parse_timestamp_column(values.iloc[sample], source.model_copy(update={"timezone": business_zone}),
                                         label="")
    moved = np.flatnonzero((again.to_numpy() != parsed.iloc[sample].to_numpy()) & again.notna().to_numpy())
    if not len(moved):
        return None
    first = sample[moved[0]]
    return value_text(values.iloc[[first]]).iloc[0], parsed.iloc[first]


def skipped_clock_note(values: pd.Series, parsed: pd.Series, rows: np.ndarray, *, label: str, timezone: str) -> str:
    """The note on the `rows` of a timestamp column (`values` as read, `parsed`) whose wall time lies in the hour a
    daylight-saving change of `timezone` skips (`skipped_clock_rows`): how many, read as the first moment after it,
    with the first as an example; "" without any."""
    if not len(rows):
        return ""
    first = rows[0]
    day = parsed.iloc[first].tz_convert(timezone)
    return (f"{len(rows):,} {label} time{'s fall' if len(rows) != 1 else ' falls'} in the hour skipped by the clock "
            f"change of {day:%Y-%m-%d} in {timezone} (e.g. {value_text(values.iloc[[first]]).iloc[0]!r}), which no "
            f"clock showed: read as the first moment after it ({day:%H:%M %Z})")


MAX_DURATION_DAYS = 36_525  # a duration beyond 100 years is no time between two events of one row (nor fits a time)
MAX_DURATION_MICROSECONDS = MAX_DURATION_DAYS * UNIT_MICROSECONDS["days"]


def time_after_how(after: TimeAfter) -> str:
    """How a time given by `after` is computed, for the report's `derived` and the column's label:
    'opened_at + First reply time in minutes × 1 minute'."""
    return f"{after.start} + {after.column} × 1 {after.unit[:-1]}"


def time_after(start: pd.Series, microseconds: pd.Series) -> pd.Series:
    """`start` (UTC times) plus each of `microseconds` (whole numbers: `durations_read`), as UTC times; null where
    either is null, or the duration is negative or longer than MAX_DURATION_DAYS (a reason is given for those:
    `duration_problems`)."""
    micro = microseconds.to_numpy(dtype=np.float64, na_value=np.nan)
    usable = np.isfinite(micro) & (micro >= 0) & (micro <= MAX_DURATION_MICROSECONDS)
    offsets = np.where(usable, micro, 0).astype(np.int64).astype("timedelta64[us]")
    offsets[~usable] = np.timedelta64("NaT")
    return (start + pd.Series(offsets, index=start.index)).astype(TIMESTAMP)


def duration_problems(
    values: pd.Series, durations: pd.DataFrame, start: pd.Series, *, target: str, after: TimeAfter, start_label: str,
    start_blank: np.ndarray, read: ReadOptions, source: str, export: str,
) -> pd.DataFrame:
    """(row, column: the file column `after.column`, reason) for the cells of a duration column (`values` as read,
    `durations` as `durations_read` read them) that give the time `target` none: not a duration
    (`duration_reason`), a two-part clock that `after.unit` does not read, negative, longer than MAX_DURATION_DAYS,
    or beside a blank `from` time (`start_blank`: rows whose `start` is blank; an unreadable one has its own reason).
    A blank duration is none of these: its time is empty. `export`: the export's config key, for the reasons."""
    column, unit = after.column, after.unit
    micro = durations["microseconds"].to_numpy(dtype=np.float64, na_value=np.nan)
    unread = _unparsed(values, durations["microseconds"])
    ambiguous = (durations["form"] == AMBIGUOUS_CLOCK).to_numpy(dtype=bool)[unread]
    found = []
    if (~ambiguous).any():
        found.append(_problems(unread[~ambiguous], column, duration_reason(
            values.iloc[unread[~ambiguous]], unit=unit, read=read, source=source)))
    if ambiguous.any():
        found.append(_problems(unread[ambiguous], column, (
            f"a two-part clock (hours:minutes or minutes:seconds?), read as h:mm with unit: hours and as m:ss with "
            f"unit: minutes, not with unit: {unit}; set {export}.after.{target}.unit to the unit of its first part")))
    for rows, reason in (
        (np.flatnonzero(micro < 0), f"negative (the {target} it gives would come before {start_label})"),
        (np.flatnonzero(micro > MAX_DURATION_MICROSECONDS), f"more than 100 years of {unit} after {start_label}"),
        (np.flatnonzero(~np.isnan(micro) & start_blank & start.isna().to_numpy()),
         f"a duration after {start_label}, which this row leaves blank"),
    ):
        if len(rows):
            found.append(_problems(rows, column, reason))
    return pd.concat(found, ignore_index=True) if found else empty_problems()


def duration_reason(unread: pd.Series, *, unit: str, read: ReadOptions, source: str) -> str:
    """The quarantine reason of duration cells that no form reads (`unread`): `_number_reason`'s when it has a hint
    (numbers with a decimal comma, ...), else 'not a duration' naming the forms read (`pipeline.durations`; the
    two-part clock only with a unit that reads it)."""
    number = _number_reason(unread, read=read, source=source)
    if number != "not a number":
        return number
    short = f" or 1:30 as {SHORT_CLOCK_LAYOUTS[unit]}" if unit in SHORT_CLOCK_LAYOUTS else ""
    return (f"not a duration (the forms read: a number of {unit}; a clock, 36:15:00{short}; days and a clock, "
            "1 day, 2:03:04 or 1 days 02:03:04; ISO 8601, PT1H30M or P1DT2H; words, 2h 30m or 45 min or 1.5 hours)")


def on_contract_scale(
    score: pd.Series, kind: pd.Series, *, of_kind: str, scale: tuple[float, float]
) -> tuple[pd.Series, int]:
    """`score` with the scores of kind `of_kind`, read on `scale` (low, high), mapped linearly onto that kind's contract
    scale (FEEDBACK_SCORE_RANGES: its low end to its low end, its high end to its high end); and how many were.
    A score outside `scale` lands outside the contract's scale, where validation quarantines it."""
    rows = ((kind == of_kind).fillna(False) & score.notna()).to_numpy(dtype=bool)
    if not rows.any():
        return score, 0
    (low, high), (target_low, target_high) = scale, FEEDBACK_SCORE_RANGES[of_kind]
    mapped = target_low + (score - low) * ((target_high - target_low) / (high - low))
    return score.where(~rows, mapped), int(rows.sum())


def discount_from_share(share: pd.Series, quantity: pd.Series, unit_price: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(the money each line's discount takes off, where `share` is a share of the line's quantity × unit_price (0.15:
    15% off) as an export writes it; the rows whose share is above 1, nulled: no line is discounted below nothing).
    The money is share × |quantity × unit_price|, so that a return line's discount lowers the money given back as
    a sale's lowers its price; null where any of the three is."""
    above = np.flatnonzero((share > 1).fillna(False).to_numpy(dtype=bool))
    money = share * (quantity * unit_price).abs()
    if len(above):
        money = money.copy()
        money.iloc[above] = np.nan
    return money, above


def discount_from_share_of_net(share: pd.Series, amount: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(the money each line's discount takes off, where `share` is a share of the line's price before the discount
    and `amount` the line's value after it (Tableau Superstore's Sales beside its Discount of 0.2): |amount| × share /
    (1 − share); the rows whose share is above 1, nulled). A share of 1 leaves nothing to tell the price by: null
    (`discount_share_of_net_note` counts those lines)."""
    above = np.flatnonzero((share > 1).fillna(False).to_numpy(dtype=bool))
    with np.errstate(divide="ignore", invalid="ignore"):
        money = amount.abs() * share / (1 - share)
    return money.where(share < 1), above


def discount_beyond_price(quantity: pd.Series, unit_price: pd.Series, discount: pd.Series) -> np.ndarray:
    """Rows whose discount is larger than the size of quantity × unit_price: no line can be discounted below nothing,
    and the amount derived from them would change sign (a sale read as a return, or a return as a sale). Only for an
    amount derived so: beside a given amount, a unit price may be the price after the discount."""
    return np.flatnonzero((discount > (quantity * unit_price).abs() + 1e-9).fillna(False).to_numpy(dtype=bool))


def derive_amount(quantity: pd.Series, unit_price: pd.Series, discount: pd.Series) -> pd.Series:
    """A line's net amount: quantity × unit_price less its discount (a missing discount counts as none): on a return
    line (a negative quantity × unit_price) the discount lowers the money given back; null where quantity or
    unit_price is missing."""
    gross = quantity * unit_price
    return gross - np.sign(gross) * discount.fillna(0.0)


def past_fact_columns(name: str) -> list[str]:
    """Timestamp columns of `name` that cannot lie after the moment of the export."""
    return [column for column in contract(name).timestamp_columns if column not in FORWARD_LOOKING]


def reference_time(parsed: Mapping[str, ParsedSource]) -> pd.Timestamp | None:
    """The data's own latest time, robust to corrupt far-future values (None without timestamps).

    Pools every past-fact timestamp of every source. Starting at the 95th percentile, walks up the
    sorted times; the first jump longer than max(30 days, 10% of the 5th-95th percentile span)
    ends the data, and the time before that jump is the reference. So the true maximum is the
    reference unless it sits beyond such a jump: a single corrupt '2099' row, or even a few
    percent of them, cannot become it, and a business whose last months are quiet keeps them.
    """
    return time_bounds(parsed)[1]


def data_start(parsed: Mapping[str, ParsedSource]) -> pd.Timestamp | None:
    """The data's own earliest time, robust to corrupt far-past values such as 1900-01-01 or
    1970-01-01 (None without timestamps).

    `reference_time` mirrored: from the same pooled past-fact timestamps, starting at the 5th
    percentile, walks down the sorted times; the first jump longer than max(2 years, 25% of the
    5th-95th percentile span) ends the data, and the time after that jump is the start.
    """
    return time_bounds(parsed)[0]


def time_bounds(parsed: Mapping[str, ParsedSource]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """(`data_start`, `reference_time`) from one pool of the timestamps and one partial sort."""
    times = _pooled_times(parsed)
    if len(times) == 0:
        return None, None
    last = len(times) - 1
    # Percentile positions as np.quantile's 'lower'/'higher' methods take them; 'higher' for the
    # start mirrors 'lower' for the end: at least two times lie at or beyond either.
    low_down = int(np.floor((1 - REFERENCE_QUANTILE) * last))
    low_up = int(np.ceil((1 - REFERENCE_QUANTILE) * last))
    high_down = int(np.floor(REFERENCE_QUANTILE * last))
    ranked = np.partition(times, sorted({low_down, low_up, high_down}))
    low, start_low, high = ranked[low_down], ranked[low_up], ranked[high_down]
    end_gap = max(REFERENCE_MIN_GAP.value // 1000, int(REFERENCE_GAP_SHARE * (high - low)))
    top = np.sort(times[times >= high])
    jumps = np.flatnonzero(np.diff(top) > end_gap)
    end = top[jumps[0]] if len(jumps) else top[-1]
    start_gap = max(START_MIN_GAP.value // 1000, int(START_GAP_SHARE * (high - start_low)))
    bottom = np.sort(times[times <= start_low])
    jumps = np.flatnonzero(np.diff(bottom) > start_gap)
    start = bottom[jumps[-1] + 1] if len(jumps) else bottom[0]
    return pd.Timestamp(int(start), unit="us", tz="UTC"), pd.Timestamp(int(end), unit="us", tz="UTC")


def _pooled_times(parsed: Mapping[str, ParsedSource]) -> np.ndarray:
    """Every non-null past-fact timestamp over all sources, as int64 microseconds (refund times of `refunds.at` too:
    an export's refunds may postdate its last order)."""
    pooled = [
        result.typed[column].to_numpy(dtype="datetime64[us]").view(np.int64)
        for result in parsed.values()
        for column in past_fact_columns(result.name)
    ] + [result.refunds["at"].to_numpy(dtype="datetime64[us]").view(np.int64)
         for result in parsed.values() if result.refunds is not None]
    times = np.concatenate(pooled) if pooled else np.array([], dtype=np.int64)
    return times[times != np.iinfo(np.int64).min]  # NaT


def _label(labels: Mapping[str, str], column: str) -> str:
    return labels.get(column, column)


def table_rules(name: str, labels: Mapping[str, str]) -> list[tuple[str, str, Callable[[pd.DataFrame], pd.Series]]]:
    """Rules across columns of `name`: (column blamed, reason, frame -> True where the row passes)."""
    rules = []
    if name == "feedback":
        for kind, (low, high) in FEEDBACK_SCORE_RANGES.items():
            hint = "" if kind == "nps" else f" (another scale? set sources.{name}.score_scales: {{{kind}: [low, high]}})"
            rules.append(("score", f"{_label(labels, 'score')}: outside {low:g}-{high:g} for {kind}{hint}",
                          partial(_score_in_range, kind=kind, low=low, high=high)))
    for later, earlier in TIME_ORDER.get(name, ()):
        rules.append((later, f"{_label(labels, later)}: before {_label(labels, earlier)}",
                      partial(_not_before, later=later, earlier=earlier)))
    return rules


def _score_in_range(df: pd.DataFrame, *, kind: str, low: float, high: float) -> pd.Series:
    outside = (df["score"] < low) | (df["score"] > high)
    return ~((df["kind"] == kind).fillna(False) & outside.fillna(False))


def _not_before(df: pd.DataFrame, *, later: str, earlier: str) -> pd.Series:
    return ~(df[later] < df[earlier]).fillna(False)


def validation_schema(
    name: str,
    *,
    latest_allowed: pd.Timestamp | None,
    labels: Mapping[str, str],
    earliest_allowed: pd.Timestamp | None = None,
    earliest_rule: str = "the data's start",
    latest_rule: str = "the data's end + tolerance",
    max_abs_amount: float | None = None,
    attributes: Sequence[str] = (),
    numbers: Sequence[str] = (),
) -> pa.DataFrameSchema:
    """The contract of `name` over its typed frame: dtypes, required values and value rules; `attributes`: the
    customers' attribute columns after the contract's (nullable, any value): text, but those of `numbers` float64.

    Timestamps must lie between `earliest_allowed` (any column; `earliest_rule` names where it comes
    from) and `latest_allowed` (past facts; `latest_rule` likewise); money and quantities (BOUNDED) within
    ±`max_abs_amount`.
    Check errors are the reasons users see (see `rule_problems`)."""
    spec = contract(name)
    columns = {}
    for column, dtype in spec.dtypes.items():
        checks = []
        if dtype == TIMESTAMP and column not in FORWARD_LOOKING and latest_allowed is not None:
            too_late = f"later than {latest_rule} ({latest_allowed:%Y-%m-%d %H:%M} UTC)"
            checks.append(pa.Check.le(latest_allowed, error=too_late))
        if dtype == TIMESTAMP and earliest_allowed is not None:
            # ingest.earliest is a day of the business zone: its midnight in UTC with the hour when that is not 00:00
            zoned = earliest_rule.startswith("ingest.earliest") and earliest_allowed != earliest_allowed.normalize()
            shown = "%Y-%m-%d %H:%M" if zoned else "%Y-%m-%d"
            too_early = f"earlier than {earliest_rule} ({earliest_allowed.strftime(shown)} UTC)"
            checks.append(pa.Check.ge(earliest_allowed, error=too_early))
        if column in BOUNDED.get(name, ()) and max_abs_amount is not None:
            beyond = f"beyond ±{max_abs_amount:g} (ingest.max_abs_amount)"
            checks.append(pa.Check.in_range(-max_abs_amount, max_abs_amount, error=beyond))
        if (name, column) in ALLOWED_VALUES:
            allowed = ALLOWED_VALUES[(name, column)]
            checks.append(pa.Check.isin(allowed, error=f"not one of {', '.join(allowed)} (map other words "
                                                       f"with sources.{name}.recode)"))
        if column == "discount":
            checks.append(pa.Check.ge(0, error="negative"))
        required = column in spec.required or column in spec.id_columns
        columns[column] = pa.Column(dtype, checks=checks, nullable=not required, required=True, name=column)
    columns.update({column: pa.Column(FLOAT if column in numbers else STRING, nullable=True, required=True, name=column)
                    for column in attributes})
    wide = [pa.Check(rule, error=reason) for _, reason, rule in table_rules(name, labels)]
    return pa.DataFrameSchema(columns, checks=wide, coerce=False, strict=True, ordered=True)


def find_problems(parsed: ParsedSource, *, latest_allowed: pd.Timestamp | None, **bounds) -> pd.DataFrame:
    """Every problem of every row: parse failures plus broken value rules (row, column, reason).

    `bounds`: the other settings of `validation_schema` (earliest_allowed, earliest_rule, latest_rule, max_abs_amount,
    numbers)."""
    schema = validation_schema(parsed.name, latest_allowed=latest_allowed, labels=parsed.labels,
                               attributes=attribute_columns(parsed.typed.columns), **bounds)
    labels = parsed.problems["column"].map(parsed.labels).fillna(parsed.problems["column"])
    if "label" in parsed.problems.columns:  # the file column of the export each row came from (`mapped_source`)
        labels = parsed.problems["label"]
    parse_problems = parsed.problems.drop(columns="label", errors="ignore").assign(
        reason=labels + ": " + parsed.problems["reason"])
    problems = pd.concat([parse_problems, rule_problems(parsed, schema)], ignore_index=True)
    return problems.astype({"row": np.int64, "column": "str", "reason": "str"})


def rule_problems(parsed: ParsedSource, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """(row, column, reason) for every rule of `schema` a row of `parsed.typed` breaks.

    Calls the schema's own checks (pandera applies their null handling) on whole columns and turns
    each boolean result into problem rows: no failure-case tables, so the cost does not grow with
    the number of bad rows. A required value that is missing only because it could not be parsed
    is not also 'missing'. Row numbers are index labels (the typed frame has a RangeIndex).
    """
    typed = parsed.typed
    unparsed = {column: group["row"].to_numpy() for column, group in parsed.problems.groupby("column")}
    blamed = {reason: column for column, reason, _ in table_rules(parsed.name, parsed.labels)}
    found, rules = [], []  # rules: (column blamed, reason, check, what it checks)
    for column, spec in schema.columns.items():
        label = _label(parsed.labels, column)
        if not spec.nullable:
            missing = np.setdiff1d(np.flatnonzero(typed[column].isna().to_numpy()), unparsed.get(column, []))
            found.append(_problems(missing, column, _missing_reason(typed, column, label=label, source=parsed.name)))
        rules += [(column, f"{label}: {check.error}", check, typed[column]) for check in spec.checks]
    rules += [(blamed[check.error], check.error, check, typed) for check in schema.checks]
    failing = [(column, reason, _failing_rows(check, data)) for column, reason, check, data in rules]
    broken = sorted({check.error for (_, _, check, _), (_, _, rows) in zip(rules, failing) if rows is None})
    if broken:  # a rule that could not run at all: a bug, not bad data
        raise IngestError(
            f"source {parsed.name}: validation rule(s) could not run: {', '.join(broken)}; "
            "this is a bug in pipeline/ingest.py, please report it with the ingest log"
        )
    found += [_problems(rows, column, reason) for column, reason, rows in failing]
    return pd.concat(found, ignore_index=True).drop_duplicates(["row", "reason"]) if found else empty_problems()


def _missing_reason(typed: pd.DataFrame, column: str, *, label: str, source: str) -> str:
    """Why a required value is missing: a guest checkout (customer_id), a survey not answered (a feedback score,
    when some rows of the source have one), or plainly missing."""
    if column == "customer_id":
        return ANONYMOUS
    if source == "feedback" and column == "score" and typed[column].notna().any():
        return f"{label}: {UNANSWERED}"
    return f"{label}: {MISSING}"


def _failing_rows(check: pa.Check, data: pd.Series | pd.DataFrame) -> np.ndarray | None:
    """Index labels where `check` fails on `data`; None when the check cannot run on it at all
    (or gives one verdict for the whole table, which cannot name rows)."""
    try:
        passed = check(data).check_output
    except Exception:  # noqa: BLE001 - whatever the error, the rule cannot judge this data
        return None
    if not isinstance(passed, pd.Series):
        return None
    return passed.index.to_numpy()[~passed.to_numpy(dtype=bool)]


def check_validated(validated: pd.DataFrame, schema: pa.DataFrameSchema, *, name: str) -> None:
    """Raise IngestError (a bug) unless pandera accepts every validated row: columns, dtypes, rules.

    Cheap on rows that pass (no failure cases to build); it keeps the schema the final word on
    what leaves ingest, whatever the per-row reasons above computed.
    """
    try:
        schema.validate(validated, lazy=True, inplace=True)  # coerce=False: nothing is changed, nothing copied
    except pa.errors.SchemaErrors as exc:
        failed = sorted(set(exc.failure_cases["check"].astype("str")))
        raise IngestError(
            f"source {name}: validated rows break the contract ({', '.join(failed[:5])}); "
            "this is a bug in pipeline/ingest.py, please report it with the ingest log"
        ) from None


def row_reasons(problems: pd.DataFrame, *, column_order: list[str]) -> pd.Series:
    """One '; '-joined reason per bad row (index = row, ascending), problems in contract column order."""
    rank = pd.Index(column_order).get_indexer(problems["column"])
    rank = np.where(rank < 0, len(column_order), rank)
    reason_codes, reasons = pd.factorize(problems["reason"], sort=True)
    rows = problems["row"].to_numpy(dtype=np.int64)
    order = np.lexsort((reason_codes, rank, rows))
    rows, texts = rows[order], np.asarray(reasons, dtype=object)[reason_codes[order]]
    first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.array([], dtype=bool)
    # Summing objects concatenates strings: "a" + "; b" + "; c" per row, in one C loop.
    pieces = np.where(first, texts, "; " + texts) if len(rows) else texts
    joined = np.add.reduceat(pieces, np.flatnonzero(first)) if len(rows) else pieces
    return pd.Series(joined, index=pd.Index(rows[first], dtype=np.int64, name="row"), dtype="str", name="reason")


def top_quarantine_reasons(problems: pd.DataFrame, *, limit: int = TOP_REASONS) -> list[dict]:
    """The most frequent reasons: [{reason, rows}], by rows then reason. A problem whose reason names values of its
    own row (a line's number and text) may give its `kind` (the reason without them): reasons of one kind count
    together, under the kind with the first row's reason as example ({reason, rows, example}) when they differ."""
    kinds = problems["kind"].fillna(problems["reason"]) if "kind" in problems.columns else problems["reason"]
    found = pd.DataFrame({"row": problems["row"].to_numpy(), "kind": kinds.to_numpy(dtype=object),
                          "reason": problems["reason"].to_numpy(dtype=object)}).drop_duplicates(["row", "kind"])
    counts = found.sort_values("row", kind="stable").groupby("kind", sort=False).agg(
        rows=("row", "size"), reasons=("reason", "nunique"), example=("reason", "first")).reset_index()
    counts = counts.sort_values(["rows", "kind"], ascending=[False, True]).head(limit)
    return [{"reason": str(kind), "rows": int(rows), "example": str(example)} if reasons > 1 else
            {"reason": str(example), "rows": int(rows)}
            for kind, rows, reasons, example in counts.itertuples(index=False)]


def header_rows(raw: RawSource) -> np.ndarray:
    """Row numbers of `raw` (one export, as read) that are its header line again: every cell present is its column's
    name (a byte-order mark aside), at least two are: a further export's header, left in when files were joined one
    below the other. Searched for in the first named text column (a pandas index column is unnamed, and a typed
    column cannot hold a header)."""
    frame = raw.frame
    searchable = [column for column in frame.columns if not str(column).startswith("Unnamed:")
                  and (pd.api.types.is_string_dtype(frame[column].dtype) or frame[column].dtype == object)]
    if frame.empty or not searchable:
        return np.zeros(0, dtype=np.int64)
    first = searchable[0]
    holds = frame[first].astype("str").str.contains(str(first), regex=False)  # Arrow's search: cheap at 10M rows
    rows = np.flatnonzero(holds.fillna(False).to_numpy(dtype=bool))
    if not len(rows):  # the usual case, after one column's search
        return rows.astype(np.int64)
    cells = frame.iloc[rows]
    named = np.column_stack([(value_text(cells[column]).str.replace("\ufeff", "", regex=False).str.strip()
                              == str(column)).fillna(False).to_numpy(dtype=bool) for column in frame.columns])
    present = (cells.notna() & (cells.astype("str").apply(lambda column: column.str.strip()) != "")).to_numpy()
    header = (named | ~present).all(axis=1) & (named.sum(axis=1) >= min(2, len(frame.columns)))
    return rows[header].astype(np.int64)


def only_the_exclusion(problems: pd.DataFrame, *, keep: Iterable[str] = ()) -> pd.DataFrame:
    """`problems` where a row left out by `exclude` has only its exclusion (and the reasons in `keep`: a lookup's
    miss, which tells why its values are missing) as reason: it was left out on purpose, and what else its cells
    hold ('offered' in a score column is not a number) would fill the report's top reasons with rows that are not
    bad."""
    excluded = problems["reason"].str.startswith(EXCLUDED_PREFIX).to_numpy(dtype=bool)
    if not excluded.any():
        return problems
    other = problems["row"].isin(problems["row"].to_numpy()[excluded]).to_numpy(dtype=bool) & ~excluded
    other &= ~problems["reason"].isin(list(keep)).to_numpy(dtype=bool)
    return problems[~other].reset_index(drop=True) if other.any() else problems


def with_unread_lines(problems: pd.DataFrame, unread: pd.DataFrame | None) -> pd.DataFrame:
    """`problems` (row, column, reason) where each row read from a line with the wrong number of fields (`unread`, as
    `RawSource.unread_lines`: its cells are empty) has that as its one reason: what its empty cells lack says
    nothing more."""
    if unread is None:
        return problems
    others = problems["row"].isin(unread["row"]).to_numpy(dtype=bool)
    return pd.concat([problems[~others], unread], ignore_index=True)


def not_bad(reasons: pd.Series) -> pd.Series:
    """Which quarantine reasons are not bad data: a guest checkout, a copy of a record a more recent file holds or a
    later block of the same file repeats, a customer's attributes after its first row, a header line again, an answer
    another row gives, a row left out by the source's `exclude` setting, a survey not answered (they do not count
    towards ingest.max_bad_share)."""
    return (reasons.isin([ANONYMOUS, REPEATED, REPEATED_BLOCK, LATER_ATTRIBUTES, HEADER_AGAIN, SAME_ANSWER])
            | reasons.str.startswith(EXCLUDED_PREFIX)
            | reasons.str.endswith(UNANSWERED))


def file_column(raw: RawSource, column: str, *, setting: str, export: str | None = None) -> pd.Series:
    """The file column `column` of `raw`, named by the setting `setting` of the export's config key `export`
    (sources.<name> by default); IngestError when the files lack it."""
    if column not in raw.frame.columns:
        raise IngestError(f"{export or f'sources.{raw.name}'}.{setting}: column {column!r} is not in the files (their "
                          f"columns: {columns_shown(raw.frame)}); name a column of the export, as it is written there")
    return raw.frame[column]


MONEY_COLUMNS = ("amount", "unit_price", "discount")  # the transactions' columns in a currency
NO_RATE = "a currency without a rate in sources.{source}.currency_rates"
NO_CURRENCY = "missing (sources.{source}.currency_rates needs each row's currency)"


def currency_factors(raw: RawSource, conversion: CurrencyRates) -> tuple[pd.Series, pd.DataFrame, str]:
    """(each row's rate by its currency in the file column `conversion.column`, NaN where it has none; problems
    for those rows; a note counting the rows converted). Currencies are compared as text in upper case."""
    setting = "currency_rates.column"
    currency = value_text(file_column(raw, conversion.column, setting=setting)).str.upper()
    rates = {code.strip().upper(): rate for code, rate in conversion.rates.items()}
    factors = currency.map(rates).astype("float64")
    factors.index = raw.frame.index
    blank = (currency.isna() | (currency == "")).to_numpy()
    unknown = factors.isna().to_numpy()
    problems = pd.concat([
        _problems(np.flatnonzero(unknown & ~blank), conversion.column, NO_RATE.format(source=raw.name)),
        _problems(np.flatnonzero(blank), conversion.column, NO_CURRENCY.format(source=raw.name)),
    ], ignore_index=True)
    converted = factors.notna() & (factors != 1.0)
    shown = ", ".join(f"{code} × {rate:g}" for code, rate in rates.items() if rate != 1.0)
    note = (f"{int(converted.sum()):,} rows converted by sources.{raw.name}.currency_rates ({conversion.column}: "
            f"{shown or 'every rate 1'})")
    return factors, problems, note


def _rows_by_value(raw: RawSource, values_of: Mapping[str, list[str]], *, setting: str) -> Iterator[tuple[str, str, np.ndarray]]:
    """(file column, value, row numbers) for each value of `values_of` ({file column: values}, the source setting
    `setting`) that some rows hold, compared as text with surrounding whitespace stripped. IngestError when a
    column is not in the files."""
    for column, values in values_of.items():
        text = value_text(file_column(raw, column, setting=setting))
        for value in dict.fromkeys(str(value).strip() for value in values):
            rows = np.flatnonzero((text == value).fillna(False).to_numpy(dtype=bool))
            if len(rows):
                yield column, value, rows


def value_match_notes(raw: RawSource, values_of: Mapping[str, list[str]], *, setting: str, export: str) -> list[str]:
    """Notes on the values of the source setting `setting` (e.g. exclude: {file column: values}) of the export whose
    config key is `export` (e.g. sources.transactions.other_exports[0]) that the rows of `raw` hold only in a case the
    setting does not list ('M' listed, 'm' written: compared as written, so those rows are not matched), or that no
    row matches (a misspelt value, or a number written otherwise: cells are compared as the export shows them)."""
    notes = []
    for column, values in values_of.items():
        cells = file_column(raw, column, setting=setting)
        text = value_text(cells)
        typed = not (pd.api.types.is_string_dtype(cells.dtype) or cells.dtype == object)
        listed = list(dict.fromkeys(str(value).strip() for value in values))
        folded = text.str.lower()  # Arrow's lower case, for the cells and the listed values alike
        unlisted = ~text.isin(listed).fillna(False)
        for value, lower in zip(listed, pd.Series(listed, dtype="str").str.lower()):
            other = (folded == lower).fillna(False) & unlisted
            if other.any():
                count = int(other.sum())
                notes.append(f"{export}.{setting}: {count:,} row{'s' * (count != 1)} of {column} "
                             f"hold{'s' * (count == 1)} {value!r} in another case (e.g. {text[other].iloc[0]!r}), not "
                             "matched: values are compared as written; list that spelling too if it means the same")
            elif not (text == value).any():
                example = text.dropna()
                shown = (f" (a typed column: its cells are compared as the text {example.iloc[0]!r} and the like)"
                         if typed and len(example) else "")
                notes.append(f"{export}.{setting}: no row of {column} holds {value!r}{shown}")
    return notes


def rows_with_values(raw: RawSource, values_of: Mapping[str, list[str]], *, setting: str) -> np.ndarray:
    """Row numbers (ascending, distinct) whose file column holds a value of `values_of` (see `_rows_by_value`)."""
    found = [rows for _, _, rows in _rows_by_value(raw, values_of, setting=setting)]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def _negative_at(values: pd.Series, rows: np.ndarray) -> pd.Series:
    """`values` with those at positions `rows` made negative (-|x|; missing stays missing)."""
    result = values.copy()
    result.iloc[rows] = -result.iloc[rows].abs()
    return result


def excluded_rows(raw: RawSource, source: SourceConfig) -> pd.DataFrame:
    """(row, column, reason) of the rows whose file column holds a value of `source.exclude`, or anything at all in a
    column of `source.exclude_when_filled`. IngestError when a column is not in the files."""
    found = [_problems(rows, column, EXCLUDED.format(source=raw.name, column=column, value=value))
             for column, value, rows in _rows_by_value(raw, source.exclude, setting="exclude")]
    found += [_problems(np.flatnonzero(~blank_cells(file_column(raw, column, setting="exclude_when_filled"))), column,
                        EXCLUDED_FILLED.format(source=raw.name, column=column))
              for column in source.exclude_when_filled]
    return pd.concat(found, ignore_index=True) if found else empty_problems()


def excluded_filled_rows(as_read: RawSource, filled: RawSource, source: SourceConfig) -> pd.DataFrame:
    """`excluded_rows` of `filled` (`with_order_fields_filled` of `as_read`); the reason of a row whose excluding
    value was taken from its order's other lines says so (the quarantine shows the row as read, with the cell blank)."""
    found = excluded_rows(filled, source)
    if filled is as_read or found.empty:
        return found
    own = excluded_rows(as_read, source)[["row", "column"]].assign(own=True)
    taken = found.merge(own, on=["row", "column"], how="left")["own"].isna().to_numpy()
    return found.assign(reason=found["reason"].where(~taken, found["reason"] + FROM_ORDER))


def repeat_keys(typed: pd.DataFrame, columns: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(a 64-bit key per row of its customer, numbers and times, among `columns` (default all); True where that key
    occurs in another row too): equal rows have equal keys, so only the rows flagged can repeat another
    (`repeated_across_files`, `duplicate_rows`)."""
    key = _value_key(typed, with_customer=True, columns=columns)
    return key, repeated(key)


def record_identity(name: str, *, synthetic_orders: bool = False) -> list[str]:
    """The contract columns that name one record of source `name` (RECORD_IDENTITY); without order_id when the order
    ids are made up per row (`one_order_per_row`: two copies of a row get two ids)."""
    columns = list(RECORD_IDENTITY.get(name, contract(name).columns))
    return [c for c in columns if not (synthetic_orders and c == "order_id")]


def repeated_across_files(
    raw: RawSource, typed: pd.DataFrame, *, identity: Sequence[str] | None = None, eligible: np.ndarray | None = None,
    keys: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Row numbers of `raw` (ascending) whose record a more recent file holds too (a file of a glob, a sheet of a
    workbook, or another export of the source): the same values in the `identity` columns of `typed` (the rows
    parsed; default all), whatever the other columns say (an order's status, a ticket's close, an export date may
    have changed between the two exports). Each record's copies in its most recent file are kept, the others are
    repeats; the k-th copy within a file is a repeat when a more recent file holds at least k copies. Copies within
    one file are not repeats (an order may hold two equal lines).

    Only `eligible` rows (default all: the caller leaves out the rows quarantined as bad) are copies, and only they
    date a file: a file is more recent than another when the latest time of its eligible rows (in the source's time
    column) is later, or, at the same latest time, when it comes later. Rows are equal when two independent 64-bit
    hashes of their identity values are (a false match needs both to collide); a cheaper key narrows the search
    (`keys`: `repeat_keys` of the identity columns, when the caller has them)."""
    files = pd.factorize(raw.origin["source_file"])[0]  # in file order: rows come file after file
    if len(files) == 0 or files.min() == files.max():
        return np.zeros(0, dtype=np.int64)
    eligible = np.ones(len(files), dtype=bool) if eligible is None else eligible
    identity = list(typed.columns) if identity is None else list(identity)
    key, candidates = keys if keys is not None else repeat_keys(typed, identity)
    rows = np.flatnonzero(candidates & eligible)  # mostly an order's equal lines, within one file
    in_files = pl.DataFrame({"key": key[rows], "file": files[rows]})
    rows = rows[in_files.select(pl.col("file").n_unique().over("key") > 1).to_series().to_numpy()]
    if len(rows) == 0:
        return rows.astype(np.int64)
    table = pl.from_pandas(typed.take(rows)[identity].reset_index(drop=True))
    keys = pl.DataFrame({"first": table.hash_rows(seed=0), "second": table.hash_rows(seed=1),
                         "recency": _file_recency(typed, contract(raw.name).time_column, files, eligible)[files[rows]]})
    copy = keys.select(pl.int_range(pl.len()).over("first", "second", "recency").alias("copy"))["copy"]
    latest = keys.with_columns(copy).select(pl.col("recency").max().over("first", "second", "copy"))["recency"]
    return rows[(keys["recency"] < latest).to_numpy()].astype(np.int64)


def repeated_order_blocks(
    origin: pd.DataFrame, typed: pd.DataFrame, *, identity: Sequence[str], eligible: np.ndarray | None = None,
    recurring: np.ndarray | None = None,
) -> np.ndarray:
    """Row numbers (ascending) of order lines that a later block of the same file repeats line for line.

    An export writes an order's lines together; an order whose lines form two or more separate blocks (runs of
    consecutive rows of one file, `origin`'s source_file) holding the same records (the `identity` columns of
    `typed`, as a multiset: equal lines within a block count) was written twice, by exports joined one below the
    other. The last such block is kept, the earlier ones are returned. So is the first half of an order's lines when
    it holds the same records as the second half and lies apart from it (`earlier_copy_halves`): a copy may itself
    be split by other orders' lines written at the same time (Online Retail II's sheet of 2009-2010 writes 655 of
    its orders so). Blocks that differ (an order's lines split by another order's) are no repeats. Only `eligible`
    rows (default all) are compared and returned; no order_id among `identity`: nothing. `recurring` (`repeat_keys`'
    flags of the rows, when the caller has them) narrows the search to orders whose every line recurs."""
    if "order_id" not in identity or typed.empty:
        return np.zeros(0, dtype=np.int64)
    eligible = np.ones(len(typed), dtype=bool) if eligible is None else eligible
    source_file = origin["source_file"]  # categorical as read (one label per file); frames built otherwise: text
    file_codes = (source_file.cat.codes.to_numpy() if isinstance(source_file.dtype, pd.CategoricalDtype)
                  else pd.factorize(source_file)[0])
    keys = pl.DataFrame({"order": pl.from_pandas(typed["order_id"].reset_index(drop=True)), "file": file_codes})
    start = keys.select(differs_from_row_above(keys.columns)).to_series().to_numpy().copy()
    start[0] = True
    block = np.cumsum(start)  # 1, 2, ...: the runs of consecutive rows of one order in one file
    lines = np.diff(np.r_[np.flatnonzero(start), len(start)])
    blocks = keys.filter(pl.Series(start)).with_columns(lines=pl.Series(lines))
    # Only an order of two or more blocks can be written twice (equal hashes find the candidates, few in most exports)
    counts = np.zeros(len(blocks), dtype=np.int64)
    candidates = repeated(blocks.select("order", "file").hash_rows(seed=0).to_numpy())
    counts[candidates] = blocks.filter(pl.Series(candidates)).select(pl.len().over("order", "file")).to_series()
    several = counts > 1
    apart = np.isin(blocks["file"].to_numpy(), files_writing_orders_apart(blocks, several))
    if recurring is not None:  # ... each of its lines' records twice: all its blocks' lines recur (few blocks do)
        recurs = several & np.logical_and.reduceat(recurring | ~eligible, np.flatnonzero(start))
        several = np.zeros(len(blocks), dtype=bool)
        several[recurs] = (blocks.filter(pl.Series(recurs)).select(pl.len().over("order", "file"))
                           .to_series().to_numpy() == counts[recurs])
    # ... and only in a file that writes an order's lines together: where they lie apart, an order's equal lines are
    # each a block of its own without being written twice
    several &= ~apart
    rows = np.flatnonzero(several[block - 1] & eligible & typed["order_id"].notna().to_numpy(dtype=bool))
    if len(rows) == 0:
        return rows.astype(np.int64)
    # Only the rows of such orders from here on: few in most exports
    order = pd.factorize(typed["order_id"].iloc[rows])[0]
    files = file_codes[rows]
    table = pl.from_pandas(typed.take(rows)[list(identity)].reset_index(drop=True))
    # A block's multiset of lines: the wrapping sums of two independent hashes of its lines, and their number.
    first, second = table.hash_rows(seed=0).to_numpy(), table.hash_rows(seed=1).to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(block[rows]) != 0])
    signature = pl.DataFrame({
        "order": order[starts], "file": files[starts], "block": block[rows][starts],
        "first": np.add.reduceat(first, starts), "second": np.add.reduceat(second, starts),
        "lines": np.diff(np.r_[starts, len(rows)]),
    })
    last = signature.select(pl.col("block").max().over("order", "file", "first", "second", "lines"))["block"]
    earlier = signature["block"].to_numpy()[(signature["block"] < last).to_numpy()]
    group = pd.factorize(order.astype(np.int64) * (int(files.max()) + 1) + files)[0]
    halves = earlier_copy_halves(rows, group, first, second)
    return rows[np.isin(block[rows], earlier) | halves].astype(np.int64)


def earlier_copy_halves(
    positions: np.ndarray, group: np.ndarray, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """Per row (`positions`: ascending row numbers of one frame; `group`: its order within one file, as codes;
    `first`, `second`: two independent uint64 hashes of its record): True in the first half of its group's rows when
    that half holds the same records as the second half (as a multiset: the wrapping sums of both hashes agree) and
    lies apart from it, with more rows of other orders between the halves than within either. An export joined
    below another writes an order both hold as two such copies, each perhaps split by other orders' lines."""
    sort = np.argsort(group, kind="stable")  # each group's rows together, in file order
    codes, where = group[sort], positions[sort].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    half = counts // 2
    in_second = (np.arange(len(codes)) - np.repeat(starts, counts)) >= np.repeat(half, counts)

    def sums(hashes: np.ndarray, of_second: bool) -> np.ndarray:
        picked = hashes[sort].astype(np.uint64)
        return np.add.reduceat(np.where(in_second == of_second, picked, np.uint64(0)), starts)

    even = (counts >= 2) & (counts % 2 == 0)
    same = (even & (sums(first, False) == sums(first, True)) & (sums(second, False) == sums(second, True)))
    mid = starts + np.maximum(half, 1)  # a safe index where a group has one row (never `same`)
    first_end, second_start, second_end = where[mid - 1], where[mid % len(where)], where[starts + counts - 1]
    within = np.maximum(first_end - where[starts], second_end - second_start) + 1 - half
    copies = same & (second_start - first_end - 1 > within)
    flagged = np.zeros(len(codes), dtype=bool)
    flagged[sort] = np.repeat(copies, counts) & ~in_second
    return flagged


ORDERS_APART_MIN = 20  # orders of several lines a file needs before it is judged to write their lines apart
ORDERS_TOGETHER_SHARE = 0.5  # below this share of them with two lines in a row, the file writes orders' lines apart


def files_writing_orders_apart(blocks: pl.DataFrame, several: np.ndarray) -> np.ndarray:
    """The file codes of `blocks` (one row per run of consecutive rows of one order in one file: order, file, lines;
    `several`: whether the block's order has other blocks in its file) whose orders of several lines (at least
    ORDERS_APART_MIN of them) have two lines in a row in fewer than ORDERS_TOGETHER_SHARE of cases: such a file (a
    purchase log sorted by anything but the order, one made an order per customer and day by `combine`) does not
    write an order's lines together, so a block is no copy of an order."""
    several = pl.Series(several)
    # An order in one block has several lines together, or one line; only orders in several blocks are grouped
    whole = blocks.filter(~several & (pl.col("lines") >= 2)).group_by("file").agg(orders=pl.len(), together=pl.len())
    split = (blocks.filter(several).group_by("order", "file").agg(pl.col("lines").max())
             .group_by("file").agg(orders=pl.len(), together=(pl.col("lines") >= 2).sum()))
    files = pl.concat([whole, split]).group_by("file").agg(pl.col("orders").sum(), pl.col("together").sum())
    apart = files.filter((pl.col("orders") >= ORDERS_APART_MIN)
                         & (pl.col("together") < ORDERS_TOGETHER_SHARE * pl.col("orders")))
    return apart["file"].to_numpy()


def _file_recency(typed: pd.DataFrame, time_column: str | None, files: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Per file number (0..) of the rows of `typed`, its rank from the least to the most recent: by the latest time
    of its `eligible` rows in `time_column` (none: all alike), then by its place among the files."""
    count = int(files.max()) + 1
    latest = np.full(count, np.iinfo(np.int64).min, dtype=np.int64)
    if time_column is not None:  # NaT is the smallest int64
        times = typed[time_column].to_numpy(dtype="datetime64[us]").view(np.int64)
        np.maximum.at(latest, files[eligible], times[eligible])
    ranks = np.empty(count, dtype=np.int64)
    ranks[np.lexsort((np.arange(count), latest))] = np.arange(count)
    return ranks


def duplicate_rows(
    frame: pd.DataFrame, *, typed: pd.DataFrame | None = None, candidates: np.ndarray | None = None
) -> int:
    """Rows identical in every column to an earlier row (kept, only counted).

    `typed` (the same rows parsed, same index), or `candidates` (`repeat_keys`' flags of them), narrows the search
    first: equal rows parse to equal values, so only rows whose customer, numbers and times repeat can be
    duplicates. Among those, row hashes find the candidates and the exact count is taken among the candidates
    (fast and exact).
    """
    if frame.empty or frame.shape[1] == 0:
        return 0
    if candidates is None and typed is not None:
        candidates = repeat_keys(typed)[1]
    if candidates is not None:
        frame = frame.take(np.flatnonzero(candidates))  # few rows: cheaper than a mask filter
    table = pl.from_pandas(frame)
    candidates = table.filter(table.hash_rows().is_duplicated())
    return int(len(candidates) - candidates.n_unique()) if len(candidates) else 0


def _value_key(typed: pd.DataFrame, *, with_customer: bool = False, columns: Sequence[str] | None = None) -> np.ndarray:
    """A 64-bit hash per row of its float and timestamp values among `columns` (default all; and its customer_id,
    `with_customer`; all zero for rows with none of those). Equal rows have equal keys."""
    columns = list(typed.columns) if columns is None else list(columns)  # named, not a copied frame
    key = np.zeros(len(typed), dtype=np.uint64)
    if with_customer and "customer_id" in columns:  # a string hash: worth it where few rows repeat
        key = pl.from_pandas(typed["customer_id"]).cast(pl.String).hash().fill_null(0).to_numpy().copy()
    for column in columns:
        values = typed[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            bits = values.to_numpy(dtype="datetime64[us]").view(np.uint64)  # UTC, no copy of the column
        elif values.dtype == FLOAT:
            bits = values.to_numpy(dtype=np.float64).view(np.uint64)
        else:
            continue
        key = (key ^ bits) * np.uint64(0x9E3779B97F4A7C15)  # wraps around: a hash, collisions only add candidates
    return key


FEW_REPEATS = 0.01  # at most this share of keys repeating: they are found from one sort of the keys


def repeated(keys: np.ndarray) -> np.ndarray:
    """True where a uint64 key occurs more than once.

    One sort finds the keys that repeat; where they are few (most exports), a lookup of them marks their rows.
    Otherwise radix-partitioned by the top bits so that each hash table stays small enough for the CPU
    cache: on 10M keys 3-4x faster than one table (the loop runs over at most 256 partitions).
    """
    ordered = np.sort(keys)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(twice) <= FEW_REPEATS * len(keys):  # 10M keys, none or 0.1% repeating: 0.18-0.37 s against 0.65-0.9 s
        return pd.Series(keys).isin(np.unique(twice)).to_numpy() if len(twice) else np.zeros(len(keys), dtype=bool)
    bits = int(np.clip(np.log2(max(len(keys), 1) / PARTITION_KEYS), 0, 8))
    partition = (keys >> np.uint64(64 - bits)).astype(np.uint8) if bits else np.zeros(len(keys), dtype=np.uint8)
    order = np.argsort(partition, kind="stable")  # a radix sort for uint8
    bounds = np.searchsorted(partition[order], np.arange(2**bits + 1))
    ordered, found = keys[order], np.empty(len(keys), dtype=bool)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        found[start:stop] = pd.Series(ordered[start:stop]).duplicated(keep=False).to_numpy()
    result = np.empty(len(keys), dtype=bool)
    result[order] = found
    return result


def later_attribute_rows(typed: pd.DataFrame, problems: pd.DataFrame, *, files: np.ndarray | None = None) -> np.ndarray:
    """Rows of a customers source (ascending) whose customer_id another valid row holds too: static attributes are
    one row per customer, so of each customer's valid rows only the first of the most recent file is kept (`files`:
    each row's file number, later files more recent; customers have no time to date a file by; None: one file). A
    customers table exported again after an attribute changed is read as last exported."""
    rows = np.flatnonzero(kept_mask(len(typed), problems["row"].to_numpy(dtype=np.int64)))
    if files is not None:
        rows = rows[np.lexsort((rows, -files[rows]))]  # the most recent file first, then in row order
    ids = pl.from_pandas(typed["customer_id"].iloc[rows].reset_index(drop=True))
    return np.sort(rows[(ids.is_not_null() & ~ids.is_first_distinct()).to_numpy()])


def same_answer_rows(typed: pd.DataFrame, problems: pd.DataFrame) -> np.ndarray:
    """Rows of a feedback source (ascending) whose answer an earlier valid row gives: the same feedback_id, customer,
    time, kind and score (Olist writes a review of a checkout once per order of it, with one review_id). Rows without
    a feedback_id are each their own answer."""
    if "feedback_id" not in typed.columns or typed["feedback_id"].isna().all():
        return np.zeros(0, dtype=np.int64)
    valid = kept_mask(len(typed), problems["row"].to_numpy(dtype=np.int64))
    rows = np.flatnonzero(valid & typed["feedback_id"].notna().to_numpy(dtype=bool))
    answers = pl.from_pandas(typed[list(ANSWER_IDENTITY)].iloc[rows].reset_index(drop=True))
    first = answers.select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
    return rows[~first].astype(np.int64)


def split_source(
    raw: RawSource, parsed: ParsedSource, problems: pd.DataFrame, *, extra_columns: list[str],
    repeat_candidates: np.ndarray | None = None,
) -> SourceResult:
    """Validated (contract-shaped), quarantine (raw + origin + reason) and extra columns of one source.

    quarantine: the file's columns unchanged, then source_file, source_row, reason.
    extra: validated_row (row number in the validated frame), source_file, source_row, then `extra_columns` (the
    file columns that are not in the contract); no columns at all when there are none. `repeat_candidates`: the
    rows that may repeat another (`repeat_keys`), computed here when not given.
    Report: anonymous rows (no customer_id), copies of records a more recent file holds and rows left out by the
    source's `exclude` setting are quarantined but not bad: `bad_share` excludes them.
    """
    reasons = row_reasons(problems, column_order=contract(raw.name).columns)
    bad = np.zeros(len(raw.frame), dtype=bool)
    bad[reasons.index.to_numpy()] = True

    def rows_where(flags: pd.Series) -> np.ndarray:
        found = np.zeros(len(raw.frame), dtype=bool)
        found[problems.loc[flags, "row"].to_numpy(dtype=np.int64)] = True
        return found

    anonymous = rows_where(problems["reason"] == ANONYMOUS)
    repeats = rows_where(problems["reason"] == REPEATED)
    blocks = rows_where(problems["reason"] == REPEATED_BLOCK)
    excluded = rows_where(problems["reason"].str.startswith(EXCLUDED_PREFIX))
    later = rows_where(problems["reason"] == LATER_ATTRIBUTES)
    same_answers = rows_where(problems["reason"] == SAME_ANSWER)
    headers = rows_where(problems["reason"] == HEADER_AGAIN)
    unanswered = rows_where(problems["reason"].str.endswith(UNANSWERED))
    unread = np.zeros(len(raw.frame), dtype=bool)  # rows of empty cells for lines of another width: no copies either
    if raw.unread_lines is not None:
        unread[raw.unread_lines["row"].to_numpy(dtype=np.int64)] = True
    broken = bad & ~rows_where(not_bad(problems["reason"]))
    candidates = repeat_keys(parsed.typed)[1] if repeat_candidates is None else repeat_candidates
    rejected = np.flatnonzero(bad)
    # parse_source built the contract columns in contract dtypes (check_validated confirms it).
    validated = keep_rows(parsed.typed, ~bad) if len(rejected) else parsed.typed.reset_index(drop=True)
    quarantine = pd.concat([raw.frame.take(rejected), _origin_text(raw.origin.take(rejected))], axis=1)
    quarantine = quarantine.reset_index(drop=True)
    quarantine["reason"] = reasons.to_numpy()
    if extra_columns:
        kept_origin, kept_extra = keep_rows(raw.origin, ~bad), keep_rows(raw.frame[extra_columns], ~bad)
        extra = pd.concat([_origin_text(kept_origin), kept_extra], axis=1)
        extra.insert(0, "validated_row", np.arange(len(extra), dtype=np.int64))
    else:
        extra = pd.DataFrame()
    report = {
        "configured": True,
        "input_rows": int(len(raw.frame)),
        "validated_rows": int(len(validated)),
        "quarantined_rows": int(bad.sum()),
        "anonymous_rows": int(anonymous.sum()),
        "anonymous_share": _share(anonymous),
        "bad_rows": int(broken.sum()),
        "bad_share": _share(broken),
        "repeated_rows": int((repeats | blocks).sum()),
        "excluded_rows": int(excluded.sum()),
        # identical to an earlier row and kept (the copies a more recent file holds and a customer's later rows of
        # attributes are in the quarantine, not here)
        "duplicate_rows": duplicate_rows(raw.frame, candidates=candidates & ~later & ~repeats & ~blocks & ~headers
                                         & ~same_answers & ~unread),
        "extra_columns": extra_columns,
        "derived": dict(parsed.derived),
        "notes": list(raw.notes) + list(parsed.notes) + [
            f"{column} derived as {how} (the source has no {column} column)" for column, how in parsed.derived.items()
        ] + unread_attributes_note(raw.name, extra_columns) + ([f"{int(repeats.sum()):,} rows are repeated in a more recent export file (overlapping exports?): the "
              "latest copy of each is kept, the others quarantined, "
              "not counted as bad"] if repeats.any() else []) + (
            [f"{int(blocks.sum()):,} order lines are repeated later in the same file, as a separate block of the same "
             f"order's lines ({_orders(parsed.typed, blocks)}; exports joined one below the other?): the last copy of "
             "each order is kept, the earlier quarantined, not counted as bad"] if blocks.any() else []) + (
            [f"{int(later.sum()):,} rows name a customer whose attributes another row gives: of each customer the "
             "first row of the most recent file is kept, the others are quarantined (not counted as bad)"]
            if later.any() else []) + (
            [f"{int(same_answers.sum()):,} row{'s repeat' if same_answers.sum() != 1 else ' repeats'} the answer of "
             "another row (the same feedback_id, customer, time, kind and score: one answer about several orders): "
             "quarantined, not counted as bad, so that it counts once"] if same_answers.any() else []) + (
            [f"{int(headers.sum()):,} row{'s repeat' if headers.sum() != 1 else ' repeats'} the header row (exports joined "
             "one below the other?): quarantined, not counted as bad"] if headers.any() else []) + (
            [f"{int(unanswered.sum()):,} rows have no {_label(parsed.labels, 'score')} (surveys sent but not answered?): "
             "quarantined, not counted as bad; the feedback features read the answered ones"] if unanswered.any() else []),
        "top_reasons": top_quarantine_reasons(problems),
    }
    return SourceResult(name=raw.name, validated=validated, quarantine=quarantine, extra=extra, report=report)


TICKET_TIMES = ("opened_at", "closed_at", "first_response_at")  # the times an export's ticket rows state


def status_known_at(typed: pd.DataFrame, kept: np.ndarray) -> pd.Series:
    """The derived `status_known_at` of a parsed support_tickets frame: for each kept row (`kept`) resolved by status
    without a closed_at, the latest opened_at, closed_at or first_response_at of all kept rows (of every file of the
    source: a file may be one part of a larger export, so no earlier time is safe): the export cannot be older than
    its newest row, so its status is known from then; null for every other row. Output: a UTC timestamp Series on
    `typed`'s index."""
    newest_row = np.maximum.reduce([typed[c].to_numpy(dtype="datetime64[us]").view(np.int64) for c in TICKET_TIMES])
    newest = newest_row[kept].max(initial=np.iinfo(np.int64).min)  # NaT as int64 is below every time
    known = np.where(resolved_without_close(typed, kept), newest, np.iinfo(np.int64).min).view("datetime64[us]")
    return pd.Series(known, index=typed.index, name="status_known_at").dt.tz_localize("UTC").astype(TIMESTAMP)


def _share(flags: np.ndarray) -> float:
    return round(float(flags.mean()) if len(flags) else 0.0, 6)


def _orders(typed: pd.DataFrame, flags: np.ndarray) -> str:
    """'N orders, e.g. 'A'' (or 'order 'A'') for the distinct order ids of the rows `flags` marks."""
    ids = pd.unique(typed["order_id"].to_numpy()[flags])
    return f"order {ids[0]!r}" if len(ids) == 1 else f"{len(ids):,} orders, e.g. {ids[0]!r}"


def keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` where `keep` is True, with a fresh RangeIndex and the same dtypes.

    Each column's array is filtered by the mask (Arrow strings by Arrow's own filter): on 1M
    transactions about two thirds of the CPU of `DataFrame.take` with row numbers (measured).
    """
    mask = pa_arrow.array(keep)
    return pd.DataFrame({column: _kept_values(frame[column], keep, mask) for column in frame.columns}, copy=False)


def _kept_values(values: pd.Series, keep: np.ndarray, mask: pa_arrow.Array) -> pd.api.extensions.ExtensionArray:
    """One column's kept values (`keep` as numpy and as Arrow mask): Arrow strings stay Arrow-backed."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        return pd.arrays.ArrowStringArray(pa_arrow.array(values).filter(mask), dtype=values.dtype)
    return values.array[keep]


def _origin_text(origin: pd.DataFrame) -> pd.DataFrame:
    """source_file as plain strings, as the quarantine and extra files hold it."""
    return origin.astype({"source_file": "str"})


def unconfigured_source(name: str) -> SourceResult:
    """An absent optional source: no rows, said so in the report."""
    quarantine = empty_frame(name).astype(STRING).assign(
        source_file=pd.Series([], dtype="str"),
        source_row=pd.Series([], dtype=np.int64),
        reason=pd.Series([], dtype="str"),
    )
    report = {
        "configured": False,
        "input_rows": 0,
        "validated_rows": 0,
        "quarantined_rows": 0,
        "anonymous_rows": 0,
        "anonymous_share": 0.0,
        "bad_rows": 0,
        "bad_share": 0.0,
        "duplicate_rows": 0,
        "extra_columns": [],
        "derived": {},
        "notes": ["not configured: treated as a source without rows"],
        "top_reasons": [],
    }
    return SourceResult(
        name=name, validated=empty_frame(name), quarantine=quarantine, extra=pd.DataFrame(), report=report
    )


def _too_bad_message(failures: list[SourceResult], max_bad_share: float) -> str:
    parts = []
    for result in failures:
        report = result.report
        top = report["top_reasons"]
        counted = [item for item, forgiven in zip(top, not_bad(pd.Series([i["reason"] for i in top], dtype="str")))
                   if not forgiven]
        reasons = ", ".join(f"{item['reason']} ({item['rows']} rows)" for item in counted[:3])
        parts.append(
            f"source {result.name}: {report['bad_share']:.1%} of {report['input_rows']} rows are bad "
            f"(limit {max_bad_share:.0%}); top reasons: {reasons}"
        )
    return (
        "; ".join(parts)
        + ". Nothing was written. Fix the export or the source mapping (rename, read.date_format, read.decimal, "
        "read.currency, timezone), "
        "or raise ingest.max_bad_share."
    )


def _too_anonymous_message(failures: list[SourceResult], max_anonymous_share: float) -> str:
    parts = [
        f"source {result.name}: {result.report['anonymous_share']:.1%} of {result.report['input_rows']} rows "
        f"have no customer_id (limit {max_anonymous_share:.0%})"
        for result in failures
    ]
    return (
        "; ".join(parts)
        + ". Nothing was written. Is the right column mapped onto customer_id (sources.<name>.rename)? "
        "If the export really is mostly guest checkouts, raise ingest.max_anonymous_share."
    )


def _setting_day(setting: str, day: dt.date, timezone: str) -> str:
    """How a quarantine reason names a day setting: 'ingest.latest', or 'ingest.latest 2024-04-09 in
    America/Sao_Paulo' when its day is another zone's than the UTC instant the reason shows."""
    return setting if timezone == "UTC" else f"{setting} {day} in {timezone}"


def _local_midnight(day: dt.date, timezone: str) -> pd.Timestamp:
    """The instant (UTC) at which `day` starts in `timezone`: the snapshot midnight of that date (`instant_us`), so
    ingest.earliest and ingest.latest cut where the features do (a skipped midnight: the day's first moment)."""
    return pd.Timestamp(instant_us(snapshot_time(day), timezone), unit="us", tz="UTC")


@dataclass(frozen=True)
class MappedSource:
    """One source read through its mapping: every export's rows one after the other (`raw`: the union of their file
    columns), parsed (`parsed`), the rows its `exclude` settings leave out and the header lines repeated inside a file
    (`excluded`: row, column, reason) and the file columns no export maps onto the contract (`extra_columns`)."""

    raw: RawSource
    parsed: ParsedSource
    excluded: pd.DataFrame
    extra_columns: list[str]


def customers_from_other_exports(typed: pd.DataFrame, lengths: list[int]) -> tuple[pd.DataFrame, int]:
    """Transactions of several exports (`typed`, parsed; `lengths`: rows per export, in order): a line without a
    customer_id whose order_id some line of another export names with exactly one customer takes that customer (a
    refunds export that names the order, not the customer); and how many lines did. Other frames unchanged."""
    if "order_id" not in typed.columns or "customer_id" not in typed.columns:
        return typed, 0
    if not (typed["customer_id"].isna() & typed["order_id"].notna()).any():
        return typed, 0
    lines = pl.from_pandas(typed[["order_id", "customer_id"]]).with_columns(
        pl.Series("export", np.repeat(np.arange(len(lengths)), lengths)), pl.int_range(pl.len()).alias("row")).lazy()
    wanted = lines.filter(pl.col("customer_id").is_null() & pl.col("order_id").is_not_null())
    named = lines.filter(pl.col("customer_id").is_not_null()).select("order_id", "customer_id",
                                                                       pl.col("export").alias("named_in"))
    found = (wanted.drop("customer_id").join(named, on="order_id", how="inner")
             .filter(pl.col("named_in") != pl.col("export"))
             .group_by("row").agg(pl.col("customer_id").n_unique().alias("customers"), pl.col("customer_id").first())
             .filter(pl.col("customers") == 1).sort("row").collect())
    if found.is_empty():
        return typed, 0
    customer = typed["customer_id"].copy()
    customer.iloc[found["row"].to_numpy()] = found["customer_id"].to_numpy()
    return typed.assign(customer_id=customer), found.height


def mapped_source(
    raws: Sequence[RawSource], exports: Sequence[SourceConfig], *, id_case: str, guest_ids: Sequence[str] = (),
    attributes: Sequence[CustomerAttribute] = (), business_zone: str = "UTC",
) -> MappedSource:
    """The exports of one source (`raws`, read with `exports`: the source's mapping and its `other_exports`), each
    filled (`with_order_fields_filled`), parsed and excluded with its own mapping, then put one after the other; the
    raw rows stay as read (the quarantine shows them so). `attributes`: the file columns of
    sources.customers.attributes, which every export has and none leaves as an extra column. `business_zone`: see
    `parse_source`."""
    if len(raws) != len(exports):
        raise ValueError(f"{len(raws)} raw exports for {len(exports)} mappings")
    parts, unmapped = [], []
    for number, (raw, export) in enumerate(zip(raws, exports)):
        filled = with_order_fields_filled(raw, export)
        parsed = parse_source(filled, export, id_case=id_case, guest_ids=guest_ids,
                              setting=export_setting(raw.name, number), export_number=number, attributes=attributes,
                              business_zone=business_zone)
        left_out = pd.concat([excluded_filled_rows(raw, filled, export),
                              _problems(header_rows(raw), "", HEADER_AGAIN)], ignore_index=True)
        parts.append((filled, parsed, left_out))
        if raw.name == "transactions":
            kept = kept_mask(len(raw.frame), left_out["row"].to_numpy(dtype=np.int64))
            given = {column: parsed.typed[column].reset_index(drop=True) for column in ("amount", "order_id")
                     if column in parsed.typed.columns}
            unmapped += unmapped_column_notes(raw.frame, export, kept, setting=export_setting(raw.name, number),
                                              amounts=given.get("amount"), orders=given.get("order_id"))
    columns = contract(raws[0].name).input_dtypes
    mapped = {column for raw, export in zip(raws, exports) for column in raw.frame.columns
              if export.rename.get(column, column) in columns} | {attribute.column for attribute in attributes}
    extra = [column for column in dict.fromkeys(c for raw, _, _ in parts for c in raw.frame.columns) if column not in mapped]
    # The quarantine and extra columns show the rows as read; the fill's note goes with them.
    as_read = [dataclasses.replace(raw, notes=filled.notes) for raw, (filled, _, _) in zip(raws, parts)]
    read = [(filled, export, excluded["row"].to_numpy(dtype=np.int64)) for (filled, _, excluded), export in zip(parts, exports)]
    counts = currency_counts(read) if raws[0].name == "transactions" else []  # one scan serves both notes
    currencies = mixed_currency_note(counts, name=raws[0].name)
    cents = (minor_unit_note(counts, read, pd.concat([parsed.typed["amount"] for _, parsed, _ in parts],
                                                     ignore_index=True))
             if counts and all("amount" in parsed.typed.columns for _, parsed, _ in parts) else None)
    warnings = ([warning for _, parsed, _ in parts for warning in parsed.warnings]
                + [note for note in (currencies, cents) if note] + unmapped)
    if len(parts) == 1:
        _, parsed, excluded = parts[0]
        parsed = dataclasses.replace(parsed, notes=parsed.notes + warnings, warnings=warnings)
        return MappedSource(as_read[0], parsed, excluded, extra)
    offsets = np.cumsum([0, *(len(raw.frame) for raw, _, _ in parts[:-1])])

    def shifted(problems: pd.DataFrame, offset: int) -> pd.DataFrame:
        return problems.assign(row=problems["row"].to_numpy(dtype=np.int64) + offset)

    def labelled(parsed: ParsedSource) -> pd.DataFrame:  # each export names its own file column in a reason
        return parsed.problems.assign(label=parsed.problems["column"].map(parsed.labels).fillna(parsed.problems["column"]))

    origin = pd.DataFrame({
        "source_file": union_categoricals([raw.origin["source_file"] for raw in as_read]),
        "source_row": np.concatenate([raw.origin["source_row"].to_numpy() for raw in as_read]),
    })
    missed = [shifted(raw.lookup_problems, o) for raw, o in zip(as_read, offsets) if raw.lookup_problems is not None]
    unread = [shifted(raw.unread_lines, o) for raw, o in zip(as_read, offsets) if raw.unread_lines is not None]
    raw = RawSource(
        name=as_read[0].name,
        frame=concat_as_read([raw.frame for raw in as_read]),
        origin=origin,
        files=tuple(path for raw in as_read for path in raw.files),
        notes=tuple(note for raw in as_read for note in raw.notes),
        lookup_problems=pd.concat(missed, ignore_index=True) if missed else None,
        unread_lines=pd.concat(unread, ignore_index=True) if unread else None,
        warnings=tuple(warning for raw in as_read for warning in raw.warnings),
    )
    parsed_parts = [parsed for _, parsed, _ in parts]
    typed = pd.concat([p.typed for p in parsed_parts], ignore_index=True)
    typed, taken = customers_from_other_exports(typed, [len(p.typed) for p in parsed_parts])
    parsed = ParsedSource(
        name=raw.name,
        typed=typed,
        problems=pd.concat([shifted(labelled(p), o) for p, o in zip(parsed_parts, offsets)], ignore_index=True),
        labels={column: " / ".join(dict.fromkeys(p.labels.get(column, column) for p in parsed_parts))
                for column in columns},
        derived={column: how for p in parsed_parts for column, how in p.derived.items()},
        notes=[note for p in parsed_parts for note in p.notes] + (
            [f"{taken:,} lines without a customer took it from their order's lines in another export (a refunds "
             "export that names the order, not the customer)"] if taken else []) + warnings,
        warnings=warnings,
        refunds=_concat_or_none([p.refunds.assign(row=p.refunds["row"] + o)
                                 for p, o in zip(parsed_parts, offsets) if p.refunds is not None]),
    )
    excluded = pd.concat([shifted(e, o) for (_, _, e), o in zip(parts, offsets)], ignore_index=True)
    return MappedSource(raw, parsed, excluded, extra)


def refund_carriers(
    typed: pd.DataFrame, refunds: pd.DataFrame, *, quarantined: np.ndarray, max_abs_amount: float, columns: str,
    latest_allowed: pd.Timestamp | None = None, latest_rule: str = "the data's end + tolerance",
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(the refunds that become rows: row (the row whose order the refund takes), refund, column, at (its time; NaT:
    the order's); problems; notes).

    `refunds`: `parsed_refunds` of `typed`; `columns`: the refund columns, for the notes; `quarantined`: rows already
    quarantined, which give no refund. A refund per
    order is taken once, from the first of its order's rows kept; the kept rows of an order whose rows give different
    refunds are quarantined, as are refunds beyond ±`max_abs_amount`. An order (a row, with `per: row`) that already
    holds a negative amount among its kept rows, in any export (a return, a refund row, a row `returns_when` made
    negative) gives none: that is the money already. A refund larger than the goods of its order's kept rows (of its
    row) is cut to them: line prices leave out the shipping and taxes a refund may include. A refund time (`at`; the
    latest of an order's rows) that is unreadable, before its order's time or after `latest_allowed` is not used:
    the refund is timed at its order, as without `at`, its sale kept, and a note counts them."""
    beyond = (refunds["refund"] > max_abs_amount).to_numpy()
    problems = [refunds.loc[beyond, ["row"]].assign(
        column=refunds.loc[beyond, "column"],
        reason=refunds.loc[beyond, "column"] + f": beyond ±{max_abs_amount:g} (ingest.max_abs_amount)")]
    kept_rows = kept_mask(len(typed), quarantined)
    candidates = refunds[~beyond & kept_rows[refunds["row"].to_numpy(dtype=np.int64)]]
    rows = candidates["row"].to_numpy(dtype=np.int64)
    ids = ["customer_id", "order_id"]
    offered = pl.from_pandas(typed[ids].iloc[rows].reset_index(drop=True)).with_columns(
        pl.Series("row", rows), pl.Series("refund", candidates["refund"].to_numpy()),
        pl.Series("per_order", candidates["per_order"].to_numpy()), pl.Series("own", typed["amount"].to_numpy()[rows]),
        pl.Series("at", candidates["at"].to_numpy(dtype="datetime64[us]")),
        pl.Series("at_problem", candidates["at_problem"].to_numpy(dtype=object), dtype=pl.String),
        pl.Series("ordered", typed["ordered_at"].to_numpy(dtype="datetime64[us]")[rows]))
    kept = np.flatnonzero(kept_rows)
    orders = (pl.from_pandas(typed[[*ids, "amount"]].iloc[kept].reset_index(drop=True)).lazy()
              .join(offered.lazy().select(ids).unique(), on=ids, how="semi")
              .group_by(ids).agg(pl.col("amount").clip(lower_bound=0).sum().alias("goods"),
                                 (pl.col("amount") < 0).any().alias("returned")).collect())
    # A negative row's refund cell is that return's own money: it neither gives nor contradicts its order's refund.
    offered = offered.join(orders, on=ids, how="left").filter(~pl.col("per_order") | (pl.col("own") >= 0)).with_columns(
        pl.when(pl.col("per_order")).then(pl.col("goods")).otherwise(pl.col("own").clip(lower_bound=0)).alias("goods"),
        pl.when(pl.col("per_order")).then(pl.col("returned")).otherwise(pl.col("own") < 0).alias("returned"),
        pl.col("refund").n_unique().over(ids).alias("values"),
        pl.col("row").rank("ordinal").over(ids).alias("nth"),
        pl.when(pl.col("per_order")).then(pl.col("at").max().over(ids)).otherwise(pl.col("at")).alias("at"),
        pl.when(pl.col("per_order")).then(pl.col("at_problem").max().over(ids)).otherwise(pl.col("at_problem"))
        .alias("at_problem"),
    ).with_columns(  # an order whose rows give a readable time and an unreadable one takes the readable one
        pl.when(pl.col("at").is_null()).then(pl.col("at_problem")).otherwise(pl.lit("")).alias("at_problem"))
    differ = offered.filter(pl.col("per_order") & (pl.col("values") > 1)).with_columns(
        pl.col("refund").unique().sort().round(4).cast(pl.String).str.replace(r"\.0$", "").str.join(", ")
        .over(ids).alias("shown"))
    by_row = candidates.set_index("row")
    if differ.height:
        chosen = by_row.loc[differ["row"].to_numpy()]
        problems.append(pd.DataFrame({
            "row": differ["row"].to_numpy(), "column": chosen["column"].to_numpy(),
            "reason": (chosen["column"] + ": the order's rows give different refunds (" + differ["shown"].to_numpy()
                       + "); if each row gives its own, set " + chosen["export"] + ".refunds.per: row").to_numpy(),
            "kind": (chosen["column"] + ": the order's rows give different refunds; if each row gives its own, set "
                     + chosen["export"] + ".refunds.per: row").to_numpy(),
        }))
    once = offered.filter(~pl.col("per_order") | ((pl.col("values") == 1) & (pl.col("nth") == 1)))
    taken = (once.filter(~pl.col("returned"))
             .with_columns(pl.min_horizontal("refund", "goods").alias("refund"), pl.col("refund").alias("written"))
             .filter(pl.col("refund") > 0))
    early = (taken["at"] < taken["ordered"]).fill_null(False).to_numpy()
    late = np.zeros(taken.height, dtype=bool) if latest_allowed is None else (
        taken["at"].to_numpy() > latest_allowed.tz_convert(None).to_datetime64()) & taken["at"].is_not_null().to_numpy()
    why = np.where(early, "before its order's time", np.where(
        late, f"later than {latest_rule} ({latest_allowed})", taken["at_problem"].to_numpy()))
    unused = why != ""
    taken = taken.with_columns(pl.when(pl.Series(unused)).then(None).otherwise(pl.col("at")).alias("at"))
    carriers = pd.DataFrame({"row": taken["row"].to_numpy(), "refund": taken["refund"].to_numpy(),
                             "at": pd.to_datetime(taken["at"].to_numpy()).tz_localize("UTC")})
    carriers["column"] = by_row.loc[carriers["row"], "column"].to_numpy()
    carriers = carriers.sort_values("row", ignore_index=True)
    returned, cut = once.filter(pl.col("returned")).height, taken.filter(pl.col("written") > pl.col("refund"))
    notes = ([f"no row gives a refund in {columns} (sources.transactions.refunds): every cell is blank or 0"]
             if refunds.empty else [])
    if returned:
        notes.append(f"{returned:,} refund{'s' * (returned != 1)} of {columns} not added: a return or refund already "
                     "stands for that money (a negative amount on the row, or with per: order on a row of the order, "
                     "in any export)")
    if unused.any():
        labels = by_row.loc[taken["row"].to_numpy()[unused], "at_column"].to_numpy()
        counts = pd.Series(labels + ": " + why[unused]).value_counts(sort=False)
        notes.append(f"{int(unused.sum()):,} refund time{'s' * bool(unused.sum() != 1)} not used ("
                     + "; ".join(f"{n:,} {reason}" for reason, n in counts.items())
                     + "): those refunds are timed at their order, as without refunds.at, and their sales are kept")
    if cut.height:
        notes.append(f"{cut.height:,} refund{'s' * (cut.height != 1)} of {columns} larger than the goods of their "
                     f"order were cut to them ({float((cut['written'] - cut['refund']).sum()):,.2f} in all): line prices "
                     "leave out the shipping and taxes a refund may include")
    problems = pd.concat(problems, ignore_index=True).astype({"row": np.int64, "column": "str", "reason": "str"})
    return carriers, problems, notes


def with_refund_rows(
    result: SourceResult, typed: pd.DataFrame, carriers: pd.DataFrame, notes: list[str]
) -> SourceResult:
    """`result` with one refund row per carrier appended to its validated transactions: the carrier row's order_id,
    customer_id, ordered_at and channel, amount = -refund, the other columns empty; the report counts them
    (`refund_rows`, also in `validated_rows`) and says where they came from, after `notes`."""
    rows = carriers["row"].to_numpy(dtype=np.int64)
    added = {}
    for column, dtype in contract("transactions").dtypes.items():
        if column in ("order_id", "customer_id", "channel"):
            added[column] = typed[column].take(rows).reset_index(drop=True)
        elif column == "ordered_at":  # the refund's own time where the export gives one, else its order's
            order_time = typed[column].take(rows).reset_index(drop=True)
            added[column] = carriers["at"].where(carriers["at"].notna(), order_time).astype(dtype)
        elif column == "amount":
            added[column] = pd.Series(-carriers["refund"].to_numpy(dtype=np.float64), dtype=dtype)
        else:
            added[column] = pd.Series(None, index=range(len(rows)), dtype=dtype)
    validated = pd.concat([result.validated, pd.DataFrame(added)], ignore_index=True) if len(rows) else result.validated
    per_column = carriers.assign(timed=carriers["at"].notna()).groupby("column", sort=False).agg(
        size=("refund", "size"), sum=("refund", "sum"), timed=("timed", "sum"))
    notes = [*notes, *(
        f"{int(n):,} refund row{'s' * (n != 1)} added from {column} (worth {total:,.2f} in all): " + (
            "each timed at its order, as the export gives no time for it, so a snapshot taken between an order and its "
            "refund sees the refund early" if not timed else
            f"{int(timed):,} timed by refunds.at, the others at their order")
        for column, (n, total, timed) in per_column.iterrows())]
    report = {**result.report, "validated_rows": int(len(validated)), "refund_rows": int(len(rows)),
              "notes": [*result.report["notes"], *notes]}
    return dataclasses.replace(result, validated=validated, report=report)


def _concat_or_none(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    return pd.concat(frames, ignore_index=True) if frames else None


def ingest_sources(
    raws: Mapping[str, RawSource | Sequence[RawSource]], *, sources: Mapping[str, SourceConfig], cfg: IngestConfig,
    business_zone: str = "UTC",
) -> IngestResult:
    """Validate every configured source; raise IngestError (naming source, share and top reasons)
    when any source's bad share exceeds `cfg.max_bad_share`. Sources of SOURCE_NAMES not in
    `raws` come back empty, marked as not configured. `raws`: per source, its one export, or one per export of
    `sources[name].exports()` (`pipeline.sources.read_exports`). `business_zone`: the time zone whose days the later
    stages count (features.timezone): ingest.earliest and ingest.latest are its days, and so are the days the notes
    on a quiet span or end of the orders name; also for the note on times written with a UTC offset."""
    exports = {name: [raw] if isinstance(raw, RawSource) else list(raw) for name, raw in raws.items()}
    if "transactions" in exports and all(raw.frame.empty for raw in exports["transactions"]):
        files = ", ".join(str(path) for raw in exports["transactions"] for path in raw.files)
        raise IngestError(
            f"source transactions: {files} has a header but no rows; transactions are required — "
            "export the orders, or point sources.transactions.path at the right file"
        )
    mapped = {name: mapped_source(parts, sources[name].exports(), id_case=cfg.id_case, guest_ids=cfg.guest_ids,
                                  attributes=sources[name].attributes, business_zone=business_zone)
              for name, parts in exports.items()}
    del exports
    raws = {name: source.raw for name, source in mapped.items()}
    parsed = {name: source.parsed for name, source in mapped.items()}
    start, reference = time_bounds(parsed)
    tolerance = pd.Timedelta(days=cfg.future_tolerance_days)
    latest_allowed = None if reference is None else reference + tolerance
    parsed = {name: with_far_times_read(source, earliest=start, latest=latest_allowed)
              for name, source in parsed.items()}
    latest_rule = "the data's end + tolerance"
    if cfg.latest is not None:  # the end of that day of the business zone, unless the data's own end comes first
        last_day = _local_midnight(cfg.latest + dt.timedelta(days=1), business_zone) - pd.Timedelta(microseconds=1)
        if latest_allowed is None or last_day < latest_allowed:
            latest_allowed, latest_rule = last_day, _setting_day("ingest.latest", cfg.latest, business_zone)
    if cfg.earliest is None:
        earliest_allowed, earliest_rule = start, "the data's start"
    else:
        earliest_allowed = _local_midnight(cfg.earliest, business_zone)
        earliest_rule = _setting_day("ingest.earliest", cfg.earliest, business_zone)
    bounds = {"earliest_allowed": earliest_allowed, "earliest_rule": earliest_rule, "latest_rule": latest_rule,
              "max_abs_amount": cfg.max_abs_amount}
    results = {}
    for name in SOURCE_NAMES:
        if name not in raws:
            results[name] = unconfigured_source(name)
            continue
        for warning in (*raws[name].warnings, *parsed[name].warnings):
            get_logger().warning("%s: %s", name, warning)
        numbers = [a.feature for a in sources[name].attributes if a.kind == "number"]
        problems = find_problems(parsed[name], latest_allowed=latest_allowed, numbers=numbers, **bounds)
        note = reply = wait = None  # a source's own notes, also logged as warnings
        synthetic = any(export.one_order_per_row for export in sources[name].exports())
        identity = record_identity(name, synthetic_orders=synthetic)
        # One search for the rows that may repeat, for both counts: rows equal in every column are equal in these.
        keys = repeat_keys(parsed[name].typed, identity)
        # a bad row is no copy: its record's other copy stays
        clean = kept_mask(len(parsed[name].typed), problems["row"].to_numpy(dtype=np.int64))
        repeats = repeated_across_files(raws[name], parsed[name].typed, eligible=clean, identity=identity, keys=keys)
        clean[repeats] = False
        blocks = repeated_order_blocks(raws[name].origin, parsed[name].typed, identity=identity, eligible=clean,
                                       recurring=keys[1])
        problems = pd.concat([problems, _problems(repeats, "", REPEATED), _problems(blocks, "", REPEATED_BLOCK),
                              mapped[name].excluded], ignore_index=True)
        missed = raws[name].lookup_problems
        if missed is not None:  # a row whose key a lookup table lacks: that is why values are missing, not a guest
            failed = problems["row"].isin(missed["row"]) & (
                problems["reason"].eq(ANONYMOUS) | problems["reason"].str.endswith((f": {MISSING}", UNANSWERED)))
            problems = pd.concat([problems[~failed], missed], ignore_index=True)
        problems = only_the_exclusion(problems, keep=() if missed is None else missed["reason"].unique())
        headers = problems["reason"] == HEADER_AGAIN  # a header line again: that is all there is to say about it
        if headers.any():
            problems = problems[headers | ~problems["row"].isin(problems.loc[headers, "row"])].reset_index(drop=True)
        problems = with_unread_lines(problems, raws[name].unread_lines)
        if name == "feedback":
            problems = pd.concat([problems, _problems(same_answer_rows(parsed[name].typed, problems), "feedback_id",
                                                      SAME_ANSWER)], ignore_index=True)
        if name == "customers":
            files = pd.factorize(raws[name].origin["source_file"])[0]
            note = differing_attributes_note(
                parsed[name].typed, kept_mask(len(parsed[name].typed), problems["row"].to_numpy(dtype=np.int64)), files)
            later = later_attribute_rows(parsed[name].typed, problems, files=files)
            problems = pd.concat([problems, _problems(later, "customer_id", LATER_ATTRIBUTES)], ignore_index=True)
        refunds = parsed[name].refunds
        carriers = None
        if refunds is not None:
            carriers, refund_problems, refund_notes = refund_carriers(
                parsed[name].typed, refunds, quarantined=problems["row"].to_numpy(dtype=np.int64),
                max_abs_amount=cfg.max_abs_amount, latest_allowed=latest_allowed, latest_rule=latest_rule,
                columns=", ".join(dict.fromkeys(e.refunds.column for e in sources[name].exports() if e.refunds)))
            problems = pd.concat([problems, refund_problems], ignore_index=True)
        if name == "transactions":
            note = utc_offset_note(raws[name].frame, parsed[name].labels, business_zone=business_zone)
        if name == "support_tickets":
            kept = kept_mask(len(parsed[name].typed), problems["row"].to_numpy(dtype=np.int64))
            parsed[name].typed["status_known_at"] = status_known_at(parsed[name].typed, kept)
            note = resolved_without_close_note(parsed[name].typed, raws[name].origin, kept,
                                               resolved=_label(parsed[name].labels, "resolved"))
            reply = closed_before_reply_note(parsed[name].typed, kept, labels=parsed[name].labels)
            wait = late_first_response_note(parsed[name].typed, kept, labels=parsed[name].labels)
        results[name] = split_source(raws[name], parsed[name], problems, extra_columns=mapped[name].extra_columns,
                                     repeat_candidates=keys[1])
        identifiers = identifier_attribute_notes(results[name].validated, sources[name].attributes,
                                                 read=sources[name].read) if name == "customers" else []
        for said in (note, reply, wait, *identifiers):
            if said:
                results[name].report["notes"].append(said)
                get_logger().warning("%s: %s", name, said)
        if carriers is not None:
            results[name] = with_refund_rows(results[name], parsed[name].typed, carriers, refund_notes)
        schema = validation_schema(name, latest_allowed=latest_allowed, labels=parsed[name].labels,
                                   attributes=attribute_columns(results[name].validated.columns), numbers=numbers,
                                   **bounds)
        check_validated(results[name].validated, schema, name=name)
        del parsed[name], mapped[name]  # the typed columns live on in the validated frame: free the rest now
    distinct = {name: distinct_ids(result.validated) for name, result in results.items()}
    split = split_id_note(distinct["transactions"], id_case=cfg.id_case)
    one_order = one_order_each_note(results["transactions"])
    outsized = outsized_id_note(results["transactions"])
    per_day = orders_per_day(results["transactions"], business_zone)  # 2 s at 10M lines: counted once for both notes
    gap = order_gap_note(results["transactions"], timezone=business_zone, per_day=per_day)
    end = thin_end_note(results["transactions"], timezone=business_zone, per_day=per_day)
    totals = order_total_note(results["transactions"])
    free = free_order_note(results["transactions"])
    money = constant_money_note(sources["transactions"])
    shares = discount_share_note(results["transactions"], sources["transactions"])
    for name, note in [*(("transactions", note) for note in (split, one_order, outsized, gap, end, totals, free, money,
                                                             shares)
                         if note),
                       *id_match_notes(distinct, id_case=cfg.id_case).items()]:
        results[name].report["notes"].append(note)
        get_logger().warning("%s: %s", name, note)
    signs = negative_earn_note(results["loyalty_events"])
    if signs:
        results["loyalty_events"].report["notes"].append(signs)
        get_logger().info("loyalty_events: %s", signs)
    failures = [r for r in results.values() if r.report["bad_share"] > cfg.max_bad_share]
    anonymous = [r for r in results.values() if r.report["anonymous_share"] > cfg.max_anonymous_share]
    if failures or anonymous:
        messages = [_too_bad_message(failures, cfg.max_bad_share)] if failures else []
        messages += [_too_anonymous_message(anonymous, cfg.max_anonymous_share)] if anonymous else []
        raise IngestError(" ".join(messages))
    report = {
        "reference_time": None if reference is None else reference.isoformat(),
        "reference_rule": (
            "latest past-fact timestamp over all sources, ending at the first jump of more than "
            "max(30 days, 10% of the 5th-95th percentile span) above the 95th percentile"
        ),
        "future_tolerance_days": cfg.future_tolerance_days,
        "latest_allowed": None if latest_allowed is None else latest_allowed.isoformat(),
        "latest_rule": latest_rule,
        "earliest_allowed": None if earliest_allowed is None else earliest_allowed.isoformat(),
        "earliest_rule": (
            "ingest.earliest" if cfg.earliest is not None else
            "earliest past-fact timestamp over all sources, ending at the first jump of more than "
            "max(2 years, 25% of the 5th-95th percentile span) below the 5th percentile"
        ),
        "max_abs_amount": cfg.max_abs_amount,
        "max_anonymous_share": cfg.max_anonymous_share,
        "max_bad_share": cfg.max_bad_share,
        "sources": {name: result.report for name, result in results.items()},
    }
    return IngestResult(sources=results, reference=reference, report=report)


# --- customer attributes: the note on unread numbers --------------------------------------------------------------------

UNREAD_SHOWN = 3  # cells shown of a number attribute's cells that hold no number


def unread_numbers_notes(
    raw: RawSource, attributes: Sequence[CustomerAttribute], values: Mapping[str, pd.Series], *, read: ReadOptions,
    export: str | None = None,
) -> list[str]:
    """One note per attribute of kind number whose cells in `raw` hold something (not blank, not a null word) that
    `values` (`attribute_values`, read with `read`) has no number for: how many, the hint of a decimal comma, a
    currency sign or an accounting negative when most of them look so (`_number_reason`), and a few of them (`export`:
    the config key of an export under other_exports, named too). Those cells are left empty, the customer's row kept:
    one unreadable age does not take away their other values. [] when every cell is read."""
    notes = []
    for attribute in attributes:
        if attribute.kind != "number":
            continue
        cells = raw.frame[attribute.column]
        failed = _unparsed(cells, values[attribute.feature])
        if not len(failed):
            continue
        unread = cells.iloc[failed]
        shown = ", ".join(repr(text) for text in value_text(unread).drop_duplicates().head(UNREAD_SHOWN))
        hint = _number_reason(unread, read=read, source=raw.name).removeprefix("not a number")
        none = ("; none of its cells holds a number: if it is no quantity, list it by its name alone (a category)"
                if values[attribute.feature].isna().all() else "")
        where = f" of {export}" if export else ""
        notes.append(f"{attribute.column} ({attribute.feature}, kind number){where}: {len(failed):,} "
                     f"{'cells hold' if len(failed) != 1 else 'cell holds'} no number{hint} and "
                     f"{'are' if len(failed) != 1 else 'is'} left empty, the rest of the row kept (e.g. {shown}){none}")
    return notes
