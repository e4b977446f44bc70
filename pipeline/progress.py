"""Progress bars, per-stage timing logs and the consoles tables are printed on.

Quiet when asked, or when stderr is not a terminal. Log lines carry ISO timestamps
(2026-12-04 07:58:45) on every line. Without a terminal (cron, a log file) rich would squash tables
and log lines to 80 columns, cutting names and paths: log records are then plain lines, and `console`
(for tables) uses a width no line reaches (tables take the width of their content).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
LOGGER_NAME = "pipeline"
LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
WIDTH_WITHOUT_TERMINAL = 10_000  # tables take the width their content needs, lines are not wrapped


def console(*, stderr: bool = False) -> Console:
    """A rich Console on stdout (or stderr): the terminal's width, or unlimited when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    is_terminal = stream.isatty()
    return Console(stderr=stderr, width=None if is_terminal else WIDTH_WITHOUT_TERMINAL)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def configure_logging(*, quiet: bool = False) -> None:
    """Log lines with timings to stderr; WARNING and up only when quiet."""
    logger = get_logger()
    logger.handlers.clear()
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(
            console=Console(stderr=True),
            show_path=False,
            rich_tracebacks=False,
            log_time_format=LOG_TIME_FORMAT,
            omit_repeated_times=False,
        )
    else:  # cron, a log file: plain lines, one per record, never wrapped or padded
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", datefmt=LOG_TIME_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    # MLflow logs its own INFO lines ("Registered model ...") which a cron job would mail.
    logging.getLogger("mlflow").setLevel(logging.WARNING if quiet else logging.INFO)


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def track(items: Iterable[T], *, description: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """Iterate `items` with a rich progress bar (none when quiet or not a TTY)."""
    if not show_progress(quiet):
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total if total is not None else _len_or_none(items))
        for item in items:
            yield item
            bar.advance(task)


def _len_or_none(items: Iterable[object]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Log '<stage> done in X.Xs' when the block ends."""
    start = time.perf_counter()
    get_logger().info("%s ...", stage)
    yield
    get_logger().info("%s done in %.1fs", stage, time.perf_counter() - start)
