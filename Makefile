PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/instax demo

lint: $(VENV)/.installed-dev
	$(BIN)/python -m ruff check instax_async tests benchmarks
	$(BIN)/python -m ruff format --check instax_async tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/python -m mypy --strict instax_async

pytest: $(VENV)/.installed-dev
	@sh scripts/ensure-redis
	$(BIN)/python -m pytest --cov=instax_async --cov-branch --cov-report=term-missing --cov-fail-under=95 -q

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info
