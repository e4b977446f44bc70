"""`churn uplift`: learn each action's per-customer uplift from past campaigns and evaluate it on held-out ones.

Reads the past at-risk lists whose horizon has passed (pipeline.run.history), their outcomes from the
validated transactions, and the point-in-time features as of each list's date (the feature code of
training and scoring). Per action with at least `uplift.min_customers` treated and control customers:
a T-learner (pipeline.uplift) fitted on all but the latest `uplift.holdout_campaigns` lists is
evaluated on those (Qini and AUUC with bootstrap intervals), then refitted on every list. The models
are written to `<models_dir>/<model_name>-uplift/` as LightGBM text files plus `uplift.json` (feature
list, evaluation, checksums; no pickle); `churn score` uses the actions marked `beats_constant` when
`uplift.use_model` is true. The run, its metrics and the Qini curves go to the training experiment.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd
from rich.table import Table

from pipeline.config import Config
from pipeline.errors import ScoreError
from pipeline.features import features_from_partitions
from pipeline.features.registry import feature_specs
from pipeline.io import output_set, sha256_file, write_csv, write_json
from pipeline.plots import new_figure
from pipeline.plots_review import save_figure
from pipeline.progress import console, get_logger, timed
from pipeline.run.features import prepared_tables
from pipeline.run.history import lists_with_outcomes
from pipeline.tracking import metric_key, tracking_settings, use_experiment
from pipeline.uplift import TLearner, fit_t_learner, held_out_split, predict_uplift, qini_evaluation, uplift_rows

MANIFEST = "uplift.json"
FORMAT_VERSION = 1


def uplift_dir(cfg: Config) -> Path:
    """Where `churn uplift` writes its models and `churn score` looks for them."""
    return cfg.paths.models_dir / f"{cfg.train.model_name}-uplift"


def training_rows(cfg: Config) -> tuple[pd.DataFrame, list[str]]:
    """Treated and control rows of every past list with features and outcomes; and the numeric feature names."""
    lists = lists_with_outcomes(cfg)
    if not lists:
        raise ScoreError(
            f"no past at-risk list in {cfg.scores_dir} whose horizon has passed: run `churn score` on earlier dates "
            "(or `churn demo-data --campaigns N`), then ingest the orders that followed"
        )
    tables, _ = prepared_tables(cfg)
    features = {}
    for item in lists:
        with timed(f"features as of {item.as_of}"):
            features[item.as_of] = features_from_partitions(tables, as_of=item.as_of, cfg=cfg.features)
    numeric = [s.name for s in feature_specs(cfg.features) if s.kind == "numeric" and s.name in features[lists[0].as_of]]
    rows = uplift_rows(
        {item.as_of: item.scores for item in lists},
        features,
        {item.as_of: item.scores.set_index("customer_id")["churned"] for item in lists},
    )
    return rows, numeric


def _enough(rows: pd.DataFrame, action: str, minimum: int) -> bool:
    counts = rows[rows["action"] == action].groupby("treated").size()
    return counts.get(True, 0) >= minimum and counts.get(False, 0) >= minimum


def learn(cfg: Config, rows: pd.DataFrame, feature_names: list[str]) -> tuple[dict[str, TLearner], dict[str, Any], dict[str, pd.DataFrame]]:
    """Per action: the refitted learner, its held-out evaluation, and its held-out curves."""
    settings = cfg.uplift
    fit_rows, held_rows, held_dates = held_out_split(rows, holdout=settings.holdout_campaigns)
    learners, evaluation, curves = {}, {}, {}
    for action in sorted(rows["action"].dropna().unique()):
        if not (_enough(fit_rows, action, settings.min_customers) and _enough(held_rows, action, 1)):
            get_logger().warning(
                "uplift of '%s' not learned: fewer than uplift.min_customers=%d treated or control customers",
                action, settings.min_customers,
            )
            continue
        with timed(f"uplift model for {action}"):
            trial = fit_t_learner(fit_rows, action=action, feature_names=feature_names, rounds=settings.rounds, seed=settings.seed)
            held = held_rows[held_rows["action"] == action]
            predicted = predict_uplift(trial, held)
            summary, curve = qini_evaluation(
                predicted["reduction"].to_numpy(), held["treated"].to_numpy(), held["churned"].to_numpy(),
                bootstrap=settings.bootstrap, seed=settings.seed,
            )
            learners[action] = fit_t_learner(rows, action=action, feature_names=feature_names, rounds=settings.rounds, seed=settings.seed)
        evaluation[action] = {
            **summary,
            "beats_constant": bool(summary["qini_low"] > 0),
            "held_out_campaigns": list(held_dates),
            "fit_campaigns": sorted(fit_rows["as_of"].unique().tolist()),
            "rows": int((rows["action"] == action).sum()),
        }
        curves[action] = curve
    return learners, evaluation, curves


def save_uplift_models(folder: Path, learners: dict[str, TLearner], evaluation: dict[str, Any], *, feature_names: list[str], campaigns: list[str]) -> Path:
    """Write the boosters (LightGBM text) and uplift.json into `folder`, swapped in whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        files = {}
        for action, learner in learners.items():
            for arm, booster in (("control", learner.control), ("treatment", learner.treatment)):
                name = f"{action}.{arm}.txt"
                booster.save_model(str(staging / name))
                files[name] = sha256_file(staging / name)
        manifest = {
            "format_version": FORMAT_VERSION,
            "feature_names": feature_names,
            "campaigns": campaigns,
            "actions": {a: {**evaluation[a], "control": f"{a}.control.txt", "treatment": f"{a}.treatment.txt"} for a in learners},
            "files": files,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(manifest, staging / MANIFEST)
        retired = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        if folder.exists():
            folder.replace(retired)
        staging.replace(folder)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_uplift_models(folder: Path, *, usable_only: bool = True) -> dict[str, TLearner]:
    """The learners in `folder` whose files match their checksums (only those that beat constant uplift,
    unless `usable_only` is false); ScoreError when the folder, manifest or a file is missing or altered."""
    manifest_path = Path(folder) / MANIFEST
    if not manifest_path.is_file():
        raise ScoreError(f"no uplift models at {folder}: run `churn uplift` first, or set uplift.use_model: false")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    learners = {}
    for action, entry in manifest["actions"].items():
        if usable_only and not entry.get("beats_constant"):
            continue
        boosters = {}
        for arm in ("control", "treatment"):
            name = entry[arm]
            path = Path(folder) / name
            if Path(name).name != name or not path.is_file() or sha256_file(path) != manifest["files"].get(name):
                raise ScoreError(f"uplift model file {path} is missing or does not match its checksum; rerun `churn uplift`")
            boosters[arm] = lgb.Booster(model_file=str(path))
        learners[action] = TLearner(action=action, feature_names=manifest["feature_names"], control=boosters["control"], treatment=boosters["treatment"])
    return learners


def qini_figure(curves: dict[str, pd.DataFrame], evaluation: dict[str, Any]):
    """Qini curves per action on the held-out campaigns, with the random-ranking line."""
    figure, axes = new_figure(ncols=max(len(curves), 1))
    for ax, (action, curve) in zip(axes, curves.items()):
        info = evaluation[action]
        ax.plot(curve["share"], curve["qini"], label="uplift model")
        ax.plot(curve["share"], curve["qini_random"], linestyle="--", color="grey", label="random / constant uplift")
        ax.set_title(f"{action}\nQini {info['qini']:.4f} [{info['qini_low']:.4f}, {info['qini_high']:.4f}]", fontsize=9)
        ax.set_xlabel("share of customers targeted (highest predicted uplift first)")
        ax.set_ylabel("extra customers retained per customer")
        ax.legend(fontsize=7)
    return figure


def evaluation_table(evaluation: dict[str, Any]) -> Table:
    table = Table(title="Uplift models on held-out campaigns (Qini / AUUC per customer, 95% bootstrap CI)")
    for name in ("action", "held out", "Qini [CI]", "AUUC [CI]", "beats constant"):
        table.add_column(name, justify="left" if name in ("action", "held out") else "right")
    for action, info in evaluation.items():
        table.add_row(
            action, f"{', '.join(info['held_out_campaigns'])} ({info['n']})",
            f"{info['qini']:.4f} [{info['qini_low']:.4f}, {info['qini_high']:.4f}]",
            f"{info['auuc']:.4f} [{info['auuc_low']:.4f}, {info['auuc_high']:.4f}]",
            "yes" if info["beats_constant"] else "no",
        )
    return table


def _log_to_mlflow(cfg: Config, evaluation: dict[str, Any], figure_path: Path, folder: Path) -> str:
    experiment_id = use_experiment(tracking_settings(cfg), cfg.mlflow.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name="uplift") as run:
        mlflow.set_tags({"stage": "uplift", "model_name": cfg.train.model_name})
        mlflow.log_params({"holdout_campaigns": cfg.uplift.holdout_campaigns, "rounds": cfg.uplift.rounds,
                           "min_customers": cfg.uplift.min_customers, "learner": "T-learner (LightGBM)"})
        mlflow.log_metrics(
            {
                metric_key(action, key): float(value)
                for action, info in evaluation.items()
                for key, value in info.items()
                if isinstance(value, (int, float))
            }
        )
        mlflow.log_artifact(str(figure_path), "uplift")
        mlflow.log_artifacts(str(folder), "uplift/models")
    return run.info.run_id


def run(cfg: Config, *, quiet: bool) -> dict[str, Any]:
    """Learn, evaluate and save the uplift models; return the evaluation per action and the paths."""
    rows, feature_names = training_rows(cfg)
    learners, evaluation, curves = learn(cfg, rows, feature_names)
    if not learners:
        raise ScoreError(
            f"no action had uplift.min_customers={cfg.uplift.min_customers} treated and control customers in the past lists"
        )
    folder = save_uplift_models(uplift_dir(cfg), learners, evaluation, feature_names=feature_names,
                                campaigns=sorted(rows["as_of"].unique().tolist()))
    reports = Path(cfg.reports_dir)
    figure_path, curves_path = reports / "uplift_qini.png", reports / "uplift_qini_curves.csv"
    all_curves = pd.concat([curve.assign(action=action) for action, curve in curves.items()], ignore_index=True)
    with output_set(reports, stage="uplift") as outputs:  # the figure and the curves it draws, together
        outputs.write(figure_path, lambda path: save_figure(qini_figure(curves, evaluation), path))
        outputs.write(curves_path, lambda path: write_csv(all_curves, path))
    run_id = _log_to_mlflow(cfg, evaluation, figure_path, folder)
    if not quiet:
        console().print(evaluation_table(evaluation))
    usable = [a for a, info in evaluation.items() if info["beats_constant"]]
    get_logger().info(
        "uplift models for %s -> %s; beat a constant uplift on held-out campaigns: %s%s",
        ", ".join(learners), folder, ", ".join(usable) or "none",
        "" if cfg.uplift.use_model else " (set uplift.use_model: true for churn score to use them)",
    )
    return {"evaluation": evaluation, "models_path": str(folder), "figure_path": str(figure_path), "mlflow_run_id": run_id}
