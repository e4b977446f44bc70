"""Customer attributes of kind number: `sources.customers.attributes: [Segment, {column: Age, kind: number}]`.

Ingest reads them with the customers source's number settings into float64 `attribute_<slug>` columns (a cell that
holds no number left empty and noted); every reader keeps them as numbers; each is a numeric feature, said in a
true sentence; feature files record which attributes are numbers. (Their wording, the model's refusal of features of
another kind and the leak check of a number: test_wording, test_model, test_evaluate.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from test_customer_attributes import ingest_customers, orders_of
from pipeline.config import CustomerAttribute, FeaturesConfig, ReadOptions
from pipeline.contract import conform
from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.features import build_features, event_tables_from_frames, feature_specs, features_from_tables
from pipeline.features.store import check_settings_match, feature_settings, settings_fingerprint
from pipeline.ingest import attribute_values, unread_numbers_notes
from pipeline.reasons import top_reasons
from pipeline.run.features import read_validated
from pipeline.sources import RawSource, row_origin

AGE = CustomerAttribute(column="Age", kind="number")
SEGMENT = CustomerAttribute(column="Segment")

# --- ingest ---------------------------------------------------------------------------------------------------------

def test_a_number_attribute_is_read_with_the_sources_decimal_comma_and_thousands_into_float64(tmp_path):
    text = "Id;Segment;Balance;Age\nc1;Gold;1.234,5;67\nc2;Silver;-12,25; 41 \nc3;Gold;;30,5\n"
    report = ingest_customers(tmp_path, text=text, customers={"read": {"sep": ";", "decimal": ",", "thousands": "."},
                                      "attributes": ["Segment", {"column": "Balance", "kind": "number"},
                                                     {"column": "Age", "kind": "number"}]})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "customers.parquet")
    expected = pd.DataFrame({"attribute_segment": pd.Series(["Gold", "Silver", "Gold"], dtype="str"),
                             "attribute_balance": [1234.5, -12.25, np.nan], "attribute_age": [67.0, 41.0, 30.5]})
    assert_frame_equal(validated[list(expected.columns)], expected)
    assert report["sources"]["customers"]["notes"] == []  # a blank cell is no unread number


def test_an_unreadable_number_is_left_empty_and_noted_with_examples_and_the_row_kept(tmp_path):
    """'unknown' and '4O' hold no number: those cells are empty, the customers' rows (and Segment) kept, a note counts
    them and shows a few; a null word (n/a) is a missing value, not counted."""
    text = "Id,Segment,Age\nc1,Gold,unknown\nc2,Silver,4O\nc3,Gold,n/a\nc4,Gold,52\n"
    report = ingest_customers(tmp_path, text=text,
                              customers={"attributes": ["Segment", {"column": "Age", "kind": "number"}]})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "customers.parquet")
    assert validated["attribute_age"].tolist()[3] == 52.0 and validated["attribute_age"][:3].isna().all()
    assert validated["attribute_segment"].tolist() == ["Gold", "Silver", "Gold", "Gold"]
    customers = report["sources"]["customers"]
    assert (customers["input_rows"], customers["validated_rows"], customers["quarantined_rows"]) == (4, 4, 0)
    assert customers["notes"] == [
        "Age (attribute_age, kind number): 2 cells hold no number and are left empty, the rest of the row kept (e.g. "
        "'unknown', '4O')"]


def test_each_export_reads_its_numbers_with_its_own_settings_and_its_note_names_it(tmp_path):
    (tmp_path / "more.csv").write_text("Id,Age\nc3,30.5\nc4,old\n", encoding="utf-8")
    report = ingest_customers(tmp_path, text="Id;Age\nc1;67,5\nc2;41\n", customers={
        "read": {"sep": ";", "decimal": ","}, "attributes": [{"column": "Age", "kind": "number"}],
        "other_exports": [{"path": "more.csv", "rename": {"Id": "customer_id"}}]})
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "customers.parquet")
    assert validated["attribute_age"].tolist()[:3] == [67.5, 41.0, 30.5] and pd.isna(validated["attribute_age"][3])
    assert report["sources"]["customers"]["notes"] == [
        "Age (attribute_age, kind number) of sources.customers.other_exports[0]: 1 cell holds no number and is left "
        "empty, the rest of the row kept (e.g. 'old')"]


def test_the_unread_note_gives_the_decimal_comma_hint_and_says_when_no_cell_is_a_number():
    frame = pd.DataFrame({"Age": ["12,5", "40,0", "33", None], "Plan": ["basic", "pro", "pro", "basic"]})
    raw = RawSource(name="customers", frame=frame, origin=row_origin(["c.csv"], [4]), files=())
    plan = CustomerAttribute(column="Plan", kind="number")
    values = attribute_values(raw, [AGE, plan])
    assert values["attribute_age"].tolist()[2] == 33.0
    assert unread_numbers_notes(raw, [AGE, plan], values, read=ReadOptions()) == [
        "Age (attribute_age, kind number): 2 cells hold no number (a decimal comma? set sources.customers.read."
        "decimal: ',' and, if the numbers have one, read.thousands) and are left empty, the rest of the row kept (e.g. "
        "'12,5', '40,0')",
        "Plan (attribute_plan, kind number): 4 cells hold no number and are left empty, the rest of the row kept (e.g. "
        "'basic', 'pro'); none of its cells holds a number: if it is no quantity, list it by its name alone (a "
        "category)"]
    assert unread_numbers_notes(raw, [SEGMENT], {}, read=ReadOptions()) == []  # categories are never unread


def test_a_typed_number_column_is_taken_as_it_is_and_an_infinite_one_noted():
    frame = pd.DataFrame({"Age": [30.0, np.inf, None]})
    raw = RawSource(name="customers", frame=frame, origin=row_origin(["c.parquet"], [3]), files=())
    values = attribute_values(raw, [AGE])
    assert values["attribute_age"].dtype == "float64" and values["attribute_age"].tolist()[0] == 30.0
    assert values["attribute_age"][1:].isna().all()
    assert unread_numbers_notes(raw, [AGE], values, read=ReadOptions())[0].startswith(
        "Age (attribute_age, kind number): 1 cell holds no number and is left empty")


def test_conform_keeps_a_number_attribute_as_float64_and_text_as_text():
    customers = pd.DataFrame({"customer_id": ["a", "b"], "attribute_age": [67, None], "attribute_plan": ["pro", None],
                              "attribute_member": [True, False]})
    conformed = conform(customers, "customers")
    assert conformed["attribute_age"].dtype == "float64" and conformed["attribute_age"].tolist()[0] == 67.0
    assert str(conformed["attribute_plan"].dtype) == "str" and str(conformed["attribute_member"].dtype) == "str"


# --- features -------------------------------------------------------------------------------------------------------

AS_OF = dt.date(2024, 7, 1)
CFG = FeaturesConfig(snapshots={"dates": [AS_OF]}, windows_days=[30], btyd=False,
                     customer_attributes=["Segment", "Age"], number_attributes=["Age"])


def _customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "e"],
        # c signs up after t: not known at t, like d (absent from the customers source)
        "signup_at": [pd.Timestamp("2023-01-01", tz="UTC"), None, pd.Timestamp("2024-08-01", tz="UTC"), None],
        "attribute_segment": ["Gold", "Silver", "Gold", None],
        "attribute_age": [67.0, np.nan, 30.0, 25.5],
    })


def test_a_number_attribute_is_a_float_feature_null_when_unknown_at_t():
    events = Events.from_frames(transactions=orders_of("a", "b", "c", "d", "e"), customers=_customers())
    features = build_features(events, as_of=AS_OF, cfg=CFG)
    assert features["attribute_age"].dtype == "float64"
    assert features["attribute_age"].tolist()[::4] == [67.0, 25.5]
    assert features["attribute_age"][1:4].isna().all()  # no value, signed up later, not in the customers source
    assert features["attribute_segment"].tolist()[:2] == ["Gold", "Silver"]
    without_customers = build_features(Events.from_frames(transactions=orders_of("a")), as_of=AS_OF, cfg=CFG)
    assert without_customers["attribute_age"].dtype == "float64" and without_customers["attribute_age"].isna().all()


def test_a_number_attribute_spec_is_numeric_and_says_its_value_beside_the_typical_customers():
    specs = {spec.name: spec for spec in feature_specs(CFG) if spec.name.startswith("attribute_")}
    age = specs["attribute_age"]
    assert (age.family, age.kind, age.direction) == ("attributes", "numeric", "none")
    assert age.description == "Customer attribute Age from the customers export, a number (NaN when unknown)."
    assert specs["attribute_segment"].kind == "categorical"
    assert [phrase.text for phrase in age.reason.variants()] == [
        "their Age is {attribute_age:value}, higher than the typical customer's",
        "their Age is {attribute_age:value}, lower than the typical customer's",
        "their Age is {attribute_age:value}"]


def test_reasons_say_each_customers_own_number_and_its_side_of_the_median():
    """Median of the five scored with an age: 40. Above it 'higher', below it 'lower', at it neither; no value: no
    sentence."""
    index = pd.Index(list("abcdef"), name="customer_id")
    features = pd.DataFrame({"attribute_age": [67.0, 23.5, 40.0, np.nan, 1250.75, 12.0]}, index=index)
    contributions = pd.DataFrame({"attribute_age": [0.4, 0.3, 0.2, 0.5, -0.1, -0.2]}, index=index)
    reasons = top_reasons(contributions, features, specs=feature_specs(CFG), as_of=AS_OF, n=1)["reason_1"]
    assert reasons.tolist()[:3] == ["their Age is 67, higher than the typical customer's",
                                    "their Age is 23.5, lower than the typical customer's", "their Age is 40"]
    assert reasons[3:].isna().all()  # unknown; pushes the risk down


def test_validated_customers_of_another_kind_ask_for_ingest_again(tmp_path):
    """Validated before Age was a number (text), or a number listed now as a category: every reader says so."""
    as_text = Events.from_frames(transactions=orders_of("a"), customers=_customers().astype({"attribute_age": "str"}))
    message = (r"^the validated customers hold attribute_age as text, but sources\.customers\.attributes reads it as "
               r"numbers \(kind number\): they were validated before the setting gave it that kind; re-run `churn "
               r"ingest`$")
    with pytest.raises(FeatureError, match=message):
        build_features(as_text, as_of=AS_OF, cfg=CFG)
    for name, frame in as_text.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    tables = event_tables_from_frames(read_validated(tmp_path, attributes=CFG.attribute_columns),
                                      attributes=CFG.attribute_columns)
    with pytest.raises(FeatureError, match=message):
        features_from_tables(tables, as_of=AS_OF, cfg=CFG)
    as_category = CFG.model_copy(update={"number_attributes": []})
    with pytest.raises(FeatureError, match=r"hold attribute_age as numbers, but sources\.customers\.attributes reads "
                                           r"it as text \(kind category\)"):
        build_features(Events.from_frames(transactions=orders_of("a"), customers=_customers()), as_of=AS_OF,
                       cfg=as_category)


def test_feature_files_record_the_numbers_and_training_refuses_files_built_with_another_kind():
    numbers = feature_settings(CFG, inputs={})
    assert numbers["number_attributes"] == ["Age"]
    categories = feature_settings(CFG.model_copy(update={"number_attributes": []}), inputs={})
    assert "number_attributes" not in categories  # files of categories alone keep their fingerprint
    assert categories["features"] == numbers["features"]  # the same names: only the record tells them apart
    recorded = {"fingerprint": settings_fingerprint(categories), "settings": categories}
    with pytest.raises(FeatureError, match=r"number_attributes \[\] vs \['Age'\], snapshots vs config\): run `churn "
                                           r"features`"):
        check_settings_match(recorded, CFG, features_dir=Path("features"))
