"""Training plots: the tables behind them by hand, and every figure titled, labelled and with a legend."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from pipeline import plots

Y = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
P = {"model": np.linspace(0.9, 0.0, 10), "other": np.linspace(0.1, 0.5, 10)}


def test_gain_table_by_hand():
    table = plots.gain_table(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.1, 0.9, 0.4, 0.5]))
    # order by probability: 0.9 (churner), 0.5, 0.4 (churner), 0.1
    expected = pd.DataFrame(
        {
            "share_contacted": [0.25, 0.5, 0.75, 1.0],
            "share_captured": [0.5, 0.5, 1.0, 1.0],
            "lift": [2.0, 1.0, 4 / 3, 1.0],
        }
    )
    pd.testing.assert_frame_equal(table, expected)


def test_reliability_table_equal_frequency_bins():
    table = plots.reliability_table(np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.4, 0.1, 0.8, 0.6]), bins=2)
    expected = pd.DataFrame({"mean_predicted": [0.25, 0.7], "observed_rate": [0.5, 1.0], "count": [2, 2]})
    pd.testing.assert_frame_equal(table, expected)


def _check(figure: Figure) -> None:
    assert isinstance(figure, Figure)
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title()
        assert ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None
    png = io.BytesIO()
    figure.savefig(png, format="png")  # an Agg canvas: renders without a display
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "make",
    [plots.roc_figure, plots.precision_recall_figure, plots.reliability_figure, plots.lift_gain_figure],
)
def test_curve_figures_are_labelled(make):
    figure = make(Y, P, split_name="test")
    _check(figure)
    assert "test snapshot" in figure.axes[0].get_title()


def _line(ax, label: str) -> np.ndarray:
    """The (x, y) points of the line called `label` (or `label (AUC ...)`) on `ax`, as a 2-row array."""
    (line,) = [line for line in ax.get_lines() if line.get_label() == label or line.get_label().startswith(f"{label} (")]
    return np.vstack(line.get_data()).astype("float64")


def _expected_curves(name: str, p: np.ndarray) -> list[np.ndarray]:
    """Per axis of the figure, the points a model's line must go through (in %, except lift)."""
    if name == "roc":
        fpr, tpr, _ = roc_curve(Y, p)
        return [100 * np.vstack([fpr, tpr])]
    if name == "precision_recall":
        precision, recall, _ = precision_recall_curve(Y, p)
        return [100 * np.vstack([recall, precision])]
    if name == "reliability":
        table = plots.reliability_table(Y, p)
        return [100 * table[["mean_predicted", "observed_rate"]].to_numpy().T]
    table = plots.gain_table(Y, p)
    return [100 * table[["share_contacted", "share_captured"]].to_numpy().T,
            np.vstack([100 * table["share_contacted"], table["lift"]])]


@pytest.mark.parametrize(
    ("name", "make"),
    [("roc", plots.roc_figure), ("precision_recall", plots.precision_recall_figure),
     ("reliability", plots.reliability_figure), ("lift_gain", plots.lift_gain_figure)],
)
def test_curve_figures_plot_each_models_table(name, make):
    figure = make(Y, P, split_name="test")
    for model, p in P.items():
        for ax, expected in zip(figure.axes, _expected_curves(name, p), strict=True):
            np.testing.assert_allclose(_line(ax, model), expected)


def test_reference_lines_of_the_curve_figures():
    assert _line(plots.roc_figure(Y, P, split_name="t").axes[0], "chance").tolist() == [[0, 100], [0, 100]]
    base = _line(plots.precision_recall_figure(Y, P, split_name="t").axes[0], "base rate 40.0%")
    assert base[1].tolist() == [40.0, 40.0]  # 4 churners in 10
    gain_ax, lift_ax = plots.lift_gain_figure(Y, P, split_name="t").axes
    assert _line(gain_ax, "random order").tolist() == [[0, 100], [0, 100]]
    assert _line(lift_ax, "random order")[1].tolist() == [1.0, 1.0]
    assert _line(lift_ax, "top decile")[0].tolist() == [10.0, 10.0]


def test_feature_importance_figure_shows_the_top_features():
    importance = pd.Series({"a": 5.0, "b": 1.0, "c": 3.0})
    figure = plots.feature_importance_figure(importance, model="kept model: X", measure="mean |contribution|", top=2)
    _check(figure)
    assert figure.axes[0].get_title() == "Feature importance\nkept model: X\ntop 2 by mean |contribution|"
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["c", "a"]
    widths = [bar.get_width() for bar in figure.axes[0].patches]
    np.testing.assert_allclose(widths, [100 * 3 / 9, 100 * 5 / 9])  # share of the total over all 3 features


def test_shap_summary_ranks_features_by_mean_absolute_contribution():
    rng = np.random.default_rng(0)
    contributions = pd.DataFrame({"small": rng.normal(0, 0.1, 50), "big": rng.normal(0, 1.0, 50)})
    values = pd.DataFrame({"small": rng.normal(size=50), "big": np.where(np.arange(50) % 5 == 0, np.nan, 1.0)})
    figure = plots.shap_summary_figure(contributions, values, model="kept model: X", max_points=30)
    _check(figure)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["small", "big"]  # top of the chart = largest effect
    assert "log-odds" in figure.axes[0].get_xlabel()


def test_shap_summary_plots_every_contribution_on_its_features_row():
    contributions = pd.DataFrame({"small": [0.1, -0.2, 0.05, 0.0], "big": [2.0, -1.0, 0.5, 1.5]})
    values = pd.DataFrame({"small": [1.0, 2.0, 3.0, 4.0], "big": [np.nan, 1.0, 2.0, 3.0]})
    ax = plots.shap_summary_figure(contributions, values, model="kept model: X").axes[0]
    # per feature, bottom row first: the customers with the value missing (grey), then the others
    missing_small, small, missing_big, big = (c.get_offsets() for c in ax.collections[:4])
    assert len(missing_small) == 0 and small[:, 0].tolist() == [0.1, -0.2, 0.05, 0.0]
    assert missing_big[:, 0].tolist() == [2.0] and big[:, 0].tolist() == [-1.0, 0.5, 1.5]
    assert (np.abs(small[:, 1] - 0) <= 0.3).all() and (np.abs(big[:, 1] - 1) <= 0.3).all()  # jitter around the row
    np.testing.assert_allclose(ax.collections[3].get_array(), [1 / 3, 2 / 3, 1.0])  # percentile of own value


def test_thinned_curves_keep_the_ends_and_at_most_the_points_asked():
    x, y = np.arange(10_001, dtype="float64"), np.arange(10_001, dtype="float64") ** 2
    thin_x, thin_y = plots.thinned(x, y, points=100)
    assert len(thin_x) == 100 and (thin_x[0], thin_x[-1]) == (0.0, 10_000.0)
    np.testing.assert_array_equal(thin_y, thin_x**2)  # the same positions of every array
    short = np.arange(5.0)
    assert plots.thinned(short, points=100)[0] is short


def test_the_contributions_source_names_the_kept_candidate():
    from pipeline.run.train import contributions_source

    assert contributions_source("lightgbm", 1.0) == "kept model: LightGBM (TreeSHAP)"
    assert contributions_source("logistic", 0.0) == "kept model: logistic regression (linear terms)"
    assert contributions_source("blend", 0.8) == (
        "kept model: blend, 0.8 LightGBM (TreeSHAP) + 0.2 logistic (linear terms)"
    )
