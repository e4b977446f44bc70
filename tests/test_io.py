"""Atomic writes: the target appears whole or not at all; permissions follow the umask; stale temporaries go."""

import os
import time

import pandas as pd
import pytest

from pipeline.io import atomic_path, sha256_file, write_json, write_parquet


def test_failed_write_leaves_previous_file(tmp_path):
    target = tmp_path / "out.json"
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8").strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_written_file_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_parquet(pd.DataFrame({"x": [1]}), tmp_path / "x.parquet")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_stale_temporaries_are_removed(tmp_path):
    stale = tmp_path / ".x.json.abc.tmp"
    stale.write_text("left by a killed run", encoding="utf-8")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tmp_path / ".x.json.def.tmp"
    fresh.write_text("a live writer", encoding="utf-8")
    write_json({"b": 2}, tmp_path / "x.json")
    assert not stale.exists()
    assert fresh.exists()


def test_equal_frames_give_equal_bytes(tmp_path):
    df = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]})
    first = sha256_file(write_parquet(df, tmp_path / "a.parquet"))
    second = sha256_file(write_parquet(df.copy(), tmp_path / "b.parquet"))
    assert first == second


def test_parquet_round_trip_keeps_values_and_dtypes(tmp_path):
    df = pd.DataFrame(
        {
            "id": pd.Series(["a", None, "c"], dtype="str"),
            "amount": [1.5, float("nan"), -2.0],
            "at": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-03-01"], utc=True), dtype="datetime64[us, UTC]"),
            "flag": pd.Series([True, None, False], dtype="boolean"),
        }
    )
    back = pd.read_parquet(write_parquet(df, tmp_path / "a.parquet"))
    pd.testing.assert_frame_equal(back, df)


def test_parquet_of_a_frame_without_columns_or_text(tmp_path):
    assert pd.read_parquet(write_parquet(pd.DataFrame({"x": [1.0]}), tmp_path / "a.parquet"))["x"].tolist() == [1.0]
    assert pd.read_parquet(write_parquet(pd.DataFrame({"s": pd.Series([], dtype="str")}), tmp_path / "b.parquet")).empty
