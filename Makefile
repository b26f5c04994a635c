# tally-audit - one target per stage; targets depend on real files so `make` redoes only what changed.
# `make help` lists the targets.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIPE   := $(PY) -m pipeline $(if $(CONFIG),--config $(CONFIG))
STAMP  := $(VENV)/.installed

BATCH  ?= default
SHEETS ?= 300
SEED   ?= 1
SYN    := data/synthetic/$(BATCH)
RUN    := data/interim/$(BATCH)
OUT    := data/processed/$(BATCH)
MODEL  := models/current/model.keras
ALTER  := models/alteration/detector.json
SYNSRC := $(wildcard pipeline/synth/*.py pipeline/forms/*.py pipeline/forms/*.yaml)

.DEFAULT_GOAL := help
.PHONY: help venv all summary data form train read recognise audit audit-table report run retrain review test test-all bench lint clean

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP) ## create .venv and install requirements.txt

all: $(OUT)/run.json ## whole pipeline on the default synthetic batch; open reports/index.html
	@echo "report: reports/index.html   (numbers again: make summary)"
$(OUT)/run.json: $(SYN)/truth.csv $(MODEL) $(ALTER)
	$(PIPE) run $(SYN)/sheets --out $(OUT) --interim $(RUN) --report reports --truth $(SYN)/truth.csv

summary: $(STAMP) ## print the one-screen summary of the default batch
	@$(PIPE) summary $(OUT)

form: $(STAMP) ## render a printable blank form to reports/blank_form.pdf
	$(PIPE) form --out reports/blank_form.pdf

data: $(SYN)/truth.csv ## generate the default synthetic batch (SHEETS, SEED) and its gallery
$(SYN)/truth.csv: $(STAMP) $(SYNSRC)
	$(PIPE) synth --sheets $(SHEETS) --seed $(SEED) --out $(SYN)

train: $(MODEL) ## train the digit CNN on MNIST if models/current is missing
$(MODEL): | $(STAMP)
	$(PIPE) train

$(ALTER): pipeline/audit/features.py | $(STAMP)  # retrained when the features' code is newer than the detector
	$(PIPE) train-alteration

read: $(RUN)/crops.parquet ## register the scans and cut digits
$(RUN)/crops.parquet: $(SYN)/truth.csv
	$(PIPE) read $(SYN)/sheets --out $(RUN)

recognise: $(RUN)/fields.parquet ## read every digit with the current model
$(RUN)/fields.parquet: $(RUN)/crops.parquet $(MODEL)
	$(PIPE) recognise $(RUN)

audit: $(OUT)/flags.csv ## build the table of counts and flag sheets
$(OUT)/flags.csv: $(RUN)/fields.parquet $(ALTER)
	$(PIPE) audit $(RUN) --out $(OUT) --truth $(SYN)/truth.csv

audit-table: $(STAMP) ## audit a published results table: make audit-table RESULTS=table.csv.zip MAP=mappings/x.yaml
	@test -n "$(RESULTS)" -a -n "$(MAP)" || (echo "usage: make audit-table RESULTS=table.csv MAP=mapping.yaml [TABLE_OUT=dir]" && exit 2)
	$(PIPE) audit-table $(RESULTS) --map $(MAP) --out $(or $(TABLE_OUT),data/processed/table-$(basename $(notdir $(MAP))))

report: reports/index.html ## write the HTML report
reports/index.html: $(OUT)/flags.csv
	$(PIPE) report $(OUT) --out reports

run: $(STAMP) $(MODEL) $(ALTER) ## whole pipeline on your own scans: make run SCANS=path/to/folder [FORM="a.yaml b.yaml"]
	@test -n "$(SCANS)" || (echo "usage: make run SCANS=path/to/folder [FORM=\"my_form.yaml [other_form.yaml]\"]" && exit 2)
	$(PIPE) run $(SCANS) --out data/processed/$(notdir $(abspath $(SCANS))) --report reports $(foreach f,$(FORM),--form $(f))

review: $(STAMP) ## export a labelling sheet of the least confident reads: make review RUNDIR=data/interim/x
	$(PIPE) review $(or $(RUNDIR),$(RUN)) --out $(or $(LABELS),labels.csv)

retrain: $(STAMP) ## fine-tune on corrected labels: make retrain LABELS=labels.csv
	@test -n "$(LABELS)" || (echo "usage: make retrain LABELS=labels.csv [SCANS=...]" && exit 2)
	$(PIPE) retrain --labels $(LABELS)

test: $(STAMP) ## run the test suite CI runs (everything but @slow)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP) ## run every test, slow ones included
	$(PY) -m pytest -q

bench: $(STAMP) ## measure speed/accuracy targets into reports/bench.json
	$(PIPE) bench

lint: $(STAMP) ## ruff
	$(PY) -m ruff check pipeline tests

clean: ## remove generated data and reports (keeps models and .venv)
	rm -rf data/synthetic data/interim data/processed reports/*
