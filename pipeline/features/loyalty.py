"""Loyalty family: enrolment, tier, points balance, points earned and redeemed, distance to next tier.

Input: the loyalty timeline (`pipeline.features.tables.LoyaltyRows`: points added and taken off in
exact units, and the events that state a tier). Points by kind: on `earn` and `enroll` rows the sign
is the direction (positive points are added and counted as earned, e.g. a sign-up bonus; negative
ones, such as a refund's reversal or a manual deduction, are taken off the balance and counted as
neither earned nor redeemed); `redeem` and `expire` take their points off whatever their sign in the
source; `tier_change` moves none. The balance is everything added minus everything taken off, and
may be negative (a reversal after the points were spent). A customer is enrolled once they have any
loyalty event. Tier: the latest tier stated by an event, else the highest tier of
`cfg.loyalty_tiers` whose threshold the points balance reaches. Tier names are matched with
`cfg.loyalty_tiers` whatever their case and blanks (`tier_key`: "Gold " is gold) and then spelt as
configured; a tier the configuration does not name stays as written. Points to next tier: the next
tier's threshold (after the current tier, in threshold order) minus the balance, at least 0;
NaN at the top tier and for a tier the configuration does not name. Customers without loyalty events: enrolled 0, points 0, tier null, NaN else.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.rfm import days_between
from pipeline.features.tables import MONEY_UNITS, LoyaltyRows
from pipeline.features.timeline import NONE, Cut, latest_before, pick, pick_series, timestamps
from pipeline.snapshot import snapshot_time


def tier_from_balance(balance: pl.Expr, tiers: dict[str, float]) -> pl.Expr:
    """The highest tier whose threshold `balance` reaches (null below the lowest threshold)."""
    expression = pl.lit(None, dtype=pl.String)
    for name, threshold in tiers.items():  # thresholds increase: a later match wins
        expression = pl.when(balance >= threshold).then(pl.lit(name)).otherwise(expression)
    return expression


def tier_key(tier: pl.Expr) -> pl.Expr:
    """A tier name as it is matched with `features.loyalty_tiers`: lower case, blanks around it dropped and
    runs of blanks inside it read as one space ("Gold", " gold " and "GOLD" are one tier)."""
    return tier.str.strip_chars().str.replace_all(r"\s+", " ").str.to_lowercase()


def _keys(tiers: dict[str, float]) -> dict[str, str]:
    """tier_key of each configured tier name -> the name as configured."""
    return {pl.select(tier_key(pl.lit(name))).item(): name for name in tiers}


def configured_spellings(names: pl.Series, tiers: dict[str, float]) -> dict[str, str]:
    """Each distinct name of `names` that names a tier of `tiers` (`tier_key`) -> the name as `tiers` spells it. The
    names are few: matching them once, not each customer's, keeps the string work off the snapshots' rows."""
    distinct = names.drop_nulls().unique()
    configured = _keys(tiers)
    keys = pl.select(tier_key(pl.lit(distinct))).to_series()
    return {name: configured[key] for name, key in zip(distinct, keys) if key in configured and name != configured[key]}


def next_threshold(tier: pl.Expr, tiers: dict[str, float]) -> pl.Expr:
    """Threshold of the tier after `tier`, a name as `tiers` spells it (null at the top; unknown tier names: null)."""
    names, thresholds = list(tiers), list(tiers.values())
    following = {name: thresholds[i + 1] for i, name in enumerate(names[:-1])}
    return tier.replace_strict(following, default=None, return_dtype=pl.Float64)


def unknown_tiers(tiers: pl.Series, configured: dict[str, float]) -> list[str]:
    """The distinct names of `tiers` (as written, sorted; nulls and blanks left out) that name no tier of
    `configured`, compared by `tier_key`."""
    names = pl.DataFrame({"tier": tiers.cast(pl.String)}).lazy().drop_nulls().unique()
    key = tier_key(pl.col("tier"))
    unknown = names.filter((key != "") & ~key.is_in(list(_keys(configured)))).sort("tier").collect()
    return unknown["tier"].to_list()


def customer_aggregates(loyalty: LoyaltyRows, cut: Cut, *, cfg: FeaturesConfig) -> list[pl.Series]:
    """Per row of `cut`: loyalty_enrolled, the points sums in units, the last redemption and the stated tier (as
    `cfg.loyalty_tiers` spells it when it names one of them, `configured_spellings`)."""
    timeline, sums = loyalty.timeline, loyalty.sums
    start, end = cut.rows(timeline)
    before = sums.at(end)
    at = {None: sums.at(start), **{w: sums.at(cut.positions(timeline, cut.since(w))) for w in cfg.windows_days}}

    def total(name: str, since_days: int | None = None) -> np.ndarray:
        return before[name] - at[since_days][name]

    tier_start, tier_end = cut.rows(loyalty.tiers)
    return [
        pl.Series("loyalty_enrolled", end > start),
        pl.Series("_balance_units", total("earn_units") - total("spent_units")),
        *[pl.Series(f"_earned_{w}d", total("earn_units", w)) for w in cfg.windows_days],
        *[pl.Series(f"_redeemed_{w}d", total("redeem_units", w)) for w in cfg.windows_days],
        timestamps(pick(loyalty.at_us, latest_before(loyalty.last_redeem, start, end), "_last_redeem_at")),
        pick_series(loyalty.tier, np.where(tier_end > tier_start, tier_end - 1, NONE), "_stated_tier")
        .replace(configured_spellings(loyalty.tier, cfg.loyalty_tiers)),
    ]


def features(*, as_of: dt.date, cfg: FeaturesConfig) -> list[pl.Expr]:
    """The loyalty features from the columns of `customer_aggregates` (see the module docstring)."""
    t = snapshot_time(as_of)
    enrolled = pl.col("loyalty_enrolled")
    balance = pl.col("_balance_units") / MONEY_UNITS
    tier = pl.when(enrolled).then(pl.coalesce(pl.col("_stated_tier"), tier_from_balance(balance, cfg.loyalty_tiers)))
    return [
        balance.alias("points_balance"),
        tier.alias("loyalty_tier"),
        *[(pl.col(f"_earned_{w}d") / MONEY_UNITS).alias(f"points_earned_{w}d") for w in cfg.windows_days],
        *[(pl.col(f"_redeemed_{w}d") / MONEY_UNITS).alias(f"points_redeemed_{w}d") for w in cfg.windows_days],
        days_between(t, pl.col("_last_redeem_at")).alias("days_since_redemption"),
        (next_threshold(tier, cfg.loyalty_tiers) - balance).clip(lower_bound=0).alias("points_to_next_tier"),
    ]
