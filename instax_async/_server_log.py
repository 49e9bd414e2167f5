"""The log of the SDK's own HTTP servers (the sandbox, the webhook recorder)."""

from __future__ import annotations

import logging
import re

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["server_logger"]


# Where the request's own bytes start in aiohttp's message ("Invalid header token:\n\n  b'x-…'",
# "Bad HTTP method in status line b'…'"): they may hold a header's value, an api key's too.
_REQUEST_DATA = re.compile(r"[:\n]| b?['\"]")


class _ClientMistakes(logging.Filter):
    """A request that is not valid HTTP (a request line over 8 KiB, a malformed header) is the
    client's mistake: one WARNING line naming what was wrong, not aiohttp's ERROR with its
    parser's traceback, and none of the request's bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            reason = _REQUEST_DATA.split(str(exc.message), 1)[0].strip()[:120]
            record.msg = "refused a request from %s that is not valid HTTP (%d %s): %s"
            record.args = (remote, exc.code or 400, type(exc).__name__, reason or "no reason")
            record.exc_info = record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: The log of the sandbox's and the webhook recorder's HTTP servers, where aiohttp logs
#: requests it could not handle; see :class:`_ClientMistakes`.
server_logger = logging.getLogger("instax_async.sandbox.server")
server_logger.addFilter(_ClientMistakes())
