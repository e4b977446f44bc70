"""Ingest on real files: table-level errors, globs, Parquet, the CLI, and 'a failing run writes nothing'."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import minimal_config
from pipeline.cli import app
from pipeline.config import config_from_dict
from pipeline.errors import IngestError
from pipeline.run import ingest as ingest_runner
from pipeline.config import NULL_TOKENS
from pipeline.sources import _header_names, _read_csv_with_arrow, read_source

GOOD_TRANSACTIONS = (
    "order_id,customer_id,ordered_at,amount\n"
    "o1,c1,2024-01-01 10:00:00,10.5\n"
    "o1,c1,2024-01-01 10:00:00,2\n"
    "o2,c2,2024-01-03 09:30:00,-4\n"
)


def with_column(csv: str, name: str, value: str) -> str:
    """`csv` with one more column `name` holding `value` on every row."""
    header, *rows = csv.splitlines()
    return "".join(f"{line}\n" for line in [f"{header},{name}", *(f"{row},{value}" for row in rows)])


FEB = {"dates": ["2024-02-01"]}


def make_config(folder: Path, sources: dict[str, dict], **sections: dict):
    raw = minimal_config(snapshots=FEB, paths={"data_dir": "out", "models_dir": "models"}, sources=sources, **sections)
    return config_from_dict(raw, base_dir=folder)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def run_ingest(folder: Path, sources: dict[str, dict], **sections: dict) -> dict:
    return ingest_runner.run(make_config(folder, sources, **sections), quiet=True)


# --- table-level problems: clear errors naming source, file and what to do -------------------------


def test_missing_required_column_names_the_column_and_the_rename_map(tmp_path):
    write(tmp_path, "t.csv", "order_id,customer_id,amount\no1,c1,1\n")
    with pytest.raises(IngestError, match=r"source transactions: .*t\.csv lacks required column\(s\) ordered_at; map the file's columns with sources\.transactions\.rename"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})


def test_empty_file_is_an_error(tmp_path):
    write(tmp_path, "t.csv", "")
    with pytest.raises(IngestError, match=r"source transactions: .*t\.csv is empty \(not even a header row\)"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})


def test_wrong_delimiter_suggests_the_right_one(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS.replace(",", ";"))
    with pytest.raises(IngestError, match=r"only one column was read .*seems to use ';' as separator, set sources\.transactions\.read\.sep: ';'"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    # ... and with that setting it reads fine.
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"sep": ";"}}})
    assert report["sources"]["transactions"]["validated_rows"] == 3


def test_non_utf8_bytes_name_the_line_and_the_encoding_setting(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS.encode() + "o3,Müller,2024-01-04,1\n".encode("latin-1"))
    with pytest.raises(IngestError, match=r"t\.csv is not valid utf-8 \(line 5, byte \d+\); re-export it as UTF-8, or set sources\.transactions\.read\.encoding"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"encoding": "latin-1"}}})
    assert report["sources"]["transactions"]["validated_rows"] == 4


@pytest.mark.parametrize(("code_page", "word"), [("cp437", "Berguvsvägen"), ("cp1252", "Müller")])
def test_non_utf8_bytes_name_the_code_page_that_reads_them_as_letters(tmp_path, code_page, word):
    """Kaggle's sample sales data is written in DOS's cp437 (0x84 'ä'): latin-1 or cp1252 read it without an error
    but as '„', so the hint names the code page under which its bytes make words, with one of them."""
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS.encode() + f"o3,{word},2024-01-04,1\n".encode(code_page))
    with pytest.raises(IngestError, match=rf"set sources\.transactions\.read\.encoding to the file's encoding "
                                          rf"\({code_page}: read so, its bytes give words such as '{word}'\)"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})


def test_a_mac_roman_export_with_classic_mac_line_ends_is_named_so(tmp_path):
    """A Tableau Superstore copy is Mac Roman with CR line ends: its no-break spaces (0xCA) read in cp1252 as 'Ê'
    inside words ('ConferenceÊphoneÊ', 427 of them), which outnumbered its accented names, so the hint named cp1252;
    and the line of the first bad byte was 'line 1' (no LF in the file)."""
    rows = [f"o{i},c{i},2024-01-0{i},1,Conference\u00a0phone\u00a0{i}" for i in range(1, 6)] + ["o6,c6,2024-01-06,1,Résumé"]
    text = "order_id,customer_id,ordered_at,amount,product\r" + "\r".join(rows) + "\r"
    write(tmp_path, "t.csv", text.encode("mac_roman"))
    with pytest.raises(IngestError, match=r"not valid utf-8 \(line 2, byte \d+\); .* \(mac_roman: read so, its bytes "
                                          r"give words such as 'Résumé'\)"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})


def test_a_utf8_export_read_with_a_code_page_that_fails_says_it_is_utf8(tmp_path):
    """A Superstore copy in UTF-8 read with read.encoding: cp1252 (its closing quote ” is E2 80 9D; 0x9D is no cp1252
    character): the hint named latin-1 or cp1252, the setting already made, and never UTF-8."""
    write(tmp_path, "t.csv", (GOOD_TRANSACTIONS + 'o3,Zoë ”K”,2024-01-04,1\n').encode("utf-8"))
    with pytest.raises(IngestError, match=r"t\.csv is not valid cp1252 \(line 5, byte \d+\), but it is valid UTF-8 "
                                          r"throughout: remove sources\.transactions\.read\.encoding \(UTF-8 is the "
                                          r"default\) or set it to utf-8"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"encoding": "cp1252"}}})


def _notes(report: dict) -> str:
    return " ".join(report["sources"]["transactions"]["notes"])


def test_a_read_encoding_that_misreads_the_text_without_an_error_is_noted(tmp_path):
    """latin-1 decodes any bytes: a Mac Roman Superstore copy read so held invisible control characters ('Franz\x9asisch'),
    cp1252 read its no-break spaces as capitals ('ConferenceÊphone'), and a UTF-8 copy read as latin-1 'Â\xa0'; no
    word was said. A setting that reads the text as words stays quiet."""
    rows = "".join(f"o{i},c{i},2024-01-0{i},1,Conference\u00a0phone\u00a0set for Französisch {i}\n" for i in range(1, 6))
    header = "order_id,customer_id,ordered_at,amount,product\n"
    write(tmp_path, "t.csv", (header + rows).encode("mac_roman"))
    for wrong, shown in (("latin-1", "'ConferenceÊphoneÊset'"), ("cp1252", "'ConferenceÊphoneÊset'")):
        report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"encoding": wrong}}})
        assert (f"t.csv may be in mac_roman, not {wrong}: read as {wrong}, its text has capitals or control characters "
                f"inside words (e.g. {shown}); mac_roman reads that as 'Conference\\xa0phone\\xa0set', and words such as "
                "'Französisch': set sources.transactions.read.encoding: mac_roman") in _notes(report), wrong
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"encoding": "mac_roman"}}})
    assert "may be in" not in _notes(report)
    write(tmp_path, "t.csv", (header + rows).encode("utf-8"))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"encoding": "latin-1"}}})
    assert ("t.csv is valid UTF-8 (e.g. 'Conference\\xa0phone') but sources.transactions.read.encoding: latin-1 reads it "
            "as 'ConferenceÂ\\xa0phone': remove the setting (UTF-8 is the default)") in _notes(report)
    write(tmp_path, "t.csv", (header + rows.replace("\u00a0", " ")).encode("cp1252"))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"encoding": "cp1252"}}})
    assert "may be in" not in _notes(report) and "UTF-8" not in _notes(report)


def test_header_only_transactions_file_is_an_error(tmp_path):
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\n")
    with pytest.raises(IngestError, match=r"source transactions: .*t\.csv has a header but no rows"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})


def test_header_only_feedback_file_is_a_source_without_rows(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}})
    assert report["sources"]["feedback"]["input_rows"] == 0
    assert report["sources"]["feedback"]["notes"] == [f"{tmp_path / 'f.csv'} has a header but no rows"]
    assert pd.read_parquet(tmp_path / "out" / "validated" / "feedback.parquet").empty


def test_missing_file_and_empty_glob_point_at_the_path_setting(tmp_path):
    with pytest.raises(IngestError, match=r"source transactions: file not found: .*nope\.csv; fix sources\.transactions\.path"):
        run_ingest(tmp_path, {"transactions": {"path": "nope.csv"}})
    with pytest.raises(IngestError, match=r"no file matches .*exports/\*\.csv"):
        run_ingest(tmp_path, {"transactions": {"path": "exports/*.csv"}})


# --- several files, Parquet, origin of each row ----------------------------------------------------


def test_glob_reads_every_file_in_name_order_and_keeps_the_origin_of_bad_rows(tmp_path):
    (tmp_path / "exports").mkdir()
    write(tmp_path / "exports", "2024-02.csv", "order_id,customer_id,ordered_at,amount\no3,c3,2024-02-01,5\no4,c3,bad,6\n")
    write(tmp_path / "exports", "2024-01.csv", GOOD_TRANSACTIONS)
    config = make_config(tmp_path, {"transactions": {"path": "exports/*.csv"}})
    raw = read_source("transactions", config.sources.transactions)
    assert raw.frame["order_id"].tolist() == ["o1", "o1", "o2", "o3", "o4"]
    report = ingest_runner.run(config, quiet=True)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["source_file", "source_row", "reason"]].values.tolist() == [
        [str(tmp_path / "exports" / "2024-02.csv"), 2, "ordered_at: not a timestamp"]
    ]
    assert [entry["path"] for entry in report["sources"]["transactions"]["files"]] == [
        str(tmp_path / "exports" / "2024-01.csv"),
        str(tmp_path / "exports" / "2024-02.csv"),
    ]


def test_parquet_source_with_typed_columns_and_naive_local_times(tmp_path):
    frame = pd.DataFrame(
        {
            "order_id": [1, 2],
            "customer_id": ["c1", "c2"],
            "ordered_at": pd.to_datetime(["2024-07-01 12:00", "2024-07-02 12:00"]),
            "amount": [1.5, 2.0],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    run_ingest(tmp_path, {"transactions": {"path": "t.parquet", "timezone": "Europe/Berlin"}})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["order_id"].tolist() == ["1", "2"]
    assert validated["ordered_at"].tolist() == [
        pd.Timestamp("2024-07-01 10:00", tz="UTC"),
        pd.Timestamp("2024-07-02 10:00", tz="UTC"),
    ]


# --- Excel workbooks ---------------------------------------------------------------------------------

INVOICES = pd.DataFrame({  # typed cells, as a shop's spreadsheet holds them
    "InvoiceNo": [536365, 536365, "C536379", 536366],
    "StockCode": ["85123A", 71053, "D", "22633"],
    "Quantity": [6, 6, -1, 2],
    "InvoiceDate": pd.to_datetime(["2010-12-01 08:26", "2010-12-01 08:26", "2010-12-01 09:41", "2010-12-02 10:00"]),
    "UnitPrice": [2.55, 3.39, 27.5, 1.85],
    "CustomerID": [17850.0, 17850.0, 14527.0, 13047.0],
})
INVOICE_MAPPING = {"rename": {"InvoiceNo": "order_id", "StockCode": "product_id", "Quantity": "quantity",
                              "InvoiceDate": "ordered_at", "UnitPrice": "unit_price", "CustomerID": "customer_id"}}


def write_workbook(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for sheet, frame in sheets.items():
            frame.to_excel(writer, sheet_name=sheet, index=False)
    return path


def test_an_excel_workbook_reads_like_the_same_rows_in_a_csv(tmp_path):
    """Dates, whole numbers stored as floats (ids 17850.0), mixed id columns: the validated rows equal those of
    a CSV export of the same sheets; "*" reads every sheet in order, and a bad row names its sheet and row."""
    early = INVOICES.iloc[:3]
    late = pd.concat([INVOICES.iloc[3:], INVOICES.iloc[3:].assign(InvoiceDate=["not a date"], InvoiceNo=[536367])])
    write_workbook(tmp_path / "retail.xlsx", {"2010": early, "2011": late})
    (tmp_path / "csv").mkdir()
    csv_rows = pd.concat([early.astype({"InvoiceDate": "str"}), late]).astype({"CustomerID": "str"})
    csv_rows.to_csv(tmp_path / "csv" / "retail.csv", index=False)
    excel_report = run_ingest(tmp_path, {"transactions": {"path": "retail.xlsx", "read": {"sheet": "*"},
                                                          **INVOICE_MAPPING}})
    from_excel = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["source_file", "source_row", "reason"]].values.tolist() == [
        [f"{tmp_path / 'retail.xlsx'} [sheet 2011]", 2, "InvoiceDate: not a timestamp"]]
    assert excel_report["sources"]["transactions"]["validated_rows"] == 4
    run_ingest(tmp_path / "csv", {"transactions": {"path": "retail.csv", **INVOICE_MAPPING}})
    from_csv = pd.read_parquet(tmp_path / "csv" / "out" / "validated" / "transactions.parquet")
    pd.testing.assert_frame_equal(from_excel, from_csv)
    assert from_excel["order_id"].tolist() == ["536365", "536365", "C536379", "536366"]
    assert from_excel["customer_id"].tolist() == ["17850", "17850", "14527", "13047"]
    assert from_excel["product_id"].tolist() == ["85123A", "71053", "D", "22633"]
    assert from_excel["ordered_at"].iloc[0] == pd.Timestamp("2010-12-01 08:26", tz="UTC")
    assert from_excel["amount"].tolist() == pytest.approx([15.3, 20.34, -27.5, 3.7])


def test_an_excel_workbook_reads_its_first_sheet_unless_told_and_names_its_sheets(tmp_path):
    write_workbook(tmp_path / "retail.xlsx", {"2010": INVOICES.iloc[:2], "2011": INVOICES.iloc[2:3]})
    config = make_config(tmp_path, {"transactions": {"path": "retail.xlsx", **INVOICE_MAPPING}})
    assert read_source("transactions", config.sources.transactions).frame["InvoiceNo"].tolist() == ["536365"] * 2
    by_name = make_config(tmp_path, {"transactions": {"path": "retail.xlsx", "read": {"sheet": "2011"},
                                                      **INVOICE_MAPPING}})
    assert read_source("transactions", by_name.sources.transactions).frame["InvoiceNo"].tolist() == ["C536379"]
    with pytest.raises(IngestError, match=r"retail\.xlsx has no sheet 'Orders' \(its sheets: '2010', '2011'\); "
                                          r"set sources\.transactions\.read\.sheet"):
        run_ingest(tmp_path, {"transactions": {"path": "retail.xlsx", "read": {"sheet": "Orders"}, **INVOICE_MAPPING}})
    with pytest.raises(IngestError, match=r"has no sheet 2 \(its sheets"):
        run_ingest(tmp_path, {"transactions": {"path": "retail.xlsx", "read": {"sheet": 2}, **INVOICE_MAPPING}})


def test_unreadable_empty_or_ambiguous_excel_files_are_errors_naming_the_file(tmp_path):
    write(tmp_path, "broken.xlsx", b"PK\x03\x04 not really a workbook")
    with pytest.raises(IngestError, match=r"source transactions: .*broken\.xlsx is not a readable Excel workbook: .*; re-export it"):
        run_ingest(tmp_path, {"transactions": {"path": "broken.xlsx"}})
    write_workbook(tmp_path / "empty.xlsx", {"Orders": pd.DataFrame()})
    with pytest.raises(IngestError, match=r"sheet 'Orders' of .*empty\.xlsx is empty \(not even a header row\)"):
        run_ingest(tmp_path, {"transactions": {"path": "empty.xlsx"}})
    repeated = pd.DataFrame([["o1", "c1", "2024-01-01", 1, 2]], columns=["order_id", "customer_id", "ordered_at", "amount", "x"])
    write_workbook(tmp_path / "twice.xlsx", {"Orders": repeated.rename(columns={"x": "amount"})})
    with pytest.raises(IngestError, match=r"twice\.xlsx.*amount"):
        run_ingest(tmp_path, {"transactions": {"path": "twice.xlsx"}})
    assert not (tmp_path / "out" / "validated").exists()


def test_headerless_file_with_column_names(tmp_path):
    write(tmp_path, "t.txt", "c1 19970101 2 11.77\nc2 19970102 1 12.00\n")
    report = run_ingest(
        tmp_path,
        {
            "transactions": {
                "path": "t.txt",
                "read": {"sep": r"\s+", "header": False, "column_names": ["customer_id", "day", "cds", "value"], "date_format": "%Y%m%d"},
                "rename": {"day": "ordered_at", "value": "amount", "cds": "quantity"},
                "one_order_per_row": True,
            }
        },
    )
    assert report["sources"]["transactions"]["validated_rows"] == 2
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated[["order_id", "quantity", "amount"]].values.tolist() == [["R1", 2.0, 11.77], ["R2", 1.0, 12.0]]


# --- a failing run writes nothing ----------------------------------------------------------------


def test_a_failing_run_leaves_the_previous_outputs_untouched(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\nc1,2024-01-02,nps,9\n")
    sources = {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}}
    run_ingest(tmp_path, sources)
    out = tmp_path / "out"
    before = {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}
    # Transactions change (would be written first) but feedback is now all bad: nothing may change.
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS + "o9,c9,2024-01-05,1\n")
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\nc1,2024-01-02,nps,99\n")
    with pytest.raises(IngestError, match="source feedback: 100.0% of 1 rows are bad"):
        run_ingest(tmp_path, sources)
    after = {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}
    assert after == before


def test_stale_extra_file_is_removed_when_the_extra_columns_go(tmp_path):
    write(tmp_path, "t.csv", with_column(GOOD_TRANSACTIONS, "store", "s1"))
    run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    extra = tmp_path / "out" / "validated" / "extra" / "transactions.parquet"
    assert pd.read_parquet(extra)["store"].tolist() == ["s1", "s1", "s1"]
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    assert not extra.exists()


# --- the CLI -----------------------------------------------------------------------------------------


def test_cli_unknown_config_key_fails_at_start_up_naming_the_key(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    raw = minimal_config(snapshots=FEB, sources={"transactions": {"path": "t.csv", "seperator": ";"}})
    config = write(tmp_path, "config.yaml", yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["ingest", "-c", str(config), "-q"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "sources.transactions.seperator: unknown key" in result.output


def test_cli_ingest_error_is_a_message_not_a_traceback(tmp_path):
    write(tmp_path, "t.csv", "")
    raw = minimal_config("t.csv", snapshots=FEB)
    config = write(tmp_path, "config.yaml", yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["ingest", "-c", str(config), "-q"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "t.csv is empty (not even a header row)" in result.output
    assert "Traceback" not in result.output


def test_cli_prints_the_report_table_and_writes_the_json(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS + "o3,c3,2024-01-04,abc\n" + "o4,c4,2024-01-04,4\n" * 3)
    raw = minimal_config("t.csv", snapshots=FEB, paths={"data_dir": "out"})
    config = write(tmp_path, "config.yaml", yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["ingest", "-c", str(config)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "1 × amount: not a number" in result.output
    assert "not configured (no rows)" in result.output
    report = json.loads((tmp_path / "out" / "reports" / "ingest_report.json").read_text())
    entry = report["sources"]["transactions"]
    assert (entry["input_rows"], entry["validated_rows"], entry["quarantined_rows"], entry["duplicate_rows"]) == (7, 6, 1, 2)
    assert entry["top_reasons"] == [{"reason": "amount: not a number", "rows": 1}]


def test_one_order_per_row_conflicts(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    with pytest.raises(IngestError, match=r"has an order_id column but sources\.transactions\.one_order_per_row is true"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "one_order_per_row": True}})
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\nc1,2024-01-02,nps,9\n")
    with pytest.raises(IngestError, match=r"sources\.feedback\.one_order_per_row: only transactions have orders"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv", "one_order_per_row": True}})


def test_reserved_and_doubled_column_names(tmp_path):
    write(tmp_path, "t.csv", with_column(GOOD_TRANSACTIONS, "reason", "x"))
    with pytest.raises(IngestError, match=r"has column\(s\) reason, reserved for the quarantine file"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    write(tmp_path, "t.csv", with_column(GOOD_TRANSACTIONS, "net", "1"))
    with pytest.raises(IngestError, match=r"would have column\(s\) amount twice after sources\.transactions\.rename"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "rename": {"net": "amount"}}})


def test_unreadable_parquet_and_unused_rename_keys(tmp_path):
    write(tmp_path, "t.parquet", b"not parquet at all")
    with pytest.raises(IngestError, match=r"source transactions: .*t\.parquet is not a readable Parquet file: .*; re-export it"):
        run_ingest(tmp_path, {"transactions": {"path": "t.parquet"}})
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "rename": {"OrderNo": "order_id"}}})
    assert report["sources"]["transactions"]["notes"] == ["rename keys not found in the files: OrderNo"]


def test_a_regular_expression_separator(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS.replace(",", " | "))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"sep": r"\s*\|\s*"}}})
    assert report["sources"]["transactions"]["validated_rows"] == 3


EUROPEAN_TRANSACTIONS = (
    "Beleg;Kunde;Datum;Menge;Preis\n"
    "o1;c1;01.02.2024 10:00;2;1.234,50\n"
    "o2;c2;03.02.2024 09:30;-1;2,55\n"
)
EUROPEAN_MAPPING = {"path": "t.csv", "rename": {"Beleg": "order_id", "Kunde": "customer_id", "Datum": "ordered_at",
                                                "Menge": "quantity", "Preis": "unit_price"}}


def test_decimal_commas_are_read_when_configured_and_named_when_not(tmp_path):
    """A German export: ';' between fields, '.' between thousands, ',' before the decimals."""
    write(tmp_path, "t.csv", EUROPEAN_TRANSACTIONS)
    with pytest.raises(IngestError, match=r"Preis: not a number \(a decimal comma\? set sources\.transactions\.read\."
                                          r"decimal: ',' and, if the numbers have one, read\.thousands\) \(2 rows\)"):
        run_ingest(tmp_path, {"transactions": {**EUROPEAN_MAPPING, "read": {"sep": ";"}}})
    assert not (tmp_path / "out" / "validated").exists()
    run_ingest(tmp_path, {"transactions": {**EUROPEAN_MAPPING, "read": {"sep": ";", "decimal": ",", "thousands": "."}}})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet").sort_values("order_id")
    assert validated["unit_price"].tolist() == [1234.5, 2.55]
    assert validated["amount"].tolist() == [2469.0, -2.55]


# --- the fast CSV reader reads exactly what pandas reads -------------------------------------------


TRICKY_CSV = (
    '"order_id","customer_id","ordered_at","amount","note"\n'
    'o1,c1,2024-01-01 10:00:00,10.5,NA\n'
    'o2,"c,2",2024-01-02,,""\n'
    'o3, c3 ,"2024-01-03T09:30:00+02:00",007,"say ""hi"""\n'
    'o4,c4,,1e3,null\n'
)


