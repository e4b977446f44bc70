"""Per-customer timelines: rows grouped by customer and sorted by day, read at any cut day in O(customers).

Every feature table is prepared once as a `Timeline` (its rows sorted by customer code, then by the
day they become known, in the business time zone: `pipeline.snapshot.in_business_time`) plus arrays
in that row order. A snapshot then needs, per customer, only
the position of its first row on or after a cut day (`Timeline.positions`, one binary search per
customer), and reads
- sums over the rows known before the cut, or in a window of days, from prefix sums
  (`prefix_sums`, `window_sum`): exact for integers (int64 prefix sums wrap around on
  overflow, but a difference of two of them is exact whenever the true sum fits in int64);
- "the latest row before the cut" from carried row indices (`carry_index`).
So the cost of a snapshot grows with the number of customers and cut days, not with the history;
preparing the tables is one sort per table (`order_by`).

Cuts fall on UTC midnights (`pipeline.snapshot`), so "known before t" is "known on a day before the
day of t" and days are all a timeline needs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

DAY_US = 86_400_000_000  # microseconds in a day
NONE = -1  # a carried index when there is no such row
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def order_by(*keys: np.ndarray) -> np.ndarray:
    """Stable, exact argsort of rows by integer `keys` (most significant first).

    Fast path: one `np.sort` of uint64 words packing the leading bits of the keys with the row
    index (AVX-512 sorts them far faster than `np.argsort`). When the keys do not fit in the
    word, their trailing bits are cut off: only rows whose cut keys tie with a neighbour's can be
    out of order, and those (few, when the cut keeps most bits) are re-sorted exactly by `np.lexsort`.
    """
    n = len(keys[0]) if keys else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    index_bits = max(1, int(n - 1).bit_length())
    free = 64 - index_bits
    word = np.zeros(n, dtype=np.uint64)
    truncated = False
    for key in keys:
        if free <= 0:
            truncated = True
            break
        values, bits = _offset(key)
        take = min(bits, free)
        word <<= np.uint64(take)
        word |= values >> np.uint64(bits - take)
        free -= take
        truncated |= take < bits
    word <<= np.uint64(index_bits)
    word |= np.arange(n, dtype=np.uint64)
    word.sort()
    order = (word & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    if truncated:
        prefix = word >> np.uint64(index_bits)
        tied = np.flatnonzero(prefix[1:] == prefix[:-1])
        if len(tied):
            rows = np.union1d(tied, tied + 1)  # in sorted order; the full keys keep their runs apart
            candidates = order[rows]
            order[rows] = candidates[np.lexsort((candidates, *[k[candidates] for k in reversed(keys)]))]
    return order


def _offset(key: np.ndarray) -> tuple[np.ndarray, int]:
    """`key` as order-preserving uint64 starting at 0, and the bits its range needs (uint64 keys: as they are)."""
    if key.dtype == np.uint64:
        return key, 64
    as_int = key.astype(np.int64, copy=False)
    low, high = int(as_int.min()), int(as_int.max())
    return (as_int - low).view(np.uint64) if low else as_int.view(np.uint64), max(1, (high - low).bit_length())


def day_of(at_us: np.ndarray) -> np.ndarray:
    """Day numbers (days since 1970-01-01) of microsecond timestamps (business time, typed UTC: its days)."""
    return np.floor_divide(at_us, DAY_US)


@dataclass(frozen=True)
class Timeline:
    """Rows sorted by (customer code, day): `keys` packs both; `first[c]` is the first row of code c
    (`first[customers]` = number of rows)."""

    keys: np.ndarray  # ascending: code << day_bits | (day - first_day); uint32 when it fits (faster to search)
    first: np.ndarray
    first_day: int
    day_bits: int

    @classmethod
    def build(cls, codes: np.ndarray, days: np.ndarray, *, customers: int) -> Timeline:
        """Timeline of rows already sorted by (code, day)."""
        first_day = int(days.min()) if len(days) else 0
        span = int(days.max()) - first_day if len(days) else 0
        day_bits = max(1, (span + 1).bit_length())
        key_bits = max(1, customers).bit_length() + day_bits
        if key_bits > 63:
            raise ValueError("too many customers or days for a timeline key")
        keys = (codes.astype(np.uint64) << np.uint64(day_bits)) | (days - first_day).astype(np.uint64)
        first = np.searchsorted(codes, np.arange(customers + 1)) if len(codes) else np.zeros(customers + 1, np.int64)
        return cls(keys=keys.astype(np.uint32) if key_bits <= 32 else keys, first=first.astype(np.int64),
                   first_day=first_day, day_bits=day_bits)

    @property
    def customers(self) -> int:
        return len(self.first) - 1

    def positions(self, day: int, codes: np.ndarray | None = None) -> np.ndarray:
        """Per customer code (all, or `codes`): index of its first row on or after `day`.

        The customer's rows known before `day` are `starts(codes)` up to this position.
        """
        codes = np.arange(self.customers) if codes is None else codes
        start, end = self.first[codes], self.first[codes + 1]
        found = start.copy()
        searched = np.flatnonzero(end > start)  # customers without rows need no search
        offset = min(max(day - self.first_day, 0), (1 << self.day_bits) - 1)
        queries = (codes[searched].astype(np.uint64) << np.uint64(self.day_bits)) | np.uint64(offset)
        found[searched] = np.searchsorted(self.keys, queries.astype(self.keys.dtype))
        return found

    def all_positions(self, day: int) -> np.ndarray:
        """`positions(day)` for every customer by one pass over the rows: faster than searching when
        customers have few rows each (e.g. the (customer, category) pairs)."""
        offset = min(max(day - self.first_day, 0), (1 << self.day_bits) - 1)
        mask = self.keys.dtype.type((1 << self.day_bits) - 1)
        before = (self.keys & mask) < offset
        found = self.first[:-1].copy()
        nonempty = np.flatnonzero(self.first[1:] > self.first[:-1])
        if len(nonempty):
            found[nonempty] += np.add.reduceat(before, self.first[nonempty], dtype=np.int64)
        return found

    def starts(self, codes: np.ndarray | None = None) -> np.ndarray:
        """Per customer code (all, or `codes`): index of its first row."""
        return self.first[:-1] if codes is None else self.first[codes]


def window_sum(prefix: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per customer: the sum over its rows [start, end), from `prefix_sums` of the row values."""
    return prefix[end] - prefix[start]


