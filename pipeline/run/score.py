"""`churn score`: the at-risk list with reasons, budgeted actions and a control group.

Reads the validated events (the columns the features use), loads the champion model (or a bundle
folder) after verifying its checksums, builds features as of the date with the training feature
code, scores, and writes
`<scores_dir>/at_risk_YYYY-MM-DD.parquet`, `.csv`, `.json` (summary) and the risk-tier figure as one
set (`pipeline.io.output_set`): all of this run's files, or, after a failure, all of the previous
run's. Everything is validated (playbook against the feature registry, model bundle, feature columns)
before the first file is written. Equal inputs give byte-identical files
(the summary holds no timestamps or run ids; the MLflow run records those).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline.bundle import load_bundle
from pipeline.config import Config, data_identity
from pipeline.contract import CONTRACTS
from pipeline.errors import BundleError, ScoreError
from pipeline.features.btyd import failed_fits_warning
from pipeline.features.registry import feature_specs, reason_context_frame, without_money_reasons
from pipeline.features.store import input_coverage
from pipeline.io import (
    atomic_write,
    complete_interrupted_publishes,
    neutralise_formulas,
    output_set,
    read_report,
    sha256_file,
    write_json,
    write_parquet,
    write_text,
)
from pipeline.labels import seen_outcomes_warning
from pipeline.playbook import Playbook, check_playbook_features, feature_kinds, load_playbook, starter_playbook_text
from pipeline.plots_review import risk_tier_action_figure, save_figure
from pipeline.progress import get_logger, timed
from pipeline.run.drift import newer_labels_since_training, observed_rate, scoring_drift
from pipeline.run.features import (
    features_labels_and_fits_streamed,
    labels_report_path,
    read_validated,
    unknown_tier_warning,
)
from pipeline.run.uplift import load_uplift_models, uplift_dir
from pipeline.score import (
    TIER_HIGH,
    TIER_MEDIUM,
    TREATMENT_RECORD,
    action_probability_floor,
    changed_treatments,
    relative_tiers_would_list,
    score_customers,
    summarise_scores,
    tier_thresholds,
    tiers_summary,
)
from pipeline.snapshot import latest_event_date as orders_end
from pipeline.tracking import champion_bundle, configure_mlflow, metric_key, tracking_settings, use_experiment
from pipeline.uplift import predict_uplift


@dataclass(frozen=True)
class ScoringModelInfo:
    """The verified model and where it came from."""

    model: Any
    name: str
    version: str
    run_id: str
    horizon_days: int
    source: str
    drift_reference: dict | None = None  # the training test snapshot's summary (pipeline.drift), when recorded
    training_inputs: dict[str, list[str]] | None = None  # sources -> non-empty columns at training (None: not recorded)
    training_snapshots: list[str] | None = None  # the snapshots the model was fitted on (None: not recorded)
    trained_from: dict[str, str] | None = None  # project and transactions path at training (None: not recorded)
    timezone: str = "UTC"  # the business time zone whose days the model learned from (bundles before it: UTC)
    chance_ranking: str | None = None  # churn train's warning that the model ranked its test snapshot at chance


NO_MONEY_WARNING = ("sources.transactions gives amount by constants (the export has no money): customer_value, the "
                    "actions' expected gains and what score.budget buys count order lines, not money; the reasons "
                    "leave spend out")


def scores_paths(cfg: Config, as_of: dt.date) -> dict[str, Path]:
    """Output files of the scoring run for `as_of`."""
    stem = cfg.scores_dir / f"at_risk_{as_of.isoformat()}"
    return {
        "parquet": stem.with_suffix(".parquet"),
        "csv": stem.with_suffix(".csv"),
        "summary": stem.with_suffix(".json"),
        "figure": cfg.scores_dir / f"risk_tiers_{as_of.isoformat()}.png",
    }


def write_scores_csv(scores: pd.DataFrame, path: Path) -> Path:
    """Write the at-risk table as CSV atomically with Arrow's writer (about 10x faster than pandas here).

    Same values as the Parquet file: strings quoted, missing values empty, floats in their shortest
    round-trip form (2 rather than 2.0), dates as YYYY-MM-DD; text cells that a spreadsheet would run
    as a formula get a leading single quote (`pipeline.io.neutralise_formulas`).
    """
    table = pa.Table.from_pandas(neutralise_formulas(scores), preserve_index=False)
    return atomic_write(path, lambda tmp: pa_csv.write_csv(table, str(tmp)))


def check_replacing(path: Path, scores: pd.DataFrame, *, as_of: dt.date, replace: bool) -> None:
    """Refuse to write `scores` over an earlier list of the same day (`path`) that gave other customers, groups or
    actions, unless `replace`: its treatments may have been handed out, and that list is the record `churn measure`,
    `churn monitor` and the training's label exclusion read. A rerun that changes none of them (a retried job) writes
    over it; with `replace`, a changed list is written over with a warning."""
    if not path.exists():
        return
    try:
        existing = pd.read_parquet(path, columns=list(TREATMENT_RECORD))
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        if replace:
            return
        raise ScoreError(f"{path} already holds a list of {as_of} that cannot be read ({exc}); move it away, or "
                         "pass --replace to write over it") from None
    changed = changed_treatments(existing, scores)
    if not changed:
        return
    said = (f"{path} already holds the at-risk list of {as_of}, and this run changes the group or action of "
            f"{changed:,} customer{'s' * (changed != 1)} (or adds or drops them)")
    if not replace:
        raise ScoreError(f"{said}: if its actions were handed out, that list is the record churn measure needs. Score "
                         "another date, move it away, or pass --replace to write over it")
    get_logger().warning("%s: written over", said)


def latest_event_date(frames: Mapping[str, pl.DataFrame], *, timezone: str = "UTC") -> dt.date | None:
    """Date of the latest order in the business time zone `timezone`: the data's end, as the features and labels
    take it (None without orders).

    Input: source name -> validated frame (polars, as `read_validated` gives; UTC timestamps). Other sources may run
    later (an NPS export taken weeks after the orders'): days without recorded orders are not days without
    purchases, so they do not move the data's end (`later_sources_warning` names them).
    """
    transactions = frames.get("transactions")
    return None if transactions is None or not transactions.height else orders_end(transactions, timezone=timezone)


def later_sources_warning(
    frames: Mapping[str, pl.DataFrame], *, data_ends: dt.date | None, as_of: dt.date, timezone: str = "UTC"
) -> str | None:
    """A sentence naming the sources whose events run past the last order (`data_ends`) and on or after `as_of`: a
    scoring run does not see them. None when none does. Dates are days of the business time zone `timezone`."""
    if data_ends is None:
        return None
    later = []
    for name, frame in frames.items():
        column = CONTRACTS[name].time_column
        latest = frame[column].max() if name != "transactions" and column and frame.height else None
        if latest is None:
            continue
        ends = pd.Timestamp(latest).tz_convert(timezone).date()
        if ends > data_ends and ends >= as_of:
            later.append(f"{name} to {ends} ({(ends - data_ends).days} days)")
    if not later:
        return None
    quiet = (as_of - data_ends).days - 1  # days after the last order's day before the snapshot
    counted = ("a later date would count the days without recorded orders as days without purchases" if quiet <= 0
               else f"it already counts the {quiet:,} day{'s' * (quiet != 1)} after the last order's day "
                    f"({data_ends + dt.timedelta(days=1)} to {as_of - dt.timedelta(days=1)}), without recorded orders, "
                    "as days without purchases for every customer")
    return (f"{', '.join(later)} run past the last order ({data_ends}): scoring as of {as_of} leaves their later "
            f"events out, and {counted}. Export the orders up to the same day to use them")


def default_as_of(frames: Mapping[str, pl.DataFrame], *, timezone: str = "UTC") -> dt.date:
    """The day after the last order (days of the business time zone `timezone`): every order so far is before the
    snapshot."""
    latest = latest_event_date(frames, timezone=timezone)
    if latest is None:
        raise ScoreError("the validated transactions hold no orders: nothing to score; run `churn ingest`")
    return latest + dt.timedelta(days=1)


def check_data_lag(as_of: dt.date, *, data_ends: dt.date | None, max_lag_days: int) -> None:
    """Raise ScoreError when `as_of` is more than `max_lag_days` after `data_ends` (the last order's date)."""
    if data_ends is not None and (as_of - data_ends).days > max_lag_days:
        raise ScoreError(
            f"--as-of {as_of} is {(as_of - data_ends).days} days after the data ends ({data_ends}), more than "
            f"score.max_data_lag_days={max_lag_days}: recency would grow while nothing was recorded. Ingest newer "
            "exports, score an earlier date, or raise score.max_data_lag_days"
        )


def missing_inputs(trained: Mapping[str, list[str]], present: Mapping[str, list[str]]) -> list[str]:
    """What the model was trained with that the scoring data lacks: `<source> (no rows)` for a source
    without rows, `<source>.<column> (empty)` for a column without values. Inputs: `input_coverage` results."""
    missing = []
    for source, columns in trained.items():
        if source not in present:
            missing.append(f"{source} (no rows)")
            continue
        missing += [f"{source}.{column} (empty)" for column in columns if column not in present[source]]
    return missing


def check_inputs(
    info: ScoringModelInfo, present: Mapping[str, list[str]], *, allow_missing: bool
) -> list[str]:
    """Refuse (ScoreError) scoring data lacking sources or columns the model was trained with, unless
    `allow_missing` (then warn). Returns what is missing ([] when nothing, or when not recorded)."""
    missing = missing_inputs(info.training_inputs or {}, present)
    if not missing:
        return []
    message = (
        f"the model was trained with inputs the scoring data lacks: {', '.join(missing)}; the features built "
        "from them would be missing and risks would shift"
    )
    if not allow_missing:
        raise ScoreError(
            f"{message}. Configure and ingest them (sources.<name> in the config, then churn ingest), or pass "
            "--allow-missing-sources to score anyway"
        )
    get_logger().warning("%s (scoring anyway: --allow-missing-sources)", message)
    return missing


def load_scoring_model(cfg: Config, *, bundle: Path | None, workdir: Path) -> ScoringModelInfo:
    """Verify and load the bundle at `bundle`, or the registry's champion (downloaded into `workdir`)."""
    if bundle is not None:
        path, version, source = Path(bundle), None, f"bundle {bundle}"
    else:
        tracking = tracking_settings(cfg)
        configure_mlflow(tracking)
        path, version = champion_bundle(tracking, dest=workdir)
        source = f"registry {cfg.train.model_name}@champion"
    loaded = load_bundle(path)
    manifest = loaded.manifest
    return ScoringModelInfo(
        model=loaded.model,
        name=str(manifest.get("model_name") or cfg.train.model_name),
        version=str(version if version is not None else manifest.get("model_version")),
        run_id=str(manifest.get("mlflow_run_id") or manifest.get("run_id") or ""),
        horizon_days=int(manifest.get("horizon_days") or cfg.features.horizon_days),
        source=source,
        drift_reference=manifest.get("drift_reference"),
        training_inputs=manifest.get("training_inputs"),
        training_snapshots=manifest.get("training_snapshots") or None,
        trained_from=manifest.get("trained_from") or None,
        timezone=str(manifest.get("timezone") or "UTC"),
        chance_ranking=loaded.metrics.get("chance_ranking") or None,
    )


def other_data_warning(info: ScoringModelInfo, *, trained_from_now: Mapping[str, str]) -> str | None:
    """A warning when the model was trained from another project or transactions path than this config's (another
    shop's model in a shared registry, say); None when they agree or the bundle does not record it."""
    then = info.trained_from
    if not then or all(then.get(key) == trained_from_now.get(key) for key in ("project", "transactions")):
        return None
    return (
        f"the model ({info.source}, version {info.version}) was trained for project {then.get('project')!r} from "
        f"{then.get('transactions')}; this config is project {trained_from_now.get('project')!r} reading "
        f"{trained_from_now.get('transactions')}. If that is another shop, these scores come from its model: give "
        "each shop its own train.model_name (or registry) and train it"
    )


def other_days_warning(info: ScoringModelInfo, *, timezone: str) -> str | None:
    """A warning when the model learned from the days of another business time zone than this config's
    `timezone` (features.timezone): its features and the as-of cut count other days. None when they agree."""
    if info.timezone == timezone:
        return None
    return (f"the model ({info.source}, version {info.version}) learned from days of {info.timezone}; this config "
            f"counts days of {timezone} (features.timezone, or the transactions source's timezone): today's features "
            "cut and count days differently from the ones it learned. Run `churn features` and `churn train` again "
            "to score with one calendar")


def learned_uplift(cfg: Config, features: pd.DataFrame) -> pd.DataFrame | None:
    """With uplift.use_model: per customer (index customer_id) the uplift of each action whose model beat a
    constant uplift on held-out campaigns (`churn uplift`); None otherwise or when no model did."""
    if not cfg.uplift.use_model:
        return None
    learners = load_uplift_models(uplift_dir(cfg))
    if not learners:
        get_logger().warning(
            "uplift.use_model is on, but no uplift model beat a constant uplift on held-out campaigns: "
            "the playbook's uplift is used for every action"
        )
        return None
    indexed = features.set_index("customer_id")
    return pd.DataFrame({action: predict_uplift(learner, indexed)["uplift"] for action, learner in learners.items()})


def _summary(
    scores: pd.DataFrame, *, cfg: Config, as_of: dt.date, info: ScoringModelInfo, playbook: Playbook, paths: dict[str, Path]
) -> dict[str, Any]:
    thresholds = tier_thresholds(scores["churn_probability"], tiers=cfg.score.risk_tiers)
    floor = action_probability_floor(cfg.score, thresholds)
    summary = {
        **summarise_scores(scores, budget=cfg.score.budget, as_of=as_of),
        "model_name": info.name,
        "model_version": info.version,
        "model_run_id": info.run_id,
        "horizon_days": info.horizon_days,
        "measure_after": (as_of + dt.timedelta(days=info.horizon_days)).isoformat(),
        "timezone": cfg.features.zone,  # whose days as_of and measure_after are: the window churn measure reads
        "control_share": cfg.score.control_share,
        "value_model": cfg.score.value_model,
        "value_horizon_days": cfg.score.value_horizon_days,
        "uplift_sources": {str(k): int(v) for k, v in scores["uplift_source"].value_counts().sort_index().items()},
        **tiers_summary(thresholds),
        "reason_tiers": list(cfg.score.reason_tiers),
        "reason_limit": cfg.score.reason_limit,
        "min_probability": floor if floor <= 1.0 else None,
        "playbook": {
            "path": str(cfg.score.playbook),
            "sha256": sha256_file(cfg.score.playbook),
            "actions": {
                a.name: {"cost": a.cost, "uplift": a.uplift, "channel": a.channel, "capacity": a.capacity,
                         "min_p_alive": a.min_p_alive}
                for a in playbook.actions
            },
        },
        "files": {kind: path.name for kind, path in paths.items() if kind != "summary"},
    }
    if cfg.score.risk_tiers.relative_to is None and (not summary["at_risk"] or nearly_everyone(summary)):
        summary["relative_tiers_would_list"] = relative_tiers_would_list(scores["churn_probability"])
    return {**summary, "in_words": summary_sentences(summary, playbook)}


def summary_sentences(summary: dict[str, Any], playbook: Playbook) -> list[str]:
    """The scoring summary in plain words: who is treated, the budget, and why at-risk customers get no action."""
    cost = {a.name: a.cost for a in playbook.actions}
    floor = summary["min_probability"]
    lines = [
        f"{summary['customers_scored']:,} customers scored, {summary['at_risk']:,} at risk ("
        + (f"{summary['tiers'][TIER_HIGH]:,} in the high tier, {summary['tiers'][TIER_MEDIUM]:,} in the medium tier)"
           if summary["at_risk"] else "high or medium tier)"),
        *relative_tiers_sentences(summary),
        f"{summary['treatment']:,} treated ({summary['treated_below_high_tier']:,} of them below the high tier; "
        + (f"actions only from churn probability {probability_text(floor)}" if floor is not None
           else "no actions: nobody can reach the medium tier") + "), "
        f"{summary['control']:,} held out as control",
        f"budget {summary['budget']:,.2f}: {summary['budget_spent_on_treated']:,.2f} spent on treated customers, "
        f"{summary['budget_held_back_for_control']:,.2f} held back with the control group to measure the effect, "
        f"{summary['budget_left']:,.2f} left",
    ]
    lines += no_one_at_risk(summary)
    lines += everyone_at_risk(summary)
    lines += unmeasurable_actions(summary["actions"])
    reasons = [f"{reason}: {n:,}" for reason, n in summary["no_action"].items() if n]
    if reasons:
        lines.append("no action, by reason: " + ", ".join(reasons))
    for action, info in summary["not_worth_its_cost"].items():
        mean_net = info["mean_expected_net_value"]
        lines.append(
            f"{info['customers']:,} at-risk customers whose best action {action} is worth less than its cost "
            f"(expected value {mean_net + cost.get(action, 0.0):,.2f} on average, cost {cost.get(action, 0.0):,.2f})"
        )
    return lines


def probability_text(p: float) -> str:
    """A churn probability in words: three significant digits, at least two decimals (0.25, 0.50, 0.165, 0.0823): a
    relative tier's threshold or a low mean rounded to two decimals would misstate it."""
    whole, _, decimals = np.format_float_positional(p, precision=3, fractional=False, trim="-").partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def times_text(multiple: float) -> str:
    """'twice', '3 times', '1.5 times'."""
    return "twice" if multiple == 2 else f"{multiple:g} times"


def relative_tiers_sentences(summary: dict[str, Any]) -> list[str]:
    """With relative risk tiers (`risk_tiers_from` in the summary), a sentence saying each tier's churn probability
    and how it was found: 'high tier: churn probability 0.247 or more, 3 times the mean 0.0823 of the 4,265 customers
    scored; medium tier: ...'. [] with fixed tiers."""
    found = summary.get("risk_tiers_from")
    if not found:
        return []
    mean, customers = found["mean_probability"], found["customers"]
    of = f"the mean {probability_text(mean)} of the {customers:,} customers scored"
    parts = []
    for tier in ("high", "medium"):
        multiple, threshold = found["multiples"][tier], summary["risk_tiers"][tier]
        if threshold is not None:
            parts.append(f"{tier} tier: churn probability {probability_text(threshold)} or more, "
                         f"{times_text(multiple)} {of}")
        elif mean > 0:
            parts.append(f"{tier} tier: nobody, as {times_text(multiple)} {of} is "
                         f"{probability_text(multiple * mean)}, above any churn probability")
        else:
            parts.append(f"{tier} tier: nobody, as every one of the {customers:,} customers scored has churn "
                         "probability 0")
        of = "the mean"
    return ["; ".join(parts)]


def relative_tiers_named(would: dict[str, Any]) -> str:
    """The setting of `relative_tiers_would_list` as a config line: 'score.risk_tiers {high: ..., medium: ...,
    relative_to: mean_probability}'."""
    setting = would["setting"]
    return (f"score.risk_tiers {{high: {setting['high']:g}, medium: {setting['medium']:g}, relative_to: "
            f"{setting['relative_to']}}}")


def relative_tiers_offer(would: dict[str, Any]) -> str:
    """'set them relative to the mean churn probability 0.31: score.risk_tiers {...} would list the 6 customers at
    1.5 times the mean or more (2 at 2 times the mean or more, the high tier)' (`relative_tiers_would_list`)."""
    setting = would["setting"]
    return (f"set them relative to the mean churn probability {probability_text(would['mean_probability'])}: "
            f"{relative_tiers_named(would)} would list the {would['at_risk']:,} customer"
            f"{'s' * (would['at_risk'] != 1)} at {times_text(setting['medium'])} the mean or more ({would['high']:,} at "
            f"{times_text(setting['high'])} the mean or more, the high tier)")


def no_one_at_risk(summary: dict[str, Any]) -> list[str]:
    """A sentence when customers were scored but none reaches the medium tier (a low churn rate, a long history of
    steady buyers), so the list names nobody, explains nobody and treats nobody. With fixed tiers it says how many
    customers the relative tiers of `relative_tiers_would_list` in the summary would list; with relative tiers, which
    multiple of the mean nobody reaches."""
    highest, medium = summary.get("highest_probability"), summary["risk_tiers"]["medium"]
    if summary["at_risk"] or not summary["customers_scored"] or highest is None:
        return []
    found = summary.get("risk_tiers_from")
    if found:
        multiple, mean = found["multiples"]["medium"], found["mean_probability"]
        tier = (f"the medium tier's churn probability {probability_text(medium)}" if medium is not None
                else "the medium tier")
        return [f"no customer reaches {tier}, {times_text(multiple)} the mean {probability_text(mean)} (the highest "
                f"is {probability_text(highest)}), so none is listed at risk, explained or offered an action: lower "
                "score.risk_tiers.medium (a multiple of the mean above 1), or where most customers churn give fixed "
                "probabilities (no relative_to)"]
    line = (f"no customer reaches the medium tier's churn probability {probability_text(medium)} (the highest is "
            f"{probability_text(highest)}), so none is listed at risk, explained or offered an action: lower "
            "score.risk_tiers to list the riskiest")
    would = summary.get("relative_tiers_would_list")
    if not would:
        return [line]
    setting, named, mean = would["setting"], relative_tiers_named(would), probability_text(would["mean_probability"])
    if not would["at_risk"]:
        return [f"{line}; relative tiers would list nobody either: the highest is less than "
                f"{times_text(setting['medium'])} the mean {mean} ({named})"]
    return [f"{line}, or {relative_tiers_offer(would)}"]


NEARLY_EVERYONE = 0.9  # of the customers scored listed at risk: the fixed tiers set hardly anyone apart ...
NEARLY_EVERYONE_MIN_CUSTOMERS = 20  # ... in a list of at least this many


def nearly_everyone(summary: dict[str, Any]) -> bool:
    """True when fixed risk tiers (no `risk_tiers_from` in the summary) put at least NEARLY_EVERYONE of the
    NEARLY_EVERYONE_MIN_CUSTOMERS or more customers scored at risk."""
    scored = summary["customers_scored"]
    return (not summary.get("risk_tiers_from") and scored >= NEARLY_EVERYONE_MIN_CUSTOMERS
            and summary["at_risk"] >= NEARLY_EVERYONE * scored)


def everyone_at_risk(summary: dict[str, Any]) -> list[str]:
    """A sentence when fixed tiers list nearly every customer scored at risk (`nearly_everyone`: most customers churn
    within the horizon, or a model that hardly tells them apart scores all near the churn rate), so the list sets
    hardly anyone apart: with what relative tiers (`relative_tiers_would_list` in the summary) would list instead."""
    if not nearly_everyone(summary):
        return []
    scored, at_risk, medium = summary["customers_scored"], summary["at_risk"], summary["risk_tiers"]["medium"]
    line = (f"{at_risk:,} of the {scored:,} customers scored ({at_risk / scored:.0%}) reach the medium tier's churn "
            f"probability {probability_text(medium)} (the lowest is {probability_text(summary['lowest_probability'])})"
            f", so being listed at risk sets {'nobody' if at_risk == scored else 'hardly anyone'} apart: raise "
            "score.risk_tiers")
    would = summary.get("relative_tiers_would_list")
    if not would:
        return [line]
    setting, named, mean = would["setting"], relative_tiers_named(would), probability_text(would["mean_probability"])
    if not would["at_risk"]:
        highest = probability_text(summary["highest_probability"])
        return [f"{line}; relative tiers would list nobody: the highest ({highest}) is less than "
                f"{times_text(setting['medium'])} the mean {mean} ({named}), so the model hardly tells these customers "
                "apart"]
    return [f"{line}, or {relative_tiers_offer(would)}"]


def unmeasurable_actions(actions: dict[str, dict]) -> list[str]:
    """A sentence per action (`summary['actions']`) whose planned effect this list's control and treated groups cannot
    tell from chance: the smallest drop in churn they can, and the control share that would."""
    lines = []
    for action, entry in actions.items():
        planned, detectable = entry["planned_reduction"], entry["detectable_reduction"]
        if planned is None or (detectable is not None and detectable <= planned):
            continue
        if detectable is None:
            lines.append(f"{action}: {entry['treatment']:,} treated and {entry['control']:,} in control, so this list "
                         "cannot measure its effect")
            continue
        share = entry["control_share_to_detect"]
        remedy = (f"a control share of {share:.2f} would (score.control_share; fewer treated)" if share is not None
                  else f"no control share would with {entry['treatment'] + entry['control']:,} customers; pooled "
                       "over several lists (churn measure --update-playbook) the interval narrows")
        told = ("no drop in churn at all" if detectable >= entry["expected_churn"]  # more than all its churn
                else f"only a drop in churn of {detectable * 100:.1f} points or more")
        lines.append(
            f"{action}: with {entry['control']:,} in control and {entry['treatment']:,} treated, this list tells from "
            f"chance {told} (80% power, 95% confidence), and the playbook expects a drop of {planned * 100:.1f} points "
            f"(its uplift times each customer's churn probability, {entry['expected_churn']:.0%} on average): this "
            f"list alone cannot measure it; {remedy}"
        )
    return lines


def _log_to_mlflow(cfg: Config, summary: dict[str, Any], paths: dict[str, Path]) -> str:
    experiment_id = use_experiment(tracking_settings(cfg), cfg.mlflow.scoring_experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"score {summary['as_of']}") as run:
        mlflow.set_tags(
            {
                "stage": "score",
                "as_of": summary["as_of"],
                "model_name": summary["model_name"],
                "model_version": summary["model_version"],
                "model_run_id": summary["model_run_id"],
            }
        )
        mlflow.log_params(
            {
                "as_of": summary["as_of"],
                "model_name": summary["model_name"],
                "model_version": summary["model_version"],
                "budget": summary["budget"],
                "control_share": summary["control_share"],
                "value_model": summary["value_model"],
                "reason_limit": summary["reason_limit"],
                "playbook_sha256": summary["playbook"]["sha256"],
                "scores_file": str(paths["parquet"]),
            }
        )
        metrics = {
            key: float(summary[key])
            for key in ("customers_scored", "at_risk", "selected", "treatment", "control", "budget_used",
                        "budget_committed", "expected_net_value", "expected_net_value_committed")
        }
        metrics.update({metric_key("tier", tier): float(n) for tier, n in summary["tiers"].items()})
        if summary.get("risk_tiers_from"):  # relative tiers: the thresholds this list's mean gave
            mlflow.log_param("risk_tiers_relative_to", summary["risk_tiers_from"]["relative_to"])
            metrics["mean_probability"] = float(summary["risk_tiers_from"]["mean_probability"])
            metrics.update({metric_key("risk_tier", tier, "from"): float(threshold)
                            for tier, threshold in summary["risk_tiers"].items() if threshold is not None})
        metrics.update({metric_key("reasons", status): float(n) for status, n in summary["reasons"].items()})
        metrics.update(
            {metric_key("action", action, key): float(n) for action, entry in summary["actions"].items()
             for key, n in entry.items() if n is not None}
        )
        if summary.get("drift"):
            metrics.update({metric_key("drift_psi", row["feature"]): float(row["psi"]) for row in summary["drift"]["largest_shifts"]})
            metrics["drift_warnings"] = float(len(summary["drift"]["warnings"]))
            mlflow.set_tag("retrain_recommended", str(summary["drift"]["retrain_recommended"]).lower())
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary, "score/summary.json")
        mlflow.log_artifact(str(cfg.score.playbook), "score")
        mlflow.log_artifact(str(paths["figure"]), "score")
    return run.info.run_id


def write_starter_playbook(cfg: Config) -> None:
    """When the config names no playbook and none is beside it, write the starter playbook there and say so.

    Only a file that does not exist is written; the loop (`churn measure`, `churn playbook-update`) then
    versions it beside the config as it does any playbook.
    """
    path = Path(cfg.score.playbook)
    if not cfg.score.starter_playbook or path.exists():
        return
    write_text(starter_playbook_text(), path)
    get_logger().warning(
        "the config names no playbook and there is none at %s: wrote the starter playbook there. Its costs and "
        "uplifts are starting assumptions, not measurements: edit them to your business (or set score.playbook)",
        path,
    )


def run(
    cfg: Config, *, as_of: dt.date | None, bundle: Path | None, quiet: bool, allow_missing_sources: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """Score every eligible customer as of `as_of` (default: the day after the last order).

    Refuses to write over an earlier list of the same day that handed out other groups or actions, unless
    `replace` (`check_replacing`).

    Refuses an `as_of` more than `score.max_data_lag_days` after the last order, and data lacking sources
    or columns the model was trained with (unless `allow_missing_sources`: then a warning, and the
    summary lists them under `missing_inputs`).

    Returns the summary (as written to the JSON) plus the output paths and the MLflow run id.
    """
    log = get_logger()
    complete_interrupted_publishes(cfg.paths.data_dir)
    specs = feature_specs(cfg.features)
    write_starter_playbook(cfg)
    playbook = load_playbook(cfg.score.playbook, known_features=feature_kinds(specs))
    # The feature columns of the validated sources only, prepared per customer partition as `churn features`
    # does (same features as build_features on all events; ~40% less CPU than reading every column).
    frames = read_validated(cfg.validated_dir, attributes=cfg.features.attribute_columns)
    zone = cfg.features.zone
    as_of = as_of or default_as_of(frames, timezone=zone)
    data_ends = latest_event_date(frames, timezone=zone)
    check_data_lag(as_of, data_ends=data_ends, max_lag_days=cfg.score.max_data_lag_days)
    later = later_sources_warning(frames, data_ends=data_ends, as_of=as_of, timezone=zone)
    if later:
        log.warning(later)
    yearly = (read_report(labels_report_path(cfg)) or {}).get("yearly_buyers_warning")
    if yearly:  # the list is read weekly, the features stage's log seldom
        log.warning("labels (churn features): %s", yearly)
    tiers = unknown_tier_warning(cfg)  # this list's tier actions miss their members too
    if tiers:
        log.warning("%s", tiers)
    with tempfile.TemporaryDirectory(prefix="champion-") as workdir:
        try:
            info = load_scoring_model(cfg, bundle=bundle, workdir=Path(workdir))
        except BundleError as exc:
            raise ScoreError(f"cannot use the model: {exc}") from None
    missing = check_inputs(info, input_coverage(frames), allow_missing=allow_missing_sources)
    for warning in (other_data_warning(info, trained_from_now=data_identity(cfg)),
                    other_days_warning(info, timezone=cfg.features.zone),
                    info.chance_ranking and f"model (churn train): {info.chance_ranking}",
                    cfg.sources.transactions.money_from_constants() and NO_MONEY_WARNING):
        if warning:  # the list is read more often than the training's log
            log.warning(warning)
    seen = seen_outcomes_warning(as_of, training_snapshots=info.training_snapshots, horizon_days=info.horizon_days,
                                 model=f"the model ({info.name} v{info.version})")
    if seen:
        log.warning("scoring %s: %s", as_of.isoformat(), seen)
    if info.horizon_days != cfg.features.horizon_days:
        log.warning(
            "the model predicts churn over %d days, the config says features.horizon_days=%d; using the model's",
            info.horizon_days, cfg.features.horizon_days,
        )
    with timed(f"features as of {as_of}"):
        features, recent_labels, fits = features_labels_and_fits_streamed(
            frames, as_of=as_of, labels_as_of=as_of - dt.timedelta(days=info.horizon_days), cfg=cfg.features,
            horizon_days=info.horizon_days)
        del frames
    failed = failed_fits_warning({as_of.isoformat(): fits}) if fits else None
    if failed:
        log.warning("scoring %s: %s", as_of.isoformat(), failed)
    info.model.check_features(features)
    check_playbook_features(features, playbook)
    uplift = learned_uplift(cfg, features)
    with timed(f"scoring {len(features):,} customers with {info.name} v{info.version}"):
        scores = score_customers(
            features,
            info.model,
            playbook=playbook,
            # an export without money: no sentence about spend ("spent only 4.00" would be 4 lines)
            specs=without_money_reasons(specs) if cfg.sources.transactions.money_from_constants() else specs,
            as_of=as_of,
            cfg=cfg.score,
            model_name=info.name,
            model_version=info.version,
            reason_context=reason_context_frame,
            btyd_horizon_days=cfg.features.horizon_days,
            uplift=uplift,
        )
    paths = scores_paths(cfg, as_of)
    check_replacing(paths["parquet"], scores, as_of=as_of, replace=replace)
    summary = _summary(scores, cfg=cfg, as_of=as_of, info=info, playbook=playbook, paths=paths)
    summary["drift"] = scoring_drift(
        cfg, features, scores, reference=info.drift_reference,
        observed_rate=observed_rate(recent_labels),
        newer_labels=newer_labels_since_training(
            cfg, training_snapshots=info.training_snapshots, horizon_days=info.horizon_days, data_ends=data_ends),
        newest_training_snapshot=max(info.training_snapshots) if info.training_snapshots else None,
        fits=fits, as_of=as_of,
    )
    summary["missing_inputs"] = missing
    # Why this list's realised metrics would flatter the model; False: they would not; None: the bundle does not say.
    summary["model_saw_outcomes"] = seen or (None if info.training_snapshots is None else False)
    with output_set(cfg.paths.data_dir, stage="score") as outputs:
        outputs.write(paths["parquet"], lambda path: write_parquet(scores, path))
        outputs.write(paths["csv"], lambda path: write_scores_csv(scores, path))
        outputs.write(paths["summary"], lambda path: write_json(summary, path))
        outputs.write(paths["figure"], lambda path: save_figure(risk_tier_action_figure(scores), path))
    run_id = _log_to_mlflow(cfg, summary, paths)
    unmeasurable = unmeasurable_actions(summary["actions"])
    for line in unmeasurable:
        log.warning("control group: %s", line)
    log.info("%s -> %s", "; ".join(line for line in summary["in_words"] if line not in unmeasurable), paths["parquet"])
    return {**summary, "summary_path": str(paths["summary"]), "scores_path": str(paths["parquet"]), "mlflow_run_id": run_id}

