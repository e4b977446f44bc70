"""A mapping config alone: snapshot dates derived from the data, and a non-ISO date layout read when it is
the only common layout that reads the export's values (never guessed when the day/month order is ambiguous)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import SnapshotsConfig, config_from_dict
from pipeline.sources import DateFormatGuess, infer_date_format

D = dt.date


def test_missing_snapshot_dates_are_month_starts_over_the_data_after_one_horizon():
    auto = SnapshotsConfig()
    dates = auto.resolve(first_event=D(2009, 12, 1), last_event=D(2011, 11, 30), horizon_days=90)
    assert auto.derived and (dates[0], dates[-1], len(dates)) == (D(2010, 3, 1), D(2011, 11, 1), 21)
    start_only = SnapshotsConfig(start=D(2011, 9, 15), freq="W-MON")
    assert start_only.resolve(first_event=D(2009, 12, 1), last_event=D(2011, 10, 3), horizon_days=90) == [
        D(2011, 9, 19), D(2011, 9, 26), D(2011, 10, 3)]
    given = SnapshotsConfig(dates=[D(2024, 2, 1), D(2024, 1, 1)])
    assert not given.derived and given.resolve(first_event=D(2000, 1, 1), last_event=D(2030, 1, 1)) == [
        D(2024, 1, 1), D(2024, 2, 1)]
    assert auto.resolve(first_event=D(2024, 1, 1), last_event=D(2024, 3, 1), horizon_days=90) == []


def test_a_config_without_features_is_valid_and_an_empty_date_list_is_not(tmp_path):
    cfg = config_from_dict({"sources": {"transactions": {"path": "t.csv"}}}, base_dir=tmp_path)
    assert cfg.features.snapshots.derived and cfg.features.horizon_days == 90
    with pytest.raises(Exception, match="dates is empty"):
        config_from_dict({"sources": {"transactions": {"path": "t.csv"}}, "features": {"snapshots": {"dates": []}}},
                         base_dir=tmp_path)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["12/1/2010 8:26", "12/13/2010 17:05", "1/2/2011 9:00"], DateFormatGuess("%m/%d/%Y %H:%M")),
        (["13/01/2024 08:26:00", "02/01/2024 17:05:10"], DateFormatGuess("%d/%m/%Y %H:%M:%S")),
        (["31.12.2023", "01.02.2024"], DateFormatGuess("%d.%m.%Y")),
        (["Jan 5, 2024", "Feb 29, 2024"], DateFormatGuess("%b %d, %Y")),
        (["01/02/2024", "03/04/2024"], DateFormatGuess(None, ("%m/%d/%Y", "%d/%m/%Y"))),  # either order reads all
        (["yesterday", "soon", "12/1/2010"], DateFormatGuess(None)),  # too few read
        (["1/31/24 9:30", "12/1/23 17:05"], DateFormatGuess("%m/%d/%y %H:%M")),  # a spreadsheet's short date
        (["31.01.24", "01.12.23"], DateFormatGuess("%d.%m.%y")),
        (["08-11-16", "13-01-17"], DateFormatGuess("%d-%m-%y")),  # a Tableau Superstore copy's Order Date
        (["12-31-23", "01-02-24"], DateFormatGuess("%m-%d-%y")),
        (["01-02-03", "04-05-06"], DateFormatGuess(None, ("%m-%d-%y", "%d-%m-%y"))),
        (["01/02/03", "04/05/06"], DateFormatGuess(None, ("%m/%d/%y", "%d/%m/%y"))),
        (["11-Feb-13", "15-Mar-15", "26-Jun-11"], DateFormatGuess("%d-%b-%y")),  # Kaggle's Retail_Data_Transactions
        (["1706693400", "1707843900"], DateFormatGuess("unix")),  # seconds since 1970, in 2024
        (["1706693400000", "1707843900000"], DateFormatGuess("unix_ms")),
        (["20240131", "20240213"], DateFormatGuess("%Y%m%d")),  # not seconds: they would be in 1970
        (["45322.39583", "45323"], DateFormatGuess("excel")),  # a spreadsheet's date serials (days since 1899-12-30)
        (["2024", "2025"], DateFormatGuess(None)),  # years are not day serials of 1905
    ],
)
def test_infer_date_format_reads_one_unambiguous_layout(values, expected):
    assert infer_date_format(pd.Series(values)) == expected


def test_a_dd_mon_yy_column_is_read_without_a_date_format_in_this_century(tmp_path):
    """Kaggle's Retail_Data_Transactions.csv writes '11-Feb-13': before, every row was quarantined as not a timestamp
    unless read.date_format was set; two-digit years are 2011-2015, not 1911 or 2111."""
    rows = "".join(f"CS{5000 + i},{d},{10 + i}\n" for i, d in enumerate(
        ["11-Feb-13", "15-Mar-15", "26-Jun-11", "31-Dec-14", "01-Jan-12"] * 4))
    (tmp_path / "t.csv").write_text("customer_id,trans_date,tran_amount\n" + rows)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"paths": PATHS, "sources": {"transactions": {
        "path": "t.csv", "one_order_per_row": True, "rename": {"trans_date": "ordered_at", "tran_amount": "amount"}}}}))
    result, output = _churn(tmp_path, "ingest")
    assert result.exit_code == 0, output
    validated = pd.read_parquet(tmp_path / "data" / "validated" / "transactions.parquet")
    assert len(validated) == 20
    assert validated["ordered_at"].min() == pd.Timestamp("2011-06-26", tz="UTC")
    assert validated["ordered_at"].max() == pd.Timestamp("2015-03-15", tz="UTC")


def test_infer_date_format_settles_a_tie_on_the_sample_with_every_value():
    """The evenly spaced sample has only days up to 12; a later value decides the order."""
    values = pd.Series(["01/02/2024"] * 4999 + ["01/13/2024"])
    assert infer_date_format(values) == DateFormatGuess("%m/%d/%Y")


def _export(dates: list[str]) -> str:
    rows = [f"{1000 + i},{12000 + i % 7}.0,{d},{1 + i % 3},2.5" for i, d in enumerate(dates)]
    return "Invoice,Customer ID,InvoiceDate,Quantity,Price\n" + "\n".join(rows) + "\n"


RENAME = {"Invoice": "order_id", "Customer ID": "customer_id", "InvoiceDate": "ordered_at", "Quantity": "quantity",
          "Price": "unit_price"}


PATHS = {"data_dir": "data", "models_dir": "models"}


def _churn(folder, *args):
    result = CliRunner().invoke(app, [*args, "-c", str(folder / "config.yaml"), "-q"], env={"COLUMNS": "4000"})
    return result, " ".join(result.output.split())


def test_a_us_dated_export_runs_ingest_and_features_from_a_mapping_config_alone(tmp_path):
    days = pd.date_range("2010-12-01", "2011-05-31", freq="3D")
    (tmp_path / "retail.csv").write_text(_export([f"{d.month}/{d.day}/{d.year} 8:{d.day:02d}" for d in days]))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"paths": PATHS, "sources": {"transactions": {"path": "retail.csv", "rename": RENAME}}}))
    result, output = _churn(tmp_path, "ingest")
    assert result.exit_code == 0, output
    report = json.loads((tmp_path / "data" / "reports" / "ingest_report.json").read_text())["sources"]["transactions"]
    assert report["validated_rows"] == len(days) and report["bad_rows"] == 0
    assert any("read with the date format '%m/%d/%Y %H:%M'" in note for note in report["notes"])
    validated = pd.read_parquet(tmp_path / "data" / "validated" / "transactions.parquet")
    assert validated["ordered_at"].min() == pd.Timestamp("2010-12-01 08:01", tz="UTC")
    result, output = _churn(tmp_path, "features")
    assert result.exit_code == 0, output
    written = sorted(p.name for p in (tmp_path / "data" / "features").glob("snapshot=*.parquet"))
    # First day 2010-12-01 + 90 days = 2011-03-01; the last order is on 2011-05-30.
    assert written == [f"snapshot={d}.parquet" for d in ("2011-03-01", "2011-04-01", "2011-05-01")]


def test_an_ambiguous_export_is_refused_with_the_setting_to_choose(tmp_path):
    days = pd.date_range("2024-01-01", "2024-12-12", freq="D")
    days = days[days.day <= 12]
    (tmp_path / "retail.csv").write_text(_export([f"{d.month:02d}/{d.day:02d}/{d.year}" for d in days]))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"paths": PATHS, "sources": {"transactions": {"path": "retail.csv", "rename": RENAME}}}))
    result, output = _churn(tmp_path, "ingest")
    assert result.exit_code != 0 and "Traceback" not in output
    assert "day/month order ambiguous: set read.date_format, e.g. '%m/%d/%Y'" in output
    assert not (tmp_path / "data" / "validated" / "transactions.parquet").exists()


def test_too_short_a_history_for_one_snapshot_names_the_setting(tmp_path):
    days = pd.date_range("2024-01-01", "2024-02-20", freq="D")
    (tmp_path / "retail.csv").write_text(_export([f"{d:%Y-%m-%d} 10:00" for d in days]))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"paths": PATHS, "sources": {"transactions": {"path": "retail.csv", "rename": RENAME}}}))
    assert _churn(tmp_path, "ingest")[0].exit_code == 0
    result, output = _churn(tmp_path, "features")
    assert result.exit_code != 0 and "Traceback" not in output
    assert "no snapshot dates: the validated orders run from 2024-01-01 to 2024-02-20" in output
    assert "set features.snapshots.dates" in output
