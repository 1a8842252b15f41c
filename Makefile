# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv with the project and its tools; nothing else is needed but Python 3.11+.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
STAMP  := $(VENV)/.installed-dev
RUN    := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# The demo needs strangler and nothing of the test tools (issue 14: no install noise).
$(RUN): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $(RUN)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $(STAMP) $(RUN)

demo: $(RUN)
	@$(BIN)/strangler demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .strangler .pytest_cache .mypy_cache .ruff_cache
