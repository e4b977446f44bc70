"""Customer attributes beyond region and acquisition channel: `sources.customers.attributes`.

The customers export's columns named there are validated as `attribute_<slug>` String columns, read by every
reader of the validated customers, and become one categorical feature each (family "attributes")."""

from __future__ import annotations

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.contract import attribute_column, attribute_slug, conform


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
