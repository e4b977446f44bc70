"""Out-of-time split of the snapshot table: the final fit's snapshots, rolling-origin folds, the test snapshot.

The label of snapshot `t` comes from the window `[t, t + horizon)`. The rule, for a test snapshot `T`:

- test: the latest labelled snapshot (or a given one, for backtests);
- train: every labelled snapshot whose label window ends at or before `T` (the final model is
  refitted on all of them: all the labelled history there is at the cut);
- folds (rolling origin, newest first): the latest `folds` snapshots `v` of `train` that have at
  least one earlier snapshot whose window ends by `v`; fold `v` trains on those snapshots and is
  validated on `v`. The folds choose LightGBM's configuration and number of rounds, and their
  out-of-fold predictions fit the calibrator.

So no label used for fitting, choosing or calibrating was observed after the test snapshot began, and
`check_split` verifies this explicitly. Two label windows overlap when each starts before the other
ends (`label_windows_overlap`, the one place that rule is written).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import TrainError

MIN_TRAINING_SNAPSHOTS = 1
SNAPSHOT_COLUMN = "snapshot_date"
LABEL_COLUMN = "churned"

CHANGE_HINT = (
    "add earlier snapshot dates (features.snapshots.start, or features.snapshots.dates) and re-run "
    "`churn features`, put them closer together (features.snapshots.freq), or shorten the label window "
    "(features.horizon_days)"
)


@dataclass(frozen=True)
class Fold:
    """One rolling-origin validation fold: training snapshots and the later snapshot they are validated on."""

    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp

    def as_dict(self) -> dict[str, object]:
        return {"train": [_iso(t) for t in self.train], "validation": _iso(self.validation)}


@dataclass(frozen=True)
class TimeSplit:
    """Snapshot dates (UTC timestamps) of an out-of-time split: final fit, folds (newest first), test."""

    train: tuple[pd.Timestamp, ...]
    folds: tuple[Fold, ...]
    test: pd.Timestamp
    horizon_days: int

    @property
    def validation(self) -> tuple[pd.Timestamp, ...]:
        """The folds' validation snapshots, newest first."""
        return tuple(fold.validation for fold in self.folds)

    def as_dict(self) -> dict[str, object]:
        """ISO dates, for MLflow tags, manifests and reports."""
        return {
            "train": [_iso(t) for t in self.train],
            "validation": [_iso(t) for t in self.validation],
            "folds": [fold.as_dict() for fold in self.folds],
            "test": _iso(self.test),
            "horizon_days": self.horizon_days,
        }


def _iso(ts: pd.Timestamp) -> str:
    return ts.date().isoformat()


def _as_utc(dates: Sequence[object]) -> list[pd.Timestamp]:
    stamps = pd.to_datetime(pd.Series(list(dates)), utc=True)
    return sorted(set(stamps))


def label_windows_overlap(starts: Iterable[pd.Timestamp], other: pd.Timestamp, *, horizon_days: int) -> list[pd.Timestamp]:
    """The snapshots of `starts` whose label window `[t, t + horizon)` overlaps `other`'s window."""
    horizon = pd.Timedelta(days=horizon_days)
    return [t for t in starts if t < other + horizon and other < t + horizon]


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


def snapshots_within_rows(
    counts: pd.DataFrame, *, max_rows: int, horizon_days: int, folds: int, backtest_folds: int = 1
) -> tuple[list[dt.date], list[dt.date]]:
    """(the snapshot dates to read, the labelled ones left out) so that training reads at most `max_rows` rows:
    the newest labelled snapshots within the budget, but never fewer than give the splits of all of them (as many
    validation folds, and with `backtest_folds` > 1 as many backtest splits with as many folds each). When the
    budget binds, the unlabelled snapshots are not read (training cannot use them); otherwise every snapshot is.
    `max_rows` 0: all.

    Input: `snapshot_row_counts` (snapshot_date, rows, labelled), oldest first."""
    labelled = counts[counts["labelled"]]
    if max_rows == 0 or labelled.empty or int(labelled["rows"].sum()) <= max_rows:
        return list(counts["snapshot_date"]), []
    dates = list(labelled["snapshot_date"])
    within = int((labelled["rows"].iloc[::-1].cumsum() <= max_rows).sum())
    kept = dates[len(dates) - max(within, _fewest_for_the_same_splits(
        dates, horizon_days=horizon_days, folds=folds, backtest_folds=backtest_folds)):]
    return kept, dates[:len(dates) - len(kept)]


