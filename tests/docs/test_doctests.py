"""The docstring examples (``>>>``) of the package run, as doctest runs them.

Examples that need a server (an awaited API call) are marked ``# doctest: +SKIP`` in the
docstring; everything else runs here, in the namespace of its module.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import instax_async

# __main__ runs the command line when imported
NOT_IMPORTED = {"instax_async.__main__"}


def _modules() -> list[ModuleType]:
    names = [instax_async.__name__] + [
        info.name
        for info in pkgutil.walk_packages(instax_async.__path__, prefix="instax_async.")
        if info.name not in NOT_IMPORTED
    ]
    return [importlib.import_module(name) for name in names]


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, doctest.DocTest] = {}
    for module in _modules():
        for test in finder.find(module, module.__name__):
            # a name re-exported by a package is found again there: run it once, where it lives
            if test.examples:
                found.setdefault(test.name, test)
    return sorted(found.values(), key=lambda test: test.name)


DOCTESTS = _doctests()


def test_the_package_has_docstring_examples() -> None:
    assert len(DOCTESTS) >= 15


@pytest.mark.parametrize(
    "test",
    [pytest.param(test, id=test.name) for test in DOCTESTS],
)
def test_docstring_examples_run(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
