"""A synthetic shop with all five sources, and churn driven by planted causes.

`generate_demo(customers=, seed=)` returns one contract-shaped frame per source (naive local
timestamps, like a typical export). `inject_bad_rows(frames, seed=)` returns string-typed copies
with a few percent of deliberately bad rows mixed in, of each kind the ingest validator
catches. Both are pure and deterministic for a seed; everything is vectorised over customers, with
one loop over calendar months (a month's churn hazard depends on what happened before it).

The planted causes: each month an active customer stops buying for good with a hazard of
CHURN_BASE_MONTHLY (customer-specific, lognormal around it) times exp(sum of CHURN_EFFECTS that
apply at the month's start): a detractor NPS (0-6) in the last 6 months (x4), an open support ticket
or one closed unresolved in the last 3 months (x9), a late delivery in the last 3 months (x1.8), the
first 3 months after signup (x1.5), loyalty membership (x0.45), an order in the last 2 months (x0.6).
While a ticket or a detractor score lasts, the customer also buys less. Orders are Poisson with a
gamma-distributed rate per customer (about 0.6 a month), times a Nov/Dec seasonal peak.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contract import CONTRACTS, FEEDBACK_KINDS, LOYALTY_KINDS, TICKET_CHANNELS

CATEGORIES = ("books", "music", "electronics", "home", "fashion", "beauty", "sports", "toys")
CATEGORY_BASE_PRICE = np.array([15.0, 12.0, 120.0, 45.0, 40.0, 25.0, 55.0, 30.0])
REGIONS = ("north", "south", "east", "west", "central")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "referral", "email", "affiliate")
ORDER_CHANNELS = ("web", "app", "store")
TICKET_TOPICS = ("billing", "product", "account", "returns", "delivery")  # delivery: late orders
FEEDBACK_COMMENTS = ("disappointed", "great service")
PRODUCTS_PER_CATEGORY = 200
PRODUCT_IDS = tuple(f"{category}-{number:03d}" for category in CATEGORIES for number in range(PRODUCTS_PER_CATEGORY))
LOYALTY_TIERS = (("bronze", 0.0), ("silver", 500.0), ("gold", 2000.0), ("platinum", 5000.0))
# Nov/Dec peak, January dip (index 0 = January).
SEASONALITY = np.array([0.8, 0.85, 0.95, 1.0, 1.0, 0.9, 0.9, 0.95, 1.0, 1.05, 1.45, 1.75])
CHURN_BASE_MONTHLY = 0.025
CHURN_EFFECTS = {
    "detractor_recent": 1.4,
    "ticket_trouble": 2.2,
    "late_recent": 0.6,
    "new_customer": 0.4,
    "loyalty_member": -0.8,
    "recent_purchase": -0.5,
}
DAY = 86_400
REDEEM_UNIT = 1000.0


@dataclass(frozen=True)
class _Calendar:
    """Month starts (epoch seconds, naive local time) and the exclusive end of the data."""

    month_start: np.ndarray  # int64, one per month, plus the exclusive end as the last element
    month_of_year: np.ndarray  # 0..11 per month
    end: int

    @property
    def months(self) -> int:
        return len(self.month_of_year)


@dataclass(frozen=True)
class _People:
    """Per-customer latent traits (arrays of length N)."""

    signup: np.ndarray  # epoch seconds
    signup_month: np.ndarray  # -1 for the base that existed before the start
    rate: np.ndarray  # orders per month while active
    spend: np.ndarray  # price multiplier (lognormal)
    satisfaction: np.ndarray  # N(0, 1): shifts NPS, CSAT, reviews
    late_prob: np.ndarray  # share of this customer's deliveries that are late
    loyalty_affinity: np.ndarray
    churn_base: np.ndarray  # monthly base hazard
    favourite: np.ndarray  # category index


def _seconds(day: dt.date) -> int:
    return int(np.datetime64(day, "s").astype(np.int64))


def _calendar(start: dt.date, end: dt.date) -> _Calendar:
    months = np.arange(np.datetime64(start, "M"), np.datetime64(end, "M") + 1)
    end_excl = _seconds(end + dt.timedelta(days=1))
    starts = np.maximum(months.astype("datetime64[s]").astype(np.int64), _seconds(start))
    return _Calendar(
        month_start=np.append(starts, end_excl),
        month_of_year=(months.astype(np.int64) % 12).astype(np.int64),
        end=end_excl,
    )


def _draw_people(n: int, cal: _Calendar, rng: np.random.Generator) -> _People:
    start, stop = cal.month_start[0], cal.end - 45 * DAY
    existing = rng.random(n) < 0.25
    # Growth: newer months acquire more customers (density rising linearly by 2x over the period).
    u = rng.random(n)
    growing = start + (np.sqrt(1 + 3 * u) - 1) * (stop - start)  # inverse CDF of a density 1 -> 2
    before = start - rng.integers(DAY, 2 * 365 * DAY, n)
    signup = np.where(existing, before, growing).astype(np.int64)
    signup_month = np.searchsorted(cal.month_start[:-1], signup, side="right") - 1
    return _People(
        signup=signup,
        signup_month=np.where(existing, -1, signup_month),
        rate=rng.gamma(shape=3.0, scale=0.62 / 3.0, size=n),
        spend=rng.lognormal(0.0, 0.5, n),
        satisfaction=rng.standard_normal(n),
        late_prob=rng.beta(1.2, 12.0, n),
        loyalty_affinity=rng.standard_normal(n),
        churn_base=CHURN_BASE_MONTHLY * rng.lognormal(0.0, 0.35, n),
        favourite=rng.integers(0, len(CATEGORIES), n),
    )


def _in_month(cal: _Calendar, month: int, lower: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform random times in month `month`, not before `lower` (epoch seconds)."""
    lo = np.maximum(cal.month_start[month], lower)
    hi = cal.month_start[month + 1]
    return lo + (rng.random(len(lo)) * np.maximum(hi - lo, 1)).astype(np.int64)