def _fewest_for_the_same_splits(dates: list[dt.date], *, horizon_days: int, folds: int, backtest_folds: int) -> int:
    """The fewest newest `dates` whose splits (`rolling_splits`) have as many validation folds as those of all `dates`
    (all of them when those cannot be split: the error is then training's)."""
    def shape(chosen: list[dt.date]) -> list[int]:
        try:
            return [len(split.folds) for split in rolling_splits(
                chosen, horizon_days=horizon_days, folds=backtest_folds, validation_folds=folds)]
        except TrainError:
            return []

    full = shape(dates)
    if not full:
        return len(dates)
    return next(count for count in range(1, len(dates) + 1) if shape(dates[-count:]) == full)


def closed_by(dates: Sequence[pd.Timestamp], cut: pd.Timestamp, *, horizon_days: int) -> tuple[pd.Timestamp, ...]:
    """The dates whose label window `[t, t + horizon)` ends at or before `cut`."""
    horizon = pd.Timedelta(days=horizon_days)
    return tuple(d for d in dates if d + horizon <= cut)


def validation_folds(train: Sequence[pd.Timestamp], *, horizon_days: int, folds: int) -> tuple[Fold, ...]:
    """Up to `folds` rolling-origin folds over the sorted `train` snapshots, newest validation first."""
    built: list[Fold] = []
    for validation in reversed(list(train)):
        if len(built) == folds:
            break
        fold_train = closed_by(train, validation, horizon_days=horizon_days)
        if len(fold_train) >= MIN_TRAINING_SNAPSHOTS:
            built.append(Fold(train=fold_train, validation=validation))
    return tuple(built)


def time_split(
    snapshot_dates: Sequence[object], *, horizon_days: int, test_date: object | None = None, folds: int = 3,
    short_history: str | None = None,
) -> TimeSplit:
    """Split labelled snapshot dates by the rule in the module docstring; raise TrainError if impossible.

    `snapshot_dates` are the labelled snapshots (see `labelled_snapshots`); `test_date` defaults to the
    latest of them; `folds` is the most rolling-origin folds wanted (fewer when the history is short).
    `short_history` (`short_history_note`): the advice of the error instead of adding earlier snapshot dates.
    """
    dates = _as_utc(snapshot_dates)
    if not dates:
        raise TrainError(
            "no labelled snapshots: every snapshot's label window "
            f"({horizon_days} days) ends after the last event. {short_history or CHANGE_HINT.capitalize() + '.'}"
        )
    test = dates[-1] if test_date is None else pd.Timestamp(test_date)
    test = test.tz_localize("UTC") if test.tzinfo is None else test.tz_convert("UTC")
    if test not in dates:
        raise TrainError(f"test snapshot {_iso(test)} is not a labelled snapshot")
    train = closed_by(dates, test, horizon_days=horizon_days)
    if not train:
        raise _too_few(dates, horizon_days, "no validation snapshot", test, short_history=short_history)
    built = validation_folds(train, horizon_days=horizon_days, folds=folds)
    if not built:
        raise _too_few(dates, horizon_days, "no training snapshot", test, short_history=short_history)
    split = TimeSplit(train=train, folds=built, test=test, horizon_days=horizon_days)
    check_split(split)
    return split


def _too_few(
    dates: list[pd.Timestamp], horizon_days: int, what: str, test: pd.Timestamp, *, short_history: str | None = None
) -> TrainError:
    needed = snapshots_needed(dates, horizon_days=horizon_days)
    return TrainError(
        f"{what} for test snapshot {_iso(test)}: an out-of-time split with a {horizon_days}-day label window "
        f"needs about {needed} labelled snapshots at this spacing (test, a validation snapshot "
        f"{horizon_days} days earlier, training snapshots {horizon_days} days before that); "
        f"found {len(dates)} ({', '.join(_iso(d) for d in dates)}). {short_history or f'To fix: {CHANGE_HINT}.'}"
    )


MIN_HISTORY_DAYS = 30  # history before the first training snapshot, for it to have customers and features


