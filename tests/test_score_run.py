"""`churn score` end to end on the demo workspace (session fixture `demo_trained`): real model, MLflow, files."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml

from pipeline.errors import ConfigError, PipelineError, ScoreError
from pipeline.events import load_events
from pipeline.playbook import eligibility_matrix, load_playbook
from pipeline.reasons import reasons_mention

FEEDBACK_WORDS = ["nps", "detractor", "rating", "rated", "satisfaction", "review", "feedback"]


@pytest.fixture(scope="module")
def scored(demo_trained):
    """One scoring run with the registry's champion at the default as-of date."""
    from pipeline.run import score

    outcome = score.run(demo_trained, as_of=None, bundle=None, quiet=True)
    return demo_trained, outcome


@pytest.fixture(scope="module")
def scored_frames(scored):
    """The scores file and the features it was built from, indexed by customer."""
    from pipeline.features import build_features
    from pipeline.features.registry import feature_specs
    from pipeline.playbook import feature_kinds

    cfg, outcome = scored
    scores = pd.read_parquet(outcome["scores_path"])
    as_of = dt.date.fromisoformat(outcome["as_of"])
    features = build_features(load_events(cfg.validated_dir), as_of=as_of, cfg=cfg.features).set_index("customer_id")
    playbook = load_playbook(cfg.score.playbook, known_features=feature_kinds(feature_specs(cfg.features)))
    return scores.set_index("customer_id"), features, playbook


def test_at_risk_list_is_complete_and_within_budget(scored, scored_frames):
    cfg, outcome = scored
    scores, features, playbook = scored_frames
    as_of = dt.date.fromisoformat(outcome["as_of"])
    latest = max(load_events(cfg.validated_dir).transactions["ordered_at"]).date()
    assert as_of == latest + dt.timedelta(days=1) or as_of > latest
    assert scores.index.is_unique and set(scores.index) == set(features.index)
    assert scores["risk_tier"].isin(["high", "medium"]).sum() > 0
    selected = scores[scores["group"] != "none"]
    assert len(selected) > 0
    assert selected["reason_1"].notna().all()
    eligible = eligibility_matrix(features.loc[selected.index], playbook)
    chosen = eligible.to_numpy()[np.arange(len(selected)), eligible.columns.get_indexer(selected["action"])]
    assert chosen.all()
    assert selected["action_cost"].sum() <= cfg.score.budget + 1e-9
    assert (selected["expected_net_value"] > 0).all()
    share = (selected["group"] == "control").mean()
    n_actions = selected["action"].nunique()
    tolerance = 3 * np.sqrt(cfg.score.control_share * (1 - cfg.score.control_share) / len(selected)) + n_actions / len(selected)
    assert abs(share - cfg.score.control_share) <= tolerance
    assert outcome["budget_used"] <= outcome["budget_committed"] <= cfg.score.budget
    assert (cfg.scores_dir / f"at_risk_{as_of}.csv").is_file()


def test_planted_causes_show_up_in_reasons_and_actions(scored_frames):
    scores, features, _ = scored_frames
    explained = scores[scores["reason_1"].notna()]
    reasons = explained[["reason_1", "reason_2", "reason_3"]]
    detractor = features.loc[explained.index, "is_detractor"] == 1
    mentions_feedback = reasons_mention(reasons, FEEDBACK_WORDS)
    assert detractor.sum() >= 10
    assert mentions_feedback[detractor].mean() > 0.5
    assert mentions_feedback[detractor].mean() > mentions_feedback[~detractor].mean()
    selected = scores[scores["group"] != "none"]
    open_tickets = features.loc[selected.index, "open_tickets"] > 0
    recovery = selected["action"] == "service_recovery"
    assert open_tickets.sum() >= 5
    assert recovery[open_tickets].mean() > recovery[~open_tickets].mean()


def test_scoring_run_is_logged_to_mlflow(scored):
    import mlflow

    cfg, outcome = scored
    run = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri()).get_run(outcome["mlflow_run_id"])
    assert run.data.tags["stage"] == "score"
    assert run.data.params["model_version"] == outcome["model_version"]
    assert run.data.metrics["selected"] == outcome["selected"]
    assert run.data.metrics["budget_used"] == pytest.approx(outcome["budget_used"])
    assert run.data.metrics["tier_high"] == outcome["tiers"]["high"]
    logged = {a.path for a in mlflow.MlflowClient(tracking_uri=cfg.tracking_uri()).list_artifacts(run.info.run_id, "score")}
    assert f"score/risk_tiers_{outcome['as_of']}.png" in logged


@pytest.mark.slow
def test_scoring_twice_gives_identical_files(scored):
    from pipeline.run import score
    from pipeline.run.score import scores_paths

    cfg, outcome = scored
    as_of = dt.date.fromisoformat(outcome["as_of"])
    paths = scores_paths(cfg, as_of)
    first = {kind: path.read_bytes() for kind, path in paths.items()}
    score.run(cfg, as_of=as_of, bundle=cfg.bundle_dir, quiet=True)
    assert {kind: path.read_bytes() for kind, path in paths.items()} == first


