"""Drift: reference summary, PSI by hand, warnings; a list scored in another season warns."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.drift import (
    OTHER,
    SCORE,
    changed_fits,
    drift_reference,
    drift_table,
    drift_warnings,
    psi,
    retraining_adds_labels,
    standardised_shift,
)


def test_psi_by_hand():
    # (0.6-0.5) ln(0.6/0.5) + (0.4-0.5) ln(0.4/0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])) == pytest.approx(0.1 * math.log(1.2) - 0.1 * math.log(0.8))
    assert psi(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == 0.0


def population(n: int, seed: int, *, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, n) * (1 + shift)
    spend[rng.random(n) < missing] = np.nan
    return pd.DataFrame(
        {"spend": spend, "orders": rng.poisson(3, n).astype(float),
         "region": rng.choice(["north", "south"], n, p=[0.5 + shift / 4, 0.5 - shift / 4])}
    )


def reference_of(frame: pd.DataFrame) -> dict:
    p = np.linspace(0.05, 0.95, len(frame))
    return drift_reference(frame, p, p > 0.5, numeric=["spend", "orders"], categorical=["region"], snapshot="2025-01-01")


def test_reference_holds_bins_shares_and_missing_share():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "c": ["a", "a", None, "b"]})
    reference = drift_reference(frame, np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 0, 0, 1]), numeric=["x"],
                                categorical=["c"], snapshot="d")
    x = reference["features"]["x"]
    assert x["missing_share"] == 0.25 and sum(x["shares"]) == pytest.approx(0.75)
    assert reference["features"]["c"]["shares"] == {"a": 0.5, "b": 0.25, OTHER: 0.0}
    assert reference["churn_rate"] == 0.5 and reference["rows"] == 4


def test_same_population_is_stable_and_a_shifted_one_is_named():
    reference = reference_of(population(5000, 1))
    same = drift_table(population(5000, 2), np.linspace(0.05, 0.95, 5000), reference)
    assert (same["psi"] < 0.05).all()
    assert drift_warnings(same, predicted_rate=0.5, observed_rate=0.5, psi_warning=0.25, missing_share_warning=0.1,
                          churn_rate_gap_warning=0.1) == []
    shifted = drift_table(population(5000, 3, shift=1.0, missing=0.3), np.linspace(0.3, 0.99, 5000), reference)
    assert shifted["feature"].iloc[0] == "spend"
    warnings = drift_warnings(shifted, predicted_rate=0.65, observed_rate=0.4, psi_warning=0.25,
                              missing_share_warning=0.1, churn_rate_gap_warning=0.1)
    assert warnings[0].startswith("features shifted since the training test snapshot: spend (PSI")
    assert "region" in warnings[0] and "orders" not in warnings[0]
    assert any(w.startswith("the churn score's distribution shifted") for w in warnings)
    assert any("spend (0% -> 30%)" in w for w in warnings)
    assert any("predicted churn rate 65.0% is far from the recently observed 40.0%" in w for w in warnings)
    assert set(shifted["feature"]) == {"spend", "orders", "region", SCORE}


def test_retraining_adds_labels_only_once_a_newer_snapshot_is_labelled():
    import datetime as dt

    dates = [dt.date(2025, 9, 1), dt.date(2025, 10, 1), dt.date(2025, 11, 1)]
    trained = ["2025-09-01", "2025-10-01"]
    # 2025-11-01 + 90 days = 2026-01-30: its window is closed when the data runs to 2026-01-29 (horizon_passed)
    for ends, adds in [(dt.date(2025, 12, 31), False), (dt.date(2026, 1, 28), False), (dt.date(2026, 1, 29), True)]:
        assert retraining_adds_labels(dates, training_snapshots=trained, horizon_days=90, data_ends=ends) is adds
    assert not retraining_adds_labels(dates, training_snapshots=[*trained, "2025-11-01"], horizon_days=90,
                                      data_ends=dt.date(2026, 6, 1))
    assert not retraining_adds_labels(dates, training_snapshots=trained, horizon_days=90, data_ends=None)


def drift_config(dates: list[str]):
    from pipeline.config import Config

    return Config.model_validate({"sources": {"transactions": {"path": "x.csv"}},
                                  "features": {"snapshots": {"dates": dates}}})


def test_newer_labels_follow_the_configured_snapshots_and_the_data_end():
    import datetime as dt

    from pipeline.run.drift import newer_labels_since_training

    cfg = drift_config(["2025-09-01", "2025-10-01", "2025-11-01"])
    trained = ["2025-09-01", "2025-10-01"]
    assert newer_labels_since_training(cfg, training_snapshots=trained, horizon_days=90,
                                       data_ends=dt.date(2025, 12, 31)) is False
    assert newer_labels_since_training(cfg, training_snapshots=trained, horizon_days=90,
                                       data_ends=dt.date(2026, 3, 1)) is True
    assert newer_labels_since_training(cfg, training_snapshots=None, horizon_days=90,
                                       data_ends=dt.date(2026, 3, 1)) is None


@pytest.mark.parametrize("newer_labels, recommended, advice", [
    (True, True, "consider retraining"),
    (None, True, "consider retraining"),
    (False, False, "already learned from the newest labelled snapshot (2025-10-01): retraining on this data would "
                   "add no newer labels"),
])
def test_retraining_is_advised_only_when_it_can_learn_newer_labels(newer_labels, recommended, advice, caplog):
    from pipeline.run.drift import scoring_drift

    shifted = population(3000, 3, shift=1.0)
    drift = scoring_drift(
        drift_config(["2025-10-01"]), shifted, pd.DataFrame({"churn_probability": np.linspace(0.3, 0.99, 3000)}),
        reference=reference_of(population(3000, 1)), observed_rate=None, newer_labels=newer_labels,
        newest_training_snapshot="2025-10-01",
    )
    assert drift["warnings"] and drift["retrain_recommended"] is recommended
    assert drift["retraining_adds_labels"] is newer_labels
    assert "DRIFT: features shifted" in caplog.text and advice in caplog.text
    if not recommended:
        assert "consider retraining" not in caplog.text


def test_shift_is_the_wasserstein_distance_in_reference_standard_deviations():
    rng = np.random.default_rng(3)
    reference = drift_reference(pd.DataFrame({"x": rng.normal(10, 2, 20_000)}), np.full(20_000, 0.5), np.zeros(20_000),
                                numeric=["x"], categorical=[], snapshot="d")["features"]["x"]
    assert reference["std"] == pytest.approx(2, rel=0.02)
    assert standardised_shift(reference, rng.normal(11, 2, 20_000)) == pytest.approx(0.5, abs=0.03)
    assert standardised_shift(reference, rng.normal(10, 2, 20_000)) < 0.03
    assert math.isnan(standardised_shift(reference, np.array([])))
    assert math.isnan(standardised_shift({"kind": "numeric", "std": 1.0}, np.array([1.0])))  # an older reference
    constant = drift_reference(pd.DataFrame({"x": np.ones(100)}), np.full(100, 0.5), np.zeros(100), numeric=["x"],
                               categorical=[], snapshot="d")["features"]["x"]
    assert standardised_shift(constant, np.full(100, 3.0)) == pytest.approx(2.0)  # in the feature's own units


def monthly_gaps(february_share: float, n: int = 5000) -> pd.DataFrame:
    """Days between a subscriber's last two invoices: February's 28 or March's 31 for most, a tail of yearly ones."""
    gaps = np.where(np.arange(n) < february_share * n, 28.0, 31.0)
    gaps[: n // 10] = 365.0
    return pd.DataFrame({"gap_last_days": gaps})


def test_a_calendar_month_moving_customers_across_a_bin_edge_is_not_drift_but_a_real_move_is():
    p = np.linspace(0.05, 0.95, 5000)
    reference = drift_reference(monthly_gaps(0.6), p, p > 0.5, numeric=["gap_last_days"], categorical=[], snapshot="d")
    settings = {"predicted_rate": 0.5, "observed_rate": 0.5, "psi_warning": 0.25, "missing_share_warning": 0.1,
                "churn_rate_gap_warning": 0.1, "min_shift": 0.1}
    april = drift_table(monthly_gaps(0.0), p, reference).set_index("feature")
    assert april.at["gap_last_days", "psi"] > 1  # half the customers crossed the edge at 28 days ...
    assert april.at["gap_last_days", "shift"] < 0.05  # ... moving 3 days against a spread of about 100
    assert drift_warnings(april.reset_index(), **settings) == []
    assert drift_warnings(april.reset_index(), **{**settings, "min_shift": 0.0})  # PSI alone would warn
    quarterly = monthly_gaps(0.0).replace(31.0, 91.0)
    moved = drift_table(quarterly, p, reference)
    [warning] = drift_warnings(moved, **settings)
    assert warning.startswith("features shifted since the training test snapshot: gap_last_days (PSI ")
    assert ", values moved 0." in warning and "monitor.min_shift=0.1" in warning
    old = {**reference, "features": {"gap_last_days": {k: v for k, v in reference["features"]["gap_last_days"].items()
                                                       if k not in ("quantiles", "std")}}}
    [old_warning] = drift_warnings(drift_table(monthly_gaps(0.0), p, old), **settings)  # no shift known: PSI decides
    assert "gap_last_days (PSI " in old_warning and "values moved" not in old_warning


@pytest.mark.slow
def test_a_list_scored_in_another_season_warns_of_drift(demo_trained, tmp_path, caplog):
    import datetime as dt

    from pipeline.config import PathsConfig
    from pipeline.run import score

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validated").symlink_to(demo_trained.validated_dir)
    cfg = demo_trained.model_copy(update={"paths": PathsConfig(data_dir=tmp_path / "data", models_dir=demo_trained.paths.models_dir)})
    today = score.run(cfg, as_of=None, bundle=demo_trained.bundle_dir, quiet=True)
    usual = today["drift"]
    assert usual["reference_snapshot"] and len(usual["largest_shifts"]) == cfg.monitor.drift_top
    json.dumps(usual, allow_nan=False)  # an unknown shift (a category) is null, not NaN
    past = score.run(cfg, as_of=dt.date(2024, 2, 1), bundle=demo_trained.bundle_dir, quiet=True)
    other_season = past["drift"]
    # The model learned from label windows around 2024-02-01: that list is in-sample, today's is not.
    assert today["model_saw_outcomes"] is False
    assert "which overlap this list's (2024-02-01 to 2024-05-01)" in past["model_saw_outcomes"]
    assert "scoring 2024-02-01: the model (" in caplog.text
    assert other_season["warnings"][0].startswith("features shifted since the training test snapshot")
    assert other_season["largest_shifts"][0]["psi"] > max(0.25, usual["largest_shifts"][0]["psi"])
    # The demo's last snapshot (2025-10-01) is labelled and in the model: retraining would learn nothing newer.
    assert other_season["retraining_adds_labels"] is False and not other_season["retrain_recommended"]
    assert "DRIFT:" in caplog.text and "newest labelled snapshot (2025-10-01)" in caplog.text
    assert "consider retraining" not in caplog.text


def test_a_tie_block_crossing_a_quintile_boundary_is_not_drift():
    """Two-order customers rank around the 40% quintile boundary (their average rank is the middle of their block):
    with 25% one-order customers they score 3 of 5, with 23% they score 2. Frequencies barely moved; only the
    ranked score flipped, so it is not compared."""
    import polars as pl

    from pipeline.features.rfm import RANKED_COLUMNS, add_scores

    def month(one_order_share: float) -> pd.DataFrame:
        n = 10_000
        frequency = np.full(n, 2.0)
        frequency[: int(n * one_order_share)] = 1.0
        frequency[int(n * 0.56):] = np.arange(n - int(n * 0.56)) % 7 + 3.0
        frame = pl.DataFrame({"recency_days": np.arange(n, dtype=float) % 365, "frequency_all": frequency,
                              "monetary_all": np.arange(n, dtype=float)})
        return add_scores(frame).to_pandas()

    before, after = month(0.25), month(0.23)
    assert set(before.loc[before["frequency_all"] == 2, "rfm_f_score"]) == {3.0}
    assert set(after.loc[after["frequency_all"] == 2, "rfm_f_score"]) == {2.0}
    p = np.linspace(0.05, 0.95, len(before))
    reference = drift_reference(before, p, p > 0.5, numeric=["frequency_all", "rfm_f_score"],
                                categorical=["rfm_segment"], snapshot="2025-01-01")
    everything = drift_table(after, p, reference).set_index("feature")["psi"]
    assert everything["rfm_f_score"] > 0.5  # the flip, read as a large shift (monitor.psi_warning is 0.25)
    table = drift_table(after, p, reference, ranked=RANKED_COLUMNS)
    assert set(table["feature"]) == {"frequency_all", SCORE}
    assert table.set_index("feature").loc["frequency_all", "psi"] < 0.01


def test_a_change_in_the_fourth_significant_digit_is_not_drift():
    """A BTYD fit in its NBD limit gives everyone a P(alive) of about 1: 1 - 3e-5 at the test snapshot, 1 - 4e-7 on
    the scoring day. Deciles of those values once split the fifth decimal and read as PSI 4.3 ('features shifted');
    at three significant digits they are all 1.00. A real shift of the same feature is still named."""
    rng = np.random.default_rng(0)
    then = pd.DataFrame({"p_alive": 1 - rng.exponential(3e-5, 3000)})
    now = pd.DataFrame({"p_alive": 1 - rng.exponential(4e-7, 4000)})
    p = np.linspace(0.05, 0.95, 3000)
    reference = drift_reference(then, p, p > 0.5, numeric=["p_alive"], categorical=[], snapshot="2011-09-01")
    assert reference["features"]["p_alive"]["edges"] == [1.0]
    table = drift_table(now, np.linspace(0.05, 0.95, 4000), reference).set_index("feature")["psi"]
    assert table["p_alive"] < 0.01
    lapsed = pd.DataFrame({"p_alive": rng.uniform(0.3, 0.7, 4000)})
    assert drift_table(lapsed, np.linspace(0.05, 0.95, 4000), reference).set_index("feature").loc["p_alive", "psi"] > 1
    old = {**reference["features"]["p_alive"], "edges": np.quantile(then["p_alive"], np.linspace(0, 1, 11)[1:-1]).tolist(),
           "shares": [0.1] * 10}
    del old["significant_digits"]  # a bundle from before: today's values binned unrounded, as then
    assert drift_table(then, p, {**reference, "features": {"p_alive": old}}).set_index("feature").loc["p_alive", "psi"] < 0.01


def btyd_population(n: int, seed: int, *, nbd_limit: bool, spend_shift: float = 0.0) -> pd.DataFrame:
    """BG/NBD and Pareto/NBD features as a fit with dropout gives them (P(alive) spread out) or, with `nbd_limit`, as
    BG/NBD's no-dropout limit does (P(alive) about 1, more expected purchases); spend beside them."""
    rng = np.random.default_rng(seed)
    alive = 1 - rng.exponential(1e-6, n) if nbd_limit else rng.uniform(0.2, 1.0, n)
    return pd.DataFrame({
        "btyd_p_alive": alive, "btyd_expected_purchases": alive * rng.gamma(2.0, 1.0, n),
        "pnbd_p_alive": rng.uniform(0.2, 1.0, n), "pnbd_expected_purchases": rng.gamma(2.0, 1.0, n),
        "spend": rng.gamma(2.0, 50.0, n) * (1 + spend_shift)})


def fit_records(bgnbd: str, pnbd: str = "dropout") -> list[dict]:
    """Fit records as pipeline.features.btyd.fit_record gives them, with the outcomes `bgnbd` and `pnbd`."""
    return [{"model": "BG/NBD", "features": ["btyd_p_alive", "btyd_expected_purchases"], "outcome": bgnbd,
             "status": "ok", "note": ""},
            {"model": "Pareto/NBD", "features": ["pnbd_p_alive", "pnbd_expected_purchases"], "outcome": pnbd,
             "status": "ok", "note": ""}]


BTYD_COLUMNS = ["btyd_p_alive", "btyd_expected_purchases", "pnbd_p_alive", "pnbd_expected_purchases", "spend"]
DRIFT_SETTINGS = {"predicted_rate": 0.5, "observed_rate": 0.5, "psi_warning": 0.25, "missing_share_warning": 0.1,
                  "churn_rate_gap_warning": 0.1, "min_shift": 0.1}


def test_btyd_features_that_moved_with_a_change_of_fit_say_so_and_only_then():
    """A groceries export: BG/NBD found dropout at the test snapshot and the NBD limit on the scoring day, and its
    P(alive) read as PSI 6.7 in a sentence saying the features shifted. Its features now get a sentence naming the
    change of fit; spend (no fit) keeps the general one, and so does Pareto/NBD, whose fit found the same both times.
    When both snapshots found the same, or either did not record it (an older bundle), the general sentence alone."""
    p = np.linspace(0.05, 0.95, 4000)
    then = btyd_population(4000, 1, nbd_limit=False)
    now = btyd_population(4000, 2, nbd_limit=True, spend_shift=1.0)
    reference = drift_reference(then, p, p > 0.5, numeric=BTYD_COLUMNS, categorical=[], snapshot="2015-07-01",
                                fits=fit_records("dropout"))
    table = drift_table(now, p, reference)
    changed = changed_fits(reference["fits"], fit_records("no_dropout"), reference_snapshot="2015-07-01",
                           as_of="2015-12-31")
    assert changed == [{"model": "BG/NBD", "features": ["btyd_p_alive", "btyd_expected_purchases"], "then": "dropout",
                        "now": "no_dropout", "reference_snapshot": "2015-07-01", "as_of": "2015-12-31"}]
    general, with_fit = drift_warnings(table, **DRIFT_SETTINGS, fits=changed)
    assert general.startswith("features shifted since the training test snapshot: spend (PSI ")
    assert "btyd" not in general and "pnbd" not in general
    assert with_fit.startswith("BG/NBD features shifted with their fit, not necessarily with the customers: "
                               "btyd_p_alive (PSI ")
    assert "btyd_expected_purchases (PSI " in with_fit and "spend" not in with_fit
    assert with_fit.endswith(
        "; the BG/NBD fit found no dropout (the NBD limit: P(alive) near 1 for everyone) on the scoring day 2015-12-31 "
        "and found dropout at the training test snapshot 2015-07-01 (monitor.psi_warning=0.25, monitor.min_shift=0.1)")
    for then_fits, now_fits in [(fit_records("no_dropout"), fit_records("no_dropout")), (None, fit_records("no_dropout")),
                                (fit_records("dropout"), None)]:
        assert changed_fits(then_fits, now_fits, reference_snapshot="2015-07-01", as_of="2015-12-31") == []
    [only] = drift_warnings(table, **DRIFT_SETTINGS)
    assert only.startswith("features shifted since the training test snapshot: btyd_p_alive (PSI ")
    assert "spend (PSI " in only and "fit" not in only


def test_the_scoring_drift_block_compares_todays_fits_with_the_references(caplog):
    from pipeline.run.drift import scoring_drift

    p = np.linspace(0.05, 0.95, 3000)
    then = btyd_population(3000, 1, nbd_limit=False)
    reference = drift_reference(then, p, p > 0.5, numeric=BTYD_COLUMNS, categorical=[], snapshot="2015-07-01",
                                fits=fit_records("dropout", "no_dropout"))
    scores = pd.DataFrame({"churn_probability": p})
    drift = scoring_drift(drift_config(["2015-07-01"]), btyd_population(3000, 2, nbd_limit=True), scores,
                          reference=reference, observed_rate=None, fits=fit_records("no_dropout", "no_dropout"),
                          as_of=dt.date(2015, 12, 31))
    assert [(c["model"], c["then"], c["now"]) for c in drift["changed_fits"]] == [("BG/NBD", "dropout", "no_dropout")]
    [warning] = drift["warnings"]  # spend and Pareto/NBD's features did not move
    assert warning.startswith("BG/NBD features shifted with their fit")
    assert "DRIFT: BG/NBD features shifted with their fit" in caplog.text and "on the scoring day 2015-12-31" in caplog.text
    old = {k: v for k, v in reference.items() if k != "fits"}  # a bundle from before the fits were recorded
    older = scoring_drift(drift_config(["2015-07-01"]), btyd_population(3000, 2, nbd_limit=True), scores,
                          reference=old, observed_rate=None, fits=fit_records("no_dropout"), as_of=dt.date(2015, 12, 31))
    assert older["changed_fits"] == [] and older["warnings"][0].startswith("features shifted since the training test")
