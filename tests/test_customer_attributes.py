"""Customer attributes beyond region and acquisition channel: `sources.customers.attributes`.

The customers export's columns named there are validated as `attribute_<slug>` String columns, read by every
reader of the validated customers, and become one categorical feature each (family "attributes")."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from conftest import minimal_config
from pipeline.config import CustomerAttribute, FeaturesConfig, ReadOptions, config_from_dict
from pipeline.contract import attribute_column, attribute_slug, conform
from pipeline.errors import FeatureError, IngestError
from pipeline.events import Events, load_events
from pipeline.features import build_features, event_tables_from_frames, feature_names, feature_specs, features_from_tables
from pipeline.features.store import (
    check_settings_match,
    feature_settings,
    read_snapshots,
    recorded_settings,
    settings_fingerprint,
)
from pipeline.ingest import attribute_values
from pipeline.ingest_notes import identifier_attribute_notes
from pipeline.io import write_parquet
from pipeline.run import features as features_runner
from pipeline.run import ingest as ingest_runner
from pipeline.run.features import features_and_labels_streamed, read_validated
from pipeline.snapshot import cut_events
from pipeline.sources import RawSource, row_origin


@pytest.mark.parametrize(("name", "slug"), [
    ("Segment", "segment"), ("Age band", "age_band"), ("Plan (2024)", "plan_2024"), ("  Gender ", "gender"),
    ("Género", "genero"), ("e-mail__Address", "e_mail_address"), ("2024", "2024"), ("性别", ""),
])
def test_attribute_slug_lower_case_ascii_with_underscores(name, slug):
    assert attribute_slug(name) == slug
    assert attribute_column(name) == f"attribute_{slug}"


def test_conform_keeps_the_attribute_columns_of_customers_only():
    customers = pd.DataFrame({"attribute_segment": ["gold", None], "customer_id": ["a", "b"], "other": [1, 2]})
    expected = pd.DataFrame({
        "customer_id": pd.Series(["a", "b"], dtype="str"),
        "signup_at": pd.Series([pd.NaT, pd.NaT], dtype="datetime64[us, UTC]"),
        "region": pd.Series([None, None], dtype="str"),
        "acquisition_channel": pd.Series([None, None], dtype="str"),
        "attribute_segment": pd.Series(["gold", None], dtype="str"),
    })
    assert_frame_equal(conform(customers, "customers"), expected)
    feedback = pd.DataFrame({"customer_id": ["a"], "submitted_at": ["2024-01-01"], "kind": ["nps"], "score": [9.0],
                             "attribute_segment": ["gold"]})
    assert "attribute_segment" not in conform(feedback, "feedback").columns


# --- ingest ---------------------------------------------------------------------------------------------------------

ORDERS = "order_id,customer_id,ordered_at,amount\no1,c1,2024-01-05,10\no2,c2,2024-01-06,20\no3,c3,2024-01-07,30\n"
CUSTOMERS = ("Id,Segment,Gender,Age band,Note\n"
             "c1, Gold ,F,18-25,likes jazz\n"
             "c2,  ,M,,\n"
             "c3,Silver,,26-40,calls often\n")


def ingest_customers(folder: Path, customers: dict, *, text: str = CUSTOMERS) -> dict:
    """`churn ingest` of ORDERS and the customers export `text` mapped with `customers` (a config of that source)."""
    (folder / "t.csv").write_text(ORDERS, encoding="utf-8")
    (folder / "c.csv").write_text(text, encoding="utf-8")
    raw = minimal_config(paths={"data_dir": "out", "models_dir": "models"},
                         sources={"transactions": {"path": "t.csv"},
                                  "customers": {"path": "c.csv", "rename": {"Id": "customer_id"}, **customers}})
    return ingest_runner.run(config_from_dict(raw, base_dir=folder), quiet=True)


def test_ingest_keeps_the_listed_columns_as_attribute_text_after_the_contract_columns(tmp_path):
    """Segment and Gender become attribute_segment and attribute_gender (stripped, blank -> null); they do not go to
    the extra file too, and the note names only the columns still unread, pointing at the setting."""
    report = ingest_customers(tmp_path, {"attributes": ["Segment", "Gender"]})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "customers.parquet")
    assert list(validated.columns) == ["customer_id", "signup_at", "region", "acquisition_channel",
                                       "attribute_segment", "attribute_gender"]
    expected = pd.DataFrame({"attribute_segment": pd.Series(["Gold", None, "Silver"], dtype="str"),
                             "attribute_gender": pd.Series(["F", "M", None], dtype="str")})
    assert_frame_equal(validated[["attribute_segment", "attribute_gender"]], expected)
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "customers.parquet")
    assert list(extra.columns) == ["validated_row", "source_file", "source_row", "Age band", "Note"]
    assert report["sources"]["customers"]["extra_columns"] == ["Age band", "Note"]
    assert report["sources"]["customers"]["notes"] == [
        "2 columns of the customers export are not read by the model (it reads signup_at, region, acquisition_channel and the columns of sources.customers.attributes): "
        "Age band, Note; kept aside in validated/extra/customers.parquet, unused (list those that describe a customer, "
        "such as a segment or a plan, in sources.customers.attributes; or map one onto a contract attribute with "
        "sources.customers.rename only if it means that attribute)"]


def test_ingest_with_every_column_listed_writes_no_extra_file_and_no_note(tmp_path):
    report = ingest_customers(tmp_path, {"attributes": ["Segment", "Gender", "Age band", "Note"]})
    assert not (tmp_path / "out" / "validated" / "extra" / "customers.parquet").exists()
    assert report["sources"]["customers"]["notes"] == []
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "customers.parquet")
    assert validated["attribute_age_band"].tolist()[::2] == ["18-25", "26-40"]


def test_a_listed_column_the_customers_file_lacks_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(IngestError, match=r"^sources\.customers\.attributes: column 'Plan' is not in the files \(their "
                                          r"columns: Id, Segment, Gender, Age band, Note\); name a column of the "
                                          r"export, as it is written there$"):
        ingest_customers(tmp_path, {"attributes": ["Segment", "Plan"]})
    (tmp_path / "more.csv").write_text("Id,Segment\nc9,Gold\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"^sources\.customers\.attributes: column 'Gender' is not in the files of "
                                          r"sources\.customers\.other_exports\[0\] \(their columns: Id, Segment\)"):
        ingest_customers(tmp_path, {"attributes": ["Segment", "Gender"],
                           "other_exports": [{"path": "more.csv", "rename": {"Id": "customer_id"}}]})


def test_attribute_values_of_typed_columns_read_as_the_export_shows_them(tmp_path):
    """A Parquet export types an age band as a number and a flag as a boolean: the text a CSV would hold."""
    frame = pd.DataFrame({"Age": [30.0, None, 41.5], "Member": pd.array([True, False, None], dtype="boolean")})
    raw = RawSource(name="customers", frame=frame, origin=row_origin(["c.parquet"], [3]), files=())
    values = attribute_values(raw, [CustomerAttribute(column="Age"), CustomerAttribute(column="Member")])
    assert values["attribute_age"].tolist()[::2] == ["30", "41.5"] and pd.isna(values["attribute_age"][1])
    assert values["attribute_member"].tolist()[:2] == ["true", "false"] and pd.isna(values["attribute_member"][2])


def test_customers_whose_rows_differ_in_an_attribute_are_named_in_the_note(tmp_path):
    text = "Id,Segment\nc1,Gold\nc1,Silver\nc2,Gold\n"
    report = ingest_customers(tmp_path, {"attributes": ["Segment"]}, text=text)
    assert any(note.startswith("1 customer is on several rows of one file that give different attribute values "
                               "(attribute_segment: 1; e.g. 'c1': Gold, Silver)")
               for note in report["sources"]["customers"]["notes"])


# --- features -------------------------------------------------------------------------------------------------------

AS_OF = dt.date(2024, 7, 1)
CFG = FeaturesConfig(snapshots={"dates": [AS_OF]}, windows_days=[30], btyd=False,
                     customer_attributes=["Segment", "Age band"])


def orders_of(*customers: str) -> pd.DataFrame:
    """One order of 10.00 on 2024-06-01 per customer named (a name twice: two orders)."""
    return pd.DataFrame({"order_id": [f"o{i}" for i in range(len(customers))], "customer_id": list(customers),
                         "ordered_at": pd.Timestamp("2024-06-01", tz="UTC"), "amount": 10.0})


def _customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "x"],
        # c signs up after t: not known at t, like a customer absent from the customers source (d)
        "signup_at": [pd.Timestamp("2023-01-01", tz="UTC"), None, pd.Timestamp("2024-08-01", tz="UTC"), None],
        "region": ["north", None, "south", "west"],
        "attribute_segment": ["Gold", "Silver", "Gold", "Bronze"],  # x never bought: no feature row
        "attribute_age_band": ["18-25", None, "26-40", "41+"],
        "attribute_age": [19.0, 33.5, None, 44.0],
    })


def test_attribute_features_hand_computed():
    """Known at t: the customer's value (null where the export gave none); not known at t (signed up later) or absent
    from the customers source: null, exactly like region."""
    events = Events.from_frames(transactions=orders_of("a", "b", "c", "d"), customers=_customers())
    features = build_features(events, as_of=AS_OF, cfg=CFG)
    expected = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "region": ["north", None, None, None],
        "attribute_segment": ["Gold", "Silver", None, None],
        "attribute_age_band": ["18-25", None, None, None],
    }, dtype="str")
    assert_frame_equal(features[list(expected.columns)], expected)
    assert list(features.columns)[-3:] == ["acquisition_channel", "attribute_segment", "attribute_age_band"]
    assert list(features.columns) == ["customer_id", *feature_names(CFG)]


def test_attribute_feature_specs_say_the_value_as_it_is():
    specs = {spec.name: spec for spec in feature_specs(CFG) if spec.name.startswith("attribute_")}
    assert list(specs) == ["attribute_segment", "attribute_age_band"]
    segment = specs["attribute_segment"]
    assert (segment.family, segment.kind, segment.direction) == ("attributes", "categorical", "none")
    assert segment.description == "Customer attribute Segment from the customers export (null when unknown)."
    assert [phrase.text for phrase in segment.reason.variants()] == ["their Segment is {attribute_segment}"]
    assert [s.name for s in feature_specs(CFG.model_copy(update={"customer_attributes": []}))] == [
        name for name in feature_names(CFG) if not name.startswith("attribute_")]
    braces = feature_specs(CFG.model_copy(update={"customer_attributes": ["Plan {2024}"]}))[-1]
    assert braces.reason.variants()[0].text.format(attribute_plan_2024="Pro") == "their Plan {2024} is Pro"


def test_validated_customers_without_a_listed_attribute_column_ask_for_ingest_again(tmp_path):
    """A file validated before sources.customers.attributes listed the column: every reader says to re-run ingest."""
    events = Events.from_frames(transactions=orders_of("a"), customers=_customers().drop(columns="attribute_age_band"))
    message = (r"^the validated customers lack attribute_age_band \(sources\.customers\.attributes\): they were "
               r"validated before the setting listed it; re-run `churn ingest`$")
    with pytest.raises(FeatureError, match=message):
        build_features(events, as_of=AS_OF, cfg=CFG)
    for name, frame in events.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    with pytest.raises(FeatureError, match=message):
        read_validated(tmp_path, attributes=CFG.attribute_columns)
    # without rows (or without a customers source) there is nothing to read: null
    empty = build_features(Events.from_frames(transactions=orders_of("a")), as_of=AS_OF, cfg=CFG)
    assert empty["attribute_segment"].isna().all()


def test_every_reader_of_validated_customers_gives_the_same_attribute_features(tmp_path):
    """Events (pandas), the polars runner's reader (read_validated), scoring's streamed path and a cut of the events;
    categories as text, Age (kind number) as float64."""
    cfg = CFG.model_copy(update={"customer_attributes": ["Segment", "Age band", "Age"], "number_attributes": ["Age"]})
    events = Events.from_frames(transactions=orders_of("a", "b", "c", "d"), customers=_customers())
    for name, frame in events.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    expected = build_features(events, as_of=AS_OF, cfg=cfg)
    assert expected["attribute_age"].tolist()[:2] == [19.0, 33.5] and expected["attribute_age"][2:].isna().all()
    assert_frame_equal(build_features(load_events(tmp_path), as_of=AS_OF, cfg=cfg), expected)
    frames = read_validated(tmp_path, attributes=cfg.attribute_columns)
    assert frames["customers"].columns[-3:] == ["attribute_segment", "attribute_age_band", "attribute_age"]
    tables = event_tables_from_frames(frames, attributes=cfg.attribute_columns)
    assert_frame_equal(features_from_tables(tables, as_of=AS_OF, cfg=cfg), expected)
    streamed, _ = features_and_labels_streamed(frames, as_of=AS_OF, labels_as_of=AS_OF - dt.timedelta(days=90),
                                               cfg=cfg.model_copy(update={"partition_rows": 1}), horizon_days=90)
    assert_frame_equal(streamed, expected)
    assert_frame_equal(build_features(cut_events(events, as_of=AS_OF), as_of=AS_OF, cfg=cfg), expected)


def test_feature_files_record_the_attributes_and_training_refuses_files_built_without_them():
    with_attributes = feature_settings(CFG, inputs={})
    assert with_attributes["customer_attributes"] == ["Segment", "Age band"]
    without = feature_settings(CFG.model_copy(update={"customer_attributes": []}), inputs={})
    assert "customer_attributes" not in without  # files built before the setting keep their fingerprint
    recorded = {"fingerprint": settings_fingerprint(without), "settings": without}
    with pytest.raises(FeatureError, match=r"customer_attributes \[\] vs \['Segment', 'Age band'\], snapshots vs "
                                           r"config\): run `churn features`"):
        check_settings_match(recorded, CFG, features_dir=Path("features"))


# --- an identifier listed as an attribute ---------------------------------------------------------------------------

LISTED = [CustomerAttribute(column="Email"), CustomerAttribute(column="Segment")]
EMAIL_NOTE = ("customer attribute Email (attribute_email) has {distinct} distinct values among the {holders} customers "
              "holding one: nearly one per customer, it names them (an e-mail, a name, a note) rather than grouping "
              "them, so the model learns nothing from it that holds for other customers and a reason would quote it; "
              "leave it out of sources.customers.attributes")


def test_an_attribute_with_nearly_one_value_per_customer_is_noted():
    """More distinct values than max(50, half the customers holding one): 51 of 60 names them; 50 (the floor), or 30
    of 60 (half), does not; nulls are no value."""
    def customers(distinct: int, holders: int, rows: int = 60) -> pd.DataFrame:
        emails = [f"p{i % distinct}@x.com" for i in range(holders)] + [None] * (rows - holders)
        return pd.DataFrame({"attribute_email": emails, "attribute_segment": ["Gold", "Silver"] * (rows // 2)})

    assert identifier_attribute_notes(customers(51, 60), LISTED) == [EMAIL_NOTE.format(distinct=51, holders=60)]
    assert identifier_attribute_notes(customers(50, 60), LISTED) == []  # max(50, 30): 50 is not above it
    large = pd.DataFrame({"attribute_email": [f"p{i % 101}" for i in range(200)] + [None] * 100})
    assert len(identifier_attribute_notes(large, LISTED)) == 1  # 101 > max(50, 100)
    half = pd.DataFrame({"attribute_email": [f"p{i % 101}" for i in range(202)]})
    assert identifier_attribute_notes(half, LISTED) == []  # 101 of 202: half, not above it
    assert identifier_attribute_notes(customers(51, 60), []) == []


def test_a_quantity_listed_as_a_category_is_told_to_be_a_number_and_a_number_is_never_an_identifier():
    """Balances written as text, each nearly its own: the note says to list it as a number (read with the source's
    decimal comma); the same column of kind number, with as many values, is no identifier."""
    balances = pd.DataFrame({"attribute_balance": [f"{1000 + i},5" for i in range(80)]})
    category = [CustomerAttribute(column="Balance")]
    assert identifier_attribute_notes(balances, category, read=ReadOptions(decimal=",")) == [
        "customer attribute Balance (attribute_balance) has 80 distinct values among the 80 customers holding one, "
        "all numbers: as a category each value is a group of its own, so the model learns nothing from it that holds "
        "for other customers; if it is a quantity (an age, an income, a balance), list it as {column: Balance, kind: "
        "number}, else (a code, an id) leave it out of sources.customers.attributes"]
    assert identifier_attribute_notes(balances, category)[0].endswith("leave it out of sources.customers.attributes")
    assert "all numbers" not in identifier_attribute_notes(balances, category)[0]  # '1000,5' is no number with '.'
    numbers = pd.DataFrame({"attribute_balance": np.arange(80, dtype=float) + 0.5})
    assert identifier_attribute_notes(numbers, [CustomerAttribute(column="Balance", kind="number")]) == []


def test_churn_ingest_notes_and_warns_once_about_an_identifier_attribute(tmp_path, caplog):
    """The warning belongs to the data: `churn ingest` gives it (in the customers' notes and once in the log), from
    the validated customers it holds; `churn features` no longer reads the customers file for it."""
    people = "Id,Email,Segment\n" + "".join(f"c{i},c{i:03d}@shop.com,{'Gold' if i % 2 else 'Silver'}\n"
                                            for i in range(80))
    orders = "order_id,customer_id,ordered_at,amount\n" + "".join(f"o{i},c{i},2024-01-05,10\n" for i in range(80))
    (tmp_path / "t.csv").write_text(orders, encoding="utf-8")
    (tmp_path / "c.csv").write_text(people, encoding="utf-8")
    raw = minimal_config(snapshots={"dates": ["2024-07-01"]}, paths={"data_dir": "out", "models_dir": "models"},
                         sources={"transactions": {"path": "t.csv"},
                                  "customers": {"path": "c.csv", "rename": {"Id": "customer_id"},
                                                "attributes": ["Email", "Segment"]}},
                         features={"btyd": False})
    cfg = config_from_dict(raw, base_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = ingest_runner.run(cfg, quiet=True)
    note = EMAIL_NOTE.format(distinct=80, holders=80)
    assert note in report["sources"]["customers"]["notes"]
    assert caplog.text.count("customer attribute Email") == 1 and "customer attribute Segment" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        summary = features_runner.run(cfg, quiet=True)
    assert "customer attribute Email" not in caplog.text and "attribute_warnings" not in summary


def _features_workspace(folder: Path, customers: pd.DataFrame, attributes: list):
    raw = minimal_config(snapshots={"dates": ["2024-07-01"]}, paths={"data_dir": "out", "models_dir": "models"},
                         sources={"transactions": {"path": "t.csv"},
                                  "customers": {"path": "c.csv", "attributes": attributes}},
                         features={"btyd": False})
    cfg = config_from_dict(raw, base_dir=folder)
    for name, frame in Events.from_frames(transactions=orders_of(*customers["customer_id"]), customers=customers).items():
        write_parquet(frame, cfg.validated_dir / f"{name}.parquet")
    return cfg


def test_churn_features_writes_the_attributes_and_records_them(tmp_path):
    people = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(80)],
                           "attribute_email": [f"c{i:03d}@shop.com" for i in range(80)],
                           "attribute_segment": ["Gold", "Silver"] * 40})
    cfg = _features_workspace(tmp_path, people, ["Email", "Segment"])
    features_runner.run(cfg, quiet=True)
    table = read_snapshots(cfg.features_dir)
    assert table["attribute_segment"].tolist()[:2] == ["Gold", "Silver"]
    assert recorded_settings(cfg.features_dir)["settings"]["customer_attributes"] == ["Email", "Segment"]