def _files(cfg) -> set[str]:
    return {p.name for p in cfg.scores_dir.glob("*")} if cfg.scores_dir.exists() else set()


FAIL_AS_OF = dt.date(2025, 6, 1)


def test_tampered_bundle_fails_and_writes_nothing(scored, tmp_path):
    from pipeline.run import score

    cfg, _ = scored
    bundle = tmp_path / "bundle"
    shutil.copytree(cfg.bundle_dir, bundle)
    model_file = bundle / "booster.txt"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    before = _files(cfg)
    with pytest.raises(ScoreError, match="does not match the sha256 in its manifest"):
        score.run(cfg, as_of=FAIL_AS_OF, bundle=bundle, quiet=True)
    assert _files(cfg) == before


def test_missing_model_fails_and_writes_nothing(scored, tmp_path):
    from pipeline.run import score

    cfg, _ = scored
    before = _files(cfg)
    with pytest.raises(PipelineError, match="no model bundle at"):
        score.run(cfg, as_of=FAIL_AS_OF, bundle=tmp_path / "nowhere", quiet=True)
    unregistered = cfg.model_copy(update={"train": cfg.train.model_copy(update={"model_name": "never-trained"})})
    with pytest.raises(ScoreError, match="no model registered as 'never-trained@champion'"):
        score.run(unregistered, as_of=FAIL_AS_OF, bundle=None, quiet=True)
    assert _files(cfg) == before


def test_features_missing_a_column_fail_and_write_nothing(scored, monkeypatch):
    from pipeline.run import score

    cfg, _ = scored
    real = score.features_labels_and_fits_streamed  # what the runner builds today's features with

    def without_recency(*args, **kwargs):
        features, labels, fits = real(*args, **kwargs)
        return features.drop(columns=["recency_days"]), labels, fits

    monkeypatch.setattr(score, "features_labels_and_fits_streamed", without_recency)
    before = _files(cfg)
    with pytest.raises(ScoreError, match="lacks 1 column\\(s\\) the model was trained on: recency_days"):
        score.run(cfg, as_of=FAIL_AS_OF, bundle=cfg.bundle_dir, quiet=True)
    assert _files(cfg) == before


def test_playbook_with_unknown_feature_fails_at_start_and_writes_nothing(scored, tmp_path):
    from pipeline.run import score

    cfg, _ = scored
    raw = yaml.safe_load(cfg.score.playbook.read_text(encoding="utf-8"))
    raw["actions"][1]["eligibility"]["all"][1]["feature"] = "pointz_to_next_tier"
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    broken = cfg.model_copy(update={"score": cfg.score.model_copy(update={"playbook": path})})
    before = _files(cfg)
    with pytest.raises(
        ConfigError,
        match=r"playbook action 'tier_upgrade_offer' rule 2: unknown feature 'pointz_to_next_tier' \(did you mean 'points_to_next_tier'\?\)",
    ):
        score.run(broken, as_of=FAIL_AS_OF, bundle=cfg.bundle_dir, quiet=True)
    assert _files(cfg) == before


def test_measure_refuses_on_fresh_scores(scored):
    from pipeline.run import measure

    cfg, outcome = scored
    with pytest.raises(ScoreError, match="horizon after .* has not passed"):
        measure.run(cfg, scores_path=outcome["scores_path"], quiet=True)


def test_csv_holds_the_values_of_the_parquet(scored):
    from pipeline.run.measure import read_scores

    cfg, outcome = scored
    parquet = pd.read_parquet(outcome["scores_path"])
    csv_path = cfg.scores_dir / f"at_risk_{outcome['as_of']}.csv"
    text_columns = [c for c in parquet.columns if parquet[c].dtype == "str"]
    csv = pd.read_csv(csv_path, dtype=dict.fromkeys(text_columns, "str"))
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet)
    for column in parquet.columns:
        expected = parquet[column].astype(str) if column == "as_of" else parquet[column]
        pd.testing.assert_series_equal(csv[column], expected, check_dtype=False, check_exact=True)
    assert read_scores(csv_path)["group"].equals(parquet["group"])


def test_default_as_of_is_the_day_after_the_last_order(demo_trained):
    from pipeline.run.features import read_validated
    from pipeline.run.score import default_as_of

    latest = load_events(demo_trained.validated_dir).transactions["ordered_at"].max()
    assert default_as_of(read_validated(demo_trained.validated_dir)) == latest.date() + dt.timedelta(days=1)


