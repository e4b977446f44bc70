"""BG/NBD: published CDNOW parameters, gradient, conditional expectations, and the fallbacks."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import integrate, stats
from scipy.optimize import approx_fprime

from pipeline.config import FeaturesConfig
from pipeline.events import Events
from pipeline.features import btyd, customer_aggregates

# Fader, Hardie & Lee (2005), CDNOW sample, 39-week calibration period.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOG_LIKELIHOOD = -9582.4


@pytest.fixture(scope="module")
def cdnow_summary(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "cdnow" / "cdnow_customers_summary.csv")


def test_fit_reproduces_the_published_cdnow_parameters(cdnow_summary):
    fit = btyd.fit_bgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    assert (fit.status, fit.penalizer) == ("ok", 0.0)
    params = fit.params
    for name, value in PUBLISHED.items():
        assert getattr(params, name) == pytest.approx(value, rel=2e-3), name
    total = btyd.log_likelihood(params, cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]).sum()
    assert total == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.1)


def test_summary_from_transactions_matches_the_published_summary(shared_data, cdnow_summary):
    """Our per-customer (x, t_x, T) from the raw sample file equal the published summary (T: +1 day)."""
    raw = pd.read_csv(shared_data / "cdnow" / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["customer_id", "sample_id", "date", "cds", "amount"], dtype={"date": str})
    transactions = pd.DataFrame({
        "order_id": raw.index.astype(str),
        "customer_id": raw["sample_id"].astype(str),
        "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d", utc=True),
        "amount": raw["amount"].astype(float),
    })
    cfg = FeaturesConfig(snapshots={"dates": [dt.date(1997, 10, 1)]}, lookback_days=400)
    aggregates = customer_aggregates(Events.from_frames(transactions=transactions), as_of=dt.date(1997, 10, 1), cfg=cfg)
    ours = aggregates.assign(ID=aggregates["customer_id"].astype(int)).set_index("ID").sort_index()
    published = cdnow_summary.set_index("ID").sort_index()
    assert len(ours) == len(published) == 2357
    np.testing.assert_array_equal(ours["_btyd_frequency"], published["frequency"])
    np.testing.assert_allclose(ours["_btyd_recency"], published["recency"], atol=0.006)
    # the published T runs to 1997-09-30, ours to the snapshot at midnight starting 1997-10-01
    np.testing.assert_allclose(ours["_btyd_T"], published["T"] + 1 / 7, atol=0.006)
    params = btyd.fit_bgnbd(ours["_btyd_frequency"], ours["_btyd_recency"], ours["_btyd_T"]).params
    for name, value in PUBLISHED.items():
        assert getattr(params, name) == pytest.approx(value, rel=0.03), name


def test_gradient_matches_finite_differences(cdnow_summary):
    x, t_x, big_t = (cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    for point in (np.zeros(4), np.array([0.4, -1.0, 1.2, -0.3])):
        value, gradient = btyd.negative_log_likelihood(point, x, t_x, big_t)
        numeric = approx_fprime(point, lambda p: btyd.negative_log_likelihood(p, x, t_x, big_t)[0], 1e-7)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-6)


def test_expected_purchases_match_the_model_by_numerical_integration():
    """E[X(t) | x, t_x, T] = P(alive) E[(1 - exp(-lambda p t)) / p] over the posterior of (lambda, p).

    Posterior given alive: lambda ~ Gamma(r + x, alpha + T), p ~ Beta(a, b + x); the lambda part is
    integrated in closed form (Gamma Laplace transform), the p part numerically.
    """
    params = btyd.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    x, t_x, big_t, horizon = 2.0, 30.43, 38.86, 39.0
    shape, rate = params.r + x, params.alpha + big_t
    dropout = stats.beta(params.a, params.b + x)
    inner, _ = integrate.quad(
        lambda p: (1 - (rate / (rate + p * horizon)) ** shape) / p * dropout.pdf(p), 0, 1, epsabs=1e-12, epsrel=1e-10
    )
    alive = btyd.p_alive(params, [x], [t_x], [big_t])[0]
    expected = btyd.expected_purchases(params, horizon, [x], [t_x], [big_t])[0]
    assert expected == pytest.approx(alive * inner, rel=1e-6)
    assert 0 < alive < 1


def test_p_alive_is_one_without_repeat_purchases():
    params = btyd.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    assert btyd.p_alive(params, [0.0, 0.0], [0.0, 0.0], [10.0, 50.0]).tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([0.0] * 20, [0.0] * 20, [10.0] * 20, "too few to fit"),  # no repeat purchases
        ([1.0, 2.0], [1.0, 2.0], [5.0, 5.0], "too few to fit"),  # two customers
        ([1.0] * 20, [5.0] * 20, [np.nan] * 20, "not finite"),
    ],
)
def test_fit_failures_return_a_failed_status_naming_the_problem(frequency, recency, T, message):
    fit = btyd.fit_bgnbd(frequency, recency, T)
    assert fit.params is None and fit.status.startswith("failed: ")
    assert message in fit.status


def test_add_features_falls_back_to_nan_when_the_fit_fails(caplog):
    frame = pl.DataFrame({"_btyd_frequency": [0.0] * 12, "_btyd_recency": [0.0] * 12, "_btyd_T": [4.0] * 12})
    with caplog.at_level(logging.INFO, logger="pipeline"):
        result = btyd.add_features(frame, horizon_days=90, as_of=dt.date(2011, 9, 1))
    for column in ("btyd_p_alive", "btyd_expected_purchases", "pnbd_p_alive", "pnbd_expected_purchases"):
        assert result[column].is_nan().all(), column
    # the log names the snapshot, so a log of twelve snapshots says which one failed; the runners warn once
    assert "BTYD at 2011-09-01: BG/NBD failed: " in caplog.text and "its features are NaN" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def _records(*failed: str, fitted: tuple[str, ...] = ()) -> list[dict]:
    """Fit records of the models `failed` (too few repeat buyers) and `fitted`."""
    return ([{"model": model, "outcome": "failed", "status": f"failed: 36 customers, 0 with repeat purchases: too few "
              f"to fit {model}"} for model in failed] + [{"model": model, "outcome": "dropout", "status": "ok"}
                                                          for model in fitted])


def test_failed_fits_are_told_once_for_every_snapshot_with_the_earliest_in_full():
    fits = {"2017-03-01": _records("BG/NBD", "Pareto/NBD"), "2017-01-01": _records("BG/NBD", "Pareto/NBD"),
            "2017-02-01": _records("BG/NBD", fitted=("Pareto/NBD",)), "2017-04-01": _records(fitted=("BG/NBD",))}
    assert btyd.failed_fits_warning(fits) == (
        "BTYD: BG/NBD and Pareto/NBD could not be fitted at 3 of 4 snapshots (BG/NBD at 3, Pareto/NBD at 2; "
        "2017-01-01 to 2017-03-01), and their features are NaN there; at 2017-01-01: BG/NBD failed: 36 customers, "
        "0 with repeat purchases: too few to fit BG/NBD (each failure is logged at info level)")
    assert btyd.failed_fits_warning({"2024-05-01": _records("Pareto/NBD", fitted=("BG/NBD",))}) == (
        "BTYD: Pareto/NBD could not be fitted at the snapshot 2024-05-01, and its features are NaN there; at "
        "2024-05-01: Pareto/NBD failed: 36 customers, 0 with repeat purchases: too few to fit Pareto/NBD")
    assert btyd.failed_fits_warning({"2024-05-01": _records(fitted=("BG/NBD", "Pareto/NBD"))}) is None
    assert btyd.failed_fits_warning({}) is None


def test_a_failure_of_a_fit_on_a_sample_says_it_counted_the_sample(monkeypatch, caplog):
    # The mall shop (10,482 customers, nobody buying twice): "1183 customers, 0 with repeat purchases" read as the
    # snapshot's count, while the BG/NBD warning of the same snapshot said 2,366
    monkeypatch.setattr(btyd, "MAX_PNBD_FIT_CUSTOMERS", 6)
    frame = pl.DataFrame({"_btyd_frequency": [0.0] * 12, "_btyd_recency": [0.0] * 12, "_btyd_T": [4.0] * 12})
    with caplog.at_level(logging.INFO, logger="pipeline"):
        btyd.add_features(frame, horizon_days=90, as_of=dt.date(2011, 9, 1))
    assert ("Pareto/NBD failed: 6 customers, 0 with repeat purchases: too few to fit Pareto/NBD (fitted on one in 2 of "
            "the snapshot's 12 customers)") in caplog.text
    assert "BG/NBD failed: 12 customers, 0 with repeat purchases: too few to fit BG/NBD; its" in caplog.text


PARETO_NBD_PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}  # Fader, Hardie & Lee 2005
PARETO_NBD_PUBLISHED_LOG_LIKELIHOOD = -9595.0


def test_pareto_nbd_fit_reproduces_the_published_cdnow_parameters(cdnow_summary):
    x, t_x, big_t = (cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    fit = btyd.fit_pareto_nbd(x, t_x, big_t)
    assert (fit.status, fit.penalizer) == ("ok", 0.0)
    for name, value in PARETO_NBD_PUBLISHED.items():
        assert getattr(fit.params, name) == pytest.approx(value, rel=2e-3), name
    assert btyd.pnbd_log_likelihood(fit.params, x, t_x, big_t).sum() == pytest.approx(
        PARETO_NBD_PUBLISHED_LOG_LIKELIHOOD, abs=0.1)


def test_pareto_nbd_conditional_values():
    params = btyd.ParetoNBDParams(**PARETO_NBD_PUBLISHED)
    alive = btyd.pnbd_p_alive(params, [0.0, 2.0, 2.0], [0.0, 38.0, 10.0], [38.86, 38.86, 38.86])
    assert 0 < alive[2] < alive[1] < 1  # the same purchases longer ago: less likely alive
    expected = [btyd.pnbd_expected_purchases(params, h, [2.0], [30.43], [38.86])[0] for h in (10.0, 39.0, 80.0)]
    assert 0 < expected[0] < expected[1] < expected[2]
    # the s = 1 limit of (1 - q ** (s - 1)) / (s - 1) is continuous
    at_one = btyd.pnbd_expected_purchases(btyd.ParetoNBDParams(0.553, 10.578, 1.0, 11.669), 39.0, [2.0], [30.4], [38.9])
    near = btyd.pnbd_expected_purchases(btyd.ParetoNBDParams(0.553, 10.578, 1.0 + 1e-6, 11.669), 39.0, [2.0], [30.4],
                                        [38.9])
    assert at_one[0] == pytest.approx(near[0], rel=1e-5)


def homogeneous_rate_summaries(customers: int, *, rate: float, seed: int) -> tuple[np.ndarray, ...]:
    """BG/NBD histories with one purchase rate for everyone (no heterogeneity: r and alpha run to infinity
    unpenalized), dropout probability ~ Beta(1, 4); T uniform in 20-52 weeks."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(20, 52, customers)
    arrivals = np.cumsum(rng.exponential(1 / rate, (customers, 60)), axis=1)
    before_dropout = rng.geometric(rng.beta(1.0, 4.0, customers))  # purchases until (and with) the dropout
    x = np.minimum((arrivals <= big_t[:, None]).sum(axis=1), before_dropout).astype(float)
    t_x = np.where(x > 0, arrivals[np.arange(customers), np.maximum(x.astype(int) - 1, 0)], 0.0)
    return x, t_x, big_t


