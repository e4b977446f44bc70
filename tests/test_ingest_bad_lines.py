"""CSV lines with another number of fields than the header: quarantined with the line as written, the rest read;
a file where most lines (or all of its first ones) are so is refused with one line naming the count and a line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import IngestError
from pipeline import sources
from pipeline.sources import read_source
from test_ingest_files import make_config, run_ingest, write

HEADER = "order_id,customer_id,ordered_at,amount"
EXTRA = "o99,c1,2024-01-02 10:00:00,1,Mug, blue"  # an unquoted comma in a product's name
SHORT = "o98,c2,2024-01-03"  # a line cut short


def good_rows(count: int, *, start: int = 1) -> list[str]:
    return [f"o{i},c{i % 7},2024-01-{1 + i % 28:02d} 10:00:00,{i}.5" for i in range(start, start + count)]


def csv_text(lines: list[str], *, newline: str = "\n") -> str:
    return newline.join(lines) + newline


def read(folder, sources: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The frame and the quarantine reasons (row, reason) of transactions read with `sources`' settings."""
    raw = read_source("transactions", make_config(folder, {"transactions": sources}).sources.transactions)
    return raw.frame, raw.unread_lines


# --- the fast (Arrow) reader ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "CRLF line endings", "a byte-order mark and trailing separators"])
def test_lines_with_a_field_more_or_less_are_quarantined_and_the_rest_validated(tmp_path, variant):
    lines = [HEADER, *good_rows(4), EXTRA, *good_rows(14, start=5), SHORT, *good_rows(20, start=19)]
    text = csv_text(lines, newline="\r\n" if variant == "CRLF line endings" else "\n")
    if variant.startswith("a byte-order mark"):  # a spreadsheet's export: the pandas reader read it before
        text = "\ufeff" + text.replace("\n", ",,\n")
    write(tmp_path, "t.csv", text)
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})["sources"]["transactions"]
    assert (report["input_rows"], report["validated_rows"], report["quarantined_rows"], report["bad_rows"]) == (
        40, 38, 2, 2)
    assert report["duplicate_rows"] == 0  # the two rows of empty cells are no copies of one another
    assert f"2 lines of {tmp_path / 't.csv'} had the wrong number of fields (lines 6, 21): quarantined" in " ".join(
        report["notes"])
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    width = 6 if variant.startswith("a byte-order mark") else 4  # two blank names: 'Unnamed: 4', 'Unnamed: 5'
    fields = width + 2
    shown_extra = EXTRA if width == 4 else EXTRA + ",,"
    shown_short = SHORT if width == 4 else SHORT + ",,"
    assert quarantine["source_row"].tolist() == [5, 20]  # the data rows they are: the rows after them keep theirs
    assert quarantine["reason"].tolist() == [
        f"line 6 has {fields} fields where the header has {width} (a separator inside an unquoted cell?), so its "
        f"cells are left empty; the line: {shown_extra!r}",
        f"line 21 has {width - 1} fields where the header has {width} (a line cut short, or a separator missing?), "
        f"so its cells are left empty; the line: {shown_short!r}",
    ]
    assert quarantine.drop(columns=["source_file", "source_row", "reason"]).isna().all().all()
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["order_id"].tolist() == [line.split(",")[0] for line in lines[1:] if line not in (EXTRA, SHORT)]


