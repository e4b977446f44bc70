"""Log lines and tables without a terminal: ISO timestamps on every line, nothing squashed to 80 columns."""

from __future__ import annotations

import re

from rich.table import Table

from pipeline.progress import configure_logging, console, get_logger

LONG_PATH = "/work/some/very/long/folder/name/" + "x" * 120 + "/reports/ingest_report.json"


def test_log_lines_have_iso_timestamps_and_are_not_wrapped(capsys):
    configure_logging(quiet=False)
    get_logger().info("first %s", LONG_PATH)
    get_logger().info("second line")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # pytest's stderr is no terminal: one line per record, none wrapped
    for line in lines:
        assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} +INFO ", line), line
    assert LONG_PATH in lines[0] and lines[0].endswith(LONG_PATH)  # not padded either


def test_tables_without_a_terminal_keep_full_names(capsys):
    table = Table()
    table.add_column("model")
    table.add_column("path")
    table.add_row("lightgbm_uncalibrated_with_a_long_name", LONG_PATH)
    console().print(table)
    out = capsys.readouterr().out
    assert "lightgbm_uncalibrated_with_a_long_name" in out and LONG_PATH in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) < len(LONG_PATH) + 60  # as wide as the content
