"""Metrics of churn probabilities against known labels. Pure functions over numpy arrays.

Definitions (documented once, used for every model and split):

- `roc_auc`, `pr_auc` (average precision), `log_loss` (natural log), `brier`: scikit-learn.
- `ece`: expected calibration error over 10 *equal-frequency* bins of the predicted probability
  (customers sorted by probability, cut into 10 groups of equal size):
  sum over bins of (bin size / n) * |observed churn rate - mean predicted probability|.
  Equal-frequency bins keep every bin populated when probabilities crowd at one end.
- `lift_top_decile`: churn rate among the 10% of customers with the highest probability (ties broken
  by row order) divided by the overall churn rate; `capture_top_decile`: share of all churners found
  in that top 10%.
- Retention value at a budget (no playbook needed): each contacted churner is retained with probability
  `uplift` and is worth `value` (their spend over the last 365 days when known, else a default), so a
  customer's expected gain is `p * uplift * value`. The list contacts the customers whose expected gain
  exceeds `contact_cost`, largest gain first, at most `floor(budget / contact_cost)` of them: the list a
  value-aware retention team would send with these probabilities (ranking by probability alone sends
  the certain but worthless churners first). `expected_retention_value = sum_list(p * uplift * value) -
  cost` is what the model promises; `realised_retention_value = sum_list(churned * uplift * value) -
  cost` is what the labels say that list would have earned. Both are net of the list's contact costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

CALIBRATION_BINS = 10
TOP_SHARE = 0.10
METRIC_NAMES = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_top_decile",
    "capture_top_decile",
    "expected_retention_value",
    "realised_retention_value",
    "n_customers",
    "churn_rate",
)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})


@dataclass(frozen=True)
class RetentionSettings:
    """Assumptions of the retention value metric (see the module docstring)."""

    budget: float
    contact_cost: float
    uplift: float
    default_customer_value: float
    value_feature: str


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must be 1-D arrays of equal length")
    if np.isnan(p).any() or np.isnan(y).any():
        raise ValueError("labels and probabilities must not contain NaN")
    return y, p


def _descending_order(p: np.ndarray) -> np.ndarray:
    """Indices from the highest probability down; equal probabilities keep row order."""
    return np.argsort(-p, kind="stable")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = CALIBRATION_BINS) -> float:
    """ECE over `bins` equal-frequency bins of `p` (see the module docstring)."""
    y, p = _check(y, p)
    n = len(p)
    if n == 0:
        return math.nan
    order = np.argsort(p, kind="stable")
    bin_of_rank = np.arange(n) * bins // n
    bin_index = np.empty(n, dtype="int64")
    bin_index[order] = bin_of_rank
    counts = np.bincount(bin_index, minlength=bins)
    gap = np.abs(np.bincount(bin_index, weights=y, minlength=bins) - np.bincount(bin_index, weights=p, minlength=bins))
    # |sum(y) - sum(p)| per bin equals count * |mean(y) - mean(p)|, so dividing by n weights by bin size.
    return float(gap[counts > 0].sum() / n)


def top_share_mask(p: np.ndarray, *, share: float = TOP_SHARE) -> np.ndarray:
    """Boolean mask of the ceil(share * n) rows with the highest probability."""
    k = int(math.ceil(share * len(p)))
    mask = np.zeros(len(p), dtype=bool)
    mask[_descending_order(np.asarray(p, dtype="float64"))[:k]] = True
    return mask


def lift_and_capture(y: np.ndarray, p: np.ndarray, *, share: float = TOP_SHARE) -> tuple[float, float]:
    """(lift, capture) of the top `share` of customers by probability; NaN without churners."""
    y, p = _check(y, p)
    if len(y) == 0 or y.sum() == 0:
        return math.nan, math.nan
    top = top_share_mask(p, share=share)
    lift = float(y[top].mean() / y.mean())
    capture = float(y[top].sum() / y.sum())
    return lift, capture


def customer_values(features: pd.DataFrame, *, retention: RetentionSettings) -> np.ndarray:
    """Value per customer: `retention.value_feature` clipped at 0, the default where absent or missing."""
    if retention.value_feature in features.columns:
        values = pd.to_numeric(features[retention.value_feature], errors="coerce").to_numpy("float64", na_value=np.nan)
        values = np.where(np.isnan(values), retention.default_customer_value, np.clip(values, 0.0, None))
    else:
        values = np.full(len(features), retention.default_customer_value, dtype="float64")
    return values


def retention_values(
    y: np.ndarray, p: np.ndarray, *, values: np.ndarray, retention: RetentionSettings
) -> tuple[float, float]:
    """(expected, realised) net retention value of the list these probabilities choose (module docstring)."""
    y, p = _check(y, p)
    values = np.asarray(values, dtype="float64")
    gain = p * retention.uplift * values
    worth = np.flatnonzero(gain > retention.contact_cost)
    k = min(len(worth), int(retention.budget // retention.contact_cost)) if retention.contact_cost > 0 else len(worth)
    chosen = worth[np.argsort(-gain[worth], kind="stable")[:k]]
    cost = len(chosen) * retention.contact_cost
    expected = float(gain[chosen].sum() - cost)
    realised = float((y[chosen] * retention.uplift * values[chosen]).sum() - cost)
    return expected, realised


def classification_metrics(
    y: np.ndarray, p: np.ndarray, *, values: np.ndarray, retention: RetentionSettings
) -> dict[str, float]:
    """Every metric of METRIC_NAMES for labels `y` (0/1) and probabilities `p` (see module docstring)."""
    y, p = _check(y, p)
    both_classes = 0 < y.sum() < len(y)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    lift, capture = lift_and_capture(y, p)
    expected_value, realised_value = retention_values(y, p, values=values, retention=retention)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both_classes else math.nan,
        "log_loss": float(log_loss(y, clipped, labels=[0.0, 1.0])) if len(y) else math.nan,
        "brier": float(brier_score_loss(y, p)) if len(y) else math.nan,
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
        "expected_retention_value": expected_value,
        "realised_retention_value": realised_value,
        "n_customers": float(len(y)),
        "churn_rate": float(y.mean()) if len(y) else math.nan,
    }


def is_better_or_equal(new: float, incumbent: float, *, metric: str) -> bool:
    """True when `new` is at least as good as `incumbent` for `metric` (lower is better for losses)."""
    if metric in LOWER_IS_BETTER:
        return new <= incumbent
    return new >= incumbent


def numeric_metrics(values: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of one model's metrics (drops "status" and anything else that is not a number)."""
    return {k: v for k, v in values.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


def failed_baselines(metrics: dict[str, Any], *, splits: tuple[str, ...] = ("test", "validation")) -> dict[str, str]:
    """{model: "failed: <reason>"} of the models whose status is not "ok" on any of `splits` (first found)."""
    failed: dict[str, str] = {}
    for split in splits:
        for model, values in metrics.get(split, {}).items():
            status = values.get("status", "ok")
            if status != "ok":
                failed.setdefault(model, f"{split}: {status}")
    return failed


def summarise_folds(
    fold_metrics: list[dict[str, dict[str, dict[str, float]]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation (ddof=1; 0 for one fold) per model and metric of the test split.

    Models and metrics keep the order in which they first appear.

    Input: one `{"test": {model: {metric: value}}}` per fold; output `{model: {metric: {"mean", "std", "n"}}}`.
    Models missing from a fold, or failed in it (no numbers), are summarised over the folds that have them.
    """
    rows = [
        {"fold": i, "model": model, "metric": metric, "value": value}
        for i, fold in enumerate(fold_metrics)
        for model, metrics in fold["test"].items()
        for metric, value in numeric_metrics(metrics).items()
    ]
    if not rows:
        return {}
    table = pd.DataFrame(rows).groupby(["model", "metric"], sort=False)["value"]  # keeps first-seen order
    stats = pd.DataFrame({"mean": table.mean(), "std": table.std(ddof=1).fillna(0.0), "n": table.count().astype(float)})
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for (model, metric), row in stats.iterrows():
        summary.setdefault(model, {})[metric] = {k: float(v) for k, v in row.items()}
    return summary


# --- paired bootstrap of ranking metrics -------------------------------------------------------------------

BOOTSTRAP_METRICS = ("roc_auc", "pr_auc")
# Resamples are scored this many (resample, row) cells at a time: the per-model arrays of a chunk (8 MB of int64
# each) stay small enough to be reused from the heap instead of being paged in afresh for every chunk, which
# on the 2-core VMs cost more than the arithmetic (1,000 resamples of 330k test rows: minutes per model).
BOOTSTRAP_CHUNK_CELLS = 1 << 20


def _rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the sum of a * b in float64 (exact for integer arrays while the sums stay below 2**53)."""
    return np.einsum("ij,ij->i", a, b, dtype="float64", casting="unsafe")


@dataclass(frozen=True)
class RankingLayout:
    """The rows of (y, p) ordered by descending score (ties in row order): `order`, `churner` (in that order) and
    `last_of_group` (position of the last row of each tie group). Computed once per model, used for every resample."""

    order: np.ndarray
    churner: np.ndarray
    last_of_group: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, p: np.ndarray) -> RankingLayout:
        y, p = _check(y, p)
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        return cls(order=order, churner=y[order] > 0,
                   last_of_group=np.flatnonzero(np.r_[sorted_p[1:] != sorted_p[:-1], True]))


def weighted_ranking_metrics(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """ROC-AUC and average precision of (`y`, `p`) under each row of case weights `weights` (k x n).

    Equals scikit-learn's `roc_auc_score` / `average_precision_score` with `sample_weight=weights[i]`
    (ties handled as they do: half credit in ROC-AUC, one threshold per distinct score in AP), for all
    k rows at once. NaN where a row has no churner or no non-churner. Integer weights (bootstrap counts)
    are summed exactly as integers.
    """
    return _layout_metrics(RankingLayout.of(y, p), weights)


def _layout_metrics(layout: RankingLayout, weights: np.ndarray) -> dict[str, np.ndarray]:
    """`weighted_ranking_metrics` of the rows laid out in `layout`."""
    weights = np.atleast_2d(np.asarray(weights))
    if weights.dtype.kind not in "iu":
        weights = weights.astype("float64")
    total = np.int64 if weights.dtype.kind in "iu" else np.float64
    sorted_weights = weights[:, layout.order]
    # Cumulative churner and non-churner weight at the end of each tie group (descending score).
    cum_positive = np.cumsum(np.where(layout.churner, sorted_weights, 0), axis=1, dtype=total)
    cum_negative = np.cumsum(np.where(layout.churner, 0, sorted_weights), axis=1, dtype=total)
    del sorted_weights
    if len(layout.last_of_group) < len(layout.order):
        cum_positive, cum_negative = cum_positive[:, layout.last_of_group], cum_negative[:, layout.last_of_group]
    positive = np.diff(cum_positive, axis=1, prepend=0)
    negative = np.diff(cum_negative, axis=1, prepend=0)
    total_positive = cum_positive[:, -1].astype("float64")
    total_negative = cum_negative[:, -1].astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        # ROC-AUC: each churner beats the non-churners scored below it (total - cumulative up to its group), and
        # half of those tied with it.
        beaten = total_positive * total_negative - _rowwise_dot(positive, cum_negative) + 0.5 * _rowwise_dot(
            positive, negative)
        roc_auc = beaten / (total_positive * total_negative)
        # AP: precision at each distinct threshold, weighted by the recall it adds.
        flagged = cum_positive + cum_negative
        precision = np.divide(cum_positive, flagged, out=np.zeros(flagged.shape), where=flagged > 0)
        pr_auc = _rowwise_dot(positive, precision) / total_positive
    valid = (total_positive > 0) & (total_negative > 0)
    return {"roc_auc": np.where(valid, roc_auc, np.nan), "pr_auc": np.where(total_positive > 0, pr_auc, np.nan)}


def bootstrap_weights(n: int, *, resamples: int, seed: int) -> np.ndarray:
    """`resamples` x `n` counts: how often each row is drawn in each bootstrap resample of n rows (seeded), in the
    smallest unsigned integer type that holds them."""
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples) * n)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n)
    return counts.astype(np.min_scalar_type(int(counts.max(initial=0))))


def bootstrap_samples(
    rows: int, layouts: dict[str, RankingLayout], *, resamples: int, seed: int, chunk: int | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Each model's BOOTSTRAP_METRICS on the same `resamples` resamples of the `rows` rows (paired), `chunk` resamples
    at a time (default: about BOOTSTRAP_CHUNK_CELLS resample rows; each chunk has its seed, `seed` + its start):
    {model: {metric: values, one per resample}}."""
    chunk = chunk or max(1, min(resamples, BOOTSTRAP_CHUNK_CELLS // max(1, rows)))
    samples: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in BOOTSTRAP_METRICS} for name in layouts}
    for start in range(0, resamples, chunk):
        weights = bootstrap_weights(rows, resamples=min(chunk, resamples - start), seed=seed + start)
        for name, layout in layouts.items():
            for metric, values in _layout_metrics(layout, weights).items():
                samples[name][metric].append(values)
    return {name: {metric: np.concatenate(values) for metric, values in by_metric.items()}
            for name, by_metric in samples.items()}


def paired_bootstrap(
    y: np.ndarray,
    probabilities: dict[str, np.ndarray],
    *,
    reference: dict[str, str],
    resamples: int = 1000,
    seed: int = 0,
    chunk: int | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Difference of each model's ROC-AUC and PR-AUC to a reference model, with a paired bootstrap 95% interval.

    `reference` names the reference model per metric (e.g. the best baseline by that metric). Every model
    is scored on the same resamples of the rows (paired), `chunk` resamples at a time (default: about
    BOOTSTRAP_CHUNK_CELLS resample rows; the resamples drawn depend on the chunk, as each chunk has its seed).
    Returns {model: {metric: {"reference", "difference", "low", "high", "share_above_zero"}}}.
    """
    y = np.asarray(y, dtype="float64")
    layouts = {name: RankingLayout.of(y, p) for name, p in probabilities.items()}
    samples = bootstrap_samples(len(y), layouts, resamples=resamples, seed=seed, chunk=chunk)
    full = {name: _layout_metrics(layout, np.ones((1, len(y)), dtype=np.int64)) for name, layout in layouts.items()}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name in probabilities:
        result[name] = {}
        for metric in BOOTSTRAP_METRICS:
            base = reference[metric]
            differences = samples[name][metric] - samples[base][metric]
            differences = differences[~np.isnan(differences)]
            low, high = np.percentile(differences, [2.5, 97.5]) if len(differences) else (math.nan, math.nan)
            result[name][metric] = {
                "reference": base,
                "difference": float(full[name][metric][0] - full[base][metric][0]),
                "low": float(low),
                "high": float(high),
                "share_above_zero": float((differences > 0).mean()) if len(differences) else math.nan,
            }
    return result


CHANCE_ROC_AUC = 0.5


def chance_ranking_warning(
    y: np.ndarray, probability: np.ndarray, *, model: str, snapshot: str, resamples: int = 1000, seed: int = 0
) -> str | None:
    """A sentence when the kept model's test ROC-AUC is not above chance: its bootstrap 95% interval (`resamples`
    resamples of the test rows, seeded) reaches down to 0.5. The comparison with the baselines cannot say it when
    every baseline is at chance too (Kaggle's sample sales data: 80 customers, every model and baseline 0.47-0.52,
    and the list gave a customer who ordered the day before 93% churn, "their frequency score (5 of 5) raises their
    predicted risk"). None when the interval lies above 0.5, or the rows hold one class (an error elsewhere)."""
    y = np.asarray(y, dtype="float64")
    if len(np.unique(y)) < 2:
        return None
    layout = RankingLayout.of(y, np.asarray(probability, dtype="float64"))
    sampled = bootstrap_samples(len(y), {model: layout}, resamples=resamples, seed=seed)[model]["roc_auc"]
    low, high = np.nanpercentile(sampled, [2.5, 97.5])
    if low > CHANCE_ROC_AUC:
        return None
    value = float(_layout_metrics(layout, np.ones((1, len(y)), dtype=np.int64))["roc_auc"][0])
    return (f"the kept model's ({model}) ranking of the test snapshot {snapshot}'s customers cannot be told from "
            f"chance: ROC-AUC {value:.3f} (95% interval {low:.3f} to {high:.3f}, {len(y):,} customers) reaches down "
            "to 0.5, so the at-risk list it scores may order customers no better than a random draw, and its reasons "
            "say what moves "
            "this model, not what drives churn: more customers or history, or a features.horizon_days that fits how "
            "often they buy, may give it something to learn")


# The customers source's attributes, static by the contract; with the attribute_<slug> features of
# sources.customers.attributes (`FeaturesConfig.attribute_columns`) they are the attributes the leak check reads.
STATIC_ATTRIBUTES = ("region", "acquisition_channel")
FEW_LABELS = 50  # fewer test customers than this in one class: the test metrics rest on a handful of them


def few_labels_warning(test: pd.DataFrame, *, label: str, snapshot: str, horizon_days: int) -> str | None:
    """A sentence when the `test` snapshot's rarer class (`label`: 1 churned, 0 bought again within `horizon_days`)
    holds fewer than FEW_LABELS customers (`few_labels_sentence`). None otherwise, or when the rows hold one class
    (an error elsewhere)."""
    y = test[label].to_numpy(dtype=float)
    return few_labels_sentence(int((y == 1).sum()), int((y == 0).sum()), snapshot=snapshot, horizon_days=horizon_days)


def few_labels_sentence(
    churned: int, stayed: int, *, snapshot: str, horizon_days: int, pooled: tuple[int, int] | None = None
) -> str | None:
    """A sentence when the rarer of a test snapshot's `churned` and `stayed` (bought again within `horizon_days`)
    customers are fewer than FEW_LABELS: every test metric, the comparison with the baselines and the champion
    decision then rest on that handful (a marketplace where almost nobody buys twice: Olist's 12 of 4,744), or, in
    a snapshot of fewer than 2 x FEW_LABELS customers, on too few customers, which no horizon mends (Kaggle's sample
    sales data: 30 of 80 bought again within 180 days; the longer-horizon hint would mislead). `pooled` (said when
    given: the model learns from them): (labelled snapshots, labels of the rarer class in all of them). None
    otherwise, or when one class is empty."""
    if min(churned, stayed) == 0 or min(churned, stayed) >= FEW_LABELS:
        return None
    customers = churned + stayed
    rest = ("its ROC-AUC, PR-AUC, the comparison with the baselines and the champion decision rest on them: read the "
            "intervals, not the leads")
    if pooled is not None:
        snapshots, rarer = pooled
        kind = "who bought again" if stayed < churned else "labelled churned"
        rest = (f"the model learns from {rarer:,} labels of customers {kind} in all {snapshots:,} labelled snapshots, "
                f"and churn train's test metrics, comparison with the baselines and champion decision rest on this "
                f"snapshot's {min(churned, stayed):,}: read the intervals, not the leads")
    if customers < 2 * FEW_LABELS:  # too few customers: no horizon could give both classes FEW_LABELS
        return (f"the test snapshot {snapshot} holds only {customers:,} customers ({stayed:,} who bought again, "
                f"{churned:,} labelled churned): fewer than {2 * FEW_LABELS} cannot hold {FEW_LABELS} of each, whatever "
                f"the horizon, so {rest}")
    few = (f"{stayed:,} customer{'s' * (stayed != 1)} who bought again" if stayed < churned
           else f"{churned:,} customer{'s' * (churned != 1)} labelled churned")
    longer = (f"; where almost nobody buys again within {horizon_days} days, a longer features.horizon_days labels "
              "more of them as buying again, if the data covers it") if stayed < churned else ""
    return (f"the test snapshot {snapshot} holds only {few} (of {customers:,} customers, churn rate "
            f"{churned / customers:.1%}): {rest}{longer}")


LEAK_FLOOR = 0.7  # an attribute ranking churners at least this well, and about as well as recency, is suspect
LEAK_MARGIN = 0.1
LEAK_BINS = 10  # a number attribute's values are grouped by the deciles of its training values


def _value_groups(train: pd.Series, test: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The group of each value of an attribute's `train` and `test` rows (text; null for a missing value): a category
    its value; a number (a numeric column) the interval between the deciles of its `train` values it falls in, so
    that a test value unseen in training still finds the churn rate of its neighbours."""
    if not pd.api.types.is_numeric_dtype(train.dtype):
        return tuple(values.astype("str").where(values.notna()) for values in (train, test))
    edges = np.unique(np.nanquantile(train.to_numpy(dtype=float), np.linspace(0, 1, LEAK_BINS + 1)[1:-1]))
    return tuple(pd.Series(np.searchsorted(edges, values.to_numpy(dtype=float), side="right"), index=values.index)
                 .astype("str").where(values.notna()) for values in (train, test))


def attribute_leak_warning(
    train: pd.DataFrame, test: pd.DataFrame, *, label: str, attributes: tuple[str, ...] = STATIC_ATTRIBUTES,
    behaviour: str = "recency_days",
) -> str | None:
    """A sentence naming the static customer attributes (`attributes`: categories, or numbers grouped by their
    training deciles, `_value_groups`) that rank the `test` snapshot's churners about as well as `behaviour` (recency)
    does, or better, and at least LEAK_FLOOR: each group scored by its churn rate in the `train` rows (out of time),
    ROC-AUC on `test` (`label`: 0/1). An attribute fixed at sign-up
    rarely knows that much (a region, a channel: 0.5-0.6); one the export writes as of its own day (a 'lapsed' tag, a
    status) tells the model the future. None when no attribute does, or the test rows hold one class."""
    if test[label].nunique() < 2 or behaviour not in test.columns:
        return None
    y = test[label].to_numpy(dtype=float)
    recency = test[behaviour].to_numpy(dtype=float)
    recency = np.where(np.isnan(recency), np.nanmax(recency, initial=0.0), recency)
    recency_auc = roc_auc_score(y, recency)
    suspects = []
    for column in attributes:
        if (column not in test.columns or column not in train.columns or test[column].isna().all()
                or train[column].isna().all()):
            continue
        train_groups, test_groups = _value_groups(train[column], test[column])
        rates = train[label].groupby(train_groups).mean()
        score = test_groups.map(rates).fillna(train[label].mean())
        auc = roc_auc_score(y, score.to_numpy(dtype=float))
        if auc >= max(LEAK_FLOOR, recency_auc - LEAK_MARGIN):
            suspects.append(f"{column} (ROC-AUC {auc:.2f})")
    if not suspects:
        return None
    return (f"the customer attribute{'s' * (len(suspects) > 1)} {', '.join(suspects)} alone rank{'s' * (len(suspects) == 1)} "
            f"the test snapshot's churners about as well as recency does ({recency_auc:.2f}), from the churn rates of "
            "their values in the training snapshots: an attribute fixed at sign-up rarely knows that much. If the "
            "customers export writes it as of the export day (tags such as 'lapsed', a status, order totals), it "
            "tells the model the future: map only attributes fixed at sign-up (sources.customers.rename, "
            "sources.customers.attributes), or leave it unmapped")
