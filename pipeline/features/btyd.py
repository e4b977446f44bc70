"""Optional BTYD family: BG/NBD (Fader, Hardie & Lee 2005) and Pareto/NBD (Schmittlein, Morrison &
Colombo 1987) expected purchases and P(alive).

Per customer (a per-customer step, `summary_columns`): the repeat-purchase summary of the
purchases before `t`, in weeks, with purchases aggregated per day (of the business time zone):
- `_btyd_frequency` x: number of distinct purchase days minus one,
- `_btyd_recency` t_x: weeks from the first to the last purchase day,
- `_btyd_T` T: weeks from the first purchase day to `t`.

Population step (`add_features`): each model is fitted by maximum likelihood on the summaries of
all customers with a purchase before `t` (no labels are used), on at most `MAX_FIT_CUSTOMERS` of
them for BG/NBD, `MAX_PNBD_FIT_CUSTOMERS` for Pareto/NBD (every k-th in customer_id order,
deterministic), then gives each customer
- `btyd_p_alive` / `pnbd_p_alive`: the probability the customer is still "alive" at `t`,
- `btyd_expected_purchases` / `pnbd_expected_purchases`: expected purchase days in `[t, t + horizon_days)`.

Robust fitting (`fit_bgnbd`, `fit_pareto_nbd`): a penalizer ladder as lifetimes' `penalizer_coef`:
the mean negative log-likelihood plus `penalizer * sum(params ** 2)`, with time rescaled so that the
largest T is 1 (so the rate parameters are on the scale of the others). The ladder tries
PENALIZERS in order and keeps the first fit that is not degenerate. Degenerate: the optimiser
failed, the likelihood or a parameter is not finite, a parameter ends on its bound, or the
predictions are (nearly) constant over the customers. One boundary is a limit of the model, not a
degenerate fit: when the data show no dropout, the dropout pair runs toward a zero dropout rate
(BG/NBD: a to its lower or b to its upper bound; Pareto/NBD: s to its lower or beta to its upper
bound), and the other parameter of the pair is then not identified. Such a fit is kept as the
no-dropout (NBD) limit, as lifetimes keeps a ~ 0, provided the purchase-rate pair (r, alpha) is
inside its bounds: everyone is then alive (P(alive) ~ 1) and expected purchases follow the NBD model.
The same bound is also where a fit stops whose dropout is the same for every customer (BG/NBD's a and b
both growing with a/(a+b) fixed, Pareto/NBD's s and beta with s/beta fixed): dropout is not zero there.
Such a fit is kept too, and its note says which of the two it is from the fitted customers' P(alive)
(`limit_note`): the NBD limit only when every one of them is near 1.
A fit returns a `Fit` with a `status`: "ok" or "failed: <reason>", and a `note` for the limit. A model that cannot be fitted is never scored as a constant: its
features are NaN for everyone and a warning names the reason; a customer whose own values are not
finite gets NaN. The fit never raises.

What each fit found is also kept as data (`fit_record`, from `add_features_and_fits`): the model, the features
it gives and its `outcome` (FIT_OUTCOMES: no dropout, the same dropout for everyone, dropout, failed). The
features stage stores it with each snapshot and the training bundle with its test snapshot, so that a drift
check can tell features that moved because the fit landed elsewhere (the NBD limit at one snapshot and not at
the other) from features that moved with the customers.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

from pipeline.features.timeline import DAY_US
from pipeline.progress import get_logger
from pipeline.snapshot import snapshot_time

MAX_FIT_CUSTOMERS = 20_000
# Pareto/NBD's likelihood needs a hypergeometric function per distinct (x, t_x) and (x, T) pair and a
# numerical gradient: it is fitted on fewer customers (every k-th), which keeps each snapshot fast.
MAX_PNBD_FIT_CUSTOMERS = 2_000
# Bounds on the log of each parameter (r, alpha, a, b), alpha in weeks: a fit that ends on one is
# degenerate (e.g. no heterogeneity in purchase rates) and is not used.
LOG_BOUNDS = [(np.log(1e-4), np.log(1e3)), (np.log(1e-4), np.log(1e5)),
              (np.log(1e-4), np.log(1e3)), (np.log(1e-4), np.log(1e3))]
# Pareto/NBD (r, alpha, s, beta), alpha and beta in units of the largest T (see `fit_pareto_nbd`).
PNBD_LOG_BOUNDS = [(np.log(1e-4), np.log(1e3)), (np.log(1e-5), np.log(1e3)),
                   (np.log(1e-4), np.log(1e3)), (np.log(1e-5), np.log(1e3))]
MAX_ITERATIONS = 200
MIN_FIT_CUSTOMERS = 10
# The penalizer ladder: lifetimes' penalizer_coef values, tried in order until a fit is not degenerate.
PENALIZERS = (0.0, 0.001, 0.01, 0.1)
# A log-parameter closer than this to its bound (5%) counts as on the bound.
BOUND_TOLERANCE = 0.05
# Predictions whose spread (max - min) over the fitted customers is below this are "constant".
CONSTANT_SPREAD = 1e-6
OK = "ok"


@dataclass(frozen=True)
class Fit:
    """Result of a robust fit: `params` (None when it failed), `status` ("ok" or "failed: <reason>"), the
    `penalizer` of the ladder rung that was kept (None when it failed) and a `note` when the fit is the
    no-dropout limit (see the module docstring)."""

    params: BGNBDParams | ParetoNBDParams | None
    status: str
    penalizer: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.params is not None


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class ParetoNBDParams:
    """Pareto/NBD parameters (time in weeks): purchase rate ~ Gamma(r, alpha), dropout rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float


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


