"""Ingest end to end: the demo workspace, the shared CDNOW data, re-runs.

A failure mid-write: tests/test_output_sets.py (injected, deterministic).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import load_config
from pipeline.contract import CONTRACTS, empty_frame
from pipeline.events import load_events
from pipeline.run import ingest as ingest_runner

REPO_ROOT = Path(__file__).resolve().parents[1]


def output_files(data_dir: Path) -> dict[str, bytes]:
    """Every ingest output (not temporary files) by path relative to data_dir."""
    folders = ("validated", "quarantine", "reports")
    return {
        str(path.relative_to(data_dir)): path.read_bytes()
        for folder in folders
        for path in sorted((data_dir / folder).rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def csv_rows(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str, keep_default_na=False))


def test_demo_ingest_counts_add_up_and_outputs_are_typed(demo_ingested):
    cfg = demo_ingested
    report = json.loads((cfg.reports_dir / "ingest_report.json").read_text())
    for name, source in cfg.sources.configured().items():
        entry = report["sources"][name]
        validated = pd.read_parquet(cfg.validated_dir / f"{name}.parquet")
        quarantine = pd.read_parquet(cfg.quarantine_dir / f"{name}.parquet")
        assert entry["input_rows"] == csv_rows(source.path) == len(validated) + len(quarantine), name
        assert (entry["validated_rows"], entry["quarantined_rows"]) == (len(validated), len(quarantine))
        assert 0.02 < entry["quarantined_rows"] / entry["input_rows"] < 0.04, name  # the demo's injected ~3%
        assert entry["bad_rows"] + entry["anonymous_rows"] == entry["quarantined_rows"], name  # no bad rows among them
        assert list(validated.columns) == CONTRACTS[name].columns
        assert validated.dtypes.to_dict() == empty_frame(name).dtypes.to_dict(), name
        assert quarantine["reason"].str.len().gt(0).all()
        assert list(quarantine.columns[-3:]) == ["source_file", "source_row", "reason"]
    assert (cfg.reports_dir / "cohort_retention.png").read_bytes()[:4] == b"\x89PNG"
    events = load_events(cfg.validated_dir)  # the next stage can read what ingest wrote
    assert events.transactions["ordered_at"].max() < pd.Timestamp("2026-01-01", tz="UTC")


def test_demo_quarantine_covers_every_kind_of_bad_row(demo_ingested):
    reasons = {
        name: " | ".join(pd.read_parquet(demo_ingested.quarantine_dir / f"{name}.parquet")["reason"])
        for name in CONTRACTS
    }
    expected = {
        "transactions": ["ordered_at: not a timestamp", "ordered_at: later than the data's end", "anonymous",
                         "order_id: missing", "amount: not a number", "discount: negative", "delivered_at: not a timestamp"],
        "feedback": ["score: outside 0-10 for nps", "kind: not one of", "anonymous",
                     "submitted_at: not a timestamp", "score: not a number"],
        "support_tickets": ["channel: not one of", "closed_at: before opened_at", "ticket_id: missing",
                            "opened_at: not a timestamp", "resolved: not true/false"],
        "loyalty_events": ["kind: not one of", "anonymous", "occurred_at: not a timestamp", "points: not a number"],
        "customers": ["anonymous", "customer_id: shown as '#######'", "signup_at: not a timestamp"],
    }
    for name, fragments in expected.items():
        for fragment in fragments:
            assert fragment in reasons[name], (name, fragment)


def test_cdnow_ingest(shared_data, tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "configs" / "cdnow.yaml").read_text())
    raw["paths"]["data_dir"] = str(tmp_path / "data")
    raw["sources"]["transactions"]["path"] = str(shared_data / "cdnow" / "CDNOW_master.txt")
    config = tmp_path / "cdnow.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(config)
    report = ingest_runner.run(cfg, quiet=True)
    entry = report["sources"]["transactions"]
    assert (entry["input_rows"], entry["validated_rows"], entry["quarantined_rows"]) == (69_659, 69_659, 0)
    assert entry["duplicate_rows"] == 255  # the dataset's known exact duplicates, kept
    assert report["sources"]["feedback"]["configured"] is False
    validated = pd.read_parquet(cfg.validated_dir / "transactions.parquet")
    assert validated["customer_id"].nunique() == 23_570
    assert validated["order_id"].is_unique  # one order per row
    assert round(validated["amount"].sum(), 2) == 2_500_315.63
    assert validated["quantity"].sum() == 167_881
    # Dates are midnight in New York, stored as UTC.
    assert validated["ordered_at"].min() == pd.Timestamp("1997-01-01 05:00", tz="UTC")
    assert validated["ordered_at"].max() == pd.Timestamp("1998-06-30 04:00", tz="UTC")
    assert pd.read_parquet(cfg.validated_dir / "feedback.parquet").empty
    assert not [note for note in entry["notes"] if "nearly stop" in note or "order's total" in note]


def test_cdnow_with_a_late_row_two_weeks_after_its_end_names_the_quiet_end(shared_data, tmp_path):
    """CDNOW's purchases run to 1998-06-30 at about 68 lines a day; one more row on 1998-07-14 (a test
    order, a slipped date) would end the data there, and the label windows ending in between would be wrong."""
    raw = yaml.safe_load((REPO_ROOT / "configs" / "cdnow.yaml").read_text())
    raw["paths"]["data_dir"] = str(tmp_path / "data")
    late = tmp_path / "cdnow_late.txt"
    late.write_text((shared_data / "cdnow" / "CDNOW_master.txt").read_text() + "23570 19980714 1 9.99\n")
    raw["sources"]["transactions"]["path"] = str(late)
    config = tmp_path / "cdnow.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    notes = ingest_runner.run(load_config(config), quiet=True)["sources"]["transactions"]["notes"]
    [note] = [note for note in notes if note.startswith(
        "purchases nearly stop over the data's last 14 days, 1998-07-01 to 1998-07-14: 1 order (days of "
        "America/New_York)")]  # the config's business zone: CDNOW's dates are its midnights
    assert "end the data on the last busy day (ingest.latest: 1998-06-30)" in note
    # Following the advice: the late row is quarantined with the setting as its reason, the data end on 06-30.
    raw["ingest"] = {"latest": "1998-06-30"}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(config)
    report = ingest_runner.run(cfg, quiet=True)
    entry = report["sources"]["transactions"]
    assert (entry["validated_rows"], entry["quarantined_rows"]) == (69_659, 1) and entry["bad_rows"] == 1
    assert not [note for note in entry["notes"] if "nearly stop" in note]
    # the end of 1998-06-30 in New York (EDT, UTC-4)
    assert (report["latest_rule"], report["latest_allowed"]) == ("ingest.latest 1998-06-30 in America/New_York",
                                                                 "1998-07-01T03:59:59.999999+00:00")
    quarantine = pd.read_parquet(cfg.quarantine_dir / "transactions.parquet")
    assert quarantine["reason"].tolist() == [  # its own column
        "date: later than ingest.latest 1998-06-30 in America/New_York (1998-07-01 03:59 UTC)"]


def _copy_workspace(demo_cfg, folder: Path) -> Path:
    """A fresh workspace with a copy of the demo raw data; returns its config path."""
    raw = yaml.safe_load(Path(demo_cfg.config_path).read_text())
    for name, source in demo_cfg.sources.configured().items():
        target = folder / "data" / "raw" / source.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.path, target)
        raw["sources"][name]["path"] = str(target)
    raw["paths"] = {"data_dir": str(folder / "data"), "models_dir": str(folder / "models")}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def test_running_ingest_twice_gives_identical_files(demo_cfg, tmp_path):
    cfg = load_config(_copy_workspace(demo_cfg, tmp_path))
    first_report = ingest_runner.run(cfg, quiet=True)
    first = output_files(cfg.paths.data_dir)
    second_report = ingest_runner.run(cfg, quiet=True)
    assert output_files(cfg.paths.data_dir) == first
    assert second_report == first_report
    assert len(first) == 12  # 5 validated, 5 quarantine, 1 report, 1 cohort retention figure
