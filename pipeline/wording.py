"""Numbers in words for people: durations, money, counts with plural forms, shares, ratios, segments.

Each wording takes a 1-D array of values and returns an object array of str, computed column-wise
(numpy for the unit and rounding, one str.format per element for the digits), and says which values
it can state (`stateable`): a wording never prints nan, inf, a negative count or duration, or a share
outside 0-100%. The reason templates name a wording in the format spec of a field:

    {recency_days:days}                 -> "12 days", "about 9 weeks", "about 4 months", "about 3 years"
    {recency_days:days:elapsed}         -> the same, stated only above 0 (a time that has passed)
    {resolution_hours_mean:hours}       -> "5 hours", "about 8 weeks" (hours above 48 as days)
    {monetary_all:money}                -> "12.50", "1,234", "2.3 million"
    {frequency_all:count:order}         -> "no orders", "1 order", "5 orders"
    {category_breadth:count:category/categories}   (irregular plural after the slash)
    {unresolved_share:share}            -> "50%", "less than 1%", "more than 99%"
    {overdue_ratio:ratio:their usual gap} -> "about 3.2 times their usual gap", "far longer than their usual gap"
    {rfm_segment:segment}               -> "customers inactive for a long time"
    {nps_mean:scale:0..10}              -> "6.5" (stateable only on the scale 0..10)
    {spend_trend:trend}                 -> "+0.36" (stateable from -1 to +1)
    {btyd_expected_purchases:number}    -> "0.3", "12", "1,234" (non-negative, rounded by size)
    {attribute_age:value}               -> "67", "-1,250.5", "0.35" (any finite number, as written)

Any other format spec is a plain `str.format` spec (e.g. `.0f`, `+.2f`), stateable for finite numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

DAYS_AS_DAYS = 60  # up to this many days a duration is said in days, then in weeks
WEEKS_UNTIL_DAYS = 119  # up to ~17 weeks in weeks, then in months
MONTHS_UNTIL_DAYS = 547  # up to 18 months in months, then in years
HOURS_AS_HOURS = 48  # above this many hours a duration is said in days (or weeks, months)
RATIO_BOUND = 10.0  # ratios above this are "far longer than ...", not a number
DAYS_PER_MONTH = 365.25 / 12
DAYS_PER_YEAR = 365.25

RFM_SEGMENT_WORDS = {
    "champions": "best customers (recent, frequent buyers)",
    "loyal": "loyal customers",
    "potential_loyalist": "customers who could become loyal",
    # "new" and "promising" are cells of recency and frequency only (R 5 or 4, F 1): a donor of 13 years with
    # few gifts lands there, so the words claim nothing about how long someone has been a customer
    "new": "recent buyers with few orders so far",
    "promising": "fairly recent buyers with few orders so far",
    "need_attention": "customers who need attention",
    "about_to_sleep": "customers about to lapse",
    "at_risk": "regular customers who have gone quiet",
    "cant_lose": "former frequent buyers who have gone quiet",
    "hibernating": "customers inactive for a long time",
    "lost": "lost customers",
}


def _texts(pattern: str, values: np.ndarray) -> np.ndarray:
    """`pattern.format(v)` for each element (object array); values are few (distinct values of a column)."""
    return np.array([pattern.format(v) for v in values.tolist()], dtype=object)


def _choose(conditions: list[np.ndarray], choices: list[np.ndarray], n: int) -> np.ndarray:
    return np.select(conditions, choices, default=None) if n else np.array([], dtype=object)


def _finite(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values.astype(float))


def days(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """Durations in days: 'less than a day', '1 day', '45 days', 'about 9 weeks', 'about 4 months', 'about 3 years'."""
    d = values.astype(float)
    whole = np.rint(d)
    weeks = np.rint(d / 7)
    months = np.rint(d / DAYS_PER_MONTH)
    years = np.rint(d / DAYS_PER_YEAR * 2) / 2  # to the half year
    years_text = np.char.replace(_texts("{:.1f}", years).astype(str), ".0", "").astype(object)
    return _choose(
        [d < 1, whole == 1, whole <= DAYS_AS_DAYS, d <= WEEKS_UNTIL_DAYS, d <= MONTHS_UNTIL_DAYS, d > MONTHS_UNTIL_DAYS],
        [
            np.full(len(d), "less than a day", dtype=object),
            np.full(len(d), "1 day", dtype=object),
            _texts("{:.0f} days", whole),
            _texts("about {:.0f} weeks", weeks),
            _texts("about {:.0f} months", months),
            "about " + years_text + " years",
        ],
        len(d),
    )


def hours(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """Durations in hours: 'less than an hour', '1 hour', '30 hours'; above 48 hours as days (weeks, months)."""
    h = values.astype(float)
    whole = np.rint(h)
    return _choose(
        [h < 1, whole == 1, whole <= HOURS_AS_HOURS, h > HOURS_AS_HOURS],
        [
            np.full(len(h), "less than an hour", dtype=object),
            np.full(len(h), "1 hour", dtype=object),
            _texts("{:.0f} hours", whole),
            days(h / 24),
        ],
        len(h),
    )


def money(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """Amounts rounded by size: '12.50' below 100, '1,234' below a million, '2.3 million' above. An amount that
    rounds to zero is '0.00' (never '-0.00')."""
    v = values.astype(float)
    v = np.where(np.abs(v) < 0.005, 0.0, v)  # what "{:,.2f}" shows as 0.00, without its sign
    size = np.abs(v)
    return _choose(
        [size < 100, size < 1e6, size >= 1e6],
        [_texts("{:,.2f}", v), _texts("{:,.0f}", v), _texts("{:,.1f} million", v / 1e6)],
        len(v),
    )


def count(values: np.ndarray, arg: str) -> np.ndarray:
    """'no orders', '1 order', '1,234 orders' for arg 'order' (or 'category/categories': irregular plural)."""
    singular, _, plural = arg.partition("/")
    plural = plural or singular + "s"
    n = np.rint(values.astype(float))
    return _choose(
        [n == 0, n == 1, n > 1],
        [
            np.full(len(n), f"no {plural}", dtype=object),
            np.full(len(n), f"1 {singular}", dtype=object),
            _texts("{:,.0f} " + plural.replace("{", "{{").replace("}", "}}"), n),
        ],
        len(n),
    )


def share(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """Shares 0..1 as whole percentages; 'less than 1%' and 'more than 99%' instead of 0% and 100% for inexact ends."""
    p = values.astype(float)
    return _choose(
        [p == 0, p < 0.005, p == 1, p > 0.995, p <= 1],
        [
            np.full(len(p), "0%", dtype=object),
            np.full(len(p), "less than 1%", dtype=object),
            np.full(len(p), "100%", dtype=object),
            np.full(len(p), "more than 99%", dtype=object),
            _texts("{:.0%}", p),
        ],
        len(p),
    )


def ratio(values: np.ndarray, arg: str) -> np.ndarray:
    """'about 3.2 times <arg>' up to RATIO_BOUND, 'far longer than <arg>' above; 'a small fraction of <arg>' below 0.1."""
    r = values.astype(float)
    return _choose(
        [r < 0.05, r <= RATIO_BOUND, r > RATIO_BOUND],
        [
            np.full(len(r), f"a small fraction of {arg}", dtype=object),
            _texts("about {:.1f} times " + arg.replace("{", "{{").replace("}", "}}"), r),
            np.full(len(r), f"far longer than {arg}", dtype=object),
        ],
        len(r),
    )


def segment(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """RFM segment codes in words ('hibernating' -> 'customers inactive for a long time')."""
    codes = pd.Series(values, dtype=object)
    return codes.map(RFM_SEGMENT_WORDS).fillna(codes.astype(str).str.replace("_", " ")).to_numpy(dtype=object)


def scale(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """A point on a rating scale, to one decimal without a trailing '.0' ('3', '6.5')."""
    v = np.rint(values.astype(float) * 10) / 10 + 0.0  # + 0.0: no '-0'
    return np.char.replace(_texts("{:.1f}", v).astype(str), ".0", "").astype(object)


def trend(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """A signed change from -1 to +1 with two decimals ('+0.36', '-0.50')."""
    return _texts("{:+.2f}", np.rint(values.astype(float) * 100) / 100 + 0.0)


def number(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """A non-negative quantity rounded by size: 'almost 0' (below 0.05), '0.3', '4.5', '12', '1,234'."""
    v = values.astype(float)
    return _choose(
        [v < 0.05, v < 10, v >= 10],
        [np.full(len(v), "almost 0", dtype=object), _texts("{:.1f}", v), _texts("{:,.0f}", v)],
        len(v),
    )


def value(values: np.ndarray, _arg: str = "") -> np.ndarray:
    """A number as an export writes it, unrounded: whole numbers without decimals ('67', '1,234', '-3'), others with
    the shortest digits that tell them apart from their neighbours ('0.35', '-1,250.5'), never in exponent form."""
    return np.array([_as_written(x) for x in (values.astype(float) + 0.0).tolist()], dtype=object)  # + 0.0: no '-0'


def _as_written(x: float) -> str:
    if not np.isfinite(x):
        return str(x)
    whole, _, decimals = np.format_float_positional(abs(x), unique=True, trim="-").partition(".")
    return f"{'-' * (x < 0)}{int(whole):,}" + (f".{decimals}" if decimals else "")


def _scale_range(arg: str) -> tuple[float, float]:
    low, _, high = arg.partition("..")
    return float(low), float(high)


def _on_scale(values: np.ndarray, arg: str) -> np.ndarray:
    low, high = _scale_range(arg)
    v = values.astype(float)
    return np.isfinite(v) & (v >= low) & (v <= high)


def _non_negative(values: np.ndarray) -> np.ndarray:
    v = values.astype(float)
    return np.isfinite(v) & (v >= 0)


def _whole_enough(values: np.ndarray) -> np.ndarray:
    """0 or at least 1: a count between 0 and 1 would round to a false 'no ...' or '1 ...'."""
    v = values.astype(float)
    return np.isfinite(v) & ((v == 0) | (v >= 1))


def _in_unit_range(values: np.ndarray) -> np.ndarray:
    v = values.astype(float)
    return np.isfinite(v) & (v >= 0) & (v <= 1)


def _ratio_stateable(values: np.ndarray) -> np.ndarray:
    v = values.astype(float)
    return ~np.isnan(v) & (v >= 0)  # +inf (a zero usual gap) is "far longer than ..."


def _known(values: np.ndarray) -> np.ndarray:
    return pd.notna(values) & (pd.Series(values, dtype=object).astype(str) != "").to_numpy()


Wording = Callable[[np.ndarray, str], np.ndarray]
# name -> (wording, which values it can state: f(values, arg) -> bool array)
WORDINGS: dict[str, tuple[Wording, Callable[[np.ndarray, str], np.ndarray]]] = {
    "days": (days, lambda v, arg: _non_negative(v) & ((v.astype(float) > 0) if arg == "elapsed" else True)),
    "hours": (hours, lambda v, _: _non_negative(v)),
    "money": (money, lambda v, _: _finite(v)),
    "count": (count, lambda v, _: _whole_enough(v)),
    "share": (share, lambda v, _: _in_unit_range(v)),
    "ratio": (ratio, lambda v, _: _ratio_stateable(v)),
    "segment": (segment, lambda v, _: _known(v)),
    "scale": (scale, _on_scale),
    "trend": (trend, lambda v, _: _on_scale(v, "-1..1")),
    "number": (number, lambda v, _: _non_negative(v)),
    "value": (value, lambda v, _: _finite(v)),
}


def split_spec(spec: str) -> tuple[str, str] | None:
    """('count', 'order') for the spec 'count:order'; None for a plain str.format spec."""
    name, _, arg = spec.partition(":")
    return (name, arg) if name in WORDINGS else None


def stateable(spec: str, values: np.ndarray) -> np.ndarray:
    """Boolean mask: the values the field `{x:<spec>}` can state (numbers must be finite for plain specs)."""
    named = split_spec(spec)
    if named is not None:
        return WORDINGS[named[0]][1](values, named[1])
    if values.dtype.kind in "fiub":
        return np.isfinite(values.astype(float))
    return _known(values)


def in_words(spec: str, values: np.ndarray) -> np.ndarray:
    """The named wording of `spec` applied to `values` (object array of str)."""
    name, arg = split_spec(spec) or ("", "")
    return WORDINGS[name][0](values, arg)
