PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# make test-py PY=python3.13 (or a path): the suite on another Python, in .venv-<version>
PY ?= python3.10
PY310 ?= python3.10
PY_VERSION = $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_VENV = .venv-$(PY_VERSION)

.PHONY: demo test test-py test-3.10 lint typecheck pytest docs docs-serve dist check-dist bench clean

# -qq: pip's own notices (and the build backend's) stay out of the demo's output; errors show.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -qq -e .
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

# The documentation site, into site/: strict, so a broken link, anchor or reference fails it.
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# The site on http://127.0.0.1:8000, rebuilt as pages change.
docs-serve: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

# The suite once more on another Python, without the coverage gate.
test-py:
	test -x $(PY_VENV)/bin/python || $(PY) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install -qq --upgrade pip
	$(PY_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@sh scripts/ensure-redis
	$(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider

# The oldest supported Python.
test-3.10:
	$(MAKE) test-py PY=$(PY310)

# The release artefacts: sdist and wheel in dist/, checked as the package index will.
dist: $(VENV)/.installed-dev
	rm -rf dist
	$(BIN)/python -m build --quiet --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

# The artefacts work: the wheel installs into a fresh venv on each Python given (PYTHONS, default
# python3) and `instax --version` / `instax demo` run from outside the source tree; the sdist's
# own tests pass from its unpacked tree.
check-dist: dist
	sh scripts/check-dist $(BIN)/python $(or $(PYTHONS),$(PYTHON))

# The bench extra (uvloop): the session table is also measured on it.
$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache .coverage build dist site *.egg-info
