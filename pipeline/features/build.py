"""Point-in-time feature table of one snapshot: the per-customer step, then the population step.

- Per-customer step (`customer_aggregates*`): every value depends only on that customer's own cut
  events, so it can run on partitions split by customer (the Dask path) and be concatenated.
  Output: one row per customer with a purchase before `t`: customer_id, `eligible`, the
  per-customer features, and internal `_btyd_*` summary columns (when cfg.btyd).
- Population step (`population_features*`): steps that need every customer of the snapshot —
  the overdue ratio (the population's typical gap), the BG/NBD fit (on all customers with a purchase before `t`), then the eligible rows only, the
  RFM quintile scores and segments; columns put in registry order, sorted by customer_id.

Events are read at `as_of` from the timelines prepared once by `event_tables`
(`pipeline.features.tables`): what was known before midnight of `as_of` in the business time zone
(`FeaturesConfig.timezone`), by the rules of `pipeline.snapshot`. Each snapshot costs time in proportion to the
number of customers.

The per-customer values are numpy arrays turned into polars columns; the features are polars
expressions over them. The result is returned as pandas with float64 numeric features and "str"
categorical features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import activity, attributes, btyd, feedback, loyalty, rfm, service
from pipeline.features.registry import feature_specs
from pipeline.features.tables import EventTables, event_tables
from pipeline.features.timeline import Cut, pick_series
from pipeline.snapshot import instant_us, snapshot_time, to_polars

POPULATION_FEATURES = ("overdue_ratio", "history_censored", "rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_segment",
                       "btyd_p_alive", "btyd_expected_purchases", "pnbd_p_alive", "pnbd_expected_purchases")
INTERNAL = ("_purchase_days", "_first_event_at", "_returned_first", "_season_start_at")  # per-customer columns the population step reads besides the features
BTYD_SUMMARY = ("_btyd_frequency", "_btyd_recency", "_btyd_T")


def customer_feature_names(cfg: FeaturesConfig) -> list[str]:
    """Registry features computed in the per-customer step, in registry order."""
    return [spec.name for spec in feature_specs(cfg) if spec.name not in POPULATION_FEATURES]


def aggregate_columns(cfg: FeaturesConfig) -> list[str]:
    """Columns of the per-customer aggregates table, in order."""
    return ["customer_id", "eligible", *customer_feature_names(cfg), *INTERNAL, *(BTYD_SUMMARY if cfg.btyd else ())]


def customer_aggregates_from_tables(tables: EventTables, *, as_of: dt.date, cfg: FeaturesConfig) -> pl.DataFrame:
    """Per-customer step on prepared tables, read at `as_of`: `aggregate_columns(cfg)`, polars.

    One row per customer with a purchase before `as_of`, in the tables' customer order.
    """
    t = snapshot_time(as_of)
    cut = Cut(t=t, codes=rfm.customers_with_purchase(tables.parts, t=t), instant_us=instant_us(t, cfg.zone))

    columns = [
        pick_series(tables.customer_ids, cut.codes, "customer_id"),
        *rfm.order_aggregates(tables.parts, cut, cfg=cfg),
        *activity.order_aggregates(tables.parts, cut, cfg=cfg),
        *activity.product_aggregates(tables.products, cut, cfg=cfg),
        *service.delivery_aggregates(tables.parts, cut),
        *rfm.category_aggregates(tables.categories, cut),
        *feedback.customer_aggregates(tables.feedback, cut),
        *service.ticket_aggregates(tables.tickets, cut, cfg=cfg),
        *loyalty.customer_aggregates(tables.loyalty, cut, cfg=cfg),
        *attributes.customer_attributes(tables.attributes, cut, numbers=cfg.number_attribute_columns),
    ]
    features = pl.DataFrame(columns).lazy().with_columns(
        *rfm.order_features(as_of=as_of, cfg=cfg),
        *activity.features(as_of=as_of, cfg=cfg),
        *service.delivery_features(),
        *feedback.features(as_of=as_of),
        *service.ticket_features(),
        *loyalty.features(as_of=as_of, cfg=cfg),
        *attributes.features(as_of=as_of),
        *btyd.summary_columns(as_of=as_of),
    )
    return features.select(aggregate_columns(cfg)).collect()


def population_features_from_aggregates(
    aggregates: pl.DataFrame, *, cfg: FeaturesConfig, as_of: dt.date | None = None
) -> pl.DataFrame:
    """Population step on the per-customer aggregates of ALL customers of the snapshot `as_of` (named in the
    BTYD log lines); polars in and out."""
    return population_features_and_fits(aggregates, cfg=cfg, as_of=as_of)[0]


def population_features_and_fits(
    aggregates: pl.DataFrame, *, cfg: FeaturesConfig, as_of: dt.date | None = None
) -> tuple[pl.DataFrame, list[dict]]:
    """`population_features_from_aggregates`, and the records of the snapshot's BTYD fits (`btyd.fit_record`;
    none without cfg.btyd)."""
    frame = aggregates if aggregates["customer_id"].is_sorted() else aggregates.sort("customer_id")
    frame = activity.add_history_flags(rfm.add_overdue(frame))
    fits: list[dict] = []
    if cfg.btyd:
        frame, fits = btyd.add_features_and_fits(frame, horizon_days=cfg.horizon_days, as_of=as_of)
    columns = [
        pl.col(spec.name).cast(pl.String if spec.kind == "categorical" else pl.Float64) for spec in feature_specs(cfg)
    ]
    eligible = rfm.add_scores(frame.lazy().filter(pl.col("eligible")))
    return eligible.select(pl.col("customer_id").cast(pl.String), *columns).collect(), fits


def to_pandas_features(frame: pl.DataFrame, *, cfg: FeaturesConfig) -> pd.DataFrame:
    """Polars feature table -> pandas: float64 numeric, "str" customer_id and categorical columns."""
    categorical = ["customer_id", *[s.name for s in feature_specs(cfg) if s.kind == "categorical"]]
    result = frame.to_pandas()
    return result.astype({name: "str" for name in categorical})


def features_from_tables(tables: EventTables, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """`build_features` on tables prepared once by `event_tables` (for many snapshots)."""
    return features_from_partitions([tables], as_of=as_of, cfg=cfg)


def features_from_partitions(partitions: Sequence[EventTables], *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """`build_features` on the tables of customer partitions (`partitioned_event_tables`): the per-customer
    step on each, concatenated, then the population step over all customers."""
    return to_pandas_features(polars_features_and_fits_from_partitions(partitions, as_of=as_of, cfg=cfg)[0], cfg=cfg)


def polars_features_and_fits_from_partitions(
    partitions: Sequence[EventTables], *, as_of: dt.date, cfg: FeaturesConfig
) -> tuple[pl.DataFrame, list[dict]]:
    """`features_from_partitions` before `to_pandas_features` (the population step's polars frame), and the records of
    the snapshot's BTYD fits."""
    snapshot_time(as_of)
    aggregates = [customer_aggregates_from_tables(tables, as_of=as_of, cfg=cfg) for tables in partitions]
    return polars_features_and_fits_from_aggregates(aggregates, as_of=as_of, cfg=cfg)


def polars_features_and_fits_from_aggregates(
    aggregates: list[pl.DataFrame], *, as_of: dt.date, cfg: FeaturesConfig
) -> tuple[pl.DataFrame, list[dict]]:
    """The population step on the per-customer aggregates of customer partitions, in partition order (emptied:
    the concatenated copy replaces them in memory), and the records of the snapshot's BTYD fits."""
    # One chunk per column: the population step's expressions and to_pandas on five chunks cost more than this copy.
    frame = aggregates[0] if len(aggregates) == 1 else pl.concat(aggregates, how="vertical_relaxed", rechunk=True)
    aggregates.clear()  # the rechunked frame is a copy: the partitions' rows need not stay in memory beside it
    return population_features_and_fits(frame, cfg=cfg, as_of=as_of)


def build_features(events: Events, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """Features of every eligible customer as of `as_of` (events cut at `as_of` here).

    Input: validated `Events` (uncut, UTC instants; days are those of `cfg.zone`). Output: one row per customer
    with a purchase in the `cfg.lookback_days` before `as_of`, sorted by customer_id; columns `customer_id` then
    `feature_names(cfg)`; numeric float64, categorical "str". Used by training and scoring alike.
    """
    snapshot_time(as_of)
    return features_from_tables(event_tables(events, timezone=cfg.zone, attributes=cfg.attribute_columns), as_of=as_of,
                                cfg=cfg)


def customer_aggregates(events: Events, *, as_of: dt.date, cfg: FeaturesConfig) -> pd.DataFrame:
    """Per-customer step as pandas: `aggregate_columns(cfg)`, one row per customer with a purchase before `as_of`.

    `events` may hold any subset of customers (with all their events): the rows of a customer do not
    depend on other customers. Events are cut at `as_of` here (cutting twice changes nothing).
    """
    snapshot_time(as_of)
    tables = event_tables(events, timezone=cfg.zone, attributes=cfg.attribute_columns)
    frame = customer_aggregates_from_tables(tables, as_of=as_of, cfg=cfg)
    return frame.to_pandas().astype({"customer_id": "str"})


def population_features(aggregates: pd.DataFrame, *, cfg: FeaturesConfig) -> pd.DataFrame:
    """Population step as pandas: the concatenated aggregates of all customers -> `build_features` output."""
    frame = to_polars(aggregates[aggregate_columns(cfg)])
    return to_pandas_features(population_features_from_aggregates(frame, cfg=cfg), cfg=cfg)
