"""An Online-Retail-shaped shop export (tests/online_retail.py) through `churn ingest`, `churn features` and
`churn train --backtest` with a mapping config alone (`paths` and `sources` only: every other setting is
the default), as the maintainers run their held-out export."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from online_retail import RENAME, online_retail_export
from reason_truth import check_sentences, online_retail_lines
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.playbook import starter_playbook_text


def test_the_generator_has_the_exports_quirks():
    export = online_retail_export(customers=300, seed=1)
    guest = export["Customer ID"] == ""
    assert 0.2 < guest.mean() < 0.35
    assert export.loc[~guest, "Customer ID"].str.fullmatch(r"\d{5}\.0").all()
    assert export["InvoiceDate"].str.fullmatch(r"\d{1,2}/\d{1,2}/20\d\d \d{1,2}:\d\d").all()
    cancelled = export["Invoice"].str.startswith("C")
    assert cancelled.any() and (export.loc[cancelled, "Quantity"] < 0).all()
    assert (export.loc[~cancelled, "Quantity"] > 0).all()
    assert {"POST", "M", "D", "BANK CHARGES", "AMAZONFEE", "B"} <= set(export["StockCode"])
    assert (export["Price"] == 0).any() and (export["Price"] < 0).any()
    # Several invoices of a customer in the same minute.
    per_minute = export[~guest].groupby(["Customer ID", "InvoiceDate"])["Invoice"].nunique()
    assert (per_minute > 1).any()
    # Wholesalers: baskets of 50+ lines with quantities in the hundreds.
    lines = export[~cancelled].groupby("Invoice").agg(lines=("StockCode", "size"), quantity=("Quantity", "median"))
    assert ((lines["lines"] >= 50) & (lines["quantity"] >= 100)).any()
    pd.testing.assert_frame_equal(export, online_retail_export(customers=300, seed=1))


def _churn(folder, *args):
    result = CliRunner().invoke(app, [*args, "-c", str(folder / "config.yaml")], env={"COLUMNS": "4000"})
    return result, " ".join(result.output.split())


def _says_nothing_false(output: str) -> None:
    assert "Traceback" not in output and "Error" not in output
    assert not re.search(r"\b(nan|inf)\b", output, flags=re.IGNORECASE), output


@pytest.mark.slow
def test_an_online_retail_export_trains_end_to_end_from_a_mapping_config_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the config's default store (next to the config)
    shop = tmp_path / "shop"
    shop.mkdir()
    # 12 months from 2010-12-01, about the span of UCI's "Online Retail": room for 1 of the 3 default backtest folds.
    export = online_retail_export(customers=800, seed=0, start="2010-12-01", months=12)
    export.to_csv(shop / "online_retail.csv", index=False)
    (shop / "config.yaml").write_text(yaml.safe_dump({
        "paths": {"data_dir": "data", "models_dir": "models"},
        "sources": {"transactions": {"path": "online_retail.csv", "rename": RENAME}},
    }))

    result, output = _churn(shop, "ingest")
    assert result.exit_code == 0, output
    _says_nothing_false(output)
    assert "WARNING" not in output
    report = json.loads((shop / "data" / "reports" / "ingest_report.json").read_text())["sources"]["transactions"]
    guests = int((export["Customer ID"] == "").sum())
    assert (report["input_rows"], report["anonymous_rows"], report["bad_rows"]) == (len(export), guests, 0)
    assert report["validated_rows"] + report["quarantined_rows"] == len(export)
    assert report["quarantined_rows"] == guests
    assert any("'%m/%d/%Y %H:%M'" in note for note in report["notes"])
    assert report["derived"] == {"amount": "quantity × unit_price"}
    validated = pd.read_parquet(shop / "data" / "validated" / "transactions.parquet")
    registered = export[export["Customer ID"] != ""]
    # One id per customer ('17850.0' -> '17850'), every registered row kept, cancellations as credits.
    assert set(validated["customer_id"]) == set(registered["Customer ID"].str.removesuffix(".0"))
    assert len(validated) == len(registered)
    credits = registered["Invoice"].str.startswith("C")
    assert validated["order_id"].str.startswith("C").sum() == credits.sum()
    expected_amount = registered["Quantity"].to_numpy() * registered["Price"].to_numpy()
    assert np.isclose(np.sort(validated["amount"].to_numpy()), np.sort(expected_amount)).all()
    assert (validated["amount"] < 0).sum() == ((registered["Quantity"] * registered["Price"]) < 0).sum() > 0

    result, output = _churn(shop, "features")
    assert result.exit_code == 0, output
    _says_nothing_false(output)
    assert "WARNING" not in output
    written = sorted(p.name for p in (shop / "data" / "features").glob("snapshot=*.parquet"))
    # Month starts from the first order (2010-12-01) + 90 days to the last order (2011-11-30).
    months = pd.date_range("2011-03-01", "2011-11-01", freq="MS")
    assert written == [f"snapshot={d.date()}.parquet" for d in months]
    for model, column in (("BG/NBD", "btyd_p_alive"), ("Pareto/NBD", "pnbd_p_alive")):
        if f"{model} no dropout found" in output:  # "P(alive) near 1 for everyone" must hold on some snapshot
            lowest = [pd.read_parquet(shop / "data" / "features" / name, columns=[column])[column].min()
                      for name in written]
            assert max(lowest) >= 0.95, (model, lowest)

    result, output = _churn(shop, "train", "--backtest")
    assert result.exit_code == 0, output
    _says_nothing_false(output)
    metrics = json.loads((shop / "models" / "churn" / "metrics.json").read_text())
    for baseline in ("btyd", "pareto_nbd"):  # BG/NBD and Pareto/NBD: a real comparison or a stated failure
        entry = metrics["test"][baseline]
        if entry["status"] != "ok":
            assert re.fullmatch(r"failed: .{10,}", entry["status"]), entry
            assert entry["status"] in output
        else:
            assert 0.6 < entry["roc_auc"] <= 1.0, entry
    # Every candidate ranks the test customers as its scores do (a calibrator fitted on out-of-fold scores of
    # one early snapshot once turned the logistic candidate around: 0.18).
    for name in metrics["model_choice"]["candidates"]:
        assert metrics["test"][name]["roc_auc"] > 0.75, (name, metrics["test"][name])
    assert metrics["comparison"]["best_baseline"]["roc_auc"] in metrics["test"]
    printed = output.rsplit("best baseline: ROC-AUC", 1)[1]  # the sentences after the comparison table
    assert printed.count(metrics["comparison"]["statement"]) == 1
    backtest = json.loads((shop / "data" / "reports" / "backtest.json").read_text())
    # Labelled: 2011-03-01..2011-09-01; test 2011-08-01 would have only March..May before it (no snapshot 90
    # days before another): the backtest runs on 2011-09-01 alone and says why not 3.
    assert [fold["split"]["test"] for fold in backtest["folds"]] == ["2011-09-01"]
    assert backtest["shortfall"].startswith("the backtest runs over 1 test snapshot, not the 3 of "
                                            "train.backtest_folds: test snapshot 2011-08-01 has too little")
    assert "backtest over 1 test snapshot (2011-09-01): one fold, so no spread" in output
    assert output.count(backtest["shortfall"]) == 2  # the warning and the printed sentence
    assert output.count("WARNING") == 1  # that one: no other warning on this export
    assert (shop / "mlruns.db").is_file() and not (tmp_path / "mlruns.db").exists()  # the default store: beside the config

    # `churn score` from the same mapping config: no playbook named, none beside it -> the starter is written
    # there, said once, and used; a second run keeps the (edited) file.
    assert not (shop / "playbook.yaml").exists()
    result, output = _churn(shop, "score")
    assert result.exit_code == 0, output
    _says_nothing_false(output)
    starter = shop / "playbook.yaml"
    assert starter.read_text(encoding="utf-8") == starter_playbook_text()
    assert output.count("wrote the starter playbook there") == 1 and str(starter) in output
    summary = json.loads(next((shop / "data" / "scores").glob("at_risk_*.json")).read_text())
    assert summary["customers_scored"] > 0 and summary["playbook"]["path"] == str(starter)
    # Every reason sentence that states a figure of the customer's orders holds on the export as written,
    # recomputed without the pipeline (tests/reason_truth.py).
    scores = pd.read_parquet(next((shop / "data" / "scores").glob("at_risk_*.parquet")))
    checked = check_sentences(online_retail_lines(export), scores)
    false = checked[checked["ok"] == False]  # noqa: E712 - ok is True, False or None
    assert false.empty, false.to_string()
    assert (checked["ok"] == True).sum() >= 500, checked["ok"].value_counts(dropna=False)  # noqa: E712
    edited = starter.read_text(encoding="utf-8") + "# edited by the shop\n"
    starter.write_text(edited, encoding="utf-8")
    result, output = _churn(shop, "score")
    assert result.exit_code == 0, output
    assert "starter playbook" not in output and starter.read_text(encoding="utf-8") == edited
