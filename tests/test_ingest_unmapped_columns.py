"""Notes on transactions columns the mapping leaves unread but that say an order is no purchase (a status such as
'voided' or 'canceled') or was refunded (a refunded amount): every row counts as a purchase unless the user maps them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import minimal_config
from pipeline.config import config_from_dict
from pipeline.errors import ConfigError, IngestError
from pipeline.demo_data import as_strings, generate_demo
from pipeline.ingest_notes import unmapped_refunds_note, unmapped_status_note
from pipeline.config import ReadOptions
from pipeline.run import ingest as ingest_runner

RENAME = {"Name": "order_id", "Email": "customer_id", "Created at": "ordered_at", "Lineitem quantity": "quantity",
          "Lineitem price": "unit_price"}
# A Shopify-shaped orders export: the order's status and refund on its first line only
SHOP = (
    "Name,Email,Financial Status,Created at,Lineitem quantity,Lineitem price,Refunded Amount,Currency\n"
    "#1001,ann@example.com,paid,2024-01-07 09:50:26,3,14.90,0.00,EUR\n"
    "#1001,ann@example.com,,2024-01-07 09:50:26,1,15.00,,EUR\n"
    "#1002,bob@example.com,refunded,2024-01-08 10:00:00,1,34.90,34.90,EUR\n"
    "#1003,cy@example.com,paid,2024-01-09 11:00:00,2,5.00,0.00,EUR\n"
    "#1004,dee@example.com,voided,2024-01-10 12:00:00,1,20.00,0.00,EUR\n"
    "#1005,eve@example.com,Paid,2024-01-11 13:00:00,1,8.00,0.00,EUR\n"
)
STATUS_NOTE = ("Financial Status is not mapped, but 2 of its 6 rows say 'refunded' (1) or 'voided' (1): they count as "
               "purchases like the others; if those are not purchases, leave them out with "
               "sources.transactions.exclude: {Financial Status: [refunded, voided]}")
REFUND_NOTE = ("Refunded Amount is not mapped, but is above 0 on 1 of 6 rows: that money is not taken off spend; give "
               "it with sources.transactions.refunds: {column: Refunded Amount}")


def run_ingest(folder: Path, files: dict[str, str], sources: dict[str, dict]) -> dict:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    raw = minimal_config(snapshots={"dates": ["2024-02-01"]}, paths={"data_dir": "out", "models_dir": "models"},
                         sources=sources)
    return ingest_runner.run(config_from_dict(raw, base_dir=folder), quiet=True)


def notes(report: dict, source: str = "transactions") -> list[str]:
    return [note for note in report["sources"][source]["notes"] if "is not mapped" in note]


def shop(**mapping) -> dict[str, dict]:
    return {"transactions": {"path": "orders.csv", "rename": RENAME, **mapping}}


def test_a_status_and_a_refund_the_mapping_leaves_unread_are_noted_and_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = run_ingest(tmp_path, {"orders.csv": SHOP}, shop())
    assert notes(report) == [STATUS_NOTE, REFUND_NOTE]
    assert report["sources"]["transactions"]["validated_rows"] == 6  # only said, nothing left out
    logged = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert f"transactions: {STATUS_NOTE}" in logged and f"transactions: {REFUND_NOTE}" in logged


@pytest.mark.parametrize(("mapping", "said"), [
    ({"exclude": {"Financial Status": ["voided"]}}, [REFUND_NOTE.replace("1 of 6", "1 of 5")]),  # voided left out
    ({"returns_when": {"Financial Status": ["refunded"]}}, [REFUND_NOTE]),
    ({"rename": {**RENAME, "Financial Status": "financial_status"}}, [REFUND_NOTE]),
    ({"refunds": {"column": "Lineitem price", "per": "row", "when": {"Financial Status": ["refunded"]}}}, []),
    ({"rename": {**RENAME, "Refunded Amount": "refunded"}}, [STATUS_NOTE]),
    ({"currency_rates": {"column": "Refunded Amount", "rates": {"0.00": 1, "34.90": 1}}}, [STATUS_NOTE]),
])
def test_a_column_any_mapping_key_reads_is_not_noted(tmp_path, mapping, said):
    report = run_ingest(tmp_path, {"orders.csv": SHOP}, shop(**mapping))
    assert notes(report) == said


def test_with_refunds_given_as_money_a_refunded_order_is_no_status_to_leave_out_but_a_voided_one_is(tmp_path):
    report = run_ingest(tmp_path, {"orders.csv": SHOP}, shop(refunds={"column": "Refunded Amount"}))
    assert notes(report) == [
        "Financial Status is not mapped, but 1 of its 6 rows says 'voided' (1): it counts as a purchase like the "
        "others; if that is not a purchase, leave it out with sources.transactions.exclude: {Financial Status: "
        "[voided]}"]


def test_the_rows_an_exclude_leaves_out_are_not_counted(tmp_path):
    report = run_ingest(tmp_path, {"orders.csv": SHOP}, shop(exclude={"Email": ["dee@example.com"]}))
    assert notes(report)[0].startswith("Financial Status is not mapped, but 1 of its 5 rows says 'refunded' (1):")


def test_statuses_that_are_purchases_and_zero_or_worded_refunds_are_not_noted(tmp_path):
    text = (SHOP.replace("refunded", "pending").replace("voided", "On Hold").replace("34.90,EUR", "0,EUR")
            .replace("Refunded Amount", "Refund Reason").replace("0.00,EUR", "too small,EUR"))
    report = run_ingest(tmp_path, {"orders.csv": text}, shop())
    assert notes(report) == []
    report = run_ingest(tmp_path, {"orders.csv": SHOP.replace("34.90,EUR", "0,EUR")},
                        shop(exclude={"Financial Status": ["voided"]}))
    assert notes(report) == []


@pytest.mark.parametrize(("header", "values", "said"), [
    ("order_status", ["delivered", "delivered", "canceled", "unavailable", "delivered", "delivered"],
     "'canceled' (1) or 'unavailable' (1)"),  # Olist
    ("STATUS", ["Shipped", "Cancelled", "Disputed", "On Hold", "Shipped", "Cancelled"],
     "'Cancelled' (2) or 'Disputed' (1)"),  # a sales export
    ("payment", ["ok", "Payment_Declined", "CHARGEBACK", "partially-refunded", "Failed", "ok"],
     "'Payment_Declined' (1), 'CHARGEBACK' (1), 'partially-refunded' (1) or 1 other such value"),
])
def test_other_exports_words_for_an_order_that_is_no_purchase_are_noted(tmp_path, header, values, said):
    rows = [f"o{n},c{n},2024-01-{n + 1:02d},10,{value}" for n, value in enumerate(values)]
    report = run_ingest(tmp_path, {"t.csv": "\n".join(["order_id,customer_id,ordered_at,amount," + header, *rows])},
                        {"transactions": {"path": "t.csv"}})
    assert len(notes(report)) == 1 and f"rows say {said}:" in notes(report)[0]


def test_a_status_a_lookup_brings_is_noted_and_each_export_by_its_own_mapping(tmp_path):
    items = "order_id,price\no1,10\no2,20\no3,30\n"
    orders = ("order_id,customer_id,order_purchase_timestamp,order_status\no1,c1,2024-01-02,delivered\n"
              "o2,c2,2024-01-03,canceled\no3,c3,2024-01-04,delivered\n")
    refunds = "order_id,customer_id,ordered_at,amount,state\nr1,c1,2024-01-05,-5,canceled\nr2,c2,2024-01-06,-5,ok\n"
    report = run_ingest(tmp_path, {"items.csv": items, "orders.csv": orders, "refunds.csv": refunds}, {
        "transactions": {"path": "items.csv", "rename": {"price": "amount", "order_purchase_timestamp": "ordered_at"},
                         "lookup": [{"path": "orders.csv", "by": "order_id"}],
                         "other_exports": [{"path": "refunds.csv", "exclude": {"state": ["x"]}}]}})
    assert len(notes(report)) == 1
    assert notes(report)[0].startswith("order_status is not mapped, but 1 of its 3 rows says 'canceled' (1):")
    assert notes(report)[0].endswith("sources.transactions.exclude: {order_status: [canceled]}")
    report = run_ingest(tmp_path, {}, {
        "transactions": {"path": "items.csv", "rename": {"price": "amount", "order_purchase_timestamp": "ordered_at"},
                         "lookup": [{"path": "orders.csv", "by": "order_id"}], "exclude": {"order_status": ["x"]},
                         "other_exports": [{"path": "refunds.csv"}]}})
    assert notes(report) == ["state is not mapped, but 1 of its 2 rows says 'canceled' (1): it counts as a purchase "
                             "like the others; if that is not a purchase, leave it out with "
                             "sources.transactions.other_exports[0].exclude: {state: [canceled]}"]


def test_feedback_and_tickets_get_no_such_note(tmp_path):
    feedback = "customer_id,submitted_at,kind,score,status\nc1,2024-01-02,nps,9,cancelled\nc1,2024-01-03,nps,3,ok\n"
    tickets = "ticket_id,customer_id,opened_at,state\nt1,c1,2024-01-02,rejected\nt2,c1,2024-01-03,rejected\n"
    report = run_ingest(tmp_path, {"t.csv": "order_id,customer_id,ordered_at,amount\no1,c1,2024-01-02,10\n",
                                   "f.csv": feedback, "s.csv": tickets},
                        {"transactions": {"path": "t.csv"}, "feedback": {"path": "f.csv"},
                         "support_tickets": {"path": "s.csv"}})
    assert [notes(report, source) for source in ("transactions", "feedback", "support_tickets")] == [[], [], []]


def test_the_demo_shop_gets_no_such_note(tmp_path):
    frames = {name: as_strings(frame) for name, frame in generate_demo(customers=150, seed=3).items()}
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    report = run_ingest(tmp_path, {}, {name: {"path": f"{name}.csv"} for name in frames})
    assert all(notes(report, name) == [] for name in frames)


def descriptions(count: int) -> list[str]:
    """Online Retail's Description: thousands of product names, a few of them words such as 'damaged' or 'returned'."""
    return [f"WHITE HANGING HEART T-LIGHT HOLDER {n}" for n in range(count)] + ["damaged", "returned", "cancelled"]


