"""Plain-word reasons behind each customer's churn risk, from per-customer feature contributions.

`top_reasons` takes LightGBM contributions (log-odds, one column per model feature) and the feature
values, keeps only the drivers that push the risk up (positive contribution) and whose feature has a
reason in the registry, and writes the strongest `n` as sentences with the customer's own values, e.g.
"no order for about 4 months (last on 2025-06-01), about 3.2 times their usual gap".

Every sentence holds for the customer it is written for. A feature's `Reason` lists phrases, each with
the condition under which it is true: a direction or range of the feature's own value, optionally
relative to the population ("<", TYPICAL: below the median of the customers scored in the same run,
which is the population the list is read against; computed by `typical_values`), and optionally on the
customer's other features (`given`: "earned no points in the last 365 days" is said of loyalty members
only; of others, "not in the loyalty programme"). The first phrase that holds is used; when none holds, the neutral sentence ("their spend trend (+0.36) raises their predicted
risk") states only what the model says; without a neutral sentence the driver is skipped for the next.
A phrase is also skipped when a value it uses cannot be stated (missing, nan, inf, a negative count or
duration, a share outside 0-100%): the wordings of `pipeline.wording` decide, and they put numbers into
words for people (days, then weeks, months or years; hours above 48 as days; money rounded by size;
plural forms; segment names in words; ratios above a bound as "far longer than ...").

Work is per feature column, never per customer: the ranking is one numpy argpartition over the
whole matrix; each phrase is formatted column by column for the customers that selected it (each
distinct value formatted once, the pieces joined with vectorised string addition).
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from pipeline.errors import ScoreError
from pipeline.wording import in_words, split_spec, stateable

AS_OF_FIELD = "as_of"
TYPICAL = "typical"  # a condition's threshold: the feature's median over the population (see `typical_values`)
# Extra candidates ranked beyond `n`, so that reasons repeating the same sentence can be dropped.
EXTRA_CANDIDATES = 3
NEUTRAL_ENDING = " raises their predicted risk"
OPERATORS: dict[str, Callable[[np.ndarray, np.ndarray | float], np.ndarray]] = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
}
Condition = tuple[str, float | str]
Given = tuple[str, str, float]  # (another feature, operator, threshold)


@dataclass(frozen=True)
class Phrase:
    """A sentence template and when it is true: every (operator, threshold) of `when` holds for the feature's
    own value; a threshold is a number or TYPICAL (the population median of the feature); and every (feature,
    operator, threshold) of `given` holds for another of the customer's features (a sentence about loyalty
    points said of members only: ("loyalty_enrolled", "==", 1))."""

    text: str
    when: tuple[Condition, ...] = ()
    given: tuple[Given, ...] = ()


@dataclass(frozen=True)
class Reason:
    """How a feature is put into words: the first of `phrases` that holds for the customer is used; when none
    holds, `neutral` (a noun phrase naming the value, e.g. "their spend trend ({spend_trend:+.2f})") is said
    as "<neutral> raises their predicted risk"; without `neutral` the driver is skipped for the next one."""

    phrases: tuple[Phrase, ...]
    neutral: str | None = None
    neutral_given: tuple[Given, ...] = ()

    def variants(self) -> list[Phrase]:
        """The phrases in order of preference, the neutral sentence last (it holds whatever the value, given
        `neutral_given` on the customer's other features)."""
        neutral = [Phrase(self.neutral + NEUTRAL_ENDING, (), self.neutral_given)] if self.neutral else []
        return [*self.phrases, *neutral]


class ReasonSpec(Protocol):
    """What this module needs from a registry FeatureSpec: `reason` is a Reason, a plain template (str) or None;
    `direction` ("up"/"down"/"none") is used only for plain templates."""

    name: str
    reason: Reason | str | None


def reason_columns(n: int) -> list[str]:
    return [f"reason_{i}" for i in range(1, n + 1)]


def template_fields(template: str) -> list[str]:
    """The field names a str.format template uses ('{recency_days:.0f} days' -> ['recency_days'])."""
    fields = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        root = field.split(".")[0].split("[")[0]
        if not root:
            raise ScoreError(f"reason template {template!r} uses a positional field; name every field")
        if root not in fields:
            fields.append(root)
    return fields


def template_specs(template: str) -> list[tuple[str, str]]:
    """(field, format spec) pairs of a template, in order ('{recency_days:days} ago' -> [('recency_days', 'days')])."""
    return [
        (field.split(".")[0].split("[")[0], spec or "")
        for _, field, spec, _ in string.Formatter().parse(template)
        if field is not None
    ]


def as_reason(reason: Reason | str, direction: str, name: str) -> Reason:
    """A plain template as a Reason, with the conditions implied by the feature's direction: "up" holds for
    values above 0; "down" with a fixed statement (no own value, e.g. "not in the loyalty programme") for 0 or less."""
    if isinstance(reason, Reason):
        return reason
    when: tuple[Condition, ...] = ()
    if direction == "up":
        when = ((">", 0.0),)
    elif direction == "down" and name not in template_fields(reason):
        when = (("<=", 0.0),)
    return Reason((Phrase(reason, when),))


def _reasons(names: Sequence[str], specs: Iterable[ReasonSpec], available: set[str]) -> dict[int, list[Phrase]]:
    """Column position -> the feature's phrases in order of preference, for model features that have a reason."""
    by_name = {spec.name: spec for spec in specs}
    reasons = {}
    for position, name in enumerate(names):
        spec = by_name.get(name)
        reason = spec.reason if spec is not None else None
        if not reason:
            continue
        variants = as_reason(reason, str(getattr(spec, "direction", "none")), name).variants()
        for phrase in variants:
            unknown = [f for f in template_fields(phrase.text) if f not in available]
            if unknown:
                raise ScoreError(
                    f"the reason template of feature '{name}' uses {unknown}, which are not feature columns"
                )
            bad = [op for op, _ in phrase.when if op not in OPERATORS] + [
                op for _, op, _ in phrase.given if op not in OPERATORS]
            if bad:
                raise ScoreError(f"the reason of feature '{name}' has unknown operators {bad}; use {list(OPERATORS)}")
            unknown = [field for field, _, _ in phrase.given if field not in available]
            if unknown:
                raise ScoreError(
                    f"the reason of feature '{name}' depends on {unknown}, which are not feature columns"
                )
        reasons[position] = variants
    return reasons


def typical_values(features: pd.DataFrame, specs: Iterable[ReasonSpec]) -> dict[str, float]:
    """Median of every numeric feature whose reason compares with TYPICAL, over the rows of `features`
    (the scored population); NaN values are left out, a column with no values gives NaN (never true), and so
    does one whose middle values are -inf and +inf (their mean is undefined); middle values near the float
    maximum give inf (their sum overflows). numpy warns in both cases: expected there, not a fault."""
    names = [
        spec.name
        for spec in specs
        if isinstance(spec.reason, Reason) and spec.name in features.columns
        and any(threshold == TYPICAL for phrase in spec.reason.phrases for _, threshold in phrase.when)
    ]
    with np.errstate(invalid="ignore", over="ignore"):
        return {name: float(pd.to_numeric(features[name], errors="coerce").median()) for name in names}


def _holds(
    phrase: Phrase, own: np.ndarray, typical: float, values_of: Callable[[str], np.ndarray] | None = None
) -> np.ndarray:
    """Where every condition of `phrase` holds for the feature's own values, and every `given` for the values of
    the other features (`values_of(name)`, numeric; NaN: never)."""
    mask = np.ones(len(own), dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        for op, threshold in phrase.when:
            mask &= OPERATORS[op](own, typical if threshold == TYPICAL else float(threshold))
        for field, op, threshold in phrase.given:
            if values_of is None:
                raise ValueError(f"the phrase {phrase.text!r} depends on {field!r}: pass values_of")
            mask &= OPERATORS[op](values_of(field), float(threshold))
    return mask


def _distinct_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a 1-D array; floats are compared bit for bit, so -0.0 and 0.0 stay apart."""
    if values.dtype.kind == "f":
        codes, bits = pd.factorize(values.astype(np.float64).view(np.int64), use_na_sentinel=False)
        return codes, np.asarray(bits).view(np.float64)
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return codes, np.asarray(distinct, dtype=object)


def format_field(field: str, spec: str, conversion: str | None, values: np.ndarray) -> np.ndarray:
    """`"{field!conversion:spec}"` formatted for every element of `values` (object array of str).

    A spec naming a wording of `pipeline.wording` (days, hours, money, count:..., share, ratio:..., segment)
    puts the value into words; any other spec is str.format's. Each distinct value is formatted once and
    spread back with one take: the work grows with the distinct values, not the customers.
    """
    codes, distinct = _distinct_codes(values)
    if split_spec(spec) is not None:
        texts = in_words(spec, distinct)
    else:
        root = field.split(".")[0].split("[")[0]
        piece = "{0" + field[len(root):] + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        texts = np.array(list(map(piece.format, distinct)), dtype=object)
    return texts[codes]


def format_columns(template: str, columns: Mapping[str, np.ndarray], *, n: int, as_of: dt.date) -> np.ndarray:
    """`template` formatted for `n` rows whose field values are the equal-length arrays `columns`.

    Same text as `template.format(**row, as_of=as_of)` per row, built column by column: literal parts
    and formatted fields are joined with vectorised string addition (object arrays).
    """
    text = np.full(n, "", dtype=object)
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if literal:
            text = text + literal
        if field is None:
            continue
        root = field.split(".")[0].split("[")[0]
        if root == AS_OF_FIELD:
            text = text + format_field(field, spec or "", conversion, np.array([as_of], dtype=object))[0]
        elif root in columns:
            text = text + format_field(field, spec or "", conversion, columns[root])
        else:
            raise ScoreError(f"reason template {template!r} uses {root!r}, which has no values here")
    return text


def format_reasons(template: str, fields: list[str], context: pd.DataFrame, *, as_of: dt.date) -> np.ndarray:
    """`template` formatted for every row of `context` (columns: `fields` except "as_of"), as an object array."""
    columns = {f: context[f].to_numpy() for f in fields if f != AS_OF_FIELD}
    return format_columns(template, columns, n=len(context), as_of=as_of)


def _drop_repeats(texts: np.ndarray) -> np.ndarray:
    """Blank a sentence that repeats an earlier one in the same row, then move the rest left."""
    result = texts.copy()
    for slot in range(1, result.shape[1]):
        earlier = result[:, :slot]
        repeated = (earlier == result[:, [slot]]).any(axis=1)
        result[repeated, slot] = None
    empty = pd.isna(result)
    order = np.argsort(empty, axis=1, kind="stable")
    return np.take_along_axis(result, order, axis=1)


def strongest_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the `k` largest values of each row of `scores`, largest first.

    One argpartition over the matrix, then a sort of the `k` kept per row (equal values: lower position
    first), instead of sorting every row in full.
    """
    if k < scores.shape[1]:
        kept = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        kept = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    kept_scores = np.take_along_axis(scores, kept, axis=1)
    within = np.lexsort((kept, -kept_scores), axis=1)
    return np.take_along_axis(kept, within, axis=1)


def _own_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _phrase_choice(
    variants: list[Phrase], own: np.ndarray, typical: float, stateable_of: Callable[[str, str], np.ndarray],
    values_of: Callable[[str], np.ndarray] | None = None,
) -> np.ndarray:
    """Per row, the index of the first variant that holds (`values_of`: the other features' numeric values,
    for `given`) and whose fields can all be stated (-1: none)."""
    choice = np.full(len(own), -1)
    for index in range(len(variants) - 1, -1, -1):  # the earliest variant that applies wins
        phrase = variants[index]
        usable = _holds(phrase, own, typical, values_of)
        for field, spec in template_specs(phrase.text):
            if field != AS_OF_FIELD:
                usable &= stateable_of(field, spec)
        choice[usable] = index
    return choice


def top_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    specs: Iterable[ReasonSpec],
    as_of: dt.date,
    n: int = 3,
    context: Callable[[pd.DataFrame, dt.date], pd.DataFrame] | None = None,
    typical: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Top `n` reasons per customer, each a sentence that holds for the customer's own values.

    Input: `contributions` (index = customers, columns = model features, log-odds; bias excluded),
    `features` (same index or a superset; the values used by the templates), registry `specs`.
    `context(features, as_of)` may add derived columns the templates use (e.g. a date). `typical`: the
    population medians that TYPICAL conditions compare with (default: `typical_values` of `features`;
    scoring passes those of every customer scored).
    A driver counts when its contribution is positive and one of its phrases (or its neutral sentence)
    holds with every field stateable (known, finite, in the range its wording can say).
    Output: frame with the index of `contributions` and columns reason_1..reason_n (str; missing when
    fewer than `n` drivers push the risk up).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    specs = list(specs)
    missing = contributions.index.difference(features.index)
    if len(missing):
        raise ScoreError(f"{len(missing)} customers have contributions but no feature values")
    values_frame = features if features.index.equals(contributions.index) else features.loc[contributions.index]
    if typical is None:
        typical = typical_values(values_frame, specs)
    if context is not None:
        values_frame = context(values_frame, as_of)
    names = list(contributions.columns)
    reasons = _reasons(names, specs, set(values_frame.columns) | {AS_OF_FIELD})

    columns: dict[str, np.ndarray] = {}
    stateable_cache: dict[tuple[str, str], np.ndarray] = {}

    def column(field: str) -> np.ndarray:
        if field not in columns:
            columns[field] = values_frame[field].to_numpy()
        return columns[field]

    def stateable_of(field: str, spec: str) -> np.ndarray:
        if (field, spec) not in stateable_cache:
            stateable_cache[(field, spec)] = stateable(spec, column(field))
        return stateable_cache[(field, spec)]

    numeric: dict[str, np.ndarray] = {}

    def values_of(field: str) -> np.ndarray:
        if field not in numeric:
            numeric[field] = _own_values(values_frame, field)
        return numeric[field]

    scores = np.full(contributions.shape, -np.inf)
    values = contributions.to_numpy(dtype=float)
    choices: dict[int, np.ndarray] = {}
    for position, variants in reasons.items():
        name = names[position]
        choice = _phrase_choice(variants, values_of(name), typical.get(name, np.nan), stateable_of, values_of)
        choices[position] = choice
        scores[:, position] = np.where((values[:, position] > 0) & (choice >= 0), values[:, position], -np.inf)

    order = strongest_columns(scores, min(len(names), n + EXTRA_CANDIDATES))
    chosen = np.isfinite(np.take_along_axis(scores, order, axis=1))
    texts = np.full(order.shape, None, dtype=object)
    for position in np.unique(order[chosen]):
        hits = (order == position) & chosen
        rows = np.flatnonzero(hits.any(axis=1))
        slots = hits[rows].argmax(axis=1)
        variant_of_row = choices[int(position)][rows]
        for index in np.unique(variant_of_row):
            these = variant_of_row == index
            template = reasons[int(position)][int(index)].text
            row_values = {f: column(f)[rows[these]] for f in template_fields(template) if f != AS_OF_FIELD}
            texts[rows[these], slots[these]] = format_columns(template, row_values, n=int(these.sum()), as_of=as_of)

    texts = _drop_repeats(texts)[:, :n]
    if texts.shape[1] < n:
        texts = np.hstack([texts, np.full((len(texts), n - texts.shape[1]), None, dtype=object)])
    return pd.DataFrame(
        {column_name: pd.Series(texts[:, i], index=contributions.index, dtype="str") for i, column_name in enumerate(reason_columns(n))},
        index=contributions.index,
    )


def reasons_mention(reasons: pd.DataFrame, words: Iterable[str]) -> pd.Series:
    """True where any reason column contains any of `words` (case-insensitive)."""
    pattern = "|".join(words)
    hits = [reasons[c].str.contains(pattern, case=False, regex=True, na=False) for c in reasons.columns]
    return pd.concat(hits, axis=1).any(axis=1) if hits else pd.Series(False, index=reasons.index)


__all__ = ["Given", "Phrase", "Reason", "TYPICAL", "typical_values", "as_reason", "template_specs", "top_reasons", "reason_columns", "template_fields", "format_reasons", "format_columns", "format_field", "strongest_columns", "reasons_mention"]
