"""An independent check of an at-risk list's reason sentences against the raw export they came from.

Plain pandas on the export as the shop wrote it, never the pipeline's own code, so a sentence the pipeline
computes wrongly is caught here rather than agreed with: `online_retail_lines` (Online Retail's layout: Invoice,
StockCode, Quantity, InvoiceDate, Price, Customer ID; cancellations are invoices starting with "C") and
`cdnow_lines` (CDNOW's: customer, date, CDs, dollars) turn an export into lines. Times are the export's wall clock,
the business zone's days (CDNOW's dates are New York's, Online Retail's generated export is UTC).

`check_sentences(lines, scores)` -> one row per reason sentence of `scores` (customer_id, sentence,
ok: True/False, or None for a sentence of a kind not checked here, evidence: the recomputed values).
Checked: the figures a sentence states (counts, amounts, days, shares, months since the last order) and the
windows they are counted in. Not checked: comparisons with "the typical customer" (the population they are
taken over is the pipeline's snapshot, not this export), and the purchase models' estimates.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

WINDOWS = (14, 30, 60, 90, 180, 365)
DAYS_PER_MONTH = 30.44
NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)( million)?"


def _number(match: re.Match, group: int) -> float:
    value = float(match[group].replace(",", ""))
    return value * 1e6 if match[group + 1] else value


def _close(value: float, stated: float, match: re.Match, group: int) -> bool:
    """`value` rounds to `stated` as written (its decimals; three significant digits for millions)."""
    text = match[group]
    if match[group + 1]:  # "1.7 million"
        return abs(value - stated) <= 0.05 * 10 ** (len(text.split(".")[0]) - 1) * 1e6 + 1e-6
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(value - stated) <= 0.5 * 10**-decimals + 1e-9


def online_retail_lines(export: pd.DataFrame) -> pd.DataFrame:
    """An export in Online Retail's layout -> lines: customer_id (without its '.0'), invoice, at (wall clock), quantity,
    amount (quantity x price), cancelled (an invoice starting with 'C'); rows without a customer left out."""
    rows = export[export["Customer ID"].fillna("").astype(str).str.strip() != ""]
    return pd.DataFrame({
        "customer_id": rows["Customer ID"].astype(str).str.strip().str.removesuffix(".0"),
        "invoice": rows["Invoice"].astype(str),
        "at": pd.to_datetime(rows["InvoiceDate"], format="%m/%d/%Y %H:%M"),
        "quantity": rows["Quantity"],
        "amount": rows["Quantity"] * rows["Price"],
        "cancelled": rows["Invoice"].astype(str).str.startswith("C"),
    })


def cdnow_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """CDNOW as read by `pd.read_csv(sep=r"\\s+", header=0, names=[customer, date, cds, dollars], dtype=str)` ->
    lines (see `online_retail_lines`): one purchase a row, its own invoice, at midnight of its day."""
    return pd.DataFrame({
        "customer_id": raw["customer"],
        "invoice": pd.RangeIndex(len(raw)).astype(str),
        "at": pd.to_datetime(raw["date"], format="%Y%m%d"),
        "quantity": raw["cds"].astype(float),
        "amount": raw["dollars"].astype(float),
        "cancelled": False,
    })


def customer_figures(lines: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per customer id of `lines` (`online_retail_lines`): the figures of the lines before `as_of`, overall and per
    window of WINDOWS days (suffix _<w>)."""
    rows = lines[lines["at"] < as_of].rename(columns={"quantity": "Quantity", "invoice": "Invoice"})
    rows = rows.assign(bought=rows["Quantity"] > 0, day=rows["at"].dt.normalize())

    def figures(frame: pd.DataFrame, suffix: str) -> pd.DataFrame:
        bought = frame[frame["bought"]].groupby("customer_id")
        return pd.DataFrame({
            f"net{suffix}": frame.groupby("customer_id")["amount"].sum(),
            f"gross{suffix}": frame[frame["amount"] > 0].groupby("customer_id")["amount"].sum(),
            f"returned{suffix}": -frame[frame["amount"] < 0].groupby("customer_id")["amount"].sum(),
            f"items{suffix}": bought["Quantity"].sum(),
            f"orders{suffix}": bought["Invoice"].nunique(),
            f"purchase_days{suffix}": bought["day"].nunique(),
            f"invoices{suffix}": frame.groupby("customer_id")["Invoice"].nunique(),
            f"cancelled{suffix}": frame[frame["cancelled"]].groupby("customer_id")["Invoice"].nunique(),
        })

    table = figures(rows, "")
    for window in WINDOWS:
        table = table.join(figures(rows[rows["at"] >= as_of - pd.Timedelta(days=window)], f"_{window}"), how="outer")
    table = table.fillna(0.0)
    days = rows[rows["bought"]].groupby("customer_id")["day"]
    table["last_order"] = rows[rows["bought"]].groupby("customer_id")["at"].max()
    table["gap_mean"] = (days.max() - days.min()).dt.days / (days.nunique() - 1).where(days.nunique() > 1)
    return table


