"""The benchmark (benchmarks/bench*.py): its arithmetic by hand, and one run end to end at a tiny size."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from bench import memory_too_small
from bench_data import parse_size, size_label
from bench_floor import DAY_US, floor_snapshot
from bench_report import ratios, score_fits, targets
from conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("text", "rows", "label"),
    [("1M", 1_000_000, "1M"), ("500k", 500_000, "500k"), ("2_500_000", 2_500_000, "2.5M"), ("1.5g", 1_500_000_000, "1.5G"),
     ("1234", 1234, "1234")],
)
def test_sizes_parse_and_label(text, rows, label):
    assert parse_size(text) == rows
    assert size_label(rows) == label


def test_a_size_that_is_not_a_row_count_says_how_to_write_one():
    with pytest.raises(argparse.ArgumentTypeError, match=r"not a row count: '1 million' \(use e\.g\. 1M, 500k"):
        parse_size("1 million")


def test_floor_aggregates_by_hand():
    # customer 0: +10 at day 0, -4 at day 300; customer 1: +5 at day 350, +7 at day 400 (after as_of)
    codes = np.array([0, 0, 1, 1])
    at_us = np.array([0, 300, 350, 400]) * DAY_US
    amount = np.array([10.0, -4.0, 5.0, 7.0])
    table = floor_snapshot(codes, at_us, amount, as_of_us=380 * DAY_US, customers=2)
    expected = [
        [2, 1],  # lines
        [6.0, 5.0],  # monetary
        [300 * DAY_US, 350 * DAY_US],  # last order time
        [1, 1],  # lines in the 90 days before as_of (day 290 on)
        [-4.0, 5.0],  # monetary in 90 days
        [1, 1],  # lines in 365 days (day 15 on)
        [-4.0, 5.0],  # monetary in 365 days
        [4.0, 0.0],  # returned value
    ]
    np.testing.assert_array_equal(table, np.array(expected, dtype="float64"))


def test_ratios_and_targets_of_one_size():
    result = {
        "rows": 10_000_000, "label": "10M", "floor": {"seconds": 5.0},
        "stages": {
            "features": {"seconds": 20.0, "peak_mib": 4096.0},
            "ingest": {"rows_per_s": 2_000_000.0, "peak_mib": 1024.0},
            "score": {"seconds_per_1m_customers": 90.0, "peak_mib": 2048.0},
        },
    }
    found = ratios(result)
    assert found == {
        "features_over_floor": 4.0, "features_over_30s_budget": 20 / 30, "ingest_rows_per_s_over_target": 2.0,
        "score_1m_customers_over_60s_budget": 1.5, "peak_over_6gib": 4096 / 6144,
    }
    met = {name: ok for name, _, _, ok in targets({**result, "ratios": found})}
    assert met["features ÷ floor (12 snapshots)"] and met["ingest throughput"]
    assert not met["score 1M customers, reasons for the selected + the reason_limit riskiest (linear)"]


def test_score_fit_is_the_line_through_the_smallest_and_largest_size():
    runs = {
        "1M": {"stages": {"score": {"customers_scored": 100_000, "seconds": 20.0}}},
        "10M": {"stages": {"score": {"customers_scored": 500_000, "seconds": 60.0}}},
        "5M": {"stages": {}},
    }
    fit = score_fits(runs)["score"]  # 0.1 ms per customer, 10 s fixed
    assert fit["from_sizes"] == ["1M", "10M"]
    assert fit["ms_per_customer"] == pytest.approx(0.1) and fit["fixed_seconds"] == pytest.approx(10.0)
    assert fit["seconds_for_1m_customers"] == pytest.approx(110.0)


def test_growth_skips_a_size_whose_extrapolated_peak_does_not_fit():
    earlier = [{"rows": 1_000_000, "label": "1M", "peak_mib": 1000.0}, {"rows": 2_000_000, "label": "2M", "peak_mib": 1500.0}]
    # line: 500 MiB fixed + 0.5 MiB per 1,000 rows -> 3,000 MiB at 5M rows, x 1.15 = 3,450 MiB
    assert memory_too_small(earlier, 5_000_000, available_mib=3450.0 + 2048) is None
    reason = memory_too_small(earlier, 5_000_000, available_mib=3400.0 + 2048)
    assert reason == "features would need about 3.4 GiB (on the line through 1M and 2M), 3.3 GiB available"


@pytest.mark.slow
def test_bench_runs_ingest_features_and_the_floor_at_a_tiny_size(tmp_path):
    results = tmp_path / "results.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench.py"), "--rows", "2k", "--repeats", "1",
               "--only", "ingest,features", "--data", str(tmp_path / "data"), "--results", str(results), "--quiet"]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run = json.loads(results.read_text())["runs"]["2k"]
    assert set(run["stages"]) == {"ingest", "features"}
    data = run["data"]
    assert data["requested_rows"] == 2000 and 1000 < data["transaction_rows"] < 3000
    assert run["stages"]["ingest"]["transaction_rows"] == data["transaction_rows"]
    features = run["stages"]["features"]
    assert features["snapshots"] == 12 and features["feature_rows"] > 0 and features["peak_mib"] > 0
    assert run["floor"]["rows"] == run["stages"]["ingest"]["validated_transaction_rows"]
    assert len(run["features_breakdown"]["snapshot_features_seconds"]) == 12
    assert run["ratios"]["features_over_floor"] == pytest.approx(features["seconds"] / run["floor"]["seconds"])
    assert "2k rows: " in finished.stdout  # the stage table was printed