def test_lines_across_the_readers_block_boundary_get_their_file_line_numbers(tmp_path):
    """A file longer than the fast reader's block (1 MiB), with a quoted line break above the lines set aside (so
    rows and lines differ) and one of them where the first block ends."""
    rows = good_rows(40_000)
    rows[9] = rows[9].replace(",c3,", ',"c\n3",')  # a quoted line break in a cell: the file has one more line
    lines = [HEADER, *rows]
    boundary = next(i for i, size in enumerate(np.cumsum([len(line) + 1 for line in lines])) if size > 1 << 20)
    bad = sorted({3, 20_000, boundary - 1, 39_999})  # data rows
    for row in bad:
        lines[row + 1] = lines[row + 1] + ",surprise"
    write(tmp_path, "t.csv", csv_text(lines))
    frame, unread = read(tmp_path, {"path": "t.csv"})
    assert len(frame) == 40_000
    assert unread["row"].tolist() == bad
    file_lines = [row + 2 + (row > 9) for row in bad]  # the header, then one more line after the quoted break
    assert unread["reason"].str.extract(r"^line ([\d,]+) has 5 fields")[0].tolist() == [f"{n:,}" for n in file_lines]
    assert frame.iloc[bad].isna().all().all()
    kept = np.setdiff1d(np.arange(40_000), bad)
    assert frame["order_id"].iloc[kept].tolist() == [f"o{row + 1}" for row in kept]
    assert frame["customer_id"].iloc[9] == "c\n3"


def test_a_quoted_line_break_still_reads_and_counts_in_the_line_numbers(tmp_path):
    lines = [HEADER + ",note", *(row + ',"two\nlines"' for row in good_rows(12)), EXTRA + ",x"]
    write(tmp_path, "t.csv", csv_text(lines))
    frame, unread = read(tmp_path, {"path": "t.csv"})
    assert frame["note"].iloc[:12].eq("two\nlines").all()
    assert unread["reason"].str.startswith("line 26 has 7 fields where the header has 5").tolist() == [True]


def test_a_last_line_with_an_unclosed_quote_is_quarantined_saying_so(tmp_path):
    write(tmp_path, "t.csv", csv_text([HEADER, *good_rows(10), 'o9,"17850,2024-01-04,1']))
    _, unread = read(tmp_path, {"path": "t.csv"})
    assert unread["reason"].tolist() == [
        "line 12 has 2 fields where the header has 4 (an unclosed quote?), so its cells are left empty; the line: "
        "'o9,\"17850,2024-01-04,1'"]


def test_each_file_of_a_glob_numbers_its_own_lines(tmp_path):
    (tmp_path / "parts").mkdir()
    write(tmp_path, "parts/a.csv", csv_text([HEADER, *good_rows(9), EXTRA]))
    write(tmp_path, "parts/b.csv", csv_text([HEADER, *good_rows(2, start=20), SHORT, *good_rows(7, start=30)]))
    raw = read_source("transactions", make_config(tmp_path, {"transactions": {"path": "parts/*.csv"}}).sources.transactions)
    assert raw.unread_lines["row"].tolist() == [9, 12]  # rows of the source, files one after the other
    assert raw.origin["source_row"].iloc[[9, 12]].tolist() == [10, 3]
    assert raw.unread_lines["reason"].str.extract(r"^(line \d+)")[0].tolist() == ["line 11", "line 4"]
    assert list(raw.warnings) == [
        f"1 line of {tmp_path / 'parts' / name} had the wrong number of fields (line {line}): quarantined, each with "
        "the line as written in its reason" for name, line in (("a.csv", 11), ("b.csv", 4))]


# --- most lines wrong: the file is refused --------------------------------------------------------------------------


def test_a_file_whose_lines_are_mostly_wrong_is_refused_naming_the_count_and_a_line(tmp_path):
    rows = good_rows(10)
    write(tmp_path, "t.csv", csv_text([HEADER, *rows[:3], *(row + ",x" for row in rows[3:])]))
    with pytest.raises(IngestError, match=r"source transactions: .*t\.csv cannot be parsed as CSV with sep=',': 7 of "
                                          r"its 10 data rows have another number of fields than the 4 of the header "
                                          r"\(e\.g\. line 5: 5 fields, a separator inside an unquoted cell\?\); check "
                                          r"sources\.transactions\.read\.sep and the quoting of those lines$"):
        read(tmp_path, {"path": "t.csv"})
    write(tmp_path, "h.csv", csv_text([HEADER, *rows[:6], *(row + ",x" for row in rows[6:])]))  # 4 of 10: read
    assert read(tmp_path, {"path": "h.csv"})[1]["row"].tolist() == [6, 7, 8, 9]


