"""Reading one configured source, and parsing its raw values into contract types.

`read_source(name, source)` finds the files (a path or a glob), reads them as they are (CSV as
strings, Parquet as typed, Excel sheets as the text of their cells; null tokens of `read.na_values` as
missing) and returns a `RawSource`: the rows unchanged, with their file (and sheet) and row number. Table-level problems (no file, a folder, no
permission, empty file, no line break, repeated column names, wrong separator, bytes that are not in
the configured encoding, most lines of another width than the header) raise `IngestError` naming the source, the
file and what to do. A few CSV lines of another width than the header are set aside: a row of empty cells in the
place of each, and a row of `RawSource.unread_lines` whose reason holds the line as written (ingest quarantines it).

The parse helpers (`parse_timestamps`, `parse_numbers`, `parse_booleans`, `parse_ids`) turn raw
columns into contract types, with nulls where a value cannot be parsed; ingest compares the nulls
with the raw values to name the rows that failed. Naive timestamps are read in the source's time
zone and converted to UTC.

`SourceResult` (what ingest makes of one source) and the cell helpers (`value_text`, `blank_cells`,
`holds_dates`, `kept_mask`) are shared by the ingest stage (`pipeline.ingest`) and its notes
(`pipeline.ingest_notes`).
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import itertools
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import polars as pl
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.compressed import archive_members, unpacked
from pipeline.config import LookupConfig, ReadOptions, SourceConfig, member_label
from pipeline.contract import AMOUNT_FACTORS, TIMESTAMP, contract
from pipeline.errors import IngestError

PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")  # what the calamine reader opens
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
ALL_SHEETS = "*"
INTEGER_TEXT_PATTERN = r"^(-?\d+)\.0*$"  # '17850.0' -> '17850'
NUMBER_PATTERN = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
OFFSET_PATTERN = r"(?:[zZ]|[+-]\d\d:?\d\d)$"
NONZERO_MANTISSA = r"^[^eE]*[1-9]"  # a number written with a nonzero digit before any exponent
NAIVE_ISO_PATTERN = r"^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?)?$"
# Byte lengths at which Arrow casts only plain naive ISO values (it also takes 'YYYY-MM-DD hh',
# length 13, which the pattern does not; and more than 6 decimals at length 27+).
PLAIN_ISO_LENGTHS = frozenset({10, 16, 19, 21, 22, 23, 24, 25, 26})
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
ORIGIN_COLUMNS = ("source_file", "source_row")
COMMON_SEPARATORS = (",", ";", "\t", "|")
# Layouts tried when a text timestamp column is mostly not ISO 8601 and no read.date_format is set
# (`infer_date_format`). Both day/month orders are listed: a column that both read is ambiguous.
COMMON_DATE_FORMATS = tuple(
    f"{day}{time}"
    for day in ("%m/%d/%Y", "%d/%m/%Y", "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d",
                "%d %b %Y", "%d-%b-%Y", "%b %d %Y", "%b %d, %Y",
                "%m/%d/%y", "%d/%m/%y", "%m-%d-%y", "%d-%m-%y", "%d.%m.%y",  # two-digit years: a spreadsheet's
                # short date (1/31/24, 31-01-24); no %y-%m-%d, which reads nearly every %d-%m-%y value too
                "%d-%b-%y")  # Oracle's DD-MON-YY and a spreadsheet's d-mmm-yy (11-Feb-13); %y: 69-99 are 19xx
    for time in ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
)
# read.date_format values for numbers of a unit since an epoch: Unix time in seconds or milliseconds since
# 1970-01-01 UTC (no time zone applies), and a spreadsheet's date serial, days since 1899-12-30 (45322.5 is
# 2024-01-31 12:00; wall-clock time, so the source's time zone applies).
NUMERIC_FORMATS = {"unix": ("s", "1970-01-01"), "unix_ms": ("ms", "1970-01-01"), "excel": ("D", "1899-12-30")}
# Numeric times count as read, when a layout is inferred, only inside these years: 8-digit dates such as
# 20240131 are not seconds since 1970, nor 2024 a day of 1905.
NUMERIC_PLAUSIBLE = (pd.Timestamp("2000-01-01"), pd.Timestamp("2100-01-01"))
# Values tried per layout before the whole column is (evenly spaced, so the inference is deterministic).
DATE_FORMAT_SAMPLE = 2_000
# A layout is inferred only when it reads at least this share of the values ISO 8601 does not.
DATE_FORMAT_MIN_SHARE = 0.9
MAX_HEADER_BYTES = 2**20  # a first line longer than this is not a header row
# Files read as CSV that are something else (an .xlsx renamed .csv, a Parquet or JSON export under a .csv name):
# (leading bytes, what the file is, how to read it; {name}: the source). UTF-32 marks before UTF-16's, which they
# start with.
OTHER_FORMAT_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive (as an Excel .xlsx workbook is)",
     "set sources.{name}.format: excel if it is a workbook, or unzip it"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook", "set sources.{name}.format: excel"),
    (b"PAR1", "a Parquet file", "set sources.{name}.format: parquet"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (it starts with UTF-32's byte-order mark)", "set sources.{name}.read.encoding: utf-32"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (it starts with UTF-32's byte-order mark)", "set sources.{name}.read.encoding: utf-32"),
    (b"\xff\xfe", "UTF-16 text (it starts with UTF-16's byte-order mark)", "set sources.{name}.read.encoding: utf-16"),
    (b"\xfe\xff", "UTF-16 text (it starts with UTF-16's byte-order mark)", "set sources.{name}.read.encoding: utf-16"),
)
JSON_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:\[\s*)?\{\s*\"")  # [{"... or {"...: JSON records, not a header


@dataclass(frozen=True)
class RawSource:
    """The rows of one source exactly as read.

    frame: the file's own columns and values (CSV: strings, nulls for empty cells), RangeIndex.
    origin: `source_file` (path, categorical) and `source_row` (1-based data row within that file),
    same index.
    """

    name: str
    frame: pd.DataFrame
    origin: pd.DataFrame
    files: tuple[Path, ...]
    notes: tuple[str, ...] = field(default=())
    # Rows whose key a `lookup` table lacks or holds twice (row, column: the key's column, reason); None: none.
    lookup_problems: pd.DataFrame | None = None
    # Rows read from lines with another number of fields than the header (row, column: '', reason: the line and its
    # line number), whose cells are empty; None: none.
    unread_lines: pd.DataFrame | None = None
    warnings: tuple[str, ...] = field(default=())  # the notes a user must see when ingest runs (also in notes)


@dataclass(frozen=True)
class SourceResult:
    """Everything ingest produces for one source (the runner writes the frames)."""

    name: str
    validated: pd.DataFrame
    quarantine: pd.DataFrame
    extra: pd.DataFrame
    report: dict


def _has_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def source_files(name: str, source: SourceConfig | LookupConfig, *, setting: str | None = None) -> list[Path]:
    """The files of a source (or of one of its `lookup` tables, whose key is `setting`): the path itself, or the
    sorted matches of a glob."""
    text = str(source.path)
    setting = setting or f"sources.{name}.path"
    if _has_glob(text):
        files = sorted(Path(match) for match in glob.glob(text) if Path(match).is_file())
        if not files:
            raise IngestError(
                f"source {name}: no file matches {text}; fix {setting} "
                "(relative paths resolve against the config file's folder)"
            )
        check_readable(name, files)
        return files
    path = Path(text)
    if path.is_dir():
        raise IngestError(
            f"source {name}: {text} is a folder, not a file; point {setting} at a file, "
            f"or at a glob such as {path / '*.csv'}"
        )
    if not path.is_file():
        raise IngestError(
            f"source {name}: file not found: {text}; fix {setting} "
            "(relative paths resolve against the config file's folder)"
        )
    check_readable(name, [path])
    return [path]


def check_readable(name: str, files: list[Path]) -> None:
    """Raise IngestError naming the first file the process may not read."""
    for path in files:
        if not os.access(path, os.R_OK):
            raise IngestError(_permission_message(name, path))


def _permission_message(name: str, path: Path) -> str:
    return (
        f"source {name}: permission denied reading {path}; make the file readable for this user "
        f"(e.g. chmod a+r), or copy it somewhere readable and fix sources.{name}.path"
    )


def file_format(path: Path, source: SourceConfig) -> str:
    """'csv', 'parquet', 'excel' or 'json': the source's `format`, or with 'auto' the file's suffix (csv by default)."""
    if source.format != "auto":
        return source.format
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "json"
    return "parquet" if suffix in PARQUET_SUFFIXES else "excel" if suffix in EXCEL_SUFFIXES else "csv"


def _first_bad_byte(path: Path, encoding: str) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte that does not decode, or None. Lines end in LF, CRLF or a lone CR (a
    classic Mac export's line ends)."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        return before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1, exc.start
    return None


# Single-byte code pages an export may be written in, most common first (a tie goes to the first).
CODE_PAGES = ("cp1252", "cp437", "cp850", "mac_roman", "iso8859_2")
ENCODING_SAMPLE = 1 << 20  # bytes read around the first undecodable one to guess its code page


def _misread_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the first piece of a cell (`TEXT_PIECE`) of `text` holding a capital or control character
    right after a lowercase ASCII letter (`letter_evidence` counts them against a decoding), or None."""
    wrong = "".join(re.escape(c) for c in sorted(set(re.findall("[^\x00-\x7f]", text)))
                    if c.isupper() or unicodedata.category(c) == "Cc")
    found = re.search(f"{TEXT_PIECE}[a-z][{wrong}]{TEXT_PIECE}", text) if wrong else None
    return (found.start(), min(found.end(), found.start() + 40)) if found else None


def letter_evidence(text: str) -> tuple[int, str | None]:
    """(how plausibly `text` was decoded, an example word): the non-ASCII characters that touch a lowercase ASCII
    letter and are lowercase letters themselves ('ä' in 'Häberlin') count for it; those right after a lowercase letter
    that are capitals or control characters count against it (Mac Roman's 'ä' and no-break space read by cp1252 as
    'HŠberlin' and 'ConferenceÊphone', by latin-1 as invisible controls). The example: the first word with a letter
    counted for it. Each distinct character is classified once (a code page has at most 128 beyond ASCII)."""
    distinct = set(re.findall("[^\x00-\x7f]", text))
    lower = "".join(re.escape(c) for c in sorted(distinct) if c.islower())
    wrong = "".join(re.escape(c) for c in sorted(distinct) if c.isupper() or unicodedata.category(c) == "Cc")
    good = len(re.findall(f"(?<=[a-z])[{lower}]|[{lower}](?=[a-z])", text)) if lower else 0
    bad = len(re.findall(f"(?<=[a-z])[{wrong}]", text)) if wrong else 0
    example = re.search(f"[^\\W\\d_]*(?:[a-z][{lower}]|[{lower}][a-z])[^\\W\\d_]*", text) if lower else None
    return good - bad, example[0] if example else None


def likely_code_page(data: bytes) -> tuple[str, str] | None:
    """(code page, an example word) of the CODE_PAGES under which `data` reads most plausibly (`letter_evidence`:
    Berguvsv\x84gen is 'Berguvsvägen' in cp437, 'Berguvsv„gen' in cp1252; Mac Roman's 'Französisch' is
    'Franzšsisch' in cp1252 but its no-break spaces 'ConferenceÊphone'), or None when none reads a letter so."""
    best, best_score = None, 0
    for code_page in CODE_PAGES:
        score, example = letter_evidence(data.decode(code_page, errors="replace"))
        if score > best_score and example is not None:
            best, best_score = (code_page, example), score
    return best


MISREAD_SAMPLE = 1 << 18  # bytes of a file's start looked at for text its read.encoding misreads
TEXT_PIECE = r"[^\s,;|\"']*"  # a piece of a CSV cell around a character shown as an example


def _utf8_prefix(data: bytes) -> str | None:
    """`data` decoded as UTF-8 (a character cut at the end of the sample left out), or None when it is not UTF-8."""
    for cut in range(4):
        try:
            return data[:len(data) - cut].decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 3:
                return None
    return None


def misread_text_note(data: bytes, encoding: str, *, label: str, setting: str) -> str | None:
    """A note when `data` (a CSV file's first bytes) decodes without an error under the configured single-byte
    `encoding` but is misread by it: valid UTF-8 with multi-byte characters ('Zoë' read by cp1252 as 'ZoÃ«'), or text
    that counts against `encoding` (`letter_evidence`: capitals or control characters right after a lowercase letter)
    while another code page reads it as letters (`likely_code_page`: a Mac Roman 'Französisch' read by latin-1 with an
    invisible control character, 'HŠberlin' by cp1252). None for a UTF-8 `encoding` or clean text."""
    if codecs.lookup(encoding).name.startswith("utf"):
        return None
    utf8 = _utf8_prefix(data)
    if utf8 is not None and not utf8.isascii():
        word = re.search(TEXT_PIECE + "[^\\x00-\\x7f]" + TEXT_PIECE, utf8)[0][:40]
        return (f"{label} is valid UTF-8 (e.g. {word!r}) but {setting}.read.encoding: {encoding} reads it as "
                f"{word.encode('utf-8').decode(encoding, errors='replace')!r}: remove the setting (UTF-8 is the "
                "default) unless that is how its text should read")
    text = data.decode(encoding, errors="replace")
    mine, _ = letter_evidence(text)
    guess = likely_code_page(data) if mine < 0 else None  # capitals or controls inside words: misread
    span = _misread_span(text)
    if guess is None or span is None or codecs.lookup(guess[0]).name == codecs.lookup(encoding).name:
        return None
    start, end = span  # a single-byte code page reads one character per byte: the same span in both readings
    return (f"{label} may be in {guess[0]}, not {encoding}: read as {encoding}, its text has capitals or control "
            f"characters inside words (e.g. {text[start:end]!r}); {guess[0]} reads that as "
            f"{data[start:end].decode(guess[0], errors='replace')!r}, and words such as {guess[1]!r}: set "
            f"{setting}.read.encoding: {guess[0]} if that is how it should read")


