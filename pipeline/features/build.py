"""Point-in-time feature table of one snapshot: the per-customer step, then the population step.

- Per-customer step (`customer_aggregates*`): every value depends only on that customer's own cut
  events, so it can run on partitions split by customer (the Dask path) and be concatenated.
  Output: one row per customer with a purchase before `t`: customer_id, `eligible`, the
  per-customer features, and internal `_btyd_*` summary columns (when cfg.btyd).
- Population step (`population_features*`): steps that need every customer of the snapshot —
  the BG/NBD fit (on all customers with a purchase before `t`), then the eligible rows only, the
  RFM quintile scores and segments; columns put in registry order, sorted by customer_id.

Events are cut at `as_of` by the rules of `pipeline.snapshot` (`cut_frame`, the same rules as
`cut_events`, applied to the prepared tables so that the cut fuses into each aggregation).

The engine is polars (measured fastest here; see the features issue note): pandas frames are
converted once via Arrow, and the result is returned as pandas with float64 numeric features and
"str" categorical features.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import attributes, btyd, feedback, loyalty, rfm, service
from pipeline.features.registry import feature_specs
from pipeline.features.tables import EventTables, cut_tables, event_tables
from pipeline.snapshot import snapshot_time, to_polars

POPULATION_FEATURES = ("rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_segment",
                       "btyd_p_alive", "btyd_expected_purchases")
BTYD_SUMMARY = ("_btyd_frequency", "_btyd_recency", "_btyd_T")


def customer_feature_names(cfg: FeaturesConfig) -> list[str]:
    """Registry features computed in the per-customer step, in registry order."""
    return [spec.name for spec in feature_specs(cfg) if spec.name not in POPULATION_FEATURES]


def aggregate_columns(cfg: FeaturesConfig) -> list[str]:
    """Columns of the per-customer aggregates table, in order."""
    return ["customer_id", "eligible", *customer_feature_names(cfg), *(BTYD_SUMMARY if cfg.btyd else ())]


def customer_aggregates_from_tables(tables: EventTables, *, as_of: dt.date, cfg: FeaturesConfig) -> pl.DataFrame:
    """Per-customer step on prepared tables (cut here at `as_of`); polars in and out."""
    cut = cut_tables(tables, as_of=as_of)
    base = (
        cut["orders"]
        .group_by("customer_id")
        .agg(*rfm.order_aggregations(as_of=as_of, cfg=cfg), *service.delivery_aggregations(as_of=as_of))
        .filter(pl.col("_last_purchase_at").is_not_null())
        .with_columns(*rfm.order_features(as_of=as_of, cfg=cfg), *btyd.summary_columns(as_of=as_of))
    )
    families = [
        rfm.category_aggregates(cut["categories"]),
        feedback.customer_aggregates(cut["feedback"], as_of=as_of),
        service.ticket_aggregates(cut["support_tickets"], as_of=as_of, cfg=cfg),
        loyalty.customer_aggregates(cut["loyalty_events"], cut["loyalty_tiers"], as_of=as_of, cfg=cfg),
        attributes.customer_attributes(cut["customers"], as_of=as_of),
    ]
    for family in families:
        base = base.join(family, on="customer_id", how="left")
    filled = base.with_columns(
        *rfm.category_fill(), *feedback.fill_missing(), *service.ticket_fill(cfg), *loyalty.fill_missing(cfg)
    )
    columns = aggregate_columns(cfg)
    return filled.select(pl.col("customer_id").cast(pl.String), *columns[1:]).collect()


def population_features_from_aggregates(aggregates: pl.DataFrame, *, cfg: FeaturesConfig) -> pl.DataFrame:
    """Population step on the per-customer aggregates of ALL customers of the snapshot; polars in and out."""
    frame = aggregates.sort("customer_id")
    if cfg.btyd:
        frame = btyd.add_features(frame, horizon_days=cfg.horizon_days)
    frame = rfm.add_scores(frame.filter(pl.col("eligible")))
    columns = [
        pl.col(spec.name).cast(pl.String if spec.kind == "categorical" else pl.Float64) for spec in feature_specs(cfg)
    ]
    return frame.select(pl.col("customer_id").cast(pl.String), *columns)


def to_pandas_features(frame: pl.DataFrame, *, cfg: FeaturesConfig) -> pd.DataFrame:
    """Polars feature table -> pandas: float64 numeric, "str" customer_id and categorical columns."""
    categorical = ["customer_id", *[s.name for s in feature_specs(cfg) if s.kind == "categorical"]]
    result = frame.to_pandas()
    return result.astype({name: "str" for name in categorical})


def features_from_tables(tables: EventTables, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """`build_features` on tables prepared once by `event_tables` (for many snapshots)."""
    snapshot_time(as_of)
    aggregates = customer_aggregates_from_tables(tables, as_of=as_of, cfg=cfg)
    return to_pandas_features(population_features_from_aggregates(aggregates, cfg=cfg), cfg=cfg)


def build_features(events: Events, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """Features of every eligible customer as of `as_of` (events cut at `as_of` here).

    Input: validated `Events` (uncut). Output: one row per customer with a purchase in the
    `cfg.lookback_days` before `as_of`, sorted by customer_id; columns `customer_id` then
    `feature_names(cfg)`; numeric float64, categorical "str". Used by training and scoring alike.
    """
    snapshot_time(as_of)
    return features_from_tables(event_tables(events), as_of=as_of, cfg=cfg)


def customer_aggregates(events: Events, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """Per-customer step as pandas: `aggregate_columns(cfg)`, one row per customer with a purchase before `as_of`.

    `events` may hold any subset of customers (with all their events): the rows of a customer do not
    depend on other customers. Events are cut at `as_of` here (cutting twice changes nothing).
    """
    snapshot_time(as_of)
    frame = customer_aggregates_from_tables(event_tables(events), as_of=as_of, cfg=cfg)
    return frame.to_pandas().astype({"customer_id": "str"})


def population_features(aggregates: pd.DataFrame, *, cfg: FeaturesConfig) -> pd.DataFrame:
    """Population step as pandas: the concatenated aggregates of all customers -> `build_features` output."""
    frame = to_polars(aggregates[aggregate_columns(cfg)])
    return to_pandas_features(population_features_from_aggregates(frame, cfg=cfg), cfg=cfg)
