"""Out-of-time split: the rule, its explicit leak check, rolling backtest splits and their errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import minimal_config
from pipeline.config import config_from_dict
from pipeline.errors import TrainError
from pipeline.run import features as features_runner
from pipeline.run import ingest as ingest_runner
from pipeline.run import train as train_runner
from pipeline.split import (
    Fold,
    TimeSplit,
    backtest_shortfall,
    check_split,
    fold_frames,
    label_windows_overlap,
    labelled_snapshots,
    rolling_splits,
    short_history_note,
    snapshots_needed,
    split_frame,
    time_split,
)


def utc(*dates: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(d, tz="UTC") for d in dates]


MONTHS = utc(*[f"2024-{m:02d}-01" for m in range(1, 11)])  # Jan .. Oct 2024


def test_rule_picks_test_training_and_rolling_folds():
    split = time_split(MONTHS, horizon_days=90, folds=3)
    # train (the final fit): t + 90d <= Oct 1 -> Jan..Jul (Jul 1 + 90d = Sep 29; Aug 1 + 90d = Oct 30).
    # folds: validation Jul 1 trains on t + 90d <= Jul 1 -> Jan..Apr; Jun 1 -> Jan..Mar; May 1 -> Jan..Feb.
    assert split.test == pd.Timestamp("2024-10-01", tz="UTC")
    assert split.train == tuple(MONTHS[:7])
    assert split.folds == (
        Fold(train=tuple(MONTHS[:4]), validation=MONTHS[6]),
        Fold(train=tuple(MONTHS[:3]), validation=MONTHS[5]),
        Fold(train=tuple(MONTHS[:2]), validation=MONTHS[4]),
    )
    assert split.validation == (MONTHS[6], MONTHS[5], MONTHS[4])
    assert split.as_dict() == {
        "train": [f"2024-{m:02d}-01" for m in range(1, 8)],
        "validation": ["2024-07-01", "2024-06-01", "2024-05-01"],
        "folds": [
            {"train": ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"], "validation": "2024-07-01"},
            {"train": ["2024-01-01", "2024-02-01", "2024-03-01"], "validation": "2024-06-01"},
            {"train": ["2024-01-01", "2024-02-01"], "validation": "2024-05-01"},
        ],
        "test": "2024-10-01",
        "horizon_days": 90,
    }


def test_fewer_folds_when_the_history_is_short():
    split = time_split(MONTHS[:8], horizon_days=90, folds=5)  # test Aug 1: train Jan..May; Apr, May have folds
    assert split.train == tuple(MONTHS[:5])
    assert split.validation == (MONTHS[4], MONTHS[3])
    assert time_split(MONTHS, horizon_days=90, folds=1).validation == (MONTHS[6],)


def test_label_window_ending_exactly_at_the_test_snapshot_is_allowed():
    split = time_split(utc("2024-01-01", "2024-01-31", "2024-03-01"), horizon_days=30)
    assert split.validation == (pd.Timestamp("2024-01-31", tz="UTC"),)
    assert split.train == tuple(utc("2024-01-01", "2024-01-31"))
    assert split.folds[0].train == (pd.Timestamp("2024-01-01", tz="UTC"),)


def test_label_windows_overlap_when_each_starts_before_the_other_ends():
    # 30-day windows: Jan 1 ends Jan 31 (exclusive), so Jan 31 does not overlap it; Jan 30 does.
    starts = utc("2023-12-01", "2024-01-01", "2024-01-30", "2024-01-31", "2024-03-01")
    assert label_windows_overlap(starts, pd.Timestamp("2024-01-01", tz="UTC"), horizon_days=30) == utc(
        "2024-01-01", "2024-01-30"
    )


def test_naive_and_string_dates_are_read_as_utc():
    split = time_split([str(d.date()) for d in MONTHS], horizon_days=90, test_date="2024-10-01")
    assert split.test == pd.Timestamp("2024-10-01", tz="UTC")


def test_too_few_snapshots_says_how_many_and_which_keys():
    with pytest.raises(
        TrainError,
        match=r"needs about 7 labelled snapshots.*found 6.*features\.snapshots\.start.*features\.horizon_days",
    ):
        time_split(MONTHS[:6], horizon_days=90)


def test_no_validation_snapshot_is_an_error():
    with pytest.raises(TrainError, match="no validation snapshot for test snapshot 2024-02-01"):
        time_split(MONTHS[:2], horizon_days=90)


def test_no_labelled_snapshot_is_an_error():
    with pytest.raises(TrainError, match="no labelled snapshots"):
        time_split([], horizon_days=90)


def test_a_history_too_short_for_the_split_says_so_and_the_longest_window_it_holds():
    """182 days of orders: three 90-day windows after a month need 300; derived snapshot dates start one window
    after the first order, and each of three snapshots may fall up to one grid step (15 days) late:
    (182 - 45) // 4 = 34 days with two-week snapshots."""
    note = short_history_note(dt.date(2010, 12, 1), dt.date(2011, 5, 31), horizon_days=90)
    assert note == (
        "The orders span 182 days (2010-12-01 to 2011-05-31); a split needs training, validation and test label "
        "windows that do not overlap, after some history: with 90-day windows about 300 days, and snapshots earlier "
        "than that would have little or no history behind them. Export more history, or shorten "
        "features.horizon_days to at most about 34 days with snapshots every two weeks (features.snapshots.freq: SMS).")
    assert short_history_note(dt.date(2010, 12, 1), dt.date(2011, 12, 9), horizon_days=90) is None  # 374 days
    assert short_history_note(dt.date(2010, 12, 1), dt.date(2011, 9, 26), horizon_days=90) is None  # 300 days
    # 50 days: a 14-day window needs 56; (50 - 45) // 4 = 1 at two weeks, (50 - 21) // 4 = 7 at one week
    assert short_history_note(dt.date(2024, 1, 1), dt.date(2024, 2, 19), horizon_days=14).endswith(
        "shorten features.horizon_days to at most about 7 days with snapshots every week (features.snapshots.freq: "
        "W-MON).")
    assert short_history_note(dt.date(2024, 1, 1), dt.date(2024, 2, 19), horizon_days=7) is None  # 28 days fit
    assert short_history_note(dt.date(2024, 1, 1), dt.date(2024, 1, 20), horizon_days=90).endswith(
        "Export more history.")
    assert short_history_note(None, None, horizon_days=90) is None
    with pytest.raises(TrainError, match=r"found 1 \(2024-01-01\)\. The orders span 182 days") as error:
        time_split(MONTHS[:1], horizon_days=90, short_history=note)
    assert "features.snapshots.start" not in str(error.value)  # not the advice: the history is too short for it
    with pytest.raises(TrainError, match=r"ends after the last event\. The orders span 182 days"):
        time_split([], horizon_days=90, short_history=note)


