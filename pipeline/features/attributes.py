"""Customer attributes (static only): days since sign-up, region, acquisition channel, and the customers export's
columns listed in sources.customers.attributes (`attribute_<slug>`).

A customer who signed up at or after `t` does not exist yet at `t` (`pipeline.snapshot`): like
customers absent from the customers source, they get days_since_signup NaN and region,
acquisition_channel and every attribute_<slug> null. An attribute of kind number is a Float64 feature, the others
String; whether one names people rather than grouping them is the data's matter, noted by `churn ingest`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from pipeline.features.rfm import days_between
from pipeline.features.tables import NULL_TIME, Attributes, check_attribute_kinds
from pipeline.features.timeline import Cut, timestamps, with_nulls
from pipeline.snapshot import snapshot_time


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
