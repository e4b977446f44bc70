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

from pipeline.features.tables import DAY_US
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


def _terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, ...]:
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1, a2, a3, a4


def log_likelihood(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood of (x, t_x, T)."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    a1, a2, a3, a4 = _terms(np.array([params.r, params.alpha, params.a, params.b]), x, t_x, big_t)
    return a1 + a2 + np.logaddexp(a3, a4)


def negative_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
    """Mean negative log-likelihood and its gradient with respect to the log-parameters."""
    params = np.exp(log_params)
    r, alpha, a, b = params
    a1, a2, a3, a4 = _terms(params, x, t_x, T)
    ll = a1 + a2 + np.logaddexp(a3, a4)
    w4 = np.where(x > 0, expit(a4 - a3), 0.0)  # share of the likelihood from "dropped out after t_x"
    w3 = 1.0 - w4
    with np.errstate(divide="ignore", invalid="ignore"):
        d_b4 = np.where(x > 0, -1.0 / (b + x - 1), 0.0)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x)
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) + w4 * d_b4
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
        with np.errstate(all="ignore"):
            result = minimize(negative_log_likelihood, np.zeros(4), args=(x, t_x, big_t), jac=True,
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
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    _, _, a3, a4 = _terms(np.array([params.r, params.alpha, params.a, params.b]), x, t_x, big_t)
    return np.where(x > 0, expit(a3 - a4), 1.0)


def expected_purchases(params: BGNBDParams, horizon, frequency, recency, T) -> np.ndarray:
    """Expected purchases in (T, T + horizon] given (x, t_x, T); NaN where not finite."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # The hypergeometric term depends on (x, T) only: evaluate it once per distinct pair.
    pairs, inverse = np.unique(x + 1j * big_t, return_inverse=True)
    px, pt = pairs.real, pairs.imag
    with np.errstate(all="ignore"):
        z = horizon / (alpha + pt + horizon)
        hyper = hyp2f1(r + px, b + px, a + b + px - 1, z)[inverse.reshape(-1)]
        bracket = 1.0 - ((alpha + big_t) / (alpha + big_t + horizon)) ** (r + x) * hyper
        value = (a + b + x - 1) / (a - 1) * bracket * p_alive(params, x, t_x, big_t)
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
        with np.errstate(all="ignore"):
            alive = p_alive(params, x, t_x, big_t)
            expected = expected_purchases(params, horizon_days / 7.0, x, t_x, big_t)
        alive = np.where(np.isfinite(alive), alive, np.nan)
    return frame.with_columns(
        pl.Series("btyd_p_alive", alive, dtype=pl.Float64),
        pl.Series("btyd_expected_purchases", expected, dtype=pl.Float64),
    )
