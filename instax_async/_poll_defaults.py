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


#: The path segments a URL parser resolves (``/a/../b`` is ``/b``): never an id.
DOT_SEGMENTS = frozenset({".", ".."})


def check_id(value: object, field: str) -> str:
    """``value`` as an id string for a URL, or :class:`~instax_async.ValidationError`.

    An id is any non-blank string (it is percent-encoded where it goes) except ``"."`` and
    ``".."``: HTTP libraries and browsers resolve those as path segments, so that
    ``/api/session/../status`` would become ``/api/status``, another endpoint. Text with a lone
    surrogate, which has no UTF-8 form to percent-encode, is refused too.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{field}: expected a non-empty string such as 'wd_…' or 'ps_…', got {value!r}",
            field=field,
        )
    if value in DOT_SEGMENTS:
        raise ValidationError(
            f"{field}: {value!r} is not an id: in a URL path it would name another endpoint "
            "(expected an id such as 'wd_…' or 'ps_…')",
            field=field,
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"{field}: holds a lone surrogate (position {exc.start}), which no URL can "
                "carry (expected an id such as 'wd_…' or 'ps_…')",
                field=field,
            ) from None
    return value
