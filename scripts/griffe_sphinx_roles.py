"""A griffe extension for the API reference: Sphinx roles in docstrings shown as inline code.

The docstrings use reST roles (``:class:`~instax_async.AsyncSession```, ``:meth:`aclose```),
which mkdocstrings would show verbatim; this turns each into the code span a reader expects
(``AsyncSession``: a leading ``~`` keeps the last part only, as Sphinx does).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match["target"]
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"``{target}``"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring as it is loaded."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