def _simulate(people: _People, cal: _Calendar, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Month by month: churn hazard from the state so far, then this month's events.

    Returns event tables with customer index `c`: orders per customer-month (`month`, `orders`,
    `late`), nps answers, tickets, enrolments and each customer's churn month.
    """
    n = len(people.rate)
    never = np.int64(-10**12)
    last_order = np.full(n, never)
    last_late = np.full(n, never)
    last_nps_time = np.full(n, never)
    last_nps = np.full(n, 10.0)
    ticket_open, ticket_close = np.full(n, never), np.full(n, never)
    trouble_until = np.full(n, never)  # end of the "unresolved ticket" effect
    member_since = np.full(n, np.iinfo(np.int64).max)
    churned = np.zeros(n, dtype=bool)
    churn_month = np.full(n, -1)
    logged: dict[str, list[dict[str, np.ndarray]]] = {"orders": [], "nps": [], "tickets": [], "enrol": []}
    all_idx = np.arange(n)
    for month in range(cal.months):
        t0 = cal.month_start[month]
        started = people.signup_month <= month
        at_risk = started & (people.signup_month < month) & ~churned
        state = {
            "detractor_recent": (t0 - last_nps_time <= 183 * DAY) & (last_nps <= 6),
            "ticket_trouble": ((ticket_open < t0) & (ticket_close >= t0)) | (trouble_until >= t0),
            "late_recent": t0 - last_late <= 92 * DAY,
            "new_customer": t0 - people.signup <= 92 * DAY,
            "loyalty_member": member_since <= t0,
            "recent_purchase": t0 - last_order <= 61 * DAY,
        }
        log_hazard = np.log(people.churn_base) + sum(effect * state[name] for name, effect in CHURN_EFFECTS.items())
        leaving = at_risk & (rng.random(n) < np.minimum(np.exp(log_hazard), 0.9))
        churned |= leaving
        churn_month[leaving] = month
        active = started & ~churned

        new_now = people.signup_month == month
        span = cal.month_start[month + 1] - cal.month_start[month]
        exposure = np.where(new_now, (cal.month_start[month + 1] - people.signup) / span, 1.0)
        first_order = new_now & (rng.random(n) < 0.85)
        # Unhappy customers also buy less while they stay.
        mood = np.exp(-0.7 * state["ticket_trouble"] - 0.35 * state["detractor_recent"])
        lam = people.rate * mood * SEASONALITY[cal.month_of_year[month]] * np.clip(exposure, 0.0, 1.0)
        orders = np.where(active, rng.poisson(lam) + first_order, 0)
        late = rng.binomial(orders, people.late_prob)
        bought = orders > 0
        idx = all_idx[bought]
        logged["orders"].append({"c": idx, "month": np.full(len(idx), month), "orders": orders[idx], "late": late[idx]})

        # NPS: asked after a month with orders (some answer unprompted); experiences move the score.
        answers = active & (((bought) & (rng.random(n) < 0.25)) | (rng.random(n) < 0.02))
        idx = all_idx[answers]
        raw_score = (
            7.8
            + 1.5 * people.satisfaction[idx]
            - 1.8 * np.minimum(late[idx], 2)
            - 2.5 * state["ticket_trouble"][idx]
            + rng.normal(0.0, 1.2, len(idx))
        )
        score = np.clip(np.round(raw_score), 0, 10)
        when = _in_month(cal, month, people.signup[idx], rng)
        logged["nps"].append({"c": idx, "month": np.full(len(idx), month), "score": score, "at": when})
        last_nps_time[idx], last_nps[idx] = when, score

        # Tickets: late deliveries cause most of them; a slow share stays open for weeks.
        free = ~((ticket_open < cal.month_start[month + 1]) & (ticket_close >= t0))
        p_ticket = 0.015 + 0.35 * (late > 0) + 0.03 * bought
        opens = active & free & (rng.random(n) < p_ticket)
        idx = all_idx[opens]
        k = len(idx)
        opened = _in_month(cal, month, people.signup[idx], rng)
        slow = rng.random(k) < 0.3
        close = opened + (rng.exponential(np.where(slow, 60.0, 2.0)) * DAY).astype(np.int64)
        resolved = rng.random(k) < np.where(slow, 0.45, 0.9)
        logged["tickets"].append(
            {"c": idx, "opened": opened, "closed": close, "resolved": resolved, "late": late[idx] > 0}
        )
        ticket_open[idx], ticket_close[idx] = opened, close
        trouble_until[idx] = np.where(resolved, never, close + 92 * DAY)

        # Loyalty: buyers join, some more readily than others; membership counts from next month.
        joins = bought & (member_since == np.iinfo(np.int64).max)
        joins &= rng.random(n) < 0.05 * np.exp(0.8 * people.loyalty_affinity)
        idx = all_idx[joins]
        enrolled = _in_month(cal, month, people.signup[idx], rng)
        logged["enrol"].append({"c": idx, "at": enrolled})
        member_since[idx] = enrolled

        last_late[late > 0] = cal.month_start[month + 1] - 1
        last_order[bought] = cal.month_start[month + 1] - 1

    tables = {
        name: pd.DataFrame({key: np.concatenate([part[key] for part in parts]) for key in parts[0]})
        for name, parts in logged.items()
    }
    tables["churn"] = pd.DataFrame({"c": all_idx, "churn_month": churn_month})
    return tables


def _text(labels: tuple[str, ...] | pa.Array, codes: np.ndarray) -> pd.Series:
    """`labels[codes]` as a pandas str Series (negative codes -> null), built in Arrow, not Python."""
    dictionary = labels if isinstance(labels, pa.Array) else pa.array(labels, type=pa.string())
    codes = np.asarray(codes, dtype=np.int64)
    indices = pa.array(codes, mask=codes < 0)
    return pd.Series(dictionary.take(indices), dtype="str")


def _numbered(prefix: str, count: int) -> pa.Array:
    """prefix + zero-padded 1..count, e.g. C000001."""
    width = max(6, len(str(count)))
    text = prefix + pd.Series(np.arange(1, count + 1)).astype("str").str.zfill(width)
    return pa.array(text, type=pa.string())


def _timestamps(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> datetime64[s]; negative values (not happened yet) -> NaT."""
    seconds = np.asarray(seconds, dtype=np.int64)
    return np.where(seconds >= 0, seconds, np.iinfo(np.int64).min).astype("datetime64[s]")


def _orders(monthly: pd.DataFrame, people: _People, cal: _Calendar, rng: np.random.Generator) -> pd.DataFrame:
    """One row per order in time order: c, ordered, late, channel code, promised, delivered (-1 = not yet)."""
    counts = monthly["orders"].to_numpy()
    c = np.repeat(monthly["c"].to_numpy(), counts)
    month = np.repeat(monthly["month"].to_numpy(), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(counts.sum()) - np.repeat(starts, counts)
    late = rank < np.repeat(monthly["late"].to_numpy(), counts)
    lo = np.maximum(cal.month_start[month], people.signup[c])
    hi = cal.month_start[month + 1]
    ordered = lo + (rng.random(len(c)) * np.maximum(hi - lo, 1)).astype(np.int64)
    order = np.argsort(ordered, kind="stable")
    c, ordered, late = c[order], ordered[order], late[order]
    promised = ordered + rng.integers(2, 6, len(c)) * DAY
    delay = np.where(late, rng.integers(1, 11, len(c)) * DAY, -rng.integers(0, 2 * DAY, len(c)))
    delivered = np.maximum(promised + delay, ordered + 3600)
    return pd.DataFrame(
        {
            "c": c,
            "ordered": ordered,
            "late": late,
            "channel": rng.choice(len(ORDER_CHANNELS), len(c), p=[0.55, 0.3, 0.15]),
            "promised": promised,
            "delivered": np.where(delivered < cal.end, delivered, -1),  # not yet delivered at export time
        }
    )


def _order_lines(orders: pd.DataFrame, people: _People, cal: _Calendar, rng: np.random.Generator) -> pd.DataFrame:
    """Order lines plus return rows, numeric: order (row in `orders`), c, at, category, product, money.

    Return rows repeat a delivered line with negative quantity and amount, dated at the return.
    """
    n_lines = 1 + rng.poisson(0.8, len(orders))
    order = np.repeat(np.arange(len(orders)), n_lines)
    c = orders["c"].to_numpy()[order]
    k = len(order)
    category = np.where(rng.random(k) < 0.5, people.favourite[c], rng.integers(0, len(CATEGORIES), k))
    quantity = 1 + rng.poisson(0.25, k)
    price = CATEGORY_BASE_PRICE[category] * people.spend[c] * rng.lognormal(-0.18, 0.6, k)
    gross = np.round(price * quantity, 2)
    discount = np.where(rng.random(k) < 0.25, np.round(gross * rng.uniform(0.05, 0.3, k), 2), 0.0)
    sales = pd.DataFrame(
        {
            "order": order,
            "c": c,
            "at": orders["ordered"].to_numpy()[order],
            "category": category,
            "product": category * PRODUCTS_PER_CATEGORY + rng.integers(0, PRODUCTS_PER_CATEGORY, k),
            "quantity": quantity.astype(float),
            "discount": discount,
            "amount": np.round(gross - discount, 2),
            "is_return": False,
        }
    )
    late = orders["late"].to_numpy()[order]
    delivered = orders["delivered"].to_numpy()[order]
    returned_at = delivered + rng.integers(2, 30, k) * DAY
    returned = (delivered > 0) & (rng.random(k) < np.where(late, 0.15, 0.05)) & (returned_at < cal.end)
    returns = sales[returned].assign(
        at=returned_at[returned],
        quantity=-sales["quantity"].to_numpy()[returned],
        amount=-sales["amount"].to_numpy()[returned],
        discount=0.0,
        is_return=True,
    )
    both = pd.concat([sales, returns], ignore_index=True)
    return both.iloc[np.argsort(both["at"].to_numpy(), kind="stable")].reset_index(drop=True)


def _transactions(lines: pd.DataFrame, orders: pd.DataFrame, ids: pa.Array, order_ids: pa.Array) -> pd.DataFrame:
    """Contract-shaped transactions from numeric lines (return rows carry no delivery dates)."""
    order = lines["order"].to_numpy()
    is_return = lines["is_return"].to_numpy()
    promised = np.where(is_return, -1, orders["promised"].to_numpy()[order])
    delivered = np.where(is_return, -1, orders["delivered"].to_numpy()[order])
    return pd.DataFrame(
        {
            "order_id": _text(order_ids, order),
            "customer_id": _text(ids, lines["c"].to_numpy()),
            "ordered_at": _timestamps(lines["at"].to_numpy()),
            "amount": lines["amount"].to_numpy(),
            "quantity": lines["quantity"].to_numpy(),
            "product_id": _text(PRODUCT_IDS, lines["product"].to_numpy()),
            "category": _text(CATEGORIES, lines["category"].to_numpy()),
            "discount": lines["discount"].to_numpy(),
            "channel": _text(ORDER_CHANNELS, orders["channel"].to_numpy()[order]),
            "promised_delivery_at": _timestamps(promised),
            "delivered_at": _timestamps(delivered),
        }
    )


def _feedback(
    nps: pd.DataFrame,
    tickets: pd.DataFrame,
    orders: pd.DataFrame,
    people: _People,
    ids: pa.Array,
    order_ids: pa.Array,
    cal: _Calendar,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """NPS answers, CSAT after closed tickets, 1-5 star reviews of delivered orders."""
    closed = tickets[(tickets["closed"] < cal.end) & (rng.random(len(tickets)) < 0.6)]
    resolved = closed["resolved"].to_numpy()
    csat_raw = np.where(resolved, 4.3 + 0.5 * people.satisfaction[closed["c"].to_numpy()], 1.8)
    csat_raw = csat_raw + rng.normal(0.0, 0.8, len(closed))
    reviewed = np.flatnonzero((orders["delivered"].to_numpy() > 0) & (rng.random(len(orders)) < 0.12))
    review_c = orders["c"].to_numpy()[reviewed]
    review_at = orders["delivered"].to_numpy()[reviewed] + rng.integers(DAY, 14 * DAY, len(reviewed))
    stars_raw = (
        4.1
        + 0.7 * people.satisfaction[review_c]
        - 1.5 * orders["late"].to_numpy()[reviewed]
        + rng.normal(0.0, 0.8, len(reviewed))
    )
    kind = np.concatenate([np.zeros(len(nps), int), np.ones(len(closed), int), np.full(len(reviewed), 2)])
    feedback = pd.DataFrame(
        {
            "c": np.concatenate([nps["c"].to_numpy(), closed["c"].to_numpy(), review_c]),
            "at": np.concatenate(
                [
                    nps["at"].to_numpy(),
                    closed["closed"].to_numpy() + rng.integers(600, 2 * DAY, len(closed)),
                    review_at,
                ]
            ),
            "kind": kind,
            "score": np.concatenate(
                [nps["score"].to_numpy(), np.clip(np.round(csat_raw), 1, 5), np.clip(np.round(stars_raw), 1, 5)]
            ),
            "order": np.concatenate([np.full(len(nps) + len(closed), -1), reviewed]),
        }
    )
    feedback = feedback[feedback["at"].to_numpy() < cal.end]
    feedback = feedback.iloc[np.argsort(feedback["at"].to_numpy(), kind="stable")].reset_index(drop=True)
    score = feedback["score"].to_numpy()
    is_nps = feedback["kind"].to_numpy() == 0
    low = np.where(is_nps, score <= 6, score <= 2) & (rng.random(len(score)) < 0.4)
    high = np.where(is_nps, score >= 9, score >= 5) & (rng.random(len(score)) < 0.2)
    return pd.DataFrame(
        {
            "customer_id": _text(ids, feedback["c"].to_numpy()),
            "submitted_at": _timestamps(feedback["at"].to_numpy()),
            "kind": _text(FEEDBACK_KINDS, feedback["kind"].to_numpy()),
            "score": score.astype(float),
            "feedback_id": pd.Series(_numbered("F", len(feedback)), dtype="str"),
            "order_id": _text(order_ids, feedback["order"].to_numpy()),
            "comment": _text(FEEDBACK_COMMENTS, np.select([low, high], [0, 1], default=-1)),
        }
    )


def _support_tickets(tickets: pd.DataFrame, ids: pa.Array, cal: _Calendar, rng: np.random.Generator) -> pd.DataFrame:
    """Tickets in opening order; still open at the end -> empty closed_at and resolved."""
    tickets = tickets.iloc[np.argsort(tickets["opened"].to_numpy(), kind="stable")].reset_index(drop=True)
    opened = tickets["opened"].to_numpy()
    closed = tickets["closed"].to_numpy()
    is_closed = closed < cal.end
    response = opened + (rng.exponential(6.0, len(opened)) * 3600).astype(np.int64)
    response = np.where(is_closed, np.minimum(response, closed), response)
    delivery = len(TICKET_TOPICS) - 1
    topic = np.where(tickets["late"].to_numpy(), delivery, rng.integers(0, delivery, len(opened)))
    channel = rng.choice(len(TICKET_CHANNELS), len(opened), p=[0.25, 0.35, 0.3, 0.05, 0.05])
    return pd.DataFrame(
        {
            "ticket_id": pd.Series(_numbered("T", len(opened)), dtype="str"),
            "customer_id": _text(ids, tickets["c"].to_numpy()),
            "opened_at": _timestamps(opened),
            "closed_at": _timestamps(np.where(is_closed, closed, -1)),
            "first_response_at": _timestamps(np.where(response < cal.end, response, -1)),
            "channel": _text(TICKET_CHANNELS, channel),
            "topic": _text(TICKET_TOPICS, topic),
            "resolved": pd.Series(tickets["resolved"].to_numpy(), dtype="boolean").where(is_closed, pd.NA),
        }
    )


def _loyalty_events(
    enrol: pd.DataFrame, lines: pd.DataFrame, n_customers: int, ids: pa.Array, cal: _Calendar, rng: np.random.Generator
) -> pd.DataFrame:
    """enroll, earn (1 point per currency unit of each order after joining), redeem (1000-point
    vouchers as the lifetime earnings cross each 1000), tier_change (lifetime earnings crossing a
    tier threshold) and expire (the balance, a year after a member's last order). `points` is the
    signed change of the balance."""
    enrolled = np.full(n_customers, np.iinfo(np.int64).max)
    enrolled[enrol["c"].to_numpy()] = enrol["at"].to_numpy()
    sales = lines[~lines["is_return"].to_numpy()]
    per_order = sales.groupby("order", sort=True).agg(c=("c", "first"), at=("at", "first"), amount=("amount", "sum"))
    earn = per_order[per_order["at"].to_numpy() >= enrolled[per_order["c"].to_numpy()]]
    earn = earn.iloc[np.lexsort((earn["at"].to_numpy(), earn["c"].to_numpy()))].reset_index(drop=True)
    c, at = earn["c"].to_numpy(), earn["at"].to_numpy()
    points = np.floor(earn["amount"].to_numpy())
    lifetime = earn.assign(points=points).groupby("c", sort=False)["points"].cumsum().to_numpy()
    before = lifetime - points

    vouchers = np.floor(lifetime / REDEEM_UNIT) - np.floor(before / REDEEM_UNIT)
    redeem_at = at + rng.integers(DAY, 30 * DAY, len(at))
    redeems = (vouchers > 0) & (rng.random(len(at)) < 0.7) & (redeem_at < cal.end)
    redeemed = np.where(redeems, -vouchers * REDEEM_UNIT, 0.0)

    thresholds = np.array([threshold for _, threshold in LOYALTY_TIERS])
    tier_after = np.searchsorted(thresholds, lifetime, side="right") - 1
    upgrades = tier_after > np.searchsorted(thresholds, before, side="right") - 1

    balance = pd.DataFrame({"c": c, "at": at, "change": points + redeemed}).groupby("c", sort=True)
    balance = balance.agg(last_order=("at", "max"), balance=("change", "sum"))
    expires_at = balance["last_order"].to_numpy() + 365 * DAY
    expiring = (expires_at < cal.end) & (balance["balance"].to_numpy() > 0)

    member_c = enrol["c"].to_numpy()
    kinds = {name: code for code, name in enumerate(LOYALTY_KINDS)}
    tier_codes = {name: code for code, (name, _) in enumerate(LOYALTY_TIERS)}
    events = pd.DataFrame(
        {
            "c": np.concatenate([member_c, c, c[redeems], c[upgrades], balance.index.to_numpy()[expiring]]),
            "at": np.concatenate(
                [enrol["at"].to_numpy(), at, redeem_at[redeems], at[upgrades] + 60, expires_at[expiring]]
            ),
            "kind": np.concatenate(
                [
                    np.full(len(member_c), kinds["enroll"]),
                    np.full(len(c), kinds["earn"]),
                    np.full(redeems.sum(), kinds["redeem"]),
                    np.full(upgrades.sum(), kinds["tier_change"]),
                    np.full(expiring.sum(), kinds["expire"]),
                ]
            ),
            "points": np.concatenate(
                [
                    np.zeros(len(member_c)),
                    points,
                    redeemed[redeems],
                    np.full(upgrades.sum(), np.nan),
                    -balance["balance"].to_numpy()[expiring],
                ]
            ),
            "tier": np.concatenate(
                [
                    np.full(len(member_c), tier_codes["bronze"]),
                    np.full(len(c) + redeems.sum(), -1),
                    tier_after[upgrades],
                    np.full(expiring.sum(), -1),
                ]
            ),
        }
    )
    events = events.iloc[np.lexsort((events["c"].to_numpy(), events["at"].to_numpy()))]
    return pd.DataFrame(
        {
            "customer_id": _text(ids, events["c"].to_numpy()),
            "occurred_at": _timestamps(events["at"].to_numpy()),
            "kind": _text(LOYALTY_KINDS, events["kind"].to_numpy()),
            "points": events["points"].to_numpy(dtype=float),
            "tier": _text(tuple(name for name, _ in LOYALTY_TIERS), events["tier"].to_numpy()),
        }
    )


def _customers(people: _People, ids: pa.Array, rng: np.random.Generator) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="str"),
            "signup_at": _timestamps(people.signup),
            "region": _text(REGIONS, rng.choice(len(REGIONS), n, p=[0.2, 0.25, 0.2, 0.2, 0.15])),
            "acquisition_channel": _text(
                ACQUISITION_CHANNELS, rng.choice(len(ACQUISITION_CHANNELS), n, p=[0.3, 0.2, 0.15, 0.1, 0.15, 0.1])
            ),
        }
    )


