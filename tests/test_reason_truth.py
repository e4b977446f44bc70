"""tests/reason_truth.py, the independent check of an at-risk list's sentences, on lines made here: it calls true
what is, and false what is not, for each kind of sentence it checks."""

from __future__ import annotations

import pandas as pd
import pytest
from reason_truth import check_sentences

AS_OF = "2024-06-01"  # the same season last year (horizon 90 days): [2023-06-02, 2023-08-31)


def _lines() -> pd.DataFrame:
    rows = [  # customer, invoice, time, quantity, amount
        ("a", "A1", "2023-01-10 09:00", 1, 10.0), ("a", "A1", "2023-01-10 09:00", 2, 10.0),
        ("a", "A2", "2024-03-01 10:00", 3, 30.0), ("a", "A3", "2024-05-20 11:00", 1, 20.0),
        ("a", "C1", "2024-05-25 12:00", -1, -5.0),  # a credit note: not an order, not a purchase day
        ("b", "B1", "2023-09-15 09:00", 1, 8.0), ("b", "B2", "2023-09-15 17:00", 1, 0.0),  # a free item bought
        ("c", "C9", "2023-07-01 09:00", -1, -8.0),  # a refund in the season, before any purchase
        ("c", "C2", "2023-10-01 09:00", 1, 12.0),
        ("d", "D1", "2023-07-15 09:00", 1, 5.0), ("d", "D2", "2024-05-01 09:00", 1, 5.0),
        ("e", "E1", "2024-06-01 08:00", 1, 5.0),  # after the snapshot's midnight: not known on AS_OF
        ("z", "Z1", "2022-06-01 09:00", 1, 5.0),  # the export's first line
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "invoice", "at", "quantity", "amount"])
    return frame.assign(at=pd.to_datetime(frame["at"]), cancelled=frame["invoice"].str.startswith("C"),
                        product="P", discount=(frame["invoice"] == "A2") * 3.0,
                        category=frame["invoice"].map({"A2": "books"}).fillna("toys"))


CASES = [
    ("a", "has bought on one day only so far", False),
    ("b", "has bought on one day only so far", True),  # two invoices on one day
    ("a", "about 1.3 lines per order, fewer than the typical customer", True),  # 4 purchase lines, 3 orders
    ("a", "about 1.5 lines per order, fewer than the typical customer", False),
    ("a", "average order worth only 21.67 net of returns and refunds, less than the typical customer's", True),
    ("a", "average order worth only 23.33 net of returns and refunds, less than the typical customer's", False),
    ("a", "did not buy in the same season last year", True),
    ("d", "did not buy in the same season last year", False),
    ("b", "did not buy in the same season last year", False),  # not a customer then
    ("b", "was not a customer yet in the same season last year", True),
    ("c", "was not a customer yet in the same season last year", False),  # a refund then
    ("c", "made their first purchase on record after the same season last year", True),
    ("a", "made their first purchase on record after the same season last year", False),
    ("d", "their purchase days in the same season last year (1 day) raises their predicted risk", True),
    ("a", "their purchase days in the same season last year (1 day) raises their predicted risk", False),
    ("a", "no order for 12 days (last on 2024-05-20)", True),  # the credit note is no order
    ("a", "no order for 7 days (last on 2024-05-25)", False),
    ("a", "a customer for only about 17 months, shorter than the typical customer", True),
    ("a", "a customer for only about 12 months, shorter than the typical customer", False),
    ("c", "a customer for only about 8 months, shorter than the typical customer", False),  # a refund 11 months ago
    ("d", "a customer for only about 11 months, shorter than the typical customer", True),
    ("z", "a customer for only about 2 years, shorter than the typical customer", False),  # the export's first: cut?
    ("c", "the time since their first purchase on record (about 8 months) raises their predicted risk", True),
    ("a", "waited about 11 weeks between their last two purchase days, longer than the typical customer", True),
    ("a", "1 cancelled or credited invoice", True),
    ("a", "20% of their order lines were returns or refunds", True),  # 1 of 5 lines
    ("a", "25% of their invoices were cancellations or credit notes", True),  # 1 credit note, 3 orders
    ("a", "only 3 orders so far, fewer than the typical customer", True),
    # ranked among a, b, c and d (a purchase in the year before AS_OF): b's last order is the oldest, c has fewest
    ("b", "low recency score (2 of 5)", True),
    ("c", "low recency score (2 of 5)", False),
    ("c", "their frequency score (2 of 5) raises their predicted risk", True),
    ("b", "in the RFM segment of regular customers who have gone quiet", True),  # recency 2, frequency 4
    ("c", "in the RFM segment of regular customers who have gone quiet", False),
    ("a", "33% of their orders used a discount", True),  # A2 of A1, A2, A3
    ("a", "buys from only 2 categories, fewer than the typical customer", True),
    ("a", "mostly buys toys", True),  # 40 on toys, 30 on books
    ("a", "mostly buys books", False),
    ("b", "has ordered only once so far", False),
    ("e", "has ordered only once so far", False),  # no line before AS_OF
]


@pytest.mark.parametrize(("customer", "sentence", "true"), CASES)
def test_a_sentence_is_true_exactly_when_the_lines_say_so(customer, sentence, true):
    scores = pd.DataFrame({"customer_id": [customer], "as_of": [AS_OF], "reason_1": [sentence]})
    checked = check_sentences(_lines(), scores, horizon_days=90)
    assert checked["ok"].tolist() == [true], checked["evidence"].tolist()


def test_a_season_before_the_export_starts_is_never_said():
    later = _lines().query("at >= '2023-06-03'")  # the export starts a day after the season does
    scores = pd.DataFrame({"customer_id": ["c"], "as_of": [AS_OF],
                           "reason_1": ["made their first purchase on record after the same season last year"]})
    assert check_sentences(later, scores, horizon_days=90)["ok"].tolist() == [False]