def short_history_note(first_event: dt.date | None, last_event: dt.date | None, *, horizon_days: int) -> str | None:
    """One sentence when the orders from `first_event` to `last_event` are too short for a split with label windows
    of `horizon_days`: training, validation and test windows that do not overlap, after some history (a month, or
    one window when it is shorter). It gives the longest window that works with derived snapshot dates (they start
    one window after the first order, so four windows, plus the snapshot grid's steps). None when the history is
    long enough (or unknown): then earlier snapshot dates can help."""
    if first_event is None or last_event is None:
        return None
    span = (last_event - first_event).days + 1
    needed = 3 * horizon_days + min(MIN_HISTORY_DAYS, horizon_days)
    if span >= needed:
        return None
    where = (f"The orders span {span} days ({first_event} to {last_event}); a split needs training, validation and "
             f"test label windows that do not overlap, after some history: with {horizon_days}-day windows about "
             f"{needed} days, and snapshots earlier than that would have little or no history behind them.")
    # Each of the first training, the validation and the test snapshot may fall up to one grid step late.
    for step_days, freq, every in ((15, "SMS", "every two weeks"), (7, "W-MON", "every week")):
        longest = (span - 3 * step_days) // 4
        if longest >= step_days:
            return (f"{where} Export more history, or shorten features.horizon_days to at most about {longest} days "
                    f"with snapshots {every} (features.snapshots.freq: {freq}).")
    return f"{where} Export more history."


def check_split(split: TimeSplit) -> None:
    """Raise TrainError unless every label used for fitting, choosing or calibrating ends before the test window.

    Training snapshots' windows must not overlap the test window; each fold's validation snapshot is a
    training snapshot, and each fold trains only on snapshots whose windows end by its validation snapshot.
    """
    horizon = pd.Timedelta(days=split.horizon_days)
    if not split.train:
        raise TrainError("the split has no training snapshot")
    if not split.folds:
        raise TrainError("the split has no validation fold")
    overlapping = label_windows_overlap(split.train, split.test, horizon_days=split.horizon_days)
    if overlapping:
        raise TrainError(
            f"training snapshot(s) {', '.join(_iso(t) for t in overlapping)} have label windows overlapping the "
            f"test snapshot {_iso(split.test)}'s window [{_iso(split.test)}, {_iso(split.test + horizon)}): "
            "the test labels would leak into training"
        )
    for fold in split.folds:
        if fold.validation + horizon > split.test:
            raise TrainError(
                f"validation snapshot {_iso(fold.validation)}'s label window ends after the test snapshot "
                f"{_iso(split.test)} begins"
            )
        if not fold.train:
            raise TrainError(f"the fold validated on {_iso(fold.validation)} has no training snapshot")
        late_train = [t for t in fold.train if t + horizon > fold.validation]
        if late_train:
            raise TrainError(
                f"training snapshot(s) {', '.join(_iso(t) for t in late_train)} have label windows ending after "
                f"the validation snapshot {_iso(fold.validation)}"
            )


def rolling_splits(
    snapshot_dates: Sequence[object], *, horizon_days: int, folds: int, validation_folds: int = 3
) -> list[TimeSplit]:
    """Up to `folds` splits whose test snapshots are the latest labelled snapshots, newest first.

    Each has its own training snapshots and validation folds by the same rule. A short history holds fewer:
    the splits stop at the first test snapshot without one (`backtest_shortfall` says so). Raises TrainError
    when not even the latest snapshot can be split.
    """
    dates = _as_utc(snapshot_dates)
    splits = []
    for test in reversed(dates[-folds:]):
        try:
            splits.append(time_split(dates, horizon_days=horizon_days, test_date=test, folds=validation_folds))
        except TrainError:
            if not splits:
                raise
            break
    return splits


def snapshot_count_phrase(count: int) -> str:
    """'1 test snapshot', '3 test snapshots'."""
    return f"{count} test snapshot{'' if count == 1 else 's'}"


