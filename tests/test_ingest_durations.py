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
from pipeline.config import FeaturesConfig, ReadOptions, TimeAfter, config_from_dict
from pipeline.durations import durations_read
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
        micro = durations_read(durations, unit=unit, read=ReadOptions())["microseconds"]
        pd.testing.assert_series_equal(time_after(start, micro), pd.Series(
            [ts(t) if t else pd.NaT for t in times], dtype="datetime64[us, UTC]"), obj=unit)
    tenth = durations_read(pd.Series([0.1] * 5), unit="minutes", read=ReadOptions())["microseconds"]
    assert time_after(start, tenth).iloc[0] == ts("2024-03-30 23:00:06")  # not 5.999..


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
        "First reply time in minutes: not a duration (the forms read: a number of minutes; a clock, 36:15:00 or 1:30 "
        "as m:ss; days and a clock, 1 day, 2:03:04 or 1 days 02:03:04; ISO 8601, PT1H30M or P1DT2H; words, 2h 30m or "
        "45 min or 1.5 hours)")


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


OPENED_ONLY = {"Id": "ticket_id", "Requester": "customer_id", "Created at": "opened_at"}
# A Freshdesk export: the first response 'in hrs', written as H:MM:SS text, beside numbers and other text forms a
# column may mix (a spreadsheet saved as CSV, a merge of two exports).
FRESHDESK = ("Ticket ID,Contact ID,Created time,First response time (in hrs)\n"
             "1,17850,2024-01-05 09:00:00,00:12:34\n"
             "2,13047,2024-01-05 09:00:00,36:15:00\n"  # past 24 hours
             "3,12583,2024-01-05 09:00:00,2.5\n"  # a number: hours
             "4,17850,2024-01-05 09:00:00,\n"  # not answered yet
             "5,13047,2024-01-05 09:00:00,1:30\n"  # h:mm, by unit: hours
             "6,12583,2024-01-05 09:00:00,PT1H30M0.000001S\n"
             "7,17850,2024-01-05 09:00:00,\"1 day, 2:03:04.500000\"\n"  # Python's text, an Excel duration cell's
             "8,13047,2024-01-05 09:00:00,2h 30m\n"
             "9,12583,2024-01-05 09:00:00,soon\n"
             "10,17850,2024-01-05 09:00:00,-0:05:00\n")
FRESHDESK_MAPPING = {"path": "tickets.csv", "rename": {"Ticket ID": "ticket_id", "Contact ID": "customer_id",
                                                        "Created time": "opened_at"},
                     "after": {"first_response_at": {"column": "First response time (in hrs)", "unit": "hours",
                                                     "from": "opened_at"}}}


def test_durations_written_as_text_give_times_to_the_microsecond_and_the_note_counts_each_form(tmp_path):
    report = zendesk(tmp_path, FRESHDESK_MAPPING, FRESHDESK)["sources"]["support_tickets"]
    tickets = validated(tmp_path, "support_tickets")
    assert tickets["ticket_id"].tolist() == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert tickets["first_response_at"].tolist() == [
        ts("2024-01-05 09:12:34"), ts("2024-01-06 21:15:00"), ts("2024-01-05 11:30:00"), pd.NaT,
        ts("2024-01-05 10:30:00"), ts("2024-01-05 10:30:00.000001"), ts("2024-01-06 11:03:04.5"),
        ts("2024-01-05 11:30:00")]
    assert quarantined(tmp_path, "support_tickets")["reason"].tolist() == [
        "First response time (in hrs): not a duration (the forms read: a number of hours; a clock, 36:15:00 or 1:30 "
        "as h:mm; days and a clock, 1 day, 2:03:04 or 1 days 02:03:04; ISO 8601, PT1H30M or P1DT2H; words, 2h 30m or "
        "45 min or 1.5 hours)",
        "First response time (in hrs): negative (the first_response_at it gives would come before Created time)"]
    assert report["notes"][0] == (
        "7 rows have first_response_at from First response time (in hrs) (hours after Created time; 6 of them written "
        "as text: 2 as H:MM:SS (e.g. '00:12:34'), 1 as h:mm by unit: hours (e.g. '1:30'), 1 as days and H:MM:SS (e.g. "
        "'1 day, 2:03:04.500000'), 1 in ISO 8601 (e.g. 'PT1H30M0.000001S'), 1 in words (e.g. '2h 30m')); 1 with it "
        "blank has none")


