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

Work is per feature column, never per customer: the ranking is one numpy argsort over the whole
matrix; each template is formatted once per customer that selected it.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

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


def format_reasons(template: str, fields: list[str], context: pd.DataFrame, *, as_of: dt.date) -> list[str]:
    """Format `template` once per row of `context` (only the rows that need it)."""
    columns = [f for f in fields if f != AS_OF_FIELD]
    records: list[dict[str, Any]] = context[columns].to_dict("records") if columns else [{}] * len(context)
    return [template.format_map({**record, AS_OF_FIELD: as_of}) for record in records]


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
    values_frame = features.loc[contributions.index]
    if context is not None:
        values_frame = context(values_frame, as_of)
    names = list(contributions.columns)
    templates = _templates(names, specs, set(values_frame.columns) | {AS_OF_FIELD})

    scores = np.full(contributions.shape, -np.inf)
    values = contributions.to_numpy(dtype=float)
    for position, (_, fields, direction) in templates.items():
        usable = values_frame[[f for f in fields if f != AS_OF_FIELD]].notna().all(axis=1).to_numpy() & (values[:, position] > 0)
        name = names[position]
        if direction in ("up", "down") and name in values_frame.columns:
            own = pd.to_numeric(values_frame[name], errors="coerce").to_numpy(dtype=float)
            if direction == "up":
                usable &= own > 0
            elif name not in fields:  # a fixed statement such as "not in the loyalty programme"
                usable &= own <= 0
        scores[:, position] = np.where(usable, values[:, position], -np.inf)

    candidates = min(len(names), n + EXTRA_CANDIDATES)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :candidates]
    chosen = np.isfinite(np.take_along_axis(scores, order, axis=1))
    texts = np.full(order.shape, None, dtype=object)
    for position in np.unique(order[chosen]):
        hits = (order == position) & chosen
        rows = np.flatnonzero(hits.any(axis=1))
        template, fields, _ = templates[int(position)]
        slots = hits[rows].argmax(axis=1)
        texts[rows, slots] = format_reasons(template, fields, values_frame.iloc[rows], as_of=as_of)

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


__all__ = ["top_reasons", "reason_columns", "template_fields", "format_reasons", "reasons_mention"]