@pytest.mark.parametrize("first_rows", [0, 20_000])  # product names from the first row, or after 20,000 quiet ones
def test_a_free_text_column_with_many_values_is_never_flagged_whatever_its_words(first_rows):
    values = pd.Series(["ok"] * first_rows + descriptions(3_000) * 2 + ["cancelled"] * 50, dtype="str")
    assert unmapped_status_note(values, np.ones(len(values), dtype=bool), column="Description",
                                setting="sources.transactions") is None
    few = pd.Series(["ok"] * first_rows + descriptions(40)[-5:] * 2, dtype="str")  # few values: a status column
    assert unmapped_status_note(few, np.ones(len(few), dtype=bool), column="Description",
                                setting="sources.transactions") is not None


def test_a_comment_that_mentions_a_cancellation_is_no_status():
    values = pd.Series(["customer cancelled the gift wrap but kept the order", "ok", "ok", ""], dtype="str")
    assert unmapped_status_note(values, np.ones(4, dtype=bool), column="Note", setting="sources.transactions") is None


def test_a_refund_column_of_negative_numbers_is_not_0_and_typed_columns_are_read_as_they_are():
    kept = np.array([True, True, True])
    note = unmapped_refunds_note(pd.Series(["0", "-4.50", ""], dtype="str"), kept, column="refund_total",
                                 setting="sources.transactions", read=ReadOptions())
    assert note is not None and "is not 0 on 1 of 3 rows" in note
    assert unmapped_refunds_note(pd.Series([0.0, 2.5, np.nan]), kept, column="Total Refunded",
                                 setting="sources.transactions", read=ReadOptions()) is not None
    assert unmapped_refunds_note(pd.Series([0.0, 2.5, np.nan]), kept, column="Total Paid",
                                 setting="sources.transactions", read=ReadOptions()) is None


