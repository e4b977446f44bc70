"""Optional BTYD family: BG/NBD (Fader, Hardie & Lee 2005) expected purchases and P(alive).

Per customer (a per-customer step, `summary_columns`): the repeat-purchase summary of the
purchases before `t`, in weeks, with purchases aggregated per UTC day:
- `_btyd_frequency` x: number of distinct purchase days minus one,
- `_btyd_recency` t_x: weeks from the first to the last purchase day,
- `_btyd_T` T: weeks from the first purchase day to `t`.

Population step (`add_features`): BG/NBD is fitted by maximum likelihood on the summaries of all
customers with a purchase before `t` (no labels are used), on at most `MAX_FIT_CUSTOMERS` of them
(every k-th in customer_id order, deterministic), then gives each customer
- `btyd_p_alive`: the probability the customer is still "alive" (has not dropped out) at `t`,
- `btyd_expected_purchases`: expected purchase days in `[t, t + horizon_days)`.
When the fit fails (too few customers, no repeat purchases, no convergence, a parameter at its
bound, non-finite values) both features are NaN for everyone and a warning is logged; a customer
whose own values are not finite gets NaN. The fit never raises.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

from pipeline.features.timeline import DAY_US
from pipeline.progress import get_logger
from pipeline.snapshot import snapshot_time

WEEK_US = 7 * DAY_US
MAX_FIT_CUSTOMERS = 20_000
# Bounds on the log of each parameter (r, alpha, a, b): a fit that ends on one is degenerate
# (e.g. no heterogeneity in purchase rates) and is not used.
LOG_BOUNDS = [(np.log(1e-4), np.log(1e3)), (np.log(1e-4), np.log(1e5)),
              (np.log(1e-4), np.log(1e3)), (np.log(1e-4), np.log(1e3))]
MAX_ITERATIONS = 200
MIN_FIT_CUSTOMERS = 10


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class Summaries:
    """Repeat-purchase summaries (x, t_x, T) with their distinct values: the special functions of the
    likelihood are evaluated once per distinct value and gathered (the same floats, far fewer calls)."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    distinct: tuple[tuple[np.ndarray, np.ndarray], ...]  # (values, inverse) of x, t_x, T

    @classmethod
    def of(cls, frequency, recency, T, *, distinct: bool = True) -> Summaries:
        """Summaries of the arrays; `distinct=False` skips finding distinct values (each value is its own,
        cheaper when the special functions are evaluated once only, as for P(alive) of every customer)."""
        arrays = tuple(np.asarray(v, dtype=float) for v in (frequency, recency, T))
        if not distinct:
            return cls(*arrays, distinct=tuple((a, np.arange(len(a))) for a in arrays))
        found = tuple(tuple(np.unique(a, return_inverse=True)) for a in arrays)
        return cls(*arrays, distinct=tuple((values, inverse.reshape(-1)) for values, inverse in found))

    def of_x(self, values: np.ndarray) -> np.ndarray:
        """`values` computed on the distinct x, per customer."""
        return values[self.distinct[0][1]]


def _terms(params: np.ndarray, data: Summaries) -> tuple[np.ndarray, ...]:
    """The four log-likelihood terms per customer, plus r + x, log(alpha + T), log(alpha + t_x)."""
    r, alpha, a, b = params
    ux = data.distinct[0][0]
    a1 = data.of_x(gammaln(r + ux) - gammaln(r) + r * np.log(alpha))
    a2 = data.of_x(gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux))
    return (a1, a2, *_dropout_terms(params, data))


