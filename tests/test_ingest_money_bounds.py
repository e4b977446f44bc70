"""Money is summed as exact int64 ten-thousandths: ingest bounds each row, features refuse totals that
could overflow (instead of crashing on a cast or wrapping to a negative monetary_all)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipeline.config import FeaturesConfig, IngestConfig
from pipeline.contract import conform
from pipeline.errors import FeatureError
from pipeline.events import Events
from pipeline.features.build import build_features

CFG = FeaturesConfig(snapshots={"dates": ["2024-03-01"]}, btyd=False)
AS_OF = dt.date(2024, 3, 1)


def events(amounts: list[float]) -> Events:
    n = len(amounts)
    transactions = conform(pd.DataFrame({
        "order_id": [f"o{i}" for i in range(n)],
        "customer_id": ["c1"] * n,
        "ordered_at": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
        "amount": amounts,
    }), "transactions")
    return Events.from_frames(transactions=transactions)


def test_amounts_at_the_default_bound_sum_exactly():
    bound = IngestConfig().max_abs_amount
    features = build_features(events([bound, bound, -bound, 0.0001]), as_of=AS_OF, cfg=CFG)
    assert features["monetary_all"].tolist() == [bound + 0.0001]


def test_totals_that_int64_units_cannot_hold_are_refused_not_wrapped():
    # Two rows of 6e14 made monetary_all negative, one of 1e15 crashed with a polars cast error.
    for amounts in ([6e14, 6e14], [1e15], [1e14] * 5, [1e14, -1e14, 1e14, -1e14, 1e14]):
        with pytest.raises(FeatureError, match=r"the validated amount values add up to .* more than the .* that sums "
                                               r"can hold exactly; .*lower ingest\.max_abs_amount"):
            build_features(events(amounts), as_of=AS_OF, cfg=CFG)


def test_loyalty_points_totals_are_guarded_too():
    loyalty = conform(pd.DataFrame({
        "customer_id": ["c1"] * 5, "occurred_at": pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"),
        "kind": ["earn"] * 5, "points": [1e14] * 5,
    }), "loyalty_events")
    base = events([10.0])
    with pytest.raises(FeatureError, match=r"the validated points values add up to"):
        build_features(Events.from_frames(transactions=base.transactions, loyalty_events=loyalty), as_of=AS_OF, cfg=CFG)
