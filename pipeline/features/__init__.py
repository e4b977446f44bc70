"""Point-in-time features for churn: one function for training (per snapshot) and scoring (as of today).

`build_features(events, *, as_of, cfg)` cuts the validated events at `as_of` (pipeline.snapshot)
and returns one row per eligible customer with the registry's features (pipeline.features.registry).
Families: rfm, feedback, service, loyalty, attributes, btyd (optional), one module each.
For many snapshots, prepare the tables once (`event_tables`, or `event_tables_from_frames` from
polars frames) and call `features_from_tables`: the tables are per-customer timelines
(`pipeline.features.timeline`), so each snapshot costs time in proportion to the customers, not
to the history. For data too large to prepare at once, `partitioned_event_tables` prepares them per
customer partition and `features_from_partitions` reads them all.
For partitioned (Dask) runs: `customer_aggregates` per customer partition, concatenated, then
`population_features`.
"""

from pipeline.features.build import (
    aggregate_columns,
    build_features,
    customer_aggregates,
    customer_aggregates_from_tables,
    features_from_partitions,
    features_from_tables,
    population_features,
    population_features_from_aggregates,
)
from pipeline.features.registry import FeatureSpec, feature_names, feature_specs
from pipeline.features.tables import EventTables, event_tables, event_tables_from_frames, partitioned_event_tables

__all__ = [
    "EventTables",
    "FeatureSpec",
    "aggregate_columns",
    "build_features",
    "customer_aggregates",
    "customer_aggregates_from_tables",
    "event_tables",
    "event_tables_from_frames",
    "feature_names",
    "feature_specs",
    "features_from_partitions",
    "features_from_tables",
    "population_features",
    "partitioned_event_tables",
    "population_features_from_aggregates",
]