# A Shopify order export: the order's e-mail, time, status and cancellation on its first line only
CANCELLED = (
    "Name,Email,Financial Status,Created at,Cancelled at,Lineitem quantity,Lineitem price\n"
    "#1001,ann@example.com,paid,2024-01-07 09:50:26,,3,14.90\n"
    "#1001,,,,,1,15.00\n"
    "#1002,bob@example.com,pending,2024-01-08 10:00:00,2024-01-09 08:00:00 +0100,1,34.90\n"
    "#1002,,,,,1,4.90\n"
    "#1002,,,,,2,4.90\n"
    "#1003,cy@example.com,paid,2024-01-09 11:00:00,,2,5.00\n"
    "#1004,dee@example.com,paid,2024-01-10 12:00:00,,1,20.00\n"
)


def test_a_time_given_only_when_an_order_was_cancelled_is_noted_and_exclude_when_filled_leaves_its_lines_out(tmp_path):
    report = run_ingest(tmp_path, {"orders.csv": CANCELLED}, shop())
    assert notes(report) == [
        "Cancelled at is not mapped, but 1 of its 7 rows gives a time, on 1 order of 3 lines: that order counts as a "
        "purchase like the others; if it is not a purchase, leave it out with "
        "sources.transactions.exclude_when_filled: [Cancelled at]"]
    assert report["sources"]["transactions"]["validated_rows"] == 7
    report = run_ingest(tmp_path, {}, shop(exclude_when_filled=["Cancelled at"]))
    assert notes(report) == [] and report["sources"]["transactions"]["validated_rows"] == 4
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    said = "excluded by sources.transactions.exclude_when_filled: Cancelled at is filled"
    assert quarantine[["source_row", "reason"]].values.tolist() == [
        [3, said], [4, f"{said} (on its order's other lines; this line leaves it blank)"],
        [5, f"{said} (on its order's other lines; this line leaves it blank)"]]
    assert report["sources"]["transactions"]["bad_rows"] == 0
    # a column that no row fills leaves nothing out: said, as `exclude` says of a value no row holds
    report = run_ingest(tmp_path, {"orders.csv": CANCELLED.replace("2024-01-09 08:00:00 +0100", "")},
                        shop(exclude_when_filled=["Cancelled at"]))
    assert ("sources.transactions.exclude_when_filled: no row of Cancelled at is filled, so it leaves nothing out"
            in report["sources"]["transactions"]["notes"])
    assert report["sources"]["transactions"]["validated_rows"] == 7