def negative_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                            *, penalizer: float = 0.0):
    """Mean negative log-likelihood (plus the penalty) and its gradient with respect to the log-parameters."""
    return _objective(log_params, Summaries.of(x, t_x, T), penalizer, 1.0 / float(np.max(T)))


def _objective(log_params: np.ndarray, data: Summaries, penalizer: float = 0.0, scale: float = 1.0):
    """Mean negative log-likelihood + penalizer * sum((r, alpha * scale, a, b) ** 2) and its gradient."""
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
    scaled = params * np.array([1.0, scale, 1.0, 1.0])
    return -ll.mean() + penalizer * np.sum(scaled**2), -gradient + 2.0 * penalizer * scaled**2


def _check_summaries(name: str, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> str | None:
    """Why (x, t_x, T) cannot be fitted, or None."""
    if len(x) < MIN_FIT_CUSTOMERS or not (x > 0).any():
        return f"{len(x)} customers, {int((x > 0).sum())} with repeat purchases: too few to fit {name}"
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(big_t).all()) or not (big_t > 0).any():
        return "the purchase summaries are not finite"
    return None


# Positions of the dropout pair (BG/NBD's (a, b), Pareto/NBD's (s, beta)) among the four log-parameters.
DROPOUT_SHAPE, DROPOUT_SCALE = 2, 3
NO_DROPOUT_NOTE = "no dropout found: the fit is the NBD limit (P(alive) near 1 for everyone)"
# Lowest P(alive) of the fitted customers for a fit on the dropout bound to be the no-dropout limit.
ALIVE_NEAR_ONE = 0.95


def limit_note(alive: np.ndarray, *, dropout: str) -> str:
    """The note of a fit kept on the dropout pair's bound, from the fitted customers' P(alive): the NBD limit
    when every one is at least ALIVE_NEAR_ONE, else dropout the same for every customer (`dropout` says how
    much) with the range of P(alive)."""
    alive = alive[np.isfinite(alive)]
    if not len(alive) or alive.min() >= ALIVE_NEAR_ONE:
        return NO_DROPOUT_NOTE
    return (f"dropout the same for every customer ({dropout}; the dropout pair ends on its bound): "
            f"P(alive) from {alive.min():.2f} to {alive.max():.2f}, median {np.median(alive):.2f}")


