# thresher: `make demo` (set up + run the demo), `make test` (set up, lint with ruff, run the tests) and
# `make lm-reference` (the reference LM of the lm_score stage, trained on WikiText-2: ~12 min on 2 busy cores).
# torch is installed first and pinned to 2.13.0: on these machines that CPU build comes from
# local disk in seconds, while any other torch spec pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-dev clean lm-reference

demo: $(VENV)/.runtime
	$(BIN)/thresher demo

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lm-reference: $(VENV)/.runtime
	$(BIN)/thresher run configs/lm-reference-data.yaml
	$(BIN)/thresher train configs/lm-reference.yaml

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	touch $@

$(VENV)/.runtime: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) out .bench
