"""Past at-risk lists whose horizon has passed, with what happened after each (for monitor and uplift).

`past_lists(cfg, data_until=)` finds `at_risk_*.parquet` in the scores folder (written by `churn score`
or `churn demo-data --campaigns`), reads each with its summary (for the horizon) and keeps those whose
horizon ends by `data_until` (the rule of `pipeline.labels.horizon_passed`). `with_outcomes` adds, per
customer of a list, `churned` (no purchase in the horizon) and `spend`, from the validated transactions.
`read_scores` and `read_summary` read one list and its summary (for `churn measure` and the playbook update too).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.actions import GROUP_TREATMENT
from pipeline.config import Config
from pipeline.errors import ScoreError
from pipeline.events import load_events
from pipeline.labels import horizon_passed
from pipeline.measure import check_scores, outcomes_after
from pipeline.snapshot import in_business_time_pandas, latest_event_date


@dataclass(frozen=True)
class PastList:
    """One past at-risk list: its date, file, summary, horizon and rows (with outcomes once added)."""

    as_of: dt.date
    path: Path
    summary: dict[str, Any]
    horizon_days: int
    scores: pd.DataFrame

    @property
    def timezone(self) -> str:
        """The business time zone whose days the list was scored in (`list_timezone`)."""
        return list_timezone(self.summary)


def list_timezone(summary: dict[str, Any]) -> str:
    """The business time zone whose days a list's `summary` (its scoring JSON) counts: its as-of midnight and the
    window measured after it. UTC for a list scored before the zone was recorded (days were UTC's then)."""
    return str(summary.get("timezone") or "UTC")


def read_scores(path: Path, *, scores_dir: Path | None = None) -> pd.DataFrame:
    """The at-risk table from Parquet (or the CSV twin); ScoreError when absent or unreadable.

    `scores_dir` (the config's, data/<project>/scores) is named in the error as where `churn score` writes.
    """
    path = Path(path)
    if not path.is_file():
        where = f"{scores_dir}/at_risk_*.parquet" if scores_dir is not None else "data/<project>/scores/at_risk_*.parquet"
        raise ScoreError(f"scores file not found: {path}; pass a file written by `churn score` ({where})")
    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype={"customer_id": "str", "action": "str", "group": "str"})
            return frame.assign(as_of=pd.to_datetime(frame["as_of"]).dt.date) if "as_of" in frame else frame
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ScoreError(f"cannot read the scores file {path}: {exc}") from None


def read_summary(scores_path: Path) -> dict[str, Any]:
    """The scoring summary next to the scores file ({} when absent)."""
    summary_path = Path(scores_path).with_suffix(".json")
    if not summary_path.is_file():
        return {}
    return json.loads(summary_path.read_text(encoding="utf-8"))


def past_lists(cfg: Config, *, data_until: dt.date | None) -> list[PastList]:
    """The lists of the scores folder whose horizon has passed by `data_until`, oldest first."""
    found = []
    for path in sorted(Path(cfg.scores_dir).glob("at_risk_*.parquet")):
        summary = read_summary(path)
        horizon = int(summary.get("horizon_days") or cfg.features.horizon_days)
        scores = read_scores(path)
        as_of = check_scores(scores)
        if horizon_passed(as_of, horizon_days=horizon, last_event_date=data_until):
            found.append(PastList(as_of=as_of, path=path, summary=summary, horizon_days=horizon, scores=scores))
    return sorted(found, key=lambda item: item.as_of)


def with_outcomes(item: PastList, transactions: pd.DataFrame) -> PastList:
    """`item` with columns churned (bool) and spend (float) added to its scores, per customer."""
    outcome = outcomes_after(item.scores["customer_id"], transactions, as_of=item.as_of, horizon_days=item.horizon_days)
    scores = item.scores.assign(
        churned=outcome["churned"].to_numpy(dtype=bool), spend=outcome["spend"].to_numpy(dtype=float)
    )
    return PastList(as_of=item.as_of, path=item.path, summary=item.summary, horizon_days=item.horizon_days, scores=scores)


def lists_with_outcomes(cfg: Config) -> list[PastList]:
    """The past lists whose horizon has passed by the latest validated order (a day of `features.timezone`), each
    with its outcomes added in days of the zone it was scored in (`PastList.timezone`), as its window was meant."""
    transactions = load_events(cfg.validated_dir).transactions
    found = past_lists(cfg, data_until=latest_event_date(transactions, timezone=cfg.features.zone))
    zoned = {zone: in_business_time_pandas(transactions, zone) for zone in {item.timezone for item in found}}
    return [with_outcomes(item, zoned[item.timezone]) for item in found]


def treated_customers(cfg: Config) -> pd.DataFrame:
    """customer_id, treated_on: every customer of the treatment group of each at-risk list in the scores folder."""
    frames = []
    for path in sorted(Path(cfg.scores_dir).glob("at_risk_*.parquet")):
        scores = read_scores(path)
        as_of = check_scores(scores)
        chosen = scores.loc[scores["group"] == GROUP_TREATMENT, "customer_id"].astype(str)
        frames.append(pd.DataFrame({"customer_id": chosen.to_numpy(), "treated_on": pd.Timestamp(as_of)}))
    if not frames:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str), "treated_on": pd.Series(dtype="datetime64[ns]")})
    return pd.concat(frames, ignore_index=True)
