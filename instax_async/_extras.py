"""Install hints for the optional extras (``redis``, ``arq``, ``httpx``).

A module that needs an extra imports it inside :func:`extra_required`, so a user who lacks the
dependency reads which ``pip install`` fixes it, instead of a bare ``ModuleNotFoundError``::

    with extra_required("redis"):
        import redis

The error is a :class:`~instax_async.MissingExtraError`, which is also a
``ModuleNotFoundError``: code that probes with ``try: import … except ImportError`` keeps
working. Only the extra's own modules are translated; a module missing deeper down (a broken
installation of the dependency itself) is raised unchanged, as it is a different problem.
"""

from __future__ import annotations

import sys
from types import TracebackType

from .errors import MissingExtraError

__all__ = ["extra_required", "install_hint"]


def install_hint(extra: str) -> str:
    """The shell line that installs ``extra``, quoted for every shell (zsh globs brackets)."""
    return f"pip install 'instax-async[{extra}]'"


class extra_required:
    """Turn a missing ``modules`` (default: the extra's name) into :class:`MissingExtraError`.

    Used as ``with extra_required("arq", "arq", "redis"):`` around a module's imports.
    """

    def __init__(self, extra: str, *modules: str) -> None:
        self.extra = extra
        self.modules = frozenset(modules or (extra,))

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, ModuleNotFoundError) or isinstance(exc, MissingExtraError):
            return
        missing = (exc.name or "").partition(".")[0]
        if missing not in self.modules:
            return
        # the module whose import failed: named in the message, so the user knows who asked
        importer = sys._getframe(1).f_globals.get("__name__", "instax_async")
        raise MissingExtraError(
            f"{importer} needs {missing!r}, which is not installed; "
            f"install it with: {install_hint(self.extra)}",
            extra=self.extra,
            name=missing,
        ) from None
