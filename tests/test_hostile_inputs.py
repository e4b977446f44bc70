"""The hostile-input catalogue: exports a user really meets, each with the one outcome it must get.

Three kinds of outcome (README, "What bad input gets"):
- `ERRORS`: `churn ingest` (the CLI, in-process) exits 1 or 2 with a one-line message naming the file
  or key, and no traceback;
- `QUARANTINED`: ingest succeeds, the bad rows are quarantined with the expected reason, and
  validated + quarantined = input rows;
- `SAME_AS_CLEAN`: the validated output equals that of the clean export.

Every case is a few lines of text (or a tiny Parquet file); only ingest runs.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from conftest import zipped
from pipeline.cli import app
from pipeline.config import config_from_dict
from pipeline.ingest import ANONYMOUS, INVISIBLE_ID, PLACEHOLDER_TIME, IngestResult, ingest_sources
from pipeline.sources import read_exports

HEADER = "order_id,customer_id,ordered_at,amount"
ROWS = [
    "o1,17850,2024-01-01 10:00:00,10.5",
    "o1,17850,2024-01-01 10:00:00,2",
    "o2,13047,2024-01-03 09:30:00,-4",
    "o3,17850,2024-02-01 08:00:00,7.25",
    "o4,13047,2024-02-10 12:00:00,3",
    "o5,12583,2024-02-11 12:00:00,30",
]
CLEAN = "\n".join([HEADER, *ROWS]) + "\n"
FEEDBACK = (
    "customer_id,submitted_at,kind,score\n"
    "17850,2024-01-05 10:00:00,nps,9\n"
    "13047,2024-01-06 10:00:00,csat,4\n"
    "12583,2024-02-12 10:00:00,review,5\n"
)
TICKETS = (
    "ticket_id,customer_id,opened_at,closed_at,channel\n"
    "t1,17850,2024-01-05 10:00:00,2024-01-06 10:00:00,email\n"
    "t2,13047,2024-01-07 10:00:00,,chat\n"
)
LOYALTY = (
    "customer_id,occurred_at,kind,points\n"
    "17850,2024-01-05 10:00:00,enroll,\n"
    "17850,2024-01-06 10:00:00,earn,120\n"
    "13047,2024-01-07 10:00:00,earn,80\n"
)


def with_rows(*rows: str, header: str = HEADER) -> str:
    """The clean transactions plus `rows`."""
    return "\n".join([header, *ROWS, *rows]) + "\n"


def with_column(csv: str, name: str, value: str, *, last: str | None = None) -> str:
    """`csv` with one more column `name` holding `value` on every row (`last` on the last row)."""
    header, *rows = csv.splitlines()
    values = [value] * len(rows)
    if last is not None:
        values[-1] = last
    return "".join(f"{line}\n" for line in [f"{header},{name}", *(f"{row},{v}" for row, v in zip(rows, values))])


@dataclass(frozen=True)
class Case:
    """An export: files (name -> text or bytes, or a callable writing into the folder), the source
    mapping, ingest settings and an optional set-up (e.g. a monkeypatch) before running."""

    files: dict[str, str | bytes | Callable[[Path], None]]
    sources: dict[str, dict] = field(default_factory=lambda: {"transactions": {"path": "t.csv"}})
    ingest: dict = field(default_factory=dict)


def write_files(folder: Path, case: Case) -> None:
    for name, content in case.files.items():
        path = folder / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def raw_config(case: Case) -> dict:
    return {
        "paths": {"data_dir": "out", "models_dir": "models"},
        "sources": case.sources,
        "ingest": case.ingest,
        "features": {"snapshots": {"dates": ["2024-03-01"]}},
    }


def ingest_in_memory(folder: Path, case: Case) -> IngestResult:
    """Read and validate every source of `case` (the pure functions `churn ingest` runs; nothing written)."""
    write_files(folder, case)
    cfg = config_from_dict(raw_config(case), base_dir=folder)
    configured = cfg.sources.configured()
    raws = {name: read_exports(name, source) for name, source in configured.items()}
    return ingest_sources(raws, sources=configured, cfg=cfg.ingest)


def run_cli(folder: Path, case: Case):
    """`churn ingest -c <config> -q` in-process; the output with line wrapping undone."""
    write_files(folder, case)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(raw_config(case)), encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", "-c", str(config), "-q"], env={"COLUMNS": "4000"})
    return result, " ".join(result.output.split())


# --- 1. clear one-line errors --------------------------------------------------------------------


def _huge_line(path: Path) -> None:
    path.write_bytes(b"x" * (2**20 + 10))


def _not_parquet(path: Path) -> None:
    path.write_text(CLEAN, encoding="utf-8")


def _parquet_with_flags(path: Path) -> None:
    """The clean orders as typed Parquet, with a true/false `quantity` on the last row (and 1 on the others)."""
    import pyarrow as pa

    frame = pd.read_csv(io.StringIO(CLEAN), dtype=str)
    table = pa.table({**{c: pa.array(frame[c].tolist()) for c in frame.columns},
                      "amount": frame["amount"].astype(float),
                      "quantity": pa.array([None] * (len(frame) - 1) + [True], pa.bool_())})
    pq.write_table(table, path)


def _parquet_with_two_amounts(path: Path) -> None:
    import pyarrow as pa

    arrays = [pa.array(["o1"]), pa.array(["c1"]), pa.array(["2024-01-01"]), pa.array([1.0]), pa.array([2.0])]
    pq.write_table(pa.Table.from_arrays(arrays, names=["order_id", "customer_id", "ordered_at", "amount", "amount"]), path)


ERRORS = {
    "missing file": (Case(files={}), r"source transactions: file not found: .*t\.csv; fix sources\.transactions\.path"),
    "glob matching nothing": (
        Case(files={}, sources={"transactions": {"path": "exports/*.csv"}}),
        r"source transactions: no file matches .*exports/\*\.csv",
    ),
    "a folder given as the path": (
        Case(files={"t.csv": lambda path: path.mkdir()}),
        r"source transactions: .*t\.csv is a folder, not a file; point sources\.transactions\.path at a file, or at a glob",
    ),
    "empty file": (Case(files={"t.csv": ""}), r"source transactions: .*t\.csv is empty \(not even a header row\)"),
    "one huge line without a line break": (
        Case(files={"t.csv": _huge_line}),
        r"source transactions: .*t\.csv starts with a line of more than 1 MiB with no line break, so it has no header row",
    ),
    "required column missing": (
        Case(files={"t.csv": CLEAN.replace("ordered_at", "date")}),
        r"source transactions: .*t\.csv lacks required column\(s\) ordered_at; map the file's columns with sources\.transactions\.rename",
    ),
    "amount missing, no quantity and unit price": (
        Case(files={"t.csv": CLEAN.replace(",amount", ",value")}),
        r"lacks required column\(s\) amount; .*without amount, give quantity and unit_price",
    ),
    "wrong separator": (
        Case(files={"t.csv": CLEAN.replace(",", ";")}),
        r"only one column was read .*seems to use ';' as separator, set sources\.transactions\.read\.sep: ';'",
    ),
    "bytes that are not UTF-8": (
        Case(files={"t.csv": CLEAN.encode() + "o9,Müller,2024-01-04,1\n".encode("latin-1")}),
        r"source transactions: .*t\.csv is not valid utf-8 \(line 8, byte \d+\); re-export it as UTF-8",
    ),
    "two columns with one name": (
        Case(files={"t.csv": with_column(CLEAN, "amount", "1")}),
        r"source transactions: .*t\.csv has column\(s\) 'amount' more than once",
    ),
    "two columns with one name once spaces are stripped": (
        Case(files={"t.csv": "order_id,customer_id,ordered_at,amount, amount\no1,c1,2024-01-01,1,2\n"}),
        r"source transactions: .*t\.csv has column\(s\) 'amount' more than once",
    ),
    "two columns with one name after rename": (
        Case(files={"t.csv": "order_id,customer_id,ordered_at,amount,net\no1,c1,2024-01-01,1,2\n"},
             sources={"transactions": {"path": "t.csv", "rename": {"net": "amount"}}}),
        r"would have column\(s\) amount twice after sources\.transactions\.rename",
    ),
    # a ticket export mapped as feedback, its closing time as the rating's: the file's own submitted_at is the
    # other column (before: "rename only one file column onto each contract column", while only one was renamed)
    "a file column named like the contract column another is renamed onto": (
        Case(files={"t.csv": CLEAN, "f.csv": "customer_id,submitted_at,closed_at,score\nc1,2024-01-01,2024-01-02,4\n"},
             sources={"transactions": {"path": "t.csv"}, "feedback": {
                 "path": "f.csv", "rename": {"closed_at": "submitted_at"}, "constants": {"kind": "csat"}}}),
        r"source feedback: .*f\.csv would have column\(s\) submitted_at twice after sources\.feedback\.rename "
        r"\('closed_at' renamed onto submitted_at and the file's own 'submitted_at'\); rename only one file column "
        r"onto each contract column \(a file column named like one is read as it unless renamed away\)",
    ),
    "two columns with one name in Parquet": (
        Case(files={"t.parquet": _parquet_with_two_amounts}, sources={"transactions": {"path": "t.parquet"}}),
        r"source transactions: .*t\.parquet has column\(s\) 'amount' more than once",
    ),
    "a column named like a quarantine column": (
        Case(files={"t.csv": with_column(CLEAN, "reason", "x")}),
        r"has column\(s\) reason, reserved for the quarantine file",
    ),
    "transactions with a header but no rows": (
        Case(files={"t.csv": HEADER + "\n"}), r"source transactions: .*t\.csv has a header but no rows; transactions are required",
    ),
    "not a Parquet file": (
        Case(files={"t.parquet": _not_parquet}, sources={"transactions": {"path": "t.parquet"}}),
        r"source transactions: .*t\.parquet is not a readable Parquet file: .*; re-export it",
    ),
    # another format under a .csv name (an .xlsx renamed, an export's Parquet or JSON): before, a CSV parse error
    # quoting binary bytes, or JSON records named as columns 'more than once'
    "an Excel workbook named .csv": (
        Case(files={"t.csv": b"PK\x03\x04\x14\x00\x06\x00" + bytes(40)}),
        r"source transactions: .*t\.csv is a zip archive \(as an Excel \.xlsx workbook is\), not CSV text; set "
        r"sources\.transactions\.format: excel if it is a workbook, or unzip it$",
    ),
    "a Parquet file named .csv": (
        Case(files={"t.csv": lambda path: _parquet_of_clean(path)}),
        r"t\.csv is a Parquet file, not CSV text; set sources\.transactions\.format: parquet$",
    ),
    "JSON records named .csv": (
        Case(files={"t.csv": '[{"order_id": "o1", "customer_id": "c1", "ordered_at": "2024-01-01", "amount": 1},\n'
                             ' {"order_id": "o2", "customer_id": "c1", "ordered_at": "2024-01-02", "amount": 1}]\n'}),
        r"t\.csv is JSON, not CSV text; set sources\.transactions\.format: json$",
    ),
    "a truncated gzip file": (
        Case(files={"t.csv.gz": gzip.compress(CLEAN.encode())[:-12]}, sources={"transactions": {"path": "t.csv.gz"}}),
        r"source transactions: .*t\.csv\.gz is a gzip file but cannot be unpacked \(Compressed file ended before the "
        r"end-of-stream marker was reached\); download or export it again$",
    ),
    "UTF-16 text with its byte-order mark": (
        Case(files={"t.csv": CLEAN.encode("utf-16")}),
        r"t\.csv is UTF-16 text \(it starts with UTF-16's byte-order mark\), not CSV text; set "
        r"sources\.transactions\.read\.encoding: utf-16$",
    ),
    "UTF-16 text without a byte-order mark": (
        Case(files={"t.csv": CLEAN.encode("utf-16-le")}),
        r"t\.csv is UTF-16 text without a byte-order mark \(zero bytes between its letters\), not CSV text; set "
        r"sources\.transactions\.read\.encoding: utf-16-le$",
    ),
    # (its quoted cell runs over the rest of the file; on the last line alone it is quarantined: test_ingest_bad_lines)
    "an unclosed quote on the first line": (
        Case(files={"t.csv": "\n".join([HEADER, 'o9,"17850,2024-01-04,1', *ROWS]) + "\n"}),
        r"source transactions: .*t\.csv cannot be parsed as CSV with sep=',': 1 of its 1 data rows have another number "
        r"of fields than the 4 of the header \(e\.g\. line 2: 2 fields, an unclosed quote\?\); check "
        r"sources\.transactions\.read\.sep and the quoting of those lines$",
    ),
    "mostly bad rows": (
        Case(files={"t.csv": with_rows(*[f"o{i},1,yesterday,1" for i in range(10, 14)])}),
        r"source transactions: 40\.0% of 10 rows are bad \(limit 20%\); top reasons: ordered_at: not a timestamp \(4 rows\)",
    ),
    "mostly anonymous rows (a mis-mapped id column)": (
        Case(files={"t.csv": with_rows(*[f"o{i},,2024-01-04,1" for i in range(10, 17)])}),
        r"source transactions: 53\.8% of 13 rows have no customer_id \(limit 50%\)\. Nothing was written\. Is the right column mapped onto customer_id",
    ),
    "order ids and one_order_per_row": (
        Case(files={"t.csv": CLEAN}, sources={"transactions": {"path": "t.csv", "one_order_per_row": True}}),
        r"has an order_id column but sources\.transactions\.one_order_per_row is true",
    ),
    "a bad ingest setting": (
        Case(files={"t.csv": CLEAN}, ingest={"max_anonymous_share": 2}),
        r"config error: invalid configuration in .*config\.yaml: ingest\.max_anonymous_share: Input should be less than or equal to 1",
    ),
}


@pytest.mark.parametrize("case, message", ERRORS.values(), ids=ERRORS.keys())
def test_hostile_export_gets_a_one_line_error(tmp_path, case, message):
    result, output = run_cli(tmp_path, case)
    assert result.exit_code in (1, 2), output
    assert isinstance(result.exception, SystemExit)  # a domain error, not a crash
    assert "Traceback" not in result.output
    assert re.search(message, output), output
    assert not (tmp_path / "out" / "validated").exists()  # nothing written


def test_permission_denied_on_a_source_file_is_a_one_line_error(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text(CLEAN, encoding="utf-8")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: let the kernel's answer be the one a user would get
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == path else real_access(p, mode, **kw))
    result, output = run_cli(tmp_path, Case(files={}))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"error: source transactions: permission denied reading .*t\.csv; make the file readable", output), output


def test_disk_full_while_writing_is_a_one_line_error_naming_the_file(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", full_disk)  # the library call that writes every Parquet output
    result, output = run_cli(tmp_path, Case(files={"t.csv": CLEAN}))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"error: cannot write .*out/(validated|quarantine)/\w+\.parquet: No space left on device; "
                     r"nothing was published", output), output
    assert not (tmp_path / "out" / "validated").exists()  # no half set: nothing of this run was published


# --- 2. quarantine rows with a reason ------------------------------------------------------------


SMALL_SOURCE = {"max_bad_share": 0.5}  # one bad row among three or four is more than the default 20%


def beside_clean_orders(source: str, text: str) -> Case:
    """The clean orders plus the file `text` as `source` (the small-source bad share: one bad row is allowed)."""
    return Case(
        files={"t.csv": CLEAN, "x.csv": text},
        sources={"transactions": {"path": "t.csv"}, source: {"path": "x.csv"}},
        ingest=SMALL_SOURCE,
    )


QUARANTINED = {
    "a date that is not a date": (Case(files={"t.csv": with_rows("o9,17850,yesterday,1")}), "ordered_at: not a timestamp"),
    "an impossible date": (Case(files={"t.csv": with_rows("o9,17850,2024-02-30 10:00:00,1")}), "ordered_at: not a timestamp"),
    "a far-future date": (Case(files={"t.csv": with_rows("o9,17850,2099-01-01,1")}), "ordered_at: later than the data's end + tolerance (2024-02-12 12:00 UTC)"),
    "an implausibly old date": (Case(files={"t.csv": with_rows("o9,17850,1950-06-15,1")}), "ordered_at: earlier than the data's start (2024-01-01 UTC)"),
    # before: 'later than the data's end' and 'earlier than the data's start', as for a typo in a year
    **{f"the placeholder {day} as an order's time": (
        Case(files={"t.csv": with_rows(f"o9,17850,{day},1")}), f"ordered_at: {PLACEHOLDER_TIME}")
       for day in ("9999-12-31", "9999-12-31 23:59:59", "2099-12-31", "1900-01-01", "0001-01-01")},
    # before: a traceback (pandas cannot apply a zone's rules at the end of the year 9999)
    "the placeholder 9999-12-31 23:59:59 as an order's time in New York": (
        Case(files={"t.csv": with_rows("o9,17850,9999-12-31 23:59:59,1")},
             sources={"transactions": {"path": "t.csv", "timezone": "America/New_York"}}),
        f"ordered_at: {PLACEHOLDER_TIME}"),
    "the Unix epoch as a date": (Case(files={"t.csv": with_rows("o9,17850,1970-01-01 00:00:00,1")}), "ordered_at: 1970-01-01 (Unix time zero), far before the data's start (2024-01-01 UTC): a placeholder for 'none', no time"),
    "a date before ingest.earliest": (
        Case(files={"t.csv": with_rows("o9,17850,2023-12-24,1")}, ingest={"earliest": "2024-01-01"}),
        "ordered_at: earlier than ingest.earliest (2024-01-01 UTC)",
    ),
    "a decimal comma": (Case(files={"t.csv": with_rows('o9,17850,2024-01-04,"12,50"')}),
                        "amount: not a number (a decimal comma? set sources.transactions.read.decimal: ',' and, if "
                        "the numbers have one, read.thousands)"),
    "infinite amount": (Case(files={"t.csv": with_rows("o9,17850,2024-01-04,inf")}), "amount: not a number"),
    # before: validated as an amount of 0 (1e-400 is below what a float holds); 1e400 as 'not a number'
    **{f"an amount of {value}": (
        Case(files={"t.csv": with_rows(f"o9,17850,2024-01-04,{value}")}),
        f"amount: not a number (beyond the range a number is held in, e.g. '{value}': no value an export writes)")
       for value in ("1e-400", "1e400", "-2e-310")},
    # before: 'not a number (words: 'True', 'False'; give each a number with ...recode ...)'
    "a true/false Parquet column mapped onto quantity": (
        Case(files={"t.parquet": _parquet_with_flags}, sources={"transactions": {"path": "t.parquet"}}),
        "quantity: not a number (true/false values, as a yes/no column holds: is the right column mapped? To count "
        "them, give each a number with sources.transactions.recode: {quantity: {\"True\": <number>}})"),
    "a null token as amount": (Case(files={"t.csv": with_rows("o9,17850,2024-01-04,NaN")}), "amount: missing"),
    "an amount of 1e15": (Case(files={"t.csv": with_rows("o9,17850,2024-01-04,1e15")}), "amount: beyond ±1e+09 (ingest.max_abs_amount)"),
    "a refund of -6e14": (Case(files={"t.csv": with_rows("o9,17850,2024-01-04,-6e14")}), "amount: beyond ±1e+09 (ingest.max_abs_amount)"),
    "an amount above a lowered bound": (
        Case(files={"t.csv": with_rows("o9,17850,2024-01-04,5000")}, ingest={"max_abs_amount": 1000}),
        "amount: beyond ±1000 (ingest.max_abs_amount)",
    ),
    "a quantity of 1e15 (features refuse to sum it)": (
        Case(files={"t.csv": with_column(with_rows("o9,17850,2024-01-04,1"), "quantity", "1", last="1e15")}),
        "quantity: beyond ±1e+09 (ingest.max_abs_amount)",
    ),
    "a missing order id": (Case(files={"t.csv": with_rows(",17850,2024-01-04,1")}), "order_id: missing"),
    "a null token as order id": (Case(files={"t.csv": with_rows("NULL,17850,2024-01-04,1")}), "order_id: missing"),
    "a guest checkout": (Case(files={"t.csv": with_rows("o9,,2024-01-04,1")}), ANONYMOUS),
    "a zero-width space in a customer id (a second customer 17850 otherwise)": (
        Case(files={"t.csv": with_rows("o9,\u200b17850,2024-01-04,1")}), f"customer_id: {INVISIBLE_ID}"),
    "a NUL byte as an order id": (Case(files={"t.csv": with_rows("\x00,17850,2024-01-04,1")}), f"order_id: {INVISIBLE_ID}"),
    "a negative discount": (
        Case(files={"t.csv": with_column(with_rows("o9,17850,2024-01-04,1"), "discount", "0", last="-2")}),
        "discount: negative",
    ),
    "nps out of range": (beside_clean_orders("feedback", FEEDBACK + "17850,2024-01-08,nps,11\n"), "score: outside 0-10 for nps"),
    "an unknown feedback kind": (beside_clean_orders("feedback", FEEDBACK + "17850,2024-01-08,stars,3\n"), "kind: not one of nps, csat, review ('stars'; map each onto one of them with sources.feedback.recode: {kind: {stars: <kind>}})"),
    "words in a number column (a help desk's ratings mapped onto score)": (
        beside_clean_orders("feedback", FEEDBACK + "17850,2024-01-08,csat,good\n"),
        "score: not a number (words: 'good'; give each a number with sources.feedback.recode: {score: {good: <number>}}, "
        "or leave their rows out with sources.feedback.exclude: {score: [good]})"),
    "a true/false column with another word (a help desk's status mapped onto resolved)": (
        beside_clean_orders("support_tickets", with_column(TICKETS, "resolved", "true", last="on hold")),
        "resolved: not true/false/yes/no/1/0 ('on hold'; say what each means with sources.support_tickets.recode: "
        "{resolved: {on hold: false}}, or true where it means yes)"),
    "a ticket closed before it opened": (beside_clean_orders("support_tickets", TICKETS + "t3,17850,2024-01-09 10:00:00,2024-01-08 10:00:00,email\n"), "closed_at: before opened_at"),
    "an unknown ticket channel": (beside_clean_orders("support_tickets", TICKETS + "t3,17850,2024-01-09 10:00:00,,pigeon\n"), "channel: not one of phone, email, chat, social, other ('pigeon'; map each onto one of them with sources.support_tickets.recode: {channel: {pigeon: <channel>}})"),
    "loyalty points of 1e15": (beside_clean_orders("loyalty_events", LOYALTY + "13047,2024-01-08 10:00:00,earn,1e15\n"), "points: beyond ±1e+09 (ingest.max_abs_amount)"),
    "a derived amount without a quantity": (
        Case(files={"t.csv": "order_id,customer_id,ordered_at,quantity,unit_price\n"
                             + "".join(f"o{i},17850,2024-01-0{i} 10:00:00,2,3.5\n" for i in range(1, 8))
                             + "o9,17850,2024-01-04,,3.5\n"}),
        "amount (= quantity × unit_price): missing",
    ),
}


@pytest.mark.parametrize("case, reason", QUARANTINED.values(), ids=QUARANTINED.keys())
def test_hostile_rows_are_quarantined_with_a_reason(tmp_path, case, reason):
    result = ingest_in_memory(tmp_path, case)
    quarantined = pd.concat([source.quarantine for source in result.sources.values()], ignore_index=True)
    assert quarantined["reason"].tolist() == [reason]
    for name, source in result.sources.items():
        report = source.report
        assert report["input_rows"] == report["validated_rows"] + report["quarantined_rows"], name
        assert (len(source.validated), len(source.quarantine)) == (report["validated_rows"], report["quarantined_rows"])


# --- 3. the same validated output as the clean export --------------------------------------------


def _parquet_of_clean(path: Path) -> None:
    frame = pd.read_csv(pd.io.common.StringIO(CLEAN), dtype={"customer_id": "float64", "order_id": "str"})
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    frame.to_parquet(path)


def _float_ids_half_parquet(folder: Path) -> None:
    """The first three rows as Parquet with float customer ids, the rest as CSV with text ids."""
    folder.mkdir()
    frame = pd.read_csv(pd.io.common.StringIO("\n".join([HEADER, *ROWS[:3]])), dtype={"order_id": "str"})
    frame["customer_id"] = frame["customer_id"].astype("float64")
    frame.to_parquet(folder / "part-1.parquet")
    (folder / "part-2.csv").write_text("\n".join([HEADER, *ROWS[3:]]) + "\n", encoding="utf-8")


QUANTITY_EXPORT = (
    "InvoiceNo,CustomerID,InvoiceDate,Quantity,UnitPrice\n"
    "o1,17850.0,2024-01-01 10:00:00,3,3.5\n"
    "o1,17850.0,2024-01-01 10:00:00,1,2\n"
    "o2,13047.0,2024-01-03 09:30:00,-2,2\n"
    "o3,17850.0,2024-02-01 08:00:00,1,7.25\n"
    "o4,13047.0,2024-02-10 12:00:00,6,0.5\n"
    "o5,12583.0,2024-02-11 12:00:00,10,3\n"
)

SAME_AS_CLEAN = {
    "a UTF-8 byte-order mark": Case(files={"t.csv": "\ufeff" + CLEAN}),
    "CRLF line endings": Case(files={"t.csv": CLEAN.replace("\n", "\r\n")}),
    "semicolons with read.sep": Case(files={"t.csv": CLEAN.replace(",", ";")},
                                     sources={"transactions": {"path": "t.csv", "read": {"sep": ";"}}}),
    "UTF-16 text with read.encoding: utf-16": Case(files={"t.csv": CLEAN.encode("utf-16")},
                                                   sources={"transactions": {"path": "t.csv", "read": {"encoding": "utf-16"}}}),
    "tabs with read.sep": Case(files={"t.csv": CLEAN.replace(",", "\t")},
                               sources={"transactions": {"path": "t.csv", "read": {"sep": "\t"}}}),
    "a quoted line break in an extra column": Case(files={"t.csv": with_column(CLEAN, "note", '"two\nlines"')}),
    # a help desk's ticket descriptions of many lines: the file (1.5 MiB) is longer than a block of the fast CSV
    # reader, whose boundary falls inside a quoted cell (before: "cannot be parsed as CSV ... check read.sep")
    "quoted line breaks in a file longer than a read block": Case(
        files={"t.csv": with_column(CLEAN, "note", '"' + "a line of a ticket's description\n" * 8000 + '"')}),
    "whitespace around ids and names": Case(files={"t.csv": CLEAN.replace(",17850,", ",  17850 ,").replace("amount", " amount ")}),
    "float-formatted ids": Case(files={"t.csv": CLEAN.replace(",17850,", ",17850.0,").replace(",13047,", ",13047.00,")}),
    "float ids in Parquet and text ids in CSV, one glob": Case(
        files={"parts": _float_ids_half_parquet}, sources={"transactions": {"path": "parts/part-*"}}),
    "a Parquet export with typed columns": Case(files={"t.parquet": _parquet_of_clean},
                                                sources={"transactions": {"path": "t.parquet"}}),
    "columns in another order": Case(files={"t.csv": "\n".join(
        ",".join(line.split(",")[i] for i in (3, 1, 0, 2)) for line in CLEAN.splitlines()) + "\n"}),
    "the export's own column names": Case(
        files={"t.csv": CLEAN.replace(HEADER, "Invoice,Client,Date,Net")},
        sources={"transactions": {"path": "t.csv", "rename": {"Invoice": "order_id", "Client": "customer_id",
                                                              "Date": "ordered_at", "Net": "amount"}}}),
    "blank lines at the end": Case(files={"t.csv": CLEAN + "\n\n"}),
    "trailing separators (blank column names)": Case(files={"t.csv": CLEAN.replace("\n", ",,\n")}),
    "a header-only feedback file without a trailing newline": Case(
        files={"t.csv": CLEAN, "f.csv": "customer_id,submitted_at,kind,score"},
        sources={"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}}),
    "quantity and unit price instead of amount": Case(
        files={"t.csv": QUANTITY_EXPORT},
        sources={"transactions": {"path": "t.csv", "rename": {"InvoiceNo": "order_id", "CustomerID": "customer_id",
                                                              "InvoiceDate": "ordered_at", "Quantity": "quantity",
                                                              "UnitPrice": "unit_price"}}}),
    "a gzip-compressed CSV named .csv": Case(files={"t.csv": gzip.compress(CLEAN.encode())}),
    "a zip of the CSV": Case(files={"t.zip": zipped({"export/t.csv": CLEAN, "__MACOSX/export/._t.csv": "x"})},
                             sources={"transactions": {"path": "t.zip"}}),
    "ids in another case with ingest.id_case": Case(
        files={"t.csv": CLEAN.replace(",17850,", ",AB17850,", 1).replace(",17850,", ",ab17850,")},
        ingest={"id_case": "lower"}),
}
# What the clean export gives for the columns every variant has; some add columns of their own.
COMPARED = ["order_id", "customer_id", "ordered_at", "amount"]


@pytest.fixture(scope="module")
def clean_validated(tmp_path_factory) -> pd.DataFrame:
    result = ingest_in_memory(tmp_path_factory.mktemp("clean"), Case(files={"t.csv": CLEAN}))
    return result.sources["transactions"].validated[COMPARED]


@pytest.mark.parametrize("case", SAME_AS_CLEAN.values(), ids=SAME_AS_CLEAN.keys())
def test_harmless_export_variants_validate_like_the_clean_export(tmp_path, case, clean_validated):
    result = ingest_in_memory(tmp_path, case)
    validated = result.sources["transactions"].validated[COMPARED]
    expected = clean_validated
    if case.ingest.get("id_case") == "lower":
        expected = clean_validated.assign(customer_id=clean_validated["customer_id"].str.replace("17850", "ab17850"))
    pd.testing.assert_frame_equal(validated, expected)
    for source in result.sources.values():
        assert source.report["quarantined_rows"] == 0, source.report["top_reasons"]
    assert validated["customer_id"].nunique() == 3  # 17850, 13047, 12583: float text and Parquet floats too


def test_null_tokens_in_ids_are_anonymous_not_one_pseudo_customer(tmp_path):
    tokens = ["NULL", "null", "NaN", "N/A", "None", ""]
    case = Case(files={"t.csv": with_rows(*[f"o{i},{token},2024-01-04,1" for i, token in enumerate(tokens, 10)])},
                ingest={"max_anonymous_share": 0.6})
    result = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert result.quarantine["reason"].tolist() == [ANONYMOUS] * len(tokens)
    assert result.quarantine["customer_id"].isna().all()  # read as missing, not as the text 'NULL'
    assert result.report["anonymous_rows"] == len(tokens) and result.report["bad_rows"] == 0


def test_configured_na_values_replace_the_default_tokens(tmp_path):
    case = Case(files={"t.csv": with_rows("o9,-,2024-01-04,1", "o10,NULL,2024-01-04,1")},
                sources={"transactions": {"path": "t.csv", "read": {"na_values": ["-"]}}})
    result = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert result.quarantine["reason"].tolist() == [ANONYMOUS]  # '-' is missing; 'NULL' is an id now
    assert "NULL" in set(result.validated["customer_id"])


def test_a_quarter_of_guest_checkouts_ingests_with_default_settings(tmp_path):
    guests = [f"g{i},,2024-01-0{i % 9 + 1} 10:00:00,5" for i in range(2)]  # 2 of 8 rows: 25%
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": with_rows(*guests)}))
    report = result.sources["transactions"].report
    assert (report["input_rows"], report["validated_rows"], report["anonymous_rows"]) == (8, 6, 2)
    assert (report["anonymous_share"], report["bad_rows"], report["bad_share"]) == (0.25, 0, 0.0)


def test_surveys_sent_but_not_answered_are_quarantined_not_bad(tmp_path):
    # A survey tool's export: most rows are invitations nobody answered, their score blank.
    unanswered = "".join(f"{customer},2024-01-1{day} 10:00:00,nps,\n"
                         for day, customer in enumerate(["17850", "13047", "12583", "17850", "13047"]))
    case = Case(files={"t.csv": CLEAN, "x.csv": (FEEDBACK + unanswered).replace(",score\n", ",Score\n", 1)},
                sources={"transactions": {"path": "t.csv"},
                         "feedback": {"path": "x.csv", "rename": {"Score": "score"}}})
    feedback = ingest_in_memory(tmp_path, case).sources["feedback"]
    report = feedback.report
    assert (report["input_rows"], report["validated_rows"], report["quarantined_rows"]) == (8, 3, 5)
    assert (report["bad_rows"], report["bad_share"]) == (0, 0.0)  # 5 of 8 would fail the default 20% limit
    assert feedback.quarantine["reason"].tolist() == ["Score: missing (a survey sent but not answered?)"] * 5
    assert ("5 rows have no Score (surveys sent but not answered?): quarantined, not counted as bad; the feedback "
            "features read the answered ones") in report["notes"]


def help_desk_ratings(ratings: str, **settings) -> Case:
    """The clean orders and a help desk's satisfaction export (`ratings`: Requester, Updated, Satisfaction), read as
    CSAT with `settings` (recode, exclude)."""
    return Case(files={"t.csv": CLEAN, "x.csv": "Requester,Updated,Satisfaction\n" + ratings},
                sources={"transactions": {"path": "t.csv"},
                         "feedback": {"path": "x.csv", "constants": {"kind": "csat"},
                                      "rename": {"Requester": "customer_id", "Updated": "submitted_at",
                                                 "Satisfaction": "score"}, **settings}})


def test_help_desk_ratings_in_words_with_offered_ones_unanswered(tmp_path):
    case = help_desk_ratings("17850,2024-01-05,good\n13047,2024-01-06,offered\n12583,2024-01-07,bad\n"
                             "17850,2024-01-08,unoffered\n",
                             recode={"score": {"good": 5, "bad": 1, "offered": "", "unoffered": ""}})
    feedback = ingest_in_memory(tmp_path, case).sources["feedback"]
    assert feedback.validated[["customer_id", "kind", "score"]].values.tolist() == [["17850", "csat", 5.0],
                                                                                  ["12583", "csat", 1.0]]
    assert feedback.quarantine["Satisfaction"].tolist() == ["offered", "unoffered"]  # as the export wrote them
    assert feedback.report["bad_rows"] == 0


def test_a_closing_date_without_a_time_on_the_opening_day_is_not_before_the_opening(tmp_path):
    # A help desk exports 'Solved at' as a date: a ticket solved on its opening day is not closed before it opened.
    tickets = ("Id,customer_id,Created at,Solved at\n"
               "t1,17850,2024-01-05 10:12:00,2024-01-05\n"  # solved the same day
               "t2,13047,2024-01-07 10:00:00,2024-01-09\n"  # two days later: the start of that day
               "t3,17850,2024-01-09 10:00:00,2024-01-08\n"  # a day before it opened: still before
               "t4,13047,2024-01-10 10:00:00,\n")
    case = Case(files={"t.csv": CLEAN, "x.csv": tickets}, ingest=SMALL_SOURCE,
                sources={"transactions": {"path": "t.csv"}, "support_tickets": {
                    "path": "x.csv", "rename": {"Id": "ticket_id", "Created at": "opened_at", "Solved at": "closed_at"}}})
    result = ingest_in_memory(tmp_path, case).sources["support_tickets"]
    assert result.validated["ticket_id"].tolist() == ["t1", "t2", "t4"]
    assert result.validated["closed_at"].tolist()[:2] == [pd.Timestamp("2024-01-05 10:12", tz="UTC"),
                                                         pd.Timestamp("2024-01-09", tz="UTC")]
    assert result.quarantine["reason"].tolist() == ["Solved at: before Created at"]
    assert ("Solved at holds dates without a time of day: each is read as the start of its day, and 1 on the day of "
            "Created at as at Created at (not before it); hours from Created at to Solved at are lower bounds, up to a "
            "day short") in result.report["notes"]


def test_an_opening_and_a_closing_both_written_as_dates_get_a_note_that_the_hours_are_whole_days(tmp_path):
    # RavenStack's ticket export: submitted_at and closed_at are dates. A ticket closed on its opening day counted
    # 0 hours ('less than an hour' in a reason), without a word; with a time of day on the opening, no such note
    tickets = ("ticket_id,account_id,submitted_at,closed_at\n"
               "t1,17850,2024-01-05,2024-01-05\nt2,13047,2024-01-07,2024-01-08\nt3,17850,2024-01-09,2024-01-09\n")
    sources = {"transactions": {"path": "t.csv"}, "support_tickets": {
        "path": "x.csv", "rename": {"account_id": "customer_id", "submitted_at": "opened_at"}}}
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": CLEAN, "x.csv": tickets}, ingest=SMALL_SOURCE,
                                             sources=sources)).sources["support_tickets"]
    assert ("submitted_at and closed_at both hold dates without a time of day: the hours from one to the other are "
            "whole days, so resolution_hours_mean counts 0 hours for the 2 tickets closed on the day they were opened "
            "(said 'less than an hour' in a reason) and 24, 48, ... for the others, not the time it took; map the "
            "export's times with a time of day where it has them") in result.report["notes"]
    assert len(result.validated) == 3
    (tmp_path / "timed").mkdir()
    timed = tickets.replace(",2024-01-05,", ",2024-01-05 09:30,")
    result = ingest_in_memory(tmp_path / "timed", Case(files={"t.csv": CLEAN, "x.csv": timed}, ingest=SMALL_SOURCE,
                                                       sources=sources)).sources["support_tickets"]
    assert not any("both hold dates" in note for note in result.report["notes"])


def test_dates_on_a_day_whose_midnight_the_clock_skips_are_read_as_dates(tmp_path):
    # Sao Paulo's DST began at 00:00 (2017-10-15 had no midnight): an order of that day and a delivery date on it
    # once stopped ingest with pandas' "nonexistent time" error, wherever the export was from such a zone.
    orders = ("order_id,customer_id,ordered_at,amount,delivered_at\n"
              "o1,17850,2017-10-15 09:30:00,10,2017-10-15\n"  # delivered the same day: at the order, not before
              "o2,13047,2017-10-14 23:00:00,12,2017-10-15\n"  # the first moment of the 15th (01:00 local)
              "o3,12583,2017-10-16 08:00:00,15,2017-10-18\n")
    case = Case(files={"t.csv": orders}, ingest=SMALL_SOURCE,
                sources={"transactions": {"path": "t.csv", "timezone": "America/Sao_Paulo"}})
    result = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert result.validated["order_id"].tolist() == ["o1", "o2", "o3"]
    assert result.validated["delivered_at"].tolist() == [pd.Timestamp("2017-10-15 11:30", tz="UTC"),
                                                        pd.Timestamp("2017-10-15 03:00", tz="UTC"),
                                                        pd.Timestamp("2017-10-18 02:00", tz="UTC")]
    assert any(note.startswith("delivered_at holds dates without a time of day") for note in result.report["notes"])


def test_a_promised_delivery_date_without_a_time_is_kept_by_the_end_of_its_day(tmp_path):
    # Olist's order_estimated_delivery_date is a date ('2018-08-13 00:00:00'): read as the start of its day, 72 of the
    # 415 deliveries the sample's export shows after their promise arrived on the promised day, and counted as late.
    orders = ("order_id,customer_id,ordered_at,amount,delivered_at,promised_delivery_at\n"
              "o1,17850,2018-08-01 10:00:00,10,2018-08-13 15:00:00,2018-08-13\n"  # on the promised day: on time
              "o2,13047,2018-08-01 11:00:00,12,2018-08-14 09:00:00,2018-08-13\n"  # the day after: late
              "o3,12583,2018-08-02 12:00:00,15,2018-08-02 18:00:00,2018-08-02\n"  # promised for the order's day
              "o4,12583,2018-08-03 12:00:00,15,,2018-08-02\n")  # promised before the order: still before it
    case = Case(files={"t.csv": orders}, ingest=SMALL_SOURCE,
                sources={"transactions": {"path": "t.csv", "timezone": "America/Sao_Paulo"}})
    result = ingest_in_memory(tmp_path, case).sources["transactions"]
    valid = result.validated.set_index("order_id")
    assert valid.index.tolist() == ["o1", "o2", "o3"]
    end_of_13th = pd.Timestamp("2018-08-14 02:59:59.999999", tz="UTC")  # 23:59:59.999999 in Sao Paulo (UTC-3)
    assert valid["promised_delivery_at"].tolist()[:2] == [end_of_13th, end_of_13th]
    late = valid["delivered_at"] > valid["promised_delivery_at"]
    assert late.tolist() == [False, True, False]
    assert result.quarantine["reason"].tolist() == ["promised_delivery_at: before ordered_at"]
    assert ("promised_delivery_at holds dates without a time of day: a promise is kept by the end of its day, so each "
            "is read as its day's last moment (a delivery at any time on the promised day is on time)"
            ) in result.report["notes"]


def test_placeholder_dates_in_optional_columns_are_read_as_missing_with_a_note(tmp_path):
    # An order export writes 9999-12-31 for "no promise" and 1900-01-01 for "not delivered". Before: the promise's
    # end of day stopped ingest with a traceback outside UTC (year 10000), and a 1900 delivery quarantined its order.
    orders = ("order_id,customer_id,ordered_at,amount,delivered_at,promised_delivery_at\n"
              "o1,17850,2018-08-01 10:00:00,10,2018-08-13 15:00:00,2018-08-13\n"
              "o2,13047,2018-08-01 11:00:00,12,1900-01-01,9999-12-31\n"
              "o3,12583,2018-08-02 12:00:00,15,1900-01-01 00:00:00,9999-12-31\n")
    case = Case(files={"t.csv": orders}, sources={"transactions": {"path": "t.csv", "timezone": "Europe/London"}})
    result = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert result.validated["order_id"].tolist() == ["o1", "o2", "o3"]
    assert result.validated[["delivered_at", "promised_delivery_at"]].iloc[1:].isna().all().all()
    notes = result.report["notes"]
    assert ("promised_delivery_at: 2 dates read as missing (placeholders that exports write for 'none'): "
            "'9999-12-31' (2)") in notes
    assert ("delivered_at: 2 dates read as missing (placeholders that exports write for 'none'): '1900-01-01' (1), "
            "'1900-01-01 00:00:00' (1)") in notes


def test_open_tickets_closed_at_9999_12_31_leave_the_data_end_where_it_is(tmp_path):
    # A help desk writes 9999-12-31 as the closing time of its open tickets. Before: with two thirds of them open, the
    # data's end (the 95th percentile of all times) was 9999-12-31 and ingest stopped with a traceback.
    tickets = "ticket_id,customer_id,opened_at,closed_at\n" + "".join(
        f"t{i},17850,2024-01-{i + 1:02d} 10:00:00,{'9999-12-31' if i % 3 else '2024-02-01 10:00:00'}\n"
        for i in range(20))
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": CLEAN, "x.csv": tickets}, sources={
        "transactions": {"path": "t.csv"}, "support_tickets": {"path": "x.csv"}}))
    assert result.reference == pd.Timestamp("2024-02-11 12:00", tz="UTC")
    tickets = result.sources["support_tickets"]
    assert len(tickets.validated) == 20 and tickets.validated["closed_at"].isna().sum() == 13
    assert ("closed_at: 13 dates read as missing (placeholders that exports write for 'none'): '9999-12-31' (13)"
            in tickets.report["notes"])


def signups(days: list[str]) -> Case:
    customers = "customer_id,signup_at\n" + "".join(f"c{i},{day}\n" for i, day in enumerate(days))
    return Case(files={"t.csv": CLEAN, "c.csv": customers},
                sources={"transactions": {"path": "t.csv"}, "customers": {"path": "c.csv"}})


def test_a_1970_signup_is_a_real_day_among_old_signups_and_a_placeholder_far_from_the_rest(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "recent").mkdir()
    # 1970-01-01 is Unix time zero, which a zero timestamp reads as, but also a real day of an old customer base.
    old = [f"{year}-0{year % 9 + 1}-15" for year in range(1960, 2024)] + ["1970-01-01"]
    customers = ingest_in_memory(tmp_path / "old", signups(old)).sources["customers"]
    assert customers.validated["signup_at"].notna().all() and len(customers.validated) == len(old)
    recent = [f"20{year}-0{year % 9 + 1}-15" for year in range(15, 24)] + ["1970-01-01 00:00:00"]
    customers = ingest_in_memory(tmp_path / "recent", signups(recent)).sources["customers"]
    assert len(customers.validated) == len(recent) and customers.validated["signup_at"].isna().sum() == 1
    assert customers.quarantine.empty  # before: the customer quarantined for an 'earlier than the data's start' signup
    assert ("signup_at: 1 date read as missing (far outside the data's span, 2015-07-15 to 2024-02-12 UTC: stand-ins "
            "for 'none'?): '1970-01-01 00:00 UTC' (1)") in customers.report["notes"]


def test_nps_scores_that_are_not_whole_numbers_get_a_note(tmp_path):
    # An NPS answer is one of 0..10; 7.5 is an average or another scale. CSAT and review stars may be averaged: 4.5.
    feedback = FEEDBACK + "13047,2024-01-08 10:00:00,nps,7.5\n12583,2024-01-09 10:00:00,nps,8.25\n" \
                          "17850,2024-01-10 10:00:00,csat,4.5\n"
    result = ingest_in_memory(tmp_path, beside_clean_orders("feedback", feedback)).sources["feedback"]
    assert len(result.validated) == 6
    notes = [note for note in result.report["notes"] if "whole number" in note]
    assert notes == ["score: 2 of the 3 nps scores are not whole numbers (e.g. 7.5, 8.25): an NPS answer is a whole "
                     "number from 0 to 10, so these look like averages, percentages or another scale mapped onto "
                     "score; they are kept as given, and the NPS features read them on 0-10 (promoters 9-10, passives "
                     "7-8, detractors 0-6: 8.5 counts as a passive). Map each answer's own score, or set score_scales "
                     "if the export uses another scale"]
    rescaled = beside_clean_orders("feedback", FEEDBACK.replace(",nps,9", ",nps,75"))
    rescaled.sources["feedback"]["score_scales"] = {"nps": [0, 100]}  # 75 of 100 is 7.5 of 10: said so already
    (tmp_path / "rescaled").mkdir()
    result = ingest_in_memory(tmp_path / "rescaled", rescaled).sources["feedback"]
    assert not any("whole number" in note for note in result.report["notes"])


def test_a_true_false_column_listed_as_a_number_attribute_is_noted_as_such(tmp_path):
    def customers(path: Path) -> None:
        import pyarrow as pa

        pq.write_table(pa.table({"customer_id": ["17850", "13047"], "VIP": [True, False]}), path)

    case = Case(files={"t.csv": CLEAN, "c.parquet": customers}, sources={
        "transactions": {"path": "t.csv"}, "customers": {"path": "c.parquet",
                                                         "attributes": [{"column": "VIP", "kind": "number"}]}})
    result = ingest_in_memory(tmp_path, case).sources["customers"]
    assert result.validated["attribute_vip"].isna().all()
    assert any(note.startswith("VIP (attribute_vip, kind number): 2 cells hold no number (true/false values, as a "
                               "yes/no column holds: is the right column mapped?) and are left empty")
               for note in result.report["notes"])


def test_times_in_the_hour_a_clock_change_skips_are_counted_in_a_note(tmp_path):
    # Europe/London skipped 01:00-02:00 on 2011-03-27: no clock showed 01:30. Before: read as 02:00 BST without a word.
    orders = ("order_id,customer_id,ordered_at,amount\n"
              "o1,17850,2011-03-26 10:00:00,10\no2,13047,2011-03-27 01:30:00,12\no3,12583,2011-03-27 01:10:00,15\n"
              "o4,12583,2011-03-27 02:00:00,15\no5,17850,2011-03-27 02:00:00+01:00,15\n"
              "o6,17850,2011-10-30 01:30:00,5\n")
    case = Case(files={"t.csv": orders}, sources={"transactions": {"path": "t.csv", "timezone": "Europe/London"}})
    result, output = run_cli(tmp_path, case)
    assert result.exit_code == 0, output
    report = yaml.safe_load((tmp_path / "out" / "reports" / "ingest_report.json").read_text(encoding="utf-8"))
    assert ("2 ordered_at times fall in the hour skipped by the clock change of 2011-03-27 in Europe/London (e.g. "
            "'2011-03-27 01:30:00'), which no clock showed: read as the first moment after it (02:00 BST)"
            ) in report["sources"]["transactions"]["notes"]
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert (validated["ordered_at"].iloc[1:5] == pd.Timestamp("2011-03-27 01:00", tz="UTC")).all()


def test_a_promised_delivery_without_a_delivery_time_is_an_error_naming_the_mapping(tmp_path):
    """Northwind's orders give RequiredDate (a promise) and ShippedDate (not a delivery): with the promise mapped alone,
    every order counted as undelivered and late since its promise (up to 27 'late deliveries' a customer, 258 days
    late in the median, in the reasons). A promise with the delivery mapped beside it stays as it was."""
    orders = ("order_id,customer_id,ordered_at,amount,RequiredDate\n"
              "o1,17850,2018-08-01 10:00:00,10,2018-08-13\no2,13047,2018-08-01 11:00:00,12,2018-08-14\n")
    case = Case(files={"t.csv": orders}, ingest=SMALL_SOURCE,
                sources={"transactions": {"path": "t.csv", "rename": {"RequiredDate": "promised_delivery_at"}}})
    result, output = run_cli(tmp_path, case)
    assert result.exit_code == 1
    assert ("error: sources.transactions: promised_delivery_at is mapped (from 'RequiredDate') but delivered_at is "
            "not, so every order would count as not delivered and late since its promise (late_deliveries, "
            "lateness_days_mean, undelivered_orders); map the delivery time onto delivered_at with "
            "sources.transactions.rename, or leave promised_delivery_at unmapped") in output
    assert "Traceback" not in output
    delivered = orders.replace("RequiredDate\n", "RequiredDate,delivered_at\n").replace("13\n", "13,2018-08-10\n")
    case = Case(files={"t.csv": delivered.replace("14\n", "14,\n")}, ingest=SMALL_SOURCE,
                sources={"transactions": {"path": "t.csv", "rename": {"RequiredDate": "promised_delivery_at"}}})
    assert len(ingest_in_memory(tmp_path, case).sources["transactions"].validated) == 2


def test_one_answer_written_on_several_orders_counts_once(tmp_path):
    # Olist writes a review of a checkout of two orders on each order, with one review_id: 28 reviews of a sample
    # were counted two or three times for their customer (34 rows too many; review_mean, low_ratings_count).
    reviews = ("feedback_id,order_id,customer_id,submitted_at,kind,score\n"
               "r1,o1,17850,2024-01-05 10:00:00,review,1\n"
               "r1,o2,17850,2024-01-05 10:00:00,review,1\n"  # the same answer about another order
               "r2,o3,13047,2024-01-06 10:00:00,review,5\n"
               "r2,o5,13047,2024-01-07 10:00:00,review,4\n"  # the id again, another answer: kept
               ",o4,12583,2024-01-08 10:00:00,review,3\n,o4,12583,2024-01-08 10:00:00,review,3\n")  # no id: kept
    result = ingest_in_memory(tmp_path, beside_clean_orders("feedback", reviews)).sources["feedback"]
    assert result.validated["order_id"].tolist() == ["o1", "o3", "o5", "o4", "o4"]
    assert result.quarantine["order_id"].tolist() == ["o2"]
    assert result.quarantine["reason"].tolist() == [
        "feedback_id: another row holds this answer (the same feedback_id, customer, time, kind and score: one answer "
        "about several orders is counted once)"]
    assert result.report["bad_rows"] == 0
    assert any(note.startswith("1 row repeats the answer of another row") for note in result.report["notes"])


def test_tickets_resolved_without_a_closing_time_get_a_warning_naming_the_mapping(tmp_path, caplog):
    # A help desk export whose Status says Resolved, mapped without its resolution time: closed_at stays empty.
    tickets = ("Ticket ID,Email,Created time,Status\n"
               "t1,17850,2024-01-05 10:00:00,Resolved\nt2,13047,2024-01-07 10:00:00,Open\n"
               "t3,17850,2024-01-08 10:00:00,Closed\nt4,12583,2024-01-09 10:00:00,Pending\n")
    case = Case(files={"t.csv": CLEAN, "x.csv": tickets},
                sources={"transactions": {"path": "t.csv"}, "support_tickets": {
                    "path": "x.csv", "rename": {"Ticket ID": "ticket_id", "Email": "customer_id",
                                                "Created time": "opened_at", "Status": "resolved"},
                    "recode": {"resolved": {"Resolved": True, "Closed": True, "Open": False, "Pending": False}}}})
    with caplog.at_level("WARNING", logger="pipeline"):
        result = ingest_in_memory(tmp_path, case).sources["support_tickets"]
    note = ("2 of 4 tickets are resolved by Status but have no closed_at (x.csv: 2): each counts as open until the "
            "export's newest time (2024-01-09 10:00 UTC, the latest time of any kept ticket) and as resolved from "
            "then on, so snapshots after the export (the scoring day's) see it resolved, but earlier ones see it open "
            "(open_tickets, unresolved_share and the actions that read them), and its resolution time is unknown "
            "(resolution_hours_mean leaves it out); 1 customer. Map the export's resolution time onto closed_at with its rename (e.g. {Resolved time: "
            "closed_at} for Freshdesk, {Solved at: closed_at} for Zendesk); an export without one cannot tell when "
            "they were resolved")
    assert note in result.report["notes"] and note in caplog.text
    assert len(result.validated) == 4  # nothing is left out
    newest = pd.Timestamp("2024-01-09 10:00", tz="UTC")  # the export's newest row: its status is known from then
    assert result.validated["status_known_at"].tolist() == [newest, pd.NaT, newest, pd.NaT]


def closed_and_replied(pairs: list[tuple[str, str]]) -> Case:
    """Tickets with a first response and a closing time each (Kaggle's Customer Support Ticket Dataset's columns)."""
    rows = "".join(f"t{i},17850,2024-01-05 08:00:00,{reply},{closed}\n" for i, (reply, closed) in enumerate(pairs))
    return Case(files={"t.csv": CLEAN, "x.csv": "Ticket ID,Customer Email,Opened,First Response Time,"
                                                 "Time to Resolution\n" + rows},
                sources={"transactions": {"path": "t.csv"}, "support_tickets": {
                    "path": "x.csv", "rename": {"Ticket ID": "ticket_id", "Customer Email": "customer_id",
                                                "Opened": "opened_at", "First Response Time": "first_response_at",
                                                "Time to Resolution": "closed_at"}}})


def test_tickets_closed_before_their_first_response_are_kept_with_a_warning_naming_both_columns(tmp_path, caplog):
    # Kaggle's synthetic ticket export: 1,365 of its 2,769 closed tickets close hours before their first response;
    # before, no word, and both means read them as they are
    replied, closed = "2024-01-05 10:00:00", "2024-01-05 09:00:00"
    case = closed_and_replied([(replied, closed)] * 3 + [(replied, "2024-01-05 12:00:00")] * 7)
    with caplog.at_level("WARNING", logger="pipeline"):
        result = ingest_in_memory(tmp_path, case).sources["support_tickets"]
    note = ("3 of the 10 tickets with both times (30%) are closed before their first response (Time to Resolution "
            "before First Response Time, by 60 minutes in the median; e.g. ticket 't0': First Response Time "
            "2024-01-05 10:00, Time to Resolution 2024-01-05 09:00 UTC). A help desk seldom replies after closing a "
            "ticket, so one of the two columns may not hold what it is mapped as; the tickets are kept, and "
            "first_response_hours_mean and resolution_hours_mean read both times as they are. Check the mapping of "
            "closed_at and first_response_at, or leave out the one the export gets wrong")
    assert note in result.report["notes"] and note in caplog.text
    assert len(result.validated) == 10
    # a reply after closing now and then (under 5% of the tickets with both times) is a help desk's life: no note
    (tmp_path / "quiet").mkdir()
    quiet = ingest_in_memory(tmp_path / "quiet", closed_and_replied(
        [(replied, closed)] + [(replied, "2024-01-05 12:00:00")] * 20)).sources["support_tickets"]
    assert not any("before their first response" in note for note in quiet.report["notes"])


def test_tickets_whose_first_response_comes_months_after_the_opening_get_a_warning_naming_opened_at(tmp_path, caplog):
    # Kaggle's ticket export has no opening time: mapped from its Date of Purchase, every ticket waited 1.4 to 3.4
    # years for a first reply and counted as open since the purchase; before, no word
    rows = "".join(f"t{i},17850,2022-0{1 + i % 9}-15,2024-01-05 10:00:00\n" for i in range(10))
    files = {"t.csv": CLEAN, "x.csv": "Ticket ID,Customer Email,Date of Purchase,First Response Time\n" + rows}
    tickets = {"path": "x.csv", "rename": {"Ticket ID": "ticket_id", "Customer Email": "customer_id",
                                           "Date of Purchase": "opened_at", "First Response Time": "first_response_at"}}
    case = Case(files=files, sources={"transactions": {"path": "t.csv"}, "support_tickets": tickets})
    with caplog.at_level("WARNING", logger="pipeline"):
        result = ingest_in_memory(tmp_path, case).sources["support_tickets"]
    note = ("the first response comes 615 days after the opening in the median (10 tickets with both times; e.g. "
            "ticket 't0': Date of Purchase 2022-01-15 00:00, First Response Time 2024-01-05 10:00 UTC). A help desk "
            "answers within hours or days, so Date of Purchase may not be when the tickets were opened (a purchase "
            "date?); each ticket counts as open from it on (open_tickets, unresolved_share, tickets_<w>d count it "
            "then) and first_response_hours_mean reads these waits. Map the tickets' own creation time onto opened_at")
    assert note in result.report["notes"] and note in caplog.text
    assert len(result.validated) == 10
    # replies within a day or two, and two slow ones (three weeks): no note
    (tmp_path / "quick").mkdir()
    openings = ["2023-12-15", "2023-12-15"] + ["2024-01-04"] * 8
    quick = files | {"x.csv": "Ticket ID,Customer Email,Date of Purchase,First Response Time\n" + "".join(
        f"t{i},17850,{day},2024-01-05 10:00:00\n" for i, day in enumerate(openings))}
    result = ingest_in_memory(tmp_path / "quick", Case(files=quick, sources=case.sources)).sources["support_tickets"]
    assert not any("after the opening in the median" in note for note in result.report["notes"])


def test_the_status_of_a_ticket_without_closed_at_is_known_from_the_newest_kept_time_of_all_its_files(tmp_path):
    # Two files of a help desk without resolution times. They may be parts of one export split by date, so the
    # status of January's resolved ticket is known only from the newest kept time of both (a closing on Feb 4), not
    # from January's own newest time (a first reply, Jan 20). A bad row dated later (a reply before its opening) is
    # quarantined and says nothing about when the export was taken. Open and closed tickets get no status_known_at.
    january = ("ticket_id,customer_id,opened_at,closed_at,first_response_at,resolved\n"
               "t1,17850,2024-01-05 10:00:00,,2024-01-20 08:00:00,yes\n"
               "t2,13047,2024-01-07 10:00:00,,,no\n"
               "t3,13047,2024-01-25 10:00:00,,2024-01-02 10:00:00,yes\n"  # replied before it opened: quarantined
               "t4,12583,2024-01-08 10:00:00,2024-01-09 10:00:00,,yes\n")
    february = ("ticket_id,customer_id,opened_at,closed_at,first_response_at,resolved\n"
                "t5,17850,2024-02-03 10:00:00,2024-02-04 12:00:00,,no\n"
                "t6,12583,2024-02-02 10:00:00,,,yes\n")
    case = Case(files={"t.csv": CLEAN, "x1.csv": january, "x2.csv": february}, ingest={"max_bad_share": 0.5},
                sources={"transactions": {"path": "t.csv"}, "support_tickets": {"path": "x*.csv"}})
    result = ingest_in_memory(tmp_path, case).sources["support_tickets"]
    assert result.quarantine["ticket_id"].tolist() == ["t3"]
    known = result.validated.set_index("ticket_id")["status_known_at"]
    assert str(known.dtype) == "datetime64[us, UTC]"
    assert known.to_dict() == {"t1": pd.Timestamp("2024-02-04 12:00", tz="UTC"), "t2": pd.NaT, "t4": pd.NaT,
                               "t5": pd.NaT, "t6": pd.Timestamp("2024-02-04 12:00", tz="UTC")}
    note = next(n for n in result.report["notes"] if "resolved by resolved but have no closed_at" in n)
    assert note.startswith("2 of 5 tickets are resolved by resolved but have no closed_at (x1.csv: 1, x2.csv: 1): "
                           "each counts as open until the export's newest time (2024-02-04 12:00 UTC, ")


def test_a_customer_whose_only_ticket_is_resolved_by_status_hears_of_no_open_ticket_after_the_export(tmp_path):
    # From the export to the at-risk sentences: 17850's only ticket is Resolved in a help desk export without
    # resolution times, whose newest row is 13047's open ticket of 2024-01-09 10:00. On the scoring day after the
    # export 17850's ticket is resolved: no "still open", no "unresolved" (the list said both before). Before the
    # export it counts as open, as the export could not yet tell.
    import datetime as dt

    from pipeline.config import FeaturesConfig
    from pipeline.events import Events
    from pipeline.features import build_features
    from pipeline.features.registry import feature_specs, reason_context_frame
    from pipeline.reasons import top_reasons

    tickets = ("Ticket ID,Email,Created time,Status\n"
               "t1,17850,2024-01-05 10:00:00,Resolved\nt2,13047,2024-01-09 10:00:00,Open\n")
    case = Case(files={"t.csv": CLEAN, "x.csv": tickets},
                sources={"transactions": {"path": "t.csv"}, "support_tickets": {
                    "path": "x.csv", "rename": {"Ticket ID": "ticket_id", "Email": "customer_id",
                                                "Created time": "opened_at", "Status": "resolved"},
                    "recode": {"resolved": {"Resolved": True, "Open": False}}}})
    result = ingest_in_memory(tmp_path, case)
    events = Events.from_frames(**{name: source.validated for name, source in result.sources.items()})
    cfg = FeaturesConfig(snapshots={"dates": [dt.date(2024, 2, 12)]}, btyd=False)
    specs = feature_specs(cfg)

    def said(as_of: dt.date) -> dict[str, list[str]]:
        features = build_features(events, as_of=as_of, cfg=cfg).set_index("customer_id")
        pushes = pd.DataFrame(0.0, index=features.index, columns=[spec.name for spec in specs])
        pushes[["open_tickets", "unresolved_share"]] = 1.0  # the model blames the tickets of everyone
        reasons = top_reasons(pushes, features, specs=specs, as_of=as_of, n=3, context=reason_context_frame)
        return {customer: [text for text in row.dropna() if re.search("still open|unresolved", text)]
                for customer, row in reasons.iterrows()}

    assert said(dt.date(2024, 2, 12)) == {
        "12583": [], "13047": ["1 support ticket still open", "100% of their support tickets are unresolved"],
        "17850": []}
    assert said(dt.date(2024, 1, 8))["17850"] == [
        "1 support ticket still open", "100% of their support tickets are unresolved"]


def test_rows_left_out_by_exclude_are_quarantined_for_that_alone(tmp_path):
    # The same help desk export with its offered ratings left out: that their word is not a number is no news.
    case = help_desk_ratings("17850,2024-01-05,good\n13047,2024-01-06,offered\n12583,2024-01-07,bad\n"
                             "17850,2024-01-08,offered\n13047,2024-01-09,unoffered\n",
                             recode={"score": {"good": 5, "bad": 1}},
                             exclude={"Satisfaction": ["offered", "unoffered"]})
    feedback = ingest_in_memory(tmp_path, case).sources["feedback"]
    assert feedback.quarantine["reason"].tolist() == [
        "excluded by sources.feedback.exclude: Satisfaction is 'offered'"] * 2 + [
        "excluded by sources.feedback.exclude: Satisfaction is 'unoffered'"]
    assert feedback.report["top_reasons"] == [
        {"reason": "excluded by sources.feedback.exclude: Satisfaction is 'offered'", "rows": 2},
        {"reason": "excluded by sources.feedback.exclude: Satisfaction is 'unoffered'", "rows": 1}]
    assert (feedback.report["excluded_rows"], feedback.report["bad_rows"]) == (3, 0)


def test_a_score_column_blank_on_every_row_is_a_mapping_error_not_unanswered_surveys(tmp_path):
    blank = "".join(f"1785{i},2024-01-1{i} 10:00:00,nps,\n" for i in range(4))
    result, output = run_cli(tmp_path, beside_clean_orders("feedback", "customer_id,submitted_at,kind,score\n" + blank))
    assert result.exit_code == 1
    assert "source feedback: 100.0% of 4 rows are bad (limit 50%); top reasons: score: missing (4 rows)" in output
    assert "Traceback" not in output


def test_the_quantity_export_reports_the_derived_amount(tmp_path):
    case = SAME_AS_CLEAN["quantity and unit price instead of amount"]
    result = ingest_in_memory(tmp_path, case)
    report = result.sources["transactions"].report
    assert report["derived"] == {"amount": "quantity × unit_price"}
    assert "amount derived as quantity × unit_price (the source has no amount column)" in report["notes"]
    assert result.sources["transactions"].validated["unit_price"].tolist() == [3.5, 2.0, 2.0, 7.25, 0.5, 3.0]


def test_a_discount_is_taken_off_the_derived_amount(tmp_path):
    text = "order_id,customer_id,ordered_at,quantity,unit_price,discount\n" + "".join(
        f"o{i},c1,2024-01-0{i},2,5,{discount}\n" for i, discount in enumerate(["1.5", "", "0"], 1)
    )
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": text})).sources["transactions"]
    assert result.validated["amount"].tolist() == [8.5, 10.0, 10.0]  # 2 x 5 - discount; none given = 0
    assert result.report["derived"] == {"amount": "quantity × unit_price − discount"}


def test_a_discount_lowers_the_money_a_return_gives_back_and_never_turns_a_line_round(tmp_path):
    """A discounted item returned gives back what was paid for it: -(2 x 5 - 1.5). A discount larger than its line
    (an order's whole discount, Shopify's `Discount Amount`, mapped onto the line that carries it) would have turned
    a sale into a return: quarantined with the hint."""
    text = ("order_id,customer_id,ordered_at,quantity,unit_price,discount\no1,c1,2024-01-01,-2,5,1.5\n"
            "o2,c1,2024-01-02,1,5,5\no3,c1,2024-01-03,1,5,7.5\no4,c1,2024-01-04,-1,5,6\n"
            + "".join(f"o{i},c2,2024-01-0{i - 4},1,5,0\n" for i in range(5, 10)))
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": text}, ingest={"max_bad_share": 0.5})).sources["transactions"]
    assert result.validated["amount"].tolist()[:2] == [-8.5, 0.0]  # a return, and an item given for free
    assert result.quarantine["order_id"].tolist() == ["o3", "o4"]
    assert set(result.quarantine["reason"]) == {"discount: more than quantity × unit_price (an order's whole discount "
                                                "on one of its lines? map each line's own discount)"}
    given = "order_id,customer_id,ordered_at,amount,quantity,unit_price,discount\no1,c1,2024-01-01,5,1,5,7.5\n"
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": given})).sources["transactions"]
    assert result.quarantine.empty  # beside a given amount, unit_price may be the price after the discount
    derived = "order_id,customer_id,ordered_at,quantity,unit_price,discount\no9,c1,2024-01-01,1,5,7.5\n"
    for first, other in (("given.csv", "derived.csv"), ("derived.csv", "given.csv")):  # each export by its own layout
        files = {"given.csv": given, "derived.csv": derived}
        case = Case(files=files, sources={"transactions": {"path": first, "other_exports": [{"path": other}]}},
                    ingest={"max_bad_share": 0.9})
        result = ingest_in_memory(tmp_path, case).sources["transactions"]
        assert result.quarantine["order_id"].tolist() == ["o9"], first


NORTHWIND_LINES = "orderID,customerID,orderDate,unitPrice,quantity,discount\n" + "".join(
    f"{10248 + i},C{i % 5},1997-0{1 + i % 9}-1{i % 10},14.00,12,{'0.15' if i % 2 else '0'}\n" for i in range(60))
NORTHWIND = {"path": "t.csv", "rename": {"orderID": "order_id", "customerID": "customer_id", "orderDate": "ordered_at",
                                         "unitPrice": "unit_price"}}


def test_a_discount_written_as_a_share_of_the_line_is_flagged_and_read_with_discount_is_share(tmp_path):
    """Northwind's order details write Discount as a share (0.15 = 15% off a line of 12 x 14.00 = 168.00). Read as the
    contract's money, each amount took off 0.15 instead of 25.20, silently: a warning names the setting, and
    `discount_is: share` takes off the share of quantity x unit_price (also from a return line's money)."""
    result = ingest_in_memory(tmp_path, Case(files={"t.csv": NORTHWIND_LINES}, sources={"transactions": NORTHWIND}))
    lines = result.sources["transactions"]
    assert sorted(set(lines.validated["amount"])) == [167.85, 168.0]  # 168 - 0.15: the discount read as money
    assert ("every discount lies between 0 and 1 (30 discounted lines, e.g. 0.15 on a line of order '10249' of 12 × "
            "14.00 = 168.00) while the discounted lines are worth 168.00 in the median: if discount is a share of the "
            "line's price (0.15 = 15% off), each amount takes off 0.15 instead of 25.20 and spend keeps nearly every "
            "discount; set sources.transactions.discount_is: share") in " ".join(lines.report["notes"])
    text = NORTHWIND_LINES + "10400,C1,1997-03-01,10.00,-2,0.5\n10401,C1,1997-03-02,10.00,1,1.5\n"
    case = Case(files={"t.csv": text}, sources={"transactions": {**NORTHWIND, "discount_is": "share"}})
    lines = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert sorted(set(lines.validated["amount"].round(6))) == [-10.0, 142.8, 168.0]  # 168 x 0.85; -(2 x 10) x 0.5
    assert lines.validated["discount"].max() == pytest.approx(25.2)  # the contract's discount: money
    assert lines.report["derived"] == {"amount": "quantity × unit_price × (1 − discount)"}
    assert lines.quarantine["reason"].tolist() == [
        "discount: a share above 1 (sources.transactions.discount_is: share reads 0.15 as 15% off)"]
    notes = " ".join(lines.report["notes"])
    assert "every discount lies between 0 and 1" not in notes
    assert ("discount read as a share of quantity × unit_price (sources.transactions.discount_is: share) on 31 "
            "discounted lines, e.g. 0.15 of 12 × 14.00: 25.20 off (15%)") in notes


def test_shares_read_as_money_beside_a_given_amount_are_flagged(tmp_path):
    """Tableau Superstore's Discount (0.2) beside its Sales after the discount, mapped without discount_is: the
    validated discount held 0.2 of money on a line worth 80.00, silently (the warning looked at derived amounts
    only). A warning names the setting, with the money the share stands for."""
    text = "order_id,customer_id,ordered_at,amount,discount\n" + "".join(
        f"o{i},c{i % 4},2024-01-{1 + i % 28:02d},80.00,{'0.2' if i % 3 else '0'}\n" for i in range(40))
    lines = ingest_in_memory(tmp_path, Case(files={"t.csv": text})).sources["transactions"]
    assert ("every discount lies between 0 and 1 (26 discounted lines, e.g. 0.2 on a line of order 'o1' worth 80.00) "
            "while the discounted lines are worth 80.00 in the median: if discount is a share of the line's price "
            "(0.2 = 20% off), the validated discount holds 0.2 of money instead of 20.00 (the amount being after it); "
            "set sources.transactions.discount_is: share") in " ".join(lines.report["notes"])
    case = Case(files={"t.csv": text}, sources={"transactions": {"path": "t.csv", "discount_is": "share"}})
    lines = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert "every discount lies between 0 and 1" not in " ".join(lines.report["notes"])
    assert lines.validated["discount"].max() == pytest.approx(20.0)


def test_discount_is_share_beside_a_line_amount_after_the_discount_takes_the_share_of_the_price_before_it(tmp_path):
    """Tableau Superstore writes each line's Sales after its Discount share (0.2) and no unit price: `discount_is:
    share` was an error asking to map unit_price, which the export lacks. The discount is now the share of the price
    before it, |amount| x share / (1 - share) (a return's too); a share of 1 leaves no price (empty, noted), a share
    above 1 is quarantined."""
    text = ("Order,Customer,Date,Sales,Discount\no1,c1,2024-01-01,16.00,0.2\no2,c1,2024-01-02,30.00,0\n"
            "o3,c2,2024-01-03,-8.00,0.5\no4,c2,2024-01-04,0,1\no5,c2,2024-01-05,10,1.5\n"
            + "".join(f"o{i},c3,2024-01-0{i - 5},5,\n" for i in range(6, 10)))
    rename = {"Order": "order_id", "Customer": "customer_id", "Date": "ordered_at", "Sales": "amount",
              "Discount": "discount"}
    case = Case(files={"t.csv": text}, sources={"transactions": {"path": "t.csv", "rename": rename,
                                                                 "discount_is": "share"}},
                ingest={"max_bad_share": 0.5})
    lines = ingest_in_memory(tmp_path, case).sources["transactions"]
    assert lines.validated["amount"].tolist()[:4] == [16.0, 30.0, -8.0, 0.0]  # the amounts as given
    assert lines.validated["discount"].tolist()[:3] == pytest.approx([4.0, 0.0, 8.0])  # 20% of 20.00; 50% of 16.00
    assert lines.validated["discount"].iloc[3:].isna().all()  # all off: no price to take it from; blank: unknown
    assert lines.quarantine["reason"].tolist() == [
        "Discount: a share above 1 (sources.transactions.discount_is: share reads 0.15 as 15% off)"]
    assert ("discount read as a share of each line's price before the discount, whose amount is after it "
            "(sources.transactions.discount_is: share): 2 discounted lines, e.g. 0.2 off a line worth 16.00 after it: "
            "4.00 off a price of 20.00; 1 line at a share of 1 (all off) gives no price to take it from: its discount "
            "is left empty (unknown)") in lines.report["notes"]


def test_a_real_shop_export_ingests_from_a_config_alone(tmp_path):
    """The export of the issue, through `churn ingest`: quantity x unit price and no amount, float-formatted
    ids, several invoices a day, cancellations as negative lines, and a quarter of guest checkouts; default
    settings, only a `rename` mapping."""
    lines = [
        "536365,17850.0,2024-01-01 08:26:00,6,2.55", "536365,17850.0,2024-01-01 08:26:00,8,3.39",
        "536366,17850.0,2024-01-01 08:28:00,6,1.85", "C536379,17850.0,2024-01-01 09:41:00,-1,27.5",
        "536367,13047.0,2024-01-01 08:34:00,32,1.69", "536368,13047,2024-01-02 08:34:00,3,4.25",
        "536370,12583.0,2024-01-02 08:45:00,24,3.75", "536371,12583.0,2024-01-03 09:00:00,80,2.55",
        "536372,,2024-01-03 09:01:00,6,1.85", "536373,,2024-01-03 09:02:00,6,2.55",
        "536374,NaN,2024-01-03 09:09:00,32,1.69", "536375,,2024-01-04 09:32:00,6,2.55",
    ]
    export = "InvoiceNo,CustomerID,InvoiceDate,Quantity,UnitPrice\n" + "\n".join(lines) + "\n"
    rename = {"InvoiceNo": "order_id", "CustomerID": "customer_id", "InvoiceDate": "ordered_at",
              "Quantity": "quantity", "UnitPrice": "unit_price"}
    case = Case(files={"online_retail.csv": export},
                sources={"transactions": {"path": "online_retail.csv", "rename": rename}})
    result, output = run_cli(tmp_path, case)
    assert result.exit_code == 0, output
    report = yaml.safe_load((tmp_path / "out" / "reports" / "ingest_report.json").read_text(encoding="utf-8"))
    entry = report["sources"]["transactions"]
    assert (entry["input_rows"], entry["validated_rows"], entry["anonymous_rows"], entry["bad_rows"]) == (12, 8, 4, 0)
    assert entry["derived"] == {"amount": "quantity × unit_price"}
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert sorted(validated["customer_id"].unique()) == ["12583", "13047", "17850"]
    assert validated["amount"].round(2).tolist() == [15.3, 27.12, 11.1, -27.5, 54.08, 12.75, 90.0, 204.0]


# --- 4. outputs and model files (after ingest) ---------------------------------------------------


def run_churn(folder: Path, *args: str, case: Case | None = None, env: dict | None = None, features: dict | None = None):
    """`churn <args> -c <config> -q` in-process on the workspace of `case` (default: the clean export)."""
    case = case or Case(files={"t.csv": CLEAN})
    folder.mkdir(parents=True, exist_ok=True)
    write_files(folder, case)
    raw = raw_config(case)
    raw["features"] = {"snapshots": {"dates": ["2024-01-15", "2024-02-01"]}, "lookback_days": 60,
                       "horizon_days": 10, **(features or {})}
    (folder / "playbook.yaml").write_text(
        (Path(__file__).resolve().parents[1] / "configs" / "playbook.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, [*args, "-c", str(config), "-q"], env={"COLUMNS": "4000", **(env or {})})
    return result, " ".join(result.output.split())


def _forged_bundle(folder: Path, marker: Path, *, format_version: int = 2) -> Path:
    """A bundle whose files are pickles that would create `marker`, with checksums that match (resealed)."""
    import hashlib
    import json
    import pickle

    class RunsCode:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder.mkdir()
    names = ["model.json", "booster.txt"] if format_version == 2 else ["model.joblib"]
    for name in names:
        (folder / name).write_bytes(pickle.dumps(RunsCode()))
    (folder / "metrics.json").write_text("{}")
    files = {
        name: {"sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(), "bytes": (folder / name).stat().st_size}
        for name in [*names, "metrics.json"]
    }
    manifest = {"format_version": format_version, "model_files": names, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


OUTPUT_ERRORS = {
    "a model bundle whose files are resealed pickles": (
        lambda folder, marker: ["--model", str(_forged_bundle(folder / "forged", marker))], {},
        r"error: cannot use the model: model bundle .*forged holds a malformed model: (model\.json|booster\.txt) is not UTF-8 text",
    ),
    "an old bundle with a pickled model.joblib": (
        lambda folder, marker: ["--model", str(_forged_bundle(folder / "old", marker, format_version=1))], {},
        r"error: cannot use the model: model bundle .*old has format version 1, .*retrain with `churn train`",
    ),
    "an unsigned bundle while CHURN_BUNDLE_KEY is set": (
        lambda folder, marker: ["--model", str(_forged_bundle(folder / "unsigned", marker))], {"CHURN_BUNDLE_KEY": "k"},
        r"error: cannot use the model: model bundle .*unsigned is not signed \(manifest\.sig is missing\) but CHURN_BUNDLE_KEY is set",
    ),
    "an --as-of months after the data ends": (
        lambda folder, marker: ["--as-of", "2024-07-01"], {},
        r"error: --as-of 2024-07-01 is 141 days after the data ends \(2024-02-11\), more than score\.max_data_lag_days=7",
    ),
}


@pytest.mark.parametrize("arguments, env, message", OUTPUT_ERRORS.values(), ids=OUTPUT_ERRORS.keys())
def test_hostile_model_or_date_gets_a_one_line_error_and_runs_no_code(tmp_path, arguments, env, message):
    marker = tmp_path / "code-ran"
    result, _ = run_churn(tmp_path, "ingest")
    assert result.exit_code == 0, result.output
    result, output = run_churn(tmp_path, "score", *arguments(tmp_path, marker), env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output, output
    assert re.search(message, output), output
    assert not marker.exists()  # nothing in the files was executed
    assert not (tmp_path / "out" / "scores").exists()  # nothing written


@pytest.mark.parametrize(("other", "differs", "key", "rebuilt"), [
    ({"windows_days": [30]}, r"windows_days \[30\] vs \[30, 90, 180, 365\]", "windows_days", [30, 90, 180, 365]),
    # days counted in another business time zone are not mixed with the config's (UTC: not recorded)
    ({"timezone": "America/Los_Angeles"}, r"timezone America/Los_Angeles vs UTC", "timezone", None),
])
def test_feature_snapshots_of_two_settings_are_refused_by_train_and_rebuilt_by_features(
    tmp_path, other, differs, key, rebuilt
):
    import shutil

    assert run_churn(tmp_path, "ingest")[0].exit_code == 0
    assert run_churn(tmp_path / "other", "ingest")[0].exit_code == 0
    assert run_churn(tmp_path / "other", "features", features=other)[0].exit_code == 0
    assert run_churn(tmp_path, "features")[0].exit_code == 0
    stale = "snapshot=2024-02-01.parquet"
    shutil.copyfile(tmp_path / "other" / "out" / "features" / stale, tmp_path / "out" / "features" / stale)
    result, output = run_churn(tmp_path, "train")
    assert result.exit_code == 1 and "Traceback" not in result.output, output
    assert re.search(rf"error: the feature snapshots in .* were built with different feature settings: {stale} differ "
                     rf"from the other 1 \({differs}\); run `churn features`", output), output
    assert run_churn(tmp_path, "features")[0].exit_code == 0
    from pipeline.features.store import recorded_settings

    assert recorded_settings(tmp_path / "out" / "features")["settings"].get(key) == rebuilt


def test_a_formula_in_an_id_is_raw_in_parquet_and_neutralised_in_every_csv(tmp_path):
    from pipeline.run.score import write_scores_csv

    formula = "=cmd|' /C calc'!A0"
    case = Case(files={"t.csv": with_rows(f'o9,"{formula}",2024-02-12 10:00:00,5')})
    assert run_churn(tmp_path, "ingest", case=case)[0].exit_code == 0
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert formula in set(validated["customer_id"])  # Parquet keeps the raw value
    write_scores_csv(validated, tmp_path / "at_risk.csv")
    text = (tmp_path / "at_risk.csv").read_text(encoding="utf-8")
    assert f"\"'{formula}\"" in text and f",\"{formula}\"" not in text
    assert "-4" in text  # the negative amount is still a number
