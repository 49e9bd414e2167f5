"""``INSTAX_LOG``: switch the SDK's logging on from the environment, as ``OPENAI_LOG`` does.

The SDK logs through the stdlib logger ``instax_async`` (and its children
``instax_async.webhooks``, ``instax_async.sandbox``, ``instax_async.arq``) and adds no handler of
its own, so an application's logging configuration decides what is shown. For a quick look
without configuring anything, ``INSTAX_LOG=debug`` (or ``info``, ``warning``) attaches one stderr
handler to the ``instax_async`` logger at that level when the package is imported.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["ENV_VAR", "configure_from_env"]

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
