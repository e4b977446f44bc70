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
# # 02 · Review a trained model
#
# Loads one training run from MLflow (the latest by default; set `RUN_ID` or `CHURN_RUN_ID` for
# another): its test metrics against the baselines, calibration, lift and gain, feature importance
# and the SHAP summary that `churn train` logged, a few customers' explanations from the model
# bundle the run stored, and the backtest spread when the run was made with `--backtest`.
# The same plots are under *Artifacts → plots* of the run in `make ui`.

# %% tags=["parameters"]
import os

CONFIG = os.environ.get("CHURN_CONFIG", "configs/default.yaml")  # relative to the repository root
RUN_ID = os.environ.get("CHURN_RUN_ID") or None  # None: the latest training run of the configured model
CUSTOMERS_TO_EXPLAIN = 3

# %%
import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from pipeline import plots_review, review
from pipeline.config import load_config
from pipeline.features.store import read_snapshots

pd.set_option("display.max_colwidth", 90)
cfg = load_config(review.find_config(CONFIG))
uri = cfg.tracking_uri()
run_id = RUN_ID or review.latest_training_run_id(uri, experiment=cfg.mlflow.experiment, model_name=cfg.train.model_name)
workdir = Path(tempfile.mkdtemp(prefix="churn-review-"))
run = review.load_training_run(uri, run_id=run_id, model_name=cfg.train.model_name, dest=workdir)


def show(figure):
    display(Image(plots_review.figure_png(figure)))


pd.Series(
    {
        "run": f"{run.run_name} ({run.run_id})",
        "tracking store": uri,
        "model version": run.tags.get("model_version"),
        "champion decision": f"{run.tags.get('champion_decision')}: {run.tags.get('champion_reason')}",
        "current champion": f"version {run.champion_version} (run {run.champion_run_id})",
        "training snapshots": run.tags.get("training_snapshots"),
        "validation / test snapshot": f"{run.tags.get('validation_snapshot')} / {run.tags.get('test_snapshot')}",
        "features": run.tags.get("feature_count"),
        "code version": run.tags.get("git_commit"),
    },
    name="value",
).to_frame()

# %% [markdown]
# ## Test metrics: the model against its baselines
#
# The test snapshot was never seen in training, early stopping or calibration. Lower is better for
# log loss, Brier and ECE; `lift_top_decile` is the churn rate among the riskiest 10% over the
# overall rate.

# %%
METRICS = ["roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile", "capture_top_decile"]
review.metrics_table(run.metrics, split="test", columns=METRICS).style.format("{:.3f}").highlight_max(
    subset=["roc_auc", "pr_auc", "lift_top_decile", "capture_top_decile"], color="#d4edda"
).highlight_min(subset=["log_loss", "brier", "ece"], color="#d4edda")

# %%
split = run.metrics.get("split", {})
print(f"customers per split: {split.get('rows')}")
review.metrics_table(run.metrics, split="validation", columns=METRICS).style.format("{:.3f}")

# %% [markdown]
# ## Calibration
#
# Observed churn rate against the predicted probability, in ten equal-frequency bins: points on the
# diagonal mean a predicted 30% churns 30% of the time, which the budgeted actions rely on.

# %%
print(run.metrics.get("calibration", {}).get("note", ""))
display(Image(run.plots["reliability_test"]))

# %% [markdown]
# ## Ranking: ROC, precision-recall, lift and gain

# %%
for name in ("lift_gain_test", "roc_test", "precision_recall_test"):
    display(Image(run.plots[name]))

# %% [markdown]
# ## What drives the score: feature importance and SHAP summary

# %%
display(Image(run.plots["feature_importance"]))
display(Image(run.plots["shap_summary_test"]))

# %% [markdown]
# ## A few customers explained
#
# The bundle logged with the run (checksums verified on load) scores the test snapshot; for the
# riskiest customers, the features that pushed their score most (contributions in log-odds, > 0
# raises the risk). Scoring turns the same contributions into the plain-word reasons of the
# at-risk list.

# %%
bundle = review.load_run_bundle(uri, run_id=run.run_id, dest=workdir)
test_date = dt.date.fromisoformat(run.tags["test_snapshot"][:10])
test = read_snapshots(cfg.features_dir, [test_date]).set_index("customer_id")
probability = pd.Series(bundle.model.predict_proba(test), index=test.index, name="churn_probability")
riskiest = probability.sort_values(ascending=False, kind="stable").head(CUSTOMERS_TO_EXPLAIN)
contributions = bundle.model.contributions(test.loc[riskiest.index])
explained = review.top_contributions(contributions, n=5, values=test.loc[riskiest.index, bundle.model.feature_names_])
explained.merge(riskiest.rename_axis("customer").reset_index(), on="customer").merge(
    test["churned"].rename_axis("customer").reset_index(), on="customer"
)

# %% [markdown]
# ## Backtest spread
#
# With `churn train --backtest` the fit is repeated over rolling test snapshots; a model whose
# advantage is within the spread is not reliably better.

# %%
if run.backtest is None:
    print("This run has no backtest: run `churn train --backtest` (or `make backtest`) to add one.")
else:
    folds = review.backtest_folds(run.backtest)
    spread = review.backtest_spread(run.backtest)
    show(plots_review.backtest_spread_figure(folds, spread, metric=cfg.train.champion_metric))
    display(spread[spread["metric"].isin(METRICS)].pivot(index="model", columns="metric", values="std").style.format("{:.3f}"))