def test_unknown_test_date_is_an_error():
    with pytest.raises(TrainError, match="test snapshot 2030-01-01 is not a labelled snapshot"):
        time_split(MONTHS, horizon_days=90, test_date="2030-01-01")


def test_snapshots_needed_counts_horizons_at_the_table_spacing():
    assert snapshots_needed(MONTHS, horizon_days=90) == 7
    assert snapshots_needed(MONTHS, horizon_days=30) == 3
    assert snapshots_needed(MONTHS, horizon_days=90, folds=3) == 9
    weekly = pd.date_range("2024-01-01", periods=10, freq="7D", tz="UTC")
    assert snapshots_needed(list(weekly), horizon_days=28) == 9


def leaky_split(train: list[pd.Timestamp], fold_train: list[pd.Timestamp], validation: pd.Timestamp) -> TimeSplit:
    return TimeSplit(
        train=tuple(train), folds=(Fold(tuple(fold_train), validation),), test=MONTHS[9], horizon_days=90
    )


def test_check_split_refuses_training_window_overlapping_test():
    leaky = leaky_split(utc("2024-01-01", "2024-08-01"), utc("2024-01-01"), MONTHS[6])
    with pytest.raises(
        TrainError,
        match=r"training snapshot\(s\) 2024-08-01 have label windows overlapping the test snapshot 2024-10-01",
    ):
        check_split(leaky)


def test_check_split_refuses_validation_window_overlapping_test():
    leaky = leaky_split(utc("2024-01-01"), utc("2024-01-01"), MONTHS[8])
    with pytest.raises(TrainError, match="validation snapshot 2024-09-01's label window ends after the test snapshot"):
        check_split(leaky)


def test_check_split_refuses_training_window_overlapping_validation():
    leaky = leaky_split(utc("2024-05-01"), utc("2024-05-01"), MONTHS[6])
    with pytest.raises(TrainError, match="label windows ending after the validation snapshot 2024-07-01"):
        check_split(leaky)


def test_check_split_refuses_empty_training():
    with pytest.raises(TrainError, match="no training snapshot"):
        check_split(TimeSplit(train=(), folds=(), test=MONTHS[9], horizon_days=90))
    with pytest.raises(TrainError, match="no validation fold"):
        check_split(TimeSplit(train=tuple(MONTHS[:2]), folds=(), test=MONTHS[9], horizon_days=90))


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.sets(st.integers(0, 400), min_size=1, max_size=25),
    horizon=st.integers(1, 120),
)
def test_every_split_found_keeps_all_fitting_labels_before_the_test_window(offsets, horizon):
    dates = [pd.Timestamp("2023-01-01", tz="UTC") + pd.Timedelta(days=o) for o in offsets]
    try:
        split = time_split(dates, horizon_days=horizon)
    except TrainError:
        return
    window = pd.Timedelta(days=horizon)
    assert all(t + window <= split.test for t in split.train)
    # every labelled snapshot whose window closed by the test snapshot is in the final fit
    assert set(split.train) == {d for d in dates if d + window <= split.test}
    for fold in split.folds:
        assert fold.validation in split.train
        assert all(t + window <= fold.validation for t in fold.train)
    assert split.test == max(dates)