def test_a_file_whose_first_lines_are_all_wrong_is_refused(tmp_path):
    """A header of another width than the rows (a column name missing): its first lines all disagree with it."""
    rows = good_rows(100)
    write(tmp_path, "t.csv", csv_text([HEADER, *(row + ",x" for row in rows[:5]), *rows[5:]]))
    with pytest.raises(IngestError, match=r"5 of its 100 data rows have another number of fields .*\(e\.g\. line 2:"):
        read(tmp_path, {"path": "t.csv"})


def test_a_lookup_table_with_a_wrong_line_is_refused(tmp_path):
    write(tmp_path, "t.csv", csv_text([HEADER, *good_rows(5)]))
    write(tmp_path, "c.csv", "customer_id,segment\nc1,retail\nc2,retail,wholesale\nc3,retail\nc4,x\nc5,y\nc6,z\n")
    with pytest.raises(IngestError, match=r"sources\.transactions\.lookup\[0\]: .*c\.csv cannot be parsed as CSV: 1 line "
                                          r"of .*c\.csv had the wrong number of fields \(line 3\); a lookup table has no "
                                          r"quarantine"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "lookup": [{"path": "c.csv", "by": "customer_id"}]}})


# --- the pandas readers (a regular expression separator) ------------------------------------------------------------


@pytest.mark.parametrize("sep", [r"\s+", r"\s*;\s*"])  # pandas' C reader, then its python reader
def test_the_pandas_readers_set_aside_longer_and_shorter_lines(tmp_path, sep):
    written = " " if sep == r"\s+" else " ; "
    rows = [row.replace(" 10:00:00", "") for row in good_rows(12)]
    lines = [HEADER, *rows[:3], "o97,c1,2024-01-02,1,surprise", *rows[3:8], "", "o98,c2,2024-01-03", *rows[8:]]
    write(tmp_path, "t.txt", csv_text([line.replace(",", written) for line in lines]))
    frame, unread = read(tmp_path, {"path": "t.txt", "read": {"sep": sep}})
    assert len(frame) == 14
    assert unread["row"].tolist() == [3, 9]  # the blank line is no row
    assert unread["reason"].tolist() == [
        f"line 5 has 5 fields where the header has 4 (a separator inside an unquoted cell?), so its cells are left "
        f"empty; the line: {lines[4].replace(',', written)!r}",
        f"line 12 has 3 fields where the header has 4 (a line cut short, or a separator missing?), so its cells are "
        f"left empty; the line: {lines[11].replace(',', written)!r}"]
    assert frame.iloc[[3, 9]].isna().all().all()
    assert frame["order_id"].drop([3, 9]).tolist() == [row.split(",")[0] for row in rows]


def test_a_whitespace_separated_file_with_quotes_keeps_the_error(tmp_path):
    """pandas' C reader honours quotes, its python reader (which sets lines aside) does not: a quoted cell would be
    read apart, so such a file with a longer line is refused as before."""
    lines = ["order_id customer_id ordered_at amount", '"o1" "c 1" 2024-01-01 1', "o2 c2 2024-01-02 2 surprise"]
    write(tmp_path, "t.txt", csv_text(lines + [f"o{i} c{i} 2024-01-03 {i}" for i in range(3, 12)]))
    with pytest.raises(IngestError, match=r"cannot be parsed as CSV with sep='\\\\s\+': .*Expected 4 fields in line 3, "
                                          r"saw 5; check sources\.transactions\.read\.sep"):
        read(tmp_path, {"path": "t.txt", "read": {"sep": r"\s+"}})


