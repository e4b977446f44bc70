"""Loyalty family: enrolment, tier, points balance, points earned and redeemed, distance to next tier.

Input: cut loyalty events (customer_id, occurred_at, kind, points_units = |points| in exact units)
and the cut events that state a tier. Points are taken as magnitudes, whatever their sign in the
source: `earn` adds, `redeem` and `expire` subtract. A customer is enrolled once they have any
loyalty event. Tier: the latest tier stated by an event, else the highest tier of
`cfg.loyalty_tiers` whose threshold the points balance reaches. Points to next tier: the next
tier's threshold (after the current tier, in threshold order) minus the balance, at least 0;
NaN at the top tier. Customers without loyalty events: enrolled 0, points 0, tier null, NaN else.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.rfm import days_between
from pipeline.features.tables import MONEY_UNITS
from pipeline.snapshot import snapshot_time


def tier_from_balance(balance: pl.Expr, tiers: dict[str, float]) -> pl.Expr:
    """The highest tier whose threshold `balance` reaches (null below the lowest threshold)."""
    expression = pl.lit(None, dtype=pl.String)
    for name, threshold in tiers.items():  # thresholds increase: a later match wins
        expression = pl.when(balance >= threshold).then(pl.lit(name)).otherwise(expression)
    return expression


def next_threshold(tier: pl.Expr, tiers: dict[str, float]) -> pl.Expr:
    """Threshold of the tier after `tier` (null at the top; unknown tier names: null)."""
    names, thresholds = list(tiers), list(tiers.values())
    following = {name: thresholds[i + 1] for i, name in enumerate(names[:-1])}
    return tier.replace_strict(following, default=None, return_dtype=pl.Float64)


def customer_aggregates(
    loyalty: pl.LazyFrame, tiers: pl.LazyFrame, *, as_of: dt.date, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """Cut loyalty events and tier events -> one row per customer with loyalty events: the loyalty features.

    `tiers`: the events that state a tier (customer_id, occurred_at, tier), sorted by time then tier.
    """
    t = snapshot_time(as_of)
    kind, units, at = pl.col("kind"), pl.col("points_units"), pl.col("occurred_at")
    earn, redeem = kind == "earn", kind == "redeem"
    spent = kind.is_in(["redeem", "expire"])

    def since(days: int) -> pl.Expr:
        return at >= t - dt.timedelta(days=days)

    stated = tiers.group_by("customer_id").agg(pl.col("tier").last().alias("_stated_tier"))

    def units_where(condition: pl.Expr) -> pl.Expr:
        return pl.when(condition).then(units).otherwise(0).sum()

    aggregated = loyalty.group_by("customer_id").agg(
        (units_where(earn) - units_where(spent)).alias("_balance_units"),
        *[units_where(earn & since(w)).alias(f"_earned_{w}d") for w in cfg.windows_days],
        *[units_where(redeem & since(w)).alias(f"_redeemed_{w}d") for w in cfg.windows_days],
        pl.when(redeem).then(at).max().alias("_last_redeem_at"),
    ).join(stated, on="customer_id", how="left")
    balance = pl.col("_balance_units") / MONEY_UNITS
    tier = pl.coalesce(pl.col("_stated_tier"), tier_from_balance(balance, cfg.loyalty_tiers))
    return (
        aggregated.with_columns(pl.lit(True).alias("loyalty_enrolled"), balance.alias("points_balance"),
                                tier.alias("loyalty_tier"))
        .with_columns(
            *[(pl.col(f"_earned_{w}d") / MONEY_UNITS).alias(f"points_earned_{w}d") for w in cfg.windows_days],
            *[(pl.col(f"_redeemed_{w}d") / MONEY_UNITS).alias(f"points_redeemed_{w}d") for w in cfg.windows_days],
            days_between(t, pl.col("_last_redeem_at")).alias("days_since_redemption"),
            (next_threshold(pl.col("loyalty_tier"), cfg.loyalty_tiers) - pl.col("points_balance"))
            .clip(lower_bound=0)
            .alias("points_to_next_tier"),
        )
        .drop("_stated_tier", "_balance_units", "_last_redeem_at",
              *[f"_earned_{w}d" for w in cfg.windows_days], *[f"_redeemed_{w}d" for w in cfg.windows_days])
    )


def fill_missing(cfg: FeaturesConfig) -> list[pl.Expr]:
    """Customers without loyalty events: enrolled 0 and points 0."""
    zero = ["loyalty_enrolled", "points_balance",
            *[f"points_earned_{w}d" for w in cfg.windows_days], *[f"points_redeemed_{w}d" for w in cfg.windows_days]]
    return [pl.col(c).fill_null(0) for c in zero]