@pytest.mark.parametrize(("header", "cells"), [
    ("Return date", ["2024-01-09", "2024-01-10", "2024-01-11", ""]),  # a rental's return: most rows have one
    ("Shipped at", ["", "2024-01-10", "", ""]),  # not named like a cancellation
    ("Cancel reason", ["", "too late", "", ""]),  # words, not times
    ("returning_since", ["", "2024-01-10", "", ""]),  # a returning customer, not a return
])
def test_a_time_of_every_order_another_time_or_words_in_a_cancellation_column_are_not_noted(tmp_path, header, cells):
    rows = [f"o{n},c{n},2024-01-0{n + 1},10,{cell}" for n, cell in enumerate(cells)]
    report = run_ingest(tmp_path, {"t.csv": "\n".join(["order_id,customer_id,ordered_at,amount," + header, *rows])},
                        {"transactions": {"path": "t.csv"}})
    assert notes(report) == []


@pytest.mark.parametrize("flags", [["true", "false"], ["1", "0"], ["Y", "N"], ["yes", "no"], ["TRUE", "FALSE"]])
@pytest.mark.parametrize("header", ["Refunded", "is_cancelled", "returned", "isVoided"])
def test_a_yes_no_column_named_like_a_cancellation_is_noted_and_the_exclude_it_gives_leaves_those_rows_out(
        tmp_path, header, flags):
    yes, no = flags
    rows = [f"o{n},c{n},2024-01-0{n + 1},10,{flag}" for n, flag in enumerate([no, yes, no, yes, ""])]
    report = run_ingest(tmp_path, {"t.csv": "\n".join(["order_id,customer_id,ordered_at,amount," + header, *rows])},
                        {"transactions": {"path": "t.csv"}})
    [note] = notes(report)
    assert note.startswith(f"{header} is not mapped, but 2 of its 5 rows say {yes!r} (2): they count as purchases")
    exclude = yaml.safe_load(note.split("sources.transactions.exclude: ")[1])  # as a user would paste it
    report = run_ingest(tmp_path, {}, {"transactions": {"path": "t.csv", "exclude": exclude}})
    assert notes(report) == [] and report["sources"]["transactions"]["validated_rows"] == 3