@pytest.mark.parametrize("broken", [False, True])
@pytest.mark.parametrize("sep, written", [(r"\s*;\s*", " ; "), (r"\|\|", "||")])
def test_a_regular_expression_separator_refuses_a_quoted_line_break_naming_its_line(tmp_path, sep, written, broken):
    """pandas' python reader (any separator but one character or a whitespace run) reads quotes as text: a quoted
    cell holding a line break became two rows ('"two', then a row 'lines"' of empty cells), a broken line or not."""
    lines = [HEADER + ",note", *(row + ',"two\nlines"' for row in good_rows(3)),
             *(["o97,c1,2024-01-02,1,x,y"] if broken else []), *(row + ",z" for row in good_rows(9, start=20))]
    write(tmp_path, "t.txt", csv_text([line.replace(",", written) for line in lines]))
    with pytest.raises(IngestError, match=r"^source transactions: .*t\.txt cannot be read with sep=.*: line 2 opens a "
                                          r"quote it does not close \(a cell holding a line break\?\), .*; export "
                                          r"with a one-character separator \(sources\.transactions\.read\.sep\) or "
                                          r"without line breaks in cells$"):
        read(tmp_path, {"path": "t.txt", "read": {"sep": sep}})
    inches = [line.replace('"two\nlines"', '12" pizza') for line in lines]  # a quote inside a cell opens none
    write(tmp_path, "i.txt", csv_text([line.replace(",", written) for line in inches]))
    assert read(tmp_path, {"path": "i.txt", "read": {"sep": sep}})[0]["note"].iloc[0] == '12" pizza'


@pytest.mark.parametrize("sep", [",", r"\s+", r"\s*,\s*"])  # Arrow, pandas' C reader, its python reader
def test_a_file_without_a_header_sets_its_lines_aside_against_the_column_names(tmp_path, sep):
    rows = [row.replace(" 10:00:00", "") for row in good_rows(12)]
    lines = [*rows[:4], "o97,c1,2024-01-02,1,x", *rows[4:9], "o98,c2,2024-01-03", *rows[9:]]
    written = " " if sep == r"\s+" else ","
    write(tmp_path, "t.csv", csv_text([line.replace(",", written) for line in lines]))
    frame, unread = read(tmp_path, {"path": "t.csv", "read": {"sep": sep, "header": False,
                                                              "column_names": HEADER.split(",")}})
    assert len(frame) == 14 and unread["row"].tolist() == [4, 10]
    assert unread["reason"].str.extract(r"^(line \d+ has \d+ fields where read\.column_names names 4)")[0].tolist() == [
        "line 5 has 5 fields where read.column_names names 4", "line 11 has 3 fields where read.column_names names 4"]
    assert frame["order_id"].drop([4, 10]).tolist() == [row.split(",")[0] for row in rows]


# --- end to end -----------------------------------------------------------------------------------------------------


def test_cli_ingest_quarantines_the_lines_and_warns_without_a_traceback(tmp_path):
    write(tmp_path, "t.csv", csv_text([HEADER, *good_rows(3), EXTRA, *good_rows(30, start=4)]))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"paths": {"data_dir": "out", "models_dir": "models"},
                                      "sources": {"transactions": {"path": "t.csv"}},
                                      "features": {"snapshots": {"dates": ["2024-02-01"]}}}))
    result = CliRunner().invoke(app, ["ingest", "-c", str(config)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "1 line of" in result.output and "had the wrong number of fields (line 5)" in result.output
    entry = json.loads((tmp_path / "out" / "reports" / "ingest_report.json").read_text())["sources"]["transactions"]
    assert entry["input_rows"] == entry["validated_rows"] + entry["quarantined_rows"] == 34
    assert (entry["quarantined_rows"], entry["bad_rows"]) == (1, 1)


def test_the_top_reasons_count_the_lines_of_another_width_as_one_kind(tmp_path):
    """Each such line's reason names its number and text: counted verbatim, 40 lines were 40 reasons of one row, and
    the top reasons listed three of them '(1 rows)'. The quarantine keeps each row's own reason."""
    lines = [HEADER, *good_rows(60)]
    for row in range(2, 60, 3)[:19]:  # 19 lines longer, 1 shorter: two kinds
        lines[row] += f",Mug {row}, blue"
    lines[61 - 1] = SHORT
    write(tmp_path, "t.csv", csv_text(lines + good_rows(40, start=100)))
    entry = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}}, ingest={"max_bad_share": 0.5})
    top = entry["sources"]["transactions"]["top_reasons"]
    assert top[0] == {"reason": "a line with another number of fields than the header (a separator inside an unquoted "
                                "cell?), so its cells are left empty (each row's reason gives the line)", "rows": 19,
                      "example": "line 3 has 6 fields where the header has 4 (a separator inside an unquoted cell?), "
                                 "so its cells are left empty; the line: 'o2,c2,2024-01-03 10:00:00,2.5,Mug 2, blue'"}
    assert top[1] == {"reason": "line 61 has 3 fields where the header has 4 (a line cut short, or a separator "
                                "missing?), so its cells are left empty; the line: 'o98,c2,2024-01-03'", "rows": 1}
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["reason"].nunique() == 20 and quarantine["reason"].str.startswith("line ").all()


