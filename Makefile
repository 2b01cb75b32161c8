# Sluice — the front door. README.md documents every target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov pins boto3 and packaging below this project's pins: it gets a venv of its own
CHECKOV_VENV ?= .venv-checkov
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
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r requirements-checkov.txt
	npm ci --no-audit --no-fund --loglevel=error
	$(MAKE) native
	$(MAKE) local-install

.PHONY: native
native: ## build the native HMAC library (PII masking) for this machine; bundling builds Lambda's
	$(PY) -m infra.native

# ---------------------------------------------------------------- checks
.PHONY: test
test: lint ## every test suite that needs no AWS account (lint included)
	$(PY) -m pytest

.PHONY: lint
lint: ## ruff, mypy; cfn-lint and checkov on the templates of every stage (and dev with the VPC)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard app.py infra datasets lambdas training benchmarks)
	rm -rf cdk.out.lint
	for stage in dev prod; do \
	  $(CDK) synth --quiet -c stage=$$stage -o cdk.out.lint/$$stage > /dev/null || exit 1; \
	done
	$(CDK) synth --quiet -c stage=dev -c vpc=create -o cdk.out.lint/dev-vpc > /dev/null
	$(VENV)/bin/cfn-lint cdk.out.lint/*/*.template.json
	@test -x $(CHECKOV_VENV)/bin/checkov || { echo "checkov missing: run make install" >&2; exit 1; }
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml \
		$$(printf -- '-f %s ' cdk.out.lint/*/*.template.json)

.PHONY: synth
synth: ## synthesize the CloudFormation templates of a stage into cdk.out/ (STAGE=dev|prod)
	$(CDK) synth --quiet -c stage=$(STAGE) > /dev/null

# make cost: usage variables (all optional) and the flags of python -m infra.cost they set
COST_VARS := UPLOADS:uploads UPLOAD_MB:upload-mb PREDICTIONS:predictions \
	INSTANCES_PER_REQUEST:instances-per-request PREDICT_MS:predict-ms INFERENCE_MS:inference-ms \
	TRAINING_RUNS:training-runs TRAINING_MINUTES:training-minutes \
	EVALUATION_MINUTES:evaluation-minutes SPOT_SAVINGS:spot-savings DEPLOY_SHARE:deploy-share \
	SCORE_JOBS:score-jobs SCORE_MINUTES:score-minutes LOG_GB:log-gb \
	CAPTURE_SHARE:capture-share REQUEST_KB:request-kb DATASETS:datasets
COST_FLAGS := $(foreach pair,$(COST_VARS),$(if $($(word 1,$(subst :, ,$(pair)))),\
	--$(word 2,$(subst :, ,$(pair))) '$($(word 1,$(subst :, ,$(pair))))',))
COST_CONTEXT := $(if $(VPC),-c vpc='$(VPC)',)

.PHONY: cost
cost: ## a month of a stage in dollars: its templates at dated prices (STAGE= [VPC=create] [PREDICTIONS=N ...])
	$(CDK) synth --quiet -c stage=$(STAGE) $(COST_CONTEXT) > /dev/null
	@$(PY) -m infra.cost --stage $(STAGE) --templates cdk.out $(COST_CONTEXT) $(COST_FLAGS)

.PHONY: clean
clean: ## remove synthesized templates, cached Lambda bundles and benchmark files (keeps .venv)
	rm -rf cdk.out cdk.out.* .cache/bundles .bench

.PHONY: bench
bench: ## benchmarks: speed and memory as ratios against a floor measured in the same run
	$(PY) -m benchmarks

# ---------------------------------------------------------------- AWS
.PHONY: deploy
deploy: ## deploy a stage to the AWS account of your credentials (STAGE=dev|prod)
	$(CDK) deploy --all -c stage=$(STAGE)

