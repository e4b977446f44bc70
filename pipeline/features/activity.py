"""Activity family: the features real purchase logs support, beyond RFM.

Per-customer step (only the customer's own events known before the cut `t`):
- `order_aggregates` -> purchase days per window (`purchase_day_windows(cfg)`: the configured
  windows plus 14, 30, 60, 90, 180 and 365 days) and overall; quantities (purchase lines) overall
  and per configured window; lines per order; credit notes / cancellations; return shares; gross
  spend (purchase lines only) overall and per configured window; purchase days in the same season
  a year earlier; internal columns for the features below;
- `product_aggregates` -> distinct product_ids bought, overall and in the last 90 days
  (PRODUCT_WINDOWS: each window costs a sort of the customer-product days, done when the tables are prepared);
- `features` -> purchase_days_trend, gap_cv and the ratios.
Population step: `add_history_flags` -> history_censored (the customer's first event falls within
LEFT_CENSOR_DAYS, or LEFT_CENSOR_GAPS of their mean purchase-day gaps, of the earliest event of the data, or is
a return before their first purchase) and NaN for the same-season count when the data do not reach back to
that season.

Optional columns: quantities are NaN for a customer none of whose purchase lines before `t` has a
quantity (e.g. the export has no quantity column); distinct products are NaN when none has a
product_id. Net spend can be negative (returns of goods bought before the history); every ratio
here has a denominator that is positive or gives NaN, never an error or an infinity.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.registry import (
    LEFT_CENSOR_DAYS,
    LEFT_CENSOR_GAPS,
    PRODUCT_WINDOWS,
    TREND_DAYS,
    order_windows,
    purchase_day_windows,
    season_window,
)
from pipeline.features.tables import MONEY_UNITS, OrderParts, ProductDays
from pipeline.features.timeline import Cut, timestamps
from pipeline.snapshot import snapshot_time


def order_aggregates(parts: OrderParts, cut: Cut, *, cfg: FeaturesConfig) -> list[pl.Series]:
    """Per row of `cut`: purchase_days_*, quantity_*, lines_per_order, cancellations_count,
    cancellation_share, returns_share, returns_value_share, gross_spend_*, season_purchase_days_last_year,
    and internal _days_recent/_days_earlier (purchase days in the last TREND_DAYS and the TREND_DAYS
    before), _day_gap_sq (sum of squared purchase-day gaps), _first_event_at, _returned_first (a line before
    the first purchase: a return or refund of goods bought before the history)."""
    timeline, sums = parts.timeline, parts.sums
    before, first = cut.sums_at(timeline, sums, cut.day), cut.sums_at(timeline, sums, None)
    season = season_window(cfg.horizon_days)
    # Whole rows of sums where RFM reads them too (shared through the cut); only purchase days elsewhere.
    at = {d: cut.sums_at(timeline, sums, cut.since(d)) for d in order_windows(cfg)}
    day_starts_at = {d: sums.column_at("day_starts", cut.positions(timeline, cut.since(d)))
                     for d in {*purchase_day_windows(cfg), *season} - set(at)}

    def read(name: str, days: int) -> np.ndarray:
        return at[days][name] if days in at else day_starts_at[days]

    def total(name: str, since: int | None = None, until: int | None = None) -> np.ndarray:
        return (before[name] if until is None else read(name, until)) - (
            first[name] if since is None else read(name, since))

    quantity_known = total("quantity_known") > 0
    orders, lines, returns = total("starts"), total("purchase_lines"), total("return_lines")
    credits, gross, returned = total("credit_parts"), total("gross_units"), total("return_units")

    def quantity(values: np.ndarray) -> np.ndarray:
        return np.where(quantity_known, values / MONEY_UNITS, np.nan)

    def share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(whole > 0, part / np.where(whole > 0, whole, 1), np.nan)

    return [
        pl.Series("purchase_days_all", total("day_starts")),
        *[pl.Series(f"purchase_days_{w}d", total("day_starts", w)) for w in purchase_day_windows(cfg)],
        pl.Series("_days_recent", total("day_starts", TREND_DAYS)),
        pl.Series("_days_earlier", total("day_starts", 2 * TREND_DAYS, TREND_DAYS)),
        pl.Series("_day_gap_sq", total("day_gap_sq")),
        pl.Series("quantity_all", quantity(total("quantity_units"))),
        *[pl.Series(f"quantity_{w}d", quantity(total("quantity_units", w))) for w in cfg.windows_days],
        pl.Series("lines_per_order", share(lines, orders)),
        pl.Series("cancellations_count", credits),
        pl.Series("cancellation_share", share(credits, credits + orders)),
        pl.Series("returns_share", share(returns, returns + lines)),
        pl.Series("returns_value_share", share(returned, returned + gross)),
        pl.Series("gross_spend_all", gross / MONEY_UNITS),
        *[pl.Series(f"gross_spend_{w}d", total("gross_units", w) / MONEY_UNITS) for w in cfg.windows_days],
        pl.Series("season_purchase_days_last_year",
                  total("day_starts", *season) if season else np.full(len(cut.codes), np.nan)),
        timestamps(pl.Series("_first_event_at", parts.first_event_us[cut.codes])),
        pl.Series("_returned_first", parts.first_event_us[cut.codes] < parts.first_purchase_us[cut.codes]),
    ]


def product_aggregates(products: ProductDays, cut: Cut, *, cfg: FeaturesConfig) -> list[pl.Series]:
    """Per row of `cut`: products_all and products_<w>d for w in PRODUCT_WINDOWS (distinct product_ids bought;
    NaN when none of the customer's purchase lines before `t` has a product_id)."""

    def total(stream) -> np.ndarray:
        start, end = cut.rows(stream.timeline)
        return (stream.sums.at(end) - stream.sums.at(start))["delta"]

    bought = total(products.first)
    known = bought > 0
    return [
        pl.Series("products_all", np.where(known, bought, np.nan)),
        *[pl.Series(f"products_{w}d", np.where(known, total(products.window(w)), np.nan)) for w in PRODUCT_WINDOWS],
    ]


def features(*, as_of: dt.date, cfg: FeaturesConfig) -> list[pl.Expr]:
    """purchase_days_trend and gap_cv from the aggregates (gap_cv needs _purchase_days and the purchase-day span),
    and _season_start_at (when the same-season window starts; null without one) for `add_history_flags`."""
    t = snapshot_time(as_of)
    season = season_window(cfg.horizon_days)
    season_start = t - dt.timedelta(days=season[0]) if season else None
    recent, earlier = pl.col("_days_recent").cast(pl.Float64), pl.col("_days_earlier").cast(pl.Float64)
    gaps = pl.col("_purchase_days").cast(pl.Float64) - 1
    mean = pl.col("_purchase_span_days").cast(pl.Float64) / gaps
    variance = (pl.col("_day_gap_sq").cast(pl.Float64) / gaps - mean**2).clip(lower_bound=0.0)
    return [
        pl.when(recent + earlier > 0).then((recent - earlier) / (recent + earlier)).alias("purchase_days_trend"),
        pl.when(gaps >= 2).then(variance.sqrt() / mean).alias("gap_cv"),
        pl.lit(season_start, dtype=pl.Datetime("us", "UTC")).alias("_season_start_at"),
    ]


def add_history_flags(frame: pl.DataFrame) -> pl.DataFrame:
    """Population step on every customer with a purchase before `t` (needs gap_mean_days): history_censored (1 when
    the customer's first event falls within LEFT_CENSOR_DAYS, or LEFT_CENSOR_GAPS of their gap_mean_days, of the
    earliest first event of them all, or `_returned_first`; else 0), and
    season_purchase_days_last_year set to NaN when that earliest event is after the season window starts
    (`_season_start_at`, null when there is no season window)."""
    data_start = frame["_first_event_at"].min()
    if data_start is None:
        return frame.with_columns(pl.lit(0.0).alias("history_censored"))
    own_gaps = LEFT_CENSOR_GAPS * pl.col("gap_mean_days").fill_nan(None)  # null with fewer than two purchase days
    window_us = pl.max_horizontal(pl.lit(float(LEFT_CENSOR_DAYS)), own_gaps) * 86_400e6
    censored = (pl.col("_first_event_at") < pl.lit(data_start) + pl.duration(microseconds=window_us.cast(pl.Int64))
                ) | pl.col("_returned_first")
    season_start = frame["_season_start_at"].min()
    covered = season_start is not None and data_start <= season_start
    return frame.with_columns(
        censored.cast(pl.Float64).alias("history_censored"),
        (pl.col("season_purchase_days_last_year") if covered else pl.lit(None, pl.Float64))
        .alias("season_purchase_days_last_year"),
    )