def test_penalizer_ladder_rescues_a_fit_that_hits_a_bound():
    x, t_x, big_t = homogeneous_rate_summaries(2000, rate=0.3, seed=3)
    unpenalized = minimize_unpenalized(x, t_x, big_t)
    lower, upper = np.array(btyd.LOG_BOUNDS).T
    assert ((unpenalized - lower < btyd.BOUND_TOLERANCE) | (upper - unpenalized < btyd.BOUND_TOLERANCE)).any()
    fit = btyd.fit_bgnbd(x, t_x, big_t)
    assert fit.status == "ok" and fit.penalizer > 0
    assert fit.params.r / fit.params.alpha == pytest.approx(0.3, rel=0.1)  # the mean purchase rate


def minimize_unpenalized(x, t_x, big_t) -> np.ndarray:
    from scipy.optimize import minimize

    data = btyd.Summaries.of(x, t_x, big_t)
    with np.errstate(all="ignore"):
        return minimize(btyd._objective, np.zeros(4), args=(data,), jac=True, method="L-BFGS-B",
                        bounds=btyd.LOG_BOUNDS).x


def test_a_fit_degenerate_at_every_penalizer_fails_with_its_reason_and_nan_features(caplog):
    """Everybody has the same history (a purchase every week, still buying): the unpenalized fit runs to a
    bound, and every penalized one predicts the same for everyone."""
    x = np.full(200, 50.0)
    frame = pl.DataFrame({"_btyd_frequency": x, "_btyd_recency": x, "_btyd_T": np.full(200, 52.0)})
    fit = btyd.fit_bgnbd(x, x, np.full(200, 52.0))
    assert fit.params is None
    assert fit.status.startswith("failed: BG/NBD fit degenerate at every penalizer (penalizer 0: a parameter at its bound")
    with caplog.at_level(logging.INFO, logger="pipeline"):
        result = btyd.add_features(frame, horizon_days=90)
    assert result["btyd_p_alive"].is_nan().all() and result["btyd_expected_purchases"].is_nan().all()
    assert "BG/NBD failed: BG/NBD fit degenerate" in caplog.text


