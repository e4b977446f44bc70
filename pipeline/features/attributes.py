"""Customer attributes (static only): days since sign-up, region, acquisition channel.

Input: cut customers (a customer who signed up at or after `t` is not there yet). Customers absent
from the customers source: days_since_signup NaN, region and acquisition_channel null.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.features.rfm import days_between
from pipeline.snapshot import snapshot_time


def customer_attributes(customers: pl.LazyFrame, *, as_of: dt.date) -> pl.LazyFrame:
    """Cut customers -> customer_id, days_since_signup, region, acquisition_channel."""
    t = snapshot_time(as_of)
    return customers.select(
        "customer_id",
        days_between(t, pl.col("signup_at")).alias("days_since_signup"),
        "region",
        "acquisition_channel",
    )
