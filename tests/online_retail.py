"""A seeded export shaped like the UCI "Online Retail (II)" data, for end-to-end tests.

`online_retail_export` returns the export as text columns, the way the shop writes it:

    Invoice, StockCode, Description, Quantity, InvoiceDate, Price, Customer ID, Country

with the quirks of the real file:
- `InvoiceDate` in US order without seconds (`12/1/2010 8:26`), several invoices of a customer on the
  same day, some in the same minute;
- `Customer ID` as float text (`17850.0`), blank on about a quarter of the rows (guest checkouts);
- cancellations: invoice `C<number>`, negative Quantity, a few days after the invoice they cancel, and
  returns of goods bought before the export starts (a `C` invoice in the first weeks with nothing before);
- non-product lines: POST (postage), M (manual), D (discount, on cancellations), BANK CHARGES,
  AMAZONFEE (guest rows, as in the real file), and bad-debt adjustments (invoice `A<number>`, negative
  price, no customer);
- some prices of 0, descriptions with commas, blank descriptions;
- wholesalers with baskets of 50-300 lines and quantities in the hundreds;
- customers already active when the export starts (left-censored) beside customers acquired later.

The churn signal: each customer buys at a steady rate until a lifetime ends (exponential, mean
`lifetime_days`), slows to a fifth of that rate over the 90 days before, and never buys again. Recency
and the recent purchase rate therefore predict a 90-day churn label, as BG/NBD assumes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
RENAME = {"Invoice": "order_id", "StockCode": "product_id", "Quantity": "quantity", "InvoiceDate": "ordered_at",
          "Price": "unit_price", "Customer ID": "customer_id"}
PRODUCTS = 400
FIRST_INVOICE = 489434
FIRST_CUSTOMER = 12346
COUNTRIES = np.array(["United Kingdom"] * 9 + ["Germany", "France", "EIRE", "Netherlands", "Spain"])
SLOWDOWN_DAYS = 90


def online_retail_export(
    customers: int = 800,
    *,
    seed: int = 0,
    start: str = "2009-12-01",
    months: int = 18,
    lifetime_days: float = 420.0,
    guest_share: float = 0.25,
) -> pd.DataFrame:
    """The export's rows (text and number columns of COLUMNS), in invoice order like the real file.

    About `guest_share` of the buyers are guests (a blank Customer ID); `customers` registered customers,
    those with at least one row in the export appear (a few censored ones buy nothing in it).
    """
    rng = np.random.default_rng(seed)
    begin = pd.Timestamp(start)
    span_days = float((begin + pd.DateOffset(months=months) - begin).days)
    guests = int(round(customers * guest_share / (1 - guest_share)))
    people = customers + guests

    # Per person: first purchase day (35% active before the export: day 0, a later first purchase
    # otherwise), purchase days per day, end of the lifetime, wholesaler flag.
    censored = rng.random(people) < 0.35
    first = np.where(censored, 0.0, rng.uniform(0, span_days * 0.85, people))
    rate = rng.gamma(1.2, 1 / 45, people)  # mean one purchase day in ~38 days
    death = first + rng.exponential(lifetime_days, people)
    wholesaler = rng.random(people) < 0.01

    # Purchase days: Poisson counts in [first, slowdown) at the rate and in [slowdown, death) at a fifth
    # of it (all cut at the export's end); registered people's first purchase is their acquisition day.
    stop = np.minimum(death, span_days)
    slow = np.clip(death - SLOWDOWN_DAYS, first, stop)
    steady_n = rng.poisson(rate * (slow - first))
    slow_n = rng.poisson(rate / 5 * (stop - slow))
    person = np.r_[np.arange(people), np.repeat(np.arange(people), steady_n), np.repeat(np.arange(people), slow_n)]
    low = np.r_[first, first[np.repeat(np.arange(people), steady_n)], slow[np.repeat(np.arange(people), slow_n)]]
    high = np.r_[first, slow[np.repeat(np.arange(people), steady_n)], stop[np.repeat(np.arange(people), slow_n)]]
    day = np.floor(low + rng.random(len(low)) * (high - low))
    # Censored people were buying before the export; their acquisition day is no purchase of its own.
    keep = (np.arange(len(person)) >= people) | ~censored[np.minimum(person, people - 1)]
    person, day = person[keep], day[keep]

    # Invoices: 1-4 per purchase day, minutes apart (a third in the same minute as the one before).
    per_day = 1 + rng.poisson(0.5, len(person))
    invoice_person = np.repeat(person, per_day)
    visit_minute = rng.integers(7 * 60, 19 * 60, len(person))
    step = _ranks_within(np.repeat(np.arange(len(person)), per_day))
    gap = np.where(rng.random(len(step)) < 0.33, 0, rng.integers(1, 15, len(step)))
    minute = np.repeat(visit_minute, per_day) + step * gap
    invoice_at = begin + pd.to_timedelta(np.repeat(day, per_day) * 1440 + np.minimum(minute, 23 * 60 + 59),
                                         unit="min")

    # Lines: geometric (mean 6) per invoice, 50-300 for wholesalers; quantities of packs, hundreds
    # for wholesalers; a product's price, 1% of lines free; a postage line on 10% of invoices.
    big = wholesaler[invoice_person]
    lines = np.where(big, rng.integers(50, 301, len(invoice_person)), rng.geometric(1 / 6, len(invoice_person)))
    invoice_of_line = np.repeat(np.arange(len(invoice_person)), lines)
    n = len(invoice_of_line)
    product = (PRODUCTS * rng.random(n) ** 2).astype(np.int64)  # a few best sellers
    quantity = np.where(big[invoice_of_line], rng.integers(100, 1001, n),
                        rng.choice([1, 1, 2, 3, 4, 6, 12, 12, 24], n))
    code, description, base_price = _catalogue(rng)
    price = np.where(rng.random(n) < 0.01, 0.0, base_price[product])
    lines_frame = pd.DataFrame({
        "invoice": invoice_of_line, "StockCode": code[product], "Description": description[product],
        "Quantity": quantity, "Price": price,
    })
    postage = np.flatnonzero(rng.random(len(invoice_person)) < 0.10)
    extras = pd.DataFrame({"invoice": postage, "StockCode": np.where(rng.random(len(postage)) < 0.8, "POST", "M"),
                           "Description": "POSTAGE", "Quantity": 1, "Price": 18.0})
    lines_frame = pd.concat([lines_frame, extras], ignore_index=True)

    # Cancellations: 4% of invoices are cancelled 0-20 days later (a 'C' invoice with the first line
    # negated, a discount line on a tenth); 15% of censored registered people return goods bought before
    # the export in its first 30 days.
    cancelled = np.flatnonzero(rng.random(len(invoice_person)) < 0.04)
    first_lines = lines_frame.drop_duplicates("invoice").set_index("invoice").loc[cancelled].reset_index()
    first_lines["Quantity"] = -np.abs(first_lines["Quantity"])
    cancel_minute = ((invoice_at[cancelled] - begin) / pd.Timedelta(minutes=1)
                     + rng.integers(0, 20 * 1440, len(cancelled)))
    cancel_at = begin + pd.to_timedelta(np.minimum(cancel_minute, span_days * 1440 - 1), unit="min")
    returners = np.flatnonzero(censored[:customers] & (rng.random(customers) < 0.15))
    return_product = rng.integers(0, PRODUCTS, len(returners))
    returns = pd.DataFrame({"invoice": np.arange(len(returners)), "StockCode": code[return_product],
                            "Description": description[return_product],
                            "Quantity": -rng.integers(1, 13, len(returners)), "Price": base_price[return_product]})
    return_at = begin + pd.to_timedelta(rng.integers(0, 30 * 1440, len(returners)), unit="min")
    credit_person = np.r_[invoice_person[cancelled], returners]
    credit_at = cancel_at.append(return_at)
    credits = pd.concat([first_lines.assign(invoice=np.arange(len(cancelled))),
                         returns.assign(invoice=returns["invoice"] + len(cancelled))], ignore_index=True)
    discounted = np.flatnonzero(rng.random(len(cancelled)) < 0.1)
    credits = pd.concat([credits, pd.DataFrame({"invoice": discounted, "StockCode": "D", "Description": "Discount",
                                                "Quantity": -1, "Price": 5.0})], ignore_index=True)

    # Fees without a customer (as in the real file): AMAZONFEE and BANK CHARGES credits, bad-debt adjustments.
    fee_at = begin + pd.to_timedelta(rng.integers(0, int(span_days) * 1440, 6), unit="min")
    fees = pd.DataFrame({"StockCode": ["AMAZONFEE", "AMAZONFEE", "BANK CHARGES", "AMAZONFEE", "B", "B"],
                         "Description": ["AMAZON FEE", "AMAZON FEE", "Bank Charges", "AMAZON FEE",
                                         "Adjust bad debt", "Adjust bad debt"],
                         "Quantity": [-1, -1, -1, 1, 1, 1],
                         "Price": [5575.28, 235.1, 15.0, 13541.33, -11062.06, -53594.36]})

    # Invoice numbers in time order; 'C' for credits, 'A' for adjustments.
    sale_number = _numbers_in_time_order(invoice_at)
    credit_number = _numbers_in_time_order(credit_at) + len(invoice_at)
    sales = lines_frame.assign(
        Invoice=sale_number[lines_frame["invoice"]].astype(str),
        at=invoice_at[lines_frame["invoice"]], person=invoice_person[lines_frame["invoice"]])
    credit_rows = credits.assign(
        Invoice="C" + credit_number[credits["invoice"]].astype(str),
        at=credit_at[credits["invoice"]], person=credit_person[credits["invoice"]])
    fee_prefix = np.select([fees["StockCode"] == "B", fees["Quantity"] < 0], ["A", "C"], "")
    fee_rows = fees.assign(Invoice=fee_prefix + pd.Series(
        FIRST_INVOICE + np.arange(900_000, 900_006)).astype(str), at=fee_at, person=-1)
    rows = pd.concat([sales, credit_rows, fee_rows], ignore_index=True).drop(columns="invoice")
    rows = rows.sort_values(["at", "Invoice"], kind="stable").reset_index(drop=True)

    registered = (rows["person"] >= 0) & (rows["person"] < customers)
    rows["Customer ID"] = np.where(registered, (FIRST_CUSTOMER + rows["person"]).astype(str) + ".0", "")
    rows["Country"] = COUNTRIES[rng.integers(0, len(COUNTRIES), people)][rows["person"].clip(0)]
    at = pd.DatetimeIndex(rows["at"])
    rows["InvoiceDate"] = (at.month.astype(str) + "/" + at.day.astype(str) + "/" + at.year.astype(str) + " "
                           + at.hour.astype(str) + ":" + pd.Index(at.minute).map("{:02d}".format))
    return rows[COLUMNS]


def _catalogue(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Product codes (5 digits, some with a letter), descriptions (a few with commas, 2% blank), prices."""
    digits = rng.choice(np.arange(10000, 90000), PRODUCTS, replace=False).astype(str)
    letter = np.where(rng.random(PRODUCTS) < 0.2, rng.choice(list("ABCDEFGHJKLMNPS"), PRODUCTS), "")
    code = np.char.add(digits, letter)
    description = np.char.add("ITEM ", code).astype(object)
    description[::17] = np.char.add(description[::17].astype(str), ", SET OF 3")
    description[rng.random(PRODUCTS) < 0.02] = ""
    price = np.round(rng.lognormal(1.0, 0.8, PRODUCTS), 2)
    return code, description, price


def _ranks_within(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted `group` array."""
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    return np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))


def _numbers_in_time_order(at: pd.DatetimeIndex) -> np.ndarray:
    """Invoice numbers FIRST_INVOICE.. given in the order of `at` (ties by position)."""
    number = np.empty(len(at), dtype=np.int64)
    number[np.argsort(at.to_numpy(), kind="stable")] = FIRST_INVOICE + np.arange(len(at))
    return number