def steady_buyer_summaries(customers: int, *, seed: int) -> tuple[np.ndarray, ...]:
    """Customers who never drop out and whose clock starts before their first observed purchase (as in a
    history that starts mid-stream): purchase rate ~ Gamma(0.8, 10) per week, a Poisson process over T
    uniform in 10-52 weeks, x = purchases - 1, t_x = the last purchase. Steadier than any dropout model expects."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(10, 52, customers)
    purchases = rng.poisson(rng.gamma(0.8, 1 / 10.0, customers) * big_t)
    # The last of n uniform arrival times on [0, T] is T * U^(1/n).
    t_x = np.where(purchases > 0, big_t * rng.uniform(size=customers) ** (1 / np.maximum(purchases, 1)), 0.0)
    return np.maximum(purchases - 1, 0).astype(float), t_x, big_t


def test_a_bgnbd_fit_whose_dropout_runs_to_zero_is_kept_as_the_nbd_limit():
    """On these histories BG/NBD's b runs to its upper bound (a near 0): the dropout rate is zero, the NBD
    model, kept as lifetimes keeps a ~ 0; before, it was a failure and the baseline was lost."""
    fit = btyd.fit_bgnbd(*steady_buyer_summaries(3000, seed=2))
    assert fit.status == "ok" and fit.note == btyd.NO_DROPOUT_NOTE and fit.penalizer == 0.0
    assert fit.params.b == pytest.approx(1e3) and fit.params.a < 1e-3


def homogeneous_dropout_summaries(customers: int, *, seed: int, dropout: float) -> tuple[np.ndarray, ...]:
    """BG/NBD histories in which every customer drops out with the same probability `dropout` after each
    repeat purchase: purchase rate ~ Gamma(2, 4) per week, T uniform in 20-78 weeks, N ~ Poisson(rate T)
    possible purchases, x = min(N, Geometric(dropout)), t_x the x-th of N uniform arrivals (T Beta(x, N-x+1))."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(20, 78, customers)
    possible = rng.poisson(rng.gamma(2.0, 1 / 4.0, customers) * big_t)
    x = np.minimum(possible, rng.geometric(dropout, customers)).astype(float)
    t_x = np.where(x > 0, big_t * rng.beta(np.maximum(x, 1), possible - x + 1), 0.0)
    return x, t_x, big_t


