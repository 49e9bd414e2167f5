"""The poll defaults and the id check: what the client's import needs of the poll engine.

The engine itself (:mod:`instax_async.polling`, with :class:`~instax_async.polling.PollOptions`)
loads with the first poll.
"""

from __future__ import annotations

from .errors import ValidationError

#: Seconds to wait after the first answer.
INTERVAL = 2.0
#: The longest wait between two attempts.
MAX_INTERVAL = 30.0
#: Each wait is the previous one times this.
BACKOFF = 1.5
#: Seconds a whole poll may take.
TIMEOUT = 600.0


def check_id(value: object, field: str) -> str:
    """``value`` as a non-empty id string, or :class:`~instax_async.ValidationError`."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{field}: expected a non-empty string such as 'wd_…' or 'ps_…', got {value!r}",
            field=field,
        )
    return value