def test_a_source_exported_later_than_the_orders_does_not_move_the_scoring_date():
    """An NPS export taken five weeks after the orders' export: scoring as of its last answer counted 35 days without
    recorded orders as days without purchases (every customer of a test shop at risk), and the data-lag check, measured
    from the same answer, never fired."""
    from pipeline.run.score import check_data_lag, default_as_of, later_sources_warning, latest_event_date

    utc = pl.Datetime("us", "UTC")
    frames = {
        "transactions": pl.DataFrame({"ordered_at": [dt.datetime(2025, 11, 3), dt.datetime(2025, 11, 30, 23)]},
                                     schema={"ordered_at": utc}),
        "feedback": pl.DataFrame({"submitted_at": [dt.datetime(2026, 1, 4, 9)]}, schema={"submitted_at": utc}),
        "support_tickets": pl.DataFrame({"opened_at": [dt.datetime(2025, 11, 2)]}, schema={"opened_at": utc}),
    }
    assert latest_event_date(frames) == dt.date(2025, 11, 30)
    assert default_as_of(frames) == dt.date(2025, 12, 1)
    assert later_sources_warning(frames, data_ends=dt.date(2025, 11, 30), as_of=dt.date(2025, 12, 1)) == (
        "feedback to 2026-01-04 (35 days) run past the last order (2025-11-30): scoring as of 2025-12-01 leaves their "
        "later events out, and a later date would count the days without recorded orders as days without purchases. "
        "Export the orders up to the same day to use them")
    assert later_sources_warning(frames, data_ends=dt.date(2025, 11, 30), as_of=dt.date(2026, 1, 5)) is None
    # a date after the day after the last order (score.max_data_lag_days allows a week) already counts the days
    # without orders: before, the sentence said only that a later date would
    assert later_sources_warning(frames, data_ends=dt.date(2025, 11, 30), as_of=dt.date(2025, 12, 6)) == (
        "feedback to 2026-01-04 (35 days) run past the last order (2025-11-30): scoring as of 2025-12-06 leaves their "
        "later events out, and it already counts the 5 days after the last order's day (2025-12-01 to 2025-12-05), "
        "without recorded orders, as days without purchases for every customer. Export the orders up to the same day "
        "to use them")
    with pytest.raises(ScoreError, match=r"--as-of 2026-01-05 is 36 days after the data ends \(2025-11-30\)"):
        check_data_lag(dt.date(2026, 1, 5), data_ends=latest_event_date(frames), max_lag_days=7)
    with pytest.raises(ScoreError, match="the validated transactions hold no orders"):
        default_as_of({"transactions": frames["transactions"].clear(), "feedback": frames["feedback"]})


@pytest.mark.slow
def test_features_from_the_partitioned_tables_equal_build_features(scored, scored_frames):
    """The runner reads only the feature columns, per customer partition; the scored customers are those
    of build_features on all events, and the selected customers' features match the playbook."""
    cfg, outcome = scored
    scores, features, _ = scored_frames
    assert set(scores.index) == set(features.index)
    small = cfg.model_copy(update={"features": cfg.features.model_copy(update={"partition_rows": 1000})})
    from pipeline.run import score

    as_of = dt.date.fromisoformat(outcome["as_of"])
    again = score.run(small, as_of=as_of, bundle=cfg.bundle_dir, quiet=True)
    pd.testing.assert_frame_equal(pd.read_parquet(again["scores_path"]), scores.reset_index())


def test_disk_full_while_writing_the_csv_keeps_the_previous_set_and_prints_one_line(scored, monkeypatch):
    """A run that would change every file (another budget) fails on its CSV: the previous set stays whole."""
    import errno

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.run import score
    from pipeline.run.score import scores_paths

    cfg, outcome = scored
    as_of = dt.date.fromisoformat(outcome["as_of"])
    before = {kind: path.read_bytes() for kind, path in scores_paths(cfg, as_of).items()}

    def disk_full(scores, path):
        path.write_bytes(b"customer_id,churn_prob")  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(score, "write_scores_csv", disk_full)
    result = CliRunner().invoke(
        app,
        ["score", "-q", "-c", str(cfg.config_path), "--as-of", as_of.isoformat(), "--set", "score.budget=50",
         "--replace"],
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())  # rich wraps at the test terminal's width
    assert f"error: cannot write {scores_paths(cfg, as_of)['csv']}: No space left on device" in message
    assert message.count("error:") == 1
    assert {kind: path.read_bytes() for kind, path in scores_paths(cfg, as_of).items()} == before
    assert not [p for p in cfg.paths.data_dir.iterdir() if p.name.startswith(".publish-")]


