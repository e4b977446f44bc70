"""Validated events of every source, as one object passed between stages.

`Events` holds one contract-shaped DataFrame per source (empty, typed frames for sources that are
not configured). `load_events` is the only reader of `data/validated/`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from pipeline.contract import conform, empty_frame
from pipeline.errors import FeatureError


@dataclass(frozen=True)
class Events:
    """Contract-shaped frames: columns and dtypes as in `pipeline.contract` (the customers' attribute columns, if any,
    after the contract's)."""

    transactions: pd.DataFrame
    feedback: pd.DataFrame
    support_tickets: pd.DataFrame
    loyalty_events: pd.DataFrame
    customers: pd.DataFrame

    @classmethod
    def from_frames(cls, **frames: pd.DataFrame) -> Events:
        """Build from any subset of sources; missing ones are empty; all are conformed to the contract."""
        names = [f.name for f in fields(cls)]
        unknown = set(frames) - set(names)
        if unknown:
            raise ValueError(f"unknown sources: {sorted(unknown)}")
        return cls(**{n: conform(frames[n], n) if n in frames else empty_frame(n) for n in names})

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def load_events(validated_dir: Path) -> Events:
    """Read `validated_dir/<source>.parquet` for every source (missing files -> empty frames).

    Raises FeatureError when the required transactions file is absent (ingest has not run).
    """
    validated_dir = Path(validated_dir)
    transactions_path = validated_dir / "transactions.parquet"
    if not transactions_path.is_file():
        raise FeatureError(
            f"no validated transactions at {transactions_path}: run `churn ingest` (or `make ingest`) first"
        )
    frames = {}
    for f in fields(Events):
        path = validated_dir / f"{f.name}.parquet"
        frames[f.name] = pd.read_parquet(path) if path.is_file() else empty_frame(f.name)
    return Events.from_frames(**frames)
