"""Review figures: cohort retention, churn rate over snapshots, risk tier by action, backtest spread,
feature distributions and the measured campaign effect.

Like `pipeline.plots`, each function takes the tables of `pipeline.review` and returns a
`matplotlib.figure.Figure` on an Agg canvas (no pyplot state, no display needed) with a title, axis
labels with units and a legend. `pipeline.plots.figure_png` and `pipeline.plots.save_figure` turn one
into PNG bytes or an atomically written file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# figure_png and save_figure live in pipeline.plots (the bottom plotting layer); notebooks and runners
# still reach them from here.
from pipeline.plots import figure_png, new_figure, save_figure  # noqa: F401
from pipeline.review import NO_ACTION, TIER_ORDER, tier_by_action

def _no_data(ax, message: str) -> None:
    """Say so in the middle of an empty plot (instead of an empty legend)."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="grey")


def cohort_retention_figure(cohorts: pd.DataFrame, *, max_cohorts: int = 12) -> Figure:
    """Retention curves of the latest `max_cohorts` first-order-month cohorts with at least two months
    observed, plus the customer-weighted mean over all cohorts. Input: `review.cohort_retention`."""
    figure, (ax,) = new_figure(size=(8.0, 5.0))
    observed = cohorts.groupby("cohort")["months_since_first"].transform("max") >= 2
    shown = sorted(cohorts.loc[observed, "cohort"].unique())[-max_cohorts:]
    colours = [colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, max(len(shown), 1))]
    for colour, (cohort, rows) in zip(colours, cohorts[cohorts["cohort"].isin(shown)].groupby("cohort"), strict=False):
        size = int(rows["cohort_size"].iloc[0])
        ax.plot(rows["months_since_first"], 100 * rows["retention"], color=colour, linewidth=1.2, alpha=0.8,
                label=f"{cohort} (n={size:,})")
    weighted = cohorts[cohorts["months_since_first"] > 0].groupby("months_since_first")[["active_customers", "cohort_size"]].sum()
    if not weighted.empty:
        ax.plot(weighted.index, 100 * weighted["active_customers"] / weighted["cohort_size"], color="black",
                linewidth=2.5, linestyle="--", label="all cohorts (weighted)")
    ax.set(
        title="Cohort retention by first-order month",
        xlabel="months since first order",
        ylabel="customers ordering in that month (% of cohort)",
        ylim=(0, 105),
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if cohorts.empty:
        _no_data(ax, "no whole month of purchases before the as-of date")
    elif not ax.get_lines():
        _no_data(ax, "no cohort observed beyond its first-order month yet")
    else:
        ax.legend(loc="upper right", fontsize="small", ncols=2, title="first-order month")
    return figure


def churn_rate_figure(rates: pd.DataFrame) -> Figure:
    """Churn rate (line, left axis) and eligible customers (bars, right axis) per snapshot date.
    Input: `review.churn_by_snapshot`; unlabelled snapshots show a bar but no rate."""
    figure, (ax,) = new_figure(size=(9.0, 4.8))
    dates = pd.to_datetime(rates["snapshot_date"]).dt.tz_localize(None)
    counts_ax = ax.twinx()
    bars = counts_ax.bar(dates, rates["customers"], width=20, color="lightgrey", label="eligible customers (right axis)")
    counts_ax.set_ylabel("eligible customers (count)")
    (line,) = ax.plot(dates, 100 * rates["churn_rate"], marker="o", color="tab:red", label="churn rate (left axis)")
    ax.set_zorder(counts_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    unlabelled = int(rates["churn_rate"].isna().sum())
    ax.set(
        title="Churn rate per snapshot" + (f" ({unlabelled} snapshot(s) without labels yet)" if unlabelled else ""),
        xlabel="snapshot date",
        ylabel="churned within the horizon (% of eligible)",
        ylim=(0, 100),
    )
    ax.legend(handles=[line, bars], loc="upper left")
    return figure


def risk_tier_action_figure(scores: pd.DataFrame) -> Figure:
    """Customers per risk tier, stacked by the action chosen ("no action" in grey); the control group's
    share per tier in the legend. Input: an at-risk list (risk_tier, action, group)."""
    table = tier_by_action(scores)
    control = scores[scores["group"] == "control"].groupby("risk_tier").size().reindex(list(TIER_ORDER), fill_value=0)
    figure, (ax,) = new_figure(size=(9.0, 5.0))
    bottom = np.zeros(len(table))
    palette = colormaps["tab10"]
    for i, action in enumerate(table.columns):
        colour = "lightgrey" if action == NO_ACTION else palette(i % 10)
        values = table[action].to_numpy()
        ax.bar(table.index, values, bottom=bottom, color=colour, label=action)
        bottom += values
    for x, (total, held_out) in enumerate(zip(bottom, control.to_numpy(), strict=True) if len(scores) else []):
        ax.annotate(f"{int(total):,} ({int(held_out)} control)", (x, total), ha="center", va="bottom", fontsize="small")
    as_of = str(scores["as_of"].iloc[0]) if len(scores) else "?"
    ax.set(
        title=f"At-risk list as of {as_of}: actions by risk tier",
        xlabel="risk tier (from the calibrated churn probability)",
        ylabel="customers (count)",
        ylim=(0, max(bottom.max(), 1) * 1.15),
    )
    if table.columns.empty:
        _no_data(ax, "no customers scored")
    else:
        ax.legend(title="action", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def backtest_spread_figure(folds: pd.DataFrame, spread: pd.DataFrame, *, metric: str) -> Figure:
    """`metric` per model over the backtest folds: one dot per test snapshot, the mean ± std of the
    training run's backtest summary as a bar. Input: `review.backtest_folds`, `review.backtest_spread`."""
    figure, (ax,) = new_figure(size=(8.0, 4.5))
    models = sorted(folds["model"].unique())
    snapshots = sorted(folds["test_snapshot"].unique())
    markers = "osD^v<>p*h"
    for j, snapshot in enumerate(snapshots):
        rows = folds[folds["test_snapshot"] == snapshot].set_index("model").reindex(models)
        ax.scatter(np.arange(len(models)) + 0.08 * (j - (len(snapshots) - 1) / 2), rows[metric], marker=markers[j % len(markers)],
                   s=30, zorder=3, label=f"test snapshot {snapshot}")
    stats = spread[spread["metric"] == metric].set_index("model").reindex(models)
    ax.errorbar(np.arange(len(models)), stats["mean"], yerr=stats["std"].fillna(0.0), fmt="_", markersize=22,
                color="black", capsize=6, label="mean ± std")
    ax.set_xticks(np.arange(len(models)), models, rotation=15)
    ax.set(
        title=f"Backtest: {metric} over {len(snapshots)} rolling test snapshots",
        xlabel="model",
        ylabel=f"{metric} on the test snapshot (unitless)",
    )
    ax.legend(loc="best", fontsize="small")
    return figure


def feature_distribution_figure(snapshot: pd.DataFrame, columns: Sequence[str], *, label: str = "churned") -> Figure:
    """Histograms of numeric `columns` of one labelled snapshot, churned vs retained customers overlaid
    (values clipped at the 1st/99th percentile; missing values left out)."""
    columns = list(columns)
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    figure = Figure(figsize=(4.0 * ncols, 3.2 * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    labelled = snapshot[snapshot[label].notna()]
    for ax, column in zip(axes, columns, strict=False):
        values = labelled[column].astype("float64")
        low, high = np.nanpercentile(values, [1, 99]) if values.notna().any() else (0.0, 1.0)
        bins = np.linspace(low, high if high > low else low + 1.0, 25)
        for outcome, name, colour in ((0.0, "retained", "tab:blue"), (1.0, "churned", "tab:red")):
            part = values[labelled[label] == outcome].clip(low, high).dropna()
            if part.empty:  # a density of nothing divides by zero
                ax.plot([], [], color=colour, label=f"{name} (n=0)")
            else:
                ax.hist(part, bins=bins, density=True, alpha=0.5, color=colour, label=f"{name} (n={len(part):,})")
        ax.set(title=column, xlabel=f"{column} (feature units, clipped 1-99%)", ylabel="density")
        ax.legend(fontsize="x-small")
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    date = pd.Timestamp(snapshot["snapshot_date"].iloc[0]).date() if len(snapshot) else "?"
    figure.suptitle(f"Key features by outcome, snapshot {date}")
    return figure


def measured_effect_figure(measured: pd.DataFrame) -> Figure:
    """Churn of treated vs control customers per action (bars), with the 95% interval of the churn
    reduction in the labels. Input: the `churn measure` results (measured_YYYY-MM-DD.csv)."""
    figure, (ax,) = new_figure(size=(max(8.0, 1.7 * len(measured) + 2.0), 5.2))
    x = np.arange(len(measured))
    width = 0.38
    ax.bar(x - width / 2, 100 * measured["churn_treatment"], width, color="tab:green", label="treatment")
    ax.bar(x + width / 2, 100 * measured["churn_control"], width, color="tab:grey", label="control (held out)")
    labels = [
        f"{row.action}\nn={int(row.n_treatment)}/{int(row.n_control)}\n"
        f"Δ {100 * row.churn_reduction:+.0f} pp [{100 * row.churn_reduction_low:+.0f}, {100 * row.churn_reduction_high:+.0f}]"
        for row in measured.itertuples()  # one tick label per action, not per customer
    ]
    ax.set_xticks(x, labels, fontsize="x-small")
    ax.set(
        title="Churn after the campaign: treated vs control (Δ = reduction, 95% interval)",
        xlabel="action (customers treated / control)",
        ylabel="churned within the horizon (% of group)",
        ylim=(0, 105),
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure
