"""An independent check of an at-risk list's reason sentences against the raw export they came from.

Plain pandas on the export as the shop wrote it, never the pipeline's own code, so a sentence the pipeline
computes wrongly is caught here rather than agreed with: `online_retail_lines` (Online Retail's layout: Invoice,
StockCode, Quantity, InvoiceDate, Price, Customer ID; cancellations are invoices starting with "C") and
`cdnow_lines` (CDNOW's: customer, date, CDs, dollars) turn an export into lines (columns customer_id, invoice, at,
quantity, amount, cancelled, product; optional discount and category). Times are the export's wall clock, the
business zone's days (CDNOW's dates are New York's, Online Retail's generated export is UTC).

The tool's definitions, as its docs state them (pipeline/features/tables.py, rfm.py, activity.py, registry.py),
recomputed here: a purchase line has an amount above 0, or of 0 without a negative quantity; every other line is a
return or refund line; an order is an invoice of the customer with a purchase line, timed at its first one; a
credit note or cancellation is an (invoice, time) part without a purchase line whose invoice has none at or before
it; purchase days are the days with a purchase line; windows are the w days before `as_of`'s midnight; the same
season last year is [as_of - 365 d, as_of - 365 d + horizon), said only when the export reaches back to its start;
RFM scores are quintiles among the customers with a purchase in the lookback (the customers a list scores).

`check_sentences(lines, scores, horizon_days=..., lookback_days=...)` -> one row per reason sentence of `scores`
(customer_id, sentence, ok: True/False, or None for a sentence of a kind not checked here, evidence: the recomputed
values).
Checked: the figures a sentence states (counts, amounts, durations, shares, trends, dates) and the windows they
are counted in, each allowing only the rounding of the wording that printed it (pipeline/wording.py: whole days,
weeks, months, half years; money by size; whole percentages; two decimals of a trend). Not checked: comparisons
with "the typical customer" (the population they are taken over is the pipeline's snapshot, not this export),
the ratio to the expected gap (it shrinks toward the population's), the purchase models' estimates, and what other
sources say (feedback, tickets, deliveries, loyalty, customer attributes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

WINDOWS = (14, 30, 60, 90, 180, 365)
TREND_DAYS = 90  # spending and visit trends: the last TREND_DAYS against the TREND_DAYS before
SEASON_LAG_DAYS = 365
# The RFM segment of each (recency score, frequency score) cell, in the words the list uses (the common grid).
SEGMENTS = {
    1: "lost lost at_risk at_risk cant_lose", 2: "hibernating hibernating at_risk at_risk cant_lose",
    3: "about_to_sleep about_to_sleep need_attention loyal loyal",
    4: "promising potential_loyalist potential_loyalist loyal loyal",
    5: "new potential_loyalist potential_loyalist champions champions",
}
SEGMENT_WORDS = {
    "champions": "best customers (recent, frequent buyers)", "loyal": "loyal customers",
    "potential_loyalist": "customers who could become loyal", "new": "recent buyers with few orders so far",
    "promising": "fairly recent buyers with few orders so far", "need_attention": "customers who need attention",
    "about_to_sleep": "customers about to lapse", "at_risk": "regular customers who have gone quiet",
    "cant_lose": "former frequent buyers who have gone quiet", "hibernating": "customers inactive for a long time",
    "lost": "lost customers",
}
CUT_DAYS = 30  # a customer whose first line is this close to the export's first may have a history before it
NUMBER = r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)( million)?"
DAYS = r"(less than a day|1 day|[0-9,]+ days|about [0-9.]+ (?:weeks|months|years))"
SHARE = r"(less than 1%|more than 99%|[0-9]+%)"
TREND = r"([+-][0-9]\.[0-9]{2})"
DATE = r"(\d{4}-\d\d-\d\d)"


def _number(match: re.Match, group: int) -> float:
    value = float(match[group].replace(",", ""))
    return value * 1e6 if match[group + 1] else value


def _close(value: float, stated: float, match: re.Match, group: int) -> bool:
    """`value` rounds to `stated` as written: half a unit of its last decimal ("2.3 million": 0.05 million)."""
    text = match[group]
    decimals = len(text.split(".")[1]) if "." in text else 0
    unit = 1e6 if match[group + 1] else 1.0
    return abs(value - stated) <= 0.5 * 10**-decimals * unit + 1e-9 * unit


def _days_close(days: float, text: str) -> bool:
    """`days` (fractional) said as `text` by the days wording: allows its rounding to whole days, weeks, months
    (365.25 / 12 days) or half years."""
    if not np.isfinite(days):
        return False
    if text == "less than a day":
        return 0 <= days < 1
    stated = float(re.search(r"[0-9][0-9,.]*", text)[0].replace(",", ""))
    per, half = next((per, half) for unit, per, half in (
        ("weeks", 7, 0.5), ("months", 365.25 / 12, 0.5), ("years", 365.25, 0.25), ("day", 1, 0.5)) if unit in text)
    return abs(days / per - stated) <= half + 1e-9


def _share_close(share: float, text: str) -> bool:
    """`share` (0..1) said as `text`: whole percentages (allows rounding by half a point), 'less than 1%' above 0,
    'more than 99%' below 1."""
    if not np.isfinite(share):
        return False
    if text == "less than 1%":
        return 0 < share < 0.005 + 1e-12
    if text == "more than 99%":
        return 0.995 - 1e-12 < share < 1
    return abs(100 * share - float(text[:-1])) <= 0.5 + 1e-9


def _trend_close(trend: float, text: str) -> bool:
    """A trend said to two decimals (allows rounding by 0.005)."""
    return bool(np.isfinite(trend)) and abs(trend - float(text)) <= 0.005 + 1e-9


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else np.nan


def online_retail_lines(export: pd.DataFrame) -> pd.DataFrame:
    """An export in Online Retail's layout -> lines: customer_id (without its '.0'), invoice, at (wall clock), quantity,
    amount (quantity x price), cancelled (an invoice starting with 'C'), product (StockCode); rows without a
    customer left out."""
    rows = export[export["Customer ID"].fillna("").astype(str).str.strip() != ""]
    return pd.DataFrame({
        "customer_id": rows["Customer ID"].astype(str).str.strip().str.removesuffix(".0"),
        "invoice": rows["Invoice"].astype(str),
        "at": pd.to_datetime(rows["InvoiceDate"], format="%m/%d/%Y %H:%M"),
        "quantity": rows["Quantity"],
        "amount": rows["Quantity"] * rows["Price"],
        "cancelled": rows["Invoice"].astype(str).str.startswith("C"),
        "product": rows["StockCode"].astype(str),
    })


def cdnow_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """CDNOW as read by `pd.read_csv(sep=r"\\s+", header=0, names=[customer, date, cds, dollars], dtype=str)` ->
    lines (see `online_retail_lines`): one purchase a row, its own invoice, at midnight of its day, no product."""
    return pd.DataFrame({
        "customer_id": raw["customer"],
        "invoice": pd.RangeIndex(len(raw)).astype(str),
        "at": pd.to_datetime(raw["date"], format="%Y%m%d"),
        "quantity": raw["cds"].astype(float),
        "amount": raw["dollars"].astype(float),
        "cancelled": False,
        "product": None,
    })


def _credits(rows: pd.DataFrame) -> pd.Series:
    """Per customer: (invoice, time) parts without a purchase line whose invoice has no purchase line at or before."""
    parts = (rows.groupby(["customer_id", "invoice", "at"])["bought"].any().reset_index()
             .sort_values(["customer_id", "invoice", "at"]))
    bought_so_far = parts.groupby(["customer_id", "invoice"])["bought"].cummax()
    return parts[~bought_so_far].groupby("customer_id").size()


def rfm_scores(figures: pd.DataFrame, as_of: pd.Timestamp, *, lookback_days: int = 365) -> pd.DataFrame:
    """Quintile scores 1..5 (5 = most recent, most orders, highest net spend; ceil(average rank x 5 / n)) among the
    customers with a purchase in the `lookback_days` before `as_of` (the customers a list scores), and their segment
    (SEGMENTS); NaN for the others."""
    scored = figures[figures["last_order"] >= as_of - pd.Timedelta(days=lookback_days)]

    def quintile(values: pd.Series) -> pd.Series:
        return np.ceil(values.rank(method="average") * 5 / len(values)).clip(1, 5)

    scores = pd.DataFrame({"r_score": quintile(scored["last_order"].astype("int64")),  # later: more recent
                           "f_score": quintile(scored["orders"]), "m_score": quintile(scored["net"])})
    scores["segment"] = [SEGMENTS[int(r)].split()[int(f) - 1] for r, f in zip(scores["r_score"], scores["f_score"])]
    return scores


def _discounts_and_categories(purchases: pd.DataFrame) -> pd.DataFrame:
    """Per customer of purchase lines with the optional columns discount and category: discount_share (order parts
    with a discount among those whose discount is known), categories (distinct), top_category (highest spend; ties:
    first by name); NaN or None without the column."""
    result = pd.DataFrame(index=pd.Index(purchases["customer_id"].unique(), name="customer_id"))
    if "discount" in purchases:
        parts = purchases.assign(known=purchases["discount"].notna(), discounted=purchases["discount"] > 0).groupby(
            ["customer_id", "invoice", "at"])[["known", "discounted"]].any().groupby("customer_id").sum()
        result["discount_share"] = (parts["discounted"] / parts["known"]).where(parts["known"] > 0)
    if "category" in purchases:
        spend = purchases.dropna(subset=["category"]).groupby(["customer_id", "category"])["amount"].sum().reset_index()
        result["categories"] = spend.groupby("customer_id").size()
        top = spend.sort_values(["customer_id", "amount", "category"], ascending=[True, False, True])
        result["top_category"] = top.drop_duplicates("customer_id").set_index("customer_id")["category"]
    return result


def customer_figures(lines: pd.DataFrame, as_of: pd.Timestamp, *, horizon_days: int = 90,
                     windows: Iterable[int] = WINDOWS, lookback_days: int = 365) -> pd.DataFrame:
    """Per customer id of `lines` (`online_retail_lines`): the figures of the lines before `as_of`, overall and per
    window of `windows` days (suffix _<w>; WINDOWS always), the times of their first and last lines, the same
    season last year, and `rfm_scores`."""
    rows = lines[lines["at"] < as_of]
    bought = (rows["amount"] > 0) | ((rows["amount"] == 0) & (rows["quantity"].fillna(0) >= 0))
    rows = rows.assign(bought=bought, day=rows["at"].dt.normalize())
    purchases = rows[rows["bought"]]
    order_start = purchases.groupby(["customer_id", "invoice"])["at"].min().reset_index()

    def figures(frame: pd.DataFrame, since: pd.Timestamp, suffix: str) -> pd.DataFrame:
        frame = frame[frame["at"] >= since]
        bought = frame[frame["bought"]].groupby("customer_id")
        return pd.DataFrame({
            f"net{suffix}": frame.groupby("customer_id")["amount"].sum(),
            f"gross{suffix}": bought["amount"].sum(),
            f"returned{suffix}": -frame[~frame["bought"]].groupby("customer_id")["amount"].sum(),
            f"items{suffix}": bought["quantity"].sum(),
            f"orders{suffix}": order_start[order_start["at"] >= since].groupby("customer_id").size(),
            f"purchase_days{suffix}": bought["day"].nunique(),
            f"products{suffix}": bought["product"].nunique(),
        })

    table = figures(rows, pd.Timestamp.min, "")
    for window in sorted({*WINDOWS, *windows}):
        table = table.join(figures(rows, as_of - pd.Timedelta(days=window), f"_{window}"), how="outer")
    season_start = as_of - pd.Timedelta(days=SEASON_LAG_DAYS)
    in_season = purchases[(purchases["at"] >= season_start)
                          & (purchases["at"] < season_start + pd.Timedelta(days=horizon_days))]
    table = table.join(pd.DataFrame({
        "purchase_lines": purchases.groupby("customer_id").size(),
        "return_lines": rows[~rows["bought"]].groupby("customer_id").size(),
        "credits": _credits(rows),
        "season_days": in_season.groupby("customer_id")["day"].nunique(),
    }), how="outer").fillna(0.0).join(_discounts_and_categories(purchases))
    days = purchases[["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"])
    gaps = days.assign(gap=days.groupby("customer_id")["day"].diff().dt.days).groupby("customer_id")["gap"]
    by_day = days.groupby("customer_id")["day"]
    table = table.join(pd.DataFrame({
        "first_event": rows.groupby("customer_id")["at"].min(),
        "first_purchase": purchases.groupby("customer_id")["at"].min(),
        "last_order": purchases.groupby("customer_id")["at"].max(),
        "gap_mean": (by_day.max() - by_day.min()).dt.days / (by_day.size() - 1).where(by_day.size() > 1),
        "gap_last": gaps.last(),
    }))
    return table.join(rfm_scores(table, as_of, lookback_days=lookback_days))


Check = Callable[[pd.Series, re.Match], tuple[bool, str]]


def _checks(as_of: pd.Timestamp, *, horizon_days: int, data_start: pd.Timestamp) -> list[tuple[str, Check]]:
    season_start = as_of - pd.Timedelta(days=SEASON_LAG_DAYS)
    season_end = season_start + pd.Timedelta(days=horizon_days)
    covered = data_start <= season_start  # the tool says nothing of a season the export does not reach back to

    def window(frame: pd.Series, name: str, days: str) -> float:
        return float(frame[f"{name}_{days}"])

    def stated(name: str, group: int = 1, days_group: int | None = None) -> Check:
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            value = window(s, name, m[days_group]) if days_group else float(s[name])
            return _close(value, _number(m, group), m, group), f"{name}={value:.2f}"
        return check

    def zero(name: str, days_group: int = 1, *, at_most: float = 0.0) -> Check:
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            value = window(s, name, m[days_group])
            return value <= at_most, f"{name}_{m[days_group]}={value:.2f}"
        return check

    def equals(name: str, value: float) -> Check:
        return lambda s, m: (float(s[name]) == value, f"{name}={float(s[name]):.2f}")

    def since_days(name: str) -> Callable[[pd.Series], float]:
        return lambda s: (as_of - s[name]).total_seconds() / 86400 if pd.notna(s[name]) else np.nan

    def duration(value_of: Callable[[pd.Series], float], what: str, group: int = 1) -> Check:
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            value = value_of(s)
            return _days_close(value, m[group]), f"{what}={value:.2f} days"
        return check

    def recency(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        days = since_days("last_order")(s)
        date_ok = m[2] is None or str(s["last_order"].date()) == m[2]
        return _days_close(days, m[1]) and date_ok, f"last order {s['last_order']}, {days:.2f} days before"

    def time_as_customer(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        # since their first line of any kind (a refund before the first purchase: a customer before it); not
        # knowable of a customer whose first line is in the export's first CUT_DAYS (a history the export may cut)
        days = since_days("first_event")(s)
        whole = s["first_event"] >= data_start + pd.Timedelta(days=CUT_DAYS)
        return (_days_close(days, m[1]) and whole,
                f"first line {s['first_event']} ({days:.2f} days), data from {data_start}")

    def share(part: Callable[[pd.Series], float], whole: Callable[[pd.Series], float], what: str) -> Check:
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            value = _ratio(part(s), whole(s))
            return _share_close(value, m[1]), f"{what}: {part(s):.2f} of {whole(s):.2f}"
        return check

    def trend(recent: Callable[[pd.Series], float], earlier: Callable[[pd.Series], float], what: str) -> Check:
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            r, e = recent(s), earlier(s)
            value = _ratio(r - e, abs(r) + abs(e))
            return _trend_close(value, m[1]), f"{what}: last {TREND_DAYS} days {r:.2f}, the {TREND_DAYS} before {e:.2f}"
        return check

    def order_value(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        value = _ratio(s["net"], s["orders"])
        return _close(value, _number(m, 1), m, 1), f"net spend per order={value:.2f}"

    def lines_per_order(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        value = _ratio(s["purchase_lines"], s["orders"])
        return _close(value, _number(m, 1), m, 1), f"{s['purchase_lines']:.0f} purchase lines, {s['orders']:.0f} orders"

    def season(s: pd.Series) -> str:
        return (f"season {season_start.date()}..{season_end.date()} (data from {data_start}): {s['season_days']:.0f} "
                f"purchase days; first line {s['first_event']}, first purchase {s['first_purchase']}")

    def no_season_purchase(s: pd.Series, m: re.Match) -> tuple[bool, str]:  # a customer then, who did not buy
        return covered and s["season_days"] == 0 and s["first_purchase"] < season_start, season(s)

    def not_a_customer_yet(s: pd.Series, m: re.Match) -> tuple[bool, str]:  # no line of any kind before its end
        return covered and s["first_event"] >= season_end, season(s)

    def first_purchase_after(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        return covered and s["first_purchase"] >= season_end, season(s)

    def season_days(s: pd.Series, m: re.Match) -> tuple[bool, str]:
        return covered and _close(s["season_days"], _number(m, 1), m, 1), season(s)

    def earlier(name: str) -> Callable[[pd.Series], float]:  # in the TREND_DAYS before the last TREND_DAYS
        return lambda s: s[f"{name}_{2 * TREND_DAYS}"] - s[f"{name}_{TREND_DAYS}"]

    def recent(name: str) -> Callable[[pd.Series], float]:
        return lambda s: s[f"{name}_{TREND_DAYS}"]

    def score(letter: str) -> Check:
        def check(s: pd.Series, m: re.Match) -> tuple[bool, str]:
            return float(s[f"{letter}_score"]) == float(m[1]), f"{letter}_score={s[f'{letter}_score']}"
        return check

    raises = r"\) raises their predicted risk$"
    words = {text: code for code, text in SEGMENT_WORDS.items()}
    return [
        # Spend
        (r"^spent nothing, net of returns and refunds, in the last (\d+) days$", zero("net", at_most=0.005)),
        (r"^spent nothing on purchases in the last (\d+) days$", zero("gross")),
        (r"^their returns and refunds exceeded their purchases in the last (\d+) days$",
         lambda s, m: (s[f"returned_{m[1]}"] > s[f"gross_{m[1]}"], f"returned {s[f'returned_{m[1]}']:.2f}, "
                       f"bought {s[f'gross_{m[1]}']:.2f}")),
        (r"^their returns and refunds exceeded their purchases since their history starts$",
         lambda s, m: (s["returned"] > s["gross"], f"returned {s['returned']:.2f}, bought {s['gross']:.2f}")),
        (rf"^had returns and refunds worth {NUMBER}$", stated("returned")),
        (rf"^spent only {NUMBER}, net of returns and refunds, in the last (\d+) days", stated("net", 1, 3)),
        (rf"^spent only {NUMBER} in total, net of returns and refunds", stated("net")),
        (rf"^their net spend in the last (\d+) days \({NUMBER}{raises}", lambda s, m: stated("net", 2, 1)(s, m)),
        (rf"^their total net spend \({NUMBER}{raises}", stated("net")),
        (rf"^bought goods worth only {NUMBER} in total \(before returns\)", stated("gross")),
        (rf"^bought goods worth only {NUMBER} in the last (\d+) days \(before returns\)", stated("gross", 1, 3)),
        (rf"^average order worth only {NUMBER} net of returns and refunds", order_value),
        (rf"^their average order value \({NUMBER}{raises}", order_value),
        (rf"^spending is falling \(trend {TREND}: last {TREND_DAYS} days vs the {TREND_DAYS} before\)$",
         trend(recent("net"), earlier("net"), "net spend")),
        (rf"^their spend trend \({TREND}{raises}", trend(recent("net"), earlier("net"), "net spend")),
        # Orders and purchase days
        (r"^no purchases in the last (\d+) days$", zero("orders")),
        (r"^no orders in the last (\d+) days$", zero("orders")),
        (r"^has ordered only once so far$", equals("orders", 1)),
        (rf"^only {NUMBER} orders? so far", stated("orders")),
        (rf"^only {NUMBER} orders? in the last (\d+) days", stated("orders", 1, 3)),
        (rf"^their number of orders \({NUMBER} orders?{raises}", stated("orders")),
        (rf"^their number of orders in the last (\d+) days \({NUMBER} orders?{raises}",
         lambda s, m: stated("orders", 2, 1)(s, m)),
        (r"^has bought on one day only so far$", equals("purchase_days", 1)),
        (rf"^bought on only {NUMBER} days? so far", stated("purchase_days")),
        (rf"^bought on only {NUMBER} days? in the last (\d+) days", stated("purchase_days", 1, 3)),
        (rf"^their number of purchase days \({NUMBER} days?{raises}", stated("purchase_days")),
        (rf"^their purchase days in the last (\d+) days \({NUMBER} days?{raises}",
         lambda s, m: stated("purchase_days", 2, 1)(s, m)),
        (rf"^visits are falling \(trend {TREND}: last {TREND_DAYS} days vs the {TREND_DAYS} before\)$",
         trend(recent("purchase_days"), earlier("purchase_days"), "purchase days")),
        (rf"^their visit trend \({TREND}{raises}", trend(recent("purchase_days"), earlier("purchase_days"),
                                                        "purchase days")),
        # Items, products, lines
        (rf"^bought only {NUMBER} items? so far", stated("items")),
        (rf"^bought only {NUMBER} items? in the last (\d+) days", stated("items", 1, 3)),
        (r"^bought no items in the last (\d+) days$", zero("items")),
        (rf"^bought only {NUMBER} different products? so far", stated("products")),
        (rf"^bought only {NUMBER} different products? in the last (\d+) days", stated("products", 1, 3)),
        (r"^bought no products in the last (\d+) days$", zero("products")),
        (rf"^about {NUMBER} lines per order", lines_per_order),
        # Returns and cancellations
        (r"^had ([0-9,]+|1) return or refund lines?$",
         lambda s, m: (s["return_lines"] == float(m[1].replace(",", "")), f"return lines={s['return_lines']:.0f}")),
        (r"^([0-9,]+) cancelled or credited invoices?$",
         lambda s, m: (s["credits"] == float(m[1].replace(",", "")), f"credit parts={s['credits']:.0f}")),
        (rf"^{SHARE} of their invoices were cancellations or credit notes$",
         share(lambda s: s["credits"], lambda s: s["credits"] + s["orders"], "credit parts of credits and orders")),
        (rf"^{SHARE} of their order lines were returns or refunds$",
         share(lambda s: s["return_lines"], lambda s: s["return_lines"] + s["purchase_lines"], "return lines")),
        (rf"^returns and refunds were {SHARE} of the money they moved$",
         share(lambda s: s["returned"], lambda s: s["returned"] + s["gross"], "returned of returned and bought")),
        # Times
        (rf"^no order for {DAYS}(?: \(last on {DATE}\))?(?:,|$)", recency),
        (rf"^their time since the last order \({DAYS},", duration(since_days("last_order"), "since the last order")),
        (rf"^a customer for only {DAYS}, shorter", time_as_customer),
        (rf"^their time as a customer \({DAYS}{raises}", time_as_customer),
        (rf"^the time since their first purchase on record \({DAYS}{raises}",
         duration(since_days("first_purchase"), "since the first purchase")),
        (rf"^on average {DAYS} between purchase days", duration(lambda s: s["gap_mean"], "mean gap")),
        (rf"^their average time between purchase days \({DAYS}{raises}", duration(lambda s: s["gap_mean"], "mean gap")),
        (rf"^waited {DAYS} between their last two purchase days", duration(lambda s: s["gap_last"], "last gap")),
        (rf"^the time between their last two purchase days \({DAYS}{raises}",
         duration(lambda s: s["gap_last"], "last gap")),
        # Discounts and categories (layouts with those columns)
        (rf"^{SHARE} of their orders used a discount$",
         lambda s, m: (_share_close(float(s.get("discount_share", np.nan)), m[1]),
                       f"discount_share={s.get('discount_share', np.nan)}")),
        (r"^buys from only ([0-9,]+|1) categor(?:y|ies),",
         lambda s, m: (float(s.get("categories", np.nan)) == float(m[1].replace(",", "")),
                       f"categories={s.get('categories', np.nan)}")),
        (r"^mostly buys (.+)$", lambda s, m: (s.get("top_category") == m[1], f"top_category={s.get('top_category')}")),
        # RFM scores and segments
        *[(rf"^(?:low {word} score \(|their {word} score \()([1-5]) of 5\)", score(letter))
          for letter, word in (("r", "recency"), ("f", "frequency"), ("m", "spend"))],
        (r"^in the RFM segment of (.+)$", lambda s, m: (words.get(m[1]) == s["segment"], f"segment={s['segment']}")),
        # The same season last year
        (r"^did not buy in the same season last year$", no_season_purchase),
        (r"^was not a customer yet in the same season last year$", not_a_customer_yet),
        (r"^made their first purchase on record after the same season last year$", first_purchase_after),
        (rf"^their purchase days in the same season last year \({NUMBER} days?{raises}", season_days),
    ]


def check_sentences(lines: pd.DataFrame, scores: pd.DataFrame, *, horizon_days: int = 90,
                    lookback_days: int = 365) -> pd.DataFrame:
    """Each reason sentence of `scores` (an at-risk list: customer_id, as_of, reason_1..) checked against the
    export's `lines` (`online_retail_lines`, `cdnow_lines`), `horizon_days` and `lookback_days` the config's:
    customer_id, sentence, ok (True, False, None when not checked here), evidence. A sentence about a customer
    without a line before `as_of` is false."""
    as_of = pd.Timestamp(scores["as_of"].iloc[0]).tz_localize(None)
    columns = [c for c in scores.columns if re.fullmatch(r"reason_\d+", c)]
    sentences = (scores.melt(id_vars="customer_id", value_vars=columns, value_name="sentence")
                 .dropna(subset=["sentence"]))
    windows = sentences["sentence"].str.extractall(r"in the last (\d+) days")[0].astype(int).unique()
    figures = customer_figures(lines, as_of, horizon_days=horizon_days, windows=windows, lookback_days=lookback_days)
    checks = [(re.compile(pattern), check)
              for pattern, check in _checks(as_of, horizon_days=horizon_days, data_start=lines["at"].min())]
    results = []
    for customer, sentence in zip(sentences["customer_id"], sentences["sentence"]):
        ok, evidence = None, "not checked"
        for pattern, check in checks:
            if match := pattern.match(sentence):
                if customer not in figures.index:
                    ok, evidence = False, "no line of this customer before as_of"
                else:
                    ok, evidence = check(figures.loc[customer], match)
                    ok = bool(ok)
                break
        results.append((customer, sentence, ok, evidence))
    return pd.DataFrame(results, columns=["customer_id", "sentence", "ok", "evidence"])
