"""Out-of-time split of the snapshot table into training, validation and test snapshots.

The label of snapshot `t` comes from the window `[t, t + horizon)`. The rule:

- test: the latest labelled snapshot (or a given one, for backtests);
- validation: the latest labelled snapshot whose label window ends at or before the test snapshot;
- training: every labelled snapshot whose label window ends at or before the validation snapshot.

So no label used for fitting (training) or for early stopping and calibration (validation) was
observed after the test snapshot began, and `check_split` verifies this explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import TrainError

MIN_TRAINING_SNAPSHOTS = 1
SNAPSHOT_COLUMN = "snapshot_date"
LABEL_COLUMN = "churned"

CHANGE_HINT = (
    "add earlier snapshot dates (features.snapshots.start, or features.snapshots.dates) and re-run "
    "`churn features`, or shorten the label window (features.horizon_days)"
)


@dataclass(frozen=True)
class TimeSplit:
    """Snapshot dates (UTC timestamps) of each part of an out-of-time split."""

    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp
    test: pd.Timestamp
    horizon_days: int

    def as_dict(self) -> dict[str, object]:
        """ISO dates, for MLflow tags, manifests and reports."""
        return {
            "train": [_iso(t) for t in self.train],
            "validation": _iso(self.validation),
            "test": _iso(self.test),
            "horizon_days": self.horizon_days,
        }


def _iso(ts: pd.Timestamp) -> str:
    return ts.date().isoformat()


def _as_utc(dates: Sequence[object]) -> list[pd.Timestamp]:
    stamps = pd.to_datetime(pd.Series(list(dates)), utc=True)
    return sorted(set(stamps))


def labelled_snapshots(features: pd.DataFrame) -> list[pd.Timestamp]:
    """Sorted snapshot dates whose every row has a known label (`churned` not null).

    A snapshot whose label window has not passed has null labels and cannot be trained or tested on.
    """
    missing = {SNAPSHOT_COLUMN, LABEL_COLUMN} - set(features.columns)
    if missing:
        raise TrainError(
            f"the feature table lacks column(s) {sorted(missing)}: re-run `churn features` to rebuild the snapshots"
        )
    known = features[LABEL_COLUMN].notna().groupby(features[SNAPSHOT_COLUMN]).all()
    return _as_utc(known.index[known.to_numpy()])


def snapshots_needed(snapshot_dates: Sequence[object], *, horizon_days: int, folds: int = 1) -> int:
    """How many labelled snapshots, at the table's usual spacing, one split (plus `folds - 1` rolls) needs.

    Test, then one horizon back a validation snapshot, then one more horizon back the first training one.
    """
    dates = _as_utc(snapshot_dates)
    gaps = np.diff(np.array([d.value for d in dates], dtype="int64")) / 86_400e9 if len(dates) > 1 else np.array([30.0])
    step_days = float(np.median(gaps))
    steps_per_horizon = int(np.ceil(horizon_days / step_days - 1e-9))
    return 1 + 2 * steps_per_horizon + (MIN_TRAINING_SNAPSHOTS - 1) + (folds - 1)


def time_split(snapshot_dates: Sequence[object], *, horizon_days: int, test_date: object | None = None) -> TimeSplit:
    """Split labelled snapshot dates by the rule in the module docstring; raise TrainError if impossible.

    `snapshot_dates` are the labelled snapshots (see `labelled_snapshots`); `test_date` defaults to the
    latest of them.
    """
    dates = _as_utc(snapshot_dates)
    horizon = pd.Timedelta(days=horizon_days)
    if not dates:
        raise TrainError(
            "no labelled snapshots: every snapshot's label window "
            f"({horizon_days} days) ends after the last event. {CHANGE_HINT.capitalize()}."
        )
    test = dates[-1] if test_date is None else pd.Timestamp(test_date)
    test = test.tz_localize("UTC") if test.tzinfo is None else test.tz_convert("UTC")
    if test not in dates:
        raise TrainError(f"test snapshot {_iso(test)} is not a labelled snapshot")
    validation_candidates = [d for d in dates if d + horizon <= test]
    if not validation_candidates:
        raise _too_few(dates, horizon_days, "no validation snapshot", test)
    validation = validation_candidates[-1]
    train = tuple(d for d in dates if d + horizon <= validation)
    if len(train) < MIN_TRAINING_SNAPSHOTS:
        raise _too_few(dates, horizon_days, "no training snapshot", test)
    split = TimeSplit(train=train, validation=validation, test=test, horizon_days=horizon_days)
    check_split(split)
    return split


def _too_few(dates: list[pd.Timestamp], horizon_days: int, what: str, test: pd.Timestamp) -> TrainError:
    needed = snapshots_needed(dates, horizon_days=horizon_days)
    return TrainError(
        f"{what} for test snapshot {_iso(test)}: an out-of-time split with a {horizon_days}-day label window "
        f"needs about {needed} labelled snapshots at this spacing (test, a validation snapshot "
        f"{horizon_days} days earlier, training snapshots {horizon_days} days before that); "
        f"found {len(dates)} ({', '.join(_iso(d) for d in dates)}). To fix: {CHANGE_HINT}."
    )


def check_split(split: TimeSplit) -> None:
    """Raise TrainError unless training and validation label windows end before the test window opens.

    Label window of `t` = `[t, t + horizon)`; two windows overlap when each starts before the other ends.
    """
    horizon = pd.Timedelta(days=split.horizon_days)
    if not split.train:
        raise TrainError("the split has no training snapshot")
    test_start, test_end = split.test, split.test + horizon
    overlapping = [t for t in split.train if t < test_end and test_start < t + horizon]
    if overlapping:
        raise TrainError(
            f"training snapshot(s) {', '.join(_iso(t) for t in overlapping)} have label windows overlapping the "
            f"test snapshot {_iso(split.test)}'s window [{_iso(test_start)}, {_iso(test_end)}): "
            "the test labels would leak into training"
        )
    if split.validation + horizon > test_start:
        raise TrainError(
            f"validation snapshot {_iso(split.validation)}'s label window ends after the test snapshot "
            f"{_iso(split.test)} begins"
        )
    late_train = [t for t in split.train if t + horizon > split.validation]
    if late_train:
        raise TrainError(
            f"training snapshot(s) {', '.join(_iso(t) for t in late_train)} have label windows ending after "
            f"the validation snapshot {_iso(split.validation)}"
        )


def rolling_splits(snapshot_dates: Sequence[object], *, horizon_days: int, folds: int) -> list[TimeSplit]:
    """`folds` splits whose test snapshots are the latest `folds` labelled snapshots, newest first.

    Each has its own validation and training snapshots by the same rule. Raises TrainError naming how
    many snapshots the backtest needs when the oldest fold cannot be built.
    """
    dates = _as_utc(snapshot_dates)
    if len(dates) < folds:
        raise TrainError(
            f"a backtest with {folds} folds needs at least "
            f"{snapshots_needed(dates or [pd.Timestamp(0)], horizon_days=horizon_days, folds=folds)} labelled "
            f"snapshots; found {len(dates)}. Lower train.backtest_folds, or {CHANGE_HINT}."
        )
    splits = []
    for test in reversed(dates[-folds:]):
        try:
            splits.append(time_split(dates, horizon_days=horizon_days, test_date=test))
        except TrainError as exc:
            needed = snapshots_needed(dates, horizon_days=horizon_days, folds=folds)
            raise TrainError(
                f"backtest fold with test snapshot {_iso(test)} cannot be built: a {folds}-fold backtest needs "
                f"about {needed} labelled snapshots; found {len(dates)}. Lower train.backtest_folds, or "
                f"{CHANGE_HINT}. ({exc})"
            ) from None
    return splits


def split_frame(features: pd.DataFrame, split: TimeSplit) -> dict[str, pd.DataFrame]:
    """Rows of `features` for each part: {"train", "validation", "test"} -> frame (same columns).

    Raises TrainError when a part has no rows or only one class of label.
    """
    stamps = pd.to_datetime(features[SNAPSHOT_COLUMN], utc=True)
    parts = {
        "train": features[stamps.isin(list(split.train))],
        "validation": features[stamps == split.validation],
        "test": features[stamps == split.test],
    }
    for name, part in parts.items():
        labels = part[LABEL_COLUMN]
        if labels.isna().any():
            raise TrainError(f"the {name} snapshot(s) contain rows without a label; re-run `churn features`")
        if labels.nunique() < 2:
            raise TrainError(
                f"the {name} part ({len(part)} rows) holds only one class of label "
                f"(churned={sorted(labels.unique().tolist())}): a churn model needs churners and non-churners "
                "in every part. Check features.lookback_days / features.horizon_days and the snapshot dates."
            )
    return parts
