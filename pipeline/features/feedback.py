"""Feedback family: NPS, CSAT, review stars, low ratings, time since feedback (per-customer only).

Input: the feedback timeline (`pipeline.features.tables.FeedbackRows`), sorted by time then score,
so "latest" is the last submitted (ties: the higher score). Scores: NPS 0-10, CSAT and reviews 1-5;
means are exact sums of score units over counts. A rating is low when NPS <= 6, CSAT <= 2 or
review <= 2. NPS category: promoter 9-10, passive 7-8, detractor 0-6. Customers without feedback:
counts and flags 0, values NaN/null.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.features.rfm import days_between
from pipeline.features.tables import MONEY_UNITS, FeedbackRows
from pipeline.features.timeline import Cut, latest_before, pick, timestamps
from pipeline.snapshot import snapshot_time


def customer_aggregates(feedback: FeedbackRows, cut: Cut) -> list[pl.Series]:
    """Per row of `cut`: latest scores and their times, score sums and counts per kind, low ratings."""
    start, end = cut.rows(feedback.timeline)
    sums = feedback.sums.at(end) - feedback.sums.at(start)

    def total(name: str) -> pl.Series:
        return pl.Series(f"_{name}", sums[name])

    last_nps = latest_before(feedback.last_nps, start, end)
    last_csat = latest_before(feedback.last_csat, start, end)
    return [
        pick(feedback.score, last_nps, "nps_last"),
        timestamps(pick(feedback.at_us, last_nps, "_last_nps_at")),
        pick(feedback.score, last_csat, "csat_last"),
        timestamps(pick(feedback.at_us, np.where(end > start, end - 1, -1), "_last_feedback_at")),
        *[total(f"{kind}_{what}") for kind in ("nps", "csat", "review") for what in ("count", "units")],
        pl.Series("low_ratings_count", sums["low"]),
        pl.Series("has_feedback", end > start),
    ]


def features(*, as_of: dt.date) -> list[pl.Expr]:
    """The feedback features from the columns of `customer_aggregates`."""
    t = snapshot_time(as_of)
    last = pl.col("nps_last")

    def mean(kind: str) -> pl.Expr:
        count = pl.col(f"_{kind}_count")
        return pl.when(count > 0).then(pl.col(f"_{kind}_units") / MONEY_UNITS / count).alias(f"{kind}_mean")

    return [
        mean("nps"),
        mean("csat"),
        mean("review"),
        pl.when(last >= 9).then(pl.lit("promoter")).when(last >= 7).then(pl.lit("passive"))
        .when(last.is_not_null()).then(pl.lit("detractor")).alias("nps_category"),
        (last <= 6).fill_null(False).alias("is_detractor"),
        (last >= 9).fill_null(False).alias("is_promoter"),
        days_between(t, pl.col("_last_nps_at")).alias("days_since_nps"),
        days_between(t, pl.col("_last_feedback_at")).alias("days_since_feedback"),
    ]
