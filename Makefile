# Run `make help` for the targets. CONFIG picks the YAML config (default: the demo).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CHURN := $(VENV)/bin/churn
CONFIG ?= configs/default.yaml
CUSTOMERS ?= 5000
ARGS ?=
# OpenMP threads sleep instead of spinning (LightGBM on a busy 2-core machine was 10x slower otherwise).
export OMP_WAIT_POLICY ?= PASSIVE

.DEFAULT_GOAL := help
.PHONY: help setup demo demo-data ingest features train backtest score measure uplift monitor test bench ui clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed ## Create .venv and install the package with test extras

demo: setup ## Set up, then run everything end to end on built-in demo data
	$(CHURN) demo --customers $(CUSTOMERS) --config $(CONFIG) $(ARGS)

demo-data: setup ## Write the synthetic demo shop to the configured source paths
	$(CHURN) demo-data --customers $(CUSTOMERS) --config $(CONFIG) $(ARGS)

ingest: setup ## Validate sources -> data/<project>/validated + quarantine + report
	$(CHURN) ingest --config $(CONFIG) $(ARGS)

features: setup ## Point-in-time features and labels per snapshot
	$(CHURN) features --config $(CONFIG) $(ARGS)

train: setup ## Train, evaluate out of time, track in MLflow, promote champion
	$(CHURN) train --config $(CONFIG) $(ARGS)

backtest: setup ## Training repeated over rolling test snapshots
	$(CHURN) train --backtest --config $(CONFIG) $(ARGS)

score: setup ## At-risk list with reasons, actions under budget, control group
	$(CHURN) score --config $(CONFIG) $(ARGS)

measure: setup ## Treated vs control once the horizon has passed (ARGS='--scores FILE')
	$(CHURN) measure --config $(CONFIG) $(ARGS)

monitor: setup ## Past at-risk lists vs outcomes: realised churn, ROC-AUC, calibration (exit 3 on alert)
	$(CHURN) monitor --config $(CONFIG) $(ARGS)

uplift: setup ## Per-customer uplift per action from past campaigns, Qini/AUUC on held-out ones
	$(CHURN) uplift --config $(CONFIG) $(ARGS)

test: setup ## Set up, then run the whole test suite (notebooks included)
	$(PY) -m pytest -q $(ARGS)

bench: setup ## Benchmark the stages at 1M and 10M rows -> benchmarks/results.json
	$(PY) benchmarks/bench.py $(ARGS)

ui: setup ## Start the MLflow UI on the embedded store (127.0.0.1)
	$(CHURN) ui --config $(CONFIG) $(ARGS)

clean: ## Remove generated data, models and the MLflow store (keeps .venv)
	rm -rf data mlruns.db mlartifacts models/churn-*