def _checks(as_of: pd.Timestamp) -> list[tuple[str, Callable[[pd.Series, re.Match], tuple[bool, str]]]]:
    def window(frame: pd.Series, name: str, days: str) -> float:
        return float(frame[f"{name}_{days}"])

    def stated(name: str, group: int = 1, days_group: int | None = None):
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            value = window(s, name, m[days_group]) if days_group else float(s[name])
            return _close(value, _number(m, group), m, group), f"{name}={value:.2f}"
        return check

    def zero(name: str, days_group: int = 1, *, at_most: float = 0.0):
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            value = window(s, name, m[days_group])
            return value <= at_most, f"{name}_{m[days_group]}={value:.2f}"
        return check

    def months_since(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        days = (as_of - s["last_order"]).total_seconds() / 86400
        per = DAYS_PER_MONTH if m[2] == "months" else 7
        return abs(days / per - float(m[1])) <= 0.5 + 1e-9, f"days since the last order={days:.1f}"

    def days_since(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        days = (as_of - s["last_order"]).total_seconds() / 86400
        return (abs(days - float(m[1])) <= 0.5 and str(s["last_order"].date()) == m[2],
                f"last order {s['last_order']}, {days:.2f} days before")

    def gap(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        per = DAYS_PER_MONTH if m[2] == "months" else 7
        return abs(s["gap_mean"] / per - float(m[1])) <= 0.5 + 1e-9, f"mean gap {s['gap_mean']:.1f} days"

    def cancelled_share(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        share = 100 * s["cancelled"] / s["invoices"] if s["invoices"] else np.nan
        return abs(share - float(m[1])) <= 0.5, f"cancelled {s['cancelled']:.0f} of {s['invoices']:.0f} invoices"

    def order_value(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        value = s["net"] / s["orders"] if s["orders"] else np.nan
        return _close(value, _number(m, 1), m, 1), f"net spend per order={value:.2f}"

    return [
        (r"^spent nothing, net of returns and refunds, in the last (\d+) days$", zero("net", at_most=0.005)),
        (r"^spent nothing on purchases in the last (\d+) days$", zero("gross")),
        (r"^bought no items in the last (\d+) days$", zero("items")),
        (r"^no purchases in the last (\d+) days$", zero("orders")),
        (r"^no orders in the last (\d+) days$", zero("orders")),
        (r"^their returns and refunds exceeded their purchases in the last (\d+) days$",
         lambda s, m: (s[f"returned_{m[1]}"] > s[f"gross_{m[1]}"], f"returned {s[f'returned_{m[1]}']:.2f}, "
                       f"bought {s[f'gross_{m[1]}']:.2f}")),
        (rf"^had returns and refunds worth {NUMBER}$", stated("returned")),
        (r"^no order for (\d+) days \(last on (\d{4}-\d\d-\d\d)\)$", days_since),
        (r"^on average about (\d+) (weeks|months) between purchase days", gap),
        (rf"^bought on only {NUMBER} days? so far", stated("purchase_days")),
        (rf"^spent only {NUMBER}, net of returns and refunds, in the last (\d+) days", stated("net", 1, 3)),
        (rf"^their net spend in the last (\d+) days \({NUMBER}\) raises", lambda s, m: stated("net", 2, 1)(s, m)),
        (rf"^their total net spend \({NUMBER}\) raises", stated("net")),
        (rf"^their number of orders \({NUMBER} orders?\) raises", stated("orders")),
        (rf"^their number of orders in the last (\d+) days \({NUMBER} orders?\) raises",
         lambda s, m: stated("orders", 2, 1)(s, m)),
        (rf"^their purchase days in the last (\d+) days \({NUMBER} days?\) raises",
         lambda s, m: stated("purchase_days", 2, 1)(s, m)),
        (rf"^only {NUMBER} orders? in the last (\d+) days", stated("orders", 1, 3)),
        (rf"^bought only {NUMBER} items? so far", stated("items")),
        (rf"^bought only {NUMBER} items? in the last (\d+) days", stated("items", 1, 3)),
        (r"^no order for about (\d+) (weeks|months)\b", months_since),
        (r"^(\d+)% of their invoices were cancellations or credit notes$", cancelled_share),
        (rf"^their average order value \({NUMBER}\) raises", order_value),
    ]


def check_sentences(lines: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Each reason sentence of `scores` (an at-risk list: customer_id, as_of, reason_1..) checked against the
    export's `lines` (`online_retail_lines`, `cdnow_lines`): customer_id, sentence, ok (True, False, None when not
    checked here), evidence."""
    as_of = pd.Timestamp(scores["as_of"].iloc[0]).tz_localize(None)
    figures = customer_figures(lines, as_of)
    checks = [(re.compile(pattern), check) for pattern, check in _checks(as_of)]
    columns = [c for c in scores.columns if re.fullmatch(r"reason_\d+", c)]
    sentences = (scores.melt(id_vars="customer_id", value_vars=columns, value_name="sentence")
                 .dropna(subset=["sentence"]))
    results = []
    for customer, sentence in zip(sentences["customer_id"], sentences["sentence"]):
        ok, evidence = None, "not checked"
        for pattern, check in checks:
            if match := pattern.match(sentence):
                ok, evidence = check(figures.loc[customer], match)
                ok = bool(ok)
                break
        results.append((customer, sentence, ok, evidence))
    return pd.DataFrame(results, columns=["customer_id", "sentence", "ok", "evidence"])
