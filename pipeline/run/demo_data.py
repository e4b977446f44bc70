"""`churn demo-data`: write the synthetic shop (with a few percent of bad rows) as CSV to the
configured source paths. With `--campaigns N`, also N past at-risk lists with randomised treatment and
control whose outcomes carry a planted effect (pipeline.campaigns), written to the scores folder as
`churn score` writes its lists."""

from __future__ import annotations

from typing import Any

from pipeline.compressed import PACKED_SUFFIXES
from pipeline.config import Config
from pipeline.demo_data import generate_demo, inject_bad_rows
from pipeline.errors import ConfigError
from pipeline.io import output_set, write_csv, write_json, write_parquet
from pipeline.progress import get_logger, timed
from pipeline.sources import file_format

BAD_ROW_SHARE = 0.03


def write_campaign_lists(cfg: Config, history: Any) -> list[str]:
    """Write each simulated list as at_risk_D.parquet / .csv / .json in the scores folder; return the Parquet paths."""
    # Only with --campaigns: campaigns loads scikit-learn and run.score LightGBM and MLflow (seconds each).
    from pipeline.campaigns import list_summary
    from pipeline.run.score import scores_paths, write_scores_csv

    written = []
    with output_set(cfg.scores_dir, stage="demo-campaigns") as outputs:  # every list published together
        for as_of, listed in history.lists.items():
            paths = scores_paths(cfg, as_of)
            summary = list_summary(listed, as_of=as_of, horizon_days=cfg.features.horizon_days)
            outputs.write(paths["parquet"], lambda path, frame=listed: write_parquet(frame, path))
            outputs.write(paths["csv"], lambda path, frame=listed: write_scores_csv(frame, path))
            outputs.write(paths["summary"], lambda path, content=summary: write_json(content, path))
            written.append(str(paths["parquet"]))
    return written


def run(cfg: Config, *, customers: int, seed: int, quiet: bool, campaigns: int = 0) -> dict[str, Any]:
    """Generate `customers` customers with `seed` (and `campaigns` past campaigns); write each configured
    source (and the campaigns' at-risk lists); return row counts and paths."""
    if customers < 1:
        raise ConfigError(f"--customers must be at least 1 (got {customers})")
    if campaigns < 0:
        raise ConfigError(f"--campaigns must be 0 or more (got {campaigns})")
    targets = cfg.sources.configured()
    for name, source in targets.items():
        if (any(char in str(source.path) for char in "*?[") or file_format(source.path, source) != "csv"
                or source.member is not None or source.path.suffix.lower() in PACKED_SUFFIXES):
            raise ConfigError(
                f"sources.{name}.path is {source.path}: demo-data writes one CSV per source, "
                "so point it at a single .csv file"
            )
    lists: list[str] = []
    with timed("generate demo data"):
        frames = generate_demo(customers=customers, seed=seed)
    if campaigns:
        from pipeline.campaigns import campaign_dates, simulate_campaign_history  # see write_campaign_lists

        data_end = frames["transactions"]["ordered_at"].max().date()
        dates = campaign_dates(data_end=data_end, horizon_days=cfg.features.horizon_days, count=campaigns)
        with timed(f"simulate {campaigns} past campaigns ({dates[0]} .. {dates[-1]})"):
            history = simulate_campaign_history(frames, dates=dates, horizon_days=cfg.features.horizon_days, seed=seed)
        frames = history.frames
        lists = write_campaign_lists(cfg, history)
    frames = inject_bad_rows(frames, seed=seed, share=BAD_ROW_SHARE)
    counts = {}
    with timed("write demo CSV"):
        for name, source in targets.items():
            write_csv(frames[name], source.path)
            counts[name] = len(frames[name])
            get_logger().info("%s: %d rows -> %s", name, len(frames[name]), source.path)
    return {
        "customers": customers,
        "seed": seed,
        "rows": counts,
        "paths": {n: str(s.path) for n, s in targets.items()},
        "campaign_lists": lists,
    }
