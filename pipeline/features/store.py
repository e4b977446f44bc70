"""Snapshot feature files: `features_dir/snapshot=YYYY-MM-DD.parquet`, one per snapshot date.

Columns: `snapshot_date` (datetime64[us, UTC], midnight), `customer_id` ("str"), the registry
features (float64 / "str"), `churned` (float64 1.0/0.0; NaN for every row when the label horizon
had not passed by the data's latest order). Written by `churn features`, read by training.

Each file carries, in its Parquet key-value metadata (key `churn.features`), the feature settings it
was built with and their fingerprint (`feature_settings`, `settings_fingerprint`): windows, lookback,
horizon, loyalty tiers, btyd, the business time zone (when not UTC), the customers export's columns kept as
attributes (sources.customers.attributes, when any) and those of them that are numbers (when any), the feature
list, and the inputs present
(the sources with rows and their non-empty columns, `input_coverage`). `read_snapshots` refuses a mix of
fingerprints and names the stale files; `check_settings_match` compares the snapshots with the config training
runs with. With the BTYD family on, a file also records what the snapshot's BTYD fits found (key
`churn.btyd_fits`, `btyd_fits_metadata`, read by `read_btyd_fits`): training keeps its test snapshot's with the
drift reference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from pipeline.config import FeaturesConfig
from pipeline.contract import contract
from pipeline.errors import FeatureError
from pipeline.features.registry import feature_names
from pipeline.features.tables import SOURCE_COLUMNS

LABEL = "churned"
SNAPSHOT_DATE = "snapshot_date"
_FILE_PATTERN = re.compile(r"^snapshot=(\d{4}-\d{2}-\d{2})\.parquet$")
METADATA_KEY = "churn.features"
# The settings compared with the config: everything in `feature_settings` but the inputs (data, not config).
CONFIG_SETTINGS = ("windows_days", "lookback_days", "horizon_days", "loyalty_tiers", "btyd", "timezone",
                   "customer_attributes", "number_attributes", "features")


def input_coverage(frames: Mapping[str, pl.DataFrame | pl.LazyFrame]) -> dict[str, list[str]]:
    """The inputs the features can use: {source: [columns of SOURCE_COLUMNS holding at least one value]}
    for every source with at least one row (sources without rows are left out). Columns ingest derives
    (`status_known_at`) are no input: empty, they tell that no ticket needed one, not that data is missing.

    Input: validated frames (polars, eager or lazy: only the null counts are computed).
    """
    coverage = {}
    for name in SOURCE_COLUMNS:
        if name not in frames:
            continue
        frame = frames[name].lazy()
        present = [c for c in SOURCE_COLUMNS[name] if c in frame.collect_schema().names()
                   and c not in contract(name).derived]
        counts = frame.select(pl.len().alias("__rows__"), *[pl.col(c).count() for c in present]).collect()
        if counts["__rows__"][0] > 0:
            coverage[name] = [c for c in present if counts[c][0] > 0]
    return coverage


def feature_settings(cfg: FeaturesConfig, *, inputs: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """What a snapshot's values depend on besides the events: the features config and the inputs present.

    The business time zone is recorded when it is not UTC, the customer attributes when there are any, and those of
    them that are numbers when there are any (files built before these settings existed keep their fingerprint; a
    file of another zone's days, with attributes, or with an attribute of another kind differs from them). The
    attributes are recorded by their export column names: two names of one attribute_<slug> column read different
    columns."""
    zone = {"timezone": cfg.zone} if cfg.zone != "UTC" else {}
    attributes = {key: list(getattr(cfg, key)) for key in ("customer_attributes", "number_attributes")
                  if getattr(cfg, key)}
    return {
        "windows_days": list(cfg.windows_days),
        "lookback_days": cfg.lookback_days,
        "horizon_days": cfg.horizon_days,
        "loyalty_tiers": dict(cfg.loyalty_tiers),
        "btyd": cfg.btyd,
        **zone,
        **attributes,
        "features": feature_names(cfg),
        "inputs": {name: list(columns) for name, columns in inputs.items()},
    }


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the settings as canonical JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def snapshot_metadata(settings: Mapping[str, Any]) -> dict[str, str]:
    """Parquet key-value metadata recording `settings` and their fingerprint."""
    return {METADATA_KEY: json.dumps({"fingerprint": settings_fingerprint(settings), "settings": settings}, sort_keys=True)}


BTYD_FITS_KEY = "churn.btyd_fits"


def btyd_fits_metadata(fits: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Parquet key-value metadata recording a snapshot's BTYD fit records (`pipeline.features.btyd.fit_record`);
    nothing when there are none (the BTYD family off)."""
    return {BTYD_FITS_KEY: json.dumps(list(fits), sort_keys=True)} if fits else {}


def read_btyd_fits(path: Path | str) -> list[dict[str, Any]] | None:
    """The BTYD fit records of a snapshot file (its footer only), or None when it records none (the BTYD family
    off, a file built before they were recorded, or an unreadable record)."""
    raw = (pq.read_schema(path).metadata or {}).get(BTYD_FITS_KEY.encode("utf-8"))
    try:
        fits = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return fits if isinstance(fits, list) and all(isinstance(fit, dict) for fit in fits) else None


def read_snapshot_settings(path: Path | str) -> dict[str, Any] | None:
    """{"fingerprint", "settings"} recorded in a snapshot file (its footer only), or None when absent."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(METADATA_KEY.encode("utf-8"))
    if raw is None:
        return None
    try:
        recorded = json.loads(raw)
    except ValueError:
        return None
    return recorded if isinstance(recorded, dict) and "fingerprint" in recorded else None


def _settings(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return entry.get("settings") if entry else None


# Settings recorded only when they differ from these values (`feature_settings`).
UNRECORDED_DEFAULTS = {"timezone": "UTC", "customer_attributes": [], "number_attributes": []}


def _differences(ours: Mapping[str, Any] | None, theirs: Mapping[str, Any] | None, keys: Sequence[str]) -> str:
    if ours is None or theirs is None:
        return "no recorded feature settings (built by an older version)"
    differing = [k for k in keys if ours.get(k) != theirs.get(k)]
    if "features" in differing and len(differing) > 1:
        differing.remove("features")  # follows from the others; the lists are long

    def said(settings: Mapping[str, Any], key: str) -> Any:
        return settings.get(key, UNRECORDED_DEFAULTS.get(key))

    return "; ".join(f"{k} {said(ours, k)} vs {said(theirs, k)}" for k in differing) or "same settings"


def check_snapshot_mix(paths: Sequence[Path], *, expected: FeaturesConfig | None = None) -> dict[str, Any] | None:
    """Raise FeatureError naming the stale files when `paths` were built with different feature settings.

    Current are the files built with the `expected` config's settings when given and any file was; else
    those of the most common fingerprint (on a tie, the one of the latest snapshot date).
    Returns the common recorded settings ({"fingerprint", "settings"}), or None when no file records any.
    """
    recorded = {Path(path): read_snapshot_settings(path) for path in paths}
    groups: dict[str | None, list[Path]] = {}
    for path, entry in recorded.items():
        groups.setdefault(entry["fingerprint"] if entry else None, []).append(path)
    if len(groups) <= 1:
        return next(iter(recorded.values()), None)
    order = list(recorded)
    wanted = feature_settings(expected, inputs={}) if expected is not None else None

    def matches_config(fingerprint: str | None) -> bool:
        built = _settings(recorded[groups[fingerprint][0]])
        return wanted is not None and built is not None and all(built.get(k) == wanted.get(k) for k in CONFIG_SETTINGS)

    current = max(
        groups,
        key=lambda fp: (matches_config(fp), len(groups[fp]), max(order.index(p) for p in groups[fp])),
    )
    stale = sorted(p for fp, files in groups.items() if fp != current for p in files)
    detail = _differences(
        _settings(recorded[stale[0]]), _settings(recorded[groups[current][0]]), [*CONFIG_SETTINGS, "inputs"]
    )
    raise FeatureError(
        f"the feature snapshots in {stale[0].parent} were built with different feature settings: "
        f"{', '.join(p.name for p in stale)} differ from the other {len(groups[current])} ({detail}); "
        "run `churn features` to rebuild them all with one configuration"
    )


def recorded_settings(features_dir: Path | str, *, expected: FeaturesConfig | None = None) -> dict[str, Any] | None:
    """The feature settings recorded by every snapshot file in `features_dir` ({"fingerprint", "settings"}),
    or None when the files record none; FeatureError naming the stale files when they differ
    (see `check_snapshot_mix` for `expected`)."""
    paths = [snapshot_path(features_dir, d) for d in snapshot_dates(features_dir)]
    return check_snapshot_mix(paths, expected=expected)


def check_settings_match(recorded: Mapping[str, Any] | None, cfg: FeaturesConfig, *, features_dir: Path) -> None:
    """Raise FeatureError when snapshots recorded `recorded` settings that differ from the features config `cfg`
    (windows, lookback, horizon, tiers, btyd, business time zone, feature list). Nothing to compare when nothing was
    recorded."""
    if recorded is None:
        return
    built = recorded.get("settings", {})
    expected = feature_settings(cfg, inputs={})
    if any(built.get(k) != expected.get(k) for k in CONFIG_SETTINGS):
        raise FeatureError(
            f"the feature snapshots in {features_dir} were built with other feature settings than the config's "
            f"({_differences(built, expected, CONFIG_SETTINGS)}, snapshots vs config): run `churn features` "
            "with this config first"
        )


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


def snapshot_row_counts(features_dir: Path | str) -> pd.DataFrame:
    """Per snapshot file of `features_dir`, oldest first: snapshot_date (date), rows, labelled (every row has a
    label). Reads only the label column of each file."""
    counts = []
    for d in snapshot_dates(features_dir):  # one small read per file (tens of files)
        path = snapshot_path(features_dir, d)
        if LABEL not in pq.read_schema(path).names:
            raise FeatureError(f"{path} has no {LABEL!r} column: re-run `churn features` to rebuild the snapshots")
        labels = pq.read_table(path, columns=[LABEL]).column(0)
        counts.append((d, len(labels), len(labels) > 0 and labels.null_count == 0))
    return pd.DataFrame(counts, columns=[SNAPSHOT_DATE, "rows", "labelled"])


def read_snapshots(
    features_dir: Path | str, dates: list[dt.date] | None = None, *, expected: FeaturesConfig | None = None
) -> pd.DataFrame:
    """All (or the given) snapshot files concatenated, sorted by snapshot_date then customer_id.

    Raises FeatureError when there are none, a requested date has no file, or the files were built with
    different feature settings (`check_snapshot_mix`, naming the stale files; `expected`: the features
    config the caller will use, which tells current files from stale ones).
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
    paths = [snapshot_path(features_dir, d) for d in wanted]
    check_snapshot_mix(paths, expected=expected)
    frames = [pd.read_parquet(path) for path in paths]
    return pd.concat(frames, ignore_index=True)
