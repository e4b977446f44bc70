"""Times an export gives as a duration after another time of the row (`sources.<name>.after`): a help desk's
`First reply time in minutes` after its `Created at` (Zendesk), RavenStack's first_response_time_minutes and
resolution_time_hours after submitted_at, a delivery's days after its order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import minimal_config
from pipeline.config import FeaturesConfig, TimeAfter, config_from_dict
from pipeline.errors import IngestError
from pipeline.events import load_events
from pipeline.features import build_features
from pipeline.ingest import time_after
from pipeline.run import ingest as ingest_runner

UTC = "UTC"
TRANSACTIONS = ("order_id,customer_id,ordered_at,amount\n"
                "o1,17850,2024-01-02 10:00:00,10\no2,13047,2024-01-03 10:00:00,12\no3,12583,2024-01-04 10:00:00,15\n")
# A Zendesk ticket export: times of creation and solving, the first reply as minutes after creation (blank: no reply
# yet), with decimals and one negative (a clock set wrong).
ZENDESK = ("Id,Requester,Created at,Solved at,First reply time in minutes,Full resolution time in minutes\n"
           "1,17850,2024-01-05 09:00:00,2024-01-05 12:00:00,30,180\n"
           "2,13047,2024-01-07 10:00:00,2024-01-08 10:00:00,,1440\n"  # no reply yet
           "3,17850,2024-01-09 08:00:00,2024-01-09 09:00:00,2.5,60\n"
           "4,12583,2024-01-10 10:00:00,,-5,\n"  # negative: quarantined
           "5,13047,2024-01-11 10:00:00,2024-01-11 10:30:00,0.75,30\n"
           "6,12583,2024-01-12 10:00:00,2024-01-12 12:00:00,90.5,120\n")
ZENDESK_MAPPING = {"path": "tickets.csv", "rename": {"Id": "ticket_id", "Requester": "customer_id",
                                                      "Created at": "opened_at", "Solved at": "closed_at"},
                   "after": {"first_response_at": {"column": "First reply time in minutes", "unit": "minutes",
                                                   "from": "opened_at"}}}
LOOSE = {"max_bad_share": 0.8}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def run(folder: Path, sources: dict, files: dict[str, str], **sections) -> dict:
    """Write `files` into `folder`, ingest `sources` there and return the report."""
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    raw = minimal_config(snapshots={"dates": ["2024-02-01"]}, paths={"data_dir": "out", "models_dir": "models"},
                         sources=sources, **sections)
    return ingest_runner.run(config_from_dict(raw, base_dir=folder), quiet=True)


def validated(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / "out" / "validated" / f"{name}.parquet")


def quarantined(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / "out" / "quarantine" / f"{name}.parquet")


def zendesk(folder: Path, mapping: dict | None = None, text: str = ZENDESK) -> dict:
    return run(folder, {"transactions": {"path": "t.csv"}, "support_tickets": mapping or ZENDESK_MAPPING},
               {"t.csv": TRANSACTIONS, "tickets.csv": text}, ingest=LOOSE)


def test_time_after_adds_each_unit_to_the_microsecond_and_gives_none_for_what_is_no_duration():
    start = pd.Series([ts("2024-03-30 23:00"), ts("2024-01-01"), pd.NaT, ts("2024-01-01"), ts("2024-01-01")],
                      dtype="datetime64[us, UTC]")
    durations = pd.Series([1.5, np.nan, 3.0, -1.0, 1e12])  # 1e12 seconds: more than 100 years
    expected = {"seconds": ["2024-03-30 23:00:01.5", None, None, None, None],
                "minutes": ["2024-03-30 23:01:30", None, None, None, None],
                "hours": ["2024-03-31 00:30", None, None, None, None],  # instants: a DST change adds no hour
                "days": ["2024-04-01 11:00", None, None, None, None]}
    for unit, times in expected.items():
        pd.testing.assert_series_equal(time_after(start, durations, unit=unit), pd.Series(
            [ts(t) if t else pd.NaT for t in times], dtype="datetime64[us, UTC]"), obj=unit)
    assert time_after(start, pd.Series([0.1] * 5), unit="minutes").iloc[0] == ts("2024-03-30 23:00:06")  # not 5.999..


def test_a_zendesk_first_reply_in_minutes_becomes_first_response_at_blank_ones_empty_a_negative_quarantined(tmp_path):
    report = zendesk(tmp_path)["sources"]["support_tickets"]
    tickets = validated(tmp_path, "support_tickets")
    assert tickets["ticket_id"].tolist() == ["1", "2", "3", "5", "6"]
    assert tickets["first_response_at"].tolist() == [ts("2024-01-05 09:30"), pd.NaT, ts("2024-01-09 08:02:30"),
                                                     ts("2024-01-11 10:00:45"), ts("2024-01-12 11:30:30")]
    assert tickets["closed_at"].tolist()[:2] == [ts("2024-01-05 12:00"), ts("2024-01-08 10:00")]  # as before
    bad = quarantined(tmp_path, "support_tickets")
    assert bad["Id"].tolist() == ["4"] and bad["First reply time in minutes"].tolist() == ["-5"]  # as written
    assert bad["reason"].tolist() == ["First reply time in minutes: negative (the first_response_at it gives would "
                                      "come before Created at)"]
    assert (report["input_rows"], report["validated_rows"], report["quarantined_rows"]) == (6, 5, 1)
    assert report["derived"] == {"first_response_at": "opened_at + First reply time in minutes × 1 minute"}
    assert report["notes"] == [
        "4 rows have first_response_at from First reply time in minutes (minutes after Created at); 1 with it blank "
        "has none",
        "first_response_at derived as opened_at + First reply time in minutes × 1 minute (the source has no "
        "first_response_at column)"]
    assert "First reply time in minutes" in report["extra_columns"]  # kept aside as the export wrote it, too


def test_the_ticket_features_read_the_first_replies_given_in_minutes(tmp_path):
    zendesk(tmp_path)
    features = build_features(load_events(tmp_path / "out" / "validated"), as_of=dt.date(2024, 2, 1),
                              cfg=FeaturesConfig(snapshots={"dates": ["2024-02-01"]}, windows_days=[30], btyd=False))
    means = features.set_index("customer_id")["first_response_hours_mean"]
    # 17850: 30 and 2.5 minutes; 13047: 0.75 minutes (ticket 2 has no reply); 12583: 90.5 minutes (ticket 4 is out)
    assert means.to_dict() == pytest.approx({"17850": (30 + 2.5) / 2 / 60, "13047": 0.75 / 60, "12583": 90.5 / 60})


def test_durations_are_read_with_the_sources_number_settings(tmp_path):
    comma = ZENDESK.replace("2.5,60", '"2,5",60').replace("0.75,30", '"0,75",30').replace("90.5,120", '"90,5",120')
    (tmp_path / "without").mkdir()
    zendesk(tmp_path / "without", text=comma)
    bad = quarantined(tmp_path / "without", "support_tickets")
    assert bad.loc[bad["Id"] != "4", "reason"].tolist() == [
        "First reply time in minutes: not a number (a decimal comma? set sources.support_tickets.read.decimal: ',' "
        "and, if the numbers have one, read.thousands)"] * 3
    (tmp_path / "with").mkdir()
    zendesk(tmp_path / "with", {**ZENDESK_MAPPING, "read": {"decimal": ","}}, text=comma)
    assert validated(tmp_path / "with", "support_tickets")["first_response_at"].tolist()[2:] == [
        ts("2024-01-09 08:02:30"), ts("2024-01-11 10:00:45"), ts("2024-01-12 11:30:30")]
    words = ZENDESK.replace(",90.5,", ",soon,")
    (tmp_path / "words").mkdir()
    zendesk(tmp_path / "words", text=words)
    assert quarantined(tmp_path / "words", "support_tickets")["reason"].tolist()[1] == (
        "First reply time in minutes: not a number")


def test_a_duration_after_a_blank_time_or_beyond_a_century_is_quarantined_naming_its_column(tmp_path):
    # Hours from the first reply to the solve: a ticket without a reply has no time to count them from.
    text = ("Id,Requester,Created at,Replied at,Hours to solve\n"
            "1,17850,2024-01-05 09:00:00,2024-01-05 10:00:00,2\n"
            "2,13047,2024-01-07 10:00:00,,5\n"  # no reply, yet hours after it
            "3,12583,2024-01-09 10:00:00,,\n"  # neither: nothing to read
            "4,17850,2024-01-10 10:00:00,2024-01-10 11:00:00,1e9\n")
    mapping = {"path": "tickets.csv", "rename": {"Id": "ticket_id", "Requester": "customer_id",
                                                  "Created at": "opened_at", "Replied at": "first_response_at"},
               "after": {"closed_at": {"column": "Hours to solve", "unit": "hours", "from": "first_response_at"}}}
    report = zendesk(tmp_path, mapping, text)["sources"]["support_tickets"]
    tickets = validated(tmp_path, "support_tickets")
    assert tickets["ticket_id"].tolist() == ["1", "3"]
    assert tickets["closed_at"].tolist() == [ts("2024-01-05 12:00"), pd.NaT]
    assert quarantined(tmp_path, "support_tickets")["reason"].tolist() == [
        "Hours to solve: a duration after Replied at, which this row leaves blank",
        "Hours to solve: more than 100 years of hours after Replied at"]
    assert report["notes"][0] == ("1 row has closed_at from Hours to solve (hours after Replied at); 1 with it blank "
                                  "has none")


def test_deliveries_given_as_days_after_the_order_in_a_further_export(tmp_path):
    orders = "order_id,customer_id,ordered_at,amount,delivered_at\no1,17850,2024-01-02 10:00:00,10,2024-01-04 09:00\n"
    shop = ("Order,Customer,Placed,Total,Days to deliver\n"
            "s1,13047,2024-01-03 10:00:00,12,1.5\ns2,12583,2024-01-04 10:00:00,15,\n")
    sources = {"transactions": {"path": "t.csv", "other_exports": [{
        "path": "shop.csv", "rename": {"Order": "order_id", "Customer": "customer_id", "Placed": "ordered_at",
                                       "Total": "amount"},
        "after": {"delivered_at": {"column": "Days to deliver", "unit": "days", "from": "ordered_at"}}}]}}
    report = run(tmp_path, sources, {"t.csv": orders, "shop.csv": shop})["sources"]["transactions"]
    assert validated(tmp_path, "transactions")["delivered_at"].tolist() == [ts("2024-01-04 09:00"),
                                                                            ts("2024-01-04 22:00"), pd.NaT]
    assert report["derived"] == {"delivered_at": "ordered_at + Days to deliver × 1 day"}
    assert ("1 row has delivered_at from Days to deliver (days after Placed); 1 with it blank has none"
            in report["notes"])


def test_a_duration_column_or_from_time_the_files_lack_and_a_target_the_file_has_are_errors_naming_the_key(tmp_path):
    solved_unmapped = {"Id": "ticket_id", "Requester": "customer_id", "Created at": "opened_at"}
    for after, message in [
        ({"first_response_at": {"column": "First reply time", "unit": "minutes", "from": "opened_at"}},
         r"source support_tickets: sources\.support_tickets\.after\.first_response_at\.column: column 'First reply "
         r"time' is not in .*tickets\.csv \(its columns: Id, Requester, Created at, .*\); name a column of the export"),
        ({"closed_at": {"column": "Full resolution time in minutes", "unit": "minutes", "from": "first_response_at"}},
         r"source support_tickets: sources\.support_tickets\.after\.closed_at\.from: .*tickets\.csv has no "
         r"first_response_at \(its columns: .*\); map the file's column onto first_response_at with "
         r"sources\.support_tickets\.rename"),
    ]:  # (closed_at renamed from Solved at and given by after too is a config error: tests/test_config.py)
        mapping = {**ZENDESK_MAPPING, "rename": solved_unmapped, "after": after}
        with pytest.raises(IngestError, match=message):
            zendesk(tmp_path, mapping)
    own = ZENDESK.replace("Solved at", "closed_at")
    mapping = {**ZENDESK_MAPPING, "rename": solved_unmapped,
               "after": {"closed_at": {"column": "Full resolution time in minutes", "unit": "minutes",
                                       "from": "opened_at"}}}
    with pytest.raises(IngestError, match=r"tickets\.csv has a column 'closed_at' for closed_at, which "
                                          r"sources\.support_tickets\.after fills too; keep it aside with "
                                          r"sources\.support_tickets\.rename: \{closed_at: <another name>\}, or remove "
                                          r"the after entry"):
        zendesk(tmp_path, mapping, own)
    zendesk(tmp_path, {**mapping, "rename": {**mapping["rename"], "closed_at": "solved_date"}}, own)
    assert validated(tmp_path, "support_tickets")["closed_at"].tolist()[:2] == [ts("2024-01-05 12:00"),
                                                                               ts("2024-01-08 10:00")]


def test_without_after_a_duration_column_is_an_extra_column_as_before(tmp_path):
    mapping = {key: value for key, value in ZENDESK_MAPPING.items() if key != "after"}
    report = zendesk(tmp_path, mapping)["sources"]["support_tickets"]
    assert validated(tmp_path, "support_tickets")["first_response_at"].isna().all()
    assert report["validated_rows"] == 6 and report["derived"] == {}
    assert not any("First reply time" in note for note in report["notes"])


# RavenStack's SaaS ticket export (its first rows): submitted_at and closed_at are dates, the first response a number of
# minutes after submission and the resolution a number of hours.
RAVENSTACK_ROWS = """\
ticket_id,account_id,submitted_at,closed_at,resolution_time_hours,priority,first_response_time_minutes,satisfaction_score,escalation_flag
T-0024de,A-712f1c,2023-07-27,2023-07-28,27,high,74,,FALSE
T-4d04b9,A-e43bf7,2024-07-08,2024-07-09,27,urgent,144,,FALSE
T-d5e12f,A-0f3e88,2024-10-17,2024-10-17,19,urgent,93,4,FALSE
T-dfce9a,A-4c56c9,2024-09-08,2024-09-09,47,medium,126,5,FALSE
T-c59f77,A-6f8ad2,2024-11-30,2024-12-01,26,medium,8,,FALSE
T-90f06d,A-94c3cd,2023-07-27,2023-07-27,9,medium,60,,FALSE
"""
RAVENSTACK_MAPPING = {
    "rename": {"account_id": "customer_id", "submitted_at": "opened_at", "closed_at": "closed_date"},
    "after": {"first_response_at": {"column": "first_response_time_minutes", "unit": "minutes", "from": "opened_at"},
              "closed_at": {"column": "resolution_time_hours", "unit": "hours", "from": "opened_at"}}}
RAVENSTACK_ORDERS = "order_id,customer_id,ordered_at,amount\no1,A-712f1c,2023-07-01,10\no2,A-0f3e88,2024-12-30,10\n"


def test_ravenstacks_minutes_and_hours_give_its_tickets_first_response_and_closing_times(tmp_path):
    report = run(tmp_path, {"transactions": {"path": "t.csv"},
                            "support_tickets": {"path": "tickets.csv", **RAVENSTACK_MAPPING}},
                 {"t.csv": RAVENSTACK_ORDERS, "tickets.csv": RAVENSTACK_ROWS})["sources"]["support_tickets"]
    tickets = validated(tmp_path, "support_tickets")
    assert tickets["first_response_at"].tolist()[:3] == [ts("2023-07-27 01:14"), ts("2024-07-08 02:24"),
                                                         ts("2024-10-17 01:33")]
    assert tickets["closed_at"].tolist()[:3] == [ts("2023-07-28 03:00"), ts("2024-07-09 03:00"), ts("2024-10-17 19:00")]
    assert (report["input_rows"], report["validated_rows"], report["quarantined_rows"]) == (6, 6, 0)
    assert report["notes"][:2] == [
        "6 rows have first_response_at from first_response_time_minutes (minutes after submitted_at); submitted_at "
        "holds dates without a time of day, so first_response_at is counted from the start of that day: the minutes "
        "from one to the other are as written, its time of day is not known",
        "6 rows have closed_at from resolution_time_hours (hours after submitted_at); submitted_at holds dates without "
        "a time of day, so closed_at is counted from the start of that day: the hours from one to the other are as "
        "written, its time of day is not known"]
    assert not any("both hold dates" in note or "closed before their first response" in note
                   for note in report["notes"])  # the hours are the export's own, not whole days


def test_parse_source_alone_gives_no_time_after_a_from_time_the_frame_lacks():
    # read_source refuses such a file (the test above); parse_source, called on a frame in memory, leaves the time empty
    from pipeline.config import SourceConfig
    from pipeline.ingest import parse_source
    from pipeline.sources import RawSource, row_origin

    frame = pd.DataFrame({"ticket_id": ["1"], "customer_id": ["c"], "opened_at": ["2024-01-01"], "Hours": ["2"]},
                         dtype="str")
    source = SourceConfig(path=Path("x.csv"), after={"closed_at": TimeAfter(column="Hours", unit="hours",
                                                                            **{"from": "first_response_at"})})
    parsed = parse_source(RawSource(name="support_tickets", frame=frame, origin=row_origin(["x.csv"], [1]), files=()),
                          source)
    assert parsed.typed["closed_at"].isna().all() and parsed.problems.empty
