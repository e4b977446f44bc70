"""`churn measure --update-playbook`: pool every measured campaign per action and write a new playbook version.

Reads all `measured_*.json` in the scores folder (written by `churn measure`), pools them per action
(pipeline.pooling), and writes `<playbook>.v<N>.yaml` beside the current playbook (`score.playbook`):
the measured uplift replaces the planned one, with its interval, campaigns and the value it replaces.
The current playbook is never changed; point `score.playbook` at the new file to use it. The pooled
table goes to `<scores>/pooled_uplift.csv` and, with the new playbook, to MLflow.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from rich.table import Table

from pipeline.actions import GROUP_CONTROL, GROUP_TREATMENT
from pipeline.config import Config
from pipeline.errors import ScoreError
from pipeline.io import write_csv, write_text
from pipeline.measure import check_scores
from pipeline.playbook import playbook_from_dict
from pipeline.pooling import holds_no_effect_note, next_version_path, pooled_uplift, repeat_factors, updated_playbook
from pipeline.progress import console, get_logger
from pipeline.run.history import read_scores
from pipeline.tracking import metric_key, tracking_settings, use_experiment


def read_measured(folder: Path) -> pd.DataFrame:
    """Per campaign and action rows of every measured_*.json in `folder` (columns as_of and scores_file added)."""
    frames = []
    for path in sorted(Path(folder).glob("measured_*.json")):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            frames.append(pd.DataFrame(content["results"]).assign(as_of=content["as_of"],
                                                                   scores_file=content.get("scores_file")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ScoreError(f"cannot read the measured campaign {path}: {exc}") from None
    if not frames:
        raise ScoreError(f"no measured campaigns (measured_*.json) in {folder}: run `churn measure --scores ...` first")
    return pd.concat(frames, ignore_index=True)


def campaign_arms(folder: Path, measured: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(as_of, customer_id, action, group of the treated and control customers of each measured campaign's list in
    `folder`, read as `churn measure` reads it (Parquet or its CSV twin; ScoreError when unreadable); the dates of
    campaigns whose list is not there)."""
    frames, missing = [], []
    for as_of, name in measured[["as_of", "scores_file"]].drop_duplicates().itertuples(index=False):
        path = Path(folder) / str(name)
        if not name or not path.is_file():
            missing.append(str(as_of))
            continue
        scores = read_scores(path)
        check_scores(scores)
        arms = scores[["customer_id", "action", "group"]]
        frames.append(arms[arms["group"].isin([GROUP_TREATMENT, GROUP_CONTROL])].assign(as_of=str(as_of)))
    columns = ["customer_id", "action", "group", "as_of"]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)), missing


def _shown(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.3f}"


def changes_table(changes: pd.DataFrame, *, path: Path) -> Table:
    table = Table(title=f"New playbook version {path.name}: the planned and the measured uplift, weighed by precision")
    for name in ("action", "planned", "measured [95% CI]", "weight", "new uplift", "campaigns"):
        table.add_column(name, justify="left" if name in ("action", "campaigns") else "right")
    for row in changes.to_dict("records"):
        table.add_row(
            row["action"], f"{row['planned_uplift']:.3f}",
            f"{_shown(row['measured_uplift'])} [{_shown(row['uplift_low'])}, {_shown(row['uplift_high'])}]",
            _shown(row["weight"]), f"{row['uplift']:.3f}", row["campaigns"],
        )
    return table


def _log_to_mlflow(cfg: Config, pooled: pd.DataFrame, new_path: Path, pooled_path: Path) -> str:
    experiment_id = use_experiment(tracking_settings(cfg), cfg.mlflow.scoring_experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"playbook {new_path.name}") as run:
        mlflow.set_tags({"stage": "update_playbook", "playbook": new_path.name})
        mlflow.log_params({"based_on": str(cfg.score.playbook), "new_playbook": str(new_path)})
        mlflow.log_metrics(
            {
                metric_key(row["action"], column): float(row[column])
                for row in pooled.to_dict("records")
                for column in ("uplift", "uplift_low", "uplift_high", "n_treatment", "n_control", "n_campaigns")
                if pd.notna(row[column])
            }
        )
        mlflow.log_artifact(str(new_path), "playbook")
        mlflow.log_artifact(str(pooled_path), "playbook")
    return run.info.run_id


def run(cfg: Config, *, scores_folder: Path, known_features: dict[str, str], quiet: bool) -> dict[str, Any]:
    """Pool the measured campaigns in `scores_folder`, write the next playbook version; return paths and changes."""
    measured = read_measured(scores_folder)
    arms, missing = campaign_arms(scores_folder, measured)
    if missing:
        get_logger().warning(
            "the at-risk lists of the campaigns of %s are not in %s: their intervals assume they share no customers "
            "with the other campaigns", ", ".join(missing), scores_folder)
    pooled = pooled_uplift(measured, repeats=repeat_factors(arms) if len(arms) else None)
    current = Path(cfg.score.playbook)
    raw = yaml.safe_load(current.read_text(encoding="utf-8"))
    new_raw, changes = updated_playbook(raw, pooled, based_on=current.name, measured_on=dt.date.today())
    if changes.empty:
        raise ScoreError(
            "no action of the playbook was measured with both treated and control churners: the playbook is unchanged"
        )
    playbook_from_dict(new_raw, known_features=known_features, origin="(updated playbook)")  # valid before written
    new_path = next_version_path(current)
    header = (
        f"# Playbook version {new_raw['version']}, written by `churn measure --update-playbook` from {current.name}.\n"
        "# Each measured action's uplift weighs its planned value against the uplift measured over the campaigns listed\n"
        "# under `measured` (pooled), by their precision: `measured.weight` is the measurement's share.\n"
    )
    write_text(header + yaml.safe_dump(new_raw, sort_keys=False, allow_unicode=True), new_path)
    pooled_path = write_csv(pooled.assign(campaigns=pooled["campaigns"].map(", ".join)), Path(scores_folder) / "pooled_uplift.csv")
    run_id = _log_to_mlflow(cfg, pooled, new_path, pooled_path)
    if not quiet:
        console().print(changes_table(changes, path=new_path))
    unsure = holds_no_effect_note(changes)
    if unsure:
        get_logger().warning("%s", unsure)
    get_logger().info(
        "new playbook version %s (%d measured actions); set score.playbook to use it", new_path, len(changes)
    )
    return {"playbook_path": str(new_path), "pooled_path": str(pooled_path), "changes": changes, "pooled": pooled,
            "mlflow_run_id": run_id, "holds_no_effect": unsure}
