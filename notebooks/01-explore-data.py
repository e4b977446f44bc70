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
# # 01 · Explore the data
#
# What `churn ingest` and `churn features` made of the exports: the ingest report (rows kept and
# rejected, and why), cohort retention by first-order month, the churn rate of every feature
# snapshot, and how a few key features differ between customers who churned and those who stayed.
#
# Everything here is read from the pipeline's outputs; run `make demo` (or `churn ingest` and
# `churn features` with your config) first. Set `CHURN_CONFIG` to review another config.

# %% tags=["parameters"]
import os

CONFIG = os.environ.get("CHURN_CONFIG", "configs/default.yaml")  # relative to the repository root
KEY_FEATURES = ["recency_days", "frequency_365d", "monetary_365d", "nps_last", "tickets_90d", "points_balance"]

# %%
import datetime as dt
import json

import pandas as pd
from IPython.display import Image, display

from pipeline import plots_review, review
from pipeline.config import load_config
from pipeline.events import load_events
from pipeline.features.store import LABEL, SNAPSHOT_DATE, read_snapshots
from pipeline.run.features import labels_report_path
from pipeline.run.ingest import report_path
from pipeline.snapshot import in_business_time_pandas, latest_event_date

pd.set_option("display.max_colwidth", 90)
cfg = load_config(review.find_config(CONFIG))


def show(figure):
    display(Image(plots_review.figure_png(figure)))


print(f"config: {cfg.config_path}\ndata:   {cfg.paths.data_dir}")

# %% [markdown]
# ## Ingest: what was kept, what was quarantined
#
# Every input row is either validated or quarantined with a reason; the two add up to the input.
# Quarantined rows are in `quarantine/<source>.parquet`, unchanged, with `reason`.

# %%
report = json.loads(report_path(cfg).read_text(encoding="utf-8"))
print(f"reference time (end of the data): {report['reference_time']}")
ingest = review.ingest_table(report)
ingest.style.format({"bad_share": "{:.1%}"})

# %%
review.quarantine_reasons(report).head(15)

# %% [markdown]
# ## Cohort retention by first-order month
#
# Of the customers whose first order fell in a month, the share who ordered again 1, 2, 3, ...
# months later. Only whole months before the end of the data count. The earliest cohort also holds
# every customer who was already buying before the export starts. Months and days are those of the
# business time zone (`features.timezone`), as the features count them.

# %%
events = load_events(cfg.validated_dir)
transactions = in_business_time_pandas(events.transactions, cfg.features.zone)
as_of = latest_event_date(transactions) + dt.timedelta(days=1)
cohorts = review.cohort_retention(transactions, as_of=as_of)
show(plots_review.cohort_retention_figure(cohorts))

# %%
review.retention_matrix(cohorts).tail(12).iloc[:, :13].style.format("{:.0%}", na_rep="")

# %% [markdown]
# ## Churn rate over the snapshots
#
# Per snapshot date: customers eligible (an order in the lookback window) and the share who did not
# order within the horizon after it. The latest snapshots have no label until the horizon has passed.

# %%
features = read_snapshots(cfg.features_dir)
rates = review.churn_by_snapshot(features)
show(plots_review.churn_rate_figure(rates))
rates.style.format({"churn_rate": "{:.1%}", "churned": "{:.0f}"})

# %% [markdown]
# Does "churned" mean churned? Of the customers labelled churned at a snapshot, the share who bought again
# in the horizon after their label window (where the data run that far; `churn features` writes it to
# `reports/labels_report.json`). Where many did, the label marks pauses (see the README); where many had
# bought about a year apart, it marks yearly buyers (annual plans) between purchases.

# %%
labels_path = labels_report_path(cfg)
if labels_path.is_file():
    labels_report = json.loads(labels_path.read_text(encoding="utf-8"))
    print(labels_report["pause_warning"] or "fewer than a quarter of the customers labelled churned bought again")
    if labels_report.get("yearly_buyers_warning"):
        print(labels_report["yearly_buyers_warning"])
    display(review.came_back_table(labels_report).style.format({"came_back_share": "{:.1%}"}))
else:
    print(f"no labels report at {labels_path}: run churn features")

# %% [markdown]
# ## Key features: churned vs retained
#
# On the latest labelled snapshot. Features with a single value in this data (e.g. from a source
# that is not configured) are left out.

# %%
labelled = features[features[LABEL].notna()]
latest = labelled[labelled[SNAPSHOT_DATE] == labelled[SNAPSHOT_DATE].max()]
shown = [c for c in KEY_FEATURES if c in latest.columns and latest[c].nunique() > 1]
show(plots_review.feature_distribution_figure(latest, shown))
review.label_comparison(latest, shown).style.format("{:.2f}")