def test_a_typed_flag_and_a_categorical_status_in_parquet_are_noted_and_their_exclude_works(tmp_path):
    frame = pd.DataFrame({"order_id": ["o1", "o2", "o3", "o4"], "customer_id": ["c1", "c2", "c3", "c4"],
                          "ordered_at": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]),
                          "amount": [10.0, 20.0, 30.0, 40.0],
                          "refunded": pd.array([False, True, None, False], dtype="boolean"),
                          "state": pd.Categorical(["complete", "complete", "Canceled", None])})
    frame.to_parquet(tmp_path / "t.parquet")
    report = run_ingest(tmp_path, {}, {"transactions": {"path": "t.parquet"}})
    assert notes(report) == [
        "refunded is not mapped, but 1 of its 4 rows says 'true' (1): it counts as a purchase like the others; if that "
        "is not a purchase, leave it out with sources.transactions.exclude: {refunded: [\"true\"]}",
        "state is not mapped, but 1 of its 4 rows says 'Canceled' (1): it counts as a purchase like the others; if "
        "that is not a purchase, leave it out with sources.transactions.exclude: {state: [Canceled]}"]
    report = run_ingest(tmp_path, {}, {"transactions": {"path": "t.parquet", "exclude": {
        "refunded": [True], "state": ["Canceled"]}}})  # YAML's true, as `exclude: {refunded: [true]}` gives it
    assert notes(report) == [] and report["sources"]["transactions"]["validated_rows"] == 2


@pytest.mark.parametrize(("kinds", "amounts", "said"), [
    (["Sale", "Return", "Refund", "Sale", "Return"], [10, 4, 3, 8, 2],
     "3 of its 5 rows say 'Return' (2) or 'Refund' (1)"),
    (["sale", "sale", "CANCELLATION", "sale", "sale"], [10, 4, 3, 8, 2], "1 of its 5 rows says 'CANCELLATION' (1)"),
    (["Sale", "Return", "Refund", "Sale", "Return"], [10, -4, -3, 8, 2], "1 of its 5 rows says 'Return' (1)"),
    (["Sale", "Return", "Refund", "Sale", "Return"], [10, -4, -3, 8, -2], None),  # returns already negative
    (["Sale", "Return requested", "Pending", "Sale", "On hold"], [10, 4, 3, 8, 2], None),  # states of a purchase
])
def test_rows_of_a_kind_that_undoes_a_sale_with_a_positive_amount_are_noted(tmp_path, kinds, amounts, said):
    rows = [f"o{n},c{n},2024-01-0{n + 1},{amount},{kind}" for n, (kind, amount) in enumerate(zip(kinds, amounts))]
    report = run_ingest(tmp_path, {"t.csv": "\n".join(["order_id,customer_id,ordered_at,amount,Type", *rows])},
                        {"transactions": {"path": "t.csv"}})
    if said is None:
        assert notes(report) == []
        return
    [note] = notes(report)
    assert note.startswith(f"Type is not mapped, but {said} with an amount above 0: ")
    returns = yaml.safe_load(note.split("returns_when: ")[1].split(", or if")[0])
    report = run_ingest(tmp_path, {}, {"transactions": {"path": "t.csv", "returns_when": returns}})
    assert notes(report) == [] and report["sources"]["transactions"]["validated_rows"] == 5


def test_a_status_an_order_gives_on_its_first_line_only_counts_its_orders_and_lines(tmp_path):
    text = CANCELLED.replace(",pending,", ",voided,").replace("2024-01-09 08:00:00 +0100", "")
    report = run_ingest(tmp_path, {"orders.csv": text}, shop())
    assert notes(report) == [
        "Financial Status is not mapped, but 1 of its 7 rows says 'voided' (1), on 1 order of 3 lines: that order "
        "counts as a purchase like the others; if it is not a purchase, leave it out with "
        "sources.transactions.exclude: {Financial Status: [voided]}"]
    report = run_ingest(tmp_path, {}, shop(exclude={"Financial Status": ["voided"]}))
    assert report["sources"]["transactions"]["validated_rows"] == 4


@pytest.mark.parametrize(("value", "message"), [
    (["Cancelled at", "Cancelled at"], "'Cancelled at' is listed twice"),
    ([" "], "a blank name"),
    ("Cancelled at", "Input should be a valid list"),
])
def test_exclude_when_filled_is_a_list_of_columns_each_once(tmp_path, value, message):
    raw = minimal_config(sources={"transactions": {"path": "t.csv", "exclude_when_filled": value}})
    with pytest.raises(ConfigError, match=rf"sources\.transactions\.exclude_when_filled: .*{message}"):
        config_from_dict(raw, base_dir=tmp_path)


def test_exclude_when_filled_names_a_column_of_the_files(tmp_path):
    with pytest.raises(IngestError, match=r"sources\.transactions\.exclude_when_filled: column 'Voided at' is not in "):
        run_ingest(tmp_path, {"orders.csv": CANCELLED}, shop(exclude_when_filled=["Voided at"]))