def test_a_list_whose_treatments_would_change_is_not_written_over_without_replace(scored):
    """Re-scoring a day whose list exists with another budget would hand out other actions: the earlier list may be
    what was sent, the record churn measure reads, so the run stops with one line and changes no file; --replace
    writes over it and says how many customers changed."""
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.run.score import scores_paths

    cfg, outcome = scored
    as_of = dt.date.fromisoformat(outcome["as_of"])
    paths = scores_paths(cfg, as_of)
    before = {kind: path.read_bytes() for kind, path in paths.items()}
    command = ["score", "-q", "-c", str(cfg.config_path), "--as-of", as_of.isoformat(), "--set", "score.budget=50"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert message.startswith(f"error: {paths['parquet']} already holds the at-risk list of {as_of}, and this run "
                              "changes the group or action of ")
    assert message.endswith("Score another date, move it away, or pass --replace to write over it")
    assert {kind: path.read_bytes() for kind, path in paths.items()} == before
    replaced = CliRunner().invoke(app, command + ["--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert "(or adds or drops them): written over" in " ".join(replaced.output.split())
    assert pd.read_parquet(paths["parquet"])["action_cost"].sum() <= 50
    back = CliRunner().invoke(app, command[:-2] + ["--replace"])  # the original budget again, for the other tests
    assert back.exit_code == 0, back.output
    assert paths["parquet"].read_bytes() == before["parquet"]


def test_an_earlier_list_that_cannot_be_read_is_not_written_over_without_replace(tmp_path):
    from pipeline.run.score import check_replacing

    scores = pd.DataFrame({"customer_id": ["a"], "group": ["treatment"], "action": ["winback_survey"]})
    damaged = tmp_path / "at_risk_2025-01-01.parquet"
    damaged.write_bytes(b"PAR1 cut short")
    with pytest.raises(ScoreError, match=r"already holds a list of 2025-01-01 that cannot be read \(.*\); move it away, "
                                         r"or pass --replace to write over it"):
        check_replacing(damaged, scores, as_of=dt.date(2025, 1, 1), replace=False)
    check_replacing(damaged, scores, as_of=dt.date(2025, 1, 1), replace=True)  # asked for: no error
    check_replacing(tmp_path / "none.parquet", scores, as_of=dt.date(2025, 1, 1), replace=False)  # no list yet


def test_changed_treatments_counts_customers_whose_group_or_action_differ():
    from pipeline.score import changed_treatments

    then = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "group": ["treatment", "control", "none", "treatment"],
                         "action": ["winback_survey", "winback_survey", None, "loyalty_offer"]})
    assert changed_treatments(then, then.iloc[::-1].copy()) == 0  # order does not matter; no action equals no action
    now = then.assign(group=["treatment", "treatment", "none", "treatment"],
                      action=["winback_survey", "winback_survey", None, "service_recovery"])
    assert changed_treatments(then, now) == 2  # b moved from control to treatment, d got another action
    assert changed_treatments(then, now.iloc[:3]) == 2  # d no longer on the list: b and d
    assert changed_treatments(then, pd.concat([then, then.iloc[:1].assign(customer_id="e")])) == 1  # e is new


# Acceptance (issue 14): the demo's at-risk list read as a marketer reads it, checked without a script.
# (pattern of a sentence, feature, what must then hold for the customer's value, given the population medians)
CLAIMS = [
    (r"^spending is falling", "spend_trend", lambda v, typical: v < 0),
    (r"^has ordered only once", "frequency_all", lambda v, typical: v == 1),
    (r"^only [\d,]+ orders? so far, fewer than the typical", "frequency_all", lambda v, typical: 1 <= v < typical),
    (r"^a customer for only", "tenure_days", lambda v, typical: v < typical),
    (r"^average order worth only", "avg_order_value", lambda v, typical: 0 < v < typical),
    (r"^spent only [\d,.]+ in total, net of returns and refunds", "monetary_all", lambda v, typical: 0 < v < typical),
    (r"between purchase days, longer than for the typical", "gap_mean_days", lambda v, typical: v > typical),
    (r"support tickets? still open", "open_tickets", lambda v, typical: v >= 1),
    (r"^gave NPS", "nps_last", lambda v, typical: v <= 6),
    (r"^no order for", "recency_days", lambda v, typical: v > 0),
    (r"chance they are still an active customer$", "btyd_p_alive", lambda v, typical: 0.005 <= v < 0.5),
    (r"almost certainly gone", "btyd_p_alive", lambda v, typical: v < 0.005),
    (r"^not in the loyalty programme", "loyalty_enrolled", lambda v, typical: v == 0),
    (r"of their support tickets are unresolved", "unresolved_share", lambda v, typical: v > 0),
    (r"^expected to buy on only about .* period, fewer than the typical customer$", "btyd_expected_purchases",
     lambda v, typical: 0.05 <= v < typical),
    (r"^expected to buy on only about .*\(Pareto/NBD\)$", "pnbd_expected_purchases", lambda v, typical: 0.05 <= v < typical),
    (r"^expected to buy on fewer than 0.1 days in the coming period$", "btyd_expected_purchases", lambda v, typical: v < 0.05),
    (r"^low recency score", "rfm_r_score", lambda v, typical: v <= 2),
    (r"^is a detractor", "is_detractor", lambda v, typical: v == 1),
    (r"^deliveries arrived", "lateness_days_mean", lambda v, typical: v > 0),
    (r"^their support tickets took", "resolution_hours_mean", lambda v, typical: v > 0),
    (r"of their orders used a discount", "discount_share", lambda v, typical: v > 0),
    (r"^spent only [\d,.]+, net of returns and refunds, in the last (\d+) days", "monetary_{0}d", lambda v, typical: 0 < v < typical),
    (r"^spent nothing, net of returns and refunds, in the last (\d+) days", "monetary_{0}d", lambda v, typical: v == 0),
    (r"^only [\d,]+ orders? in the last (\d+) days", "frequency_{0}d", lambda v, typical: 1 <= v < typical),
    (r"^opened [\d,]+ support tickets? in the last (\d+) days", "tickets_{0}d", lambda v, typical: v >= 1),
]


def test_no_reason_in_the_demo_list_contradicts_its_feature_value(scored_frames):
    scores, features, _ = scored_frames
    texts = scores[["reason_1", "reason_2", "reason_3"]].stack().dropna()
    assert len(texts) > 100
    checked = 0
    for pattern, feature_pattern, holds in CLAIMS:
        hits = texts[[re.search(pattern, text) is not None for text in texts]]
        window = hits.str.extract(pattern)[0] if "(" in pattern.replace("\\(", "") else pd.Series("", index=hits.index)
        for key, group in hits.groupby(window.fillna("")):
            feature = feature_pattern.format(key)
            typical = features[feature].median()
            values = features.loc[group.index.get_level_values(0), feature].to_numpy(dtype=float)
            wrong = [(text, value) for text, value in zip(group, values) if not holds(value, typical)]
            assert not wrong, (pattern, wrong[:3])
        checked += len(hits)
    assert checked > 0.5 * len(texts)  # the claims above cover most sentences of the list
    nonsense = texts[texts.str.contains(
        r"\bnan\b|\binf\b|_|0\.0 days|\b0% chance|spent -|(?<![\d.,])1 (?:orders|support tickets|items|days|categories)\b"
        r"|[\d.]+x their|about (?:[1-9]\d|\d{3,})(?:\.\d)? times", regex=True
    )]
    assert nonsense.empty, nonsense.head().tolist()


def test_every_at_risk_row_without_an_action_says_why(scored_frames):
    scores, _, _ = scored_frames
    at_risk = scores["risk_tier"].isin(["high", "medium"])
    assert scores.loc[at_risk & scores["action"].isna(), "no_action_reason"].notna().all()
    assert scores.loc[scores["group"] == "control", "no_action_reason"].eq("held out as control group").all()


def test_nobody_gets_onboarding_beyond_the_window(scored_frames):
    scores, features, playbook = scored_frames
    onboarding = next(a for a in playbook.actions if a.name == "onboarding_series")
    window = next(rule.value for rule in onboarding.eligibility.conditions if rule.feature == "tenure_days")
    onboarded = scores.index[scores["action"] == "onboarding_series"]
    assert (features.loc[onboarded, "tenure_days"] <= window).all()
    assert (features.loc[onboarded, "frequency_all"] == 1).all()


def _workspace_with(cfg, tmp_path, edit):
    """`cfg` pointed at a copy of its validated files, changed by `edit(validated_dir)`."""
    data_dir = tmp_path / "data"
    shutil.copytree(cfg.validated_dir, data_dir / "validated")
    edit(data_dir / "validated")
    return cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"data_dir": data_dir})})