# --- big files: scanned in chunks, never held twice -----------------------------------------------------------------


@pytest.mark.parametrize("sep", [",", r"\s*,\s*"])  # the Arrow reader (`_file_lines`), the pandas one (`_data_lines`)
@pytest.mark.parametrize("chunk", [5, 64])  # bytes scanned at a time: lines and texts across every kind of boundary
def test_set_aside_lines_are_found_scanning_the_file_in_chunks(tmp_path, monkeypatch, sep, chunk):
    """Two identical broken lines get their own numbers (the search for the second went on from the first's start,
    naming its line twice); CRLF endings, blank lines and lines longer than a chunk count as written."""
    monkeypatch.setattr(sources, "SCAN_CHUNK", chunk, raising=False)
    long = "o50,c1,2024-01-02," + "9" * 150 + ",surprise"
    lines = [HEADER, *good_rows(6), "o99,c1,2024-01-02,1,x", "", *good_rows(6, start=10), "o99,c1,2024-01-02,1,x",
             *good_rows(8, start=20), long, *good_rows(3, start=40)]
    write(tmp_path, "t.csv", csv_text(lines, newline="\r\n"))
    frame, unread = read(tmp_path, {"path": "t.csv", "read": {"sep": sep}})
    assert unread["reason"].str.extract(r"^line (\d+) has 5 fields")[0].tolist() == ["8", "16", "25"]
    assert unread["row"].tolist() == [6, 13, 22] and len(frame) == 26
    assert unread["reason"].iloc[2].endswith(f"the line: {long!r}")


def test_a_few_lines_set_aside_leave_the_rows_read_uncopied():
    """A multi-GB export with three broken lines: the rows of nulls go between slices of the table read (a copy by
    `take` doubled the memory); past SLICED_LINES lines, taken anew. Both give the same rows."""
    table = pa.table({"a": pa.array([f"value {i}" for i in range(200_000)], type=pa.large_string()),
                      "b": pa.array([str(i) for i in range(200_000)], type=pa.large_string())})
    rows = np.array([0, 5, 100_000, 200_002])  # positions in the result: first, inside, last
    before = pa.total_allocated_bytes()
    sliced = sources._with_rows_of_nulls(table, rows)
    assert pa.total_allocated_bytes() - before < 10_000  # (the table's columns hold ~4 MB)
    many = np.sort(np.random.default_rng(0).choice(200_000, sources.SLICED_LINES + 1, replace=False))
    for chosen in (rows, many):
        result = sources._with_rows_of_nulls(table, chosen)
        expected, empty = iter(table.column("b").to_pylist()), set(chosen.tolist())
        assert result.column("b").to_pylist() == [None if row in empty else next(expected)
                                                  for row in range(table.num_rows + len(chosen))]
        assert result.column("a").null_count == len(chosen) and result.schema == table.schema
    assert sliced.equals(sources._with_rows_of_nulls(table, rows))
