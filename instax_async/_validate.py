"""The checks of what callers pass in: numbers, counts, callables, ids, URLs, api keys.

Each returns the value (as the type the SDK keeps) or raises
:class:`~instax_async.ValidationError` naming the field and what it accepts:
``"<field>: expected <what is accepted>, got <what came>"``. A ``bool`` is never a number here,
although Python counts it as an ``int``. Imports nothing beyond the standard library and
:mod:`instax_async.errors`, so any module may use it at no cost.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from .errors import ValidationError

__all__ = [
    "DOT_SEGMENTS",
    "check_api_key",
    "check_base_url",
    "check_callable",
    "check_count",
    "check_id",
    "check_number",
    "surrogate_at",
]


def check_number(
    field: str,
    value: object,
    *,
    minimum: float = 0.0,
    inclusive: bool = False,
    maximum: float | None = None,
    accepted: str = "",
    expected: str | None = None,
    none: str | None = None,
) -> float:
    """``value`` as a float: a finite ``int`` or ``float`` above ``minimum`` (or equal to it,
    with ``inclusive``) and at most ``maximum``.

    The message says ``expected a finite number > 0`` (the bound given) plus ``accepted``, or
    ``expected`` instead when given. ``none``, when given, is what ``None`` would do
    (``"poll forever; …"``): said instead of the usual message.
    """
    if value is None and none is not None:
        raise ValidationError(f"{field}: None would {none}", field=field)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value < minimum if inclusive else value <= minimum)
        or (maximum is not None and value > maximum)
    ):
        if expected is None:
            expected = f"a finite number {'>=' if inclusive else '>'} {minimum:g}{accepted}"
        raise ValidationError(f"{field}: expected {expected}, got {value!r}", field=field)
    return float(value)


def check_count(
    field: str, value: object, *, minimum: int = 0, accepted: str = "", expected: str | None = None
) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        if expected is None:
            expected = f"an int >= {minimum}{accepted}"
        raise ValidationError(f"{field}: expected {expected}, got {value!r}", field=field)
    return value


def check_callable(field: str, value: object, *, expected: str = "a callable or None") -> None:
    """Refuse ``value`` unless it is callable or ``None``."""
    if value is not None and not callable(value):
        raise ValidationError(
            f"{field}: expected {expected}, got {type(value).__name__}", field=field
        )


def surrogate_at(text: str) -> int | None:
    """The index of the first surrogate code point in ``text`` (lone, or half of a pair split
    in two), or ``None``: such text has no UTF-8 form, so it can be neither sent nor quoted."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


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
    position = surrogate_at(value)
    if position is not None:
        raise ValidationError(
            f"{field}: holds a lone surrogate (position {position}), which no URL can "
            "carry (expected an id such as 'wd_…' or 'ps_…')",
            field=field,
        )
    return value


def check_base_url(value: object, example: str) -> str:
    """``value`` as an absolute http(s) URL without query or fragment, less a trailing ``/``."""
    if not isinstance(value, str):
        raise ValidationError(
            f"base_url: expected an http(s) URL string, got {value!r}", field="base_url"
        )
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValidationError(
            f"base_url: expected an absolute http(s) URL such as {example!r}, got {value!r}",
            field="base_url",
        )
    return value.rstrip("/")


# What an api key may hold: visible ASCII, as an HTTP header value can carry it unchanged.
_API_KEY = re.compile(r"[!-~]+").fullmatch


def check_api_key(value: object) -> str | None:
    """``value`` stripped of surrounding blanks, or ``None``; the key is never shown."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("api_key: expected a non-empty string", field="api_key")
    key = value.strip()
    if not _API_KEY(key):
        # the position only: the key itself, or a part of it, is never shown
        position = next(i for i, char in enumerate(key, 1) if not "!" <= char <= "~")
        raise ValidationError(
            "api_key: expected visible ASCII characters only ('!' to '~', no spaces, control "
            f"or non-ASCII characters); character {position} of the key is not one",
            field="api_key",
        )
    return key
