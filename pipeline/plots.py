"""Figures of the pipeline (matplotlib, no display needed). Each function returns a Figure.

Figures are built on `matplotlib.figure.Figure` directly (Agg canvas), never through pyplot's global
state, so they can be made in tests and batch jobs and are freed when dropped. Every figure has a
title, axis labels with units and a legend. The runner logs them to MLflow as PNG.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.io import write_bytes

FIGSIZE = (7.0, 5.0)
DPI = 110
# Curves are drawn through at most this many points: a 7-inch line shows no more, and one point per
# customer (hundreds of thousands at scale) only costs rendering time.
CURVE_POINTS = 2000


def thinned(*arrays: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, ...]:
    """The arrays (same length, points of one curve) at `points` evenly spaced positions, ends kept."""
    n = len(arrays[0])
    if n <= points:
        return arrays
    keep = np.unique(np.linspace(0, n - 1, points).round().astype("int64"))
    return tuple(np.asarray(a)[keep] for a in arrays)


def figure_png(figure: Figure, *, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no timestamp in the metadata: equal figures give equal bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def save_figure(figure: Figure, path: Path | str, *, dpi: int = DPI) -> Path:
    """Write the figure as PNG to `path` atomically; returns `path`."""
    return write_bytes(figure_png(figure, dpi=dpi), path)


def new_figure(*, size: tuple[float, float] = FIGSIZE, ncols: int = 1) -> tuple[Figure, list]:
    """A Figure with an Agg canvas and `ncols` axes side by side."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def roc_figure(y: np.ndarray, probabilities: Mapping[str, np.ndarray], *, split_name: str) -> Figure:
    """ROC curve per model (AUC in the legend) with the chance diagonal."""
    from sklearn.metrics import roc_auc_score, roc_curve  # sklearn costs ~2 s to import: only where needed

    figure, (ax,) = new_figure()
    for name, p in probabilities.items():
        fpr, tpr = thinned(*roc_curve(y, p)[:2])
        ax.plot(100 * fpr, 100 * tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 100], [0, 100], linestyle="--", color="grey", label="chance")
    ax.set(
        title=f"ROC curve, {split_name} snapshot",
        xlabel="false positive rate (% of non-churners flagged)",
        ylabel="true positive rate (% of churners flagged)",
    )
    ax.legend(loc="lower right")
    return figure


def precision_recall_figure(y: np.ndarray, probabilities: Mapping[str, np.ndarray], *, split_name: str) -> Figure:
    """Precision-recall curve per model (average precision in the legend) with the base rate."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure, (ax,) = new_figure()
    for name, p in probabilities.items():
        precision, recall = thinned(*precision_recall_curve(y, p)[:2])
        ax.plot(100 * recall, 100 * precision, label=f"{name} (AP {average_precision_score(y, p):.3f})")
    ax.axhline(100 * float(np.mean(y)), linestyle="--", color="grey", label=f"base rate {np.mean(y):.1%}")
    ax.set(
        title=f"Precision-recall curve, {split_name} snapshot",
        xlabel="recall (% of churners flagged)",
        ylabel="precision (% of flagged who churn)",
        ylim=(0, 102),
    )
    ax.legend(loc="upper right")
    return figure


def reliability_table(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Equal-frequency bins of `p`: columns `mean_predicted`, `observed_rate`, `count` (as in the ECE)."""
    order = np.argsort(p, kind="stable")
    bin_index = np.empty(len(p), dtype="int64")
    bin_index[order] = np.arange(len(p)) * bins // max(len(p), 1)
    frame = pd.DataFrame({"bin": bin_index, "p": p, "y": y})
    table = frame.groupby("bin").agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size"))
    return table.reset_index(drop=True)