def test_the_bundle_records_the_inputs_present_at_training(scored):
    from pipeline.bundle import load_bundle

    cfg, _ = scored
    inputs = load_bundle(cfg.bundle_dir).manifest["training_inputs"]
    assert set(inputs) == {"transactions", "feedback", "support_tickets", "loyalty_events", "customers"}
    assert {"category", "discount", "delivered_at"} <= set(inputs["transactions"])


def test_scoring_with_transactions_only_is_refused_naming_the_missing_sources(scored, tmp_path):
    from pipeline.run import score

    cfg, _ = scored

    def transactions_only(validated):
        for name in ("feedback", "support_tickets", "loyalty_events", "customers"):
            (validated / f"{name}.parquet").unlink()

    thin = _workspace_with(cfg, tmp_path, transactions_only)
    with pytest.raises(
        ScoreError,
        match=r"trained with inputs the scoring data lacks: customers \(no rows\), feedback \(no rows\), "
        r"loyalty_events \(no rows\), support_tickets \(no rows\);.*--allow-missing-sources",
    ):
        score.run(thin, as_of=FAIL_AS_OF, bundle=cfg.bundle_dir, quiet=True)
    assert not thin.scores_dir.exists()


def test_an_emptied_optional_column_is_refused_and_the_flag_scores_with_a_warning(scored, tmp_path, caplog):
    from pipeline.run import score

    cfg, _ = scored

    def no_categories(validated):
        path = validated / "transactions.parquet"
        frame = pd.read_parquet(path)
        frame["category"] = pd.Series(pd.NA, index=frame.index, dtype=frame["category"].dtype)
        frame.to_parquet(path, index=False)

    thin = _workspace_with(cfg, tmp_path, no_categories)
    with pytest.raises(ScoreError, match=r"lacks: transactions\.category \(empty\); "):
        score.run(thin, as_of=FAIL_AS_OF, bundle=cfg.bundle_dir, quiet=True)
    outcome = score.run(thin, as_of=FAIL_AS_OF, bundle=cfg.bundle_dir, quiet=True, allow_missing_sources=True)
    assert outcome["missing_inputs"] == ["transactions.category (empty)"]
    assert "transactions.category (empty)" in caplog.text and "--allow-missing-sources" in caplog.text


def test_an_as_of_far_after_the_data_is_refused_with_the_date_the_data_ends(scored):
    from pipeline.run import score
    from pipeline.run.features import read_validated
    from pipeline.run.score import latest_event_date

    cfg, _ = scored
    ends = latest_event_date(read_validated(cfg.validated_dir))
    before = _files(cfg)
    with pytest.raises(
        ScoreError, match=rf"--as-of {ends + dt.timedelta(days=8)} is 8 days after the data ends \({ends}\), more than "
        r"score.max_data_lag_days=7"
    ):
        score.run(cfg, as_of=ends + dt.timedelta(days=8), bundle=cfg.bundle_dir, quiet=True)
    assert _files(cfg) == before