def test_a_fit_on_the_bound_with_the_same_dropout_for_everyone_is_not_called_no_dropout():
    """With one dropout probability (3%) for everyone, BG/NBD's a and b grow together (a/(a+b) ~ 0.03) until b
    meets its bound: the bound rule keeps it as a limit, and the note said "no dropout found ... P(alive) near
    1 for everyone" while P(alive) went down to 0 (an Online-Retail-shaped export's 2010-05-01 snapshot)."""
    x, t_x, big_t = homogeneous_dropout_summaries(2000, seed=1, dropout=0.03)
    fit = btyd.fit_bgnbd(x, t_x, big_t)
    assert fit.status == "ok" and fit.params.b == pytest.approx(1e3) and 1 < fit.params.a < 1e3
    alive = btyd.p_alive(fit.params, x, t_x, big_t)
    assert alive.min() < 0.01
    assert fit.note == ("dropout the same for every customer (a 3.0% chance to drop out after each repeat purchase; "
                        f"the dropout pair ends on its bound): P(alive) from 0.00 to 1.00, median {np.median(alive):.2f}")


def test_the_limit_note_says_no_dropout_only_when_every_p_alive_is_near_one():
    assert btyd.limit_note(np.array([0.95, 0.99, 1.0, np.nan]), dropout="d") == btyd.NO_DROPOUT_NOTE
    assert btyd.limit_note(np.array([0.2, 0.5, 0.9, np.nan]), dropout="a 3.0% chance") == (
        "dropout the same for every customer (a 3.0% chance; the dropout pair ends on its bound): "
        "P(alive) from 0.20 to 0.90, median 0.50")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fit_model", [btyd.fit_bgnbd, btyd.fit_pareto_nbd])
def test_fits_without_dropout_predict_as_the_nbd_model(fit_model, seed):
    """Whether the flat dropout direction ends on a bound or not, the fit is kept and predicts as the NBD:
    P(alive) near 1 and expected purchases over t weeks (r + x) / (alpha + T) * t."""
    x, t_x, big_t = steady_buyer_summaries(3000, seed=seed)
    fit = fit_model(x, t_x, big_t)
    assert fit.status == "ok"
    nbd = (fit.params.r + x) / (fit.params.alpha + big_t) * 13.0
    bgnbd = fit_model is btyd.fit_bgnbd
    expected = (btyd.expected_purchases if bgnbd else btyd.pnbd_expected_purchases)(fit.params, 13.0, x, t_x, big_t)
    np.testing.assert_allclose(expected, nbd, rtol=0.02)
    assert (btyd.p_alive if bgnbd else btyd.pnbd_p_alive)(fit.params, x, t_x, big_t).min() > 0.95


