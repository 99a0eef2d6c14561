# medconsult: `make demo` and `make test` do all their own set-up and are quick the second time.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MC := $(VENV)/bin/medconsult
STAMPS := .stamps
DATA ?= ../shared/data
SYNTHEA := $(DATA)/fhir_synthea_r4/bundles
# Organisations and practitioners first: the patient bundles refer to them.
SYNTHEA_BUNDLES = $(wildcard $(SYNTHEA)/hospitalInformation*.json) $(wildcard $(SYNTHEA)/practitionerInformation*.json) \
	$(filter-out $(wildcard $(SYNTHEA)/hospitalInformation*.json $(SYNTHEA)/practitionerInformation*.json),$(wildcard $(SYNTHEA)/*.json))
DEMO_MODEL ?= $(or $(MEDCONSULT_EMBEDDED_MODEL),qwen2.5-1.5b)

# Every pip step honours the constraints (torch pinned to the CPU build).
export PIP_CONSTRAINT := $(abspath constraints.txt)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup demo test cases bench fuzz faults index train-seg train-fusion lint fhir-up fhir-down fhir-load clean workspace

help:
	@echo "make demo   set up everything and run the demo case end to end (out/demo/)"
	@echo "make test   set up everything and run the test suite"
	@echo "make workspace  set up everything and serve the clinician workspace on http://127.0.0.1:8300/"
	@echo "make cases  import the Hannover (and, if present, ieee8023) data sets as FHIR records + case files (out/cases/)"
	@echo "make bench  imaging and LLM benchmarks (the demo case, per LLM call) -> out/bench.json"
	@echo "make fuzz   1,000 mutated radiographs through the image intake and imaging tools -> out/fuzz/fuzz.json"
	@echo "make faults the fault matrix (servers killed, slow, failing, looping; locked database; full disk) -> docs/fault-table.md"
	@echo "make train-seg  retrain the lung-segmentation bundle on the CPU (NONCOMMERCIAL=1: the optional bundle)"
	@echo "make train-fusion  cross-validate and retrain the radiograph encoder and the shared latent space on the CPU"
	@echo "make index  build the reference library of labelled cases (ChromaDB) for similar-case retrieval"
	@echo "make lint   ruff"
	@echo "make clean  remove the venv, stamps and outputs (models stay in ~/.cache/medconsult)"

setup: $(STAMPS)/python $(STAMPS)/node

$(STAMPS)/python: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

$(STAMPS)/node: fhirserver/package.json fhirserver/package-lock.json
	@mkdir -p $(STAMPS)
	cd fhirserver && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

fhir-up: setup
	$(MC) fhir up

fhir-down:
	@test -x $(MC) && $(MC) fhir down || true

fhir-load: fhir-up
	$(MC) fhir load $(SYNTHEA_BUNDLES)

# The local FHIR server with the Synthea records and the Hannover cases (the recipe's trap stops it afterwards).
LOCAL_RECORDS = $(MC) fhir up; $(MC) fhir load $(SYNTHEA_BUNDLES); \
	$(MC) cases import hannover --source $(DATA)/cxr_hannover_covid --out out/cases/hannover --load

demo: setup index
	$(MC) llm fetch $(DEMO_MODEL)
	@set -e; trap '$(MC) fhir down' EXIT; $(LOCAL_RECORDS); \
	MEDCONSULT_EMBEDDED_MODEL=$(DEMO_MODEL) $(MC) run --case cases/hannover-followup.yaml --out out/demo --auto-approve

# The workspace's browser test drives Debian's chromium (pip playwright downloads no browser).
$(STAMPS)/chromium:
	@mkdir -p $(STAMPS)
	command -v chromium >/dev/null || { SUDO=$$(command -v sudo || true); $$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	@touch $@

# Serves until Ctrl-C; the FHIR server it loads stops with it. Add a user first: medconsult workspace add-user NAME
workspace: setup index
	$(MC) llm fetch $(DEMO_MODEL)
	@set -e; trap '$(MC) fhir down' EXIT; $(LOCAL_RECORDS); \
	MEDCONSULT_EMBEDDED_MODEL=$(DEMO_MODEL) $(MC) workspace

test: setup index $(STAMPS)/chromium
	$(VENV)/bin/ruff check .
	$(MC) llm fetch smollm2-135m
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) $(PY) -m pytest

# The ieee8023 folder is non-commercial and optional: the project runs without it.
cases: setup
	@set -e; trap '$(MC) fhir down' EXIT; \
	$(MC) fhir up; \
	$(MC) cases import hannover --source $(DATA)/cxr_hannover_covid --out out/cases/hannover; \
	if [ -d $(DATA)/cxr_ieee8023_ncsa ]; then \
		$(MC) cases import ieee8023 --source $(DATA)/cxr_ieee8023_ncsa --out out/cases/ieee8023; fi

# Imaging latency, then the demo case through the consult graph on the embedded model (per LLM call figures).
bench: setup index
	$(MC) llm fetch $(DEMO_MODEL)
	@set -e; trap '$(MC) fhir down' EXIT; \
	$(MC) fhir up; \
	$(MC) fhir load $(SYNTHEA_BUNDLES); \
	MEDCONSULT_EMBEDDED_MODEL=$(DEMO_MODEL) $(MC) bench --out out/bench.json

# 1,000 mutated radiographs through the image intake and the imaging tools: out/fuzz/fuzz.json
fuzz: setup
	$(MC) fuzz --count 1000 --out out/fuzz

# The fault-matrix tests (also part of `make test`), rewriting the table in docs/ from what they observed.
faults: setup
	$(MC) llm fetch smollm2-135m
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) MEDCONSULT_UPDATE_FAULT_TABLE=1 $(PY) -m pytest tests/faults

# NONCOMMERCIAL=1 trains the optional bundle that adds the CC BY-NC-SA pairs (.medconsult/bundles/lung_unet_ncsa).
train-seg: setup
	$(MC) seg train $(if $(NONCOMMERCIAL),--noncommercial)

# Patient-grouped cross-validation of the encoder's configurations, then the shipped bundle with those figures.
train-fusion: setup
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) $(MC) fusion cv --out out/fusion/cv-image.json
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) $(MC) fusion train --cv out/fusion/cv-image.json
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) $(MC) fusion train-latent --out out/fusion/cv-latent.json
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) $(MC) index build

# The reference library of labelled cases (ChromaDB), one collection per model version: quick when complete.
index: setup
	MEDCONSULT_DATA_DIR=$(abspath $(DATA)) $(MC) index build

lint: setup
	$(VENV)/bin/ruff check .

clean: fhir-down
	rm -rf $(VENV) $(STAMPS) out .medconsult *.egg-info fhirserver/node_modules