def test_check_data_lag_allows_up_to_the_limit():
    from pipeline.run.score import check_data_lag

    ends = dt.date(2025, 1, 31)
    check_data_lag(dt.date(2025, 2, 7), data_ends=ends, max_lag_days=7)
    check_data_lag(dt.date(2024, 1, 1), data_ends=ends, max_lag_days=0)  # scoring the past is fine
    with pytest.raises(ScoreError, match=r"is 1 days after the data ends \(2025-01-31\)"):
        check_data_lag(dt.date(2025, 2, 1), data_ends=ends, max_lag_days=0)


def test_a_model_trained_for_another_project_or_export_is_named_when_scoring(scored, tmp_path, caplog):
    """Two shops in one registry under the default model name: shop B's scoring would use shop A's champion.
    The bundle records what it was trained from; scoring says when this config reads something else."""
    import logging

    from pipeline.bundle import load_bundle
    from pipeline.config import data_identity
    from pipeline.run import score

    cfg, _ = scored
    assert load_bundle(cfg.bundle_dir).manifest["trained_from"] == data_identity(cfg)
    assert load_bundle(cfg.bundle_dir).manifest["timezone"] == cfg.features.zone
    from pipeline.run.history import read_summary

    # the list says whose days its as-of and window are, for churn measure
    assert read_summary(scored[1]["scores_path"])["timezone"] == cfg.features.zone
    other = _workspace_with(cfg, tmp_path, lambda validated: None).model_copy(update={"project": "other-shop"})
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        score.run(other, as_of=None, bundle=cfg.bundle_dir, quiet=True)
    assert (f"was trained for project {cfg.project!r} from {cfg.sources.transactions.path}; this config is project "
            f"'other-shop' reading {cfg.sources.transactions.path}. If that is another shop") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        score.run(_workspace_with(cfg, tmp_path / "same", lambda validated: None), as_of=None, bundle=cfg.bundle_dir,
                  quiet=True)
    assert "was trained for project" not in caplog.text


def test_the_yearly_buyers_warning_of_the_labels_is_repeated_when_scoring(scored, tmp_path, caplog):
    """The list is read every week; the features stage's log seldom: a list that holds annual subscribers between
    payments says so."""
    import json
    import logging

    from pipeline.run import score
    from pipeline.run.features import labels_report_path

    cfg, _ = scored
    workspace = _workspace_with(cfg, tmp_path, lambda validated: None)
    labels_report_path(workspace).parent.mkdir(parents=True, exist_ok=True)
    labels_report_path(workspace).write_text(json.dumps({"yearly_buyers_warning": "8% of the customers ..."}))
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        score.run(workspace, as_of=None, bundle=cfg.bundle_dir, quiet=True)
    assert "labels (churn features): 8% of the customers ..." in caplog.text
    labels_report_path(workspace).write_text("{not json")  # unreadable: nothing to repeat, no traceback
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        score.run(workspace, as_of=None, bundle=cfg.bundle_dir, quiet=True)
    assert "labels (churn features)" not in caplog.text


def test_tiers_the_config_does_not_name_are_warned_about_when_scoring(scored, tmp_path, caplog):
    import logging

    from pipeline.run import score

    def renamed_tiers(validated):
        path = validated / "loyalty_events.parquet"
        loyalty = pd.read_parquet(path)
        loyalty["tier"] = loyalty["tier"].where(loyalty["tier"].isna(), "Diamond")
        loyalty.to_parquet(path)

    cfg, _ = scored
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        score.run(_workspace_with(cfg, tmp_path, renamed_tiers), as_of=None, bundle=cfg.bundle_dir, quiet=True)
    assert "loyalty tiers in the data that features.loyalty_tiers does not name: 'Diamond'" in caplog.text


def test_a_model_that_learned_the_days_of_another_time_zone_is_named_when_scoring():
    from pipeline.run.score import ScoringModelInfo, other_days_warning

    before = ScoringModelInfo(model=None, name="churn", version="1", run_id="", horizon_days=90, source="bundle b")
    assert other_days_warning(before, timezone="UTC") is None  # a bundle from before the key learned UTC days
    assert other_days_warning(before, timezone="America/New_York").startswith(
        "the model (bundle b, version 1) learned from days of UTC; this config counts days of America/New_York ")
    local = ScoringModelInfo(model=None, name="churn", version="1", run_id="", horizon_days=90, source="bundle b",
                             timezone="America/New_York")
    assert other_days_warning(local, timezone="America/New_York") is None


def test_bundles_that_record_no_origin_are_not_warned_about():
    from pipeline.run.score import ScoringModelInfo, other_data_warning

    info = ScoringModelInfo(model=None, name="churn", version="1", run_id="", horizon_days=90, source="bundle b")
    assert other_data_warning(info, trained_from_now={"project": "x", "transactions": "t.csv"}) is None
    recorded = ScoringModelInfo(model=None, name="churn", version="1", run_id="", horizon_days=90, source="bundle b",
                                trained_from={"project": "x", "transactions": "t.csv"})
    assert other_data_warning(recorded, trained_from_now={"project": "x", "transactions": "t.csv"}) is None
    assert other_data_warning(recorded, trained_from_now={"project": "x", "transactions": "u.csv"}).startswith(
        "the model (bundle b, version 1) was trained for project 'x' from t.csv; this config is project 'x' reading u.csv")


