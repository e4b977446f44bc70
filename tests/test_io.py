"""Atomic writes: the target appears whole or not at all; permissions follow the umask; stale temporaries go."""

import os
import time

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- CSV formula injection (OWASP) -----------------------------------------------------------------------


def test_text_cells_that_a_spreadsheet_would_run_get_a_leading_quote(tmp_path):
    from pipeline.io import write_csv

    frame = pd.DataFrame(
        {
            "customer_id": ["=cmd|' /C calc'!A0", "+SUM(A1)", "-2+3", "@A1", "\tx", "17850", "a=b", None],
            "amount": [-12.5, 1.0, -3.0, 0.0, 2.0, 4.0, 5.0, 6.0],
            "note": ["-12.5", "+3", "-1e5", "ok", "ok", "ok", "ok", "ok"],
        }
    )
    path = write_csv(frame, tmp_path / "out.csv")
    back = pd.read_csv(path, dtype={"customer_id": "str", "note": "str"}, keep_default_na=False)
    assert back["customer_id"].tolist() == ["'=cmd|' /C calc'!A0", "'+SUM(A1)", "'-2+3", "'@A1", "'\tx", "17850", "a=b", ""]
    assert back["amount"].tolist() == [-12.5, 1.0, -3.0, 0.0, 2.0, 4.0, 5.0, 6.0]  # numbers stay numbers
    from pipeline.io import neutralise_formulas

    assert neutralise_formulas(pd.DataFrame({"t": ["\rx"]}))["t"].tolist() == ["'\rx"]
    assert back["note"].tolist()[:3] == ["-12.5", "+3", "-1e5"]  # plain numbers in text are not formulas
    assert frame["customer_id"][0] == "=cmd|' /C calc'!A0"  # the input frame is not changed


def test_categorical_text_is_neutralised_too():
    from pipeline.io import neutralise_formulas

    frame = pd.DataFrame({"tier": pd.Categorical(["=x", "high", "=x"])})
    assert neutralise_formulas(frame)["tier"].tolist() == ["'=x", "high", "'=x"]
    clean = pd.DataFrame({"tier": pd.Categorical(["low", "high"])})
    assert neutralise_formulas(clean) is clean


def test_the_scores_csv_is_neutralised_and_the_parquet_keeps_raw_values(tmp_path):
    from pipeline.run.score import write_scores_csv

    scores = pd.DataFrame({"customer_id": ["=HYPERLINK(\"http://x\")", "c2"], "churn_probability": [0.9, -0.0],
                           "reason_1": ["-bad", "orders fell"]})
    write_parquet(scores, tmp_path / "s.parquet")
    write_scores_csv(scores, tmp_path / "s.csv")
    text = (tmp_path / "s.csv").read_text()
    assert "\"'=HYPERLINK(\"\"http://x\"\")\"" in text and "\"'-bad\"" in text
    assert pd.read_parquet(tmp_path / "s.parquet")["customer_id"][0] == "=HYPERLINK(\"http://x\")"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=20))
def test_no_neutralised_cell_starts_a_formula_and_the_quote_is_the_only_change(values):
    import re

    from pipeline.io import FORMULA_TRIGGER, PLAIN_NUMBER, neutralise_formulas

    out = neutralise_formulas(pd.DataFrame({"t": pd.Series(values, dtype="str")}))["t"].tolist()
    for before, after in zip(values, out, strict=True):
        if before is None:
            assert pd.isna(after)
        elif re.match(FORMULA_TRIGGER, before) and not re.fullmatch(PLAIN_NUMBER, before):
            assert after == "'" + before
        else:
            assert after == before


def test_object_columns_of_dates_or_numbers_are_left_alone():
    import datetime as dt

    from pipeline.io import neutralise_formulas

    frame = pd.DataFrame({"as_of": [dt.date(2025, 1, 1)] * 2, "n": pd.Series([-1, 2], dtype=object),
                          "mixed": pd.Series(["=x", 3], dtype=object)})
    out = neutralise_formulas(frame)
    assert out["as_of"].tolist() == [dt.date(2025, 1, 1)] * 2 and out["n"].tolist() == [-1, 2]
    assert out["mixed"].tolist() == ["'=x", 3]