def reliability_figure(y: np.ndarray, probabilities: Mapping[str, np.ndarray], *, split_name: str) -> Figure:
    """Observed churn rate against mean predicted probability in 10 equal-frequency bins, per model."""
    figure, (ax,) = new_figure()
    for name, p in probabilities.items():
        table = reliability_table(np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64"))
        ax.plot(100 * table["mean_predicted"], 100 * table["observed_rate"], marker="o", label=name)
    ax.plot([0, 100], [0, 100], linestyle="--", color="grey", label="perfect calibration")
    ax.set(
        title=f"Reliability (10 equal-frequency bins), {split_name} snapshot",
        xlabel="mean predicted churn probability in bin (%)",
        ylabel="observed churn rate in bin (%)",
    )
    ax.legend(loc="upper left")
    return figure


def gain_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Customers by descending probability: `share_contacted`, `share_captured`, `lift` (all cumulative)."""
    y = np.asarray(y, dtype="float64")[np.argsort(-np.asarray(p, dtype="float64"), kind="stable")]
    n = np.arange(1, len(y) + 1)
    captured = np.cumsum(y) / max(y.sum(), 1.0)
    contacted = n / len(y)
    return pd.DataFrame({"share_contacted": contacted, "share_captured": captured, "lift": captured / contacted})


def lift_gain_figure(y: np.ndarray, probabilities: Mapping[str, np.ndarray], *, split_name: str) -> Figure:
    """Cumulative gain (left) and cumulative lift (right) against the share of customers contacted."""
    figure, (gain_ax, lift_ax) = new_figure(size=(11.0, 4.8), ncols=2)
    for name, p in probabilities.items():
        contacted, captured, lift = thinned(*gain_table(y, p).to_numpy().T)
        gain_ax.plot(100 * contacted, 100 * captured, label=name)
        lift_ax.plot(100 * contacted, lift, label=name)
    gain_ax.plot([0, 100], [0, 100], linestyle="--", color="grey", label="random order")
    lift_ax.axhline(1.0, linestyle="--", color="grey", label="random order")
    lift_ax.axvline(10.0, linestyle=":", color="black", label="top decile")
    gain_ax.set(
        title=f"Cumulative gain, {split_name} snapshot",
        xlabel="customers contacted, by descending probability (%)",
        ylabel="churners captured (%)",
    )
    lift_ax.set(
        title=f"Cumulative lift, {split_name} snapshot",
        xlabel="customers contacted, by descending probability (%)",
        ylabel="lift (× the overall churn rate)",
        xlim=(1, 100),
    )
    gain_ax.legend(loc="lower right")
    lift_ax.legend(loc="upper right")
    return figure


def feature_importance_figure(importance: pd.Series, *, model: str, measure: str, top: int = 20) -> Figure:
    """Horizontal bars of the `top` features by importance (`importance`: feature -> value), as shares of the
    total over all features. The title names whose importance it is (`model`) and what was measured (`measure`)."""
    shown = importance.sort_values(ascending=False).head(top)[::-1]
    total = float(importance.sum()) or 1.0
    figure, (ax,) = new_figure(size=(9.0, max(3.5, 0.3 * len(shown) + 2.0)))
    ax.barh(shown.index, 100 * shown.to_numpy() / total, color="tab:blue", label="share of the total")
    ax.set(
        title=f"Feature importance\n{model}\ntop {len(shown)} by {measure}",
        xlabel="share of the total over all features (%)",
        ylabel="feature",
    )
    ax.legend(loc="lower right")
    return figure


def shap_summary_figure(
    contributions: pd.DataFrame,
    values: pd.DataFrame,
    *,
    model: str,
    top: int = 15,
    max_points: int = 2000,
    seed: int = 0,
) -> Figure:
    """Beeswarm-style summary of per-customer contributions to the log-odds of `model` (named in the title;
    e.g. LightGBM's TreeSHAP `pred_contrib`, a logistic model's linear terms, or their blend).

    `contributions` and `values` (the model's numeric input matrix, categories as codes) share index and
    columns. One row per feature (the `top` by mean |contribution|); each dot a customer, coloured by the
    percentile of the customer's own value within that feature (grey when missing).
    """
    rng = np.random.default_rng(seed)
    if len(contributions) > max_points:
        rows = np.sort(rng.choice(len(contributions), max_points, replace=False))
        contributions, values = contributions.iloc[rows], values.iloc[rows]
    ranking = contributions.abs().mean().sort_values(ascending=False).head(top)
    features = list(ranking.index[::-1])
    percentiles = values[features].rank(pct=True)
    figure, (ax,) = new_figure(size=(9.0, max(4.0, 0.4 * len(features) + 2.0)))
    scatter = None
    for position, name in enumerate(features):
        x = contributions[name].to_numpy()
        colour = percentiles[name].to_numpy()
        jitter = position + rng.uniform(-0.3, 0.3, len(x))
        missing = np.isnan(colour)
        ax.scatter(x[missing], jitter[missing], s=6, color="lightgrey", alpha=0.6)
        scatter = ax.scatter(
            x[~missing], jitter[~missing], s=6, c=colour[~missing], cmap="coolwarm", vmin=0, vmax=1, alpha=0.7
        )
    ax.scatter([], [], s=6, color="lightgrey", label="value missing")
    ax.axvline(0.0, color="black", linewidth=0.8, label="no effect")
    ax.set_yticks(range(len(features)), features)
    ax.set(
        title=f"Per-customer feature contributions\n{model}\ntop {len(features)} by mean |contribution|",
        xlabel="contribution to churn score (log-odds; > 0 raises risk)",
        ylabel="feature",
    )
    if scatter is not None:
        figure.colorbar(scatter, ax=ax, label="feature value (percentile within feature)")
    ax.legend(loc="lower right")
    return figure