def prefix_sums(values: np.ndarray) -> np.ndarray:
    """[0, v0, v0+v1, ...] as int64 (booleans count 1)."""
    out = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=out[1:], dtype=np.int64)
    return out


@dataclass(frozen=True)
class PrefixSums:
    """Prefix sums of several named row values in one row-major matrix (rows + 1, values).

    A lookup at a position reads every sum of that row from one cache line, which is what makes a
    snapshot fast: its cost is dominated by memory latency, one lookup per customer and cut day.
    """

    names: tuple[str, ...]
    matrix: np.ndarray

    @classmethod
    def of(cls, **values: np.ndarray) -> PrefixSums:
        rows = len(next(iter(values.values()))) if values else 0
        matrix = np.zeros((rows + 1, len(values)), dtype=np.int64)
        for j, column in enumerate(values.values()):
            matrix[1:, j] = np.cumsum(column, dtype=np.int64)
        return cls(names=tuple(values), matrix=matrix)

    def at(self, positions: np.ndarray) -> Sums:
        """The prefix sums at `positions` (subtract two of these for the sums between them)."""
        return Sums(self.names, np.take(self.matrix, positions, axis=0))  # faster than fancy indexing

    def column_at(self, name: str, positions: np.ndarray) -> np.ndarray:
        """The prefix sums of one value at `positions` (cheaper than `at` when only one value is read there)."""
        return self.matrix[positions, self.names.index(name)]