def test_a_two_part_clock_the_unit_does_not_read_is_quarantined_naming_the_key_and_words_days_are_noted(tmp_path):
    text = ("Id,Requester,Created at,Talk time\n"
            "1,17850,2024-01-05 09:00:00,1:30\n"  # minutes:seconds? hours:minutes? unit: seconds reads neither
            "2,13047,2024-01-05 09:00:00,90\n"
            "3,12583,2024-01-05 09:00:00,1d 4h\n")
    mapping = {"path": "tickets.csv", "rename": OPENED_ONLY, "after": {
        "first_response_at": {"column": "Talk time", "unit": "seconds", "from": "opened_at"}}}
    report = zendesk(tmp_path, mapping, text)["sources"]["support_tickets"]
    assert validated(tmp_path, "support_tickets")["first_response_at"].tolist() == [ts("2024-01-05 09:01:30"),
                                                                                    ts("2024-01-06 13:00:00")]
    assert quarantined(tmp_path, "support_tickets")["reason"].tolist() == [
        "Talk time: a two-part clock (hours:minutes or minutes:seconds?), read as h:mm with unit: hours and as m:ss "
        "with unit: minutes, not with unit: seconds; set sources.support_tickets.after.first_response_at.unit to the "
        "unit of its first part"]
    assert report["notes"][0] == ("2 rows have first_response_at from Talk time (seconds after Created at; 1 of them "
                                  "written as text: 1 in words with days, a day as 24 hours (e.g. '1d 4h'))")
    minutes = {**mapping, "after": {"first_response_at": {**mapping["after"]["first_response_at"], "unit": "minutes"}}}
    (tmp_path / "minutes").mkdir()
    zendesk(tmp_path / "minutes", minutes, text)
    assert validated(tmp_path / "minutes", "support_tickets")["first_response_at"].tolist() == [
        ts("2024-01-05 09:01:30"), ts("2024-01-05 10:30:00"), ts("2024-01-06 13:00:00")]  # 1:30 as m:ss; 90 minutes


# Minutes to the first reply, and the hours from that reply to the resolution (a time after a time after the opening).
CHAINED = ("Id,Requester,Created at,First reply (min),Resolution after reply (h)\n"
           "1,17850,2024-01-05 09:00:00,30,2\n"
           "2,13047,2024-01-07 10:00:00,,5\n"  # no reply, yet hours after it
           "3,12583,2024-01-09 10:00:00,,\n"  # neither: an open ticket
           "4,17850,2024-01-10 10:00:00,-5,1\n"  # a bad reply time: its own reason only
           "5,13047,2024-01-11 10:00:00,0:00:30.5,1:30:00\n")
CHAINED_MAPPING = {"path": "tickets.csv", "rename": OPENED_ONLY, "after": {  # listed in the other order than computed
    "closed_at": {"column": "Resolution after reply (h)", "unit": "hours", "from": "first_response_at"},
    "first_response_at": {"column": "First reply (min)", "unit": "minutes", "from": "opened_at"}}}


def test_a_time_after_a_time_that_after_gives_is_computed_after_it(tmp_path):
    report = zendesk(tmp_path, CHAINED_MAPPING, CHAINED)["sources"]["support_tickets"]
    tickets = validated(tmp_path, "support_tickets")
    assert tickets["ticket_id"].tolist() == ["1", "3", "5"]
    assert tickets["first_response_at"].tolist() == [ts("2024-01-05 09:30"), pd.NaT, ts("2024-01-11 10:00:30.5")]
    assert tickets["closed_at"].tolist() == [ts("2024-01-05 11:30"), pd.NaT, ts("2024-01-11 11:30:30.5")]
    bad = quarantined(tmp_path, "support_tickets")
    assert bad["Id"].tolist() == ["2", "4"]
    assert bad["reason"].tolist() == [
        "Resolution after reply (h): a duration after first_response_at (= opened_at + First reply (min) × 1 minute), "
        "which this row leaves blank",
        "First reply (min): negative (the first_response_at it gives would come before Created at)"]
    assert report["derived"] == {"closed_at": "first_response_at + Resolution after reply (h) × 1 hour",
                                 "first_response_at": "opened_at + First reply (min) × 1 minute"}
    assert report["notes"][:2] == [
        "2 rows have first_response_at from First reply (min) (minutes after Created at; 1 of them written as text: 1 "
        "as H:MM:SS (e.g. '0:00:30.5')); 2 with it blank have none",
        "2 rows have closed_at from Resolution after reply (h) (hours after first_response_at (= opened_at + First "
        "reply (min) × 1 minute); 1 of them written as text: 1 as H:MM:SS (e.g. '1:30:00')); 1 with it blank has "
        "none"]


def test_an_excel_duration_cell_reads_as_pythons_text_and_gives_its_time(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Ticket ID", "Contact ID", "Created time", "First response time (in hrs)"])
    sheet.append([1, 17850, "2024-01-05 09:00:00", dt.timedelta(hours=36, minutes=15, seconds=1)])
    sheet["D2"].number_format = "[h]:mm:ss"  # a duration cell: the reader gives '1 day, 12:15:01'
    sheet.append([2, 13047, "2024-01-05 09:00:00", dt.time(1, 30)])
    sheet["D3"].number_format = "hh:mm:ss"  # a time of day cell: '01:30:00'
    book.save(tmp_path / "tickets.xlsx")
    run(tmp_path, {"transactions": {"path": "t.csv"}, "support_tickets": {**FRESHDESK_MAPPING, "path": "tickets.xlsx"}},
        {"t.csv": TRANSACTIONS})
    assert validated(tmp_path, "support_tickets")["first_response_at"].tolist() == [ts("2024-01-06 21:15:01"),
                                                                                    ts("2024-01-05 10:30:00")]
