"""Training plots: the tables behind them by hand, and every figure titled, labelled and with a legend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

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
    assert figure.canvas.print_png  # an Agg canvas: renders without a display


@pytest.mark.parametrize(
    "make",
    [plots.roc_figure, plots.precision_recall_figure, plots.reliability_figure, plots.lift_gain_figure],
)
def test_curve_figures_are_labelled(make):
    figure = make(Y, P, split_name="test")
    _check(figure)
    assert "test snapshot" in figure.axes[0].get_title()


def test_feature_importance_figure_shows_the_top_features():
    importance = pd.Series({"a": 5.0, "b": 1.0, "c": 3.0})
    figure = plots.feature_importance_figure(importance, top=2)
    _check(figure)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["c", "a"]


def test_shap_summary_ranks_features_by_mean_absolute_contribution():
    rng = np.random.default_rng(0)
    contributions = pd.DataFrame({"small": rng.normal(0, 0.1, 50), "big": rng.normal(0, 1.0, 50)})
    values = pd.DataFrame({"small": rng.normal(size=50), "big": np.where(np.arange(50) % 5 == 0, np.nan, 1.0)})
    figure = plots.shap_summary_figure(contributions, values, max_points=30)
    _check(figure)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["small", "big"]  # top of the chart = largest effect
    assert "log-odds" in figure.axes[0].get_xlabel()


def test_thinned_curves_keep_the_ends_and_at_most_the_points_asked():
    x, y = np.arange(10_001, dtype="float64"), np.arange(10_001, dtype="float64") ** 2
    thin_x, thin_y = plots.thinned(x, y, points=100)
    assert len(thin_x) == 100 and (thin_x[0], thin_x[-1]) == (0.0, 10_000.0)
    np.testing.assert_array_equal(thin_y, thin_x**2)  # the same positions of every array
    short = np.arange(5.0)
    assert plots.thinned(short, points=100)[0] is short
