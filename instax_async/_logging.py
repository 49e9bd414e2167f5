"""``INSTAX_LOG``: switch the SDK's logging on from the environment, as ``OPENAI_LOG`` does.

The SDK logs through the stdlib logger ``instax_async`` (and its children
``instax_async.webhooks``, ``instax_async.sandbox``, ``instax_async.arq``) and adds no handler of
its own, so an application's logging configuration decides what is shown. For a quick look
without configuring anything, ``INSTAX_LOG=debug`` (or ``info``, ``warning``) attaches one stderr
handler to the ``instax_async`` logger at that level when the package is imported.

:class:`ReportThrottle` keeps a condition that recurs on every request (a store key nobody can
read) to one log line per key a minute.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["ENV_VAR", "ReportThrottle", "configure_from_env"]

#: The environment variable read at import.
ENV_VAR = "INSTAX_LOG"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_from_env(environ: dict[str, str] | None = None) -> logging.Handler | None:
    """Attach a stderr handler to the ``instax_async`` logger if ``INSTAX_LOG`` asks for one.

    Returns the handler it attached (``None`` when the variable is unset or empty). Calling it
    again does not attach a second one. An unknown value is ignored with a ``RuntimeWarning``
    naming the accepted ones.
    """
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip().lower()
    if not value:
        return None
    level = _LEVELS.get(value)
    if level is None:
        warnings.warn(
            f"{ENV_VAR}={value!r} is not one of {', '.join(_LEVELS)}; no log handler attached",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    logger = logging.getLogger("instax_async")
    for handler in logger.handlers:
        if getattr(handler, "_instax_env", False):
            handler.setLevel(level)
            logger.setLevel(level)
            return handler
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    handler._instax_env = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


class ReportThrottle:
    """Lets one report per key through every ``interval`` seconds, in bounded memory.

    It remembers the keys reported in the last ``interval`` seconds, at most ``max_keys`` of
    them, the oldest forgotten first: past that many distinct keys within ``interval``, a key
    may be reported more than once per ``interval``, but no key goes unreported.

    >>> throttle = ReportThrottle()
    >>> throttle.due("instax:webhook:a"), throttle.due("instax:webhook:a")
    (True, False)
    """

    def __init__(
        self,
        *,
        interval: float = 60.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._last: OrderedDict[str, float] = OrderedDict()  # oldest report first

    def __len__(self) -> int:
        return len(self._last)

    def due(self, key: str) -> bool:
        """True (and remembered) if ``key`` was not reported in the last ``interval`` s."""
        now = self._clock()
        last = self._last
        while last and next(iter(last.values())) <= now - self._interval:
            last.popitem(last=False)
        if key in last:
            return False
        last[key] = now
        if len(last) > self._max_keys:
            last.popitem(last=False)
        return True