def test_ordinary_fits_have_no_note(cdnow_summary):
    fit = btyd.fit_bgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    assert fit.status == "ok" and fit.note == ""


@pytest.mark.parametrize(
    ("lower", "upper", "limit"),
    [
        ([0, 0, 1, 0], [0, 0, 0, 0], True),  # dropout shape to 0
        ([0, 0, 0, 0], [0, 0, 0, 1], True),  # dropout scale to infinity
        ([0, 0, 1, 0], [0, 0, 0, 1], True),
        ([0, 0, 0, 0], [0, 0, 1, 1], False),  # a and b both run away: homogeneous dropout, not a limit
        ([0, 0, 1, 0], [1, 0, 0, 0], False),  # the purchase-rate pair on a bound too
        ([0, 1, 1, 0], [0, 0, 0, 0], False),
        ([0, 0, 0, 1], [0, 0, 0, 0], False),  # dropout scale to 0: many dropouts, not the limit
    ],
)
def test_no_dropout_limit_is_only_the_dropout_pair_toward_zero(lower, upper, limit):
    assert btyd.no_dropout_limit(np.array(lower, bool), np.array(upper, bool)) is limit


def test_distinct_pairs_give_each_row_its_own_pair():
    first = np.array([1.0, 0.0, 1.0, 2.0, 1.0, np.nan, np.nan])
    second = np.array([3.0, 3.0, 3.0, 0.5, 0.5, 1.0, 1.0])
    values_first, values_second, inverse = btyd.distinct_pairs(first, second)
    # pairs in order of first appearance: (1, 3), (0, 3), (2, .5), (1, .5), (nan, 1)
    np.testing.assert_array_equal(values_first, [1.0, 0.0, 2.0, 1.0, np.nan])
    np.testing.assert_array_equal(values_second, [3.0, 3.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2, 3, 4, 4])
    empty = btyd.distinct_pairs(np.array([]), np.array([]))
    assert [len(a) for a in empty] == [0, 0, 0]


def test_p_alive_from_distinct_pairs_is_the_same_float_for_every_customer():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 500).astype(float)
    big_t = rng.integers(1, 60, 500) / 7.0
    t_x = np.where(x > 0, np.floor(rng.uniform(0, 1, 500) * big_t * 7) / 7.0, 0.0)
    params = btyd.BGNBDParams(r=0.24, alpha=4.4, a=0.79, b=2.4)
    paired = btyd._paired_p_alive(params, btyd.PairedSummaries.of(x, t_x, big_t))
    np.testing.assert_array_equal(paired, btyd.p_alive(params, x, t_x, big_t))


@pytest.mark.parametrize("summaries, outcome", [
    (lambda: steady_buyer_summaries(3000, seed=2), "no_dropout"),
    (lambda: homogeneous_dropout_summaries(2000, seed=1, dropout=0.03), "same_dropout"),
    (lambda: homogeneous_rate_summaries(2000, rate=0.3, seed=3), "dropout"),
    (lambda: (np.zeros(12), np.zeros(12), np.full(12, 4.0)), "failed"),
])
def test_the_fit_records_say_what_each_fit_found_and_which_features_it_gives(summaries, outcome):
    """The records a drift check compares across snapshots: BG/NBD's outcome per kind of history (the NBD limit on
    steady buyers, the dropout bound with one dropout rate, an inner fit, a failure), the same features as
    add_features."""
    x, t_x, big_t = summaries()
    frame = pl.DataFrame({"_btyd_frequency": x, "_btyd_recency": t_x, "_btyd_T": big_t})
    features, fits = btyd.add_features_and_fits(frame, horizon_days=90)
    assert features.equals(btyd.add_features(frame, horizon_days=90))
    assert [fit["model"] for fit in fits] == ["BG/NBD", "Pareto/NBD"]
    assert [fit["features"] for fit in fits] == [["btyd_p_alive", "btyd_expected_purchases"],
                                                 ["pnbd_p_alive", "pnbd_expected_purchases"]]
    bgnbd = btyd.fit_bgnbd(x, t_x, big_t)
    assert fits[0] == {"model": "BG/NBD", "features": ["btyd_p_alive", "btyd_expected_purchases"], "outcome": outcome,
                       "status": bgnbd.status, "note": bgnbd.note}
    assert outcome in btyd.FIT_OUTCOMES
