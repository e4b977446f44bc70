"""Feedback family: NPS, CSAT, review stars, low ratings, time since feedback (per-customer only).

Input: cut feedback (customer_id, submitted_at, kind, score), sorted by time then score, so "latest" is the last submitted (ties: the higher score). Scores: NPS 0-10, CSAT and reviews 1-5.
A rating is low when NPS <= 6, CSAT <= 2 or review <= 2. NPS category: promoter 9-10,
passive 7-8, detractor 0-6. Customers without feedback: counts and flags 0, values NaN/null.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.features.rfm import days_between
from pipeline.snapshot import snapshot_time

LOW_RATING = {"nps": 6, "csat": 2, "review": 2}


def customer_aggregates(feedback: pl.LazyFrame, *, as_of: dt.date) -> pl.LazyFrame:
    """Cut feedback -> one row per customer with feedback: the feedback features."""
    t = snapshot_time(as_of)
    kind, score = pl.col("kind"), pl.col("score")
    nps, csat, review = kind == "nps", kind == "csat", kind == "review"
    low = pl.any_horizontal([(kind == k) & (score <= limit) for k, limit in LOW_RATING.items()])
    aggregated = feedback.group_by("customer_id").agg(
        score.filter(nps).last().alias("nps_last"),
        pl.when(nps).then(score).mean().alias("nps_mean"),
        pl.when(nps).then(pl.col("submitted_at")).max().alias("_last_nps_at"),
        score.filter(csat).last().alias("csat_last"),
        pl.when(csat).then(score).mean().alias("csat_mean"),
        pl.when(review).then(score).mean().alias("review_mean"),
        low.sum().alias("low_ratings_count"),
        pl.col("submitted_at").max().alias("_last_feedback_at"),
    )
    last = pl.col("nps_last")
    return aggregated.with_columns(
        pl.when(last >= 9).then(pl.lit("promoter")).when(last >= 7).then(pl.lit("passive"))
        .when(last.is_not_null()).then(pl.lit("detractor")).alias("nps_category"),
        (last <= 6).fill_null(False).alias("is_detractor"),
        (last >= 9).fill_null(False).alias("is_promoter"),
        days_between(t, pl.col("_last_nps_at")).alias("days_since_nps"),
        days_between(t, pl.col("_last_feedback_at")).alias("days_since_feedback"),
        pl.lit(True).alias("has_feedback"),
    ).drop("_last_nps_at", "_last_feedback_at")


def fill_missing() -> list[pl.Expr]:
    """Customers without feedback: counts and flags 0."""
    return [pl.col(c).fill_null(0) for c in ("low_ratings_count", "is_detractor", "is_promoter", "has_feedback")]