def no_dropout_limit(at_lower: np.ndarray, at_upper: np.ndarray) -> bool:
    """True when only the dropout pair is on a bound, in the direction of a zero dropout rate: its shape on
    the lower or its scale (b, beta) on the upper bound, and the shape not on its upper bound."""
    purchase_pair_inside = not (at_lower[:DROPOUT_SHAPE].any() or at_upper[:DROPOUT_SHAPE].any())
    toward_zero = bool(at_lower[DROPOUT_SHAPE] or at_upper[DROPOUT_SCALE])
    return purchase_pair_inside and toward_zero and not at_upper[DROPOUT_SHAPE]


def _fit_ladder(name: str, objective, data, bounds, predict, *, jac: bool) -> Fit:
    """Minimise `objective(log_params, data, penalizer)` for each rung of PENALIZERS; keep the first fit that is
    not degenerate, or is the no-dropout limit (see the module docstring). `predict(log_params)` -> predictions
    over the fitted customers."""
    lower, upper = np.array(bounds).T
    reasons = []
    for penalizer in PENALIZERS:
        try:
            # Four parameters: BLAS threads only add start-up cost (about 0.1 s per fit on 2 cores).
            with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
                result = minimize(objective, np.zeros(len(bounds)), args=(data, penalizer), jac=jac,
                                  method="L-BFGS-B", bounds=bounds, options={"maxiter": MAX_ITERATIONS})
                predictions = predict(result.x) if np.isfinite(result.x).all() else np.array([np.nan])
        except (ValueError, FloatingPointError, ArithmeticError) as exc:  # scipy raises ValueError on NaN input
            reasons.append(f"error {exc}")
            continue
        at_lower, at_upper = result.x - lower < BOUND_TOLERANCE, upper - result.x < BOUND_TOLERANCE
        limit = bool((at_lower | at_upper).any()) and no_dropout_limit(at_lower, at_upper)
        if not np.isfinite(result.fun) or not np.isfinite(result.x).all():
            reasons.append("non-finite likelihood")
        elif (at_lower | at_upper).any() and not limit:
            reasons.append("a parameter at its bound")
        elif not result.success:
            reasons.append(f"no convergence ({result.message})")
        elif not np.isfinite(predictions).all():
            reasons.append("non-finite predictions")
        elif np.ptp(predictions) < CONSTANT_SPREAD:
            reasons.append("constant predictions")
        else:
            return Fit(params=result.x, status=OK, penalizer=penalizer, note=NO_DROPOUT_NOTE if limit else "")
    ladder = "; ".join(f"penalizer {p:g}: {r}" for p, r in zip(PENALIZERS, reasons, strict=False))
    return Fit(params=None, status=f"failed: {name} fit degenerate at every penalizer ({ladder})")


def fit_bgnbd(frequency, recency, T) -> Fit:
    """Robust maximum-likelihood BG/NBD fit on (x, t_x, T) arrays (weeks): `Fit` with BGNBDParams or a failure
    status (and a warning)."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    if len(x) == 0:  # an empty snapshot: nothing to fit, nothing to warn about
        return Fit(params=None, status="failed: no customers")
    problem = _check_summaries("BG/NBD", x, t_x, big_t)
    if problem:
        return Fit(params=None, status=f"failed: {problem}")
    data = Summaries.of(x, t_x, big_t)
    scale = 1.0 / float(big_t.max())

    def predict(log_params):
        r, alpha, a, b = np.exp(log_params)
        return _expected_purchases(BGNBDParams(r, alpha, a, b), 1.0 / scale, data)

    fit = _fit_ladder("BG/NBD", lambda lp, d, pen: _objective(lp, d, pen, scale), data, LOG_BOUNDS, predict, jac=True)
    if not fit.ok:
        return fit
    r, alpha, a, b = np.exp(fit.params)
    params = BGNBDParams(r=float(r), alpha=float(alpha), a=float(a), b=float(b))
    note = fit.note
    if note:
        dropout = f"a {a / (a + b):.1%} chance to drop out after each repeat purchase"
        note = limit_note(_p_alive(params, data), dropout=dropout)
    return Fit(params=params, status=OK, penalizer=fit.penalizer, note=note)


def p_alive(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T); 1 for customers without repeat purchases."""
    return _p_alive(params, Summaries.of(frequency, recency, T))