def test_labelled_snapshots_excludes_snapshots_with_unknown_labels():
    frame = pd.DataFrame(
        {
            "snapshot_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01", "2024-02-01"], utc=True),
            "churned": [1.0, 0.0, 1.0, np.nan],
        }
    )
    assert labelled_snapshots(frame) == utc("2024-01-01")


def test_labelled_snapshots_needs_the_label_column():
    with pytest.raises(TrainError, match=r"lacks column\(s\) \['churned'\].*churn features"):
        labelled_snapshots(pd.DataFrame({"snapshot_date": pd.to_datetime(["2024-01-01"], utc=True)}))


def test_rolling_splits_newest_first_each_by_the_rule():
    splits = rolling_splits(MONTHS, horizon_days=90, folds=3)
    assert [s.test for s in splits] == [MONTHS[9], MONTHS[8], MONTHS[7]]
    assert [s.validation[0] for s in splits] == [MONTHS[6], MONTHS[5], MONTHS[4]]
    assert [len(s.train) for s in splits] == [7, 6, 5]
    assert [len(s.folds) for s in rolling_splits(MONTHS, horizon_days=90, folds=3, validation_folds=2)] == [2, 2, 2]


def test_a_history_too_short_for_the_folds_asked_backtests_on_those_it_holds_and_says_so():
    """Jan..Oct, 90 days: test 2024-07-01 still has Jan..Apr to train and validate on (Apr validated, Jan trained),
    test 2024-06-01 only Jan..Mar, none of them 90 days after another: 4 of the 5 folds asked."""
    splits = rolling_splits(MONTHS, horizon_days=90, folds=5)
    assert [s.test for s in splits] == list(reversed(MONTHS[6:]))
    assert backtest_shortfall(MONTHS, splits, horizon_days=90, folds=5) == (
        "the backtest runs over 4 test snapshots, not the 5 of train.backtest_folds: test snapshot 2024-06-01 has "
        "too little labelled history before it for a validation and a training snapshot (90-day label windows), and "
        "5 need about 11 labelled snapshots at this spacing; found 10. To have them all, add earlier snapshot dates "
        "(features.snapshots.start, or features.snapshots.dates) and re-run `churn features`, put them closer "
        "together (features.snapshots.freq), or shorten the label window (features.horizon_days).")
    assert backtest_shortfall(MONTHS, splits[:3], horizon_days=90, folds=3) is None
    one = rolling_splits(MONTHS[:7], horizon_days=90, folds=3)
    assert [s.test for s in one] == [MONTHS[6]]
    assert backtest_shortfall(MONTHS[:7], one, horizon_days=90, folds=3).startswith(
        "the backtest runs over 1 test snapshot, not the 3 of train.backtest_folds: test snapshot 2024-06-01 has")
    with pytest.raises(TrainError, match=r"no training snapshot for test snapshot 2024-06-01"):
        rolling_splits(MONTHS[:6], horizon_days=90, folds=3)


def frame_for(split_dates: list[pd.Timestamp], labels: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_date": [d for d, ys in zip(split_dates, labels, strict=True) for _ in ys],
            "customer_id": [f"c{i}" for ys in labels for i in range(len(ys))],
            "churned": [y for ys in labels for y in ys],
        }
    )


def test_split_frame_selects_rows_of_each_part():
    split = leaky_split(utc("2024-01-01", "2024-02-01", "2024-06-01"), utc("2024-01-01", "2024-02-01"), MONTHS[5])
    frame = frame_for(
        [MONTHS[0], MONTHS[1], MONTHS[3], MONTHS[5], MONTHS[9]],
        [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0, 0.0]],
    )
    parts = split_frame(frame, split)
    assert {k: len(v) for k, v in parts.items()} == {"train": 6, "test": 3}
    pd.testing.assert_frame_equal(parts["test"], frame.iloc[8:11])
    [(fold_train, fold_validation)] = fold_frames(frame, split)
    pd.testing.assert_frame_equal(fold_train, frame.iloc[0:4])
    pd.testing.assert_frame_equal(fold_validation, frame.iloc[6:8])