MONEY_WORDS = ["spent", "spend", "worth", "order value", "money"]


def test_an_export_without_money_gets_no_sentence_about_spend(scored, tmp_path, caplog):
    """Amount given by `constants` (a purchase log of items): sums of it count lines, so no reason speaks of spend,
    and the drivers about it are skipped for the next; the demo's own list does speak of spend."""
    from pipeline.run import score

    cfg, outcome = scored
    reasons = pd.read_parquet(outcome["scores_path"]).filter(like="reason_")
    assert reasons_mention(reasons, MONEY_WORDS).any()
    workspace = _workspace_with(cfg, tmp_path, lambda validated: None)
    constant = workspace.sources.transactions.model_copy(update={"constants": {"amount": "1"}})
    workspace = workspace.model_copy(update={"sources": workspace.sources.model_copy(update={"transactions": constant})})
    moneyless = pd.read_parquet(score.run(workspace, as_of=None, bundle=None, quiet=True)["scores_path"])
    assert "count order lines, not money" in caplog.text  # the list's values are counts: said where it is scored
    sentences = moneyless.filter(like="reason_")
    assert sentences.notna().any().any() and not reasons_mention(sentences, MONEY_WORDS).any()


def _with_risk_tiers(cfg, tmp_path, tiers):
    """`cfg` on a copy of its validated files, scoring with `tiers` as score.risk_tiers."""
    workspace = _workspace_with(cfg, tmp_path, lambda validated: None)
    return workspace.model_copy(update={"score": workspace.score.model_copy(update={"risk_tiers": tiers})})


def test_the_default_list_records_its_fixed_tiers_as_before(scored):
    import json

    _, outcome = scored
    with open(outcome["summary_path"], encoding="utf-8") as file:
        summary = json.load(file)
    assert summary["risk_tiers"] == {"high": 0.5, "medium": 0.25} and summary["min_probability"] == 0.25
    assert not {"risk_tiers_from", "relative_tiers_would_list"} & set(summary)
    assert not [line for line in summary["in_words"] if "tier: churn probability" in line]
    assert "actions only from churn probability 0.25)" in summary["in_words"][1]
    scores = pd.read_parquet(outcome["scores_path"])
    p = scores["churn_probability"]
    assert (scores["risk_tier"] == np.where(p >= 0.5, "high", np.where(p >= 0.25, "medium", "low"))).all()


def test_relative_tiers_are_resolved_for_the_list_recorded_said_and_logged(scored, tmp_path):
    import json

    import mlflow

    from pipeline.config import RiskTiersConfig
    from pipeline.run import score
    from pipeline.run.score import probability_text
    from pipeline.score import tier_thresholds

    cfg, _ = scored
    tiers = RiskTiersConfig(high=1.5, medium=1.2, relative_to="mean_probability")
    outcome = score.run(_with_risk_tiers(cfg, tmp_path, tiers), as_of=None, bundle=None, quiet=True)
    with open(outcome["summary_path"], encoding="utf-8") as file:
        summary = json.load(file)
    scores = pd.read_parquet(outcome["scores_path"])
    p = scores["churn_probability"]
    mean, n = p.mean(), len(scores)
    assert summary["risk_tiers_from"] == {"relative_to": "mean_probability", "multiples": {"high": 1.5, "medium": 1.2},
                                          "mean_probability": pytest.approx(mean, rel=1e-12), "customers": n}
    high, medium = summary["risk_tiers"]["high"], summary["risk_tiers"]["medium"]
    assert (high, medium) == (pytest.approx(1.5 * mean, rel=1e-12), pytest.approx(1.2 * mean, rel=1e-12))
    again = tier_thresholds(p, tiers=tiers)  # from the written list: the very thresholds the JSON records
    assert (again.high, again.medium) == (high, medium)
    assert (scores["risk_tier"] == np.where(p >= high, "high", np.where(p >= medium, "medium", "low"))).all()
    assert 0 < summary["tiers"]["medium"] and 0 < summary["tiers"]["high"] < summary["at_risk"] < n
    assert summary["min_probability"] == medium and (p[scores["group"] != "none"] >= medium).all()
    assert (f"high tier: churn probability {probability_text(high)} or more, 1.5 times the mean "
            f"{probability_text(mean)} of the {n:,} customers scored; medium tier: churn probability "
            f"{probability_text(medium)} or more, 1.2 times the mean") in summary["in_words"]
    run = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri()).get_run(outcome["mlflow_run_id"])
    assert run.data.params["risk_tiers_relative_to"] == "mean_probability"
    assert run.data.metrics["risk_tier_high_from"] == pytest.approx(high)
    assert run.data.metrics["risk_tier_medium_from"] == pytest.approx(medium)
    assert run.data.metrics["mean_probability"] == pytest.approx(mean)


