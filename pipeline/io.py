"""Atomic file writes and small file helpers. Every output of the pipeline goes through here.

A file is written to a temporary name in the same folder, flushed to disk and renamed over the
target, so a stage killed mid-write leaves the previous output intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed to `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; outputs follow the umask
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(target: Path, *, older_than_seconds: float = 3600.0) -> None:
    """Delete temporaries of `target` left by a killed run (old enough not to belong to a live writer)."""
    import time

    cutoff = time.time() - older_than_seconds
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except FileNotFoundError:
            pass


def atomic_write(path: Path | str, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp_path)` and atomically move the result to `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type)


def write_parquet(df: pd.DataFrame, path: Path | str) -> Path:
    """Write `df` (index dropped) to Parquet atomically; deterministic bytes for equal frames built the
    same way (equal values held in differently chunked Arrow columns may be laid out in other pages).

    zstd; dictionary encoding only for text columns (ids, categories: where it pays) and min/max
    statistics only for the others (numbers, times: where readers use them). Dictionary-encoding
    unique floats and timestamps, and min/max over millions of strings, cost a quarter of the
    write time and saved nothing (measured on 10M transaction rows).
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    text = [field.name for field in table.schema if _is_text(field.type)]
    other = [field.name for field in table.schema if not _is_text(field.type)]
    options = {"compression": "zstd", "use_dictionary": text or False, "write_statistics": other or False}
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, **options))


def write_csv(df: pd.DataFrame, path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def write_json(obj: Any, path: Path | str) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_text(text: str, path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(data: bytes, path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
