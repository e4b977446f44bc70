"""Transactions with the shapes of real purchase logs, for feature and training tests.

Each generator returns a contract-shaped transactions frame (order_id, customer_id, ordered_at UTC,
amount, quantity, product_id, category), seeded, with customer ids prefixed by the shape's name so
that shapes can be concatenated (`real_shapes`). The history runs from `start` to `end`
(half-open); the shapes are the ones real exports have and the demo shop lacks:

- `same_day_invoices`: every visit is a burst of 2-5 invoices a few minutes apart;
- `returns_before_history`: the first rows of a customer are returns (negative amounts) of goods
  bought before the history started, so net spend can be negative;
- `wholesalers`: few customers with huge baskets (50-300 lines, quantities in the hundreds);
- `mid_stream`: customers already active when the export starts: their first rows fall in the
  first days of the data (left-censored histories);
- `seasonal_buyers`: customers who buy only in November and December, every year.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2022-01-01", tz="UTC")
END = pd.Timestamp("2024-07-01", tz="UTC")
COLUMNS = ["order_id", "customer_id", "ordered_at", "amount", "quantity", "product_id", "category"]
PRODUCTS = 200


def _frame(customer, order, at, amount, quantity, product, *, prefix: str) -> pd.DataFrame:
    """Arrays of equal length -> a transactions frame sorted by (customer, time)."""
    frame = pd.DataFrame({
        "order_id": [f"{prefix}-o{o}" for o in order],
        "customer_id": [f"{prefix}-{c:04d}" for c in customer],
        "ordered_at": pd.DatetimeIndex(at).as_unit("us"),
        "amount": np.round(amount, 2),
        "quantity": np.asarray(quantity, dtype="float64"),
        "product_id": [f"p{p:03d}" for p in product],
        "category": [f"cat{p % 7}" for p in product],
    })
    return frame.sort_values(["customer_id", "ordered_at", "order_id"], kind="stable").reset_index(drop=True)


def _visits(rng: np.random.Generator, customers: int, *, per_customer: tuple[int, int], start, end):
    """Random visit times: (customer of each visit, visit time), uniform in [start, end)."""
    counts = rng.integers(per_customer[0], per_customer[1] + 1, customers)
    customer = np.repeat(np.arange(customers), counts)
    span = (end - start).total_seconds()
    at = start + pd.to_timedelta(rng.uniform(0, span, len(customer)), unit="s")
    return customer, at


def same_day_invoices(customers: int = 50, *, seed: int = 0, start=START, end=END) -> pd.DataFrame:
    """Each visit is 2-5 invoices (one line each) placed within a few minutes on the same UTC day."""
    rng = np.random.default_rng(seed)
    customer, visit_at = _visits(rng, customers, per_customer=(1, 8), start=start, end=end)
    visit_at = visit_at.floor("D") + pd.Timedelta(hours=10)  # bursts never cross midnight
    invoices = rng.integers(2, 6, len(customer))
    customer = np.repeat(customer, invoices)
    minutes = np.concatenate([np.arange(n) * 3 for n in invoices])  # 3 minutes apart
    at = np.repeat(visit_at, invoices) + pd.to_timedelta(minutes, unit="min")
    n = len(customer)
    return _frame(customer, np.arange(n), at, rng.gamma(2.0, 15.0, n), rng.integers(1, 4, n),
                  rng.integers(0, PRODUCTS, n), prefix="burst")


def returns_before_history(customers: int = 40, *, seed: int = 0, start=START, end=END) -> pd.DataFrame:
    """Every customer starts with 1-3 return lines (negative amount and quantity) in the first 60 days,
    of goods bought before `start`; half of them buy again later, the others only return."""
    rng = np.random.default_rng(seed)
    returns = rng.integers(1, 4, customers)
    r_customer = np.repeat(np.arange(customers), returns)
    r_at = start + pd.to_timedelta(rng.uniform(0, 60 * 86_400, len(r_customer)), unit="s")
    buyers = np.flatnonzero(np.arange(customers) % 2 == 0)
    p_customer, p_at = _visits(rng, len(buyers), per_customer=(1, 4), start=start + pd.Timedelta(days=61), end=end)
    p_customer = buyers[p_customer]
    customer = np.r_[r_customer, p_customer]
    at = r_at.append(p_at)
    n_r, n = len(r_customer), len(customer)
    amount = np.r_[-rng.gamma(3.0, 30.0, n_r), rng.gamma(2.0, 15.0, n - n_r)]
    quantity = np.r_[-rng.integers(1, 3, n_r), rng.integers(1, 4, n - n_r)]
    return _frame(customer, np.arange(n), at, amount, quantity, rng.integers(0, PRODUCTS, n), prefix="return")


def wholesalers(customers: int = 5, *, seed: int = 0, start=START, end=END) -> pd.DataFrame:
    """Monthly-ish orders of 50-300 lines each, quantities 50-500 per line, many distinct products."""
    rng = np.random.default_rng(seed)
    order_customer, order_at = _visits(rng, customers, per_customer=(10, 30), start=start, end=end)
    lines = rng.integers(50, 301, len(order_customer))
    order = np.repeat(np.arange(len(order_customer)), lines)
    n = len(order)
    quantity = rng.integers(50, 501, n)
    return _frame(order_customer[order], order, order_at[order], quantity * rng.uniform(0.5, 5.0, n), quantity,
                  rng.integers(0, PRODUCTS, n), prefix="wholesale")


def mid_stream(customers: int = 40, *, seed: int = 0, start=START, end=END) -> pd.DataFrame:
    """Customers active before the export starts: their first purchase is in its first 7 days, then
    they buy every 20-60 days."""
    rng = np.random.default_rng(seed)
    first = start + pd.to_timedelta(rng.uniform(0, 7 * 86_400, customers), unit="s")
    gaps = rng.integers(20, 61, customers)
    span_days = (end - start).days
    counts = np.maximum(1, (span_days - 7) // gaps)
    customer = np.repeat(np.arange(customers), counts)
    step = np.concatenate([np.arange(c) for c in counts])
    at = first[customer] + pd.to_timedelta(step * gaps[customer], unit="D")
    keep = at < end
    customer, at = customer[keep], at[keep]
    n = len(customer)
    return _frame(customer, np.arange(n), at, rng.gamma(2.0, 15.0, n), rng.integers(1, 4, n),
                  rng.integers(0, PRODUCTS, n), prefix="midstream")


def seasonal_buyers(customers: int = 40, *, seed: int = 0, start=START, end=END) -> pd.DataFrame:
    """Customers who buy 1-3 times in every November-December of the history, never otherwise."""
    rng = np.random.default_rng(seed)
    years = np.arange(start.year, end.year + 1)
    seasons = [pd.Timestamp(f"{y}-11-01", tz="UTC") for y in years]
    seasons = [s for s in seasons if s >= start and s + pd.Timedelta(days=61) <= end]
    counts = rng.integers(1, 4, (customers, len(seasons)))
    customer = np.repeat(np.repeat(np.arange(customers), len(seasons)), counts.ravel())
    season_start = pd.DatetimeIndex(seasons)[np.repeat(np.tile(np.arange(len(seasons)), customers), counts.ravel())]
    at = season_start + pd.to_timedelta(rng.uniform(0, 61 * 86_400, len(customer)), unit="s")
    n = len(customer)
    return _frame(customer, np.arange(n), at, rng.gamma(2.0, 20.0, n), rng.integers(1, 4, n),
                  rng.integers(0, PRODUCTS, n), prefix="seasonal")


def real_shapes(*, seed: int = 0, start=START, end=END) -> pd.DataFrame:
    """Every shape above in one export (disjoint customers), sorted by (customer_id, ordered_at)."""
    shapes = [same_day_invoices, returns_before_history, wholesalers, mid_stream, seasonal_buyers]
    frame = pd.concat([shape(seed=seed + i, start=start, end=end) for i, shape in enumerate(shapes)],
                      ignore_index=True)
    return frame.sort_values(["customer_id", "ordered_at", "order_id"], kind="stable").reset_index(drop=True)
