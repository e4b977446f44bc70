"""Numbers in words: units by size, rounding, plurals, bounded ratios, and what each wording can state."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import wording


def words(fn, values, arg=""):
    return list(fn(np.array(values, dtype=float), arg))


def test_days_switch_to_weeks_months_and_years_by_size():
    assert words(wording.days, [0.0, 0.4, 1.0, 12.3, 60.0, 61.0, 119.0, 120.0, 547.0, 548.0, 1090.0, 1608.0]) == [
        "less than a day", "less than a day", "1 day", "12 days", "60 days", "about 9 weeks", "about 17 weeks",
        "about 4 months", "about 18 months", "about 1.5 years", "about 3 years", "about 4.5 years",
    ]


def test_hours_above_48_are_said_as_days():
    assert words(wording.hours, [0.5, 1.0, 30.2, 48.0, 49.0, 4939.0]) == [
        "less than an hour", "1 hour", "30 hours", "48 hours", "2 days", "about 7 months",
    ]


def test_money_is_rounded_by_size():
    assert words(wording.money, [12.5, 99.994, 113.05, 1234.4, -141.48, 2_345_678.0]) == [
        "12.50", "99.99", "113", "1,234", "-141", "2.3 million",
    ]
    assert words(wording.money, [-0.0, -0.004, 0.004]) == ["0.00", "0.00", "0.00"]  # no "-0.00"


def test_counts_have_plural_forms():
    assert words(wording.count, [0.0, 1.0, 2.0, 1234.0], "support ticket") == [
        "no support tickets", "1 support ticket", "2 support tickets", "1,234 support tickets",
    ]
    assert words(wording.count, [1.0, 3.0], "category/categories") == ["1 category", "3 categories"]


def test_shares_never_round_to_a_false_zero_or_hundred():
    assert words(wording.share, [0.0, 0.001, 0.5, 0.999, 1.0]) == ["0%", "less than 1%", "50%", "more than 99%", "100%"]


def test_ratios_above_the_bound_are_words_not_numbers():
    assert words(wording.ratio, [0.01, 3.21, 10.0, 383968.0, np.inf], "their usual gap") == [
        "a small fraction of their usual gap", "about 3.2 times their usual gap", "about 10.0 times their usual gap",
        "far longer than their usual gap", "far longer than their usual gap",
    ]


def test_segments_in_words():
    codes = np.array(["hibernating", "about_to_sleep", "some_new_code"], dtype=object)
    assert list(wording.segment(codes, "")) == [
        "customers inactive for a long time", "customers about to lapse", "some new code",
    ]


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        ("days", [-1.0, np.nan, 0.0, np.inf, 3.0], [False, False, True, False, True]),
        ("count:order", [-1.0, 0.0, 0.4, np.nan, 2.0], [False, True, False, False, True]),
        ("share", [-0.1, 0.0, 1.0, 1.2, np.nan], [False, True, True, False, False]),
        ("ratio:their usual gap", [-1.0, np.nan, np.inf, 2.0], [False, False, True, True]),
        ("money", [-5.0, np.inf, np.nan], [True, False, False]),
        (".0f", [1.0, np.nan, -np.inf], [True, False, False]),
    ],
)
def test_stateable_values(spec, values, expected):
    assert wording.stateable(spec, np.array(values, dtype=float)).tolist() == expected


def test_text_values_are_stateable_when_present():
    values = np.array(["a", None, ""], dtype=object)
    assert wording.stateable("", values).tolist() == [True, False, False]


def test_scales_trends_and_numbers():
    assert words(wording.scale, [3.0, 6.54, -0.0], "0..10") == ["3", "6.5", "0"]
    assert wording.stateable("scale:1..5", np.array([0.0, 1.0, 5.0, 5.5])).tolist() == [False, True, True, False]
    assert words(wording.trend, [0.364, -0.5, -0.0001]) == ["+0.36", "-0.50", "+0.00"]
    assert wording.stateable("trend", np.array([-1.0, 1.0, 1.5, np.nan])).tolist() == [True, True, False, False]
    assert words(wording.number, [0.01, 0.34, 12.4, 1234.0]) == ["almost 0", "0.3", "12", "1,234"]


def test_new_and_promising_segments_claim_no_newness():
    """The 'new' and 'promising' cells are set by recency and frequency alone (R 5/4, F 1): a long-standing customer
    with few orders, who bought recently, lands there. On CLVTools' donation log 245 donors of 13 years (first gift
    1970) read 'in the RFM segment of promising new customers'; the words must hold for them too."""
    import polars as pl

    from pipeline.features.rfm import add_scores

    # twenty customers, all with 13 years of tenure; the most recent (R 5) and the fifth most recent (R 4) have the
    # fewest orders (F 1)
    frequency = [10 + i for i in range(20)]
    frequency[0], frequency[4] = 1, 2
    frame = pl.DataFrame({
        "recency_days": [float(d) for d in range(1, 21)],
        "frequency_all": frequency,
        "monetary_all": [1.0] * 20,
        "tenure_days": [13 * 365.0] * 20,
    })
    segments = add_scores(frame)["rfm_segment"].to_numpy()
    assert {"new", "promising"} <= set(segments)  # long-tenured customers are put in these cells
    words = wording.segment(np.array(["new", "promising"], dtype=object), "")
    assert all("new" not in w.split() for w in words), words
    assert list(words) == ["recent buyers with few orders so far", "fairly recent buyers with few orders so far"]


def test_value_says_a_number_as_written():
    values = np.array([67.0, -0.0, 1234.5, -1250.5, 0.35, 1e-7, 125510.82, 3e15])
    assert wording.value(values).tolist() == ["67", "0", "1,234.5", "-1,250.5", "0.35", "0.0000001", "125,510.82",
                                              "3,000,000,000,000,000"]
    assert wording.stateable("value", np.array([1.0, np.nan, np.inf, -2.0])).tolist() == [True, False, False, True]
