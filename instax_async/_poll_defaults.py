"""The poll defaults and the id check: what the client's import needs of the poll engine.

The engine itself (:mod:`instax_async.polling`, with :class:`~instax_async.polling.PollOptions`)
loads with the first poll.
"""

from __future__ import annotations

from ._validate import check_id

__all__ = ["BACKOFF", "INTERVAL", "MAX_INTERVAL", "TIMEOUT", "check_id"]

#: Seconds to wait after the first answer.
INTERVAL = 2.0
#: The longest wait between two attempts.
MAX_INTERVAL = 30.0
#: Each wait is the previous one times this.
BACKOFF = 1.5
#: Seconds a whole poll may take.
TIMEOUT = 600.0
