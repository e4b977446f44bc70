# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Campaign: the at-risk list and what the actions achieved
#
# The latest at-risk list written by `churn score` (set `SCORES` or `CHURN_SCORES` for another):
# customers by risk tier and action, the budget used, a sample of the list with its reasons, and the
# treated-vs-control results of `churn measure` once the horizon after a scoring date has passed.

# %% tags=["parameters"]
import os

CONFIG = os.environ.get("CHURN_CONFIG", "configs/default.yaml")  # relative to the repository root
SCORES = os.environ.get("CHURN_SCORES") or None  # None: the latest data/<project>/scores/at_risk_*.parquet

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from pipeline import plots_review, review
from pipeline.config import load_config

pd.set_option("display.max_colwidth", 90)
cfg = load_config(review.find_config(CONFIG))


def show(figure):
    display(Image(plots_review.figure_png(figure)))


scores_path = Path(SCORES) if SCORES else review.latest_file(
    cfg.scores_dir, "at_risk_", ".parquet", hint="run `churn score` (or `make score`) first"
)
scores = pd.read_parquet(scores_path)
summary = json.loads(scores_path.with_suffix(".json").read_text(encoding="utf-8"))
pd.Series(
    {
        "at-risk list": str(scores_path),
        "as of": summary["as_of"],
        "model": f"{summary['model_name']} v{summary['model_version']}",
        "customers scored": summary["customers_scored"],
        "at risk (high + medium tier)": summary["at_risk"],
        "selected for an action": f"{summary['selected']} ({summary['treatment']} treatment, {summary['control']} control)",
        "budget used": f"{summary['budget_used']:,.2f} of {summary['budget']:,.2f}",
        "expected net value (treated)": f"{summary['expected_net_value']:,.2f}",
        "measure after": summary["measure_after"],
    },
    name="value",
).to_frame()

# %% [markdown]
# ## By risk tier and action
#
# Customers per tier and the action chosen for them (the control group is counted with the action
# it would have received); "no action" when no action was worth its cost or the budget ran out.

# %%
show(plots_review.risk_tier_action_figure(scores))
review.tier_by_action(scores)

# %% [markdown]
# ## Budget use
#
# Cost spent on the treated customers per action, and its share of `score.budget`. The control group
# receives nothing; it is what the treated are compared with later.

# %%
review.budget_by_action(scores, budget=summary["budget"]).style.format(
    {"cost": "{:,.2f}", "budget_share": "{:.1%}", "expected_net_value": "{:,.2f}"}
)

# %% [markdown]
# ## The list: riskiest treated customers with their reasons

# %%
reason_columns = [c for c in scores.columns if c.startswith("reason_")]
treated = scores[scores["group"] == "treatment"].sort_values("churn_probability", ascending=False)
treated[["customer_id", "churn_probability", "risk_tier", *reason_columns, "action", "action_cost", "expected_net_value"]].head(10)

# %% [markdown]
# ## Treated vs control: `churn measure`
#
# Once the horizon after a scoring date has passed (and newer transactions are ingested),
# `churn measure --scores data/<project>/scores/at_risk_<date>.parquet` compares churn of the treated
# customers with the held-out control group, per action, with 95% intervals. The latest measured
# campaign is shown.

# %%
measured_files = review.dated_files(cfg.scores_dir, "measured_", ".csv")
if not measured_files:
    print(
        f"No measured campaign yet in {cfg.scores_dir}. After {summary['measure_after']}, ingest the new data "
        f"and run: churn measure --scores {scores_path}"
    )
else:
    measured_date = max(measured_files)
    measured = pd.read_csv(measured_files[measured_date])
    print(f"campaign scored on {measured_date}: {measured_files[measured_date]}")
    show(plots_review.measured_effect_figure(measured))
    columns = ["action", "n_treatment", "n_control", "churn_treatment", "churn_control", "churn_reduction",
               "churn_reduction_low", "churn_reduction_high", "uplift", "planned_uplift", "action_cost",
               "realised_net_value", "realised_net_value_low", "realised_net_value_high", "expected_net_value"]
    display(measured[[c for c in columns if c in measured.columns]].style.format(precision=3, na_rep="-"))

# %% [markdown]
# ## Monitoring: past lists against what happened (`churn monitor`)
#
# Every past at-risk list whose horizon has passed, judged on the customers the actions did not touch
# (control group and customers not selected): predicted vs realised churn, ROC-AUC, PR-AUC and
# calibration error, next to the training run's test metrics. Treated customers are shown apart: their
# churn was lowered by the action. `churn monitor` exits with code 3 when the latest list breaks
# `monitor.min_roc_auc` or `monitor.max_calibration_error`.

# %%
monitoring_path = cfg.reports_dir / "monitoring.csv"
if not monitoring_path.is_file():
    print(f"No monitoring table yet in {cfg.reports_dir}: run `churn monitor` once a list's horizon has passed.")
else:
    monitoring = pd.read_csv(monitoring_path)
    display(Image(filename=str(cfg.reports_dir / "monitoring.png")))
    display(monitoring.style.format(precision=3, na_rep="-"))

# %% [markdown]
# ## Drift at scoring time
#
# `churn score` compares today's population with the model's training test snapshot: population
# stability index (PSI: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large) per feature and for the score,
# how far the values moved (`shift`, in reference standard deviations; a number's PSI warns only with a
# shift of at least `monitor.min_shift`, since customers tied on a bin edge inflate PSI), the change in
# each feature's share of missing values, and the predicted churn rate against the churn rate observed
# in the latest window that has closed. The largest shifts of this list:

# %%
drift = summary.get("drift")
if not drift:
    print("This list has no drift block: its model bundle was trained before drift checks (retrain to get one).")
else:
    print(
        f"reference: test snapshot {drift['reference_snapshot']}; predicted churn rate {drift['predicted_rate']:.1%}, "
        f"recently observed {drift['recent_observed_rate']:.1%}"
    )
    print("\n".join(drift["warnings"]) or "no drift warning: no threshold passed")
    display(pd.DataFrame(drift["largest_shifts"]).style.format(precision=3, na_rep="-"))

# %% [markdown]
# ## Learned uplift: Qini curves on held-out campaigns (`churn uplift`)
#
# Per action, customers ranked by the uplift model's predicted churn reduction on campaigns it never saw.
# The Qini curve counts the extra customers retained per customer as more of them are targeted; a
# constant uplift (the playbook's) ranks at random: the straight line. `churn score` uses the models
# whose Qini interval lies above 0 when `uplift.use_model` is true.

# %%
from pipeline.run.uplift import MANIFEST, uplift_dir

curves_path = cfg.reports_dir / "uplift_qini_curves.csv"
manifest_path = uplift_dir(cfg) / MANIFEST
if not (curves_path.is_file() and manifest_path.is_file()):
    print("No uplift models yet: run `churn uplift` once two or more past lists have passed their horizon.")
else:
    from pipeline.run.uplift import qini_figure

    curves = pd.read_csv(curves_path)
    evaluation = json.loads(manifest_path.read_text(encoding="utf-8"))["actions"]
    show(qini_figure({action: part for action, part in curves.groupby("action")}, evaluation))
    columns = ["qini", "qini_low", "qini_high", "auuc", "auuc_low", "auuc_high", "n", "beats_constant"]
    display(pd.DataFrame(evaluation).T[columns])
