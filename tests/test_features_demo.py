"""`churn features` on the session demo workspace (demo data -> ingest -> features)."""

from __future__ import annotations

import pandas as pd

from pipeline.features import feature_names
from pipeline.features.store import read_snapshots, snapshot_dates


def test_demo_snapshots_are_built_with_labels(demo_features):
    cfg = demo_features
    assert snapshot_dates(cfg.features_dir) == cfg.features.snapshots.resolve()
    table = read_snapshots(cfg.features_dir)
    assert list(table.columns) == ["snapshot_date", "customer_id", *feature_names(cfg.features), "churned"]
    assert not table.duplicated(["snapshot_date", "customer_id"]).any()
    labelled = table.dropna(subset=["churned"])
    assert len(labelled) > 0 and set(labelled["churned"].unique()) == {0.0, 1.0}
    latest = table[table["snapshot_date"] == table["snapshot_date"].max()]
    # every family carries signal on the demo shop
    for column in ("recency_days", "nps_last", "tickets_365d", "points_balance", "days_since_signup", "btyd_p_alive"):
        assert latest[column].notna().any() and latest[column].nunique() > 1, column
    assert pd.api.types.is_float_dtype(table["churned"])