def _encoding_error(name: str, path: Path, encoding: str) -> IngestError:
    where = _first_bad_byte(path, encoding)
    location = f" (line {where[0]}, byte {where[1]})" if where else ""
    if where and codecs.lookup(encoding).name != "utf-8" and _first_bad_byte(path, "utf-8") is None:
        return IngestError(f"source {name}: {path} is not valid {encoding}{location}, but it is valid UTF-8 "
                           f"throughout: remove sources.{name}.read.encoding (UTF-8 is the default) or set it to utf-8")
    guess = None
    if where:
        with path.open("rb") as file:
            file.seek(max(0, where[1] - ENCODING_SAMPLE // 8))
            guess = likely_code_page(file.read(ENCODING_SAMPLE))
    hint = (f"{guess[0]}: read so, its bytes give words such as {guess[1]!r}" if guess
            else "e.g. latin-1 or cp1252")
    return IngestError(
        f"source {name}: {path} is not valid {encoding}{location}; re-export it as UTF-8, or set "
        f"sources.{name}.read.encoding to the file's encoding ({hint})"
    )


def _header_names(path: Path, read: ReadOptions) -> list[str] | None:
    """The column names of a CSV file as written (the header line, or `read.column_names`); None
    when the header line cannot be read (undecodable, broken quoting)."""
    if not read.header:
        return list(read.column_names or [])
    try:
        if len(read.sep) == 1:
            return next(iter(_csv_records(path, read, count=1)), [])
        engine = "c" if read.sep == r"\s+" else "python"
        first = pd.read_csv(path, sep=read.sep, engine=engine, header=None, nrows=1, dtype=str, skiprows=read.skip_rows,
                            encoding=read.encoding, keep_default_na=False, index_col=False, compression=None)
        return [str(value) for value in first.iloc[0]] if len(first) else []
    except (UnicodeError, LookupError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None


def _csv_records(path: Path, read: ReadOptions, *, count: int) -> list[list[str]]:
    """The first `count` records of a CSV file below its `read.skip_rows` lines (one-character separator)."""
    with open(path, encoding=read.encoding, newline="") as handle:
        return list(itertools.islice(csv.reader(handle, delimiter=read.sep), read.skip_rows, read.skip_rows + count))


def _clean_name(name: object) -> str:
    """A column name as the pipeline uses it: surrounding whitespace and a UTF-8 byte-order mark removed."""
    return str(name).lstrip("\ufeff").strip()


def check_unique_columns(name: str, path: Path, columns: list[str], *, header_line: bool = False) -> None:
    """Raise IngestError naming the file and every column name it holds more than once. In a CSV
    `header_line`, blank names (trailing separators of a spreadsheet export) do not count: the reader
    names them apart ('Unnamed: 4')."""
    names = [name for name in map(_clean_name, columns) if name or not header_line]
    _fail_on_repeats(names, lambda twice: (
        f"source {name}: {path} has column(s) {', '.join(map(repr, twice))} more than once; "
        "drop or rename the copies in the export (which one holds the right values cannot be told)"
    ))


def _fail_on_repeats(names: list[str], message: Callable[[list[str]], str]) -> None:
    """Raise IngestError(message(the names held more than once, sorted)) when `names` holds any twice."""
    index = pd.Index(names)
    if index.has_duplicates:
        raise IngestError(message(sorted(set(index[index.duplicated()]))))


def _check_first_line(name: str, path: Path) -> bool:
    """Raise IngestError for an empty file or a first line longer than MAX_HEADER_BYTES;
    return True when the whole file is one line without a line break (a header-only file)."""
    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER_BYTES + 1)
    if not head.strip():
        raise IngestError(
            f"source {name}: {path} is empty (not even a header row); export it with a header row "
            "(a header-only file means a source without rows)"
        )
    if b"\n" in head or b"\r" in head:
        return False
    if len(head) > MAX_HEADER_BYTES:
        raise IngestError(
            f"source {name}: {path} starts with a line of more than {MAX_HEADER_BYTES // 2**20} MiB with no line "
            "break, so it has no header row; check that it is a CSV file whose lines end in \\n or \\r\\n"
        )
    return True


def check_csv_text(name: str, path: Path, read: ReadOptions) -> None:
    """Raise IngestError when the file read as CSV is another format (OTHER_FORMAT_SIGNATURES, JSON records) or
    UTF-16/32 text while `read.encoding` is another (a byte-order mark, or zero bytes between the letters)."""
    with open(path, "rb") as handle:
        head = handle.read(256)
    wide = codecs.lookup(read.encoding).name.startswith(("utf-16", "utf-32"))
    found = next(((what, how) for signature, what, how in OTHER_FORMAT_SIGNATURES
                  if head.startswith(signature) and not (wide and "byte-order mark" in what)), None)
    if found is None and JSON_START.match(head):
        found = ("JSON", "set sources.{name}.format: json")
    if found is None and not wide and head.count(0) * 3 > len(head):
        order = "le" if head[1::2].count(0) >= head[0::2].count(0) else "be"  # the zero after each letter, or before
        found = ("UTF-16 text without a byte-order mark (zero bytes between its letters)",
                 f"set sources.{{name}}.read.encoding: utf-16-{order}")
    if found is not None:
        what, how = found
        raise IngestError(f"source {name}: {path} is {what}, not CSV text; {how.format(name=name)}")


def _null_values(read: ReadOptions) -> list[str]:
    """Cell values read as missing: `read.na_values`, and always the empty cell."""
    return sorted({"", *read.na_values})


# A file is refused, not read with some lines set aside, when its lines with the wrong number of fields are more than
# this share of its data lines (a line break inside a set-aside record counts as a line), or are all of its first
# FIRST_DATA_LINES: then the separator, the header or the format is wrong, not a few lines.
MOST_LINES_WRONG = 0.5
FIRST_DATA_LINES = 5
LINES_NAMED = 10  # lines named in the note on set-aside lines
SLICED_LINES = 1_000  # up to this many lines set aside, the rows around them keep their buffers (`_with_rows_of_nulls`)
# What the python reader's on_bad_lines callback puts in the first cell of a line it sets aside: the row keeps its
# place (so the rows after it keep their numbers) and is found again after the read.
SET_ASIDE_MARK = "\x00set aside\x00"


def no_unread_lines() -> pd.DataFrame:
    """The lines of a file set aside for their number of fields (`_read_csv`), none: row (0-based, in the file's
    frame, whose cells are empty there), line (the file's 1-based line number), fields, text (the line as written)."""
    return pd.DataFrame({"row": pd.Series([], dtype=np.int64), "line": pd.Series([], dtype=np.int64),
                         "fields": pd.Series([], dtype=np.int64), "text": pd.Series([], dtype="str")})


def _arrow_names(names: list[str]) -> list[str]:
    """The header's names as pyarrow reads them (it drops a UTF-8 byte-order mark)."""
    return [names[0].removeprefix("\ufeff"), *names[1:]]


def _read_csv_with_arrow(
    path: Path, read: ReadOptions, names: list[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Every column as text (str dtype), null tokens null, read by pyarrow's multithreaded reader
    with the column types given up front (no type inference, no cast afterwards); blank header names are named as
    pandas names them ('Unnamed: 4'). With it, the lines set aside for their number of fields (`no_unread_lines`):
    rows of empty cells in the frame.

    None when this path does not apply (separator longer than one character, no header) or the
    file does not read cleanly: the caller then reads it with pandas, which raises the usual errors.
    """
    if len(read.sep) != 1 or not names:
        return None
    columns = _arrow_names(names)
    unread = no_unread_lines()
    try:
        try:
            table = _arrow_csv_table(path, read, columns, newlines_in_values=False)
        except pa.ArrowInvalid:
            # a quoted line break in a cell (a ticket's description) where a block of the fast chunker ends
            # puts the parser out of step ('out of sync', or 'Expected 5 columns, got 1'): read again with the
            # chunker that honours quotes (a file that is really broken fails again)
            table = _arrow_csv_table(path, read, columns, newlines_in_values=True)
    except pa.ArrowInvalid:
        try:  # lines with another number of fields than the header: read once more, setting them aside
            table, unread = _arrow_csv_setting_aside(path, read, columns)
        except (pa.ArrowInvalid, UnicodeError, LookupError, OSError):
            return None
    except (UnicodeError, LookupError, OSError):
        return None
    if table.column_names != columns or any(column.type != pa.large_string() for column in table.columns):
        return None
    table = table.rename_columns([name or f"Unnamed: {position}" for position, name in enumerate(names)])
    text = pd.StringDtype("pyarrow", na_value=np.nan)  # the "str" dtype, sharing Arrow's buffers
    return table.to_pandas(types_mapper=lambda arrow_type: text if arrow_type == pa.large_string() else None), unread


def _arrow_csv_table(path: Path, read: ReadOptions, names: list[str], *, newlines_in_values: bool,
                     invalid_row_handler: Callable | None = None) -> pa.Table:
    """The file read by pyarrow, every column of `names` as text; `newlines_in_values` lets a quoted cell hold line
    breaks wherever a block of the file ends (slower chunking, so only when the fast one gets out of step). With an
    `invalid_row_handler`, one thread reads (pyarrow numbers the rows it passes to the handler only then)."""
    with pa.OSFile(str(path)) as handle:  # the bytes as they are: given a path, Arrow guesses a packing by its suffix
        return pa_csv.read_csv(
            handle,
            read_options=pa_csv.ReadOptions(encoding=read.encoding, column_names=None if read.header else names,
                                            skip_rows=read.skip_rows, use_threads=invalid_row_handler is None),
            parse_options=pa_csv.ParseOptions(delimiter=read.sep, newlines_in_values=newlines_in_values,
                                              invalid_row_handler=invalid_row_handler),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.large_string() for name in names},
                null_values=_null_values(read),
                strings_can_be_null=True,
            ),
        )


def _arrow_csv_setting_aside(path: Path, read: ReadOptions, names: list[str]) -> tuple[pa.Table, pd.DataFrame]:
    """The file read by pyarrow as `_arrow_csv_table` does, each line with another number of fields than `names` set
    aside: a row of nulls in its place in the table, and a row of `no_unread_lines` (none: ArrowInvalid)."""
    set_aside = []

    def set_line_aside(row: pa_csv.InvalidRow) -> str:  # called for the lines set aside only, never for good ones
        set_aside.append((row.number, row.actual_columns, row.text))
        return "skip"

    table = _arrow_csv_table(path, read, names, newlines_in_values=True, invalid_row_handler=set_line_aside)
    if not set_aside or any(number is None for number, _, _ in set_aside):
        raise pa.ArrowInvalid("no line set aside, or one without its number")
    numbers, fields, texts = zip(*set_aside)
    # pyarrow's `number` counts records from the file's first line: the skipped lines (blank ones too), the header,
    # then the records (a record over several lines once, blank lines not at all), so it places each line among the
    # rows as the frame numbers them; the file's line number is found from the text (`_file_lines`).
    rows = np.asarray(numbers, dtype=np.int64) - read.skip_rows - int(read.header) - 1
    unread = pd.DataFrame({"row": rows, "line": _file_lines(path, read.encoding, texts, fallback=numbers),
                           "fields": np.asarray(fields, dtype=np.int64), "text": pd.Series(texts, dtype="str")})
    return _with_rows_of_nulls(table, rows), unread


def _with_rows_of_nulls(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """`table` with a row of nulls inserted at each of `rows` (positions in the result, ascending). Up to
    SLICED_LINES rows, as slices of `table` around them (its buffers shared: a multi-GB export with a few broken
    lines is not copied); beyond, taken anew (many slices would slow every later step on the columns)."""
    if len(rows) > SLICED_LINES:
        empty = np.zeros(table.num_rows + len(rows), dtype=bool)
        empty[rows] = True
        return table.take(pa.array(np.cumsum(~empty) - 1, mask=empty))  # each kept row's position in `table`
    bounds = np.r_[0, rows - np.arange(len(rows)), table.num_rows]  # the rows of `table` each row of nulls precedes
    nulls = pa.Table.from_arrays([pa.nulls(1, type=column.type) for column in table.schema], schema=table.schema)
    pieces = [table.slice(start, end - start) for start, end in zip(bounds[:-1], bounds[1:])]
    return pa.concat_tables([pieces[0], *itertools.chain.from_iterable((nulls, piece) for piece in pieces[1:])])


# The bytes the searches for set-aside lines hold at a time (`_file_lines`, `_data_lines`): a multi-GB export with a
# few broken lines is scanned, never held whole beside the frame read from it.
SCAN_CHUNK = 1 << 24


def _file_chunks(path: Path, encoding: str | None) -> Iterator[bytes]:
    """The file's bytes in chunks of SCAN_CHUNK; as UTF-8 when in another `encoding` (None: as they are)."""
    utf8 = encoding is None or codecs.lookup(encoding).name == "utf-8"
    decoder = None if utf8 else codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as handle:
        while chunk := handle.read(SCAN_CHUNK):
            yield chunk if decoder is None else decoder.decode(chunk).encode("utf-8")
    if decoder is not None and (tail := decoder.decode(b"", final=True)):
        yield tail.encode("utf-8")


def _file_holds(path: Path, sought: bytes) -> bool:
    """Whether the file's bytes hold `sought` (a single byte, or a sequence no chunk boundary splits in practice)."""
    return any(sought in chunk for chunk in _file_chunks(path, None))


def _file_lines(path: Path, encoding: str, texts: Iterable[str], *, fallback: Iterable[int]) -> np.ndarray:
    """The 1-based line of the file on which each of `texts` (lines pyarrow set aside, as UTF-8 text without their
    line break, in file order) starts: the next line(s) after the previous one found that are exactly it. Where none
    is, the `fallback` number (pyarrow's record number: the line unless blank lines or quoted line breaks come before),
    and the search for the next goes on after the previous one found."""
    wanted = [text.encode("utf-8") for text in texts]
    lines = np.asarray(list(fallback), dtype=np.int64)
    start, pending = (0, 1), list(range(len(wanted)))
    while pending:  # a text that is not found scans the file once more for the next (rare: a line pyarrow re-encoded)
        found = _lines_starting(path, encoding, [wanted[index] for index in pending], start=start)
        for index, (line, after) in zip(pending, found):
            lines[index], start = line, after
        pending = pending[len(found) + 1:]
    return lines


def _lines_starting(
    path: Path, encoding: str, wanted: list[bytes], *, start: tuple[int, int]
) -> list[tuple[int, tuple[int, int]]]:
    """For the first of `wanted` (whole lines, in file order) that are found one after the other from `start` (a
    line's UTF-8 offset and number): (its line number, (the offset and number of the line after it)). The file is
    read in chunks: what is searched is dropped, up to the start of the line that may hold the next text."""
    found: list[tuple[int, tuple[int, int]]] = []
    position, line = start  # where the search for the next text starts: a line's start, and its number
    buffer, base = b"", 0  # the bytes held, from the file's offset `base`
    for chunk in itertools.chain(_file_chunks(path, encoding), [None]):
        if chunk is not None and base + len(buffer) + len(chunk) <= position:  # a rescan, before where it resumes
            base += len(chunk)
            continue
        buffer += chunk or b""
        while len(found) < len(wanted):
            text = wanted[len(found)]
            at = _whole_line(buffer, text, position - base, complete=chunk is None)
            if at is None:
                break
            line += buffer.count(b"\n", position - base, at)
            newline = buffer.find(b"\n", at + len(text))
            after = len(buffer) if newline < 0 else newline + 1
            found.append((line, (base + after, line + text.count(b"\n") + int(newline >= 0))))
            position, line = found[-1][1]
        if chunk is None or len(found) == len(wanted):
            break
        reach = max(len(wanted[len(found)]) + 2, 1)  # the next text with '\r\n' may end in the bytes to come
        cut = buffer.rfind(b"\n", position - base, max(position - base, len(buffer) - reach)) + 1
        if cut > position - base:
            line += buffer.count(b"\n", position - base, cut)
            position = base + cut
        buffer, base = buffer[position - base:], position
    return found


def _whole_line(buffer: bytes, text: bytes, start: int, *, complete: bool) -> int | None:
    """Where in `buffer`, from `start` (a line's start), a line that is exactly `text` starts (a '\r' before its
    line break aside); None when there is none, or the first may go on in bytes not yet read (not `complete`)."""
    at = buffer.find(text, start)
    while at >= 0:
        end = at + len(text)
        rest = buffer[end:end + 2]
        if not complete and len(rest) < 2 and rest != b"\n":
            return None  # its line may go on: wait for the next chunk
        if (at == start or buffer[at - 1:at] == b"\n") and (rest[:1] == b"\n" or rest in (b"", b"\r", b"\r\n")):
            return at
        at = buffer.find(text, at + 1)
    return None


def _read_csv_with_pandas(
    name: str, path: Path, source: SourceConfig, *, one_line: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file read by pandas (a separator of several characters, a whitespace run, a file without a line break or
    a header the Arrow reader does not take): every column as text, and the lines with more fields than the header
    set aside (`no_unread_lines`; a shorter line is read with its last cells empty, as pandas reads it: with a regular
    expression separator a missing cell cannot be told from an empty one). Reading errors as IngestError."""
    read = source.read
    options = {
        "sep": read.sep,
        "encoding": read.encoding,
        "dtype": str,
        "keep_default_na": False,
        "na_values": _null_values(read),
        "header": 0 if read.header else None,
        "names": None if read.header else read.column_names,
        "skiprows": read.skip_rows,
        "compression": None,  # the bytes as they are: given a path, pandas guesses a packing by its suffix
    }
    # pyarrow's reader is ~10x faster but takes only a one-character separator and a file with a line
    # break; the C reader handles whitespace runs; any other regular expression needs the python reader.
    single = len(read.sep) == 1
    engine = "pyarrow" if single and not one_line else "c" if single or read.sep == r"\s+" else "python"
    if engine != "pyarrow":
        options["index_col"] = False  # a line with an extra field must not become an index
    try:
        if engine == "python" and (line := _first_open_quote(path, read)) is not None:
            raise IngestError(
                f"source {name}: {path} cannot be read with sep={read.sep!r}: line {line:,} opens a quote it does "
                "not close (a cell holding a line break?), and a separator of several characters or a regular "
                "expression is read without regard to quotes (such a cell would become two rows); export with a "
                f"one-character separator (sources.{name}.read.sep) or without line breaks in cells")
        try:
            frame, marked = pd.read_csv(path, engine=engine, **options), []
        except pd.errors.ParserError as exc:
            if engine == "pyarrow" or not re.search(r"Expected \d+ fields", str(exc)) or (
                    engine == "c" and _file_holds(path, b'"')):  # the python reader splits a quoted cell apart
                raise
            # lines with more fields than the header: the python reader keeps a marked row in the place of each
            marked = []

            def mark(fields: list[str]) -> list[str]:  # called for the lines set aside only, never for good ones
                marked.append(fields)
                return [SET_ASIDE_MARK]

            frame = pd.read_csv(path, engine="python", on_bad_lines=mark, **options)
        if engine == "pyarrow":
            return frame, no_unread_lines()
        return _pandas_lines_set_aside(path, read, frame, marked=marked)
    except pd.errors.EmptyDataError:
        raise IngestError(
            f"source {name}: {path} is empty (not even a header row); export it with a header row "
            "(a header-only file means a source without rows)"
        ) from None
    except UnicodeDecodeError:
        raise _encoding_error(name, path, read.encoding) from None
    except (pd.errors.ParserError, pa.ArrowInvalid, ValueError) as exc:
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message or "decode" in message:
            raise _encoding_error(name, path, read.encoding) from None
        one_line = message.strip().replace("\r", "\\r").replace("\n", "\\n")  # quoted line breaks as text
        raise IngestError(
            f"source {name}: {path} cannot be parsed as CSV with sep={read.sep!r}: {one_line}"
            + _reading_hint(name, path, source, "that line")
        ) from None


def _read_csv(name: str, path: Path, source: SourceConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All columns as strings; empty cells and `read.na_values` are nulls ('NA' stays the text 'NA'). With it, the
    lines set aside for their number of fields (`no_unread_lines`), unless they are most of the file
    (`_check_unread_lines`)."""
    read = source.read
    one_line = _check_first_line(name, path)
    check_csv_text(name, path, read)
    names = _header_names(path, read)
    if names is not None:
        check_unique_columns(name, path, names, header_line=True)
    fast = None if one_line else _read_csv_with_arrow(path, read, names)  # Arrow needs a line break
    frame, unread = fast if fast is not None else _read_csv_with_pandas(name, path, source, one_line=one_line)
    _check_unread_lines(name, path, source, frame, unread)
    return frame, unread


def _reading_hint(name: str, path: Path, source: SourceConfig, lines: str) -> str:
    """The end of a message on a file that does not read as CSV: where the header row seems to be, or the settings to
    check (`lines`: which lines' quoting)."""
    return (_header_line_hint(name, path, source, list(contract(name).required))
            or f"; check sources.{name}.read.sep and the quoting of {lines}")


def _pandas_lines_set_aside(
    path: Path, read: ReadOptions, frame: pd.DataFrame, *, marked: list[list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`frame` (read by pandas' C or python reader) with the cells emptied of its rows read from lines with another
    number of fields than its columns, and those lines (`no_unread_lines`): the rows the python reader marked with
    SET_ASIDE_MARK (more fields; `marked`: their fields, in order), and the rows whose last cell is empty because the
    line has fewer fields (pandas fills them in; a line holding a quote is left as pandas reads it, as its quoting
    may hold separators). Line
    numbers and texts are the file's non-blank lines after the header at those rows. Unchanged, without reading the
    file again, when no row is marked or ends empty, or when the rows are not the file's non-blank lines (a quoted
    line break: the C reader's); ParserError then if a row is marked."""
    width = len(frame.columns)
    long_rows = (frame.iloc[:, 0].astype("str").eq(SET_ASIDE_MARK).fillna(False).to_numpy(dtype=bool) if marked
                 else np.zeros(len(frame), dtype=bool))
    ending_empty = (frame.iloc[:, -1].isna().to_numpy(dtype=bool) & ~long_rows if width > 1
                    else np.zeros(len(frame), dtype=bool))  # (one column: no line is short of a field)
    if not long_rows.any() and not ending_empty.any():
        return frame, no_unread_lines()
    fields = np.zeros(len(frame), dtype=np.int64)
    fields[long_rows] = [len(line) for line in marked]  # (the lines set aside only)
    wanted = np.flatnonzero(long_rows | ending_empty)
    count, numbers, found = _data_lines(path, read, wanted)
    if count != len(frame):
        if marked:
            raise pd.errors.ParserError(f"{len(marked):,} lines have more fields than the header, and the rows read "
                                        "are not the file's lines, so those lines cannot be named")
        return frame, no_unread_lines()
    line_of, text_of = np.zeros(len(frame), dtype=np.int64), np.zeros(len(frame), dtype=np.int64)
    line_of[wanted], text_of[wanted] = numbers, np.arange(len(wanted))
    candidates = np.flatnonzero(ending_empty)
    texts = found.take(pa.array(text_of[candidates]))
    pattern = read.sep if len(read.sep) > 1 else re.escape(read.sep)
    try:
        counts = pc.list_value_length(pc.split_pattern_regex(pc.utf8_trim_whitespace(texts), pattern=pattern))
        counts = counts.to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # a separator Arrow's regular expressions do not take (a look-behind): none is told short
        counts = np.full(len(texts), width)
    short = (counts < width) & ~pc.match_substring(texts, '"').to_numpy(zero_copy_only=False)
    fields[candidates[short]] = counts[short]
    rows = np.flatnonzero(long_rows | (fields > 0))
    if not len(rows):
        return frame, no_unread_lines()
    emptied = frame.copy()
    emptied.iloc[rows] = np.nan
    unread = pd.DataFrame({"row": rows.astype(np.int64), "line": line_of[rows] + 1, "fields": fields[rows],
                           "text": pd.Series(found.take(pa.array(text_of[rows])).to_pylist(), dtype="str")})
    return emptied, unread


def _line_chunks(path: Path, encoding: str) -> Iterator[tuple[int, pa.Array]]:
    """The file's lines in chunks (SCAN_CHUNK bytes, each split by Arrow): (the 0-based number of the chunk's first
    line, its lines without their line breaks, a '\r' before one dropped)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    first, carry = 0, ""
    for chunk in itertools.chain(_file_chunks(path, None), [None]):
        text = carry + (decoder.decode(chunk) if chunk is not None else decoder.decode(b"", final=True))
        end = len(text) if chunk is None else text.rfind("\n") + 1
        text, carry = text[:end], text[end:]
        if not text:
            continue
        lines = pc.utf8_rtrim(pc.list_flatten(pc.split_pattern(pa.array([text.removesuffix("\n")]), "\n")),
                              characters="\r")
        yield first, lines
        first += len(lines)


def _data_lines(path: Path, read: ReadOptions, rows: np.ndarray) -> tuple[int, np.ndarray, pa.Array]:
    """The file's data lines as pandas numbers its rows when no quoted line break spans lines (the non-blank lines
    after `read.skip_rows` and the header): how many, and of those at `rows` (ascending) the 0-based line number and
    the text (`_line_chunks`)."""
    numbers, texts, count, header_left = [], [], 0, int(read.header)
    for first, lines in _line_chunks(path, read.encoding):
        present = np.flatnonzero(pc.utf8_length(pc.utf8_trim_whitespace(lines)).to_numpy(zero_copy_only=False) > 0)
        present = present[present + first >= read.skip_rows]  # pandas skips blank lines, and these first
        present, header_left = present[min(header_left, len(present)):], header_left - min(header_left, len(present))
        taken = rows[np.searchsorted(rows, count):np.searchsorted(rows, count + len(present))] - count
        numbers.append(present[taken] + first)
        texts.append(lines.take(pa.array(present[taken])).cast(pa.string()))
        count += len(present)
    found = pa.concat_arrays([pa.array([], type=pa.string()), *texts])
    return count, np.concatenate([np.zeros(0, dtype=np.int64), *numbers]).astype(np.int64), found


def _first_open_quote(path: Path, read: ReadOptions) -> int | None:
    """The 1-based number of the first line with an odd number of '"' and a cell that starts with one (a quoted cell
    going on over the line break, or an unclosed quote; an inch sign inside a cell opens none), or None
    (`_line_chunks`). `read.sep` is a regular expression (as pandas reads a separator of several characters)."""
    for first, lines in _line_chunks(path, read.encoding):
        odd = pc.count_substring(lines, '"').to_numpy(zero_copy_only=False) % 2 == 1
        if not odd.any():
            continue
        try:
            opens = pc.match_substring_regex(lines, f'(?:^|{read.sep})"').to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # a separator Arrow's regular expressions do not take (a look-behind): any odd line
            opens = np.ones(len(lines), dtype=bool)
        if (found := np.flatnonzero(odd & opens)).size:
            return first + int(found[0]) + 1
    return None


def _check_unread_lines(name: str, path: Path, source: SourceConfig, frame: pd.DataFrame, unread: pd.DataFrame) -> None:
    """Raise IngestError when the lines set aside for their number of fields (`unread`, of `frame`'s rows) are more
    than MOST_LINES_WRONG of the data lines, or all of the first FIRST_DATA_LINES: the file does not read as CSV with
    these settings (a wrong separator, a header of another width, another format), which naming the lines would hide."""
    if unread.empty:
        return
    spans = unread["text"].str.count("\n").to_numpy(dtype=np.int64) + 1  # an unclosed quote takes the lines after it
    lines = len(frame) - len(unread) + int(spans.sum())
    first = min(FIRST_DATA_LINES, len(frame))
    if spans.sum() <= MOST_LINES_WRONG * lines and not np.isin(np.arange(first), unread["row"]).all():
        return
    expected = len(frame.columns)
    example = unread.iloc[0]
    raise IngestError(
        f"source {name}: {path} cannot be parsed as CSV with sep={source.read.sep!r}: {len(unread):,} of its "
        f"{len(frame):,} data rows have another number of fields than the {expected} of "
        f"{'the header' if source.read.header else 'read.column_names'} (e.g. line {example['line']:,}: "
        f"{example['fields']} fields, {_field_count_hints(unread.head(1), columns=expected)[0]})"
        + _reading_hint(name, path, source, "those lines")
    )


def _field_count_hints(unread: pd.DataFrame, *, columns: int) -> np.ndarray:
    """Why each line set aside (`no_unread_lines`) may have another number of fields than `columns`."""
    quotes = unread["text"].str.count('"').to_numpy(dtype=np.int64)
    more = unread["fields"].to_numpy(dtype=np.int64) > columns
    return np.where(quotes % 2 == 1, "an unclosed quote?",
                    np.where(more, "a separator inside an unquoted cell?", "a line cut short, or a separator missing?"))


def unread_line_kinds(unread: pd.DataFrame, *, columns: int, header: bool) -> pd.Series:
    """What each line set aside for its number of fields (`no_unread_lines`) is, without its number and text (the
    report's top reasons count them by it): 'a line with another number of fields than the header (a separator
    inside an unquoted cell?), so its cells are left empty'."""
    why = pd.Series(_field_count_hints(unread, columns=columns), index=unread.index)
    where = "the header" if header else "read.column_names"
    return (f"a line with another number of fields than {where} (" + why + "), so its cells are left empty (each "
            "row's reason gives the line)").astype("str")


def unread_line_reasons(unread: pd.DataFrame, *, columns: int, header: bool) -> pd.Series:
    """The quarantine reason of each line set aside for its number of fields (`no_unread_lines`), with the line as
    written: 'line 1,234 has 9 fields where the header has 8 (a separator inside an unquoted cell?): ...'."""
    why = _field_count_hints(unread, columns=columns)
    where = "the header has" if header else "read.column_names names"
    texts = unread["text"].map(repr)  # (one Python call per line set aside: they are few)
    return ("line " + unread["line"].map("{:,}".format) + " has " + unread["fields"].astype("str") + f" fields where "
            f"{where} {columns} (" + pd.Series(why, index=unread.index) + "), so its cells are left empty; "
            + "the line: " + texts).astype("str")


def _read_parquet(name: str, path: Path, read: ReadOptions) -> pd.DataFrame:
    """The file's typed columns; in text columns the null tokens (`read.na_values`) become nulls."""
    try:
        check_unique_columns(name, path, pq.read_schema(path).names)  # the reader refuses repeated names
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IngestError(f"source {name}: {path} is not a readable Parquet file: {first_line}; re-export it") from None
    return _with_null_tokens(table, read).to_pandas(types_mapper=_nullable_types)


INTEGER_TYPES = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32())


def _nullable_types(arrow_type: pa.DataType) -> Any:
    """pandas' nullable Int64 for Arrow integers (exact beside nulls: ids past 2**53 are not rounded) and nullable
    boolean for Arrow booleans (not Python objects beside nulls), else None."""
    if arrow_type == pa.bool_():
        return pd.BooleanDtype()
    return pd.Int64Dtype() if arrow_type in INTEGER_TYPES else None


def _with_null_tokens(table: pa.Table, read: ReadOptions) -> pa.Table:
    """`table` with the null tokens (`read.na_values`) of its text columns made nulls."""
    tokens = pa.array(_null_values(read), type=pa.large_string())
    for position, column in enumerate(table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            null = pc.is_in(column, value_set=tokens.cast(column.type))
            if pc.any(null).as_py():
                table = table.set_column(position, table.field(position), pc.if_else(null, None, column))
    return table


def _read_json(name: str, path: Path, read: ReadOptions) -> pd.DataFrame:
    """The rows of a JSON export: JSON lines (one object per line), an array of objects, or the array at
    `read.json_records` of one object. Nested objects become columns named by their path ('customer.email');
    an array inside a row (an order's line items) stays one column of JSON text. Text stays text (timestamps are
    parsed later, their offsets honoured); a field of numbers and text in different rows is text; numbers and
    booleans are typed, as in Parquet (integers beyond 64 bits as text: ids)."""
    text = _json_text(name, path, read)
    start = text.lstrip()[:1]
    if not start:
        raise IngestError(f"source {name}: {path} is empty (no JSON rows); export at least one row")
    try:
        if read.json_records is not None or start == "[":
            frame = pl.from_dicts(_json_records(name, path, text, read), infer_schema_length=None)
        else:
            frame = pl.read_ndjson(io.BytesIO(text.encode("utf-8")), infer_schema_length=None)
    except (pl.exceptions.PolarsError, ValueError, TypeError, OverflowError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = (_records_hint(name, text) if start == "{" and read.json_records is None else "") or (
            "; export one JSON object per line (JSON lines) or an array of objects")
        raise IngestError(f"source {name}: {path} is not readable as JSON rows: {first_line}{hint}") from None
    return _with_null_tokens(_json_columns(frame).to_arrow(), read).to_pandas(types_mapper=_nullable_types)


def _json_text(name: str, path: Path, read: ReadOptions) -> str:
    """The file's text in `read.encoding` (a UTF-8 byte-order mark dropped); IngestError naming the first bad byte."""
    encoding = "utf-8-sig" if read.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else read.encoding
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError:
        raise _encoding_error(name, path, read.encoding) from None


def _json_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested objects unnested into columns named by their path; arrays as JSON text; integers beyond 64 bits
    (and unsigned 64-bit ones) as text."""
    while any(isinstance(dtype, pl.Struct) for dtype in frame.dtypes):
        frame = frame.with_columns(
            pl.col(column).struct.rename_fields([f"{column}.{field_.name}" for field_ in dtype.fields])
            for column, dtype in frame.schema.items() if isinstance(dtype, pl.Struct)
        ).unnest([column for column, dtype in frame.schema.items() if isinstance(dtype, pl.Struct)])
    arrays = [column for column, dtype in frame.schema.items() if isinstance(dtype, pl.List | pl.Array)]
    wide = [column for column, dtype in frame.schema.items() if dtype in (pl.Int128, pl.UInt64, pl.UInt128)]
    return frame.with_columns(
        *(pl.struct(column).struct.json_encode().str.extract(r'^\{"(?:[^"\\]|\\.)*":(.*)\}$', 1).alias(column)
          for column in arrays),
        *(pl.col(column).cast(pl.String) for column in wide),
    )


def _json_records(name: str, path: Path, text: str, read: ReadOptions) -> list[dict]:
    """The objects of a JSON array file, or of the array at `read.json_records` (a dotted path) of one object."""
    records, where = _json_document(name, path, text), "the file"
    for key in read.json_records.split(".") if read.json_records else []:
        if not isinstance(records, dict) or key not in records:
            keys = ", ".join(map(repr, list(records)[:20])) if isinstance(records, dict) else type(records).__name__
            raise IngestError(f"source {name}: {path} has no {key!r} in {where} (there: {keys}); fix "
                              f"sources.{name}.read.json_records")
        records, where = records[key], repr(key)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise IngestError(f"source {name}: {path}: {where} is not an array of objects (one object per row); point "
                          f"sources.{name}.read.json_records at the array of rows")
    if not records:
        raise IngestError(f"source {name}: {path} holds no rows (an empty array), so no columns either; leave the "
                          "source out while it has none")
    return records


def _json_document(name: str, path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"source {name}: {path} is not valid JSON: {exc}; re-export it") from None
    except RecursionError:
        raise IngestError(f"source {name}: {path} nests its values too deeply to be read; re-export it") from None


def _records_hint(name: str, text: str) -> str:
    """For a file that is one object: where its array of rows seems to be (`read.json_records`); else ''."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return ""
    if not isinstance(document, dict):
        return ""
    arrays = [key for key, value in document.items() if isinstance(value, list) and value and isinstance(value[0], dict)]
    if not arrays:
        return ""
    return (f"; the file is one object whose rows seem to be under {arrays[0]!r}: set "
            f"sources.{name}.read.json_records: {arrays[0]}")


def _read_excel(name: str, path: Path, read: ReadOptions) -> list[tuple[str, pd.DataFrame]]:
    """(label, frame) per sheet read (`read.sheet`; label: the path and the sheet's name): every cell as text,
    as a CSV export of the sheet would hold it (dates as ISO 8601, numbers as written, 17850 for a whole
    number); empty cells and `read.na_values` are nulls."""
    try:
        workbook = pd.ExcelFile(path, engine="calamine")
    except Exception as exc:  # noqa: BLE001 - the reader raises its own error types for a file it cannot open
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IngestError(f"source {name}: {path} is not a readable Excel workbook: {first_line}; re-export it") from None
    with workbook:
        sheets = list(workbook.sheet_names)
        if read.sheet == ALL_SHEETS:
            chosen = sheets
        elif isinstance(read.sheet, int) and 0 <= read.sheet < len(sheets):
            chosen = [sheets[read.sheet]]
        elif isinstance(read.sheet, str) and read.sheet in sheets:
            chosen = [read.sheet]
        else:
            raise IngestError(
                f"source {name}: {path} has no sheet {read.sheet!r} (its sheets: {', '.join(map(repr, sheets))}); "
                f"set sources.{name}.read.sheet to a name, a 0-based position or {ALL_SHEETS!r} for all of them"
            )
        return [(f"{path} [sheet {sheet}]", _sheet_frame(name, path, workbook, sheet, read)) for sheet in chosen]


def _sheet_frame(name: str, path: Path, workbook: pd.ExcelFile, sheet: str, read: ReadOptions) -> pd.DataFrame:
    """One sheet's rows under its header row (or `read.column_names`), every cell as text."""
    cells = pd.read_excel(workbook, sheet_name=sheet, header=None, dtype=str, keep_default_na=False,
                          na_values=_null_values(read), skiprows=read.skip_rows)
    if read.header:
        if cells.empty:
            raise IngestError(
                f"source {name}: sheet {sheet!r} of {path} is empty (not even a header row); export it with a "
                "header row (a header-only sheet means a source without rows)"
            )
        names = [_clean_name("" if pd.isna(cell) else cell) for cell in cells.iloc[0]]
        check_unique_columns(name, path, names, header_line=True)
        rows = cells.iloc[1:]
    else:
        names, rows = list(read.column_names or []), cells
        if len(rows.columns) > len(names):
            raise IngestError(
                f"source {name}: sheet {sheet!r} of {path} has {len(rows.columns)} columns but "
                f"sources.{name}.read.column_names names {len(names)}; name every column"
            )
        rows = rows.reindex(columns=range(len(names)))
    rows = rows.set_axis(names, axis=1).reset_index(drop=True)
    return rows.astype("str")  # a column of empty cells is read as float NaN: text, as in a CSV


def _separator_hint(name: str, path: Path, frame: pd.DataFrame, source: SourceConfig) -> str:
    """A hint when the whole header landed in one column: the separator is probably wrong."""
    if source.read.header is False or len(frame.columns) != 1:
        return ""
    header = str(frame.columns[0])
    found = [sep for sep in COMMON_SEPARATORS if sep in header and sep != source.read.sep]
    if not found:
        return ""
    shown = "\\t" if found[0] == "\t" else found[0]
    return (
        f"; only one column was read ({header[:60]!r}): the file seems to use {shown!r} as separator, "
        f"set sources.{name}.read.sep: {shown!r}"
    )


HEADER_SEARCH_LINES = 30  # lines below the expected header row searched for the real one


def _header_line_hint(name: str, path: Path, source: SourceConfig, missing: list[str]) -> str:
    """A hint when a later line of a CSV file holds the missing columns (lines of a report's title above the
    header row): the read.skip_rows that reaches it; else ''."""
    read = source.read
    if not read.header or len(read.sep) != 1 or file_format(path, source) != "csv":
        return ""
    try:
        lines = _csv_records(path, read, count=HEADER_SEARCH_LINES)
    except (UnicodeError, LookupError, csv.Error):
        return ""
    for below, cells in enumerate(lines[1:], start=1):
        mapped = mapped_columns((_clean_name(cell) for cell in cells), source)
        if not set(missing) & set(_unmapped_required(name, mapped)):
            skip = read.skip_rows + below
            return f"; the header row seems to be line {skip + 1}: set sources.{name}.read.skip_rows: {skip}"
    return ""


def _unmapped_required(name: str, mapped: set[str]) -> list[str]:
    """The required contract columns of source `name` that the `mapped` column names lack (a transactions amount
    counts as there when quantity and unit_price are: it is derived from them)."""
    derivable = name == "transactions" and all(factor in mapped for factor in AMOUNT_FACTORS)
    return [column for column in contract(name).required
            if column not in mapped and not (column == "amount" and derivable)]


def mapped_columns(columns: Iterable[str], source: SourceConfig) -> set[str]:
    """The column names a file with `columns` has under the mapping: its columns through `rename`, the `constants`,
    and the `combine` targets whose file columns are all there."""
    columns = set(columns)
    combined = {target for target, parts in source.combine.items() if columns.issuperset(parts)}
    return {source.rename.get(column, column) for column in columns} | set(source.constants) | combined


def named_file_columns(source: SourceConfig) -> set[str]:
    """The file columns an export's mapping names: `rename` keys, the columns of `exclude`, `exclude_when_filled`,
    `returns_when`, `combine`, `after`, `currency_rates`, `refunds` (its `column`, `at` and `when`), `attributes`, and
    each `lookup`'s `by` (the columns a lookup takes are the export's like its own: named once one of these keys reads
    them)."""
    refunds = source.refunds
    return {*source.rename, *source.exclude, *source.exclude_when_filled, *source.returns_when,
            *(part for parts in source.combine.values() for part in parts),
            *(after.column for after in source.after.values()),
            *([source.currency_rates.column] if source.currency_rates else []),
            *([refunds.column, *([refunds.at] if refunds.at else []), *refunds.when] if refunds else []),
            *(attribute.column for attribute in source.attributes), *(table.by for table in source.lookup)}


def yaml_word(word: str) -> str:
    """`word` as a YAML flow key or list item: plain when it can be, else quoted."""
    return word if re.fullmatch(r"[A-Za-z_][\w .-]*", word) and word.lower() not in TRUE_WORDS + FALSE_WORDS + (
        "null", "none", "on", "off") else json.dumps(word)


def columns_shown(frame: pd.DataFrame) -> str:
    """The first columns of `frame`, for a message."""
    return ", ".join(str(column)[:60] for column in frame.columns[:20])


def _check_filled_columns(name: str, path: Path, frame: pd.DataFrame, source: SourceConfig) -> None:
    """Raise IngestError when a `combine` or `after` file column is not in the file, or a column that `constants`,
    `combine` or `after` fill is also one of the file's columns (through `rename`, or named so)."""
    absent = [part for parts in source.combine.values() for part in parts if part not in frame.columns]
    if absent:
        shown = columns_shown(frame)
        raise IngestError(f"source {name}: sources.{name}.combine: column {absent[0]!r} is not in {path} (its columns: "
                          f"{shown}); name a column of the export, as it is written there")
    durations = [(target, after.column) for target, after in source.after.items() if after.column not in frame.columns]
    if durations:
        target, column = durations[0]
        raise IngestError(f"source {name}: sources.{name}.after.{target}.column: column {column!r} is not in {path} "
                          f"(its columns: {columns_shown(frame)}); name a column of the export, as it is written there")
    from_file = {source.rename.get(column, column): column for column in frame.columns}
    own = [target for target in source.after if target in from_file]
    if own:  # a rename onto it is a config error: this is the file's own column of that name
        raise IngestError(
            f"source {name}: {path} has a column {from_file[own[0]]!r} for {own[0]}, which sources.{name}.after fills "
            f"too; keep it aside with sources.{name}.rename: {{{from_file[own[0]]}: <another name>}}, or remove the "
            "after entry")
    for setting in ("constants", "combine"):
        both = [column for column in getattr(source, setting) if column in from_file]
        if both:
            raise IngestError(
                f"source {name}: {path} has a column {from_file[both[0]]!r} for {both[0]}, which "
                f"sources.{name}.{setting} fills too; remove one of the two"
            )


def check_columns(
    name: str, path: Path, frame: pd.DataFrame, source: SourceConfig, *, customers_elsewhere: bool = False
) -> None:
    """Raise IngestError when a required contract column is missing after the mapping (`mapped_columns`), or a
    column is given twice. `customers_elsewhere`: a further export of transactions, whose lines may take their
    customer from their order's lines in another export (a refunds export that names the order only)."""
    _check_filled_columns(name, path, frame, source)
    mapped = mapped_columns(frame.columns, source)
    if customers_elsewhere and name == "transactions" and "order_id" in mapped:
        mapped.add("customer_id")
    if source.one_order_per_row and name != "transactions":
        raise IngestError(f"sources.{name}.one_order_per_row: only transactions have orders; remove the setting")
    if source.one_order_per_row:
        if "order_id" in mapped:
            raise IngestError(
                f"source {name}: {path} has an order_id column but sources.{name}.one_order_per_row is true; "
                "remove one of the two"
            )
        mapped.add("order_id")
    missing = _unmapped_required(name, mapped)
    if missing:
        hint = _separator_hint(name, path, frame, source) or _header_line_hint(name, path, source, missing)
        if not hint and file_format(path, source) == "json" and source.read.json_records is None:
            hint = _records_hint(name, _json_text(name, path, source.read))
        if not hint:
            shown = columns_shown(frame)
            hint = f"; map the file's columns with sources.{name}.rename (file columns: {shown})"
            if "amount" in missing:
                hint += "; without amount, give quantity and unit_price and amount is derived from them"
        raise IngestError(f"source {name}: {path} lacks required column(s) {', '.join(missing)}{hint}")
    unmapped = [(target, after.start) for target, after in source.after.items()
                if after.start not in mapped and after.start not in source.after]  # (given by after: computed first)
    if unmapped:
        target, start = unmapped[0]
        raise IngestError(f"source {name}: sources.{name}.after.{target}.from: {path} has no {start} (its columns: "
                          f"{columns_shown(frame)}); map the file's column onto {start} with sources.{name}.rename")
    taken = [column for column in ORIGIN_COLUMNS + ("reason",) if column in frame.columns]
    if taken:
        raise IngestError(
            f"source {name}: {path} has column(s) {', '.join(taken)}, reserved for the quarantine file; "
            f"rename them with sources.{name}.rename"
        )
    _fail_on_repeats([source.rename.get(column, column) for column in frame.columns], lambda twice: (
        f"source {name}: {path} would have column(s) {', '.join(twice)} twice after sources.{name}.rename "
        f"({'; '.join(_renamed_onto(target, frame.columns, source.rename) for target in twice)}); rename only one "
        "file column onto each contract column (a file column named like one is read as it unless renamed away)"
    ))


def _renamed_onto(target: str, columns: Iterable[str], rename: Mapping[str, str]) -> str:
    """Which file columns give `target`: "'closed_at' renamed onto submitted_at and the file's own 'submitted_at'"."""
    given = [repr(column) for column in columns if column != target and rename.get(column) == target]
    own = [column for column in columns if column == target and rename.get(column, column) == target]
    return f"{' and '.join(given)} renamed onto {target}" + "".join(f" and the file's own {mine!r}" for mine in own)


@contextmanager
def _file_frames(
    name: str, path: Path, source: SourceConfig, *, setting: str, member: str | None = None,
    notes: list[str] | None = None,
) -> Iterator[tuple[Path, list[tuple[str, pd.DataFrame, pd.DataFrame]]]]:
    """(the file read, (label, frame, lines set aside) per part of it: `_read_file`), its column names checked for
    repeats and cleaned. A compressed file, or the file `member` of a zip archive (or its one file), is unpacked
    first (`compressed.unpacked`) and its copy is the file read until the context closes, so that checks reading it
    again see what was read; an IngestError raised meanwhile names the archive. Messages about reading name the
    settings of `setting` (the export's key, or a lookup table's: `_naming`). `notes`, when given, gets the note of
    a CSV file whose read.encoding seems to misread it (`misread_text_note`)."""
    try:
        with ExitStack() as copy:
            with _naming(name, setting):
                readable, label = copy.enter_context(unpacked(name, path, member))
                parts = [(label + part[len(str(readable)):], frame, lines)
                         for part, frame, lines in _read_file(name, readable, source)]
                if notes is not None and file_format(readable, source) == "csv":
                    with readable.open("rb") as file:
                        note = misread_text_note(file.read(MISREAD_SAMPLE), source.read.encoding, label=label,
                                                 setting=f"sources.{name}")
                    notes.extend([note] if note else [])
                for _, frame, _ in parts:
                    check_unique_columns(name, readable, list(frame.columns))
                    frame.columns = [_clean_name(column) for column in frame.columns]
            yield readable, parts
    except PermissionError:
        raise IngestError(_permission_message(name, path)) from None


def file_members(
    name: str, files: list[Path], pattern: str | None, *, setting: str
) -> list[tuple[Path, str | None]]:
    """(file, member) to read, in order: each of `files` with the members of it that `pattern` (the `member`
    setting, whose key is `setting`) names, sorted (`compressed.archive_members`); member None without a pattern."""
    return [(path, member) for path in files for member in archive_members(name, path, pattern, setting=setting)]


def read_source(
    name: str, source: SourceConfig, *, customers_elsewhere: bool = False, setting: str | None = None
) -> RawSource:
    """Read every file of `source`, each joined with the source's `lookup` tables; check the columns of each;
    concatenate in file order. `setting`: the export's key in the config (sources.<name>, or one of its
    other_exports), which messages about a lookup table name."""
    setting = setting or f"sources.{name}"
    tables = [read_lookup(name, lookup, setting=f"{setting}.lookup[{number}]")
              for number, lookup in enumerate(source.lookup)]
    frames, labels, notes, warnings, problems, unread = [], [], [], [], [], []
    rows_before, counts = 0, np.zeros((len(tables), 3), dtype=np.int64)  # per table: took, missed, of them kept
    files = source_files(name, source, setting=f"{setting}.path")
    members = file_members(name, files, source.member, setting=f"{setting}.member")
    for path, member in members:
        # an export under other_exports has read settings of its own (`_naming`)
        with _file_frames(name, path, source, setting=setting, member=member,
                          notes=warnings if (path, member) == members[0] else None) as (readable, parts):
            for label, frame, lines in parts:
                width = len(frame.columns)  # the file's own columns, before any lookup table's
                frame, missed, file_counts = with_lookups(name, label, frame.reset_index(drop=True), tables)
                counts += file_counts
                with _naming(name, setting):  # its hints read the unpacked copy, which messages name as the archive
                    check_columns(name, readable, frame, source, customers_elsewhere=customers_elsewhere)
                if frame.empty:
                    notes.append(f"{label} has a header but no rows")
                problems.append(missed.assign(row=missed["row"] + rows_before))
                if len(lines):
                    said = {"columns": width, "header": source.read.header}
                    unread.append(pd.DataFrame({"row": lines["row"].to_numpy() + rows_before, "column": "",
                                                "reason": unread_line_reasons(lines, **said).to_numpy(),
                                                "kind": unread_line_kinds(lines, **said).to_numpy()}))
                    warnings.append(unread_lines_note(label, lines))
                rows_before += len(frame)
                frames.append(frame)
                labels.append(label)
    unknown_renames = sorted(set(source.rename) - {column for frame in frames for column in frame.columns})
    if unknown_renames:
        notes.append(f"rename keys not found in the files: {', '.join(unknown_renames)}")
    frame = concat_as_read(frames)
    origin = row_origin(labels, [len(part) for part in frames])
    missed = pd.concat(problems, ignore_index=True) if problems else None
    notes += [lookup_note(table, rows=len(frame), took=int(took), missed=int(lost), kept=int(kept))
              for table, (took, lost, kept) in zip(tables, counts)]
    return RawSource(name=name, frame=frame, origin=origin, files=tuple(files),
                     notes=tuple(notes + warnings),
                     lookup_problems=missed if missed is not None and len(missed) else None,
                     unread_lines=pd.concat(unread, ignore_index=True) if unread else None, warnings=tuple(warnings))


def unread_lines_said(label: str, lines: pd.DataFrame) -> str:
    """'3 lines of <label> had the wrong number of fields (lines 17, 2,001, 9,340)' for the lines of one file set
    aside (`no_unread_lines`)."""
    count = len(lines)
    named = ", ".join(f"{line:,}" for line in lines["line"].head(LINES_NAMED))
    named += ", ..." if count > LINES_NAMED else ""
    plural = "s" if count != 1 else ""
    return f"{count:,} line{plural} of {label} had the wrong number of fields (line{plural} {named})"


def unread_lines_note(label: str, lines: pd.DataFrame) -> str:
    """The note on the lines of one file set aside: `unread_lines_said`, then what became of them."""
    return f"{unread_lines_said(label, lines)}: quarantined, each with the line as written in its reason"


@dataclass(frozen=True)
class LookupTable:
    """One `lookup` table of a source, read: `rows` holds the columns to take, indexed by the key (as `parse_ids`
    reads it: each key once); `ambiguous` the keys on two rows that differ (their rows are left out of `rows`)."""

    setting: str  # the setting's key, e.g. sources.transactions.lookup[0]
    label: str  # the table's files
    by: str
    rows: pd.DataFrame
    ambiguous: pd.Index
    keep_missing: bool = False  # `missing: keep`: a row whose key the table lacks stays, without its columns


def read_lookup(name: str, lookup: LookupConfig, *, setting: str) -> LookupTable:
    """Read the `lookup` table of source `name` whose key in the config is `setting`: its files concatenated, the key
    (`lookup.key_column()`) read as an id, rows repeated exactly dropped, keys on two different rows set apart.
    Messages about reading it name `setting`; its values are parsed later with the export's own settings."""
    files = file_members(name, source_files(name, lookup, setting=f"{setting}.path"), lookup.member,
                         setting=f"{setting}.member")
    as_source = SourceConfig(path=lookup.path, format=lookup.format, read=lookup.read)
    parts = []
    for path, member in files:
        with _file_frames(name, path, as_source, setting=setting, member=member) as (_, read):
            parts += [(member_label(path, member), frame, lines) for _, frame, lines in read]
    unread = next(((path, lines) for path, _, lines in parts if len(lines)), None)
    if unread is not None:  # a table has no quarantine: a line it cannot read would leave rows without its columns
        path, lines = unread
        raise IngestError(f"source {name}: {setting}: {path} cannot be parsed as CSV: "
                          f"{unread_lines_said(str(path), lines)}; a lookup table has no "
                          "quarantine, so correct those lines in the table")
    parts = [(path, frame) for path, frame, _ in parts]
    table = concat_as_read([frame.reset_index(drop=True) for _, frame in parts])
    label = ", ".join(member_label(path, member) for path, member in files)
    key = lookup.key_column()
    wanted = [key, *(lookup.columns or [])]
    absent = [column for column in wanted if column not in table.columns]
    if absent:
        which = "columns" if absent[0] != key else "key" if lookup.key else "by"
        hint = _table_settings(_separator_hint(name, files[0][0], parts[0][1], as_source), name, setting)
        hint = hint or (f"; when the table names its key otherwise, give that name with {setting}.key"
                        if which == "by" else "")
        raise IngestError(f"source {name}: {setting}.{which}: column {absent[0]!r} is not in {label} (its columns: "
                          f"{columns_shown(table)}){hint or '; name a column of the table, as it is written there'}")
    if table.empty:
        raise IngestError(f"source {name}: {setting}: {label} has a header but no rows, so no row could take its "
                          "columns; export the table's rows, or remove the lookup")
    taken = lookup.columns or [column for column in table.columns if column != key]
    reserved = [column for column in taken if column in (*ORIGIN_COLUMNS, "reason")]
    if reserved:
        raise IngestError(f"source {name}: {setting}: {label} has a column {reserved[0]!r}, a name reserved for the "
                          f"quarantine file; list the columns to take with {setting}.columns")
    keys = parse_ids(table[key])
    rows = table[taken].set_axis(pd.Index(keys, name=None)).loc[keys.notna().to_numpy()]
    if rows.index.has_duplicates:  # a row written twice is one row; a key on two rows that differ is ambiguous
        as_shown = rows.apply(cell_text).reset_index(names="__key__")
        rows = rows[~as_shown.duplicated(keep="first").to_numpy()]
    twice = rows.index.duplicated(keep=False)
    return LookupTable(setting=setting, label=label, by=lookup.by, rows=rows[~twice],
                       ambiguous=pd.Index(rows.index[twice].unique()), keep_missing=lookup.missing == "keep")


@contextmanager
def _naming(name: str, setting: str) -> Iterator[None]:
    """Re-raise an IngestError about reading or checking a file of `setting` (a lookup table, or an export under
    other_exports) with its own settings named instead of those of sources.<name>, which the readers name."""
    try:
        yield
    except IngestError as exc:
        raise IngestError(_table_settings(str(exc), name, setting)) from None


def _table_settings(text: str, name: str, setting: str) -> str:
    """`text` (a reader's or a column check's message, which names settings of sources.<name> only) naming those of
    `setting` instead."""
    return text.replace(f"sources.{name}.", f"{setting}.")


def empty_problems() -> pd.DataFrame:
    """A frame of no problems: row (int64), column, reason."""
    return pd.DataFrame({"row": pd.Series([], dtype=np.int64), "column": pd.Series([], dtype="str"),
                         "reason": pd.Series([], dtype="str")})


def kept_mask(rows: int, left_out: np.ndarray) -> np.ndarray:
    """A mask of `rows` rows, False at the row numbers `left_out` (quarantined, excluded)."""
    kept = np.ones(rows, dtype=bool)
    kept[left_out] = False
    return kept


def with_lookups(
    name: str, label: str, frame: pd.DataFrame, tables: list[LookupTable]
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """`frame` (one file's rows, RangeIndex) with the columns of each table in `tables` joined in order by its `by`
    column; the rows whose key a table lacks or holds on two different rows (row, column, reason), whose taken
    columns stay empty; and per table, how many rows took its columns, how many it missed and, of those, how many
    stay without a reason because the table keeps them (`missing: keep`; shape: tables × 3). A row with no key
    (empty or blank) takes nothing, without a reason."""
    problems = [empty_problems()]
    given_by = {column: label for column in frame.columns}
    counts = np.zeros((len(tables), 3), dtype=np.int64)
    for number, table in enumerate(tables):
        if table.by not in frame.columns:
            raise IngestError(f"source {name}: {table.setting}.by: column {table.by!r} is not in {label} (its columns: "
                              f"{columns_shown(frame)}); name the column holding the key, as the export (or an "
                              "earlier lookup) writes it")
        clash = [column for column in table.rows.columns if column in given_by]
        if clash:
            raise IngestError(f"source {name}: {table.setting}: {table.label} has a column {clash[0]!r}, which "
                              f"{given_by[clash[0]]} gives already; list the table's columns to take with "
                              f"{table.setting}.columns")
        keys = parse_ids(frame[table.by])
        positions = _positions(keys, table.rows.index)
        found = positions >= 0
        if len(table.rows):
            taken = table.rows.iloc[np.where(found, positions, 0)].reset_index(drop=True).where(pd.Series(found))
        else:  # every key of the table is on two rows that differ: nothing to take
            taken = table.rows.reindex(keys).reset_index(drop=True)
        lacking = keys.notna().to_numpy() & ~found
        twice = lacking & keys.isin(table.ambiguous).to_numpy() if len(table.ambiguous) else np.zeros_like(found)
        absent = lacking & ~twice & (not table.keep_missing)
        counts[number] = found.sum(), lacking.sum(), (lacking & ~twice).sum() - absent.sum()
        for rows, what in ((absent, f"not in {table.label}"),
                           (twice, f"on two rows of {table.label} that differ, so which to take is unclear")):
            if rows.any():
                problems.append(pd.DataFrame({"row": np.flatnonzero(rows).astype(np.int64), "column": table.by,
                                              "reason": f"{table.by}: {what} ({table.setting})"}))
        frame = pd.concat([frame, taken], axis=1)
        given_by.update({column: f"{table.label} ({table.setting})" for column in table.rows.columns})
    return frame, pd.concat(problems, ignore_index=True), counts


def _positions(keys: pd.Series, index: pd.Index) -> np.ndarray:
    """Position in `index` (unique text keys) of each of `keys` (text, nulls allowed); -1 where absent or null."""
    left = pl.DataFrame({"key": pl.Series(keys.to_numpy(dtype=object, na_value=None), dtype=pl.String)})
    right = pl.DataFrame({"key": pl.Series(index.to_numpy(dtype=object), dtype=pl.String),
                          "position": pl.int_range(len(index), eager=True, dtype=pl.Int64)})
    joined = left.join(right, on="key", how="left", maintain_order="left")
    return joined["position"].fill_null(-1).to_numpy()


def lookup_note(table: LookupTable, *, rows: int, took: int, missed: int, kept: int = 0) -> str:
    """What a lookup table gave the `rows` of a source, for the ingest report: `took` rows its columns, `missed` rows
    (their key it lacks or holds twice) did not; of them `kept` (a key it lacks, `missing: keep`) stayed, the others
    were quarantined. The rest had no key (an empty cell) and took nothing."""
    columns = ", ".join(map(str, table.rows.columns[:8])) + (", ..." if len(table.rows.columns) > 8 else "")
    note = f"{took:,} of {rows:,} rows took {columns} from {table.label} by {table.by} ({table.setting})"
    if kept:
        note += f"; {kept:,} row{'s' if kept > 1 else ''} whose {table.by} it lacks kept without them (missing: keep)"
    if missed - kept:
        lost = missed - kept
        note += f"; {lost:,} row{'s' if lost > 1 else ''} whose {table.by} it lacks or holds twice quarantined"
    keyless = rows - took - missed
    if keyless:
        note += f"; {keyless:,} row{'s' if keyless > 1 else ''} with an empty {table.by} took nothing"
    if len(table.ambiguous):
        count = len(table.ambiguous)
        note += (f"; {count:,} {'keys are' if count > 1 else 'key is'} on two rows of it that differ "
                 f"(e.g. {table.ambiguous[0]!r})")
    return note


MIDNIGHT_PATTERN = r"^(\d{4}-\d\d-\d\d) 00:00:00$"  # a spreadsheet's date cell read as text ('2024-01-31 00:00:00')


def cell_text(values: pd.Series) -> pd.Series:
    """Cells as the text an export shows them (stripped), whatever the file typed them as: whole numbers without a
    decimal part (17850.0 -> '17850'), dates without a time of day ('2024-01-31', also from a spreadsheet's date
    cell), other times as 'YYYY-MM-DD HH:MM:SS'. Missing stays missing."""
    if pd.api.types.is_float_dtype(values.dtype):
        return whole_number_text(values)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        present = values.dropna()
        dates = bool(len(present)) and bool((present == present.dt.normalize()).all())
        offset = "%z" if isinstance(values.dtype, pd.DatetimeTZDtype) else ""
        return values.dt.strftime("%Y-%m-%d" if dates else f"%Y-%m-%d %H:%M:%S{offset}")
    return values.astype("str").str.strip().str.replace(MIDNIGHT_PATTERN, r"\1", regex=True)


def value_text(values: pd.Series) -> pd.Series:
    """A file column as the text an export shows, to compare with the values of a setting: stripped text; typed
    (JSON, Parquet) booleans as 'true'/'false', whole numbers without '.0' (`cell_text`). Missing stays missing."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "true", False: "false"}).astype("str")
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        return cell_text(values)
    return values.astype("str").str.strip()


def concat_as_read(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """`frames` one after the other (the union of their columns, RangeIndex); a column that one frame types and
    another holds as text (a Parquet export beside a CSV one), or types otherwise, is text in all (`cell_text`: -4.0
    and '-4' alike, so that repeats across them are found)."""
    if len(frames) == 1:
        return frames[0]
    types: dict[str, set[str]] = {}
    for frame in frames:
        for column, dtype in frame.dtypes.items():
            types.setdefault(column, set()).add(str(dtype))
    mixed = [column for column, seen in types.items() if len(seen) > 1]
    if mixed:
        frames = [frame.assign(**{column: cell_text(frame[column]) for column in mixed if column in frame.columns})
                  for frame in frames]
    return pd.concat(frames, ignore_index=True)


def read_exports(name: str, source: SourceConfig) -> list[RawSource]:
    """`read_source` of each export of `source` (itself, then its `other_exports`), each with its own mapping; a
    further export of transactions may lack customer_id when it names the order (`check_columns`)."""
    return [read_source(name, export, customers_elsewhere=number > 0, setting=export_setting(name, number))
            for number, export in enumerate(source.exports())]


def export_setting(name: str, number: int) -> str:
    """The config key of export `number` of source `name`: sources.<name> itself, then its other_exports."""
    return f"sources.{name}" if number == 0 else f"sources.{name}.other_exports[{number - 1}]"


def export_files(name: str, source: SourceConfig) -> list[tuple[Path, str | None]]:
    """(file, member) read for every export of `source` and for their `lookup` tables (`file_members`), in export
    order, each once (an archive's file that several of them read is one)."""
    def reads(part: SourceConfig | LookupConfig, setting: str) -> list[tuple[Path, str | None]]:
        return file_members(name, source_files(name, part, setting=f"{setting}.path"), part.member,
                            setting=f"{setting}.member")

    return list(dict.fromkeys(
        read for place, export in enumerate(source.exports()) for read in [
            *reads(export, export_setting(name, place)),
            *(table_read for number, lookup in enumerate(export.lookup)
              for table_read in reads(lookup, f"{export_setting(name, place)}.lookup[{number}]"))]))


def _read_file(name: str, path: Path, source: SourceConfig) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(label, frame, lines set aside) per part of one file: the file itself, or each sheet read of a workbook; only
    a CSV file sets lines aside (`no_unread_lines`)."""
    fmt = file_format(path, source)
    if fmt == "excel":
        return [(label, frame, no_unread_lines()) for label, frame in _read_excel(name, path, source.read)]
    if fmt == "json":
        return [(str(path), _read_json(name, path, source.read), no_unread_lines())]
    if fmt == "parquet":
        return [(str(path), _read_parquet(name, path, source.read), no_unread_lines())]
    return [(str(path), *_read_csv(name, path, source))]


def row_origin(files: list[Path] | list[str], rows: list[int]) -> pd.DataFrame:
    """source_file (categorical: one label per file or sheet, not per row: the path, or the path and the sheet)
    and 1-based source_row per file or sheet."""
    codes = np.repeat(np.arange(len(files), dtype=np.int32), rows)
    starts = np.repeat(np.cumsum([0, *rows[:-1]]), rows)
    paths = pd.Index([str(path) for path in files], dtype="str")
    return pd.DataFrame(
        {
            "source_file": pd.Categorical.from_codes(codes, categories=paths),
            "source_row": np.arange(1, len(codes) + 1, dtype=np.int64) - starts,
        }
    )


# --- parsing raw values into contract types ------------------------------------------------------


def whole_number_text(values: pd.Series) -> pd.Series:
    """Floats as text, whole numbers without a decimal part (17850.0 -> '17850', exact up to 2**53); missing stays
    missing."""
    whole = values.where((values == values.round()) & (values.abs() < 2.0**53))
    return whole.astype("Int64").astype("str").where(whole.notna(), values.astype("str"))


def text_array(values: pd.Series) -> pa.Array:
    """`values` as text in an Arrow large_string array (no copy for Arrow-backed text; nulls stay null)."""
    return pa.array(values.astype("str"), type=pa.large_string(), from_pandas=True)


def is_text(values: pd.Series) -> bool:
    """Whether a column holds text (a string or object dtype), as read from a CSV, not typed."""
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def blank_cells(values: pd.Series) -> np.ndarray:
    """Missing cells, and text cells that are empty or only whitespace (Arrow kernels: this runs on every line)."""
    if not is_text(values):
        return values.isna().to_numpy(dtype=bool)
    text = text_array(values)
    blank = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    return pc.fill_null(blank, True).to_numpy(zero_copy_only=False)


def parse_ids(values: pd.Series, *, case: str = "keep") -> pd.Series:
    """Identifiers as text, the same whatever the file type holds: surrounding whitespace stripped,
    empty or blank -> null, integer-valued numbers as the integer ('17850.0', 17850.0 in a float
    column and 17850 in an integer column all become '17850'); `case` 'lower'/'upper' folds case."""
    if pd.api.types.is_float_dtype(values.dtype):
        values = whole_number_text(values)
    text = values.astype("str")
    arrow = text_array(text)
    cleaned = pc.utf8_trim_whitespace(arrow) if may_need_trimming(arrow) else arrow  # what pandas' str.strip() runs
    if len(rows_holding_bytes(cleaned, lambda data: data == ord("."))):  # cheap test before the regular expression
        cleaned = pc.replace_substring_regex(cleaned, INTEGER_TEXT_PATTERN, r"\1")
    if case != "keep":
        cleaned = pc.utf8_lower(cleaned) if case == "lower" else pc.utf8_upper(cleaned)
    lengths = pc.binary_length(cleaned)
    changed = case != "keep" or pc.any(pc.not_equal(lengths, pc.binary_length(arrow))).as_py()
    blank = pc.any(pc.equal(lengths, 0)).as_py()
    if not changed and not blank:  # keep sharing the raw column's memory
        return text
    cleaned = pc.if_else(pc.equal(lengths, 0), pa.scalar(None, pa.large_string()), cleaned) if blank else cleaned
    return text_series(cleaned, text.index)


# An id a spreadsheet wrote in scientific notation ('1.23457E+11'): rounded, so that different ids look alike.
# (A spreadsheet writes the exponent of a large number with its sign.)
SCIENTIFIC_ID_PATTERN = r"^[+-]?\d(?:[.,]\d+)?[eE]\+\d+$"


def text_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (one more than strings, the first 0) and the bytes (uint8) of an Arrow string or large_string
    array, neither copied."""
    _, offsets_buffer, data_buffer = text.buffers()
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)[text.offset : text.offset + len(text) + 1]
    if data_buffer is None or not len(text):
        return np.zeros(len(text) + 1, dtype=width), np.empty(0, dtype=np.uint8)
    return offsets - offsets[0], np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]


def text_chunks(text: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The arrays of Arrow text, one or held in chunks, as string or large_string (a dictionary decoded)."""
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    return [chunk if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)
            else chunk.cast(pa.large_string()) for chunk in chunks]


def rows_holding_bytes(text: pa.Array | pa.ChunkedArray, marks: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Positions of the strings of `text` (Arrow text) holding a byte that `marks` (uint8 bytes -> booleans) marks:
    one vectorised pass over the array's bytes instead of a string kernel per row (nulls hold no bytes)."""
    found, start = [np.zeros(0, dtype=np.int64)], 0
    for chunk in text_chunks(text):  # a few chunks: the text is not copied into one
        offsets, data = text_bytes(chunk)
        rows = np.searchsorted(offsets, np.flatnonzero(marks(data)), side="right") - 1  # a row's hits lie in a run
        found.append(rows[np.concatenate([[True], rows[1:] != rows[:-1]])] + start if len(rows) else rows)
        start += len(chunk)
    return np.concatenate(found).astype(np.int64)


def may_need_trimming(text: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a string of `text` may start or end with whitespace: its first or last byte is an ASCII space or
    control, or belongs to a character beyond ASCII (a no-break space, an ideographic space)."""
    for chunk in text_chunks(text):
        offsets, data = text_bytes(chunk)
        if not len(data):
            continue
        # An empty string's edges are its neighbours' bytes: at worst, text is trimmed that did not need it.
        for edges in (data[np.minimum(offsets[:-1], len(data) - 1)], data[np.maximum(offsets[1:] - 1, 0)]):
            if ((edges <= 32) | (edges >= 127)).any():
                return True
    return False


def _matching_ids(ids: pd.Series, pattern: str, *, candidates: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Positions of the ids (text, as `parse_ids` gives) matching `pattern`; `candidates` (uint8 bytes -> booleans)
    marks the bytes of which an id that matches holds one: only those ids meet the pattern."""
    arrow = text_array(ids)
    rows = rows_holding_bytes(arrow, candidates)
    if not len(rows):
        return rows
    found = pc.fill_null(pc.match_substring_regex(arrow.take(pa.array(rows)), pattern), False)  # the few candidates
    return rows[found.to_numpy(zero_copy_only=False)]


def rounded_ids(ids: pd.Series) -> np.ndarray:
    """Positions of the ids written in scientific notation (SCIENTIFIC_ID_PATTERN)."""
    return _matching_ids(ids, SCIENTIFIC_ID_PATTERN, candidates=lambda data: data == ord("+"))


# An id a spreadsheet showed as '#######' (its column too narrow for the number) and saved as shown: the id is lost,
# and every such row would read as one customer.
HIDDEN_ID_PATTERN = r"^#+$"


def hidden_ids(ids: pd.Series) -> np.ndarray:
    """Positions of the ids made of '#' only (HIDDEN_ID_PATTERN)."""
    return _matching_ids(ids, HIDDEN_ID_PATTERN, candidates=lambda data: data == ord("#"))


# An id holding a control character (NUL, tab, escape) or an invisible format character (a zero-width space or
# byte-order mark pasted from a web page): it looks like the id without it, but does not match it.
INVISIBLE_ID_PATTERN = r"[\p{Cc}\p{Cf}]"


def invisible_ids(ids: pd.Series) -> np.ndarray:
    """Positions of the ids (text, as `parse_ids` gives) holding a character of INVISIBLE_ID_PATTERN (ASCII controls,
    and C1 controls and format characters, beyond ASCII)."""
    return _matching_ids(ids, INVISIBLE_ID_PATTERN, candidates=lambda data: (data < 32) | (data >= 127))


def text_series(arrow: pa.Array, index: pd.Index) -> pd.Series:
    """A "str" Series over an Arrow large_string array (no copy)."""
    return pd.Series(pd.arrays.ArrowStringArray(arrow, dtype=pd.StringDtype("pyarrow", na_value=np.nan)), index=index)


def parse_numbers(
    values: pd.Series, *, decimal: str = ".", thousands: str | None = None, currency: str | None = None,
    accounting_negatives: bool = False,
) -> pd.Series:
    """float64; text that is not a plain decimal number (e.g. '12,50', 'ten', 'inf', '$5'), or a number beyond what
    a float holds in full (1e400, 1e-400, 1e-310: `_held_in_full`) -> NaN.

    Text numbers may use another `decimal` mark (',': '12,50' -> 12.5) and a `thousands` separator, which is
    dropped wherever it stands ('.': '1.234,50' -> 1234.5); then '12.50' with decimal ',' and no thousands
    separator is not a number. A `currency` sign or code may stand before the number (after a sign:
    '-£2.55', '£ -2.55') or after it ('12,50 EUR'); another currency's is not a number. With
    `accounting_negatives`, '(12.50)' and '12.50-' are -12.5 (also with a currency sign: '(£12.50)', '£(12.50)').
    Typed (numeric) columns are taken as they are.
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return pd.Series(np.nan, index=values.index, dtype="float64")
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64")
        return numbers.where(_held_in_full(numbers.to_numpy()))
    text = pc.utf8_trim_whitespace(text_array(values))
    if accounting_negatives:
        text = minus_for_accounting(text)
    if currency is not None:
        sign = re.escape(currency)
        text = pc.replace_substring_regex(text, rf"^([+-]?)\s*{sign}\s*", r"\1")
        text = pc.replace_substring_regex(text, rf"\s*{sign}$", "")
        if accounting_negatives:  # '£(12.50)': the parentheses stand inside the sign
            text = minus_for_accounting(text)
    if decimal != "." or thousands is not None:
        text = _with_point_decimals(text, decimal=decimal, thousands=thousands)
    try:  # stops at the first value that is not a number: measured, this costs less than the regex
        numbers = pc.cast(text, pa.float64())  # (Arrow also takes 'nan' and 'inf': NaN below)
    except pa.ArrowInvalid:
        numbers = _plain_numbers(text)
    numbers = numbers.to_numpy(zero_copy_only=False)  # null -> NaN
    held = _held_in_full(numbers)
    # '1e-400' casts to 0: a nonzero digit before the exponent says it was no zero
    with_exponent = rows_holding_bytes(text, lambda data: (data | 32) == ord("e"))
    zeros = with_exponent[numbers[with_exponent] == 0]
    if len(zeros):
        held[zeros[pc.match_substring_regex(text.take(zeros), NONZERO_MANTISSA).to_numpy(zero_copy_only=False)]] = False
    return pd.Series(np.where(held, numbers, np.nan), index=values.index, dtype="float64")


def _plain_numbers(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`text` matching NUMBER_PATTERN cast to float64, other text null. Text holding a byte no plain number holds
    ('12,50 EUR', 'n/a') is set aside by one pass over the bytes; the pattern runs only if what is left still fails."""
    foreign = np.zeros(len(text), dtype=bool)
    foreign[rows_holding_bytes(text, _not_in_plain_numbers)] = True
    try:
        return pc.cast(_only_where(pa.array(~foreign), text), pa.float64())
    except pa.ArrowInvalid:  # '1.2.3', '--5': cast the plain numbers only
        return pc.cast(_only_where(pc.match_substring_regex(text, NUMBER_PATTERN), text), pa.float64())


def _held_in_full(numbers: np.ndarray) -> np.ndarray:
    """Whether each of `numbers` (float64) is one a float holds in full: finite (not inf, not an overflow such as
    1e400) and zero or of at least the least normal size (2.2e-308; smaller ones are junk such as 1e-310, not money)."""
    size = np.abs(numbers)
    return np.isfinite(numbers) & ((size == 0) | (size >= np.finfo(np.float64).tiny))


def numbers_as_read(values: pd.Series, read: ReadOptions) -> pd.Series:
    """`values` parsed as numbers with an export's reading settings (decimal mark, thousands, currency, accounting
    negatives); unreadable values null."""
    return parse_numbers(values, decimal=read.decimal, thousands=read.thousands, currency=read.currency,
                         accounting_negatives=read.accounting_negatives)


def minus_for_accounting(text: pa.Array) -> pa.Array:
    """'(x)' and 'x-' (x starting with a digit or a sign) rewritten as '-x'; other text as it is."""
    text = pc.replace_substring_regex(text, r"^\(\s*(.*?)\s*\)$", r"-\1")
    return pc.replace_substring_regex(text, r"^([^-+(].*?)\s*-$", r"-\1")


def _with_point_decimals(text: pa.Array, *, decimal: str, thousands: str | None) -> pa.Array:
    """Number text written with `decimal` and `thousands` marks, rewritten with '.' as the decimal mark and no
    separator; text holding a '.' that is neither mark becomes null (not a number)."""
    if thousands is not None:
        text = pc.replace_substring(text, thousands, "")
    if decimal == ".":
        return text
    stray = pc.match_substring(text, ".")  # '12.50' when ',' is the decimal mark: ambiguous, not read as 1250
    return _only_where(pc.invert(stray), pc.replace_substring(text, decimal, "."))


def _not_in_plain_numbers(data: np.ndarray) -> np.ndarray:
    """Which bytes (uint8) no text matching NUMBER_PATTERN holds: all but digits, '.', '+', '-', 'e' and 'E'."""
    digit = (data >= ord("0")) & (data <= ord("9"))
    return ~(digit | (data == ord(".")) | (data == ord("+")) | (data == ord("-")) | ((data | 32) == ord("e")))


def _only_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    """`values` where `mask` is True, null elsewhere."""
    return pc.if_else(mask, values, pa.scalar(None, values.type))


def parse_booleans(values: pd.Series) -> pd.Series:
    """Nullable boolean from true/false, t/f, yes/no, y/n, 1/0 (any case); anything else -> null."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    words = values.astype("str").str.strip().str.lower()
    mapping = {**{word: True for word in TRUE_WORDS}, **{word: False for word in FALSE_WORDS}}
    return words.map(mapping).astype("boolean")


# Wall times this close to the ends of Python's datetime (years 1-9999), which pandas goes through to apply a zone's
# rules there, are read as UTC: localizing them raises. They are the placeholders 0001-01-01 and 9999-12-31 (ingest
# refuses or empties those, `pipeline.ingest.PLACEHOLDER_DAYS`), not times a zone's rules matter for.
ZONE_RULES_SPAN = (pd.Timestamp("0001-01-03"), pd.Timestamp("9999-12-29"))


def _localize(naive: pd.Series, timezone: str) -> pd.Series:
    if timezone == "UTC":
        return naive.dt.tz_localize("UTC")
    beyond = ((naive < ZONE_RULES_SPAN[0]) | (naive > ZONE_RULES_SPAN[1])).to_numpy(dtype=bool)
    if beyond.any():
        return _localize(naive.where(~beyond), timezone).where(~beyond, naive.dt.tz_localize("UTC"))
    # DST: an ambiguous wall time counts as the first occurrence; a skipped one moves forward.
    first = np.ones(len(naive), dtype=bool)
    return naive.dt.tz_localize(timezone, ambiguous=first, nonexistent="shift_forward").dt.tz_convert("UTC")


def skipped_clock_rows(values: pd.Series, parsed: pd.Series, *, date_format: str | None, timezone: str) -> np.ndarray:
    """Rows of `values` (a timestamp column as read) that `parse_timestamps` read as `parsed` (UTC) from a wall time
    of `timezone` that no clock showed: in the hour a daylight-saving change skips (Europe/London's 2011-03-27 01:30),
    read as the first moment after it (`_localize`). Such a time lands on (or next to) an instant the clock jumps
    forward (`clock_jumps`); only the few values near one are parsed again, as wall times (in UTC) and in a fixed
    zone, to tell one written so (naive, and shown otherwise by the zone's clock) from one written with an offset or
    at an existing wall time (02:00)."""
    micro = parsed.to_numpy(dtype="datetime64[us]").view(np.int64)
    present = micro[micro != np.iinfo(np.int64).min]  # NaT
    if timezone == "UTC" or not len(present):
        return np.zeros(0, dtype=np.int64)
    jumps = clock_jumps(timezone, int(present.min()), int(present.max()))
    if not len(jumps):
        return np.zeros(0, dtype=np.int64)
    # pandas moves a skipped time onto the jump, or near it where the change is not a whole hour (Lord Howe's 30
    # minutes): every value within a few hours of one is looked at
    edges = np.column_stack([jumps - JUMP_REACH_US, jumps + JUMP_REACH_US]).ravel()  # jumps lie months apart
    at_jump = np.flatnonzero(np.searchsorted(edges, micro, side="right") % 2 == 1)  # inside a window
    if not len(at_jump):
        return at_jump.astype(np.int64)
    written = values.iloc[at_jump]
    wall = parse_timestamps(written, date_format=date_format, timezone="UTC")
    fixed = parse_timestamps(written, date_format=date_format, timezone="Etc/GMT-14")
    naive = (wall.notna() & (wall != fixed)).to_numpy(dtype=bool)
    shown = parsed.iloc[at_jump].dt.tz_convert(timezone).dt.tz_localize(None).dt.tz_localize("UTC")
    return at_jump[naive & (wall != shown).fillna(False).to_numpy(dtype=bool)].astype(np.int64)


QUARTER_HOUR_US = 15 * 60 * 1_000_000
JUMP_REACH_US = 3 * 60 * 60 * 1_000_000  # values this close to a jump are parsed again (`skipped_clock_rows`)
DAY_US = 24 * 60 * 60 * 1_000_000
CLOCK_RULES_YEARS = (1900, 2200)  # jumps are looked for in these years only (the ends hold placeholders, not times)


def _utc_offsets(instants: np.ndarray, timezone: str) -> np.ndarray:
    """The UTC offset of `timezone` (microseconds) at each of `instants` (int64 microseconds since 1970 UTC)."""
    utc = pd.DatetimeIndex(instants.astype("datetime64[us]"), tz="UTC")
    return utc.tz_convert(timezone).tz_localize(None).asi8 - instants


def clock_jumps(timezone: str, low: int, high: int) -> np.ndarray:
    """The instants (int64 microseconds, UTC) between `low` and `high` at which the clocks of `timezone` jump forward
    (daylight saving begins): the first moment after each skipped span. Found on a grid of days, then of quarter
    hours in the days whose offset changes (zone changes since 1900 fall on quarter hours), so the cost is of the
    days spanned, not of the values."""
    first, last = (np.datetime64(f"{year}-01-01", "us").astype(np.int64) for year in CLOCK_RULES_YEARS)
    low, high = max(low, first), min(high, last)
    if low > high:
        return np.zeros(0, dtype=np.int64)
    days = np.arange(low - low % DAY_US - DAY_US, high + 2 * DAY_US, DAY_US, dtype=np.int64)
    offsets = _utc_offsets(days, timezone)
    changed = days[:-1][offsets[1:] != offsets[:-1]]
    if not len(changed):
        return np.zeros(0, dtype=np.int64)
    quarters = (changed[:, None] + QUARTER_HOUR_US * np.arange(1, DAY_US // QUARTER_HOUR_US + 1)).ravel()
    return quarters[_utc_offsets(quarters, timezone) > _utc_offsets(quarters - 1, timezone)]


def _parse_iso_with_pandas(text: pd.Series, timezone: str) -> pd.Series:
    """Any ISO 8601 form pandas accepts; offsets honoured, naive values in `timezone`."""
    if timezone == "UTC":  # naive values are UTC already, offsets convert
        return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True, cache=False)
    has_offset = text.str.contains(OFFSET_PATTERN, regex=True).fillna(False).to_numpy(dtype=bool)
    aware = pd.to_datetime(text.where(has_offset), format="ISO8601", errors="coerce", utc=True, cache=False)
    naive = pd.to_datetime(text.where(~has_offset), format="ISO8601", errors="coerce", cache=False)
    return aware.where(has_offset, _localize(naive, timezone))


def _parse_text_timestamps(text: pd.Series, *, date_format: str | None, timezone: str) -> pd.Series:
    if date_format is not None:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce", cache=False)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # the format has %z
            return parsed.dt.tz_convert("UTC")
        return _localize(parsed, timezone)
    # Arrow casts the values of the column's usual plain naive ISO layout (most of a typical
    # export) in one go; pandas parses only the rest (offsets, other ISO forms, junk).
    arrow = text_array(text)
    lengths = pc.binary_length(arrow)
    common = _plain_iso_mode(lengths)
    if common is None:
        return _parse_iso(text, arrow, timezone)
    everywhere = common["count"].as_py() == len(arrow)  # no other length, no null
    usual = None if everywhere else pc.fill_null(pc.equal(lengths, common["mode"]), False)
    try:
        naive = pc.cast(arrow if everywhere else _only_where(usual, arrow), pa.timestamp("us"))
    except pa.ArrowInvalid:  # e.g. 2024-02-30 10:00:00 in the usual layout
        return _parse_iso(text, arrow, timezone)
    if everywhere:
        return _localize(pd.Series(naive.to_numpy(zero_copy_only=False), index=text.index), timezone)
    return _with_the_rest_parsed(text, arrow, naive, usual, timezone, parse_rest=_parse_iso_text)


def _with_the_rest_parsed(
    text: pd.Series, arrow: pa.Array, naive: pa.Array, cast: pa.Array, timezone: str, *, parse_rest: Callable
) -> pd.Series:
    """UTC timestamps: `naive` (Arrow's cast where `cast` is True) localized in `timezone`, and
    `parse_rest(values, timezone)` for the other present values (`arrow`: `text` as Arrow)."""
    parsed = _localize(pd.Series(naive.to_numpy(zero_copy_only=False), index=text.index), timezone)
    rest = pc.and_(pc.invert(cast), pc.is_valid(arrow))  # bit operations: cheap on a clean column
    if pc.any(rest).as_py():
        rows = np.flatnonzero(rest.to_numpy(zero_copy_only=False))
        parsed.iloc[rows] = parse_rest(text.iloc[rows], timezone).astype(parsed.dtype)
    return parsed


def _parse_iso_text(text: pd.Series, timezone: str) -> pd.Series:
    """`_parse_iso` for values that come without their Arrow array."""
    return _parse_iso(text, text_array(text), timezone)


def _parse_iso(text: pd.Series, arrow: pa.Array, timezone: str) -> pd.Series:
    """Plain naive ISO values (NAIVE_ISO_PATTERN) cast by Arrow, everything else by pandas."""
    plain = pc.fill_null(pc.match_substring_regex(arrow, NAIVE_ISO_PATTERN), False)
    try:
        naive = pc.cast(_only_where(plain, arrow), pa.timestamp("us"))
    except pa.ArrowInvalid:  # e.g. 2024-02-30: looks plain, is not a date
        return _parse_iso_with_pandas(text, timezone)
    return _with_the_rest_parsed(text, arrow, naive, plain, timezone, parse_rest=_parse_iso_with_pandas)


@dataclass(frozen=True)
class DateFormatGuess:
    """`infer_date_format`'s answer: the one layout that reads the values (None if none), and the
    layouts that read them equally well when that is more than one (the day/month order is ambiguous)."""

    date_format: str | None
    tied: tuple[str, ...] = ()


def _parsed_count(text: pd.Series, date_format: str, weights: np.ndarray) -> int:
    """How many values `date_format` reads: the `weights` (each value's count) of the distinct `text` it reads."""
    if date_format in NUMERIC_FORMATS:
        read = numeric_times(text, date_format).between(*NUMERIC_PLAUSIBLE)
    else:
        read = pd.to_datetime(text, format=date_format, errors="coerce", cache=False).notna()
    return int(weights[read.to_numpy(dtype=bool)].sum())


def numeric_times(values: pd.Series, date_format: str) -> pd.Series:
    """Numbers (text or numbers) of a NUMERIC_FORMATS unit since its epoch -> naive timestamps (datetime64[us]); NaT
    where a value is not a number or lies beyond the years 1678-2261 that timestamps hold."""
    unit, epoch = NUMERIC_FORMATS[date_format]
    numbers = pd.to_numeric(values.astype("str").str.strip(), errors="coerce").astype("float64")
    since_1970 = (pd.Timestamp(epoch) - pd.Timestamp("1970-01-01")).total_seconds()
    seconds = since_1970 + numbers * pd.Timedelta(1, unit=unit).total_seconds()  # from 1970, whatever the epoch
    numbers = numbers.where((seconds.abs() < 9.2e9) & numbers.notna())
    return (pd.Timestamp(epoch) + pd.to_timedelta(numbers, unit=unit).dt.round("us")).astype("datetime64[us]")


def infer_date_format(text: pd.Series) -> DateFormatGuess:
    """The COMMON_DATE_FORMATS layout that reads the most of `text` (non-ISO timestamp strings, no nulls),
    when it reads at least DATE_FORMAT_MIN_SHARE of them and no other layout reads as many: tried on an
    evenly spaced sample first, then the sample's best layouts on every value."""
    if text.empty:
        return DateFormatGuess(None)
    step = max(1, len(text) // DATE_FORMAT_SAMPLE)
    candidates = [*COMMON_DATE_FORMATS, *NUMERIC_FORMATS]
    # Every layout on the sample, then only the sample's best ones on every value (each distinct value parsed once).
    for values in (text.iloc[::step], text) if step > 1 else (text,):
        codes, distinct = pd.factorize(values)
        weights = np.bincount(codes[codes >= 0], minlength=len(distinct))
        counts = {f: _parsed_count(pd.Series(distinct, dtype=values.dtype), f, weights) for f in candidates}
        best = max(counts.values())
        candidates = [f for f, n in counts.items() if n == best]
        if best < DATE_FORMAT_MIN_SHARE * len(values):
            return DateFormatGuess(None)
    if len(candidates) > 1:
        return DateFormatGuess(None, tuple(candidates))
    return DateFormatGuess(candidates[0])


def parse_timestamps(values: pd.Series, *, date_format: str | None, timezone: str) -> pd.Series:
    """UTC timestamps (datetime64[us, UTC]); unparseable -> NaT.

    Text: `date_format` (strptime codes, or a NUMERIC_FORMATS name) when given, else ISO 8601 (offsets honoured).
    Naive values are wall-clock time in `timezone`. Typed (Parquet) datetimes: naive ones are localized too.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = _localize(values, timezone)
    elif date_format in NUMERIC_FORMATS:
        naive = numeric_times(values, date_format)
        parsed = naive.dt.tz_localize("UTC") if date_format.startswith("unix") else _localize(naive, timezone)
    elif values.isna().all():
        parsed = pd.Series(pd.NaT, index=values.index, dtype=TIMESTAMP)
    else:
        text = values.astype("str") if date_format is not None else utc_suffix_as_offset(values.astype("str"))

        def parse(text: pd.Series) -> pd.Series:
            return _parse_text_timestamps(text, date_format=date_format, timezone=timezone).astype(TIMESTAMP)

        # Arrow casts the plain ISO layout faster than finding the distinct values; pandas parses other layouts
        # value by value, so each distinct value is parsed once there.
        parsed = parse(text) if date_format is None and _mostly_plain_iso(text) else each_distinct_once(text, parse)
    return parsed.astype(TIMESTAMP)


DATES_SAMPLE = 1_000  # values looked at first for a time of day: one among them settles it


def local_day(times: pd.Series, timezone: str, *, days_after: int = 0) -> pd.Series:
    """The start of each time's day in `timezone` (the wall clock the export wrote), or of the day `days_after` it, in
    `times`' zone. A day whose midnight the clock skips (DST starting at 00:00, as in Brazil until 2019) starts at its
    first existing moment, as `pipeline.ingest.parse_timestamp_column` reads that day's date; an ambiguous midnight
    is its first occurrence."""
    wall = times.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize() + pd.Timedelta(days=days_after)
    first = np.ones(len(wall), dtype=bool)
    return wall.dt.tz_localize(timezone, ambiguous=first, nonexistent="shift_forward").dt.tz_convert(times.dt.tz)


def holds_dates(times: pd.Series, timezone: str) -> bool:
    """True when every present value of `times` is the start of its day in `timezone` (a column of dates without a
    time of day, as '2025-03-04' reads) and there is one."""
    present = times.notna().to_numpy(dtype=bool)
    sample = times[present].iloc[:DATES_SAMPLE]  # a time of day among the first values: no need to look further
    if sample.empty or not (local_day(sample, timezone) == sample).all():
        return False
    return bool((local_day(times, timezone) == times).to_numpy(dtype=bool)[present].all())


def _plain_iso_mode(lengths: pa.Array) -> pa.StructScalar | None:
    """The most common of the byte `lengths` of a text column and how many values have it (`mode`, `count`), when it
    is the length of a plain naive ISO timestamp (Arrow's fast cast); else None."""
    common = pc.mode(lengths)
    return common[0] if len(common) > 0 and common[0]["mode"].as_py() in PLAIN_ISO_LENGTHS else None


def _mostly_plain_iso(text: pd.Series) -> bool:
    """Whether the most common byte length of `text` is that of a plain naive ISO timestamp."""
    return _plain_iso_mode(pc.binary_length(text_array(text))) is not None


UTC_SUFFIX = r"\s*(?:UTC|GMT)$"  # '2024-01-31 10:00:00 UTC', as BigQuery and many SQL dumps write a time


def utc_suffix_as_offset(text: pd.Series) -> pd.Series:
    """`text` with a trailing ' UTC' or ' GMT' written as the offset '+00:00' that ISO 8601 parsing honours (those
    times are UTC whatever the source's time zone); unchanged when no value has one (two cheap Arrow checks)."""
    arrow = text_array(text)
    if not any(pc.any(pc.ends_with(arrow, suffix)).as_py() for suffix in ("UTC", "GMT")):
        return text
    return text_series(pc.replace_substring_regex(arrow, UTC_SUFFIX, "+00:00"), text.index)


DISTINCT_SHARE = 0.5  # values parsed one by one unless fewer than this share of them are distinct


def each_distinct_once(text: pd.Series, parse: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`parse(text)` (text -> a pandas extension array type, e.g. timestamps), parsing each distinct value once when
    values repeat (an order's lines share its time, and a day's orders its date): the parsed distinct values are
    put back in place. Same result, index of `text`; nulls stay null."""
    codes, distinct = pd.factorize(text)
    if len(distinct) > DISTINCT_SHARE * len(text):
        return parse(text)
    parsed = parse(pd.Series(distinct, dtype=text.dtype))
    return pd.Series(parsed.array.take(codes, allow_fill=True), index=text.index, name=text.name)


def synthetic_order_ids(rows: int, *, export_number: int = 0) -> pd.Series:
    """Order ids for sources where each row is one order: 'R' + the 1-based input row; in a further export (under
    `other_exports`, `export_number` 1, 2, ...) 'R<row>/<export_number>', so that no two exports share one."""
    ids = "R" + pd.Series(np.arange(1, rows + 1)).astype("str")
    return ids if export_number == 0 else ids + f"/{export_number}"