def test_a_list_naming_nobody_counts_whom_relative_tiers_would_list(scored, tmp_path):
    import json

    from pipeline.config import RiskTiersConfig
    from pipeline.run import score

    cfg, outcome = scored
    above_everyone = min(0.999, outcome["highest_probability"] + 0.0005)  # the highest is below it
    tiers = RiskTiersConfig(high=above_everyone + 0.0001, medium=above_everyone)
    summary = score.run(_with_risk_tiers(cfg, tmp_path, tiers), as_of=None, bundle=None, quiet=True)
    p = pd.read_parquet(summary["scores_path"])["churn_probability"]
    assert summary["at_risk"] == 0 and p.max() < above_everyone
    with open(summary["summary_path"], encoding="utf-8") as file:
        would = json.load(file)["relative_tiers_would_list"]
    assert would["mean_probability"] == pytest.approx(p.mean(), rel=1e-12)
    setting = would["setting"]
    assert setting == {"high": 2.0, "medium": 1.5, "relative_to": "mean_probability"}  # the demo's riskiest reach it
    assert would["at_risk"] == int((p >= 1.5 * would["mean_probability"]).sum()) > 0
    assert would["high"] == int((p >= 2 * would["mean_probability"]).sum())
    said = [line for line in summary["in_words"] if line.startswith("no customer reaches")]
    assert len(said) == 1 and said[0].endswith(
        f"score.risk_tiers {{high: 2, medium: 1.5, relative_to: mean_probability}} would list the {would['at_risk']:,} "
        f"customers at 1.5 times the mean or more ({would['high']:,} at twice the mean or more, the high tier)")


def test_the_bundle_keeps_its_test_snapshots_btyd_fits_and_scoring_compares_todays_with_them(
        scored, tmp_path, monkeypatch):
    """Training keeps what the test snapshot's BTYD fits found (its file's record) with the drift reference; scoring
    compares it with what today's fits found: a fit that lands elsewhere today is named in the drift block."""
    from pipeline.bundle import load_bundle
    from pipeline.config import PathsConfig
    from pipeline.drift import changed_fits
    from pipeline.features.store import read_btyd_fits, snapshot_path
    from pipeline.run import score

    cfg, outcome = scored
    reference = load_bundle(cfg.bundle_dir).manifest["drift_reference"]
    test_snapshot = dt.date.fromisoformat(reference["snapshot"])
    assert reference["fits"] == read_btyd_fits(snapshot_path(cfg.features_dir, test_snapshot))
    assert [fit["model"] for fit in reference["fits"]] == ["BG/NBD", "Pareto/NBD"]
    real = score.features_labels_and_fits_streamed
    today: list[list[dict]] = []

    def elsewhere(*args, **kwargs):  # BG/NBD's fit today finds what it did not at the test snapshot
        features, labels, fits = real(*args, **kwargs)
        today.append(fits)
        other = "no_dropout" if fits[0]["outcome"] != "no_dropout" else "dropout"
        return features, labels, [{**fits[0], "outcome": other}, *fits[1:]]

    monkeypatch.setattr(score, "features_labels_and_fits_streamed", elsewhere)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validated").symlink_to(cfg.validated_dir)
    moved = cfg.model_copy(update={"paths": PathsConfig(data_dir=tmp_path / "data", models_dir=cfg.paths.models_dir)})
    rescored = score.run(moved, as_of=dt.date.fromisoformat(outcome["as_of"]), bundle=cfg.bundle_dir, quiet=True)
    then = {fit["model"]: fit["outcome"] for fit in reference["fits"]}
    assert outcome["drift"]["changed_fits"] == changed_fits(
        reference["fits"], today[0], reference_snapshot=reference["snapshot"], as_of=outcome["as_of"])
    bgnbd = [change for change in rescored["drift"]["changed_fits"] if change["model"] == "BG/NBD"]
    assert bgnbd and bgnbd[0]["then"] == then["BG/NBD"] and bgnbd[0]["as_of"] == outcome["as_of"]


def test_a_btyd_fit_that_fails_on_the_scoring_day_is_one_warning(scored, tmp_path, monkeypatch, caplog):
    """Pareto/NBD failing on the scoring day: its features are NaN for every customer scored, and the run says so."""
    import logging

    from pipeline.features import btyd
    from pipeline.run import score

    cfg, _ = scored
    monkeypatch.setattr(btyd, "fit_pareto_nbd", lambda *_: btyd.Fit(params=None, status="failed: planted by the test"))
    workspace = _workspace_with(cfg, tmp_path, lambda validated: None)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        outcome = score.run(workspace, as_of=FAIL_AS_OF, bundle=cfg.bundle_dir, quiet=True, replace=True)
    warned = [record.getMessage() for record in caplog.records
              if record.levelno >= logging.WARNING and "BTYD" in record.getMessage()]
    assert warned == [f"scoring {FAIL_AS_OF}: BTYD: Pareto/NBD could not be fitted at the snapshot {FAIL_AS_OF}, and its "
                      f"features are NaN there; at {FAIL_AS_OF}: Pareto/NBD failed: planted by the test"]
    assert outcome["customers_scored"] > 0
