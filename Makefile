PYTHON ?= python3
PY310 ?= python3.10
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-3.10 lint typecheck pytest bench clean

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

# The oldest supported Python: the suite once more, without the coverage gate.
test-3.10:
	test -x .venv-3.10/bin/python || $(PY310) -m venv .venv-3.10
	.venv-3.10/bin/python -m pip install --quiet -e '.[dev]'
	@sh scripts/ensure-redis
	.venv-3.10/bin/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .venv-3.10 .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info
