"""`sources.customers.attributes` end to end: a shop whose customers export has a Segment column that truly shifts
churn (casual customers leave sooner at every age), through `churn ingest`, `churn features`, `churn train` and
`churn score` with a mapping config: the attribute is a feature of the files and of the model, and the at-risk list
says "their Segment is X" only of customers whose Segment is X."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app


def shop_exports(customers: int = 400, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(orders, customers) exports of 18 months: every customer buys every ~20 days until they leave; a Casual
    customer's time to leaving is exponential with mean 150 days, a Loyal one's 1,500 (the hazard differs at every
    age, so the segment tells what the history does not)."""
    rng = np.random.default_rng(seed)
    start, days = pd.Timestamp("2023-01-01"), 540
    ids = [f"C{i:04d}" for i in range(customers)]
    segment = np.where(rng.uniform(size=customers) < 0.5, "Casual", "Loyal")
    first = rng.integers(0, 240, customers)
    stays = np.where(segment == "Casual", rng.exponential(150, customers), rng.exponential(1500, customers))
    gaps = rng.exponential(20, (customers, 60)).cumsum(axis=1)
    at = first[:, None] + gaps
    bought = (at < first[:, None] + stays[:, None]) & (at < days)
    bought[:, 0] = True  # everyone's first order
    who, when = np.nonzero(bought)
    offsets = np.where(np.arange(bought.shape[1])[when] == 0, first[who], at[who, when])
    orders = pd.DataFrame({
        "Order": [f"O{i:06d}" for i in range(len(who))],
        "Customer": np.asarray(ids)[who],
        "Date": (start + pd.to_timedelta(offsets, unit="D")).strftime("%Y-%m-%d %H:%M"),
        "Total": np.round(rng.uniform(10, 90, len(who)), 2),
    })
    # Status as of the export day: it knows who has left, the future of every past snapshot (an attribute that leaks)
    status = np.where(first + stays < days, "lapsed", "active")
    people = pd.DataFrame({"Customer": ids, "Segment": segment, "Status": status,
                           "Gender": rng.choice(["F", "M"], customers), "Newsletter": rng.choice(["yes", "no"], customers)})
    return orders, people


def _churn(folder, *args):
    result = CliRunner().invoke(app, [*args, "-c", str(folder / "config.yaml")], env={"COLUMNS": "4000"})
    return result, " ".join(result.output.split())


