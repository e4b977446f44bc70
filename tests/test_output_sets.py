"""Whole output sets (`pipeline.io.output_set`): all of this run's files or all of the previous run's,
whatever fails and wherever; an interrupted publish is finished by the next command."""

from __future__ import annotations

import errno
import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline.io
from pipeline.errors import OutputError
from pipeline.io import complete_interrupted_publishes, output_set, write_text


def _files(root):
    """Every visible file under root, by relative path (staging and journals are hidden)."""
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def _publish(root, contents, *, fail_at=None, error=None):
    """Publish {relative path: text} under root; raise `error` when writing the file number `fail_at`."""
    with output_set(root, stage="test") as outputs:
        for number, (name, text) in enumerate(contents.items()):
            if number == fail_at:
                outputs.write(root / name, lambda path: (_ for _ in ()).throw(error))
            outputs.write(root / name, lambda path, text=text: write_text(text, path))


def test_a_set_is_published_whole_and_leaves_nothing_hidden(tmp_path):
    _publish(tmp_path, {"a/x.txt": "1", "b/y.txt": "2"})
    assert _files(tmp_path) == {"a/x.txt": "1", "b/y.txt": "2"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_disk_full_on_the_second_file_keeps_the_previous_set_and_names_the_file(tmp_path):
    _publish(tmp_path, {"a/x.txt": "old x", "b/y.txt": "old y", "c.txt": "old c"})
    full = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputError, match=r"^cannot write .*b/y.txt: No space left on device; nothing was published"):
        _publish(tmp_path, {"a/x.txt": "new x", "b/y.txt": "new y", "c.txt": "new c"}, fail_at=1, error=full)
    assert _files(tmp_path) == {"a/x.txt": "old x", "b/y.txt": "old y", "c.txt": "old c"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_any_other_failure_inside_the_block_publishes_nothing(tmp_path):
    _publish(tmp_path, {"x.txt": "old"})
    with pytest.raises(RuntimeError, match="a bug"):
        with output_set(tmp_path, stage="test") as outputs:
            outputs.write(tmp_path / "x.txt", lambda path: write_text("new", path))
            raise RuntimeError("a bug")
    assert _files(tmp_path) == {"x.txt": "old"}


def test_removals_happen_only_with_the_set(tmp_path):
    _publish(tmp_path, {"keep.txt": "1", "stale.txt": "2"})
    with pytest.raises(RuntimeError, match="stop"):
        with output_set(tmp_path, stage="test") as outputs:
            outputs.remove(tmp_path / "stale.txt")
            raise RuntimeError("stop")
    assert set(_files(tmp_path)) == {"keep.txt", "stale.txt"}
    with output_set(tmp_path, stage="test") as outputs:
        outputs.write(tmp_path / "keep.txt", lambda path: write_text("3", path))
        outputs.remove(tmp_path / "stale.txt")
    assert _files(tmp_path) == {"keep.txt": "3"}


def test_a_target_outside_the_root_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is not inside the output root"):
        with output_set(tmp_path / "root", stage="test") as outputs:
            outputs.write(tmp_path / "elsewhere.txt", lambda path: write_text("x", path))


def test_a_publish_killed_between_renames_is_finished_by_the_next_command(tmp_path, monkeypatch):
    _publish(tmp_path, {"x.txt": "old x", "y.txt": "old y", "z.txt": "old z"})
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        if ".publish-" in str(dst):  # the staged files' own atomic writes
            return real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 2:  # the process "dies" after renaming the first file of the set
            raise OSError(errno.EIO, "killed")
        real_replace(src, dst)

    monkeypatch.setattr(pipeline.io.os, "replace", replace_then_die)
    with pytest.raises(OutputError, match="publishing the test outputs was interrupted .*the next pipeline command completes it"):
        _publish(tmp_path, {"x.txt": "new x", "y.txt": "new y", "z.txt": "new z"})
    monkeypatch.setattr(pipeline.io.os, "replace", real_replace)
    journals = list(tmp_path.glob(".publish-test-*.json"))
    assert len(journals) == 1 and json.loads(journals[0].read_text())["stage"] == "test"
    assert complete_interrupted_publishes(tmp_path) == ["test"]
    assert _files(tmp_path) == {"x.txt": "new x", "y.txt": "new y", "z.txt": "new z"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert complete_interrupted_publishes(tmp_path) == []


def test_staging_left_without_a_journal_is_cleared_once_stale(tmp_path):
    stale = tmp_path / ".publish-score-dead"
    stale.mkdir()
    (stale / "0000-x.txt").write_text("half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    live = tmp_path / ".publish-score-live"
    live.mkdir()
    _publish(tmp_path, {"x.txt": "1"})
    assert not stale.exists() and live.exists()
    assert _files(tmp_path) == {"x.txt": "1"}


@settings(max_examples=30, deadline=None)
@given(files=st.integers(1, 5), fail_at=st.integers(0, 5), data=st.data())
def test_whatever_file_fails_the_folder_holds_one_whole_set(tmp_path_factory, files, fail_at, data):
    root = tmp_path_factory.mktemp("set")
    old = {f"d{i % 2}/f{i}.txt": f"old {i}" for i in range(files)}
    _publish(root, old)
    new_count = data.draw(st.integers(1, 5))
    new = {f"d{i % 2}/f{i}.txt": f"new {i}" for i in range(new_count)}
    try:
        _publish(root, new, fail_at=fail_at, error=OSError(errno.ENOSPC, "No space left on device"))
    except OutputError:
        assert _files(root) == old
    else:
        assert fail_at >= new_count
        assert _files(root) == {**old, **new}


# --- the stage runners publish whole sets -------------------------------------------------------------------


def _outputs(data_dir, folders):
    return {
        p.relative_to(data_dir).as_posix(): p.read_bytes()
        for folder in folders
        for p in sorted((data_dir / folder).rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _fail_after(count, real):
    """`real` (a writer taking (frame, path)) that raises ENOSPC from its call number `count` + 1 on."""
    import threading

    lock, calls = threading.Lock(), []

    def writer(frame, path, **options):
        with lock:
            calls.append(path)
            fail = len(calls) > count
        if fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(frame, path, **options)

    return writer


@pytest.mark.slow
def test_ingest_failing_after_three_files_keeps_the_previous_set(demo_cfg, tmp_path, monkeypatch):
    import shutil

    import pandas as pd
    import yaml

    from pipeline.config import load_config
    from pipeline.run import ingest

    raw = yaml.safe_load(demo_cfg.config_path.read_text())
    for name, source in demo_cfg.sources.configured().items():
        target = tmp_path / "raw" / source.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.path, target)
        raw["sources"][name]["path"] = str(target)
    raw["paths"] = {"data_dir": str(tmp_path / "data"), "models_dir": str(tmp_path / "models")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(tmp_path / "config.yaml")
    ingest.run(cfg, quiet=True)
    folders = ("validated", "quarantine", "reports")
    before = _outputs(cfg.paths.data_dir, folders)
    transactions = cfg.sources.transactions.path
    frame = pd.read_csv(transactions, dtype=str, keep_default_na=False)
    frame.iloc[: len(frame) // 2].to_csv(transactions, index=False)
    monkeypatch.setattr(ingest, "write_parquet", _fail_after(3, ingest.write_parquet))
    with pytest.raises(OutputError, match=r"cannot write .*\.parquet: No space left on device; nothing was published"):
        ingest.run(cfg, quiet=True)
    assert _outputs(cfg.paths.data_dir, folders) == before
    monkeypatch.undo()
    ingest.run(cfg, quiet=True)
    after = _outputs(cfg.paths.data_dir, folders)
    assert after.keys() == before.keys() and after["validated/transactions.parquet"] != before["validated/transactions.parquet"]


def test_features_failing_on_the_second_snapshot_keep_the_previous_snapshots(tmp_path, monkeypatch):
    from test_features_runner import DATES, workspace

    from pipeline.run import features

    cfg = workspace(tmp_path)
    features.run(cfg, quiet=True)
    before = _outputs(cfg.paths.data_dir, ("features",))
    assert len(before) == len(DATES)
    monkeypatch.setattr(features, "write_parquet", _fail_after(1, features.write_parquet))
    other = workspace(tmp_path, windows_days=[30])
    with pytest.raises(OutputError, match=r"cannot write .*snapshot=2024-04-01.parquet: No space left on device"):
        features.run(other, quiet=True)
    assert _outputs(cfg.paths.data_dir, ("features",)) == before


def test_features_publish_exactly_the_configured_snapshots(tmp_path):
    from test_features_runner import DATES, workspace

    from pipeline.features.store import snapshot_dates
    from pipeline.run import features

    features.run(workspace(tmp_path), quiet=True)
    assert snapshot_dates(workspace(tmp_path).features_dir) == DATES
    fewer = workspace(tmp_path, snapshots={"dates": [DATES[0].isoformat()]})
    features.run(fewer, quiet=True)
    assert snapshot_dates(fewer.features_dir) == DATES[:1]