def backtest_shortfall(
    snapshot_dates: Sequence[object], splits: Sequence[TimeSplit], *, horizon_days: int, folds: int
) -> str | None:
    """None when `splits` has the `folds` asked; else one sentence: how many the labelled snapshots hold, the
    first test snapshot left out and what to change for all of them."""
    if len(splits) >= folds:
        return None
    dates = _as_utc(snapshot_dates)
    needed = snapshots_needed(dates, horizon_days=horizon_days, folds=folds)
    held = snapshot_count_phrase(len(splits))
    left_out = (f"test snapshot {_iso(dates[-len(splits) - 1])} has too little labelled history before it for a "
                f"validation and a training snapshot ({horizon_days}-day label windows), and "
                if len(dates) > len(splits) else "")
    return (
        f"the backtest runs over {held}, not the {folds} of train.backtest_folds: {left_out}{folds} need about "
        f"{needed} labelled snapshots at this spacing; found {len(dates)}. To have them all, {CHANGE_HINT}."
    )


def rows_of(features: pd.DataFrame, dates: Iterable[pd.Timestamp], *, part: str) -> pd.DataFrame:
    """Rows of `features` at `dates`; TrainError when they hold no rows, a missing label or one class only."""
    stamps = pd.to_datetime(features[SNAPSHOT_COLUMN], utc=True)
    rows = features[stamps.isin(list(dates))]
    labels = rows[LABEL_COLUMN]
    if labels.isna().any():
        raise TrainError(f"the {part} snapshot(s) contain rows without a label; re-run `churn features`")
    if labels.nunique() < 2:
        nobody_returned = bool(len(rows)) and bool((labels == 1).all())
        raise TrainError(
            f"the {part} part ({len(rows)} rows) holds only one class of label "
            f"(churned={sorted(labels.unique().tolist())}): a churn model needs churners and non-churners "
            "in every part. Check features.lookback_days / features.horizon_days and the snapshot dates"
            + ("; nobody in it bought again within the label window: if nearly every customer id has one order (`churn "
               "ingest` warns when it sees that), customer_id names orders, not people: map the person's id."
               if nobody_returned
               else ".")
        )
    return rows


def split_frame(features: pd.DataFrame, split: TimeSplit) -> dict[str, pd.DataFrame]:
    """Rows of `features` for the final fit and the test: {"train", "test"} -> frame (same columns).

    Raises TrainError when a part has no rows or only one class of label.
    """
    return {
        "train": rows_of(features, split.train, part="train"),
        "test": rows_of(features, [split.test], part="test"),
    }


def fold_frames(features: pd.DataFrame, split: TimeSplit) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(training rows, validation rows) of each fold of `split`, newest fold first."""
    return [
        (
            rows_of(features, fold.train, part=f"fold {_iso(fold.validation)} training"),
            rows_of(features, [fold.validation], part="validation"),
        )
        for fold in split.folds
    ]


def drop_treated_rows(features: pd.DataFrame, treated: pd.DataFrame, *, horizon_days: int) -> pd.DataFrame:
    """The rows of `features` whose label no past retention action can have changed.

    `features`: customer_id, snapshot_date, ... (labelled snapshots). `treated`: customer_id, treated_on (the
    as-of date of a past at-risk list that put the customer in its treatment group). An action on day `a`
    changes the orders of [a, a + horizon); snapshot `t`'s label window is [t, t + horizon). A row is dropped
    when the two overlap (t - horizon < a < t + horizon): its label measures the action, not the risk.
    Control-group and unselected customers keep their rows, and so do rows without a label yet (a snapshot whose
    window has not passed: no label to change). Returns a new frame (the input is not changed).
    """
    if treated.empty:
        return features
    rows = pd.DataFrame(
        {
            "customer_id": features["customer_id"].astype(str).to_numpy(),
            "snapshot": pd.to_datetime(features[SNAPSHOT_COLUMN], utc=True).dt.tz_localize(None).to_numpy(),
            "row": np.arange(len(features)),
        }
    )
    actions = pd.DataFrame(
        {
            "customer_id": treated["customer_id"].astype(str).to_numpy(),
            "treated_on": pd.to_datetime(treated["treated_on"]).to_numpy(),
        }
    )
    pairs = rows.merge(actions, on="customer_id", how="inner")
    gap_days = (pairs["treated_on"] - pairs["snapshot"]).dt.days.abs()
    affected = np.unique(pairs.loc[gap_days < horizon_days, "row"].to_numpy())
    if LABEL_COLUMN in features.columns:
        affected = affected[features[LABEL_COLUMN].notna().to_numpy()[affected]]
    keep = np.ones(len(features), dtype=bool)
    keep[affected] = False
    return features.loc[keep].reset_index(drop=True)
