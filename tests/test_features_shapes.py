"""Features on real-data shapes (tests/shapes.py) and the purchase-day timing invariants."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import shapes

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import build_features, feature_specs

AS_OF = dt.date(2024, 7, 1)
CFG = FeaturesConfig(snapshots={"dates": [AS_OF]}, lookback_days=365, btyd=True)


@pytest.fixture(scope="module")
def shaped() -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions = shapes.real_shapes(seed=3)
    return transactions, build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=CFG)


def test_generators_make_the_shapes_they_promise():
    burst = shapes.same_day_invoices(seed=1)
    per_day = burst.groupby(["customer_id", burst["ordered_at"].dt.floor("D")])["order_id"].nunique()
    assert per_day.min() >= 2
    returns = shapes.returns_before_history(seed=1)
    first = returns.groupby("customer_id")["amount"].first()
    assert (first < 0).all()
    assert (returns.groupby("customer_id")["amount"].max() < 0).any()  # some only return
    wholesale = shapes.wholesalers(seed=1)
    assert wholesale.groupby("order_id").size().min() >= 50
    mid = shapes.mid_stream(seed=1)
    assert (mid.groupby("customer_id")["ordered_at"].min() < shapes.START + pd.Timedelta(days=7)).all()
    seasonal = shapes.seasonal_buyers(seed=1)
    assert set(seasonal["ordered_at"].dt.month) <= {11, 12}


def test_nothing_breaks_on_real_shapes(shaped):
    transactions, features = shaped
    numeric = [s.name for s in feature_specs(CFG) if s.kind == "numeric"]
    values = features[numeric].to_numpy("float64")
    assert not np.isinf(values).any()
    assert features["overdue_ratio"].notna().all()
    assert (features["overdue_ratio"] <= features["recency_days"] + 1e-9).all()
    for model in ("btyd", "pnbd"):  # each BTYD model either fits or is NaN for everyone, never a constant
        alive = features[f"{model}_p_alive"]
        assert alive.isna().all() or (alive.between(0, 1).all() and alive.std() > 0), model
    assert features["pnbd_p_alive"].notna().all()  # Pareto/NBD fits this mix
    # every eligible customer (a purchase in the last 365 days) has a row
    purchases = transactions[(transactions["amount"] >= 0)
                             & (transactions["ordered_at"] >= pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(days=365))]
    assert set(features["customer_id"]) == set(purchases["customer_id"])


def test_same_day_invoices_are_one_visit(shaped):
    _, features = shaped
    burst = features[features["customer_id"].str.startswith("burst")]
    repeat = burst["gap_mean_days"].notna()
    assert repeat.any()
    assert (burst.loc[repeat, "gap_mean_days"] >= 1).all()
    assert (burst.loc[repeat, "gap_last_days"] >= 1).all()
    assert burst["overdue_ratio"].max() < 1000  # the issue saw 393,632 from gaps of minutes


def test_net_spend_of_returns_before_the_history_may_be_negative(shaped):
    transactions, features = shaped
    returning = features[features["customer_id"].str.startswith("return")].set_index("customer_id")
    net = transactions.groupby("customer_id")["amount"].sum()
    np.testing.assert_allclose(returning["monetary_all"], net[returning.index].round(2), atol=1e-6)
    assert (returning["monetary_all"] < 0).any()
    assert returning["returns_count"].min() >= 1


def _one_customer(offsets_hours: list[int], amounts: list[float]) -> pd.DataFrame:
    t = pd.Timestamp(AS_OF, tz="UTC")
    return pd.DataFrame({
        "order_id": [f"o{i}" for i in range(len(offsets_hours))],
        "customer_id": "a",
        "ordered_at": [t - pd.Timedelta(hours=h) for h in offsets_hours],
        "amount": amounts,
    })


# A history: bursts of orders minutes apart, single orders, gaps of years.
history = st.lists(
    st.tuples(st.integers(1, 3 * 365 * 24), st.integers(1, 6), st.floats(-50, 500)), min_size=1, max_size=12
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=history, b=history)
def test_overdue_ratio_is_finite_and_at_most_recency_for_any_history(a, b):
    def rows(customer, visits):
        hours = [h for h, burst, _ in visits for _ in range(burst)]
        amounts = [x for _, burst, x in visits for _ in range(burst)]
        frame = _one_customer(hours, amounts).assign(customer_id=customer)
        frame["ordered_at"] += pd.to_timedelta([3 * i for _, burst, _ in visits for i in range(burst)], unit="min")
        return frame.assign(order_id=customer + frame["order_id"])

    transactions = pd.concat([rows("a", a), rows("b", b)], ignore_index=True)
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, lookback_days=4 * 365, btyd=False)
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=cfg)
    assert np.isfinite(features["overdue_ratio"]).all()
    assert (features["overdue_ratio"] >= 0).all()
    assert (features["overdue_ratio"] <= features["recency_days"] + 1e-9).all()
    gaps = features["gap_mean_days"].dropna()
    assert (gaps >= 1).all()


def test_shrunk_gap_hand_computed():
    """Population gap = median of the repeat customers' gaps; a customer's gap weighs its gap count, the
    population's PRIOR_GAPS (2)."""
    t = pd.Timestamp(AS_OF, tz="UTC")
    day = pd.Timedelta(days=1)
    transactions = pd.DataFrame({
        "order_id": ["a1", "a2", "a3", "a4", "b1", "b2", "c1", "c1x"],
        "customer_id": ["a", "a", "a", "a", "b", "b", "c", "c"],
        # a: purchase days 40, 30, 20, 10 days before t (3 gaps of 10); b: 100 and 40 days before (1 gap of
        # 60); c: one purchase day (two invoices an hour apart), 5 days before
        "ordered_at": [t - 40 * day, t - 30 * day, t - 20 * day, t - 10 * day, t - 100 * day, t - 40 * day,
                       t - 5 * day, t - 5 * day + pd.Timedelta(hours=1)],
        "amount": 10.0,
    })
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, lookback_days=365, btyd=False)
    features = build_features(Events.from_frames(transactions=transactions), as_of=AS_OF, cfg=cfg).set_index(
        "customer_id")
    population = (10 + 60) / 2
    expected = {
        "a": 10 / ((3 * 10 + 2 * population) / 5),
        "b": 40 / ((1 * 60 + 2 * population) / 3),
        "c": (5 - 1 / 24) / population,
    }
    for customer, value in expected.items():
        assert features.loc[customer, "overdue_ratio"] == pytest.approx(value), customer
    assert features.loc["c", "gap_mean_days"] != features.loc["c", "gap_mean_days"]  # NaN: one purchase day