def _write_config(shop, *, customers: dict) -> None:
    """The shop's config.yaml: its orders.csv mapped as transactions, `customers` as the customers source."""
    config = {
        "paths": {"data_dir": "data", "models_dir": "models"},
        "sources": {
            "transactions": {"path": "orders.csv",
                             "rename": {"Order": "order_id", "Customer": "customer_id", "Date": "ordered_at",
                                        "Total": "amount"}},
            "customers": customers,
        },
        "train": {"search_trials": 2},
    }
    (shop / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_a_segment_that_shifts_churn_reaches_the_model_and_the_reasons(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shop = tmp_path / "shop"
    shop.mkdir()
    orders, people = shop_exports()
    orders.to_csv(shop / "orders.csv", index=False)
    people.to_csv(shop / "customers.csv", index=False)
    _write_config(shop, customers={"path": "customers.csv", "rename": {"Customer": "customer_id"},
                                   "attributes": ["Segment"]})
    result, output = _churn(shop, "ingest")
    assert result.exit_code == 0, output
    report = json.loads((shop / "data" / "reports" / "ingest_report.json").read_text())["sources"]["customers"]
    assert report["extra_columns"] == ["Status", "Gender", "Newsletter"]
    assert "Segment" not in " ".join(report["notes"])
    assert "sources.customers.attributes" in " ".join(report["notes"])

    result, output = _churn(shop, "features")
    assert result.exit_code == 0, output
    snapshot = sorted((shop / "data" / "features").glob("snapshot=*.parquet"))[-2]
    features = pd.read_parquet(snapshot)
    segments = people.set_index("Customer")["Segment"]
    assert (features["attribute_segment"] == features["customer_id"].map(segments)).all()

    result, output = _churn(shop, "train")
    assert result.exit_code == 0, output
    assert "alone ranks the test snapshot's churners" not in output  # an honest segment is no leak
    manifest = json.loads((shop / "models" / "churn" / "manifest.json").read_text())
    assert "attribute_segment" in manifest["feature_names"]
    assert "attribute_segment" in json.loads((shop / "models" / "churn" / "model.json").read_text())[
        "categorical_features"]

    result, output = _churn(shop, "score")
    assert result.exit_code == 0, output
    scores = pd.read_parquet(next((shop / "data" / "scores").glob("at_risk_*.parquet")))
    reasons = scores.filter(regex=r"^reason_\d+$")
    said = reasons.apply(lambda column: column.str.extract(r"their Segment is (\w+)", expand=False)).bfill(axis=1)
    said = said.iloc[:, 0].dropna()
    assert len(said) > 0, reasons.head()
    assert (said == scores.loc[said.index, "customer_id"].map(segments)).all()
    assert set(said) == {"Casual"}  # the segment that raises the risk
    assert not re.search(r"their Segment is (nan|None|<NA>)", " ".join(reasons.stack().dropna().astype(str)))

    # A status written as of the export day knows who has left: the attribute-leak check at train names it.
    _write_config(shop, customers={"path": "customers.csv", "rename": {"Customer": "customer_id"},
                                   "attributes": ["Segment", "Status"]})
    for stage in ("ingest", "features", "train"):
        result, output = _churn(shop, stage)
        assert result.exit_code == 0, output
    assert re.search(r"WARNING the customer attribute attribute_status \(ROC-AUC 0\.\d+\) alone ranks the test "
                     r"snapshot's churners about as well as recency does", output), output


@pytest.mark.slow
def test_a_number_attribute_reaches_the_model_and_its_sentences_are_true(tmp_path, monkeypatch):
    """An Age that shifts churn (the casual customers are the young ones), written with a decimal comma and one cell
    that holds no number, listed as {column: Age, kind: number}: a float feature of the files, a numeric feature of
    the model, and every "their Age is X" of the at-risk list states that customer's age, on the right side of the
    median of the customers scored."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shop = tmp_path / "shop"
    shop.mkdir()
    orders, people = shop_exports(seed=1)
    rng = np.random.default_rng(1)
    ages = np.where(people["Segment"] == "Casual", rng.integers(18, 36, len(people)),
                    rng.integers(36, 80, len(people))) + rng.choice([0.0, 0.5], len(people))
    people = people.drop(columns=["Segment", "Status"]).assign(Age=[f"{age:g}".replace(".", ",") for age in ages])
    people.loc[7, "Age"] = "unknown"
    ages[7] = np.nan
    orders.to_csv(shop / "orders.csv", index=False)
    people.to_csv(shop / "customers.csv", index=False, sep=";")
    _write_config(shop, customers={"path": "customers.csv", "read": {"sep": ";", "decimal": ","},
                                   "rename": {"Customer": "customer_id"},
                                   "attributes": ["Gender", {"column": "Age", "kind": "number"}]})
    result, output = _churn(shop, "ingest")
    assert result.exit_code == 0, output
    notes = json.loads((shop / "data" / "reports" / "ingest_report.json").read_text())["sources"]["customers"]["notes"]
    assert ("Age (attribute_age, kind number): 1 cell holds no number and is left empty, the rest of the row kept "
            "(e.g. 'unknown')") in notes

    result, output = _churn(shop, "features")
    assert result.exit_code == 0, output
    age_of = pd.Series(ages, index=people["Customer"])
    features = pd.read_parquet(sorted((shop / "data" / "features").glob("snapshot=*.parquet"))[-2])
    assert features["attribute_age"].dtype == "float64"
    pd.testing.assert_series_equal(features["attribute_age"], features["customer_id"].map(age_of).astype(float),
                                   check_names=False)

    result, output = _churn(shop, "train")
    assert result.exit_code == 0, output
    manifest = json.loads((shop / "models" / "churn" / "manifest.json").read_text())
    assert "attribute_age" in manifest["feature_names"]
    assert "attribute_age" not in json.loads((shop / "models" / "churn" / "model.json").read_text())[
        "categorical_features"]

    result, output = _churn(shop, "score")
    assert result.exit_code == 0, output
    scores = pd.read_parquet(next((shop / "data" / "scores").glob("at_risk_*.parquet")))
    typical = scores["customer_id"].map(age_of).median()
    said = scores.filter(regex=r"^reason_\d+$").stack().dropna().astype(str)
    said = said[said.str.startswith("their Age is ")]
    assert len(said) > 0
    parts = said.str.extract(r"^their Age is (?P<age>[\d.]+)(?P<side>, higher than the typical customer's|, lower "
                             r"than the typical customer's|)$")
    assert parts["age"].notna().all(), said[parts["age"].isna()].head()
    customers = scores.loc[said.index.get_level_values(0), "customer_id"].to_numpy()
    stated = parts["age"].astype(float).to_numpy()
    assert (stated == age_of[customers].to_numpy()).all()
    side = np.where(stated > typical, ", higher than the typical customer's",
                    np.where(stated < typical, ", lower than the typical customer's", ""))
    assert (parts["side"].to_numpy() == side).all()
    print(f"scored {len(scores):,}; {len(said):,} age sentences, all true; typical age {typical}")