# the training pipeline; LOCAL=1 talks to the local cloud instead of your AWS account
PIPELINE_ENV := $(if $(LOCAL),AWS_ENDPOINT_URL=http://127.0.0.1:$${SLUICE_LOCAL_PORT:-4566} \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1,)

.PHONY: train
train: ## start a training run of a dataset (DATASET=churn [APPROVAL=manual] [LOCAL=1])
	@test -n "$(DATASET)" || { echo "usage: make train DATASET=<name>" >&2; exit 2; }
	$(PIPELINE_ENV) $(PY) -m lambdas.pipeline --stage $(STAGE) train $(DATASET) \
		$(if $(APPROVAL),--approval $(APPROVAL),)

.PHONY: runs
runs: ## print the recent training runs from the run ledger ([DATASET=churn] [LOCAL=1])
	@$(PIPELINE_ENV) $(PY) -m lambdas.pipeline --stage $(STAGE) runs \
		$(if $(DATASET),--dataset $(DATASET),)

.PHONY: deploy-model
deploy-model: ## deploy an approved model version again through the safe rollout (DATASET=churn VERSION=3 [LOCAL=1])
	@test -n "$(DATASET)" -a -n "$(VERSION)" || \
		{ echo "usage: make deploy-model DATASET=<name> VERSION=<model package version>" >&2; exit 2; }
	$(PIPELINE_ENV) $(PY) -m lambdas.pipeline --stage $(STAGE) deploy $(DATASET) $(VERSION)

.PHONY: destroy
destroy: ## destroy a stage's stacks (prod buckets and key are retained)
	$(CDK) destroy --all -c stage=$(STAGE)

# ---------------------------------------------------------------- local cloud
SLUICE_LOCAL_PORT ?= 4566
export SLUICE_LOCAL_PORT
LOCAL_ENDPOINT := http://127.0.0.1:$(SLUICE_LOCAL_PORT)
LOCAL_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/' -e 's/amd64/x86_64/')
# dummy credentials for the local endpoint only; cdklocal sends everything to LOCAL_ENDPOINT
CDKLOCAL_ENV := AWS_ENDPOINT_URL=$(LOCAL_ENDPOINT) AWS_ENDPOINT_URL_S3=$(LOCAL_ENDPOINT) \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
	AWS_REGION=us-east-1
CDKLOCAL := $(CDKLOCAL_ENV) npx --no-install cdklocal

.PHONY: local-install
local-install: ## install the local cloud into .venv-local (LocalStack host mode + local/ extension)
	local/install.sh

.PHONY: local-up
local-up: ## start the local cloud on 127.0.0.1:4566 (SLUICE_LOCAL_PORT) (no Docker) and wait until healthy
	local/timed.sh local-up local/start.sh

.PHONY: local-down
local-down: ## stop the local cloud, leave no process or port behind, wipe its state (.local/)
	local/stop.sh --wipe

.PHONY: demo
demo: ## on the local cloud (after local-up, local-deploy): upload churn data, follow the run to a serving endpoint
	$(PY) local/demo.py

.PHONY: local-deploy
local-deploy: ## bootstrap and deploy the dev stage to the local cloud with cdklocal
	local/timed.sh local-deploy $(MAKE) --no-print-directory local-deploy-steps

.PHONY: local-deploy-steps
local-deploy-steps:
	@# the bootstrap runs while the app synthesizes (from a folder without cdk.json: naming the
	@# environment spares it a synth of its own); the deploy then takes that cloud assembly
	cd local && $(CDKLOCAL_ENV) $(CURDIR)/node_modules/.bin/cdklocal bootstrap \
		aws://000000000000/us-east-1 & boot=$$!; \
	$(CDK) synth --quiet -c stage=dev -c lambda_architecture=$(LOCAL_ARCH) \
		-c pipeline_poll_seconds=1 --output cdk.out.local > /dev/null; synth=$$?; \
	wait $$boot && test $$synth -eq 0
	$(CDKLOCAL) deploy --all --app cdk.out.local --require-approval never

# ---------------------------------------------------------------- API
.PHONY: openapi
openapi: ## write the prediction API's OpenAPI 3 document (docs/openapi.json) from the handler's models
	$(PY) -m lambdas.predict openapi docs/openapi.json