def test_shape_features_say_what_the_shapes_are(shaped):
    _, features = shaped
    by_shape = features.assign(shape=features["customer_id"].str.split("-").str[0]).groupby("shape")
    assert by_shape["lines_per_order"].min()["wholesale"] >= 50
    assert by_shape["quantity_all"].min()["wholesale"] >= 50 * 50
    assert (by_shape["history_censored"].min()["midstream"]) == 1.0  # all start in the export's first week
    assert by_shape["season_purchase_days_last_year"].max()["seasonal"] == 0  # July-Sept: out of season
    assert by_shape["cancellations_count"].min()["return"] >= 1  # returns of goods bought before the history


def test_windowed_counts_match_a_direct_computation(shaped):
    """Distinct products and purchase days per window, counted directly from the rows before t."""
    transactions, features = shaped
    t = pd.Timestamp(AS_OF, tz="UTC")
    indexed = features.set_index("customer_id")
    bought = transactions[(transactions["amount"] >= 0) & (transactions["ordered_at"] < t)]
    for w in CFG.windows_days:
        recent = bought[bought["ordered_at"] >= t - pd.Timedelta(days=w)]
        if f"products_{w}d" in indexed.columns:
            products = recent.groupby("customer_id")["product_id"].nunique().reindex(indexed.index, fill_value=0)
            np.testing.assert_array_equal(indexed[f"products_{w}d"], products.to_numpy(float))
        days = recent.groupby("customer_id")["ordered_at"].apply(lambda at: at.dt.floor("D").nunique())
        np.testing.assert_array_equal(indexed[f"purchase_days_{w}d"], days.reindex(indexed.index, fill_value=0))