def _dropout_terms(params: np.ndarray, data: Summaries) -> tuple[np.ndarray, ...]:
    """Terms a3, a4 of the log-likelihood (alive at T / dropped out after t_x), r + x, log(alpha + T),
    log(alpha + t_x)."""
    r, alpha, a, b = params
    (ux, _), (ut_x, it_x), (uT, iT) = data.distinct
    r_x = data.of_x(r + ux)
    log_alpha_T = np.log(alpha + uT)[iT]
    log_alpha_t_x = np.log(alpha + ut_x)[it_x]
    a3 = -r_x * log_alpha_T
    repeat = data.x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, data.of_x(np.log(a) - np.log(b + ux - 1)) - r_x * log_alpha_t_x, -np.inf)
    return a3, a4, r_x, log_alpha_T, log_alpha_t_x


def log_likelihood(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood of (x, t_x, T)."""
    terms = _terms(np.array([params.r, params.alpha, params.a, params.b]), Summaries.of(frequency, recency, T))
    a1, a2, a3, a4 = terms[:4]
    return a1 + a2 + np.logaddexp(a3, a4)


def negative_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
    """Mean negative log-likelihood and its gradient with respect to the log-parameters."""
    return _objective(log_params, Summaries.of(x, t_x, T))


def _objective(log_params: np.ndarray, data: Summaries):
    params = np.exp(log_params)
    r, alpha, a, b = params
    a1, a2, a3, a4, r_x, log_alpha_T, log_alpha_t_x = _terms(params, data)
    ux = data.distinct[0][0]
    ll = a1 + a2 + np.logaddexp(a3, a4)
    repeat = data.x > 0
    w4 = np.where(repeat, expit(a4 - a3), 0.0)  # share of the likelihood from "dropped out after t_x"
    w3 = 1.0 - w4
    with np.errstate(divide="ignore", invalid="ignore"):
        d_b4 = data.of_x(np.where(ux > 0, -1.0 / (b + ux - 1), 0.0))
    d_r = data.of_x(digamma(r + ux) - digamma(r) + np.log(alpha)) - w3 * log_alpha_T - w4 * log_alpha_t_x
    x_T, x_t_x = alpha + data.distinct[2][0], alpha + data.distinct[1][0]
    d_alpha = r / alpha - w3 * r_x / x_T[data.distinct[2][1]] - w4 * r_x / x_t_x[data.distinct[1][1]]
    d_a = data.of_x(digamma(a + b) - digamma(a + b + ux)) + w4 / a
    d_b = data.of_x(digamma(a + b) + digamma(b + ux) - digamma(b) - digamma(a + b + ux)) + w4 * d_b4
    gradient = np.array([d_r.mean(), d_alpha.mean(), d_a.mean(), d_b.mean()]) * params
    return -ll.mean(), -gradient


def fit_bgnbd(frequency, recency, T) -> BGNBDParams | None:
    """Maximum-likelihood BG/NBD fit on (x, t_x, T) arrays; None (and a warning) when it fails."""
    log = get_logger()
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    if len(x) == 0:  # an empty snapshot: nothing to fit, nothing to warn about
        return None
    if len(x) < MIN_FIT_CUSTOMERS or not (x > 0).any():
        log.warning("BTYD: %d customers, %d with repeat purchases: too few to fit BG/NBD; btyd features are NaN",
                    len(x), int((x > 0).sum()))
        return None
    try:
        # Four parameters: BLAS threads only add start-up cost (about 0.1 s per fit on 2 cores).
        with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
            result = minimize(_objective, np.zeros(4), args=(Summaries.of(x, t_x, big_t),), jac=True,
                              method="L-BFGS-B", bounds=LOG_BOUNDS, options={"maxiter": MAX_ITERATIONS})
    except (ValueError, FloatingPointError, ArithmeticError) as exc:  # scipy raises ValueError on NaN input
        log.warning("BTYD: BG/NBD fit failed (%s); btyd features are NaN", exc)
        return None
    lower, upper = np.array(LOG_BOUNDS).T
    at_bound = np.isclose(result.x, lower, atol=1e-6) | np.isclose(result.x, upper, atol=1e-6)
    if not result.success or not np.isfinite(result.fun) or not np.isfinite(result.x).all() or at_bound.any():
        log.warning("BTYD: BG/NBD fit did not converge (%s%s); btyd features are NaN",
                    result.message, ", a parameter at its bound" if at_bound.any() else "")
        return None
    r, alpha, a, b = np.exp(result.x)
    return BGNBDParams(r=float(r), alpha=float(alpha), a=float(a), b=float(b))


def p_alive(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T); 1 for customers without repeat purchases."""
    return _p_alive(params, Summaries.of(frequency, recency, T))


def _p_alive(params: BGNBDParams, data: Summaries) -> np.ndarray:
    a3, a4 = _dropout_terms(np.array([params.r, params.alpha, params.a, params.b]), data)[:2]
    return np.where(data.x > 0, expit(a3 - a4), 1.0)


def expected_purchases(params: BGNBDParams, horizon, frequency, recency, T) -> np.ndarray:
    """Expected purchases in (T, T + horizon] given (x, t_x, T); NaN where not finite."""
    return _expected_purchases(params, horizon, Summaries.of(frequency, recency, T))


def _expected_purchases(params: BGNBDParams, horizon, data: Summaries, alive: np.ndarray | None = None) -> np.ndarray:
    x, big_t = data.x, data.T
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # The hypergeometric term depends on (x, T) only: evaluate it once per distinct pair.
    pairs, inverse = np.unique(x + 1j * big_t, return_inverse=True)
    px, pt = pairs.real, pairs.imag
    with np.errstate(all="ignore"):
        z = horizon / (alpha + pt + horizon)
        hyper = hyp2f1(r + px, b + px, a + b + px - 1, z)[inverse.reshape(-1)]
        bracket = 1.0 - ((alpha + big_t) / (alpha + big_t + horizon)) ** (r + x) * hyper
        value = (a + b + x - 1) / (a - 1) * bracket * (_p_alive(params, data) if alive is None else alive)
    return np.where(np.isfinite(value), value, np.nan)


def summary_columns(*, as_of: dt.date) -> list[pl.Expr]:
    """Per-customer BG/NBD summary in weeks from the order aggregates (see module docstring)."""
    t = snapshot_time(as_of)
    first_day = pl.col("_first_purchase_at").dt.truncate("1d")
    last_day = pl.col("_last_purchase_at").dt.truncate("1d")
    return [
        (pl.col("_purchase_days") - 1).cast(pl.Float64).alias("_btyd_frequency"),
        ((last_day - first_day).dt.total_microseconds() / WEEK_US).alias("_btyd_recency"),
        ((pl.lit(t) - first_day).dt.total_microseconds() / WEEK_US).alias("_btyd_T"),
    ]


def add_features(frame: pl.DataFrame, *, horizon_days: int) -> pl.DataFrame:
    """Fit on every row of `frame` (sorted by customer_id) and add btyd_p_alive, btyd_expected_purchases."""
    x, t_x, big_t = (frame[c].to_numpy().astype(float) for c in ("_btyd_frequency", "_btyd_recency", "_btyd_T"))
    step = max(1, -(-len(x) // MAX_FIT_CUSTOMERS))
    params = fit_bgnbd(x[::step], t_x[::step], big_t[::step])
    if params is None:
        alive = expected = np.full(len(x), np.nan)
    else:
        get_logger().debug("BTYD: BG/NBD r=%.3f alpha=%.3f a=%.3f b=%.3f", params.r, params.alpha, params.a, params.b)
        data = Summaries.of(x, t_x, big_t, distinct=False)
        with np.errstate(all="ignore"):
            alive = _p_alive(params, data)
            expected = _expected_purchases(params, horizon_days / 7.0, data, alive)
        alive = np.where(np.isfinite(alive), alive, np.nan)
    return frame.with_columns(
        pl.Series("btyd_p_alive", alive, dtype=pl.Float64),
        pl.Series("btyd_expected_purchases", expected, dtype=pl.Float64),
    )
