"""Feature snapshots record the settings they were built with; training refuses a mix and names the
stale files; `churn features` rebuilds them."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from test_features_runner import DATES, workspace

from pipeline.errors import FeatureError
from pipeline.features.store import (
    BTYD_FITS_KEY,
    check_settings_match,
    input_coverage,
    read_btyd_fits,
    read_snapshot_settings,
    read_snapshots,
    recorded_settings,
    settings_fingerprint,
    snapshot_path,
)
from pipeline.run import features as features_runner


def test_input_coverage_lists_sources_with_rows_and_their_non_empty_columns():
    frames = {
        "transactions": pl.DataFrame(
            {"customer_id": ["a", "b"], "order_id": ["1", "2"], "amount": [1.0, None], "category": [None, None]}
        ),
        "feedback": pl.DataFrame({"customer_id": [], "submitted_at": []}, schema={"customer_id": pl.String, "submitted_at": pl.String}),
        "customers": pl.LazyFrame({"customer_id": ["a"], "region": ["north"], "signup_at": [None]}),
    }
    assert input_coverage(frames) == {
        "transactions": ["customer_id", "order_id", "amount"],
        "customers": ["customer_id", "region"],
    }


def test_each_snapshot_records_the_settings_and_inputs_it_was_built_with(tmp_path):
    cfg = workspace(tmp_path)
    summary = features_runner.run(cfg, quiet=True)
    recorded = [read_snapshot_settings(snapshot_path(cfg.features_dir, d)) for d in DATES]
    assert all(entry == recorded[0] for entry in recorded)
    settings = recorded[0]["settings"]
    assert settings["windows_days"] == [30, 90] and settings["lookback_days"] == 60 and settings["horizon_days"] == 30
    assert settings["inputs"] == {
        "transactions": ["customer_id", "order_id", "ordered_at", "amount"],
        "feedback": ["customer_id", "submitted_at", "kind", "score"],
    }
    assert recorded[0]["fingerprint"] == settings_fingerprint(settings) == summary["settings_fingerprint"]
    assert "monetary_90d" in settings["features"]


def test_each_snapshot_records_what_its_btyd_fits_found_and_only_with_btyd(tmp_path):
    """Six customers are too few to fit: each file says so per model, with the features the fit gives; the records
    are not settings (the files' fingerprints stay equal); without the BTYD family nothing is recorded."""
    cfg = workspace(tmp_path / "on", btyd=True)
    features_runner.run(cfg, quiet=True)
    for day in DATES:
        fits = read_btyd_fits(snapshot_path(cfg.features_dir, day))
        assert [(fit["model"], fit["outcome"]) for fit in fits] == [("BG/NBD", "failed"), ("Pareto/NBD", "failed")]
        assert fits[0]["features"] == ["btyd_p_alive", "btyd_expected_purchases"]
        assert fits[0]["status"].startswith("failed: 6 customers, ")
    assert recorded_settings(cfg.features_dir)["settings"]["btyd"] is True
    off = workspace(tmp_path / "off", btyd=False)
    features_runner.run(off, quiet=True)
    assert all(read_btyd_fits(snapshot_path(off.features_dir, day)) is None for day in DATES)


def test_an_unreadable_btyd_fits_record_reads_as_none(tmp_path):
    import pandas as pd

    from pipeline.io import write_parquet

    for raw, expected in [("[{\"model\": \"BG/NBD\"}]", [{"model": "BG/NBD"}]), ("{not json", None), ("{}", None)]:
        path = write_parquet(pd.DataFrame({"x": [1.0]}), tmp_path / "snapshot.parquet", metadata={BTYD_FITS_KEY: raw})
        assert read_btyd_fits(path) == expected


def _stale_copy(tmp_path, cfg, date, **features):
    """The snapshot file of `date` built with other feature settings, copied over the current one."""
    other = workspace(tmp_path / "other", **features)
    features_runner.run(other, quiet=True)
    shutil.copyfile(snapshot_path(other.features_dir, date), snapshot_path(cfg.features_dir, date))


def test_a_snapshot_of_other_windows_is_refused_by_name_and_rebuilt_by_features(tmp_path):
    cfg = workspace(tmp_path)
    features_runner.run(cfg, quiet=True)
    _stale_copy(tmp_path, cfg, DATES[1], windows_days=[30])
    message = (
        r"were built with different feature settings: snapshot=2024-04-01.parquet differ from the other 2 "
        r"\(windows_days \[30\] vs \[30, 90\]\); run `churn features`"
    )
    with pytest.raises(FeatureError, match=message):
        read_snapshots(cfg.features_dir)
    from pipeline.run import train

    with pytest.raises(FeatureError, match=message):
        train.run(cfg, backtest=False, quiet=True)
    features_runner.run(cfg, quiet=True)
    assert recorded_settings(cfg.features_dir)["settings"]["windows_days"] == [30, 90]
    assert len(read_snapshots(cfg.features_dir)) > 0


def test_a_snapshot_without_recorded_settings_among_recorded_ones_is_stale(tmp_path):
    import pandas as pd

    cfg = workspace(tmp_path)
    features_runner.run(cfg, quiet=True)
    path = snapshot_path(cfg.features_dir, DATES[0])
    pd.read_parquet(path).to_parquet(path, index=False)  # rewritten without the metadata
    with pytest.raises(FeatureError, match=r"snapshot=2024-03-01.parquet differ from the other 2 \(no recorded feature settings"):
        read_snapshots(cfg.features_dir)


def test_snapshots_built_with_other_settings_than_the_config_are_refused(tmp_path):
    cfg = workspace(tmp_path, windows_days=[30])
    features_runner.run(cfg, quiet=True)
    recorded = recorded_settings(cfg.features_dir)
    check_settings_match(recorded, cfg.features, features_dir=cfg.features_dir)
    with pytest.raises(FeatureError, match=r"other feature settings than the config's \(windows_days \[30\] vs \[30, 90\], snapshots vs config\)"):
        check_settings_match(recorded, workspace(tmp_path).features, features_dir=cfg.features_dir)
