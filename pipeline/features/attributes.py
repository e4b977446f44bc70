"""Customer attributes (static only): days since sign-up, region, acquisition channel, and the customers export's
columns listed in sources.customers.attributes (`attribute_<slug>`).

A customer who signed up at or after `t` does not exist yet at `t` (`pipeline.snapshot`): like
customers absent from the customers source, they get days_since_signup NaN and region,
acquisition_channel and every attribute_<slug> null.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.features.rfm import days_between
from pipeline.features.tables import NULL_TIME, Attributes
from pipeline.features.timeline import Cut, timestamps, with_nulls
from pipeline.snapshot import snapshot_time


def customer_attributes(attributes: Attributes, cut: Cut) -> list[pl.Series]:
    """Per row of `cut`: _signup_at, region, acquisition_channel, then the attribute_<slug> columns of
    `attributes.extra` (String), each null when the customer is not known at `t`."""
    signup = attributes.signup_us[cut.codes]
    known = attributes.present[cut.codes] & ((signup == NULL_TIME) | (signup < cut.t_us))
    rows = pl.Series(cut.codes)
    return [
        with_nulls(timestamps(pl.Series("_signup_at", signup)), known & (signup != NULL_TIME)),
        with_nulls(attributes.region.gather(rows), known).alias("region"),
        with_nulls(attributes.acquisition_channel.gather(rows), known).alias("acquisition_channel"),
        *[with_nulls(values.gather(rows), known).alias(name) for name, values in attributes.extra.items()],
    ]


def features(*, as_of: dt.date) -> list[pl.Expr]:
    """days_since_signup from `customer_attributes`."""
    return [days_between(snapshot_time(as_of), pl.col("_signup_at")).alias("days_since_signup")]

