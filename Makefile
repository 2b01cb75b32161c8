# Sluice — the front door. README.md documents every target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAGE ?= dev
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
CDK := npx --no-install cdk

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- set-up
.PHONY: install
install: ## the whole set-up on a fresh machine: venv, Python and npm packages, the local cloud
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error

# ---------------------------------------------------------------- checks
.PHONY: test
test: lint ## every test suite that needs no AWS account (lint included)
	$(PY) -m pytest

.PHONY: lint
lint: ## ruff, mypy, and cfn-lint on the synthesized templates of every stage
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard app.py infra datasets lambdas training benchmarks)
	for stage in dev prod; do \
	  $(CDK) synth --quiet -c stage=$$stage -o cdk.out.lint/$$stage > /dev/null || exit 1; \
	done
	$(VENV)/bin/cfn-lint cdk.out.lint/*/*.template.json

.PHONY: synth
synth: ## synthesize the CloudFormation templates of a stage into cdk.out/ (STAGE=dev|prod)
	$(CDK) synth --quiet -c stage=$(STAGE) > /dev/null

.PHONY: bench
bench: ## benchmarks: speed and memory as ratios against a floor measured in the same run
	$(PY) -m benchmarks

# ---------------------------------------------------------------- AWS
.PHONY: deploy
deploy: ## deploy a stage to the AWS account of your credentials (STAGE=dev|prod)
	$(CDK) deploy --all -c stage=$(STAGE)

.PHONY: destroy
destroy: ## destroy a stage's stacks (prod buckets and key are retained)
	$(CDK) destroy --all -c stage=$(STAGE)
