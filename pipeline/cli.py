"""The `churn` command line. Each stage is a subcommand that loads the config and calls its runner.

Runners live in `pipeline.run.<stage>` and are imported inside each command, so that `churn --help`
is fast and nothing heavy happens at import time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.markup import escape

from pipeline.errors import ConfigError, PipelineError

app = typer.Typer(
    name="churn",
    help="Churn prediction: ingest -> features -> train -> score -> measure. See README.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: no "<bool>" type column next to flags (and --help), nothing cut to a box width.
    rich_markup_mode=None,
)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="YAML config file; a relative path is from the current folder.", show_default=True),
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY.PATH=VALUE", help="Override one config value (repeatable)."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars, warnings only.")]
DEFAULT_CONFIG = Path("configs/default.yaml")


def _run(config: Path, overrides: list[str] | None, quiet: bool, action: Callable[[Any], Any]) -> Any:
    """Load config, set up logging, call `action(cfg)`; print domain errors without a traceback.

    Messages are escaped: a path or hint in brackets (e.g. `'.[dask]'`) is text, not rich markup.
    """
    # Here, not at the top: `churn --help` loads typer and rich only (see the module docstring).
    from pipeline.config import load_config
    from pipeline.progress import configure_logging
    from pipeline.progress import console as progress_console

    # Before LightGBM loads OpenMP: idle threads sleep instead of spinning, so training and scoring
    # on a busy machine are not slowed tenfold by threads waiting for a descheduled sibling.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    console = progress_console(stderr=True)
    configure_logging(quiet=quiet)
    try:
        cfg = load_config(config, overrides or [])
        return action(cfg)
    except ConfigError as exc:
        console.print(f"[bold red]config error:[/] {escape(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(code=2) from None
    except PipelineError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(code=1) from None


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    campaigns: Annotated[
        int, typer.Option(help="Also write this many past at-risk lists with treatment, control and a planted effect.")
    ] = 0,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Write a synthetic shop (all five sources, a few bad rows) to the configured source paths."""
    from pipeline.run import demo_data as runner

    _run(config, set_, quiet, lambda cfg: runner.run(cfg, customers=customers, seed=seed, quiet=quiet, campaigns=campaigns))


@app.command()
def ingest(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None, quiet: QuietOption = False) -> None:
    """Validate every source against the contract; write validated + quarantine Parquet and a report."""
    from pipeline.run import ingest as runner

    _run(config, set_, quiet, lambda cfg: runner.run(cfg, quiet=quiet))


@app.command()
def features(
    engine: Annotated[Optional[str], typer.Option(help="polars (default) or dask; overrides features.engine.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Build point-in-time features and labels for every configured snapshot date."""
    from pipeline.run import features as runner

    overrides = [*(set_ or []), *([f"features.engine={engine}"] if engine else [])]
    _run(config, overrides, quiet, lambda cfg: runner.run(cfg, quiet=quiet))


@app.command()
def train(
    backtest: Annotated[bool, typer.Option(help="Repeat the fit over rolling test snapshots.")] = False,
    engine: Annotated[Optional[str], typer.Option(help="local (default) or dask; overrides train.engine.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Train LightGBM and baselines on out-of-time splits; track in MLflow; promote the champion."""
    from pipeline.run import train as runner

    overrides = [*(set_ or []), *([f"train.engine={engine}"] if engine else [])]
    _run(config, overrides, quiet, lambda cfg: runner.run(cfg, backtest=backtest, quiet=quiet))


@app.command()
def score(
    as_of: Annotated[
        Optional[dt.datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="Score date (default: day after the latest event).")
    ] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="A model bundle folder (default: the registry's champion).")
    ] = None,
    allow_missing_sources: Annotated[
        bool,
        typer.Option(help="Score even when sources or columns the model was trained with are missing or empty (warns)."),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(help="Write over an earlier list of the same day even when it gave other groups or actions."),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Write the at-risk list with reasons, budgeted actions and a control group."""
    from pipeline.run import score as runner

    as_of_date = as_of.date() if as_of else None
    _run(
        config,
        set_,
        quiet,
        lambda cfg: runner.run(
            cfg, as_of=as_of_date, bundle=model, quiet=quiet, allow_missing_sources=allow_missing_sources,
            replace=replace,
        ),
    )


@app.command()
def measure(
    scores: Annotated[Path, typer.Option(help="An at-risk list written by `churn score`: data/<project>/scores/at_risk_YYYY-MM-DD.parquet "
            "(paths.data_dir/<project>/scores).")],
    update_playbook: Annotated[
        bool, typer.Option(help="Then pool every measured campaign per action and write the next playbook version.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """After the horizon: churn in treated vs control per action, with confidence intervals."""
    from pipeline.run import measure as runner

    _run(config, set_, quiet, lambda cfg: runner.run(cfg, scores_path=scores, quiet=quiet, update_playbook=update_playbook))


@app.command()
def monitor(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None, quiet: QuietOption = False) -> None:
    """Past at-risk lists against what happened: realised churn, ROC-AUC, calibration; exit 3 on an alert."""
    from pipeline.run import monitor as runner

    result = _run(config, set_, quiet, lambda cfg: runner.run(cfg, quiet=quiet))
    if result["alerts"]:
        raise typer.Exit(code=runner.ALERT_EXIT_CODE)


@app.command()
def uplift(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None, quiet: QuietOption = False) -> None:
    """Learn each action's per-customer uplift from past campaigns; evaluate on held-out ones (Qini, AUUC)."""
    from pipeline.run import uplift as runner

    _run(config, set_, quiet, lambda cfg: runner.run(cfg, quiet=quiet))


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    campaigns: Annotated[int, typer.Option(help="Simulated past campaigns (0: none, no monitor or uplift).")] = 4,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Everything end to end on demo data: demo-data with past campaigns, ingest, features, train, monitor,
    uplift, score, summary."""
    from pipeline.run import demo as runner

    _run(config, set_, quiet, lambda cfg: runner.run(cfg, customers=customers, seed=seed, quiet=quiet, campaigns=campaigns))


@app.command()
def ui(
    port: Annotated[Optional[int], typer.Option(help="Port (default: mlflow.ui_port).")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    set_: SetOption = None,
) -> None:
    """Start the MLflow UI on the configured tracking store (127.0.0.1)."""
    from pipeline.run import ui as runner

    _run(config, set_, False, lambda cfg: runner.run(cfg, port=port))


@app.command("check-config")
def check_config(config: ConfigOption = DEFAULT_CONFIG, set_: SetOption = None) -> None:
    """Validate the config (and playbook) and print the resolved values."""
    from pipeline.config import config_as_dict  # here, not at the top: `churn --help` stays quick
    from pipeline.features.registry import feature_specs
    from pipeline.playbook import feature_kinds, playbook_or_starter

    def validate_and_print(cfg: Any) -> None:
        known = feature_kinds(feature_specs(cfg.features))
        playbook_or_starter(cfg.score.playbook, starter=cfg.score.starter_playbook, known_features=known)
        print(json.dumps(config_as_dict(cfg), indent=2))

    _run(config, set_, True, validate_and_print)


if __name__ == "__main__":
    app()
