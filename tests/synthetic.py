"""Synthetic snapshot feature tables with a planted churn signal, for training tests (no other stage needed).

The table has the shape of `pipeline.features.store.read_snapshots`: `snapshot_date` (UTC), `customer_id`,
numeric features (float64), categorical features (str), `churned` (1.0/0.0, NaN where the label window
has not passed). Churn rises with recency and overdue ratio, falls with frequency and BTYD expected
purchases, and is higher in region "north"; `noise` carries no signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluate import RetentionSettings
from pipeline.features.registry import FeatureSpec
from pipeline.reasons import Reason


def spec(
    name: str, family: str = "rfm", kind: str = "numeric", *, reason: Reason | str | None = None, direction: str = "none"
) -> FeatureSpec:
    """A registry FeatureSpec for a test (no description): the fields training, scoring and reasons read."""
    return FeatureSpec(name, family, kind, "", direction, reason)


# Retention assumptions shared by the training and tracking tests.
RETENTION = RetentionSettings(
    budget=500.0, contact_cost=10.0, uplift=0.1, default_customer_value=100.0, value_feature="monetary_365d"
)


SPECS = [
    spec("recency_days", "rfm"),
    spec("frequency_all", "rfm"),
    spec("monetary_365d", "rfm"),
    spec("overdue_ratio", "rfm"),
    spec("nps_last", "feedback"),
    spec("btyd_p_alive", "btyd"),
    spec("btyd_expected_purchases", "btyd"),
    spec("noise", "rfm"),
    spec("region", "customer", "categorical"),
]


def synthetic_features(
    *, snapshots: int = 10, customers: int = 400, unlabelled: int = 3, seed: int = 0, start: str = "2024-01-01"
) -> pd.DataFrame:
    """`snapshots` monthly snapshots of `customers` rows each; the last `unlabelled` have NaN labels."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=snapshots, freq="MS", tz="UTC").as_unit("us")
    n = snapshots * customers
    recency = rng.exponential(60.0, n)
    frequency = rng.poisson(3.0, n).astype("float64") + 1.0
    overdue = recency / rng.uniform(20.0, 90.0, n)
    region = rng.choice(np.array(["north", "south", "east"]), n)
    logit = -1.5 + 0.02 * recency - 0.35 * frequency + 0.15 * overdue + 0.8 * (region == "north")
    churned = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype("float64")
    nps = rng.integers(0, 11, n).astype("float64")
    nps[rng.uniform(size=n) < 0.3] = np.nan
    frame = pd.DataFrame(
        {
            "snapshot_date": np.repeat(dates, customers),
            "customer_id": np.tile([f"c{i:05d}" for i in range(customers)], snapshots),
            "recency_days": recency,
            "frequency_all": frequency,
            "monetary_365d": frequency * rng.gamma(2.0, 30.0, n),
            "overdue_ratio": overdue,
            "nps_last": nps,
            "btyd_p_alive": 1.0 / (1.0 + np.exp(0.03 * recency - 2.0)),
            "btyd_expected_purchases": frequency * np.exp(-recency / 90.0),
            "noise": rng.normal(size=n),
            "region": pd.array(region, dtype="str"),
            "churned": churned,
        }
    )
    if unlabelled:
        frame.loc[frame["snapshot_date"] >= dates[snapshots - unlabelled], "churned"] = np.nan
    return frame
