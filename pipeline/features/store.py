"""Snapshot feature files: `features_dir/snapshot=YYYY-MM-DD.parquet`, one per snapshot date.

Columns: `snapshot_date` (datetime64[us, UTC], midnight), `customer_id` ("str"), the registry
features (float64 / "str"), `churned` (float64 1.0/0.0; NaN for every row when the label horizon
had not passed by the data's latest order). Written by `churn features`, read by training.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import FeatureError

LABEL = "churned"
SNAPSHOT_DATE = "snapshot_date"
_FILE_PATTERN = re.compile(r"^snapshot=(\d{4}-\d{2}-\d{2})\.parquet$")


def snapshot_path(features_dir: Path | str, d: dt.date) -> Path:
    """The file of snapshot `d`."""
    return Path(features_dir) / f"snapshot={d:%Y-%m-%d}.parquet"


def snapshot_frame(features: pd.DataFrame, labels: pd.DataFrame | None, *, as_of: dt.date) -> pd.DataFrame:
    """Feature rows + snapshot_date first + churned last (NaN everywhere when `labels` is None).

    Input: `build_features` output and `label_churn` output for the same date (same customers).
    Raises FeatureError when the labels are not for exactly the feature rows.
    """
    frame = features.copy(deep=False)  # copy-on-write: the new columns never touch `features`
    frame.insert(0, SNAPSHOT_DATE, pd.Series(pd.Timestamp(as_of, tz="UTC"), index=frame.index).astype("datetime64[us, UTC]"))
    if labels is None:
        frame[LABEL] = np.nan
        return frame
    if len(labels) != len(features) or not labels["customer_id"].reset_index(drop=True).equals(
        features["customer_id"].reset_index(drop=True)
    ):
        raise FeatureError(
            f"snapshot {as_of}: {len(labels)} labelled customers but {len(features)} feature rows; features and "
            "labels must use the same eligibility (purchase in the lookback window)"
        )
    frame[LABEL] = labels["churned"].to_numpy().astype("float64")
    return frame


def snapshot_dates(features_dir: Path | str) -> list[dt.date]:
    """Dates of the snapshot files present in `features_dir`, sorted."""
    folder = Path(features_dir)
    if not folder.is_dir():
        return []
    found = (_FILE_PATTERN.match(p.name) for p in folder.iterdir())
    return sorted(dt.date.fromisoformat(m.group(1)) for m in found if m)


def read_snapshots(features_dir: Path | str, dates: list[dt.date] | None = None) -> pd.DataFrame:
    """All (or the given) snapshot files concatenated, sorted by snapshot_date then customer_id.

    Raises FeatureError when there are none, or a requested date has no file.
    """
    available = snapshot_dates(features_dir)
    if not available:
        raise FeatureError(f"no feature snapshots in {features_dir}: run `churn features` (or `make features`) first")
    wanted = available if dates is None else sorted(set(dates))
    missing = [d for d in wanted if d not in available]
    if missing:
        raise FeatureError(
            f"no feature snapshot for {', '.join(str(d) for d in missing)} in {features_dir} "
            f"(have {available[0]} .. {available[-1]}): run `churn features` with these snapshot dates first"
        )
    frames = [pd.read_parquet(snapshot_path(features_dir, d)) for d in wanted]
    return pd.concat(frames, ignore_index=True)
