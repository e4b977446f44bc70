"""Plain-word reasons behind each customer's churn risk, from per-customer feature contributions.

`top_reasons` takes LightGBM contributions (log-odds, one column per model feature) and the feature
values, keeps only the drivers that push the risk up (positive contribution) and whose feature has a
reason template in the registry, and writes the strongest `n` as sentences with the customer's own
values, e.g. "no order for 128 days, about 3.2x their usual gap".

A driver is skipped when its template would state something untrue or unknown: a value the template
uses is missing; or the feature's registry direction is "up" (more means riskier) and the customer's
value is 0 or less ("0 support tickets still open" can come out of tree interactions, but is no
reason); or the direction is "down" and the template states a fact without the feature's own value
("not in the loyalty programme") while the customer's value is above 0.

Work is per feature column, never per customer: the ranking is one numpy argpartition over the
whole matrix; each template is formatted column by column for the customers that selected it (each distinct
value formatted once, the pieces joined with vectorised string addition).
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from pipeline.errors import ScoreError

AS_OF_FIELD = "as_of"
# Extra candidates ranked beyond `n`, so that reasons repeating the same sentence can be dropped.
EXTRA_CANDIDATES = 3


class ReasonSpec(Protocol):
    """What this module needs from a registry FeatureSpec (`direction` is optional: "up"/"down"/"none")."""

    name: str
    reason: str | None


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


def _templates(
    names: Sequence[str], specs: Iterable[ReasonSpec], available: set[str]
) -> dict[int, tuple[str, list[str], str]]:
    """Column position -> (template, fields, direction) for model features that have a reason template."""
    by_name = {spec.name: spec for spec in specs}
    templates = {}
    for position, name in enumerate(names):
        spec = by_name.get(name)
        template = spec.reason if spec is not None else None
        if not template:
            continue
        fields = template_fields(template)
        unknown = [f for f in fields if f not in available]
        if unknown:
            raise ScoreError(
                f"the reason template of feature '{name}' uses {unknown}, which are not feature columns"
            )
        templates[position] = (template, fields, str(getattr(spec, "direction", "none")))
    return templates


def _distinct_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a 1-D array; floats are compared bit for bit, so -0.0 and 0.0 stay apart."""
    if values.dtype.kind == "f":
        codes, bits = pd.factorize(values.astype(np.float64).view(np.int64), use_na_sentinel=False)
        return codes, np.asarray(bits).view(np.float64)
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return codes, np.asarray(distinct, dtype=object)


def format_field(field: str, spec: str, conversion: str | None, values: np.ndarray) -> np.ndarray:
    """`"{field!conversion:spec}"` formatted for every element of `values` (object array of str).

    Each distinct value is formatted once (str.format, so the text is exactly what `template.format`
    gives) and spread back with one take: the work grows with the distinct values, not the customers.
    """
    root = field.split(".")[0].split("[")[0]
    piece = "{0" + field[len(root):] + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    codes, distinct = _distinct_codes(values)
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


def top_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    *,
    specs: Iterable[ReasonSpec],
    as_of: dt.date,
    n: int = 3,
    context: Callable[[pd.DataFrame, dt.date], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Top `n` reasons per customer.

    Input: `contributions` (index = customers, columns = model features, log-odds; bias excluded),
    `features` (same index or a superset; the values used by the templates), registry `specs`.
    `context(features, as_of)` may add derived columns the templates use (e.g. a date).
    Output: frame with the index of `contributions` and columns reason_1..reason_n (str; missing when
    fewer than `n` drivers push the risk up).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    missing = contributions.index.difference(features.index)
    if len(missing):
        raise ScoreError(f"{len(missing)} customers have contributions but no feature values")
    values_frame = features if features.index.equals(contributions.index) else features.loc[contributions.index]
    if context is not None:
        values_frame = context(values_frame, as_of)
    names = list(contributions.columns)
    templates = _templates(names, specs, set(values_frame.columns) | {AS_OF_FIELD})

    field_names = sorted({f for _, fields, _ in templates.values() for f in fields if f != AS_OF_FIELD})
    columns = {f: values_frame[f].to_numpy() for f in field_names}
    known = {f: values_frame[f].notna().to_numpy() for f in field_names}

    scores = np.full(contributions.shape, -np.inf)
    values = contributions.to_numpy(dtype=float)
    for position, (_, fields, direction) in templates.items():
        usable = values[:, position] > 0
        for f in fields:
            if f != AS_OF_FIELD:
                usable &= known[f]
        name = names[position]
        if direction in ("up", "down") and name in values_frame.columns:
            own = pd.to_numeric(values_frame[name], errors="coerce").to_numpy(dtype=float)
            if direction == "up":
                usable &= own > 0
            elif name not in fields:  # a fixed statement such as "not in the loyalty programme"
                usable &= own <= 0
        scores[:, position] = np.where(usable, values[:, position], -np.inf)

    order = strongest_columns(scores, min(len(names), n + EXTRA_CANDIDATES))
    chosen = np.isfinite(np.take_along_axis(scores, order, axis=1))
    texts = np.full(order.shape, None, dtype=object)
    for position in np.unique(order[chosen]):
        hits = (order == position) & chosen
        rows = np.flatnonzero(hits.any(axis=1))
        template, fields, _ = templates[int(position)]
        slots = hits[rows].argmax(axis=1)
        row_values = {f: columns[f][rows] for f in fields if f != AS_OF_FIELD}
        texts[rows, slots] = format_columns(template, row_values, n=len(rows), as_of=as_of)

    texts = _drop_repeats(texts)[:, :n]
    if texts.shape[1] < n:
        texts = np.hstack([texts, np.full((len(texts), n - texts.shape[1]), None, dtype=object)])
    return pd.DataFrame(
        {column: pd.Series(texts[:, i], index=contributions.index, dtype="str") for i, column in enumerate(reason_columns(n))},
        index=contributions.index,
    )


def reasons_mention(reasons: pd.DataFrame, words: Iterable[str]) -> pd.Series:
    """True where any reason column contains any of `words` (case-insensitive)."""
    pattern = "|".join(words)
    hits = [reasons[c].str.contains(pattern, case=False, regex=True, na=False) for c in reasons.columns]
    return pd.concat(hits, axis=1).any(axis=1) if hits else pd.Series(False, index=reasons.index)


__all__ = ["top_reasons", "reason_columns", "template_fields", "format_reasons", "format_columns", "format_field", "strongest_columns", "reasons_mention"]
