"""Customer attributes (static only): days since sign-up, region, acquisition channel, and the customers export's
columns listed in sources.customers.attributes (`attribute_<slug>`).

A customer who signed up at or after `t` does not exist yet at `t` (`pipeline.snapshot`): like
customers absent from the customers source, they get days_since_signup NaN and region,
acquisition_channel and every attribute_<slug> null. An attribute of kind number is a Float64 feature, the others
String.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from pipeline.features.rfm import days_between
from pipeline.features.tables import NULL_TIME, Attributes, check_attribute_kinds
from pipeline.features.timeline import Cut, timestamps, with_nulls
from pipeline.snapshot import snapshot_time

# An attribute with more distinct values than max(IDENTIFIER_VALUES, IDENTIFIER_SHARE x the customers holding one) is
# an identifier (an e-mail, a name, a free-text note), not a group of customers.
IDENTIFIER_VALUES = 50
IDENTIFIER_SHARE = 0.5


def customer_attributes(attributes: Attributes, cut: Cut, *, numbers: Sequence[str] = ()) -> list[pl.Series]:
    """Per row of `cut`: _signup_at, region, acquisition_channel, then the attribute_<slug> columns of
    `attributes.extra`: Float64 those of `numbers` (`FeaturesConfig.number_attribute_columns`), String the others;
    each null when the customer is not known at `t`. FeatureError when the validated customers type one otherwise
    (`check_attribute_kinds`)."""
    check_attribute_kinds(attributes.extra, numbers)
    signup = attributes.signup_us[cut.codes]
    known = attributes.present[cut.codes] & ((signup == NULL_TIME) | (signup < cut.t_us))
    rows = pl.Series(cut.codes)
    return [
        with_nulls(timestamps(pl.Series("_signup_at", signup)), known & (signup != NULL_TIME)),
        with_nulls(attributes.region.gather(rows), known).alias("region"),
        with_nulls(attributes.acquisition_channel.gather(rows), known).alias("acquisition_channel"),
        *[with_nulls(values.gather(rows), known).cast(pl.Float64 if name in numbers else pl.String).alias(name)
          for name, values in attributes.extra.items()],
    ]


def features(*, as_of: dt.date) -> list[pl.Expr]:
    """days_since_signup from `customer_attributes`."""
    return [days_between(snapshot_time(as_of), pl.col("_signup_at")).alias("days_since_signup")]


def identifier_attribute_warnings(customers: pl.DataFrame, attributes: Mapping[str, str]) -> list[str]:
    """One warning per attribute of `attributes` ({attribute_<slug> column: the export's column name}) whose values
    in `customers` (the validated customers, one row per customer) are nearly one per customer: more distinct
    non-null values than max(IDENTIFIER_VALUES, IDENTIFIER_SHARE x the customers holding a value). Such a column
    names people instead of grouping them: the model learns nothing from it that carries to other customers, and a
    reason would quote it. [] when none is."""
    columns = [column for column in attributes if column in customers.columns]
    if not columns:
        return []
    counts = customers.select(
        *[pl.col(c).drop_nulls().n_unique().alias(f"{c}:distinct") for c in columns],
        *[pl.col(c).count().alias(f"{c}:holders") for c in columns],
    ).row(0, named=True)
    warnings = []
    for column in columns:
        distinct, holders = counts[f"{column}:distinct"], counts[f"{column}:holders"]
        if distinct > max(IDENTIFIER_VALUES, IDENTIFIER_SHARE * holders):
            warnings.append(
                f"customer attribute {attributes[column]} ({column}) has {distinct:,} distinct values among the "
                f"{holders:,} customers holding one: nearly one per customer, it names them (an e-mail, a name, a "
                "note) rather than grouping them, so the model learns nothing from it that holds for other customers "
                "and a reason would quote it; leave it out of sources.customers.attributes")
    return warnings
