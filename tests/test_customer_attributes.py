"""Customer attributes beyond region and acquisition channel: `sources.customers.attributes`.

The customers export's columns named there are validated as `attribute_<slug>` String columns, read by every
reader of the validated customers, and become one categorical feature each (family "attributes")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from conftest import minimal_config
from pipeline.config import config_from_dict
from pipeline.contract import attribute_column, attribute_slug, conform
from pipeline.errors import IngestError
from pipeline.ingest import attribute_values
from pipeline.run import ingest as ingest_runner
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


def _ingest(folder: Path, customers: dict, *, text: str = CUSTOMERS) -> dict:
    (folder / "t.csv").write_text(ORDERS, encoding="utf-8")
    (folder / "c.csv").write_text(text, encoding="utf-8")
    raw = minimal_config(paths={"data_dir": "out", "models_dir": "models"},
                         sources={"transactions": {"path": "t.csv"},
                                  "customers": {"path": "c.csv", "rename": {"Id": "customer_id"}, **customers}})
    return ingest_runner.run(config_from_dict(raw, base_dir=folder), quiet=True)


def test_ingest_keeps_the_listed_columns_as_attribute_text_after_the_contract_columns(tmp_path):
    """Segment and Gender become attribute_segment and attribute_gender (stripped, blank -> null); they do not go to
    the extra file too, and the note names only the columns still unread, pointing at the setting."""
    report = _ingest(tmp_path, {"attributes": ["Segment", "Gender"]})
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
        "2 columns of the customers export are no attribute the model reads (signup_at, region, acquisition_channel): "
        "Age band, Note; kept aside in validated/extra/customers.parquet, unused (list those that describe a customer, "
        "such as a segment or a plan, in sources.customers.attributes; or map one onto a contract attribute with "
        "sources.customers.rename only if it means that attribute)"]


def test_ingest_with_every_column_listed_writes_no_extra_file_and_no_note(tmp_path):
    report = _ingest(tmp_path, {"attributes": ["Segment", "Gender", "Age band", "Note"]})
    assert not (tmp_path / "out" / "validated" / "extra" / "customers.parquet").exists()
    assert report["sources"]["customers"]["notes"] == []
    validated = pd.read_parquet(tmp_path / "out" / "validated" / "customers.parquet")
    assert validated["attribute_age_band"].tolist()[::2] == ["18-25", "26-40"]


def test_a_listed_column_the_customers_file_lacks_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(IngestError, match=r"^sources\.customers\.attributes: column 'Plan' is not in the files \(their "
                                          r"columns: Id, Segment, Gender, Age band, Note\); name a column of the "
                                          r"export, as it is written there$"):
        _ingest(tmp_path, {"attributes": ["Segment", "Plan"]})
    (tmp_path / "more.csv").write_text("Id,Segment\nc9,Gold\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"^sources\.customers\.attributes: column 'Gender' is not in the files of "
                                          r"sources\.customers\.other_exports\[0\] \(their columns: Id, Segment\)"):
        _ingest(tmp_path, {"attributes": ["Segment", "Gender"],
                           "other_exports": [{"path": "more.csv", "rename": {"Id": "customer_id"}}]})


def test_attribute_values_of_typed_columns_read_as_the_export_shows_them(tmp_path):
    """A Parquet export types an age band as a number and a flag as a boolean: the text a CSV would hold."""
    frame = pd.DataFrame({"Age": [30.0, None, 41.5], "Member": pd.array([True, False, None], dtype="boolean")})
    raw = RawSource(name="customers", frame=frame, origin=row_origin(["c.parquet"], [3]), files=())
    values = attribute_values(raw, ["Age", "Member"])
    assert values["attribute_age"].tolist()[::2] == ["30", "41.5"] and pd.isna(values["attribute_age"][1])
    assert values["attribute_member"].tolist()[:2] == ["true", "false"] and pd.isna(values["attribute_member"][2])


def test_customers_whose_rows_differ_in_an_attribute_are_named_in_the_note(tmp_path):
    text = "Id,Segment\nc1,Gold\nc1,Silver\nc2,Gold\n"
    report = _ingest(tmp_path, {"attributes": ["Segment"]}, text=text)
    assert any(note.startswith("1 customer is on several rows of one file that give different attribute values "
                               "(attribute_segment: 1; e.g. 'c1': Gold, Silver)")
               for note in report["sources"]["customers"]["notes"])