def pandas_read(path: Path, **options) -> pd.DataFrame:
    return pd.read_csv(path, engine="pyarrow", dtype=str, keep_default_na=False, na_values=list(NULL_TOKENS), **options)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_arrow_csv_reader_matches_the_pandas_reader(tmp_path, sep):
    path = write(tmp_path, "t.csv", TRICKY_CSV.replace(",", sep) if sep != "," else TRICKY_CSV)
    config = make_config(tmp_path, {"transactions": {"path": "t.csv", "read": {"sep": sep}}})
    read = config.sources.transactions.read
    assert _read_csv_with_arrow(path, read, _header_names(path, read)) is not None  # no fallback
    fast = read_source("transactions", config.sources.transactions).frame
    if sep == ",":
        pd.testing.assert_frame_equal(fast, pandas_read(path, sep=sep))
    assert fast["note"].tolist()[0] == "NA"  # 'NA' stays text; empty cells and null tokens are null
    assert fast["note"].isna().tolist() == [False, True, False, True]
    assert fast["amount"].isna().tolist() == [False, True, False, False]
    assert all(str(dtype) == "str" for dtype in fast.dtypes)


def test_arrow_csv_reader_with_column_names_and_no_header(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS.split("\n", 1)[1])
    read = {"header": False, "column_names": ["order_id", "customer_id", "ordered_at", "amount"]}
    config = make_config(tmp_path, {"transactions": {"path": "t.csv", "read": read}})
    frame = read_source("transactions", config.sources.transactions).frame
    assert frame["order_id"].tolist() == ["o1", "o1", "o2"]
    assert frame["amount"].tolist() == ["10.5", "2", "-4"]


def test_repeated_header_names_are_an_error_naming_the_column(tmp_path):
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,x,x\no1,c1,2024-01-01,1,a,b\n")
    config = make_config(tmp_path, {"transactions": {"path": "t.csv"}})
    with pytest.raises(IngestError, match=r"source transactions: .*t\.csv has column\(s\) 'x' more than once"):
        read_source("transactions", config.sources.transactions)

# --- overlapping exports -----------------------------------------------------------------------------