def generate_demo(
    *,
    customers: int,
    seed: int,
    start: dt.date = dt.date(2023, 1, 1),
    end: dt.date = dt.date(2025, 12, 31),
) -> dict[str, pd.DataFrame]:
    """A synthetic shop: {source name: frame with the contract columns}, timestamps naive local time.

    Sources: transactions (order lines and return rows), feedback (nps, csat, review),
    support_tickets, loyalty_events, customers. Events fall in [start, end]; signups of the
    existing base fall before `start`. Same arguments, same frames.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if end <= start:
        raise ValueError("end must be after start")
    rng = np.random.default_rng(seed)
    cal = _calendar(start, end)
    people = _draw_people(customers, cal, rng)
    history = _simulate(people, cal, rng)
    ids = _numbered("C", customers)
    orders = _orders(history["orders"], people, cal, rng)
    order_ids = _numbered("O", len(orders))
    lines = _order_lines(orders, people, cal, rng)
    frames = {
        "transactions": _transactions(lines, orders, ids, order_ids),
        "feedback": _feedback(history["nps"], history["tickets"], orders, people, ids, order_ids, cal, rng),
        "support_tickets": _support_tickets(history["tickets"], ids, cal, rng),
        "loyalty_events": _loyalty_events(history["enrol"], lines, customers, ids, cal, rng),
        "customers": _customers(people, ids, rng),
    }
    # Contract order; the demo shop has no unit_price column (its lines carry amount and quantity).
    return {name: frame[[c for c in CONTRACTS[name].columns if c in frame.columns]] for name, frame in frames.items()}


# --- deliberately bad rows ----------------------------------------------------------------------

# Per source: (column, bad raw value) pairs; each bad row copies a good row and breaks one column.
BAD_VALUES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "transactions": (
        ("ordered_at", "not a date"),
        ("ordered_at", "2099-01-01 00:00:00"),
        ("customer_id", None),
        ("order_id", None),
        ("amount", "12,50 EUR"),
        ("discount", "-5.0"),
        ("delivered_at", "31/31/2024"),
    ),
    "feedback": (
        ("score", "-1"),
        ("score", "11"),
        ("kind", "survey"),
        ("customer_id", None),
        ("submitted_at", "yesterday"),
        ("score", "ten"),
    ),
    "support_tickets": (
        ("channel", "fax"),
        ("closed_at", "2022-01-01 00:00:00"),  # before every opening, inside the data's span (far outside: missing)
        ("ticket_id", None),
        ("opened_at", "2024-02-30 10:00:00"),
        ("resolved", "maybe"),
    ),
    "loyalty_events": (
        ("kind", "bonus"),
        ("customer_id", None),
        ("occurred_at", "soon"),
        ("points", "lots"),
    ),
    "customers": (
        ("customer_id", None),
        ("customer_id", "#######"),  # a spreadsheet's too narrow column (a placeholder signup is read as missing)
        ("signup_at", "13/13/2013"),
    ),
}


def as_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as strings, as a CSV export would hold them (nulls stay null)."""
    columns = {}
    for name in df.columns:
        arrow = pa.array(df[name], from_pandas=True)
        if pa.types.is_boolean(arrow.type):
            text = pa.array(["false", "true"]).take(arrow.cast(pa.int8()))
        else:
            text = arrow.cast(pa.string())
        if pa.types.is_floating(arrow.type):
            # Whole numbers print without ".0" (scores, quantities), like most exports.
            text = pc.replace_substring_regex(text, pattern=r"\.0$", replacement="")
        columns[name] = pd.Series(text, index=df.index, dtype="str")
    return pd.DataFrame(columns)


