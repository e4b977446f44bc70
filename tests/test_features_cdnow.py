"""The shared CDNOW data: 12 monthly snapshots build, and labels match a direct computation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import event_tables, feature_names, features_from_tables
from pipeline.labels import label_churn

SNAPSHOTS = [d.date() for d in pd.date_range("1997-04-01", "1998-03-01", freq="MS")]
LOOKBACK, HORIZON = 365, 90


@pytest.fixture(scope="module")
def cdnow(shared_data) -> Events:
    """Validated transactions built directly from CDNOW_master.txt: each row one order."""
    raw = pd.read_csv(shared_data / "cdnow" / "CDNOW_master.txt", sep=r"\s+",
                      dtype={"customer_id": str, "date": str})
    transactions = pd.DataFrame({
        "order_id": raw.index.astype(str),
        "customer_id": raw["customer_id"],
        "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d", utc=True),
        "amount": raw["dollar_value"].astype(float),
        "quantity": raw["number_of_cds"].astype(float),
    })
    return Events.from_frames(transactions=transactions)


def direct_labels(transactions: pd.DataFrame, as_of: dt.date) -> pd.Series:
    t = pd.Timestamp(as_of, tz="UTC")
    at = transactions["ordered_at"]
    before = transactions[(at >= t - pd.Timedelta(days=LOOKBACK)) & (at < t)]["customer_id"].unique()
    after = set(transactions[(at >= t) & (at < t + pd.Timedelta(days=HORIZON))]["customer_id"])
    eligible = np.sort(before)
    return pd.Series([0 if c in after else 1 for c in eligible], index=eligible, dtype="int8")


@pytest.mark.slow
def test_twelve_monthly_snapshots_and_their_labels(cdnow):
    cfg = FeaturesConfig(snapshots={"dates": SNAPSHOTS}, lookback_days=LOOKBACK, horizon_days=HORIZON)
    tables = event_tables(cdnow)
    tx = cdnow.transactions
    for as_of in SNAPSHOTS:
        features = features_from_tables(tables, as_of=as_of, cfg=cfg)
        labels = label_churn(tx, as_of=as_of, lookback_days=LOOKBACK, horizon_days=HORIZON)
        expected = direct_labels(tx, as_of)
        assert labels["customer_id"].tolist() == expected.index.tolist()
        assert labels["churned"].tolist() == expected.tolist()
        assert features["customer_id"].tolist() == expected.index.tolist()
        assert list(features.columns) == ["customer_id", *feature_names(cfg)]

        t = pd.Timestamp(as_of, tz="UTC")
        seen = tx[tx["ordered_at"] < t].groupby("customer_id")
        indexed = features.set_index("customer_id")
        np.testing.assert_array_equal(indexed["frequency_all"], seen.size().loc[indexed.index])
        np.testing.assert_allclose(indexed["monetary_all"], seen["amount"].sum().loc[indexed.index], atol=1e-6)
        recency = (t - seen["ordered_at"].max().loc[indexed.index]).dt.total_seconds() / 86400
        np.testing.assert_allclose(indexed["recency_days"], recency)
        assert indexed["btyd_p_alive"].between(0, 1).all()
        assert indexed["pnbd_p_alive"].between(0, 1).all()
        for column in ("btyd_expected_purchases", "pnbd_expected_purchases"):  # both fits are not degenerate
            assert indexed[column].notna().all() and indexed[column].std() > 0.05, (as_of, column)
        assert np.isfinite(indexed["overdue_ratio"]).all()
        assert indexed["rfm_segment"].notna().all()
    # every CDNOW customer bought first in Q1 1997: the 1997-04-01 snapshot holds all 23,570
    first = features_from_tables(tables, as_of=SNAPSHOTS[0], cfg=cfg)
    assert len(first) == 23570