def test_rows_repeated_by_an_overlapping_later_export_are_quarantined_once_not_as_bad(tmp_path):
    """January's export runs to Feb 2; February's starts on Feb 1: the two overlapping days' rows are in both.
    Each is kept once (from the more recent file); two equal lines of one order, in one file, both stay."""
    (tmp_path / "exports").mkdir()
    header = "order_id,customer_id,ordered_at,amount\n"
    overlap = "o5,c2,2024-02-01 09:00:00,4\no6,c3,2024-02-02 10:00:00,7\no6,c3,2024-02-02 10:00:00,7\n"
    write(tmp_path / "exports", "2024-01.csv", header + "o1,c1,2024-01-05 10:00:00,10.5\n" + overlap)
    write(tmp_path / "exports", "2024-02.csv", header + overlap + "o7,c1,2024-02-20 08:00:00,3\n"
          "o8,c4,2024-02-21 08:00:00,2\no8,c4,2024-02-21 08:00:00,2\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "exports/*.csv"}})["sources"]["transactions"]
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["order_id"].tolist() == ["o1", "o5", "o6", "o6", "o7", "o8", "o8"]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["source_file", "source_row", "reason"]].values.tolist() == [
        [str(tmp_path / "exports" / "2024-01.csv"), row,
         "repeated in a more recent export file (overlapping exports): the latest copy is kept"] for row in (2, 3, 4)]
    assert report["repeated_rows"] == 3 and report["bad_share"] == 0.0
    assert report["duplicate_rows"] == 2  # o6's and o8's second lines: equal lines within one file, kept
    assert ("3 rows are repeated in a more recent export file (overlapping exports?): the latest copy of each is kept, "
            "the others quarantined, not counted as bad") in report["notes"]


def test_orders_repeated_line_for_line_by_exports_joined_in_one_file_are_kept_once_not_as_bad(tmp_path):
    """Two exports joined one below the other without a second header (a workbook's two sheets that overlap by a few
    days, saved as one CSV): o5 and o6 are written twice, as separate blocks. The last copy of each is kept; o6's two
    equal lines count as two in both copies. Blocks that differ (o1's lines split by o2's, a return) are no repeats,
    nor are two equal lines next to each other (o8)."""
    header = "order_id,customer_id,ordered_at,amount\n"
    overlap = "o5,c2,2024-02-01 09:00:00,4\no6,c3,2024-02-02 10:00:00,7\no6,c3,2024-02-02 10:00:00,7\n"
    write(tmp_path, "t.csv", header + "o1,c1,2024-01-05 10:00:00,10.5\no2,c5,2024-01-05 10:01:00,1\n"
          "o1,c1,2024-01-05 10:00:00,3\n" + overlap + overlap + "o8,c4,2024-02-21 08:00:00,2\n"
          "o8,c4,2024-02-21 08:00:00,2\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})["sources"]["transactions"]
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["order_id"].tolist() == ["o1", "o2", "o1", "o5", "o6", "o6", "o8", "o8"]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["order_id", "source_row", "reason"]].values.tolist() == [
        [order, row, "repeated later in the same file: the order's lines appear again as a separate block, line for "
         "line (exports joined one below the other?): the last copy is kept"]
        for order, row in (("o5", 4), ("o6", 5), ("o6", 6))]
    assert report["repeated_rows"] == 3 and report["bad_share"] == 0.0 and report["input_rows"] == 11
    assert report["duplicate_rows"] == 2  # o6's and o8's second lines, kept
    assert ("3 order lines are repeated later in the same file, as a separate block of the same order's lines (2 "
            "orders, e.g. 'o5'; exports joined one below the other?): the last copy of each order is kept, the "
            "earlier quarantined, not counted as bad") in report["notes"]


def test_an_order_written_twice_by_joined_exports_is_kept_once_when_the_earlier_copy_is_split(tmp_path):
    """Online Retail II's two sheets saved as one CSV: the sheet of 2009-2010 writes some orders' lines split by the
    lines of another order (o5's by o9's, of the same minute), the sheet of 2010-2011 writes them together. Before,
    the split copy was no block of its own and was kept beside the other: 782 lines of 20 orders counted twice."""
    header = "order_id,customer_id,ordered_at,amount\n"
    first = ("o5,c2,2024-02-01 09:00:00,4\no9,c9,2024-02-01 09:00:00,1\no5,c2,2024-02-01 09:00:00,6\n"
             "o6,c3,2024-02-02 10:00:00,7\no7,c4,2024-02-03 10:00:00,2\no8,c5,2024-02-04 10:00:00,3\n")
    second = ("o5,c2,2024-02-01 09:00:00,4\no5,c2,2024-02-01 09:00:00,6\no9,c9,2024-02-01 09:00:00,1\n"
              "o6,c3,2024-02-02 10:00:00,7\no7,c4,2024-02-03 10:00:00,2\no8,c5,2024-02-04 10:00:00,3\n")
    write(tmp_path, "t.csv", header + "o1,c1,2024-01-05 10:00:00,10.5\n" + first + second)
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})["sources"]["transactions"]
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["order_id"].tolist() == ["o1", "o5", "o5", "o9", "o6", "o7", "o8"]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["order_id"].tolist() == ["o5", "o9", "o5", "o6", "o7", "o8"]
    assert report["repeated_rows"] == 6 and report["bad_share"] == 0.0


def test_a_basket_log_whose_lines_lie_apart_keeps_an_orders_equal_lines(tmp_path):
    """Kaggle's Groceries_dataset.csv: one row per item a member bought on a day, in no order, mapped to an order per
    member and day with `combine`. An order's lines lie apart, so two equal lines of it (two of one item) are two
    blocks of one line each: before, the first was quarantined as 'repeated later in the same file ... exports joined
    one below the other?' (759 rows of the real file). A file that writes orders' lines together still has its
    repeated blocks caught (the test above)."""
    rng = np.random.default_rng(0)
    rows = [(m, f"{d:02d}-01-2015", item) for m in range(1000, 1030) for d in (3, 9)
            for item in ("whole milk", "yogurt", "rolls/buns")]
    rows += [(1000, "03-01-2015", "whole milk"), (1001, "09-01-2015", "yogurt")]  # two of one item
    rows = [rows[i] for i in rng.permutation(len(rows))]
    write(tmp_path, "g.csv", "Member_number,Date,itemDescription\n" + "".join(f"{m},{d},{i}\n" for m, d, i in rows))
    source = {"path": "g.csv", "read": {"date_format": "%d-%m-%Y"}, "constants": {"amount": 1},
              "rename": {"Member_number": "customer_id", "Date": "ordered_at", "itemDescription": "product_id"},
              "combine": {"order_id": ["Member_number", "Date"]}}
    report = run_ingest(tmp_path, {"transactions": source})["sources"]["transactions"]
    assert report["validated_rows"] == len(rows) == 182 and report["repeated_rows"] == 0
    assert not any("repeated later in the same file" in note for note in report["notes"])


def test_an_export_without_money_given_a_constant_amount_is_told_what_the_sums_then_count(tmp_path):
    """Groceries_dataset.csv has no money: the contract's amount can only be given by `constants`. Before, ingest said
    nothing of it, but warned that 'amount looks like the order's total written on each of its lines' (every line of
    every order gives 1) and told the user to map the line's own amount, which the export does not have."""
    rows = [(m, f"{d:02d}-01-2015", item) for m in range(1000, 1030) for d in (3, 9)
            for item in ("whole milk", "yogurt", "rolls/buns")]
    write(tmp_path, "g.csv", "Member_number,Date,itemDescription\n" + "".join(f"{m},{d},{i}\n" for m, d, i in rows))
    source = {"path": "g.csv", "read": {"date_format": "%d-%m-%Y"}, "constants": {"amount": 1},
              "rename": {"Member_number": "customer_id", "Date": "ordered_at", "itemDescription": "product_id"},
              "combine": {"order_id": ["Member_number", "Date"]}}
    notes = run_ingest(tmp_path, {"transactions": source})["sources"]["transactions"]["notes"]
    assert not any("order's total" in note for note in notes)
    assert ("amount is the constant 1 on every line (sources.transactions.constants): the export gives no money, so "
            "spend, order value, customer_value, the actions' expected gains and what score.budget buys count lines "
            "times 1, not money; the reasons leave spend out (no 'spent only ...' or 'average order worth ...')") in notes
    source = {**source, "constants": {}, "rename": {**source["rename"], "Price": "amount"}}
    write(tmp_path, "g.csv", "Member_number,Date,itemDescription,Price\n" + "".join(
        f"{m},{d},{i},{1 + len(i)}\n" for m, d, i in rows))
    notes = run_ingest(tmp_path, {"transactions": source})["sources"]["transactions"]["notes"]
    assert not any("constant" in note for note in notes)


def test_an_order_exported_again_after_its_status_or_refund_changed_is_kept_once_as_last_exported(tmp_path):
    """A shop exports the last two months every month: an order placed on Jan 30 is in January's file as paid and in
    February's as partially refunded, and February's file has an export-date column January's lacks. The order's
    lines are one record whatever those columns say: kept once, as the more recent export has them (with the refund);
    a file's recency is its latest order, not its name."""
    (tmp_path / "exports").mkdir()
    header = "Name,Email,Created at,Financial Status,Lineitem quantity,Lineitem price,Refunded Amount"
    write(tmp_path / "exports", "orders-b-jan.csv", f"{header}\n#1,ann@x.com,2024-01-05 10:00,paid,1,20,\n"
          "#2,bob@x.com,2024-01-30 10:00,paid,2,15,\n#2,,,,1,5,\n")
    write(tmp_path / "exports", "orders-a-feb.csv", f"{header},Exported\n"
          "#2,bob@x.com,2024-01-30 10:00,partially_refunded,2,15,10,2024-03-01\n#2,,,,1,5,,2024-03-01\n"
          "#3,cat@x.com,2024-02-10 10:00,paid,1,9,,2024-03-01\n")
    source = {**SHOPIFY_REFUNDS, "path": "exports/*.csv"}
    report = run_ingest(tmp_path, {"transactions": source})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "amount"]].values.tolist() == [
        ["#2", 30.0], ["#2", 5.0], ["#3", 9.0], ["#1", 20.0], ["#2", -10.0]]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["Name", "Financial Status"]].fillna("").values.tolist() == [["#2", "paid"], ["#2", ""]]
    assert report["sources"]["transactions"]["repeated_rows"] == 2


def test_the_copy_kept_of_an_overlapping_record_is_a_valid_one_from_the_file_with_the_latest_valid_time(tmp_path):
    """February's copy of o29 has an unreadable delivery date: January's valid copy stays (before, both went to the
    quarantine, one as a repeat). January's file holds a typo dated 2204: quarantined, it does not make January's
    file the more recent one, so o30's refreshed copy is February's. A ticket re-categorised and closed between two
    exports is one ticket, as last exported."""
    (tmp_path / "exports").mkdir()
    header = "order_id,customer_id,ordered_at,amount,delivered_at,status\n"
    write(tmp_path / "exports", "2024-01.csv", header + "o29,c1,2024-01-30 10:00,30,2024-02-02,shipped\n"
          "o30,c2,2024-01-31 10:00,40,,paid\no31,c3,2204-01-20 10:00,5,,paid\n")
    write(tmp_path / "exports", "2024-02.csv", header + "o29,c1,2024-01-30 10:00,30,2024-02-3O,delivered\n"
          "o30,c2,2024-01-31 10:00,40,2024-02-03,delivered\no32,c4,2024-02-20 10:00,9,,paid\n")
    write(tmp_path, "t1.csv", "ticket_id,customer_id,opened_at,closed_at,topic\nt1,c1,2024-02-01 09:00,,billing\n")
    write(tmp_path, "t2.csv", "ticket_id,customer_id,opened_at,closed_at,topic\n"
          "t1,c1,2024-02-01 09:00,2024-02-02 10:00,refund\nt2,c2,2024-02-10 09:00,,billing\n")
    run_ingest(tmp_path, {"transactions": {"path": "exports/*.csv"}, "support_tickets": {"path": "t*.csv"}},
               ingest={"max_bad_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated["order_id"].tolist() == ["o29", "o30", "o32"]
    assert validated["delivered_at"].dt.strftime("%Y-%m-%d").fillna("").tolist() == ["2024-02-02", "2024-02-03", ""]
    tickets = read_validated_source(tmp_path, "support_tickets")
    assert tickets[["ticket_id", "topic"]].values.tolist() == [["t1", "refund"], ["t2", "billing"]]
    assert tickets["closed_at"].notna().tolist() == [True, False]


def test_a_third_copy_in_a_file_is_kept_when_other_files_hold_only_two():
    from pipeline.ingest import repeated_across_files
    from pipeline.sources import RawSource, row_origin

    frame = pd.DataFrame({"order_id": ["a", "a", "a", "a", "a", "b"], "amount": ["1", "1", "1", "1", "1", "2"]})
    origin = row_origin(["x.csv", "y.csv", "z.csv"], [2, 3, 1])  # x: a a; y: a a a; z: b
    raw = RawSource(name="transactions", frame=frame, origin=origin, files=())
    typed = pd.DataFrame({"order_id": frame["order_id"], "amount": frame["amount"].astype(float),
                          "ordered_at": pd.Timestamp("2024-01-01", tz="UTC")})
    assert repeated_across_files(raw, typed).tolist() == [0, 1]  # x's two copies; y's third is its own


# --- rows left out on purpose ------------------------------------------------------------------------


def test_excluded_values_of_a_file_column_are_quarantined_with_the_value_not_as_bad(tmp_path):
    """A shop's order export lists cancelled and failed orders beside paid ones: they are not purchases."""
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,Status\n"
          "o1,c1,2024-01-05,10,paid\no2,c1,2024-01-06,20, cancelled \no3,c2,2024-01-07,5,failed\n"
          "o4,c2,2024-01-08,7,paid\no5,c3,2024-01-09,bad,failed\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "exclude": {"Status": ["cancelled", "failed"]}}})
    entry = report["sources"]["transactions"]
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["order_id"].tolist() == ["o1", "o4"]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["order_id", "reason"]].values.tolist() == [
        ["o2", "excluded by sources.transactions.exclude: Status is 'cancelled'"],
        ["o3", "excluded by sources.transactions.exclude: Status is 'failed'"],
        ["o5", "excluded by sources.transactions.exclude: Status is 'failed'"],  # left out: the rest is no news
    ]
    assert entry["excluded_rows"] == 3 and entry["bad_rows"] == 0 and entry["bad_share"] == 0.0
    with pytest.raises(IngestError, match=r"sources\.transactions\.exclude: column 'State' is not in the files \(their "
                                          r"columns: order_id, customer_id, ordered_at, amount, Status\)"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "exclude": {"State": ["cancelled"]}}})
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,Test,Refund\no1,c1,2024-01-05,10,0,false\n"
          "o2,c1,2024-01-06,20,1,false\no3,c2,2024-01-07,5,0,true\n")
    run_ingest(tmp_path, {"transactions": {"path": "t.csv", "exclude": {"Test": [1]}, "returns_when": {"Refund": [True]}}})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")  # YAML's 1 and true: the cells
    assert validated[["order_id", "amount"]].values.tolist() == [["o1", 10.0], ["o3", -5.0]]
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,StockCode\no1,c1,2024-01-05,10,M\n"
          "o2,c1,2024-01-06,20,m\no3,c2,2024-01-07,5,85123A\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "exclude": {"StockCode": ["M", "POST"]}}})
    assert report["sources"]["transactions"]["notes"][:2] == [
        "sources.transactions.exclude: 1 row of StockCode holds 'M' in another case (e.g. 'm'), not matched: values are "
        "compared as written; list that spelling too if it means the same",
        "sources.transactions.exclude: no row of StockCode holds 'POST'"]
    both = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "exclude": {"StockCode": ["M", "m"]}}})
    assert not [n for n in both["sources"]["transactions"]["notes"] if "StockCode" in n]  # both spellings listed
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,Durum\no1,c1,2024-01-05,10,İptal\n"
          "o2,c1,2024-01-06,20,Tamam\n")
    turkish = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "exclude": {"Durum": ["İptal", "iptal"]}}})
    assert turkish["sources"]["transactions"]["excluded_rows"] == 1  # İ lower-cases differently in Python: no crash
    pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["c1", "c2"], "ordered_at": ["2024-01-05", "2024-01-06"],
                  "amount": [1.0, 2.0], "Score": [1.0, 2.0]}).to_parquet(tmp_path / "t.parquet")
    typed = run_ingest(tmp_path, {"transactions": {"path": "t.parquet", "exclude": {"Score": ["1.0"]}}})
    assert ("sources.transactions.exclude: no row of Score holds '1.0' (a typed column: its cells are compared as the "
            "text '1' and the like)") in typed["sources"]["transactions"]["notes"]


def test_returns_written_with_positive_amounts_are_made_returns_by_a_type_column(tmp_path):
    """A payments export writes refunds as positive amounts beside a Type column; one refund is already negative."""
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,quantity,Type\n"
          "o1,c1,2024-01-05,10,2,sale\no1,c1,2024-01-09,4,1,refund\no2,c2,2024-01-07,5,1,sale\n"
          "o2,c2,2024-01-08,-5,-1, Refund\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "returns_when": {"Type": ["refund", "Refund"]}}})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert validated["amount"].tolist() == [10.0, -4.0, 5.0, -5.0]
    assert validated["quantity"].tolist() == [2.0, -1.0, 1.0, -1.0]
    assert "2 rows are returns by sources.transactions.returns_when: their amount and quantity are negative" in (
        report["sources"]["transactions"]["notes"])
    derived = {"path": "d.csv", "rename": {"Qty": "quantity", "Price": "unit_price"}, "returns_when": {"Type": ["refund"]}}
    write(tmp_path, "d.csv", "order_id,customer_id,ordered_at,Qty,Price,Type\no1,c1,2024-01-05,2,3.5,sale\n"
          "o1,c1,2024-01-09,1,3.5,refund\n")
    run_ingest(tmp_path, {"transactions": derived})  # amount derived from the negative quantity
    assert pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")["amount"].tolist() == [7.0, -3.5]
    with pytest.raises(IngestError, match=r"sources\.transactions\.returns_when: column 'Kind' is not in the files"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "returns_when": {"Kind": ["refund"]}}})


# --- lines above the header row ----------------------------------------------------------------------

REPORT_PREAMBLE = "Sales report,,,\nExported 2024-03-01 by the shop,,,\n,,,\n"


def test_lines_above_the_header_are_skipped_when_told_and_pointed_at_when_not(tmp_path):
    write(tmp_path, "t.csv", REPORT_PREAMBLE + GOOD_TRANSACTIONS)
    with pytest.raises(IngestError, match=r"lacks required column\(s\) order_id, customer_id, ordered_at, amount; the "
                                          r"header row seems to be line 4: set sources\.transactions\.read\.skip_rows: 3"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    write(tmp_path, "q.csv", REPORT_PREAMBLE + "order_id,customer_id,ordered_at,Qty,Price\no1,c1,2024-01-01,2,1.5\n")
    with pytest.raises(IngestError, match=r"the header row seems to be line 4"):  # amount derivable there
        run_ingest(tmp_path, {"transactions": {"path": "q.csv", "rename": {"Qty": "quantity", "Price": "unit_price"}}})
    write(tmp_path, "one.csv", "Sales report\n\nExported 2024-03-01\n" + GOOD_TRANSACTIONS)  # lines of one field
    with pytest.raises(IngestError, match=r"cannot be parsed as CSV with sep=',': .*; the header row seems to be "
                                          r"line 4: set sources\.transactions\.read\.skip_rows: 3$"):
        run_ingest(tmp_path, {"transactions": {"path": "one.csv"}})
    assert run_ingest(tmp_path, {"transactions": {"path": "one.csv", "read": {"skip_rows": 3}}})[
        "sources"]["transactions"]["validated_rows"] == 3
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"skip_rows": 3}}})
    assert report["sources"]["transactions"]["validated_rows"] == 3
    quarantine_free = pd.read_parquet(tmp_path / "out" / "validated" / "transactions.parquet")
    assert quarantine_free["order_id"].tolist() == ["o1", "o1", "o2"]
    for sep in (";", r"\s*;\s*"):  # the pandas readers (a regular expression separator) skip them too
        write(tmp_path, "s.csv", (REPORT_PREAMBLE + GOOD_TRANSACTIONS).replace(",", ";"))
        config = make_config(tmp_path, {"transactions": {"path": "s.csv", "read": {"sep": sep, "skip_rows": 3}}})
        assert read_source("transactions", config.sources.transactions).frame["order_id"].tolist() == ["o1", "o1", "o2"]


def test_an_excel_sheet_with_a_title_above_its_header(tmp_path):
    rows = [["Sales report", None, None, None, None, None], [None] * 6, list(INVOICES.columns),
            *INVOICES.astype(object).values.tolist()]
    write_workbook(tmp_path / "report.xlsx", {"Report": pd.DataFrame(rows[1:], columns=rows[0])})
    config = make_config(tmp_path, {"transactions": {"path": "report.xlsx", "read": {"skip_rows": 2}, **INVOICE_MAPPING}})
    frame = read_source("transactions", config.sources.transactions).frame
    assert list(frame.columns) == list(INVOICES.columns) and frame["InvoiceNo"].tolist()[2] == "C536379"


# --- customer ids that do not match between sources -------------------------------------------------


def test_customers_columns_the_model_does_not_read_are_named_in_a_note(tmp_path):
    """An apparel retailer's demographics export holds Gender beside the id: it went to the extra file without a
    word, though a user mapping attributes expects the model to read it."""
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\no1,c1,2024-01-05,10\n")
    write(tmp_path, "c.csv", "Id,Gender,Region\nc1,0,north\nc2,1,south\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"},
                                   "customers": {"path": "c.csv", "rename": {"Id": "customer_id", "Region": "region"}}})
    assert report["sources"]["customers"]["notes"] == [
        "1 column of the customers export is not read by the model (it reads signup_at, region, acquisition_channel and the columns of sources.customers.attributes): "
        "Gender; kept aside in validated/extra/customers.parquet, unused (list those that describe a customer, such "
        "as a segment or a plan, in sources.customers.attributes; or map one onto a contract attribute with "
        "sources.customers.rename only if it means that attribute)"]
    assert report["sources"]["transactions"]["notes"] == []  # other sources' extra columns stay quiet


def test_feedback_ids_written_differently_from_the_transactions_ones_get_a_note(tmp_path, caplog):
    """The shop writes '00123' in its orders and 'C-123' in its survey tool: every feedback feature would stay
    empty. A customers source listing people who never bought is not flagged."""
    orders = "".join(f"o{i},{i:05d},2024-01-{1 + i % 28:02d},10\n" for i in range(40))
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\n" + orders)
    survey = "".join(f"C-{i},2024-01-{1 + i % 28:02d},nps,7\n" for i in range(30))
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\n" + survey)
    people = "".join(f"{i:05d}\n" for i in range(400))  # all registered customers: 40 of them bought
    write(tmp_path, "c.csv", "customer_id\n" + people)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"},
                                       "customers": {"path": "c.csv"}})
    feedback_notes = report["sources"]["feedback"]["notes"]
    assert feedback_notes == [
        "only 0% of feedback's 30 customer ids are transaction customers (e.g. feedback 'C-0', transactions '00000'); "
        "100% would be if only their digits counted (no prefix, punctuation or leading zeros): the two exports write "
        "the same ids differently, and those features stay empty until they match (fix the export; ingest.id_case folds case)"]
    assert "feedback: only 0% of feedback's 30 customer ids" in caplog.text
    assert report["sources"]["customers"]["notes"] == []
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\n" + survey.replace("C-", "X9"))  # other people
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}})
    assert report["sources"]["feedback"]["notes"] == [
        "only 0% of feedback's 30 customer ids are transaction customers (e.g. feedback 'X90', transactions '00000'): "
        "check that both sources use the same customer ids; features from feedback are empty for the others"]


def test_ids_that_differ_from_the_transactions_ones_only_in_case_name_id_case_and_shared_digits_are_no_match(tmp_path):
    """The shop keeps e-mails as typed ('Ann.Lee0@Mail.com'), the help desk in lower case: ingest.id_case: lower makes
    them one. Other people's e-mails that merely hold the same digits are not the same ids."""
    orders = "".join(f"o{i},Ann.Lee{i}@Mail.com,2024-01-{1 + i % 28:02d},10\n" for i in range(40))
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\n" + orders)
    survey = "".join(f"ann.lee{i}@mail.com,2024-01-{1 + i % 28:02d},nps,7\n" for i in range(30))
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\n" + survey)
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}})
    assert report["sources"]["feedback"]["notes"] == [
        "only 0% of feedback's 30 customer ids are transaction customers (e.g. feedback 'ann.lee0@mail.com', "
        "transactions 'Ann.Lee0@Mail.com'); 100% would be if letter case did not count: set ingest.id_case: lower "
        "(every source's ids are then read in lower case), or those features stay empty"]
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}},
                        ingest={"id_case": "lower"})
    assert report["sources"]["feedback"]["notes"] == []
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\n" + survey.replace("ann.lee", "bob.roe"))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}})
    assert report["sources"]["feedback"]["notes"] == [
        "only 0% of feedback's 30 customer ids are transaction customers (e.g. feedback 'bob.roe0@mail.com', "
        "transactions 'Ann.Lee0@Mail.com'): check that both sources use the same customer ids; features from feedback "
        "are empty for the others"]


def test_ids_of_one_source_that_differ_only_in_case_or_leading_zeros_get_a_note_and_stay_apart(tmp_path, caplog):
    """One monthly export came through a spreadsheet (leading zeros dropped); the web shop writes e-mails as typed."""

    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\no1,00123,2024-01-01,5\no2,123,2024-01-09,5\n"
          "o3,Ann@X.com,2024-01-03,5\no4,ann@x.com,2024-01-05,5\no5,77,2024-01-06,5\no6,077A,2024-01-06,5\n")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    note = ("2 customer ids are written more than one way (differing only in case or leading zeros, e.g. '00123' and "
            "'123'), each way counted as another customer; set ingest.id_case: lower if case does not matter; check "
            "the export for dropped leading zeros (a spreadsheet drops them)")
    assert report["sources"]["transactions"]["notes"] == [note] and note in caplog.text
    assert read_validated_source(tmp_path, "transactions")["customer_id"].nunique() == 6  # nothing merged
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}}, ingest={"id_case": "lower"})
    assert report["sources"]["transactions"]["notes"] == [
        "1 customer id is written more than one way (differing only in leading zeros, e.g. '00123' and '123'), each "
        "way counted as another customer; check the export for dropped leading zeros (a spreadsheet drops them)"]
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    assert run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})["sources"]["transactions"]["notes"] == []


def test_names_as_ids_that_differ_only_in_blanks_or_punctuation_get_a_note_and_stay_apart(tmp_path, caplog):
    """A B2B export keyed by the customer's name (Kaggle's sample sales data: CUSTOMERNAME): one clerk typed two
    blanks, another left off the full stop of 'Ltd.'. Before: 4 customers counted, not a word."""

    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\n"
          "o1,La Rochelle Gifts,2024-01-01,5\no2,La  Rochelle Gifts,2024-01-09,5\n"
          "o3,Mini Gifts Distributors Ltd.,2024-01-03,5\no4,Mini Gifts Distributors Ltd,2024-01-05,5\n"
          "o5,Petit Auto,2024-01-06,5\no6,Euro+ Shopping Channel,2024-01-06,5\n")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    note = ("2 customer ids are written more than one way (differing only in case, leading zeros, blanks or "
            "punctuation, e.g. 'La  Rochelle Gifts' and 'La Rochelle Gifts'), each way counted as another customer; "
            "set ingest.id_case: lower if case does not matter; check the export for dropped leading zeros (a "
            "spreadsheet drops them); no setting merges ids that differ in blanks or punctuation: correct them in "
            "the export where they name one customer")
    assert report["sources"]["transactions"]["notes"] == [note] and note in caplog.text
    assert read_validated_source(tmp_path, "transactions")["customer_id"].nunique() == 6  # nothing merged
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\no1,-,2024-01-01,5\no2,?,2024-01-09,5\n"
          "o3,C-1,2024-01-03,5\no4,C-2,2024-01-05,5\n")  # ids without a letter or digit are not alike
    assert run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})["sources"]["transactions"]["notes"] == []


# --- columns the export lacks, splits or words differently -------------------------------------------


def read_validated_source(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / "out" / "validated" / f"{name}.parquet")


def test_an_nps_export_without_a_kind_column_takes_its_kind_from_constants(tmp_path):
    """An NPS tool exports customer, date and score only: every row is an NPS answer."""
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "nps.csv", "email,answered,score\nc1,2024-01-02,9\nc2,2024-01-04,3\n")
    nps = {"path": "nps.csv", "rename": {"email": "customer_id", "answered": "submitted_at"}}
    with pytest.raises(IngestError, match=r"lacks required column\(s\) kind; map the file's columns"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": nps})
    run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {**nps, "constants": {"kind": "nps"}}})
    feedback = read_validated_source(tmp_path, "feedback")
    assert feedback[["customer_id", "kind", "score"]].values.tolist() == [["c1", "nps", 9.0], ["c2", "nps", 3.0]]
    with pytest.raises(IngestError, match=r"has a column 'survey' for kind, which sources\.feedback\.constants fills "
                                          r"too; remove one of the two"):
        write(tmp_path, "nps2.csv", "email,answered,score,survey\nc1,2024-01-02,9,nps\n")
        run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {
            **nps, "path": "nps2.csv", "rename": {**nps["rename"], "survey": "kind"}, "constants": {"kind": "nps"}}})


def test_the_exports_own_words_are_recoded_and_other_cases_folded_with_a_note(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "f.csv", "customer_id,submitted_at,Survey,score\nc1,2024-01-02,Net Promoter,9\n"
          "c1,2024-01-03, CSAT ,4\nc2,2024-01-04,Rating,5\nc2,2024-01-05,stars,5\n")
    feedback = {"path": "f.csv", "rename": {"Survey": "kind"}, "recode": {"kind": {"Net Promoter": "nps", "Rating": "review"}}}
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": feedback}, ingest={"max_bad_share": 0.5})
    assert read_validated_source(tmp_path, "feedback")["kind"].tolist() == ["nps", "csat", "review"]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "feedback.parquet")
    # the word and the recode that maps it (before: "map other words with sources.feedback.recode", no word)
    assert quarantine["reason"].tolist() == ["Survey: not one of nps, csat, review ('stars'; map each onto one of them "
                                             "with sources.feedback.recode: {kind: {stars: <kind>}})"]
    assert "Survey: 1 value read in the contract's lower case (e.g. 'CSAT' as 'csat')" in (
        report["sources"]["feedback"]["notes"])


def test_a_channel_the_recode_does_not_map_is_named_with_the_recode_that_would(tmp_path):
    # Kaggle's Customer Support Ticket Dataset writes 'Social media'; a recode of 'Social' (or 'social media') maps
    # nothing. Before: "not one of phone, email, chat, social, other (map other words with ...recode)", no word
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "x.csv", "Ticket ID,Customer Email,Opened,Ticket Channel\nt1,c1,2024-01-02,Social media\n"
          "t2,c1,2024-01-03,Email\nt3,c2,2024-01-04,Social media\nt4,c2,2024-01-05,Fax\n")
    tickets = {"path": "x.csv", "rename": {"Ticket ID": "ticket_id", "Customer Email": "customer_id",
                                           "Opened": "opened_at", "Ticket Channel": "channel"},
               "recode": {"channel": {"Social": "social", "social media": "social"}}}
    run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "support_tickets": tickets}, ingest={"max_bad_share": 0.8})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "support_tickets.parquet")
    assert quarantine["reason"].tolist() == ["Ticket Channel: not one of phone, email, chat, social, other ('Social "
                                             "media', 'Fax'; map each onto one of them with sources.support_tickets."
                                             "recode: {channel: {Social media: <channel>, Fax: <channel>}}; its recode "
                                             "lists 'social media' in another case: keys are compared as written)"] * 3
    assert read_validated_source(tmp_path, "support_tickets")["channel"].tolist() == ["email"]


def test_a_date_and_a_time_in_two_columns_are_combined_and_ids_unique_per_store_are_joined(tmp_path):
    write(tmp_path, "t.csv", "order_id,Store,CustomerNo,Date,Time,amount\no1,S1,17,31/01/2024,09:30,10\n"
          "o2,S2,17,13/02/2024,17:05,20\no3,S1,18,14/02/2024,,5\n")
    combined = {"path": "t.csv", "combine": {"ordered_at": ["Date", "Time"], "customer_id": ["Store", "CustomerNo"]}}
    run_ingest(tmp_path, {"transactions": combined}, ingest={"max_bad_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated["customer_id"].tolist() == ["S1 17", "S2 17"]
    assert validated["ordered_at"].tolist() == [pd.Timestamp("2024-01-31 09:30", tz="UTC"),
                                                pd.Timestamp("2024-02-13 17:05", tz="UTC")]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["reason"].tolist() == ["Date + Time: missing"]  # a row without its time is not guessed at midnight
    with pytest.raises(IngestError, match=r"sources\.transactions\.combine: column 'Hour' is not in .*t\.csv \(its "
                                          r"columns: order_id, Store, CustomerNo, Date, Time, amount\)"):
        run_ingest(tmp_path, {"transactions": {**combined, "combine": {"ordered_at": ["Date", "Hour"]}}})
    with pytest.raises(IngestError, match=r"has a column 'Date' for ordered_at, which sources\.transactions\.combine "
                                          r"fills too"):
        run_ingest(tmp_path, {"transactions": {**combined, "rename": {"Date": "ordered_at"}}})


def test_unix_times_are_read_as_seconds_or_milliseconds_since_1970_in_utc(tmp_path):
    write(tmp_path, "s.csv", "order_id,customer_id,ordered_at,amount\no1,c1,1706693400,10\no2,c2,1707843900,20\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "s.csv", "timezone": "Europe/Berlin"}})
    expected = [pd.Timestamp("2024-01-31 09:30", tz="UTC"), pd.Timestamp("2024-02-13 17:05", tz="UTC")]
    assert read_validated_source(tmp_path, "transactions")["ordered_at"].tolist() == expected
    assert ("ordered_at read as Unix time (seconds since 1970-01-01 UTC, date format 'unix'), the only common layout "
            "that reads its values (not ISO 8601); set read.date_format to choose another") in (
        report["sources"]["transactions"]["notes"])
    write(tmp_path, "ms.csv", "order_id,customer_id,ordered_at,amount\no1,c1,1706693400000,10\no2,c2,1707843900000,20\n")
    run_ingest(tmp_path, {"transactions": {"path": "ms.csv", "read": {"date_format": "unix_ms"}}})
    assert read_validated_source(tmp_path, "transactions")["ordered_at"].tolist() == expected
    # a spreadsheet's date serials are wall-clock days since 1899-12-30: the source's time zone applies
    write(tmp_path, "x.csv", "order_id,customer_id,ordered_at,amount\no1,c1,45322.5,10\no2,c2,45335.25,20\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "x.csv", "timezone": "Europe/Berlin"}})
    assert read_validated_source(tmp_path, "transactions")["ordered_at"].tolist() == [
        pd.Timestamp("2024-01-31 11:00", tz="UTC"), pd.Timestamp("2024-02-13 05:00", tz="UTC")]
    assert report["sources"]["transactions"]["notes"][0].startswith(
        "ordered_at read as a spreadsheet's date serial (days since 1899-12-30, date format 'excel'), the only")
    # 8-digit dates are dates, not seconds since 1970 (CDNOW writes 19970101)
    write(tmp_path, "d.csv", "order_id,customer_id,ordered_at,amount\no1,c1,20240131,10\no2,c2,20240213,20\n")
    run_ingest(tmp_path, {"transactions": {"path": "d.csv"}})
    assert read_validated_source(tmp_path, "transactions")["ordered_at"].dt.day.tolist() == [31, 13]


def test_mapping_keys_name_contract_columns_or_fail_at_start_up(tmp_path):
    for setting, value, message in [
        ("constants", {"kinds": "nps"}, "feedback.constants: 'kinds' is not a column of the feedback contract"),
        ("combine", {"kind": ["Survey"]}, "kind: name two or more file columns to join"),
        ("recode", {"survey": {"NPS": "nps"}}, "feedback.recode: 'survey' is not a column of the feedback contract"),
        ("other_exports", [{"path": "g.csv", "constants": {"kinds": "nps"}}],
         "feedback.constants: 'kinds' is not a column of the feedback contract"),
        ("other_exports", [{"path": "g.csv", "other_exports": [{"path": "h.csv"}]}],
         "an export listed in other_exports has no other_exports of its own"),
        ("other_exports", [{"path": "g.csv", "returns_when": {"Type": ["refund"]}}], "feedback.returns_when: only"),
    ]:
        with pytest.raises(Exception, match=message):
            make_config(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv", setting: value}})


def test_order_fields_written_on_an_orders_first_line_only_are_taken_by_its_other_lines(tmp_path):
    """A Shopify order export: the e-mail, the time and the status stand on an order's first line only."""
    write(tmp_path, "orders.csv", "Name,Email,Financial Status,Created at,Lineitem quantity,Lineitem price\n"
          "#1001,ann@example.com,paid,2024-01-31 09:30:00 +0100,1,20.00\n#1001,,,,1,25.00\n"
          "#1003,ann@example.com,refunded,2024-02-10 11:00:00 +0100,1,30.00\n#1003,,,,2,5.00\n"
          "#1005,,,2024-02-11 11:00:00,1,9.00\n#1005,,,,1,4.00\n"  # a guest order: nobody to take
          "#1006,bob@example.com,paid,2024-02-12 11:00:00,1,8.00\n#1006,cat@example.com,paid,2024-02-12 11:00:00,1,8.00\n"
          "#1006,,paid,2024-02-12 11:00:00,1,3.00\n")  # two customers on one order: not guessed
    shopify = {"path": "orders.csv", "exclude": {"Financial Status": ["refunded"]},
               "rename": {"Name": "order_id", "Email": "customer_id", "Created at": "ordered_at",
                          "Lineitem quantity": "quantity", "Lineitem price": "unit_price"}}
    report = run_ingest(tmp_path, {"transactions": shopify}, ingest={"max_anonymous_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "customer_id", "amount"]].values.tolist() == [
        ["#1001", "ann@example.com", 20.0], ["#1001", "ann@example.com", 25.0],
        ["#1006", "bob@example.com", 8.0], ["#1006", "cat@example.com", 8.0]]
    assert validated["ordered_at"].iloc[1] == pd.Timestamp("2024-01-31 08:30", tz="UTC")
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["Name", "reason"]].values.tolist() == [
        ["#1003", "excluded by sources.transactions.exclude: Financial Status is 'refunded'"],
        ["#1003", "excluded by sources.transactions.exclude: Financial Status is 'refunded' (on its order's other "
                  "lines; this line leaves it blank)"],  # its 2nd line too
        ["#1005", "anonymous"], ["#1005", "anonymous"], ["#1006", "anonymous"]]
    assert ("3 order lines with blank cells in Email, Created at, Financial Status took their order's values from its "
            "other lines (an export that writes an order's fields on its first line only)") in (
        report["sources"]["transactions"]["notes"])


def test_ids_a_spreadsheet_wrote_in_scientific_notation_are_quarantined_not_merged(tmp_path):
    """Twelve-digit customer numbers saved through a spreadsheet: 123456789012 and 123457000000 both read 1.23457E+11."""
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\no1,1.23457E+11,2024-01-01,5\n"
          "o2,1.23457E+11,2024-01-02,6\no3,123456789013,2024-01-03,7\no4,c9,2024-01-04,8\no5,c9,2024-01-05,8\n"
          "o6,c8,2024-01-05,8\no7,c7,2024-01-05,8\no8,c6,2024-01-05,8\no9,c5,2024-01-05,8\no10,c4,2024-01-05,8\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["reason"].tolist() == ["customer_id: in scientific notation: a spreadsheet rounded these ids, so "
                                             "different ones look alike; re-export with the column formatted as text"] * 2
    entry = report["sources"]["transactions"]
    assert entry["bad_rows"] == 2 and entry["anonymous_rows"] == 0
    assert "123456789013" in read_validated_source(tmp_path, "transactions")["customer_id"].tolist()


def test_ids_a_spreadsheet_showed_as_hashes_are_quarantined_not_merged(tmp_path):
    """Kaggle's Retail_Data_Transactions.csv, saved through a spreadsheet: three customers' ids read '#######' (the
    column too narrow); before, they were one customer of three people's purchases, listed at risk with reasons."""
    write(tmp_path, "t.csv", "customer_id,trans_date,tran_amount\nCS5295,2013-02-11,35\n#######,2011-09-19,55\n"
          "#######,2013-05-01,76\nCS4768,2014-01-31,39\n#,2014-01-01,5\nCS#12,2014-01-02,6\n" + "".join(
              f"CS{i},2014-01-{i:02d},10\n" for i in range(10, 30)))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "one_order_per_row": True,
                                                    "rename": {"trans_date": "ordered_at", "tran_amount": "amount"}}})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["customer_id"].tolist() == ["#######", "#######", "#"]
    assert quarantine["reason"].tolist() == ["customer_id: shown as '#######' (a spreadsheet's sign of a column too "
                                             "narrow for its values, saved as shown), so different ids look alike; "
                                             "re-export with the column wide enough or formatted as text"] * 3
    entry = report["sources"]["transactions"]
    assert entry["bad_rows"] == 3 and entry["anonymous_rows"] == 0
    assert "CS#12" in read_validated_source(tmp_path, "transactions")["customer_id"].tolist()


def test_the_paths_of_other_exports_resolve_against_the_configs_folder(tmp_path):
    cfg = make_config(tmp_path, {"transactions": {"path": "t.csv", "other_exports": [{"path": "old/t.csv"}]}})
    assert [export.path for export in cfg.sources.transactions.exports()] == [tmp_path / "t.csv", tmp_path / "old" / "t.csv"]


def test_exports_of_one_source_in_layouts_of_their_own_are_mapped_each_and_read_as_one(tmp_path):
    """NPS answers from a survey tool and reviews from a review site (each without a kind column); orders from the
    shop's old platform beside its new one. Each export has its own mapping; the rows of a source are one."""
    write(tmp_path, "new.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "old.csv", "Receipt;Client;Date;Total;Channel\nr9;c1;31.12.2023;7,50;store\nr8;c3;30.12.2023;x;store\n")
    write(tmp_path, "nps.csv", "email,answered,score\nc1,2024-01-02,9\n")
    write(tmp_path, "reviews.csv", "reviewer,created,stars,text\nc2,2024-01-04,2,late again\n")
    report = run_ingest(tmp_path, {
        "transactions": {"path": "new.csv", "other_exports": [
            {"path": "old.csv", "read": {"sep": ";", "decimal": ",", "date_format": "%d.%m.%Y"},
             "rename": {"Receipt": "order_id", "Client": "customer_id", "Date": "ordered_at", "Total": "amount"}}]},
        "feedback": {"path": "nps.csv", "rename": {"email": "customer_id", "answered": "submitted_at"},
                     "constants": {"kind": "nps"}, "other_exports": [
                         {"path": "reviews.csv", "constants": {"kind": "review"},
                          "rename": {"reviewer": "customer_id", "created": "submitted_at", "stars": "score",
                                     "text": "comment"}}]},
    }, ingest={"max_bad_share": 0.25})
    transactions = read_validated_source(tmp_path, "transactions")
    assert transactions[["order_id", "customer_id", "amount"]].values.tolist() == [
        ["o1", "c1", 10.5], ["o1", "c1", 2.0], ["o2", "c2", -4.0], ["r9", "c1", 7.5]]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["Receipt", "source_row", "reason"]].values.tolist() == [["r8", 2, "Total: not a number"]]
    assert quarantine["source_file"].str.endswith("old.csv").all()
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra.columns.tolist()[-1] == "Channel" and extra["Channel"].isna().tolist() == [True, True, True, False]
    feedback = read_validated_source(tmp_path, "feedback")
    assert feedback[["customer_id", "kind", "score"]].values.tolist() == [["c1", "nps", 9.0], ["c2", "review", 2.0]]
    assert feedback["comment"].isna().tolist() == [True, False] and feedback["comment"].iloc[1] == "late again"
    assert report["sources"]["transactions"]["input_rows"] == 5 and report["sources"]["feedback"]["validated_rows"] == 2


def test_feedback_scores_on_another_scale_are_mapped_onto_the_contracts_when_told(tmp_path):
    """A CSAT tool asks 1-10 and a review site shows percentages; NPS is 0-10 everywhere."""
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\nc1,2024-01-02,csat,10\nc1,2024-01-03,csat,1\n"
          "c2,2024-01-04,review,75\nc2,2024-01-05,nps,10\nc2,2024-01-06,csat,12\n")
    feedback = {"path": "f.csv", "score_scales": {"csat": [1, 10], "review": [0, 100]}}
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": feedback}, ingest={"max_bad_share": 0.25})
    assert read_validated_source(tmp_path, "feedback")["score"].tolist() == [5.0, 1.0, 4.0, 10.0]
    assert "3 csat scores read on a 1-10 scale (sources.feedback.score_scales) and mapped onto 1-5" in (
        report["sources"]["feedback"]["notes"])
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "feedback.parquet")
    assert quarantine["score"].tolist() == ["12"]  # beyond its own scale: beyond the contract's too
    write(tmp_path, "f.csv", "customer_id,submitted_at,kind,score\nc1,2024-01-02,csat,9\n")
    run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}}, ingest={"max_bad_share": 1.0})
    assert pd.read_parquet(tmp_path / "out" / "quarantine" / "feedback.parquet")["reason"].tolist() == [
        "score: outside 1-5 for csat (another scale? set sources.feedback.score_scales: {csat: [low, high]})"]
    with pytest.raises(Exception, match="transactions.score_scales: only feedback has scores"):
        make_config(tmp_path, {"transactions": {"path": "t.csv", "score_scales": {"csat": [1, 10]}}})
    with pytest.raises(Exception, match="must be below its high end"):
        make_config(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv", "score_scales": {"csat": [5, 1]}}})


def test_a_refunds_export_that_names_the_order_takes_the_customer_from_the_orders_export(tmp_path):
    """Payments and refunds exported apart: a refund names its charge (the order), not the customer."""
    write(tmp_path, "charges.csv", "Charge,Customer,Created,Amount\nch1,c1,2024-01-05,30\nch2,c2,2024-01-06,20\n"
          "ch3,c3,2024-01-07,10\nch3,c4,2024-01-07,10\n")
    write(tmp_path, "refunds.csv", "Refund,Charge,Created,Amount\nre1,ch1,2024-01-09,30\nre2,ch3,2024-01-10,10\n"
          "re3,ch9,2024-01-10,5\n")
    charges = {"path": "charges.csv", "rename": {"Charge": "order_id", "Customer": "customer_id", "Created": "ordered_at",
                                                 "Amount": "amount"}}
    refunds = {"path": "refunds.csv", "rename": {"Charge": "order_id", "Created": "ordered_at", "Amount": "amount"},
               "returns_when": {"Refund": ["re1", "re2", "re3"]}}
    report = run_ingest(tmp_path, {"transactions": {**charges, "other_exports": [refunds]}},
                        ingest={"max_anonymous_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "customer_id", "amount"]].values.tolist()[-1] == ["ch1", "c1", -30.0]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["Refund", "reason"]].values.tolist() == [["re2", "anonymous"], ["re3", "anonymous"]]  # 2 customers; none
    assert ("1 lines without a customer took it from their order's lines in another export (a refunds export that names "
            "the order, not the customer)") in report["sources"]["transactions"]["notes"]


def test_a_date_layout_guessed_for_a_further_export_names_that_export(tmp_path):
    """Online Retail II's sheet of 2009-2010 (ISO times) with Online Retail's 2010-2011 CSV (12/1/2010 8:26) under
    other_exports: both name the column InvoiceDate, and the note said only 'InvoiceDate read with the date format
    ...; set read.date_format', the first export's key."""
    write(tmp_path, "old.csv", "Invoice,Customer ID,InvoiceDate,amount\n1,c1,2010-11-29 07:45:00,5\n"
          "2,c2,2010-11-30 09:00:00,5\n")
    write(tmp_path, "new.csv", "InvoiceNo,CustomerID,InvoiceDate,amount\n3,c1,12/1/2010 8:26,5\n4,c2,12/13/2010 9:00,5\n")
    report = run_ingest(tmp_path, {"transactions": {
        "path": "old.csv", "rename": {"Invoice": "order_id", "Customer ID": "customer_id", "InvoiceDate": "ordered_at"},
        "other_exports": [{"path": "new.csv", "rename": {
            "InvoiceNo": "order_id", "CustomerID": "customer_id", "InvoiceDate": "ordered_at"}}]}})
    assert report["sources"]["transactions"]["validated_rows"] == 4
    assert ("InvoiceDate of sources.transactions.other_exports[0] read with the date format '%m/%d/%Y %H:%M', the only "
            "common layout that reads its values (not ISO 8601); set sources.transactions.other_exports[0].read."
            "date_format to choose another") in report["sources"]["transactions"]["notes"]


def test_a_customers_export_with_several_rows_per_customer_keeps_the_first_valid_one(tmp_path):
    """An address history exported as customers: one row per address. Static attributes are one row per customer."""
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "c.csv", "customer_id,region,signup_at\nc1,north,2023-01-01\nc1,south,2023-01-01\n"
          "c2,west,not a date\nc2,east,2023-02-01\nc2,east,2023-02-01\nc3,north,2023-03-01\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "customers": {"path": "c.csv"}},
                        ingest={"max_bad_share": 0.5})
    customers = read_validated_source(tmp_path, "customers")
    assert customers[["customer_id", "region"]].values.tolist() == [["c1", "north"], ["c2", "east"], ["c3", "north"]]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "customers.parquet")
    later = ("customer_id: another row holds this customer's attributes (one row per customer: the first of the most "
             "recent file is kept)")
    assert quarantine[["region", "reason"]].values.tolist() == [
        ["south", later], ["west", "signup_at: not a timestamp"], ["east", later]]
    entry = report["sources"]["customers"]
    assert entry["bad_rows"] == 1 and entry["duplicate_rows"] == 0
    assert ("2 rows name a customer whose attributes another row gives: of each customer the first row of the most "
            "recent file is kept, the others are quarantined (not counted as bad)") in entry["notes"]
    # c1's two rows name two regions (c2's unreadable row does not count): the kept one is one of them, said
    assert ("1 customer is on several rows of one file that give different attribute values (region: 1; e.g. 'c1': "
            "north, south): the first row is kept") in " ".join(entry["notes"])


def test_a_customers_table_exported_again_after_an_attribute_changed_is_read_as_last_exported(tmp_path):
    """A CRM dump every month, read by a glob: c1 moved from north to south between the two."""
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    (tmp_path / "crm").mkdir()
    write(tmp_path / "crm", "2024-01.csv", "customer_id,region\nc1,north\nc2,west\n")
    write(tmp_path / "crm", "2024-02.csv", "customer_id,region\nc1,south\nc2,west\nc3,east\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "customers": {"path": "crm/*.csv"}})
    customers = read_validated_source(tmp_path, "customers")
    assert customers[["customer_id", "region"]].values.tolist() == [["c1", "south"], ["c2", "west"], ["c3", "east"]]
    assert not any("different attribute values" in note for note in report["sources"]["customers"]["notes"])


def test_a_line_level_flag_is_not_spread_to_the_other_lines_of_its_order(tmp_path):
    """Only lines that lack the order's own fields take its flags: a `Returned` left blank beside a `yes` is a 'no'."""
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount,Returned,Cancelled\n"
          "o1,c1,2024-01-05,10,,\no1,c1,2024-01-05,20,,\no1,c1,2024-01-05,5,yes,\n"
          "o2,c2,2024-01-06,7,,yes\no2,c2,2024-01-06,3,,\n")
    run_ingest(tmp_path, {"transactions": {"path": "t.csv", "returns_when": {"Returned": ["yes"]},
                                           "exclude": {"Cancelled": ["yes"]}}})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "amount"]].values.tolist() == [["o1", 10.0], ["o1", 20.0], ["o1", -5.0], ["o2", 3.0]]


def test_a_parquet_export_beside_a_csv_one_reads_as_one_source_and_finds_their_overlap(tmp_path):
    pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["c1", "c2"], "ordered_at": ["2024-01-01 10:00:00"] * 2,
                  "amount": [10.5, -4.0]}).to_parquet(tmp_path / "t.parquet")
    write(tmp_path, "t2.csv", "order_id,customer_id,ordered_at,amount\no2,c2,2024-01-01 10:00:00,-4\n"
          "o4,c1,2024-01-06 10:00:00,x\n")
    for sources in ({"transactions": {"path": "t.parquet", "other_exports": [{"path": "t2.csv"}]}},
                    {"transactions": {"path": "t*"}}):
        entry = run_ingest(tmp_path, sources, ingest={"max_bad_share": 0.5})["sources"]["transactions"]
        assert (entry["repeated_rows"], entry["bad_rows"], entry["validated_rows"]) == (1, 1, 2)  # -4.0 repeats '-4'
        quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
        assert quarantine["amount"].tolist() == ["-4", "x"]


def test_numeric_times_out_of_range_and_typed_times_beside_a_numeric_layout(tmp_path):
    """A placeholder like -99999 among date serials is not a timestamp (not an overflow); a typed delivery time
    stays typed when read.date_format names a numeric layout for the text ones."""
    serials = "".join(f"o{i},c{i},{45322 + i}.5,10\n" for i in range(10))
    write(tmp_path, "x.csv", "order_id,customer_id,ordered_at,amount\n" + serials + "o99,c99,-99999,10\n")
    for read in ({}, {"date_format": "excel"}):
        run_ingest(tmp_path, {"transactions": {"path": "x.csv", "read": read}}, ingest={"max_bad_share": 0.5})
        quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
        assert quarantine["reason"].tolist() == ["ordered_at: not a timestamp"]
    pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["c1", "c2"], "ordered_at": [1706693400, 1707843900],
                  "amount": [1.0, 2.0], "delivered_at": pd.to_datetime(["2024-02-01", "2024-02-20"])}
                 ).to_parquet(tmp_path / "t.parquet")
    run_ingest(tmp_path, {"transactions": {"path": "t.parquet", "read": {"date_format": "unix"}}})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated["delivered_at"].tolist() == [pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-02-20", tz="UTC")]


def test_duplicates_are_never_negative_when_a_customers_later_row_repeats_in_another_file(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "c1.csv", "customer_id,region\nc1,north\nc1,south\nc2,east\n")
    write(tmp_path, "c2.csv", "customer_id,region\nc1,south\n")
    entry = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}, "customers": {"path": "c*.csv"}})["sources"]["customers"]
    assert (entry["validated_rows"], entry["repeated_rows"], entry["duplicate_rows"]) == (2, 1, 0)


def test_combine_and_recode_read_typed_and_spreadsheet_cells_as_the_export_shows_them(tmp_path):
    """A workbook's date cells and time cells joined; a Parquet column of whole numbers (with a gap) recoded."""
    import datetime as dt

    frame = pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["c1", "c2"], "amount": [1.0, 2.0],
                          "Date": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], "Time": [dt.time(10), dt.time(11, 30)]})
    write_workbook(tmp_path / "t.xlsx", {"orders": frame})
    run_ingest(tmp_path, {"transactions": {"path": "t.xlsx", "combine": {"ordered_at": ["Date", "Time"]}}})
    assert read_validated_source(tmp_path, "transactions")["ordered_at"].tolist() == [
        pd.Timestamp("2024-01-01 10:00", tz="UTC"), pd.Timestamp("2024-01-02 11:30", tz="UTC")]
    write(tmp_path, "o.csv", GOOD_TRANSACTIONS)
    pd.DataFrame({"customer_id": ["c1", "c2", "c2"], "submitted_at": ["2024-01-02"] * 3, "Survey": [1.0, 2.0, None],
                  "score": [9.0, 4.0, 3.0]}).to_parquet(tmp_path / "f.parquet")
    run_ingest(tmp_path, {"transactions": {"path": "o.csv"}, "feedback": {
        "path": "f.parquet", "rename": {"Survey": "kind"}, "recode": {"kind": {1: "nps", 2: "csat"}}}},
        ingest={"max_bad_share": 0.5})
    assert read_validated_source(tmp_path, "feedback")["kind"].tolist() == ["nps", "csat"]


def test_more_mapping_settings_that_fail_at_start_up(tmp_path):
    for feedback, message in [
        ({"path": "f.csv", "constants": {"kind": "nps"}, "combine": {"kind": ["A", "B"]}},
         "feedback: 'kind' is in both constants and combine; remove one of the two"),
        ({"path": "f.csv", "score_scales": {"stars": [1, 10]}}, "'stars' is not a feedback kind"),
    ]:
        with pytest.raises(Exception, match=message):
            make_config(tmp_path, {"transactions": {"path": "t.csv"}, "feedback": feedback})


def test_amounts_in_several_currencies_are_converted_by_their_rows_rate_or_named_in_a_warning(tmp_path, caplog):
    """A shop selling in EUR and USD writes a Currency column; summing both as one would misstate every spend."""
    write(tmp_path, "t.csv", "Order,Customer,Date,Quantity,Price,Discount,Currency\n"
          "o1,c1,2024-01-05,2,10.00,1.00,EUR\no2,c2,2024-01-06,1,20.00,0,usd\no3,c3,2024-01-07,1,5.00,0, USD \n"
          "o4,c4,2024-01-08,1,7.00,0,JPY\no5,c5,2024-01-09,1,9.00,0,\n")
    shop = {"path": "t.csv", "rename": {"Order": "order_id", "Customer": "customer_id", "Date": "ordered_at",
                                        "Quantity": "quantity", "Price": "unit_price", "Discount": "discount"}}
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = run_ingest(tmp_path, {"transactions": shop})
    warning = ("amounts in 3 currencies (Currency: USD 2, EUR 1, JPY 1 rows) are summed as written; convert them with "
               "sources.transactions.currency_rates: {column: Currency, rates: {...}}, or keep one currency with "
               "sources.transactions.exclude")
    assert warning in report["sources"]["transactions"]["notes"] and warning in caplog.text
    assert read_validated_source(tmp_path, "transactions")["amount"].tolist() == [19.0, 20.0, 5.0, 7.0, 9.0]
    one_currency = {**shop, "exclude": {"Currency": ["USD", "usd", "JPY", ""]}}  # the others left out: no warning
    notes = run_ingest(tmp_path, {"transactions": one_currency}, ingest={"max_bad_share": 0.5})["sources"]["transactions"]["notes"]
    assert not any(note.startswith("amounts in") for note in notes)
    by_store = {**shop, "exclude": {"Customer": ["c1", "c4", "c5"]}}  # only USD rows left: not warned
    notes = run_ingest(tmp_path, {"transactions": by_store}, ingest={"max_bad_share": 0.5})["sources"]["transactions"]["notes"]
    assert not any(note.startswith("amounts in") for note in notes)
    converted_and_not = {**shop, "currency_rates": {"column": "Currency", "rates": {"EUR": 1, "USD": 0.5, "JPY": 0.01}},
                         "other_exports": [{**shop, "path": "t.csv"}]}  # the other export is not converted: warned
    notes = run_ingest(tmp_path, {"transactions": converted_and_not}, ingest={"max_bad_share": 0.9})[
        "sources"]["transactions"]["notes"]
    assert any(note.startswith("amounts in 3 currencies") for note in notes)
    two_left = {**shop, "exclude": {"Currency": ["JPY"]}}  # EUR and USD are still summed: warned
    notes = run_ingest(tmp_path, {"transactions": two_left}, ingest={"max_bad_share": 0.5})["sources"]["transactions"]["notes"]
    assert any(note.startswith("amounts in 2 currencies (Currency: USD 2, EUR 1 rows)") for note in notes)
    write(tmp_path, "s.csv", "id,Customer,Created,Converted Amount,Currency,Converted Currency\n"
          "ch1,c1,2024-01-05,10.00,usd,eur\nch2,c2,2024-01-06,8.00,gbp,eur\n")  # a payment export, converted
    stripe = {"path": "s.csv", "rename": {"id": "order_id", "Customer": "customer_id", "Created": "ordered_at",
                                          "Converted Amount": "amount"}}
    notes = run_ingest(tmp_path, {"transactions": stripe})["sources"]["transactions"]["notes"]
    assert not any(note.startswith("amounts in") for note in notes)
    # an old shop system's export in EUR beside a new one's in USD, each with one currency: summed as one, warned
    write(tmp_path, "old.csv", "order_id,customer_id,ordered_at,amount,currency_code\no1,c1,2024-01-05,10,EUR\n")
    write(tmp_path, "new.csv", "order_id,customer_id,ordered_at,amount,Currency\no2,c1,2024-02-05,10,USD\n"
          "o3,c2,2024-02-06,4,USD\n")
    notes = run_ingest(tmp_path, {"transactions": {"path": "old.csv", "other_exports": [{"path": "new.csv"}]}})[
        "sources"]["transactions"]["notes"]
    assert ("amounts in 2 currencies (currency_code / Currency: USD 2, EUR 1 rows) are summed as written; convert them "
            "with sources.transactions.currency_rates: {column: currency_code, rates: {...}}, or keep one currency "
            "with sources.transactions.exclude") in notes

    converted = {**shop, "currency_rates": {"column": "Currency", "rates": {"EUR": 1, "USD": 0.5}}}
    report = run_ingest(tmp_path, {"transactions": converted}, ingest={"max_bad_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "amount", "unit_price", "discount"]].values.tolist() == [
        ["o1", 19.0, 10.0, 1.0], ["o2", 10.0, 10.0, 0.0], ["o3", 2.5, 2.5, 0.0]]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["reason"].tolist() == [
        "Currency: a currency without a rate in sources.transactions.currency_rates",
        "Currency: missing (sources.transactions.currency_rates needs each row's currency)"]
    assert quarantine["Currency"].iloc[0] == "JPY" and pd.isna(quarantine["Currency"].iloc[1])
    entry = report["sources"]["transactions"]
    assert "2 rows converted by sources.transactions.currency_rates (Currency: USD × 0.5)" in entry["notes"]
    assert not any(note.startswith("amounts in") for note in entry["notes"])

    # an amount column is converted too; a currency column the files lack is a one-line error naming the key
    write(tmp_path, "a.csv", "order_id,customer_id,ordered_at,amount,Currency\no1,c1,2024-01-05,10,GBP\n"
          "o2,c2,2024-01-06,4,EUR\n")
    run_ingest(tmp_path, {"transactions": {"path": "a.csv", "currency_rates": {"column": "Currency",
                                                                               "rates": {"gbp": 1.2, "EUR": 1}}}})
    assert read_validated_source(tmp_path, "transactions")["amount"].tolist() == [12.0, 4.0]
    with pytest.raises(IngestError, match=r"sources.transactions.currency_rates.column: column 'Cur' is not in the"):
        run_ingest(tmp_path, {"transactions": {"path": "a.csv", "currency_rates": {"column": "Cur", "rates": {"EUR": 1}}}})


def test_currency_rates_are_checked_at_start_up(tmp_path):
    for source, setting, message in [
        ("transactions", {"column": "Currency", "rates": {"USD": 0}}, "the rate of 'USD' is 0.0: a rate is a positive"),
        ("transactions", {"column": "Currency", "rates": {"usd": 1, "USD": 2}}, "a currency is listed twice"),
        ("transactions", {"column": "Currency", "rates": {}}, "rates"),
        ("feedback", {"column": "Currency", "rates": {"USD": 1}}, "feedback.currency_rates: only transactions"),
    ]:
        sources = {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"}}
        sources[source] = {**sources[source], "currency_rates": setting}
        with pytest.raises(Exception, match=message):
            make_config(tmp_path, sources)


def test_an_orders_currency_written_on_its_first_line_only_converts_its_other_lines(tmp_path):
    write(tmp_path, "orders.csv", "Name,Email,Created at,Currency,Lineitem quantity,Lineitem price\n"
          "#1001,ann@example.com,2024-01-31 09:30:00,USD,1,20.00\n#1001,,,,1,10.00\n"
          "#1002,bob@example.com,2024-02-01 09:30:00,EUR,1,8.00\n#1002,,,,2,1.00\n")
    shopify = {"path": "orders.csv", "currency_rates": {"column": "Currency", "rates": {"EUR": 1, "USD": 0.5}},
               "rename": {"Name": "order_id", "Email": "customer_id", "Created at": "ordered_at",
                          "Lineitem quantity": "quantity", "Lineitem price": "unit_price"}}
    report = run_ingest(tmp_path, {"transactions": shopify})
    assert read_validated_source(tmp_path, "transactions")["amount"].tolist() == [10.0, 5.0, 8.0, 2.0]
    assert "2 rows converted by sources.transactions.currency_rates (Currency: USD × 0.5)" in (
        report["sources"]["transactions"]["notes"])


SHOPIFY_REFUNDS = {"path": "orders.csv", "exclude": {"Financial Status": ["refunded"]},
                   "refunds": {"column": "Refunded Amount"},
                   "rename": {"Name": "order_id", "Email": "customer_id", "Created at": "ordered_at",
                              "Lineitem quantity": "quantity", "Lineitem price": "unit_price"}}


def test_money_refunded_on_an_order_beside_the_sale_becomes_a_refund_row_of_that_order(tmp_path):
    """A Shopify order export writes a partial refund as `Refunded Amount` on the order's first line, not as a row:
    without the setting the order's money counted in full. Each refund becomes one row of its order (negative
    amount, no items), once per order however many of its lines repeat it."""
    write(tmp_path, "orders.csv", "Name,Email,Financial Status,Created at,Lineitem quantity,Lineitem price,Refunded Amount\n"
          "#1001,ann@example.com,paid,2024-01-31 09:30:00,1,20.00,\n"
          "#1002,ann@example.com,partially_refunded,2024-02-01 10:00:00,2,15.00,12.50\n#1002,,,,1,5.00,\n"
          "#1003,bob@example.com,refunded,2024-02-02 10:00:00,1,30.00,30.00\n#1003,,,,1,5.00,\n"  # excluded: no refund
          "#1004,bob@example.com,partially_refunded,2024-02-03 10:00:00,1,8.00,-2\n"  # written negative: its size
          "#1004,bob@example.com,partially_refunded,2024-02-03 10:00:00,1,8.00,-2\n"  # repeated on each line: once
          "#1005,cat@example.com,partially_refunded,2024-02-04 10:00:00,1,9.00,3\n"
          "#1005,cat@example.com,partially_refunded,2024-02-04 10:00:00,1,9.00,4\n"  # two refunds: not guessed
          "#1006,cat@example.com,partially_refunded,2024-02-05 10:00:00,1,9.00,n/a?\n"
          "#1007,dan@example.com,paid,2024-02-06 10:00:00,1,7.00,0.00\n"
          "#1008,dan@example.com,partially_refunded,2024-02-07 10:00:00,1,7.00,5e15\n")
    report = run_ingest(tmp_path, {"transactions": SHOPIFY_REFUNDS}, ingest={"max_bad_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    rows = validated[["order_id", "customer_id", "amount", "quantity"]].astype(object).where(validated.notna(), None)
    assert rows.values.tolist() == [
        ["#1001", "ann@example.com", 20.0, 1.0], ["#1002", "ann@example.com", 30.0, 2.0],
        ["#1002", "ann@example.com", 5.0, 1.0], ["#1004", "bob@example.com", 8.0, 1.0],
        ["#1004", "bob@example.com", 8.0, 1.0], ["#1007", "dan@example.com", 7.0, 1.0],
        ["#1002", "ann@example.com", -12.5, None], ["#1004", "bob@example.com", -2.0, None]]
    assert validated["ordered_at"].iloc[6] == validated["ordered_at"].iloc[1]  # timed at its order
    assert validated[["product_id", "unit_price", "discount"]].iloc[6:].isna().all().all()
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["Name", "reason"]].values.tolist() == [
        ["#1003", "excluded by sources.transactions.exclude: Financial Status is 'refunded'"],
        ["#1003", "excluded by sources.transactions.exclude: Financial Status is 'refunded' (on its order's other "
                  "lines; this line leaves it blank)"],
        *[["#1005", "Refunded Amount: the order's rows give different refunds (3, 4); if each row gives its own, set "
                    "sources.transactions.refunds.per: row"]] * 2,
        ["#1006", "Refunded Amount: not a number"],
        ["#1008", "Refunded Amount: beyond ±1e+09 (ingest.max_abs_amount)"]]
    entry = report["sources"]["transactions"]
    assert entry["refund_rows"] == 2 and entry["bad_rows"] == 4 and entry["excluded_rows"] == 2
    assert entry["input_rows"] + entry["refund_rows"] == entry["validated_rows"] + entry["quarantined_rows"] == 14
    assert ("2 refund rows added from Refunded Amount (worth 14.50 in all): each timed at its order, as the export "
            "gives no time for it, so a snapshot taken between an order and its refund sees the refund early") in entry["notes"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra["validated_row"].tolist() == list(range(6))  # the input rows; a refund row has no file row


def test_orders_giving_different_refunds_count_as_one_top_reason(tmp_path):
    """Each such order's reason names its refunds: counted verbatim, every order was a reason of its own rows."""
    write(tmp_path, "orders.csv", "Name,Email,Financial Status,Created at,Lineitem quantity,Lineitem price,Refunded Amount\n"
          + "".join(f"#{n},c{n}@example.com,paid,2024-01-0{n} 10:00:00,1,9.00,{n}\n"
                    f"#{n},c{n}@example.com,paid,2024-01-0{n} 10:00:00,1,9.00,{n + 1}\n" for n in (1, 2, 3))
          + "".join(f"#{n},c{n}@example.com,paid,2024-01-0{n % 9 + 1} 10:00:00,1,9.00,\n" for n in range(10, 20)))
    entry = run_ingest(tmp_path, {"transactions": SHOPIFY_REFUNDS}, ingest={"max_bad_share": 0.5})
    assert entry["sources"]["transactions"]["top_reasons"] == [{
        "reason": "Refunded Amount: the order's rows give different refunds; if each row gives its own, set "
                  "sources.transactions.refunds.per: row", "rows": 6,
        "example": "Refunded Amount: the order's rows give different refunds (1, 2); if each row gives its own, set "
                   "sources.transactions.refunds.per: row"}]


def test_refunds_per_row_and_beside_rows_already_marked_as_returns(tmp_path):
    """`per: row` takes each row's own refund. A row that `returns_when` makes a return already carries that money
    (with `per: order`, so does every row of its order): no refund row is added for it, and a note says so."""
    write(tmp_path, "t.csv", "order,customer,at,amount,Refunded,Type\n"
          "o1,c1,2024-01-05,10,2,sale\no1,c1,2024-01-05,20,3,sale\n"
          "o2,c2,2024-01-06,15,15,refund\no2,c2,2024-01-06,5,1,sale\n")
    source = {"path": "t.csv", "rename": {"order": "order_id", "customer": "customer_id", "at": "ordered_at"},
              "returns_when": {"Type": ["refund"]}, "refunds": {"column": "Refunded", "per": "row"}}
    report = run_ingest(tmp_path, {"transactions": source})
    assert read_validated_source(tmp_path, "transactions")["amount"].tolist() == [10, 20, -15, 5, -2, -3, -1]
    assert ("1 refund of Refunded not added: a return or refund already stands for that money (a negative amount on "
            "the row, or with per: order on a row of the order, in any export)") in report["sources"]["transactions"]["notes"]
    report = run_ingest(tmp_path, {"transactions": {**source, "refunds": {"column": "Refunded"}}},
                        ingest={"max_bad_share": 0.9})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated["amount"].tolist() == [-15, 5]  # o1's lines give two refunds: quarantined; o2 is a return
    assert ("1 refund of Refunded not added: a return or refund already stands for that money (a negative amount on "
            "the row, or with per: order on a row of the order, in any export)") in report["sources"]["transactions"]["notes"]


def test_refunds_when_refunds_only_the_flagged_lines_of_a_returns_list(tmp_path):
    """Tableau's Superstore: the orders export holds each line's Sales, a Returns sheet names the orders returned.
    With the list taken by lookup (missing: keep), `refunds: {column: Sales, per: row, when: {Returned: [Yes]}}` keeps
    each sale and adds its refund; before, only a script could (returns_when would turn the sale itself into a return,
    losing the purchase, and refunds on Sales alone would refund every line)."""
    write(tmp_path, "orders.csv", "Order ID,Customer ID,Order Date,Sales\nA-1,c1,2017-01-05,10\nA-2,c1,2017-02-05,20\n"
                                  "A-3,c2,2017-03-05,30\nA-3,c2,2017-03-05,5\n")
    write(tmp_path, "returns.csv", "Returned,Order ID\nYes,A-3\nyes,A-2\n")
    source = {"path": "orders.csv", "rename": {"Order ID": "order_id", "Customer ID": "customer_id",
                                               "Order Date": "ordered_at", "Sales": "amount"},
              "lookup": [{"path": "returns.csv", "by": "Order ID", "missing": "keep"}],
              "refunds": {"column": "Sales", "per": "row", "when": {"Returned": ["Yes"]}}}
    report = run_ingest(tmp_path, {"transactions": source})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "amount"]].values.tolist() == [
        ["A-1", 10], ["A-2", 20], ["A-3", 30], ["A-3", 5], ["A-3", -30], ["A-3", -5]]
    notes = report["sources"]["transactions"]["notes"]
    assert any(note.startswith("2 refund rows added from Sales (worth 35.00 in all)") for note in notes)
    assert any("'Yes'" in note and "yes" in note and "refunds.when" in note for note in notes)  # A-2 written 'yes'
    with pytest.raises(IngestError, match=r"sources.transactions.refunds.when: column 'Status' is not in the files"):
        run_ingest(tmp_path, {"transactions": {**source, "refunds": {"column": "Sales", "when": {"Status": ["x"]}}}})


def test_a_refund_is_counted_once_and_never_above_its_orders_goods(tmp_path):
    """Payments with an `Amount Refunded` column beside a refunds export (under other_exports) that names the charge:
    the refund is the refunds export's row, not a second one. Shopify's refund includes shipping and taxes, which
    line prices leave out: a refund is cut to its order's goods, so net spend never reads below what was bought."""
    write(tmp_path, "payments.csv", "id,customer,created,amount,Amount Refunded\n"
          "ch_1,cus_A,2024-01-05 10:00,50,20\nch_2,cus_B,2024-01-06 10:00,30,35\n")
    write(tmp_path, "refunds.csv", "charge,created,amount,type\nch_1,2024-01-10 09:00,20,refund\n")
    mapping = {"id": "order_id", "customer": "customer_id", "created": "ordered_at"}
    report = run_ingest(tmp_path, {"transactions": {
        "path": "payments.csv", "rename": mapping, "refunds": {"column": "Amount Refunded"},
        "other_exports": [{"path": "refunds.csv", "rename": {"charge": "order_id", "created": "ordered_at"},
                           "returns_when": {"type": ["refund"]}}]}})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "customer_id", "amount"]].values.tolist() == [
        ["ch_1", "cus_A", 50.0], ["ch_2", "cus_B", 30.0], ["ch_1", "cus_A", -20.0], ["ch_2", "cus_B", -30.0]]
    notes = report["sources"]["transactions"]["notes"]
    assert ("1 refund of Amount Refunded not added: a return or refund already stands for that money (a negative "
            "amount on the row, or with per: order on a row of the order, in any export)") in notes
    assert ("1 refund of Amount Refunded larger than the goods of their order were cut to them (5.00 in all): line "
            "prices leave out the shipping and taxes a refund may include") in notes


def test_a_refunds_column_that_gives_nothing_or_holds_true_false_says_so(tmp_path):
    write(tmp_path, "t.csv", with_column(GOOD_TRANSACTIONS, "Refunded", ""))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "refunds": {"column": "Refunded"}}})
    entry = report["sources"]["transactions"]
    assert entry["refund_rows"] == 0 and entry["validated_rows"] == 3
    assert "no row gives a refund in Refunded (sources.transactions.refunds): every cell is blank or 0" in entry["notes"]
    write(tmp_path, "t.csv", with_column(GOOD_TRANSACTIONS, "Refunded", "false"))
    with pytest.raises(IngestError, match=r"Refunded: not a number \(a true/false column\? sources\.transactions\.refunds "
                                          r"takes the money refunded; mark refunded rows with returns_when"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "refunds": {"column": "Refunded"}}})


def test_rows_that_are_orders_in_two_exports_stay_two_orders(tmp_path):
    """`one_order_per_row` numbers each export's rows: the first rows of two exports are two orders, not one."""
    write(tmp_path, "a.csv", "customer,at,amount\nc1,2024-01-01,10\n")
    write(tmp_path, "b.csv", "customer,at,amount\nc1,2024-01-02,40\n")
    export = {"rename": {"customer": "customer_id", "at": "ordered_at"}, "one_order_per_row": True}
    run_ingest(tmp_path, {"transactions": {"path": "a.csv", **export, "other_exports": [{"path": "b.csv", **export}]}})
    assert read_validated_source(tmp_path, "transactions")["order_id"].tolist() == ["R1", "R1/1"]


def test_placeholder_refund_times_are_read_as_missing_with_a_note(tmp_path):
    """A refunds.at column writing 9999-12-31 or 1900-01-01 for 'not refunded yet': those refunds are timed at their
    order, as an optional time column reads them. They counted toward the data's end: with many, it was put in the
    year 9999 and ingest stopped with a traceback (NotImplementedError from strftime)."""
    write(tmp_path, "orders.csv", "order,customer,created,total,Total Refunded,Refunded at\n"
          + "".join(f"o{i},c{i},2024-01-{1 + i % 28:02d} 10:00,50,20,9999-12-31\n" for i in range(30))
          + "o90,c90,2024-01-05 10:00,30,5,1900-01-01 00:00\no91,c91,2024-01-06 10:00,40,10,2024-02-01 09:00\n"
          + "".join(f"p{day},c6,2024-{month:02d}-{day:02d} 10:00,12,,\n" for month in (1, 2, 3) for day in (10, 20)))
    report = run_ingest(tmp_path, {"transactions": {
        "path": "orders.csv", "rename": {"order": "order_id", "customer": "customer_id", "created": "ordered_at",
                                         "total": "amount"},
        "refunds": {"column": "Total Refunded", "at": "Refunded at"}}})
    assert report["reference_time"] == "2024-03-20T10:00:00+00:00"
    validated = read_validated_source(tmp_path, "transactions")
    refunds = validated[validated["amount"] < 0].set_index("order_id")["ordered_at"].dt.strftime("%Y-%m-%d %H:%M")
    assert refunds[["o0", "o90", "o91"]].tolist() == ["2024-01-01 10:00", "2024-01-05 10:00", "2024-02-01 09:00"]
    assert ("Refunded at (refunds.at): 31 dates read as missing (placeholders that exports write for 'none': those "
            "refunds are timed at their order, as without refunds.at): '9999-12-31' (30), '1900-01-01 00:00' (1)"
            ) in report["sources"]["transactions"]["notes"]


def test_a_refund_with_its_own_time_is_timed_then_not_at_its_order(tmp_path):
    """An order export with `Refunded at` beside `Total Refunded`: the refund row is dated when the money went back,
    so no snapshot before it sees it; blank: the order's time. A refund time before its order, unreadable, or past
    the data's end is not used: that refund is timed at its order, as without `at`, and its sale is kept."""
    write(tmp_path, "orders.csv", "order,customer,created,total,Total Refunded,Refunded at\n"
          "o1,c1,2024-01-05 10:00,50,20,2024-02-10 09:00\no2,c2,2024-01-06 10:00,30,5,\n"
          "o3,c3,2024-01-07 10:00,40,10,2024-01-01 09:00\no4,c4,2024-01-08 10:00,40,10,soon\n"
          "o5,c5,2024-01-09 10:00,40,10,2031-01-01 09:00\n"
          + "".join(f"p{day},c6,2024-{month:02d}-{day:02d} 10:00,12,,\n" for month in (1, 2, 3) for day in (10, 20))
          + "o7,c7,2024-03-19 10:00,8,8,2024-03-24 09:00\n")  # refunded 4 days after the last order: the data's end
    report = run_ingest(tmp_path, {"transactions": {
        "path": "orders.csv", "rename": {"order": "order_id", "customer": "customer_id", "created": "ordered_at",
                                         "total": "amount"},
        "refunds": {"column": "Total Refunded", "at": "Refunded at"}}})
    validated = read_validated_source(tmp_path, "transactions")
    refunds = validated[validated["amount"] < 0]
    assert refunds[["order_id", "amount"]].values.tolist() == [
        ["o1", -20.0], ["o2", -5.0], ["o3", -10.0], ["o4", -10.0], ["o5", -10.0], ["o7", -8.0]]
    assert refunds["ordered_at"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-02-10 09:00", "2024-01-06 10:00", "2024-01-07 10:00", "2024-01-08 10:00", "2024-01-09 10:00",
        "2024-03-24 09:00"]
    assert {"o3", "o4", "o5"} <= set(validated.loc[validated["amount"] > 0, "order_id"])  # the sales are kept
    entry = report["sources"]["transactions"]
    assert entry["quarantined_rows"] == 0 and entry["input_rows"] + entry["refund_rows"] == entry["validated_rows"]
    assert ("3 refund times not used (1 Refunded at: before its order's time; 1 Refunded at: not a timestamp; 1 "
            "Refunded at: later than the data's end + tolerance (2024-03-25 09:00:00+00:00)): those refunds are timed "
            "at their order, as without refunds.at, and their sales are kept") in entry["notes"]
    assert ("6 refund rows added from Total Refunded (worth 63.00 in all): 2 timed by refunds.at, the others at "
            "their order") in entry["notes"]
    # An order whose first line gives the time and whose second an unreadable one keeps the readable time.
    write(tmp_path, "two.csv", "order,customer,created,total,Total Refunded,Refunded at\n"
          "o1,c1,2024-01-05 10:00,50,20,2024-02-10 09:00\no1,c1,2024-01-05 10:00,30,20,soon\n"
          + "".join(f"p{day},c6,2024-{month:02d}-{day:02d} 10:00,12,,\n" for month in (1, 2, 3) for day in (10, 20)))
    report = run_ingest(tmp_path, {"transactions": {
        "path": "two.csv", "rename": {"order": "order_id", "customer": "customer_id", "created": "ordered_at",
                                      "total": "amount"},
        "refunds": {"column": "Total Refunded", "at": "Refunded at"}}})
    refund = read_validated_source(tmp_path, "transactions").query("amount < 0")
    assert refund["ordered_at"].dt.strftime("%Y-%m-%d %H:%M").tolist() == ["2024-02-10 09:00"]
    assert not [note for note in report["sources"]["transactions"]["notes"] if "not used" in note]


def test_a_refunds_column_the_files_lack_or_a_refunds_setting_elsewhere_is_an_error_naming_it(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "old.csv", GOOD_TRANSACTIONS)
    with pytest.raises(IngestError, match=r"^sources\.transactions\.refunds\.column: column 'Refunded Amount' is not "
                                          r"in the files \(their columns: order_id, customer_id, ordered_at, amount\)"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "refunds": {"column": "Refunded Amount"}}})
    with pytest.raises(IngestError, match=r"^sources\.transactions\.other_exports\[0\]\.refunds\.column: column 'Total Refunded'"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "other_exports": [
            {"path": "old.csv", "refunds": {"column": "Total Refunded"}}]}})
    for setting, message in [({"column": "Refunded", "per": "line"}, "per"), ({"column": ""}, "column")]:
        with pytest.raises(Exception, match=message):
            make_config(tmp_path, {"transactions": {"path": "t.csv", "refunds": setting}})
    with pytest.raises(Exception, match="feedback.refunds: only transactions have refunds"):
        make_config(tmp_path, {"transactions": {"path": "t.csv"},
                               "feedback": {"path": "f.csv", "refunds": {"column": "Refunded"}}})


def test_amounts_in_cents_from_a_payment_api_are_read_in_units_by_a_rate_per_currency(tmp_path):
    """Stripe's API writes amounts in the currency's minor unit beside a lower-case currency code; the yen has none.
    Refunds written beside the charge are converted alike."""
    charges = [{"id": "ch_1", "customer": "cus_A", "created": 1706693400, "amount": 1999, "currency": "usd",
                "amount_refunded": 500},
               {"id": "ch_2", "customer": "cus_B", "created": 1706779800, "amount": 1500, "currency": "jpy",
                "amount_refunded": 0}]
    write(tmp_path, "charges.jsonl", "".join(json.dumps(charge) + "\n" for charge in charges))
    stripe = {"path": "charges.jsonl", "rename": {"id": "order_id", "customer": "customer_id", "created": "ordered_at"},
              "currency_rates": {"column": "currency", "rates": {"USD": 0.01, "JPY": 1}},
              "refunds": {"column": "amount_refunded"}}
    report = run_ingest(tmp_path, {"transactions": stripe})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "amount"]].round(6).values.tolist() == [["ch_1", 19.99], ["ch_2", 1500.0], ["ch_1", -5.0]]
    assert validated["ordered_at"].iloc[0] == pd.Timestamp("2024-01-31 09:30", tz="UTC")
    assert "1 refund row added from amount_refunded (worth 5.00 in all)" in " ".join(
        report["sources"]["transactions"]["notes"])


def test_amounts_in_cents_in_one_currency_get_a_note_naming_the_rate(tmp_path):
    """One currency, so no mixed-currency warning: a payment API's cents were read as dollars, silently."""
    lines = "".join(f"in_{i},cus_{i % 50},{1706693400 + i * 3600},{1900 if i % 3 else 4900},usd\n" for i in range(240))
    write(tmp_path, "invoices.csv", "id,customer,created,amount,currency\n" + lines)
    mapping = {"path": "invoices.csv", "read": {"date_format": "unix"},
               "rename": {"id": "order_id", "customer": "customer_id", "created": "ordered_at"}}
    notes = run_ingest(tmp_path, {"transactions": mapping})["sources"]["transactions"]["notes"]
    assert ("every amount is a whole number (median purchase 1,900 USD): if the export writes them in USD's minor unit "
            "(cents, as payment APIs such as Stripe's do), every sentence about money and every customer value is a "
            "hundred times too large; read them with sources.transactions.currency_rates: {column: currency, rates: "
            "{usd: 0.01}}") in notes
    run_ingest(tmp_path, {"transactions": {**mapping, "currency_rates": {"column": "currency", "rates": {"usd": 0.01}}}})
    assert read_validated_source(tmp_path, "transactions")["amount"].max() == 49.0
    for text, why in [(lines.replace(",usd", ",jpy"), "the yen has no minor unit"),
                      (lines.replace(",1900,", ",19.99,"), "a price with cents"),
                      (lines.replace(",1900,", ",19,").replace(",4900,", ",49,"), "a small median: whole dollars")]:
        write(tmp_path, "invoices.csv", "id,customer,created,amount,currency\n" + text)
        notes = run_ingest(tmp_path, {"transactions": mapping})["sources"]["transactions"]["notes"]
        assert not any("whole number" in note for note in notes), why


def test_free_trial_invoices_get_a_note_and_leave_with_exclude(tmp_path):
    """A subscription export: every fifth customer's first invoice is a free trial (amount 0)."""
    lines = "".join(f"in_{i},cus_{i % 40},2024-{1 + i // 40:02d}-0{1 + i % 9},{0 if i % 5 == 0 else 19.99}\n"
                    for i in range(400))
    write(tmp_path, "invoices.csv", "id,customer,created,amount\n" + lines)
    mapping = {"path": "invoices.csv", "rename": {"id": "order_id", "customer": "customer_id", "created": "ordered_at"}}
    notes = run_ingest(tmp_path, {"transactions": mapping})["sources"]["transactions"]["notes"]
    assert any(note.startswith("80 of the 400 orders (20%) are worth 0 on every line (free trials, samples, "
                               "replacements?)") for note in notes)
    report = run_ingest(tmp_path, {"transactions": {**mapping, "exclude": {"amount": ["0"]}}})["sources"]["transactions"]
    assert report["excluded_rows"] == 80 and not any("worth 0" in note for note in report["notes"])


def test_accounting_negatives_are_read_with_their_setting_and_named_in_the_reason_without_it(tmp_path):
    """An ERP or accounting export writes refunds as (12.50) or 12.50- (SAP)."""
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\no1,c1,2024-01-05,20.00\n"
          "o2,c1,2024-01-06,(12.50)\no3,c2,2024-01-07,4.00-\no4,c2,2024-01-08,£(1.25)\no5,c3,2024-01-09,7\n")
    run_ingest(tmp_path, {"transactions": {"path": "t.csv"}}, ingest={"max_bad_share": 0.9})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["reason"].unique().tolist() == [
        "amount: not a number (a negative in parentheses or with a trailing minus? set "
        "sources.transactions.read.accounting_negatives: true)"]
    run_ingest(tmp_path, {"transactions": {"path": "t.csv", "read": {"accounting_negatives": True, "currency": "£"}}})
    assert read_validated_source(tmp_path, "transactions")["amount"].tolist() == [20.0, -12.5, -4.0, -1.25, 7.0]
    # with the setting, the other hints still read through the parentheses
    write(tmp_path, "c.csv", "order_id,customer_id,ordered_at,amount\no1,c1,2024-01-05,\"(12,50)\"\n"
          "o2,c1,2024-01-06,\"(1.234,56)\"\no3,c2,2024-01-07,\"($3.00)\"\no4,c2,2024-01-08,\"($1,234.56)\"\n"
          "o5,c3,2024-01-09,\"($5.00)\"\no6,c3,2024-01-10,7\n")
    run_ingest(tmp_path, {"transactions": {"path": "c.csv", "read": {"accounting_negatives": True}}},
               ingest={"max_bad_share": 0.9})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine["reason"].tolist() == [
        "amount: not a number (a currency sign? set sources.transactions.read.currency: '$')"] * 5


JSON_ORDERS = [
    {"id": "o1", "customer": {"email": "ann@example.com"}, "created_at": "2024-01-05T10:00:00+01:00", "total": 12.5,
     "items": [{"sku": "A", "qty": 1}]},
    {"id": "o2", "customer": {"email": "bob@example.com"}, "created_at": "2024-01-06T10:00:00Z", "total": 4,
     "items": []},
    {"id": "o3", "customer": {"email": "cat@example.com"}, "created_at": "not a time", "total": 3, "items": [{"sku": "B"}]},
    {"id": "o4", "customer": {"email": "NULL"}, "created_at": "2024-01-07T10:00:00Z", "total": 5, "items": []},
]
JSON_RENAME = {"id": "order_id", "customer.email": "customer_id", "created_at": "ordered_at", "total": "amount"}


def test_json_exports_read_as_rows_with_nested_fields_as_columns(tmp_path):
    """An API's order export: JSON lines or an array, a nested customer, line items as an array inside each row."""
    write(tmp_path, "orders.jsonl", "\n".join(json.dumps(order) for order in JSON_ORDERS) + "\n")
    write(tmp_path, "orders.json", json.dumps(JSON_ORDERS, indent=2))
    for path in ("orders.jsonl", "orders.json"):
        run_ingest(tmp_path, {"transactions": {"path": path, "rename": JSON_RENAME}}, ingest={"max_bad_share": 0.5})
        validated = read_validated_source(tmp_path, "transactions")
        assert validated[["order_id", "customer_id", "amount"]].values.tolist() == [
            ["o1", "ann@example.com", 12.5], ["o2", "bob@example.com", 4.0]]
        assert validated["ordered_at"].tolist() == [pd.Timestamp("2024-01-05 09:00", tz="UTC"),
                                                    pd.Timestamp("2024-01-06 10:00", tz="UTC")]  # offsets honoured
        quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
        assert quarantine[["reason", "items"]].values.tolist() == [["created_at: not a timestamp", '[{"sku":"B","qty":null}]'],
                                                                   ["anonymous", "[]"]]  # a null token is missing


def test_a_json_export_wrapped_in_one_object_names_its_rows_key(tmp_path):
    write(tmp_path, "orders.json", json.dumps({"meta": {"page": 1}, "data": JSON_ORDERS[:2]}, indent=2))
    orders = {"path": "orders.json", "rename": JSON_RENAME}
    with pytest.raises(IngestError, match=r"rows seem to be under 'data': set sources.transactions.read.json_records: data"):
        run_ingest(tmp_path, {"transactions": orders})
    run_ingest(tmp_path, {"transactions": {**orders, "read": {"json_records": "data"}}})
    assert read_validated_source(tmp_path, "transactions")["order_id"].tolist() == ["o1", "o2"]
    with pytest.raises(IngestError, match=r"has no 'rows' in the file \(there: 'meta', 'data'\)"):
        run_ingest(tmp_path, {"transactions": {**orders, "read": {"json_records": "rows"}}})


def test_json_exports_that_cannot_be_read_as_rows_get_one_line_errors(tmp_path):
    for content, message in [
        ('{"order_id": "o1"}\n[1, 2]\n', r"is not readable as JSON rows: .*; export one JSON object per line"),
        ('{"order_id": "o1"}\n{"order_id":\n', r"is not readable as JSON rows: "),
        ('[{"order_id": "o1",', r"is not valid JSON: Expecting"),
        ("[]", r"holds no rows \(an empty array\)"),
        ("  \n", r"is empty \(no JSON rows\)"),
        ('[1, 2]', r"the file is not an array of objects"),
    ]:
        write(tmp_path, "t.json", content)
        with pytest.raises(IngestError, match=message):
            run_ingest(tmp_path, {"transactions": {"path": "t.json"}})


def test_json_values_compare_as_the_export_writes_them_and_ids_stay_exact(tmp_path):
    """Typed JSON cells: a boolean is 'true' for returns_when, an integer with nulls beside it stays an integer for
    exclude and for ids (9007199254740993 is not rounded to ...992; 19 digits are not scientific notation); a field
    of numbers in some rows and text in others is text; a null before an array is fine; a byte-order mark too."""
    rows = [{"id": "o0", "cust": 7, "ts": "2024-01-04T10:00:00Z", "total": 2, "refunded": None, "status": 5,
             "tags": []},
            {"id": "o1", "cust": 9007199254740993, "ts": "2024-01-05T10:00:00Z", "total": 5, "refunded": False,
             "status": 3, "tags": [None, "gift"]},
            {"id": "o2", "cust": 9007199254740992, "ts": "2024-01-06T10:00:00Z", "total": 5, "refunded": True,
             "status": None, "tags": None},
            {"id": "o3", "cust": 1234567890123456789, "ts": "2024-01-07T10:00:00Z", "total": 7, "refunded": False,
             "status": 4, "tags": []},
            {"id": 4, "cust": None, "ts": "2024-01-08T10:00:00Z", "total": 1, "refunded": False, "status": 4,
             "tags": ["x"]}]
    orders = {"rename": {"id": "order_id", "cust": "customer_id", "ts": "ordered_at", "total": "amount"},
              "returns_when": {"refunded": ["true"]}, "exclude": {"status": ["3"]}}
    write(tmp_path, "o.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n")
    write(tmp_path, "o.json", b"\xef\xbb\xbf" + json.dumps(rows).encode("utf-8"))
    for path in ("o.jsonl", "o.json"):
        report = run_ingest(tmp_path, {"transactions": {"path": path, **orders}}, ingest={"max_anonymous_share": 0.5})
        validated = read_validated_source(tmp_path, "transactions")
        assert validated[["order_id", "customer_id", "amount"]].values.tolist() == [
            ["o0", "7", 2.0], ["o2", "9007199254740992", -5.0], ["o3", "1234567890123456789", 7.0]]
        entry = report["sources"]["transactions"]
        assert (entry["excluded_rows"], entry["anonymous_rows"], entry["bad_rows"]) == (1, 1, 0)


def test_parquet_integer_ids_beside_nulls_stay_exact(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"order_id": ["o1", "o2", "o3"],
                             "customer_id": pa.array([9007199254740993, None, 9007199254740992], pa.int64()),
                             "ordered_at": ["2024-01-05 10:00:00"] * 3, "amount": [1.0, 2.0, 3.0]}), tmp_path / "t.parquet")
    run_ingest(tmp_path, {"transactions": {"path": "t.parquet"}}, ingest={"max_anonymous_share": 0.5})
    assert read_validated_source(tmp_path, "transactions")["customer_id"].tolist() == [
        "9007199254740993", "9007199254740992"]


def test_a_json_lines_export_in_another_encoding_reads_with_its_setting(tmp_path):
    row = {"order_id": "o1", "customer_id": "Zoë", "ordered_at": "2024-01-05T10:00:00Z", "amount": 5}
    write(tmp_path, "t.jsonl", (json.dumps(row, ensure_ascii=False) + "\n").encode("latin-1"))
    with pytest.raises(IngestError, match=r"is not valid utf-8 \(line 1, byte \d+\).*read.encoding"):
        run_ingest(tmp_path, {"transactions": {"path": "t.jsonl"}})
    run_ingest(tmp_path, {"transactions": {"path": "t.jsonl", "read": {"encoding": "latin-1"}}})
    assert read_validated_source(tmp_path, "transactions")["customer_id"].tolist() == ["Zoë"]


# --- a database export in several tables: `lookup` -------------------------------------------------------------------

ORDER_LINES = "order_id,item,product_id,price\no1,1,p1,10.00\no1,2,p2,5.50\no2,1,p1,10.00\no3,1,p3,7.00\n" \
              "o9,1,p3,7.00\no4,1,p1,3.00\n,1,p1,3.00\n"
ORDERS = "order_id,customer_id,status,purchased\no1,c1,delivered,2017-01-05 10:00:00\no2,c2,delivered,2017-02-05 10:00:00\n" \
         "o3,c3,canceled,2017-03-05 10:00:00\no3,c3,canceled,2017-03-05 10:00:00\no4,c4,delivered,2017-03-06 10:00:00\n" \
         "o4,c5,delivered,2017-03-06 11:00:00\n"
CUSTOMERS_BY_ORDER = "customer_id,unique_id,city\nc1,u1,sao paulo\nc2,u1,sao paulo\nc3,u2,rio\nc4,u3,rio\nc5,u3,rio\n"
TWO_LOOKUPS = [{"path": "orders.csv", "by": "order_id"},
               {"path": "customers.csv", "by": "customer_id", "columns": ["unique_id"]}]
BY_UNIQUE_ID = {"customer_id": "order_customer", "unique_id": "customer_id"}


def write_tables(folder: Path) -> None:
    write(folder, "lines.csv", ORDER_LINES)
    write(folder, "orders.csv", ORDERS)
    write(folder, "customers.csv", CUSTOMERS_BY_ORDER)


def test_order_lines_take_the_customer_and_time_of_their_order_from_further_tables(tmp_path):
    """A database export: lines name the order; orders name a per-order customer id; customers map it to the person."""
    write_tables(tmp_path)
    lines = {"path": "lines.csv", "lookup": TWO_LOOKUPS, "exclude": {"status": ["canceled"]},
             "rename": {**BY_UNIQUE_ID, "purchased": "ordered_at", "price": "amount"}}
    report = run_ingest(tmp_path, {"transactions": lines}, ingest={"max_bad_share": 0.5})
    validated = read_validated_source(tmp_path, "transactions")
    assert validated[["order_id", "customer_id", "amount"]].values.tolist() == [
        ["o1", "u1", 10.0], ["o1", "u1", 5.5], ["o2", "u1", 10.0]]  # two orders' customer ids, one person
    assert validated["ordered_at"].astype("str").tolist() == ["2017-01-05 10:00:00+00:00"] * 2 + [
        "2017-02-05 10:00:00+00:00"]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    orders = str(tmp_path / "orders.csv")
    assert quarantine[["order_id", "status", "reason"]].fillna("").values.tolist() == [
        ["o3", "canceled", "excluded by sources.transactions.exclude: status is 'canceled'"],  # a row repeated is one row
        ["o9", "", f"order_id: not in {orders} (sources.transactions.lookup[0])"],
        ["o4", "", f"order_id: on two rows of {orders} that differ, so which to take is unclear "
                   "(sources.transactions.lookup[0])"],
        ["", "", "order_id: missing; anonymous; purchased: missing"]]
    entry = report["sources"]["transactions"]
    assert entry["input_rows"] == 7 and entry["validated_rows"] + entry["quarantined_rows"] == 7
    assert entry["bad_rows"] == 2  # the lines whose order the table lacks or holds twice
    assert (f"4 of 7 rows took customer_id, status, purchased from {orders} by order_id (sources.transactions.lookup[0]); "
            "2 rows whose order_id it lacks or holds twice quarantined; 1 row with an empty order_id took nothing; 1 key is "
            "on two rows of it that differ (e.g. 'o4')") in entry["notes"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra[["item", "customer_id", "status"]].values.tolist() == [["1", "c1", "delivered"], ["2", "c1", "delivered"],
                                                                          ["1", "c2", "delivered"]]


def test_reviews_that_name_the_order_take_its_customer_and_typed_keys_match_text_ones(tmp_path):
    write_tables(tmp_path)
    pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["c1", "c2"],
                  "purchased": ["2017-01-05 10:00:00", "2017-02-05 10:00:00"], "number": [17850.0, 12.0]}
                 ).to_parquet(tmp_path / "orders.parquet")
    write(tmp_path, "codes.csv", "code,segment\n17850,wholesale\n12,retail\n")
    write(tmp_path, "reviews.csv", "review,order_id,stars,created\nr1,o1,5,2017-01-10\nr2,o2,1,2017-02-10\n"
                                   "r3,o8,4,2017-02-11\n")
    transactions = {"path": "lines.csv", "lookup": [{"path": "orders.parquet", "by": "order_id"},
                                                    {"path": "codes.csv", "by": "number", "key": "code"}],
                    "rename": {"purchased": "ordered_at", "price": "amount"}}
    reviews = {"path": "reviews.csv", "constants": {"kind": "review"},
               "lookup": [{"path": "orders.csv", "by": "order_id", "columns": ["customer_id"]},
                          {"path": "customers.csv", "by": "customer_id", "columns": ["unique_id"]}],
               "rename": {**BY_UNIQUE_ID, "stars": "score", "created": "submitted_at"}}
    run_ingest(tmp_path, {"transactions": transactions, "feedback": reviews}, ingest={"max_bad_share": 0.9})
    feedback = read_validated_source(tmp_path, "feedback")
    assert feedback[["customer_id", "order_id", "score"]].values.tolist() == [["u1", "o1", 5.0], ["u1", "o2", 1.0]]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "feedback.parquet")
    assert quarantine["reason"].tolist() == [f"order_id: not in {tmp_path / 'orders.csv'} (sources.feedback.lookup[0])"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra["segment"].tolist() == ["wholesale"] * 2 + ["retail"]  # 17850.0 in Parquet is 17850 in the CSV


def test_a_lookup_table_listing_only_some_keys_keeps_the_other_rows_with_missing_keep(tmp_path):
    """A returns list (Tableau's Superstore: Order ID, Returned) names the returned orders only: every other order was
    quarantined as not in it (92% of the export), so the list could not be joined without a script."""
    write(tmp_path, "orders.csv", "Order ID,Customer ID,Order Date,Sales\nA-1,c1,2017-01-05,10\nA-2,c1,2017-02-05,20\n"
                                  "A-3,c2,2017-03-05,30\nA-3,c2,2017-03-05,5\n")
    write(tmp_path, "returns.csv", "Returned,Order ID\nYes,A-3\nYes,A-3\n")  # one row per returned line, repeated
    rename = {"Order ID": "order_id", "Customer ID": "customer_id", "Order Date": "ordered_at", "Sales": "amount"}
    returns = {"path": "returns.csv", "by": "Order ID", "columns": ["Returned"], "missing": "keep"}
    report = run_ingest(tmp_path, {"transactions": {"path": "orders.csv", "rename": rename, "lookup": [returns]}})
    entry = report["sources"]["transactions"]
    assert (entry["validated_rows"], entry["quarantined_rows"], entry["bad_rows"]) == (4, 0, 0)
    assert (f"2 of 4 rows took Returned from {tmp_path / 'returns.csv'} by Order ID (sources.transactions.lookup[0]); "
            "2 rows whose Order ID it lacks kept without them (missing: keep)") in entry["notes"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra["Returned"].fillna("").tolist() == ["", "", "Yes", "Yes"]
    with pytest.raises(IngestError, match=r"50.0% of 4 rows are bad.*Order ID: not in"):  # the default: such rows are quarantined
        run_ingest(tmp_path, {"transactions": {"path": "orders.csv", "rename": rename,
                                               "lookup": [{**returns, "missing": "quarantine"}]}})


def test_lookup_settings_that_do_not_fit_the_files_are_one_line_errors_naming_the_key(tmp_path):
    write_tables(tmp_path)
    rename = {**BY_UNIQUE_ID, "purchased": "ordered_at", "price": "amount"}

    def ingest(*lookups: dict, **source) -> None:
        run_ingest(tmp_path, {"transactions": {"path": "lines.csv", "lookup": list(lookups), "rename": rename, **source}},
                   ingest={"max_bad_share": 0.9})

    with pytest.raises(IngestError, match=r"file not found: .*nowhere.csv; fix sources.transactions.lookup\[0\].path"):
        ingest({"path": "nowhere.csv", "by": "order_id"})
    with pytest.raises(IngestError, match=r"sources.transactions.lookup\[0\].by: column 'order' is not in .*orders.csv "
                                          r"\(its columns: order_id, customer_id, status, purchased\); .* with "
                                          r"sources.transactions.lookup\[0\].key$"):
        ingest({"path": "orders.csv", "by": "order"})
    with pytest.raises(IngestError, match=r"sources.transactions.lookup\[0\].by: column 'customer_id' is not in "
                                          r".*lines.csv \(its columns: order_id, item, product_id, price\)"):
        ingest({"path": "orders.csv", "by": "customer_id"})
    with pytest.raises(IngestError, match=r"sources.transactions.lookup\[0\].key: column 'id' is not in .*orders.csv"):
        ingest({"path": "orders.csv", "by": "order_id", "key": "id"})
    with pytest.raises(IngestError, match=r"sources.transactions.lookup\[1\].columns: column 'unique' is not in"):
        ingest(TWO_LOOKUPS[0], {**TWO_LOOKUPS[1], "columns": ["unique"]})
    with pytest.raises(IngestError, match=r"sources.transactions.lookup\[1\]: .*customers.csv has a column 'customer_id', "
                                          r"which .*orders.csv \(sources.transactions.lookup\[0\]\) gives already; list "
                                          r"the table's columns to take with sources.transactions.lookup\[1\].columns"):
        ingest(TWO_LOOKUPS[0], {"path": "customers.csv", "by": "customer_id", "key": "unique_id"})
    with pytest.raises(IngestError, match=r"lookup\[0\]: .*orders.csv has a column 'product_id', which .*lines.csv gives"):
        write(tmp_path, "orders.csv", ORDERS.replace("purchased", "product_id"))
        ingest(TWO_LOOKUPS[0])
    write(tmp_path, "orders.csv", ORDERS.replace("status", "reason"))
    with pytest.raises(IngestError, match=r"lookup\[0\]: .*orders.csv has a column 'reason', a name reserved for the "
                                          r"quarantine file; list the columns to take with sources.transactions.lookup\[0\]"
                                          r".columns"):
        ingest(*TWO_LOOKUPS)
    write(tmp_path, "orders.csv", ORDERS.replace(",", ";"))
    with pytest.raises(IngestError, match=r"lookup\[0\].by: column 'order_id' is not in .*orders.csv .*the file seems to "
                                          r"use ';' as separator, set sources.transactions.lookup\[0\].read.sep: ';'$"):
        ingest(*TWO_LOOKUPS)
    write(tmp_path, "orders.csv", ORDERS.splitlines()[0] + "\n")
    with pytest.raises(IngestError, match=r"lookup\[0\]: .*orders.csv has a header but no rows"):
        ingest(*TWO_LOOKUPS)
    write(tmp_path, "orders.csv", ORDERS)
    write_workbook(tmp_path / "orders.xlsx", {"Orders": pd.DataFrame({"order_id": ["o1"]})})
    with pytest.raises(IngestError, match=r"has no sheet 'Sheet1' .*set sources.transactions.lookup\[0\].read.sheet"):
        ingest({"path": "orders.xlsx", "by": "order_id", "read": {"sheet": "Sheet1"}})
    with pytest.raises(Exception, match=r"lookup.0.read: .*date_format: a lookup table's values are read with the "
                                        r"export's own settings"):
        ingest({"path": "orders.csv", "by": "order_id", "read": {"date_format": "%d/%m/%Y"}})
    with pytest.raises(IngestError, match="lacks required column"):  # no lookup gives the time
        ingest({**TWO_LOOKUPS[0], "columns": ["customer_id"]}, TWO_LOOKUPS[1])
    with pytest.raises(Exception, match=r"lookup.0: .*columns: 'order_id' is the key"):
        make_config(tmp_path, {"transactions": {"path": "lines.csv",
                                                "lookup": [{"path": "orders.csv", "by": "order_id", "columns": ["order_id"]}]}})
    with pytest.raises(Exception, match=r"lookup.0.by: Field required"):
        make_config(tmp_path, {"transactions": {"path": "lines.csv", "lookup": [{"path": "orders.csv", "key": "id"}]}})
    on = yaml.safe_load("lookup: [{path: orders.csv, on: order_id}]")["lookup"]  # YAML reads `on` as true
    assert make_config(tmp_path, {"transactions": {"path": "lines.csv", "lookup": on}}).sources.transactions.lookup[0].by \
        == "order_id"


def test_a_lookup_of_another_export_is_named_as_its_own_and_its_misses_keep_their_other_reasons(tmp_path):
    write_tables(tmp_path)
    write(tmp_path, "more_lines.csv", "order_id,product_id,price,status\no2,p9,4.00,\no7,p9,2.00,canceled\no8,p9,x,\n"
                                      "  ,p9,1.00,\n")
    rename = {**BY_UNIQUE_ID, "purchased": "ordered_at", "price": "amount"}
    more = {"path": "more_lines.csv", "lookup": [{"path": "orders.csv", "by": "order_id", "columns": ["customer_id",
                                                                                                     "purchased"]},
                                                 TWO_LOOKUPS[1]],
            "rename": rename, "exclude": {"status": ["canceled"]}}
    lines = {"path": "lines.csv", "lookup": TWO_LOOKUPS, "rename": rename, "exclude": {"status": ["canceled"]},
             "other_exports": [more]}
    report = run_ingest(tmp_path, {"transactions": lines}, ingest={"max_bad_share": 0.9})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    reasons = dict(zip(quarantine["source_row"].astype(str) + "@" + quarantine["source_file"].str.rsplit("/", n=1).str[-1],
                       quarantine["reason"]))
    orders, more_lookup = str(tmp_path / "orders.csv"), "sources.transactions.other_exports[0].lookup[0]"
    assert reasons["2@more_lines.csv"] == (  # its own exclusion stands; only the missing values are the lookup's
        f"order_id: not in {orders} ({more_lookup}); excluded by sources.transactions.exclude: status is 'canceled'")
    assert reasons["3@more_lines.csv"] == f"order_id: not in {orders} ({more_lookup}); price: not a number"
    assert reasons["4@more_lines.csv"] == "order_id: missing; anonymous; purchased: missing"  # a blank key is no key
    notes = report["sources"]["transactions"]["notes"]
    assert any(note.startswith(f"1 of 4 rows took customer_id, purchased from {orders} by order_id ({more_lookup}); "
                               "2 rows whose order_id it lacks or holds twice quarantined") for note in notes)
    with pytest.raises(IngestError, match=r"nowhere.csv; fix sources.transactions.other_exports\[0\].lookup\[1\].path"):
        run_ingest(tmp_path, {"transactions": {**lines, "other_exports": [
            {**more, "lookup": [more["lookup"][0], {"path": "nowhere.csv", "by": "customer_id"}]}]}})


def test_lookup_files_are_fingerprinted_with_the_exports(tmp_path):
    write_tables(tmp_path)
    lines = {"path": "lines.csv", "lookup": TWO_LOOKUPS, "rename": {**BY_UNIQUE_ID, "purchased": "ordered_at",
                                                                     "price": "amount"}}
    report = run_ingest(tmp_path, {"transactions": lines}, ingest={"max_bad_share": 0.9})
    files = [Path(entry["path"]).name for entry in report["sources"]["transactions"]["files"]]
    assert files == ["lines.csv", "orders.csv", "customers.csv"]  # a changed table changes the inputs


def transactions_notes(folder: Path, rows: list[str], **sections: dict) -> list[str]:
    """The transactions' report notes after ingesting `rows` (lines of order_id,customer_id,ordered_at,amount)."""
    write(folder, "t.csv", "order_id,customer_id,ordered_at,amount\n" + "\n".join(rows) + "\n")
    return run_ingest(folder, {"transactions": {"path": "t.csv"}}, **sections)["sources"]["transactions"]["notes"]


def test_customer_ids_that_each_name_one_order_get_a_warning_naming_the_fix(tmp_path, caplog):
    """An order system's own customer key (one per order, as in a marketplace export) splits every person into as many
    customers as orders: nobody buys again, and the ingest says so instead of letting training fail obscurely."""
    with caplog.at_level(logging.WARNING):
        notes = transactions_notes(tmp_path, [f"o{i},k{i},2024-01-{1 + i % 28:02d} 10:00:00,{5 + i}" for i in range(60)])
    note = ("each of the 60 customer ids has exactly one order: customer_id looks like an id per order (an order "
            "system's own customer key), so nobody buys again and churn cannot be learned; map the column that "
            "names the person, or take it from a customers table with sources.transactions.lookup")
    assert note in notes and note in caplog.text

    def one_order_notes(rows: list[str]) -> list[str]:
        return [note for note in transactions_notes(tmp_path, rows) if "exactly one order" in note]

    many = [f"o{i},k{i},2024-01-{1 + i % 28:02d} 10:00:00,{5 + i % 9}" for i in range(1000)]
    # One key with a second order (a placeholder, a data quirk) does not hide the other 999.
    assert one_order_notes([*many, "o1000,k0,2024-02-01 10:00:00,7"]) == [note.replace(
        "each of the 60 customer ids has", "99.9% of the 1,000 customer ids have")]
    # A shop of one-time buyers where 1 in 20 comes back (ids name people): no note.
    assert one_order_notes([*many, *(f"p{i},k{i},2024-02-01 10:00:00,7" for i in range(0, 1000, 20))]) == []


def test_a_placeholder_id_for_guest_checkouts_gets_a_warning_and_is_read_as_a_guest_when_listed(tmp_path, caplog):
    """A shop system that writes customer 0 for every guest checkout: one 'customer' with a third of the orders."""
    rows = [f"o{i},{'0' if i % 3 == 0 else f'c{i % 70}'},2024-01-{1 + i % 28:02d} 10:00:00,{5 + i % 9}"
            for i in range(300)]
    with caplog.at_level(logging.WARNING):
        notes = transactions_notes(tmp_path, rows)
    note = ("customer id '0' has 100 orders (33% of all), 25 times as many as any other customer (at most 4): if it "
            "stands for guest checkouts or a shared account, list it in ingest.guest_ids to read its rows as anonymous "
            "(else they count as one customer)")
    assert note in notes and note in caplog.text
    # A wholesaler's few huge orders (60 lines each) are no placeholder: orders count, not lines.
    wholesale = [f"w{i // 60},big,2024-01-{1 + i // 60:02d} 10:00:00,{1 + i % 9}" for i in range(600)]
    notes = transactions_notes(tmp_path, [*wholesale, *(row for row in rows if ",0," not in row)])
    assert not [n for n in notes if "times as many as any other customer" in n]
    write(tmp_path, "t.csv", "order_id,customer_id,ordered_at,amount\n" + "\n".join(rows) + "\n")
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv"}}, ingest={"guest_ids": [0, "GUEST"],
                                                                                "id_case": "lower"})
    entry = report["sources"]["transactions"]
    assert entry["anonymous_rows"] == 100 and entry["validated_rows"] == 200 and entry["bad_rows"] == 0
    assert "100 rows name a guest id of ingest.guest_ids: read as a guest's (anonymous)" in entry["notes"]
    assert not [n for n in entry["notes"] if "times as many as any other customer" in n]
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert set(quarantine["customer_id"]) == {"0"} and set(quarantine["reason"]) == {"anonymous"}


def test_an_orders_total_written_on_each_of_its_lines_gets_a_warning_naming_the_fix(tmp_path, caplog):
    """A WooCommerce-style export repeats the order's fields on every line item: mapping its `Order Total` onto amount
    counts each order once per line. Lines that differ in product yet give the same amount say so."""
    header = "Order ID,Customer,Date,Product,Qty,Order Total,Line Total\n"
    lines = [f"W{o},c{o % 20},2024-01-{1 + o % 28:02d} 10:00:00,P{k},{1 + k % 2},{30 + o}.00,{10 + k + o % 3}.00"
             for o in range(60) for k in range(3)]
    write(tmp_path, "woo.csv", header + "\n".join(lines) + "\n")
    rename = {"Order ID": "order_id", "Customer": "customer_id", "Date": "ordered_at", "Product": "product_id",
              "Qty": "quantity"}

    def notes(amount: str) -> list[str]:
        source = {"path": "woo.csv", "rename": {**rename, amount: "amount"}}
        return run_ingest(tmp_path, {"transactions": source})["sources"]["transactions"]["notes"]

    with caplog.at_level(logging.WARNING):
        total = notes("Order Total")
    note = ("in 100% of the 60 orders whose lines differ in product_id or quantity, every line gives the same amount "
            "(e.g. order 'W0': 3 lines of 30.00 each): amount looks like the order's total written on each of its "
            "lines, which counts the order once per line. Map the line's own amount, or leave amount unmapped to derive "
            "it from quantity × unit_price")
    assert note in total and note in caplog.text
    assert not [n for n in notes("Line Total") if "order's total" in n]
    # An order of one product in several lines of one price (a marketplace's line per unit) is no order total.
    write(tmp_path, "units.csv", "order_id,customer_id,ordered_at,product_id,amount\n" + "\n".join(
        f"u{o},c{o % 20},2024-01-{1 + o % 28:02d} 10:00:00,P{o % 7},{9 + o}.90" for o in range(60) for _ in range(2)))
    report = run_ingest(tmp_path, {"transactions": {"path": "units.csv"}})
    assert not [n for n in report["sources"]["transactions"]["notes"] if "order's total" in n]


def test_a_read_error_in_a_further_export_names_that_exports_settings(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "old.csv", GOOD_TRANSACTIONS.replace(",", ";"))
    with pytest.raises(IngestError, match=r"set sources.transactions.other_exports\[0\].read.sep: ';'"):
        run_ingest(tmp_path, {"transactions": {"path": "t.csv", "other_exports": [{"path": "old.csv"}]}})


def test_header_lines_of_exports_joined_one_below_the_other_are_quarantined_as_such_not_as_bad(tmp_path):
    """Three monthly exports joined with `cat`: their header lines stand between the months."""
    header = "Invoice,Customer,Date,Total"
    months = [f"{header}\ni1,c1,2024-01-05 10:00,10\ni2,c2,2024-01-06 10:00,20\n",
              f"{header}\ni3,c1,2024-02-05 10:00,5\n", f"{header}\ni4,c3,2024-03-05 10:00,7\n,c4,x,Total\n"]
    write(tmp_path, "t.csv", "".join(months))
    rename = {"Invoice": "order_id", "Customer": "customer_id", "Date": "ordered_at", "Total": "amount"}
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "rename": rename}}, ingest={"max_bad_share": 0.2})
    entry = report["sources"]["transactions"]
    assert entry["validated_rows"] == 4 and entry["bad_rows"] == 1 and entry["duplicate_rows"] == 0
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["source_row", "reason"]].values.tolist() == [
        [3, "repeats the header row (exports joined one below the other?)"],
        [5, "repeats the header row (exports joined one below the other?)"],
        [7, "Invoice: missing; Date: not a timestamp; Total: not a number"]]  # only the whole header line is one
    assert ("2 rows repeat the header row (exports joined one below the other?): quarantined, not counted as bad"
            in entry["notes"])


def test_a_value_note_of_a_further_export_names_that_exports_setting(tmp_path):
    write(tmp_path, "t.csv", GOOD_TRANSACTIONS)
    write(tmp_path, "old.csv", with_column(GOOD_TRANSACTIONS, "Status", "Paid").replace("o1,", "x1,"))
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "other_exports": [
        {"path": "old.csv", "exclude": {"Status": ["paid"]}}]}})
    assert ("sources.transactions.other_exports[0].exclude: 3 rows of Status hold 'paid' in another case (e.g. 'Paid'), "
            "not matched: values are compared as written; list that spelling too if it means the same"
            ) in report["sources"]["transactions"]["notes"]


def test_header_lines_are_found_behind_a_byte_order_mark_an_index_column_and_in_a_further_export(tmp_path):
    """Excel's "CSV UTF-8" writes a byte-order mark before each month's header; pandas writes an unnamed index column."""
    header = "Invoice,Customer,Date,Total"
    write(tmp_path, "t.csv", f"\ufeff{header}\ni1,c1,2024-01-05 10:00,10\n\ufeff{header}\ni2,c2,2024-02-05 10:00,5\n")
    indexed = f",{header}\n0,i3,c1,2024-02-06 10:00,7\n,{header}\n0,i4,c3,2024-02-07 10:00,2\n"
    write(tmp_path, "old.csv", indexed)
    rename = {"Invoice": "order_id", "Customer": "customer_id", "Date": "ordered_at", "Total": "amount"}
    report = run_ingest(tmp_path, {"transactions": {"path": "t.csv", "rename": rename,
                                                    "other_exports": [{"path": "old.csv", "rename": rename}]}})
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine[["source_file", "source_row"]].values.tolist() == [[str(tmp_path / "t.csv"), 2],
                                                                       [str(tmp_path / "old.csv"), 2]]
    assert set(quarantine["reason"]) == {"repeats the header row (exports joined one below the other?)"}
    assert report["sources"]["transactions"]["validated_rows"] == 4


def test_a_monthly_export_file_missing_from_the_glob_is_named_with_its_dates(tmp_path, caplog):
    """Orders exported month by month and read by a glob; March's file never arrived. Its customers would look
    churned to every snapshot whose label window covers March: ingest says which days are empty."""
    folder = tmp_path / "orders"
    folder.mkdir()
    days = pd.date_range("2024-01-01", "2024-07-31", freq="D")
    for month, in_month in pd.Series(days).groupby(days.month):
        if month == 3:
            continue
        lines = [f"o{day:%m%d}{k},c{k},{day:%Y-%m-%d} 10:00:00,5" for day in in_month for k in range(3)]
        write(folder, f"{month:02d}.csv", "order_id,customer_id,ordered_at,amount\n" + "\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        report = run_ingest(tmp_path, {"transactions": {"path": "orders/*.csv"}})
    note = ("purchases nearly stop from 2024-03-01 to 2024-03-31: 0 orders in those 31 days (UTC), against an average of at least "
            "3 a day in the 28 days before and after them. A missing export file, or a closure?")
    assert any(item.startswith(note) for item in report["sources"]["transactions"]["notes"])
    assert note in caplog.text


def test_times_written_with_a_utc_offset_get_a_note_while_the_days_are_utc_days(tmp_path):
    """A Shopify export writes its local times with their offset: read as the right instants, but the days counted
    later are UTC's unless features.timezone names the shop's zone. A date-only day-first column ('05-01-2024'
    ends like an offset) and times in UTC ('+0000', 'Z') are no such case."""
    shopify = ("Name,Email,Created at,Total\n"
               "#1001,a@x.com,2024-11-01 10:00:00 -0400,10\n#1002,b@x.com,2024-11-01 21:30:00 -0400,12\n"
               "#1003,a@x.com,2024-11-04 20:15:00 -0500,8\n#1004,c@x.com,2024-11-02 09:00:00 -0400,5\n")
    write(tmp_path, "orders.csv", shopify)
    source = {"path": "orders.csv", "rename": {"Name": "order_id", "Email": "customer_id", "Created at": "ordered_at",
                                               "Total": "amount"}}
    report = run_ingest(tmp_path, {"transactions": source})
    note = next(n for n in report["sources"]["transactions"]["notes"] if "UTC offset" in n)
    assert note.startswith("Created at writes its times with a UTC offset (-04:00 on 75% of them, e.g. '2024-11-01 "
                           "10:00:00 -0400'): they are read as the instants they name, but the later stages count UTC "
                           "days (features.timezone, by default the transactions source's timezone, is UTC), so a "
                           "snapshot's midnight is 20:00 the evening before at -04:00 ")
    local = run_ingest(tmp_path, {"transactions": source}, features={"timezone": "America/New_York"})
    assert not [n for n in local["sources"]["transactions"]["notes"] if "UTC offset" in n]
    for times in (["05-01-2024", "06-01-2024", "07-01-2024", "08-01-2024"],
                  ["2024-05-01 10:00:00 +0000", "2024-05-01T21:30:00Z", "2024-05-02 09:00:00+00:00",
                   "2024-05-03 09:00:00"]):
        rows = "".join(f"#{i},a@x.com,{t},10\n" for i, t in enumerate(times))
        write(tmp_path, "orders.csv", "Name,Email,Created at,Total\n" + rows)
        quiet = run_ingest(tmp_path, {"transactions": {**source, "read": {"date_format": "%d-%m-%Y"}}
                                      if "-2024" in times[0] else source})
        assert not [n for n in quiet["sources"]["transactions"]["notes"] if "UTC offset" in n]


def test_times_without_a_zone_read_as_utc_only_because_the_export_sets_no_timezone_get_a_warning(tmp_path, caplog):
    """An Olist-like marketplace: orders read in America/Sao_Paulo, its reviews table (dates without a time, in the
    same local time) mapped without a timezone of its own. Read as UTC midnight, each review fell on the day before in
    Sao Paulo, and 'last feedback on <date>' named that day for 1,044 of 5,080 listed customers, without a word."""
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,amount\n"
                                  "o1,c1,2018-08-01 10:00:00,10\no2,c2,2018-08-03 15:00:00,20\n")
    write(tmp_path, "reviews.csv", "customer_id,review_creation_date,review_score\n"
                                   "c1,2018-08-05 00:00:00,4\nc2,2018-08-06 00:00:00,1\n")
    orders = {"path": "orders.csv", "timezone": "America/Sao_Paulo"}
    reviews = {"path": "reviews.csv", "rename": {"review_creation_date": "submitted_at", "review_score": "score"},
               "constants": {"kind": "review"}}
    with caplog.at_level(logging.WARNING):
        report = run_ingest(tmp_path, {"transactions": orders, "feedback": reviews})
    note = ("review_creation_date writes times without a zone (e.g. '2018-08-05 00:00:00') and "
            "sources.feedback.timezone is not set, so they are read as UTC, while the days counted are "
            "America/Sao_Paulo's (features.timezone): that one falls on 2018-08-04 at 21:00 there, the day before. If "
            "the export writes local times, set sources.feedback.timezone: America/Sao_Paulo; if UTC, set "
            "sources.feedback.timezone: UTC to say so")
    assert note in report["sources"]["feedback"]["notes"]
    assert note in caplog.text
    assert not [n for n in report["sources"]["transactions"]["notes"] if "without a zone" in n]

    def zone_notes(feedback: dict, **sections: dict) -> list[str]:
        found = run_ingest(tmp_path, {"transactions": orders, "feedback": feedback}, **sections)
        return [n for s in found["sources"].values() for n in s["notes"] if "without a zone" in n]

    # a timezone said, UTC included, times that carry their zone, or UTC days counted: nothing to say
    assert not zone_notes({**reviews, "timezone": "America/Sao_Paulo"})
    assert not zone_notes({**reviews, "timezone": "UTC"})
    write(tmp_path, "reviews.csv", "customer_id,review_creation_date,review_score\n"
                                   "c1,2018-08-05T03:00:00Z,4\nc2,2018-08-06 00:00:00-03:00,1\n")
    assert not zone_notes(reviews)
    write(tmp_path, "reviews.csv", "customer_id,review_creation_date,review_score\nc1,2018-08-05 00:00:00,4\n")
    assert not zone_notes(reviews, features={"timezone": "UTC"})
    # orders without a timezone while the days counted are another zone's: the transactions export is named
    transactions_notes = run_ingest(tmp_path, {"transactions": {"path": "orders.csv"}},
                                    features={"timezone": "America/Sao_Paulo"})["sources"]["transactions"]["notes"]
    assert any(n.startswith("ordered_at writes times without a zone (e.g. '2018-08-01 10:00:00') and "
                            "sources.transactions.timezone is not set") for n in transactions_notes)
    # a further export is named by its own key
    write(tmp_path, "nps.csv", "customer_id,submitted_at,score\nc1,2018-08-07 12:00:00,9\n")
    nps = {"path": "nps.csv", "constants": {"kind": "nps"}}
    notes = zone_notes({**reviews, "timezone": "America/Sao_Paulo", "other_exports": [nps]})
    assert len(notes) == 1 and notes[0].startswith("submitted_at writes times without a zone (e.g. '2018-08-07 "
                                                   "12:00:00') and sources.feedback.other_exports[0].timezone is not set")
