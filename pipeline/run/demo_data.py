"""`churn demo-data`: write the synthetic shop (with a few percent of bad rows) as CSV to the
configured source paths."""

from __future__ import annotations

from typing import Any

from pipeline.config import Config
from pipeline.demo_data import generate_demo, inject_bad_rows
from pipeline.errors import ConfigError
from pipeline.io import write_csv
from pipeline.progress import get_logger, timed

BAD_ROW_SHARE = 0.03


def run(cfg: Config, *, customers: int, seed: int, quiet: bool) -> dict[str, Any]:
    """Generate `customers` customers with `seed`; write each configured source; return row counts."""
    if customers < 1:
        raise ConfigError(f"--customers must be at least 1 (got {customers})")
    targets = cfg.sources.configured()
    for name, source in targets.items():
        if any(char in str(source.path) for char in "*?[") or source.path.suffix.lower() in (".parquet", ".pq"):
            raise ConfigError(
                f"sources.{name}.path is {source.path}: demo-data writes one CSV per source, "
                "so point it at a single .csv file"
            )
    with timed("generate demo data"):
        frames = inject_bad_rows(generate_demo(customers=customers, seed=seed), seed=seed, share=BAD_ROW_SHARE)
    counts = {}
    with timed("write demo CSV"):
        for name, source in targets.items():
            write_csv(frames[name], source.path)
            counts[name] = len(frames[name])
            get_logger().info("%s: %d rows -> %s", name, len(frames[name]), source.path)
    return {"customers": customers, "seed": seed, "rows": counts, "paths": {n: str(s.path) for n, s in targets.items()}}
