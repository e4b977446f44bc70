# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
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
               "realised_net_value", "expected_net_value"]
    display(measured[[c for c in columns if c in measured.columns]].style.format(precision=3, na_rep="-"))