def test_split_frame_refuses_a_single_class_part():
    split = leaky_split(utc("2024-01-01", "2024-06-01"), utc("2024-01-01"), MONTHS[5])
    frame = frame_for([MONTHS[0], MONTHS[5], MONTHS[9]], [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(TrainError, match=r"the test part \(2 rows\) holds only one class of label.*snapshot dates\.$"):
        split_frame(frame, split)
    everyone_churned = frame_for([MONTHS[0], MONTHS[5], MONTHS[9]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(TrainError, match=r"\(churned=\[1.0\]\).*nobody in it bought again within the label window: "
                                         r"if nearly every customer id has one order .* customer_id names orders, not people"):
        split_frame(everyone_churned, split)


def test_churn_train_on_a_short_export_says_how_long_the_history_is_and_what_fits(tmp_path):
    """Four months of orders, default settings: no split; the error says why, and the window that fits."""
    days = pd.date_range("2024-01-01", "2024-04-30", freq="D")
    rows = [f"o{i},c{i % 40},{day.date()} 10:00:00,{10 + i % 7}" for i, day in enumerate(days.repeat(3))]
    (tmp_path / "t.csv").write_text("order_id,customer_id,ordered_at,amount\n" + "\n".join(rows) + "\n")
    raw = minimal_config("t.csv", snapshots={"freq": "MS"}, paths={"data_dir": "out", "models_dir": "models"},
                         mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}"})
    cfg = config_from_dict(raw, base_dir=tmp_path)
    ingest_runner.run(cfg, quiet=True)
    features_runner.run(cfg, quiet=True)
    with pytest.raises(TrainError, match=r"The orders span 121 days \(2024-01-01 to 2024-04-30\).*at most about 19 days"):
        train_runner.run(cfg, quiet=True, backtest=False)


def test_training_reads_the_newest_labelled_snapshots_within_its_row_budget():
    """A long history of a big shop: 37 labelled monthly snapshots of 1,000 rows and 3 whose window has not passed.
    Within 20,000 rows the 20 newest labelled ones are read (the unlabelled ones are of no use to training); a tiny
    budget still reads what the same splits need: as many validation folds, and backtest splits, as all dates give."""
    from pipeline.split import rolling_splits, snapshots_within_rows

    dates = [dt.date(2020 + m // 12, m % 12 + 1, 1) for m in range(40)]
    counts = pd.DataFrame({"snapshot_date": dates, "rows": 1000, "labelled": [True] * 37 + [False] * 3})
    assert snapshots_within_rows(counts, max_rows=0, horizon_days=90, folds=3) == (dates, [])
    assert snapshots_within_rows(counts, max_rows=37_000, horizon_days=90, folds=3) == (dates, [])
    kept, left_out = snapshots_within_rows(counts, max_rows=20_000, horizon_days=90, folds=3)
    assert kept == dates[17:37] and left_out == dates[:17]
    for backtest_folds in (1, 3):
        kept, left_out = snapshots_within_rows(counts, max_rows=1, horizon_days=90, folds=3,
                                               backtest_folds=backtest_folds)
        assert left_out == dates[:len(dates) - 3 - len(kept)]
        shape = [len(split.folds) for split in rolling_splits(kept, horizon_days=90, folds=backtest_folds)]
        assert shape == [3] * backtest_folds  # as with every date: month starts 89 to 92 days apart included
    assert len(snapshots_within_rows(counts, max_rows=1, horizon_days=90, folds=3, backtest_folds=3)[0]) > len(
        snapshots_within_rows(counts, max_rows=1, horizon_days=90, folds=3)[0])


def test_a_row_budget_on_irregular_snapshot_dates_keeps_a_split_that_works():
    """Explicit dates, monthly for two years and then weekly: the newest weekly ones alone hold no validation
    snapshot a horizon back; the budget reads as many as the same split needs."""
    from pipeline.split import snapshots_within_rows

    monthly = [dt.date(2022 + m // 12, m % 12 + 1, 1) for m in range(24)]
    weekly = [dt.date(2024, 1, 1) + dt.timedelta(weeks=w) for w in range(9)]
    counts = pd.DataFrame({"snapshot_date": monthly + weekly, "rows": 1000, "labelled": True})
    kept, _ = snapshots_within_rows(counts, max_rows=1, horizon_days=90, folds=3)
    everything = time_split(monthly + weekly, horizon_days=90, folds=3)
    assert len(time_split(kept, horizon_days=90, folds=3).folds) == len(everything.folds) == 3



def test_snapshots_without_a_label_column_say_to_rebuild_them(tmp_path):
    from pipeline.errors import FeatureError
    from pipeline.features.store import snapshot_row_counts

    pd.DataFrame({"snapshot_date": [pd.Timestamp("2024-01-01", tz="UTC")], "customer_id": ["c1"]}).to_parquet(
        tmp_path / "snapshot=2024-01-01.parquet")
    with pytest.raises(FeatureError, match=r"has no 'churned' column: re-run `churn features`"):
        snapshot_row_counts(tmp_path)