def inject_bad_rows(frames: dict[str, pd.DataFrame], *, seed: int, share: float = 0.03) -> dict[str, pd.DataFrame]:
    """String-typed copies of `frames` with bad rows mixed in, so that bad / all ~= `share`.

    Each bad row copies a random good row and breaks one column with a value the ingest validator
    rejects (`BAD_VALUES`); every kind of a source appears once the source has enough rows.
    Sources not in `BAD_VALUES` are only converted to strings.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError("share must be in [0, 1)")
    rng = np.random.default_rng(seed)
    out = {}
    for name, frame in frames.items():
        text = as_strings(frame)
        kinds = BAD_VALUES.get(name, ())
        n_bad = int(round(len(text) * share / (1.0 - share))) if kinds and len(text) else 0
        if n_bad == 0:
            out[name] = text
            continue
        bad = text.iloc[rng.integers(0, len(text), n_bad)].reset_index(drop=True)
        kind = rng.permutation(np.arange(n_bad) % len(kinds))
        for number, (column, value) in enumerate(kinds):
            bad.loc[kind == number, column] = value
        if name == "transactions":  # a guest checkout is an order of its own, not a line of a customer's order
            guests = (bad["customer_id"].isna() & bad["order_id"].notna()).to_numpy()
            bad.loc[guests, "order_id"] = "G" + pd.RangeIndex(int(guests.sum())).astype("str")
        combined = pd.concat([text, bad], ignore_index=True)
        position = np.concatenate([np.arange(len(text)) + 0.5, rng.uniform(0, len(text), n_bad)])
        out[name] = combined.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)
    return out
