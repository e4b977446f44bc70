"""`churn demo`: every stage end to end on generated demo data, then one summary table.

Runs demo-data (with a simulated history of past campaigns) -> ingest -> features -> train ->
monitor -> uplift -> score with the given config and prints where
the outputs are, the test metrics of the model against its baselines, the number of customers at
risk and the budget used. Reads the stages' own output files for the summary; computes nothing new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from pipeline.config import Config
from pipeline.errors import ScoreError
from pipeline.io import read_report
from pipeline.progress import console, get_logger
from pipeline.run import demo_data, features, ingest, monitor, score, train, uplift

SUMMARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile")


def metrics_table(metrics: dict[str, Any]) -> Table:
    """Test metrics per model (rows) from a bundle's metrics.json."""
    table = Table(title="Test snapshot: model vs baselines")
    table.add_column("model")
    for name in SUMMARY_METRICS:
        table.add_column(name, justify="right")
    for model, values in metrics.get("test", {}).items():
        table.add_row(model, *(f"{values[m]:.3f}" if isinstance(values.get(m), (int, float)) else "-" for m in SUMMARY_METRICS))
    return table


def outputs_table(cfg: Config, score_summary: dict[str, Any], score_summary_path: Path | None) -> Table:
    """Where the outputs are, and the headline numbers of the scoring run."""
    table = Table(title="Demo outputs", show_header=False)
    table.add_column("what")
    table.add_column("where / value")
    table.add_row("ingest report", str(cfg.reports_dir / "ingest_report.json"))
    table.add_row("feature snapshots", str(cfg.features_dir))
    table.add_row("model bundle", str(cfg.bundle_dir))
    table.add_row("MLflow", f"{cfg.tracking_uri()}  (make ui)")
    if score_summary_path is not None:
        table.add_row("at-risk list", str(score_summary_path.parent))
    for key in ("as_of", "customers_scored", "at_risk", "selected", "treatment", "control", "treated_below_high_tier",
                "budget", "budget_spent_on_treated", "budget_held_back_for_control", "budget_left", "expected_net_value"):
        if key in score_summary:
            value = score_summary[key]
            table.add_row(key.replace("_", " "), f"{value:,.2f}" if isinstance(value, float) else str(value))
    for reason, count in score_summary.get("no_action", {}).items():
        if count:
            table.add_row(f"no action: {reason}", f"{count:,}")
    return table


def loop_table(monitoring: dict[str, Any] | None, uplift: dict[str, Any] | None) -> Table:
    """Past campaigns: predicted vs realised churn per list (untreated), and the uplift models' held-out Qini."""
    table = Table(title="Learning loop: past lists, predicted vs realised churn; uplift models on held-out campaigns")
    table.add_column("what")
    table.add_column("value", justify="right")
    for row in (monitoring or {}).get("table", pd.DataFrame()).to_dict("records"):
        table.add_row(
            f"list of {row['as_of']}",
            f"predicted {row['predicted_churn_untreated']:.3f}, realised {row['observed_churn_untreated']:.3f} "
            f"(treated {row['observed_churn_treated']:.3f}), ROC-AUC {row['roc_auc']:.3f}, ECE {row['ece']:.3f}",
        )
    for action, info in (uplift or {}).get("evaluation", {}).items():
        table.add_row(
            f"uplift model {action}",
            f"Qini {info['qini']:.4f} [{info['qini_low']:.4f}, {info['qini_high']:.4f}]"
            f"{', used by churn score' if info['beats_constant'] else ', not better than constant'}",
        )
    return table


def run(cfg: Config, *, customers: int, seed: int, quiet: bool, campaigns: int = 4) -> dict[str, Any]:
    """Run every stage on demo data (with `campaigns` simulated past campaigns: monitor and uplift too);
    return the summary shown."""
    demo_data.run(cfg, customers=customers, seed=seed, quiet=quiet, campaigns=campaigns)
    ingest.run(cfg, quiet=quiet)
    features.run(cfg, quiet=quiet)
    train.run(cfg, backtest=False, quiet=quiet)
    monitoring = uplift_result = None
    score_cfg = cfg
    if campaigns:
        monitoring = monitor.run(cfg, quiet=True)
        try:
            uplift_result = uplift.run(cfg, quiet=True)
        except ScoreError as exc:  # too few customers per action for a model: the demo goes on without
            get_logger().warning("uplift models not learned: %s", exc)
        if uplift_result and any(info["beats_constant"] for info in uplift_result["evaluation"].values()):
            score_cfg = cfg.model_copy(update={"uplift": cfg.uplift.model_copy(update={"use_model": True})})
    # The demo writes its synthetic shop and simulated lists afresh: its own list of the day is replaced too (a
    # rerun after a config change would otherwise stop on the list the previous run wrote)
    score_result = score.run(score_cfg, as_of=None, bundle=None, quiet=quiet, replace=True)

    summary_path = Path(score_result["summary_path"]) if isinstance(score_result, dict) and "summary_path" in score_result else None
    score_summary = (read_report(summary_path) or {}) if summary_path else {}
    metrics = read_report(cfg.bundle_dir / "metrics.json") or {}
    out = console()
    out.print(metrics_table(metrics))
    if campaigns:
        out.print(loop_table(monitoring, uplift_result))
    out.print(outputs_table(cfg, score_summary, summary_path))
    return {"metrics": metrics, "score": score_summary, "monitor": monitoring, "uplift": uplift_result}