def _p_alive(params: BGNBDParams, data: Summaries) -> np.ndarray:
    a3, a4 = _dropout_terms(np.array([params.r, params.alpha, params.a, params.b]), data)[:2]
    return np.where(data.x > 0, expit(a3 - a4), 1.0)


def _paired_p_alive(params: BGNBDParams, data: PairedSummaries) -> np.ndarray:
    """`_p_alive` with a3 computed once per distinct (x, T) pair and a4 once per (x, t_x) pair (the same floats)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    (x_tx, tx, at_tx), (x_T, pair_T, at_T) = data.pairs
    a3 = (-(r + x_T) * np.log(alpha + pair_T))[at_T]
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x_tx > 0, np.log(a) - np.log(b + x_tx - 1) - (r + x_tx) * np.log(alpha + tx), -np.inf)[at_tx]
    return np.where(data.x > 0, expit(a3 - a4), 1.0)


def expected_purchases(params: BGNBDParams, horizon, frequency, recency, T) -> np.ndarray:
    """Expected purchases in (T, T + horizon] given (x, t_x, T); NaN where not finite."""
    return _expected_purchases(params, horizon, Summaries.of(frequency, recency, T))


def _expected_purchases(params: BGNBDParams, horizon, data: Summaries, alive: np.ndarray | None = None,
                        pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """`pairs`: `distinct_pairs(x, T)` when known."""
    x, big_t = data.x, data.T
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # The hypergeometric term depends on (x, T) only: evaluate it once per distinct pair.
    px, pt, inverse = distinct_pairs(x, big_t) if pairs is None else pairs
    with np.errstate(all="ignore"):
        z = horizon / (alpha + pt + horizon)
        hyper = hyp2f1(r + px, b + px, a + b + px - 1, z)[inverse]
        bracket = 1.0 - ((alpha + big_t) / (alpha + big_t + horizon)) ** (r + x) * hyper
        value = (a + b + x - 1) / (a - 1) * bracket * (_p_alive(params, data) if alive is None else alive)
    return np.where(np.isfinite(value), value, np.nan)


def distinct_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (first, second) pairs of two float arrays, in order of first appearance, and the index of
    each row's pair: (first values, second values, inverse). Hash-based (no sort: 4x faster than np.unique of
    complex numbers on 500,000 rows); NaN is a value like any other."""
    first_codes, first_values = pd.factorize(first, use_na_sentinel=False)
    second_codes, second_values = pd.factorize(second, use_na_sentinel=False)
    width = max(len(second_values), 1)
    inverse, pairs = pd.factorize(first_codes.astype(np.int64) * width + second_codes, use_na_sentinel=False)
    return first_values[pairs // width], second_values[pairs % width], inverse.astype(np.int64)


# --- Pareto/NBD --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedSummaries:
    """(x, t_x, T) with the distinct (x, t_x) and (x, T) pairs: the hypergeometric terms of Pareto/NBD are
    evaluated once per distinct pair and gathered (found once per fit, not per likelihood evaluation)."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    pairs: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # (x, time, inverse) of (x, t_x) and (x, T)

    @classmethod
    def of(cls, frequency, recency, T) -> PairedSummaries:
        x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        return cls(x, t_x, big_t, tuple(distinct_pairs(x, time) for time in (t_x, big_t)))


def _pnbd_terms(params, data: PairedSummaries, *, constant: bool = True) -> tuple[np.ndarray | None, ...]:
    """Per customer: log of the constant part A1 (None unless `constant`), of "alive at T" and of "dropped out
    in (t_x, T]" (Fader & Hardie's note 009, equations 18-20). Whatever depends on (x, t_x) or (x, T) only is
    computed once per distinct pair and gathered."""
    r, alpha, s, beta = params
    big, diff = (alpha, alpha - beta) if alpha >= beta else (beta, beta - alpha)

    def log_part(px: np.ndarray, pt: np.ndarray) -> np.ndarray:
        p_rsx = r + s + px
        second = s + 1.0 if alpha >= beta else r + px
        return np.log(hyp2f1(p_rsx, second, p_rsx + 1.0, diff / (big + pt))) - p_rsx * np.log(big + pt)

    x = data.x
    (x_tx, tx, at_tx), (x_T, pair_T, at_T) = data.pairs
    log_tx, log_T = log_part(x_tx, tx)[at_tx], log_part(x_T, pair_T)[at_T]
    log_a0 = log_tx + np.log1p(-np.exp(log_T - log_tx))  # -inf when t_x == T (no time to drop out in)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) if constant else None
    alive = (-(r + x_T) * np.log(alpha + pair_T) - s * np.log(beta + pair_T))[at_T]
    dropped = np.log(s) + log_a0 - np.log(r + s + x)
    return a1, alive, dropped


def pnbd_log_likelihood(params: ParetoNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood of (x, t_x, T)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a1, alive, dropped = _pnbd_terms(_pnbd_array(params), PairedSummaries.of(frequency, recency, T))
    return a1 + np.logaddexp(alive, dropped)


def _pnbd_array(params: ParetoNBDParams) -> np.ndarray:
    return np.array([params.r, params.alpha, params.s, params.beta])


def _pnbd_objective(log_params: np.ndarray, data: PairedSummaries, penalizer: float) -> float:
    """Mean negative log-likelihood on time-scaled data + penalizer * sum(params ** 2)."""
    params = np.exp(log_params)
    a1, alive, dropped = _pnbd_terms(params, data)
    value = -np.mean(a1 + np.logaddexp(alive, dropped)) + penalizer * np.sum(params**2)
    return value if np.isfinite(value) else np.inf


def pnbd_p_alive(params: ParetoNBDParams, frequency, recency, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T) under Pareto/NBD."""
    return _pnbd_p_alive(params, PairedSummaries.of(frequency, recency, T))


def _pnbd_p_alive(params: ParetoNBDParams, data: PairedSummaries) -> np.ndarray:
    with np.errstate(all="ignore"):
        _, alive, dropped = _pnbd_terms(_pnbd_array(params), data, constant=False)
        return np.exp(alive - np.logaddexp(alive, dropped))


def pnbd_expected_purchases(params: ParetoNBDParams, horizon, frequency, recency, T) -> np.ndarray:
    """Expected purchases in (T, T + horizon] given (x, t_x, T) (note 009, equation 41); NaN where not finite."""
    return _pnbd_expected_purchases(params, horizon, PairedSummaries.of(frequency, recency, T))


def _pnbd_expected_purchases(params: ParetoNBDParams, horizon, data: PairedSummaries,
                             alive: np.ndarray | None = None) -> np.ndarray:
    x, big_t = data.x, data.T
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    with np.errstate(all="ignore"):
        log_q = np.log((beta + big_t) / (beta + big_t + horizon))
        # (1 - q ** (s - 1)) / (s - 1), and its limit -log q at s = 1
        growth = -np.expm1((s - 1.0) * log_q) / (s - 1.0) if abs(s - 1.0) > 1e-10 else -log_q
        alive = _pnbd_p_alive(params, data) if alive is None else alive
        value = alive * (r + x) * (beta + big_t) / (alpha + big_t) * growth
    return np.where(np.isfinite(value), value, np.nan)


def fit_pareto_nbd(frequency, recency, T) -> Fit:
    """Robust maximum-likelihood Pareto/NBD fit on (x, t_x, T) arrays (weeks), as lifetimes' ParetoNBDFitter:
    time rescaled so that the largest T is 1, numerical gradient. `Fit` with ParetoNBDParams (in weeks) or a
    failure status (and a warning)."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    if len(x) == 0:
        return Fit(params=None, status="failed: no customers")
    problem = _check_summaries("Pareto/NBD", x, t_x, big_t)
    if problem:
        return Fit(params=None, status=f"failed: {problem}")
    scale = 1.0 / float(big_t.max())
    data = PairedSummaries.of(x, t_x * scale, big_t * scale)

    def predict(log_params):
        r, alpha, s, beta = np.exp(log_params)
        return _pnbd_expected_purchases(ParetoNBDParams(r, alpha, s, beta), 1.0, data)

    fit = _fit_ladder("Pareto/NBD", _pnbd_objective, data, PNBD_LOG_BOUNDS, predict, jac=False)
    if not fit.ok:
        return fit
    r, alpha, s, beta = np.exp(fit.params)
    params = ParetoNBDParams(r=float(r), alpha=float(alpha / scale), s=float(s), beta=float(beta / scale))
    note = fit.note
    if note:
        dropout = f"a mean lifetime of {params.beta / params.s:.0f} weeks"
        note = limit_note(pnbd_p_alive(params, x, t_x, big_t), dropout=dropout)
    return Fit(params=params, status=OK, penalizer=fit.penalizer, note=note)


def summary_columns(*, as_of: dt.date) -> list[pl.Expr]:
    """Per-customer BG/NBD summary in weeks from the order aggregates (see module docstring)."""
    t = snapshot_time(as_of)
    first_day = pl.col("_first_purchase_at").dt.epoch("us") // DAY_US  # day numbers (business time)
    t_day = (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(days=1)
    return [
        (pl.col("_purchase_days") - 1).cast(pl.Float64).alias("_btyd_frequency"),
        (pl.col("_purchase_span_days").cast(pl.Float64) / 7.0).alias("_btyd_recency"),
        ((t_day - first_day).cast(pl.Float64) / 7.0).alias("_btyd_T"),
    ]


# The features each model gives: a fit that lands elsewhere moves them together.
FIT_FEATURES = {"BG/NBD": ("btyd_p_alive", "btyd_expected_purchases"),
                "Pareto/NBD": ("pnbd_p_alive", "pnbd_expected_purchases")}
# What a fit found (`fit_outcome`), in the words a drift warning uses.
FIT_OUTCOMES = {
    "no_dropout": "found no dropout (the NBD limit: P(alive) near 1 for everyone)",
    "same_dropout": "found the same dropout for every customer (its dropout pair on a bound)",
    "dropout": "found dropout",
    "failed": "failed (its features missing for everyone)",
}


def fit_outcome(fit: Fit) -> str:
    """A key of FIT_OUTCOMES: "failed", "no_dropout" (the NBD limit), "same_dropout" (kept on the dropout pair's
    bound with P(alive) spread out: `limit_note`) or "dropout" (a fit inside its bounds)."""
    if not fit.ok:
        return "failed"
    if fit.note == NO_DROPOUT_NOTE:
        return "no_dropout"
    return "same_dropout" if fit.note else "dropout"


def fit_record(model: str, fit: Fit) -> dict[str, object]:
    """JSON-able record of `model`'s fit on a snapshot: model, features (FIT_FEATURES), outcome (`fit_outcome`),
    status and note."""
    return {"model": model, "features": list(FIT_FEATURES[model]), "outcome": fit_outcome(fit), "status": fit.status,
            "note": fit.note}


def failed_fits_warning(fits: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
    """One sentence on the BTYD fits that failed, or None (`fits`: per snapshot date (ISO), its `fit_record`s): at
    how many snapshots each model failed, between which dates, and the earliest failure in full."""
    failed = {day: [record for record in records if record["outcome"] == "failed"] for day, records in fits.items()}
    failed = {day: records for day, records in sorted(failed.items()) if records}
    if not failed:
        return None
    days = list(failed)
    counts = Counter(record["model"] for records in failed.values() for record in records)
    models = " and ".join(counts)
    per_model = ", ".join(f"{model} at {count}" for model, count in counts.items())
    if len(fits) == 1:
        where = f"the snapshot {days[0]}"
    else:
        span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
        where = f"{len(days)} of {len(fits)} snapshots ({per_model}; {span})"
    first = failed[days[0]][0]
    return (f"BTYD: {models} could not be fitted at {where}, and {'its' if len(counts) == 1 else 'their'} features "
            f"are NaN there; at {days[0]}: {first['model']} {first['status']}"
            + (" (each failure is logged at info level)" if len(days) > 1 or len(failed[days[0]]) > 1 else ""))


def on_sample(fit: Fit, *, step: int, customers: int) -> Fit:
    """`fit`, its failure saying that it was fitted on one in `step` of the snapshot's `customers` (a failure counts the
    customers it saw, which would read as the snapshot's own count)."""
    if fit.ok or step == 1:
        return fit
    return replace(fit, status=f"{fit.status} (fitted on one in {step} of the snapshot's {customers:,} customers)")


def _log_fit(model: str, fit: Fit, *, as_of: dt.date | None) -> None:
    """Log a fit as of the snapshot `as_of`: a failure (info: its features are NaN; the runners warn once for all
    snapshots, `failed_fits_warning`), else its parameters (debug) and its note, e.g. the NBD limit it was kept as
    (info)."""
    where = f"BTYD at {as_of.isoformat()}" if as_of else "BTYD"
    if not fit.ok:
        get_logger().info("%s: %s %s; its features are NaN", where, model, fit.status)
        return
    get_logger().debug("%s: %s %s (penalizer %g)", where, model, fit.params, fit.penalizer)
    if fit.note:
        get_logger().info("%s: %s %s", where, model, fit.note)


def add_features(frame: pl.DataFrame, *, horizon_days: int, as_of: dt.date | None = None) -> pl.DataFrame:
    """Fit BG/NBD and Pareto/NBD on every row of `frame` (sorted by customer_id) and add btyd_p_alive,
    btyd_expected_purchases, pnbd_p_alive, pnbd_expected_purchases (NaN for everyone when a fit failed).
    The log names the snapshot `as_of` of each failure and note."""
    return add_features_and_fits(frame, horizon_days=horizon_days, as_of=as_of)[0]


def add_features_and_fits(
    frame: pl.DataFrame, *, horizon_days: int, as_of: dt.date | None = None
) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """`add_features`, and the two fits' records (`fit_record`: BG/NBD, then Pareto/NBD)."""
    x, t_x, big_t = (frame[c].to_numpy().astype(float) for c in ("_btyd_frequency", "_btyd_recency", "_btyd_T"))
    step = max(1, -(-len(x) // MAX_FIT_CUSTOMERS))
    horizon = horizon_days / 7.0
    missing = np.full(len(x), np.nan)
    bgnbd = fit_bgnbd(x[::step], t_x[::step], big_t[::step])
    pnbd_step = max(1, -(-len(x) // MAX_PNBD_FIT_CUSTOMERS))
    pnbd = fit_pareto_nbd(x[::pnbd_step], t_x[::pnbd_step], big_t[::pnbd_step])
    paired = PairedSummaries.of(x, t_x, big_t) if bgnbd.ok or pnbd.ok else None  # distinct pairs found once
    fits = {"BG/NBD": on_sample(bgnbd, step=step, customers=len(x)),
            "Pareto/NBD": on_sample(pnbd, step=pnbd_step, customers=len(x))}
    for model, fit in fits.items():
        _log_fit(model, fit, as_of=as_of)
    alive = expected = missing
    if bgnbd.ok:
        data = Summaries.of(x, t_x, big_t, distinct=False)
        with np.errstate(all="ignore"):
            alive = _paired_p_alive(bgnbd.params, paired)
            expected = _expected_purchases(bgnbd.params, horizon, data, alive, pairs=paired.pairs[1])
        alive = np.where(np.isfinite(alive), alive, np.nan)
    pnbd_alive = pnbd_expected = missing
    if pnbd.ok:
        data = paired
        pnbd_alive = _pnbd_p_alive(pnbd.params, data)
        pnbd_expected = _pnbd_expected_purchases(pnbd.params, horizon, data, pnbd_alive)
        pnbd_alive = np.where(np.isfinite(pnbd_alive), pnbd_alive, np.nan)
    columns = frame.with_columns(
        pl.Series("btyd_p_alive", alive, dtype=pl.Float64),
        pl.Series("btyd_expected_purchases", expected, dtype=pl.Float64),
        pl.Series("pnbd_p_alive", pnbd_alive, dtype=pl.Float64),
        pl.Series("pnbd_expected_purchases", pnbd_expected, dtype=pl.Float64),
    )
    return columns, [fit_record(model, fit) for model, fit in fits.items()]