@dataclass(frozen=True)
class Sums:
    """Sums per customer (rows) of named values (columns); `a - b` subtracts prefix sums."""

    names: tuple[str, ...]
    values: np.ndarray

    def __sub__(self, other: Sums) -> Sums:
        return Sums(self.names, self.values - other.values)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def carry_index(where: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row: index of the latest row at or before it of the same customer where `where` holds, else NONE.

    Rows are sorted by customer code (then time).
    """
    index = np.where(where, np.arange(len(where), dtype=np.int64), NONE)
    carried = np.maximum.accumulate(index) if len(index) else index
    same = carried >= 0
    same[same] = codes[carried[same]] == codes[same]
    return np.where(same, carried, NONE)


def latest_before(carried: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per customer: the carried row index at the last row before `end`, NONE when it is not in [start, end)."""
    last = end - 1
    found = np.full(len(end), NONE, dtype=np.int64)
    has_rows = end > start
    found[has_rows] = carried[last[has_rows]]
    found[found < start] = NONE
    return found


def pick(values: np.ndarray, index: np.ndarray, name: str, *, missing: int | None = None) -> pl.Series:
    """`values[index]` as a Series named `name`: null where index is NONE (or the value is `missing`)."""
    valid = index != NONE
    picked = values[np.where(valid, index, 0)] if len(values) else np.zeros(len(index), dtype=values.dtype)
    if missing is not None:
        valid &= picked != missing
    return with_nulls(pl.Series(name, picked), valid)


def pick_series(series: pl.Series, index: np.ndarray, name: str) -> pl.Series:
    """`series` gathered at `index` and named `name`: null where index is NONE."""
    return series.gather(with_nulls(pl.Series(index), index != NONE)).alias(name)


def with_nulls(series: pl.Series, valid: np.ndarray) -> pl.Series:
    """`series` with nulls where `valid` is False."""
    return series if valid.all() else series.set(pl.Series(~valid), None)


def timestamps(series: pl.Series) -> pl.Series:
    """int64 microseconds -> UTC datetimes."""
    return series.cast(pl.Datetime("us", "UTC"))


@dataclass(frozen=True)
class Cut:
    """A snapshot cut: midnight `t` (business time, typed UTC) and the customer codes of the feature rows (ascending);
    `instant_us`: the true instant of `t` in microseconds, for durations up to `t` (None: `t` is one, UTC).

    Positions in a timeline are computed once per cut and day (`positions`), and so are the prefix sums read
    there (`sums_at`), whichever family asks.
    """

    t: dt.datetime
    codes: np.ndarray
    instant_us: int | None = None
    _positions: dict = field(default_factory=dict, repr=False, compare=False)
    _sums: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def day(self) -> int:
        """Day number of `t`: rows known on an earlier day are known before `t`."""
        return (self.t - EPOCH).days

    @property
    def t_us(self) -> int:
        return (self.t - EPOCH) // dt.timedelta(microseconds=1)

    @property
    def t_instant_us(self) -> int:
        """The true instant of `t` (microseconds): where a duration up to `t` ends."""
        return self.t_us if self.instant_us is None else self.instant_us

    def since(self, days: int) -> int:
        """Day number of `t` minus `days` (the start of a window of `days` days before `t`)."""
        return self.day - days

    def positions(self, timeline: Timeline, day: int | None) -> np.ndarray:
        """`timeline.positions(day, codes)`, or `timeline.starts(codes)` when `day` is None (memoised)."""
        key = (id(timeline), day)
        if key not in self._positions:
            found = timeline.starts(self.codes) if day is None else timeline.positions(day, self.codes)
            self._positions[key] = (timeline, found)  # keeps the timeline alive while its id is a key
        return self._positions[key][1]

    def sums_at(self, timeline: Timeline, sums: PrefixSums, day: int | None) -> Sums:
        """`sums.at(self.positions(timeline, day))` (memoised): the prefix sums of the rows known before `day`
        (None: before the customer's first row)."""
        key = (id(sums), day)
        if key not in self._sums:
            self._sums[key] = (sums, sums.at(self.positions(timeline, day)))  # keeps `sums` alive, as above
        return self._sums[key][1]

    def rows(self, timeline: Timeline, *, since_days: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) per row of the timeline rows known before `t` (only the last `since_days` days if given)."""
        start = self.positions(timeline, None if since_days is None else self.since(since_days))
        return start, self.positions(timeline, self.day)
