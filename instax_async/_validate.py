"""The checks of what callers pass in: numbers, counts, callables, ids, URLs, api keys, headers.

Each returns the value (as the type the SDK keeps) or raises
:class:`~instax_async.ValidationError` naming the field and what it accepts:
``"<field>: expected <what is accepted>, got <what came>"``. A ``bool`` is never a number here,
although Python counts it as an ``int``. Imports nothing beyond the standard library and
:mod:`instax_async.errors`, so any module may use it at no cost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from .errors import ValidationError

__all__ = [
    "DOT_SEGMENTS",
    "check_api_key",
    "check_base_url",
    "check_callable",
    "check_checkout_url",
    "check_count",
    "check_default_headers",
    "check_id",
    "check_number",
    "is_checkout_url",
    "is_loopback_host",
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


# Visible ASCII: what an api key, a checkout URL (template) may hold, as HTTP carries it unchanged.
_VISIBLE_ASCII = re.compile(r"[!-~]+").fullmatch


def check_api_key(value: object) -> str | None:
    """``value`` stripped of surrounding blanks, or ``None``; the key is never shown."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("api_key: expected a non-empty string", field="api_key")
    key = value.strip()
    if not _VISIBLE_ASCII(key):
        # the position only: the key itself, or a part of it, is never shown
        position = next(i for i, char in enumerate(key, 1) if not "!" <= char <= "~")
        raise ValidationError(
            "api_key: expected visible ASCII characters only ('!' to '~', no spaces, control "
            f"or non-ASCII characters); character {position} of the key is not one",
            field="api_key",
        )
    return key


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``) and loopback addresses (``127.0.0.0/8``,
    ``::1``): hosts that name this machine, where plain ``http`` crosses no network."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    import ipaddress  # only for a URL that is not https

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


#: The placeholder of a checkout URL template the session id goes into.
ID_PLACEHOLDER = "{id}"
#: The placeholder a template may start with: the client's base URL.
BASE_URL_PLACEHOLDER = "{base_url}"


# Stands for {id} while a template is parsed: letters only, so no URL part treats it specially.
_MARKER = "instaxsessionidmarker"


def _shown_text(value: str) -> str:
    return repr(value if len(value) <= 100 else value[:100] + "…")


def check_checkout_url(value: object, base_url: str) -> str:
    """A checkout URL template as the client keeps it: ``{base_url}`` at its start replaced by
    ``base_url``, exactly one ``{id}`` left in it.

    Accepted: an absolute ``https`` URL (``http`` only for a loopback host, or after
    ``{base_url}``, which keeps the base URL's scheme) of visible ASCII characters, with
    ``{id}`` once in its path or query, no user name or password, and no other braces; surrounding
    blanks are dropped. Anything else raises :class:`~instax_async.ValidationError` naming
    ``checkout_url``.
    """
    accepted = (
        "expected a URL template with {id} once, such as "
        "'https://checkout.example/order/{id}' or '{base_url}/order/{id}' (https, or http on "
        "a loopback host; visible ASCII, no other braces)"
    )
    if not isinstance(value, str):
        raise ValidationError(
            f"checkout_url: {accepted}, got {type(value).__name__}", field="checkout_url"
        )
    template = value.strip()
    inherits_scheme = template.startswith(BASE_URL_PLACEHOLDER)
    if inherits_scheme:
        template = base_url + template[len(BASE_URL_PLACEHOLDER) :]
    marked = template.replace(ID_PLACEHOLDER, _MARKER, 1)
    problem = None
    if template.count(ID_PLACEHOLDER) != 1:
        problem = "it must hold {id} exactly once"
    elif "{" in marked or "}" in marked:
        problem = "braces other than {id} (and {base_url} at the start) are not placeholders"
    elif not _VISIBLE_ASCII(template):
        problem = "it holds a blank, control or non-ASCII character (percent-encode it)"
    else:
        try:
            parts = urlsplit(marked)
            host = parts.hostname
        except ValueError:  # a bracketed host that is not an IPv6 address
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            problem = "it is not an absolute http(s) URL"
        elif "@" in parts.netloc:
            problem = "it must not carry a user name or password"
        elif _MARKER not in parts.path and _MARKER not in parts.query:
            problem = "{id} must be in its path or query, not its host or fragment"
        elif parts.scheme == "http" and not (inherits_scheme or is_loopback_host(host)):
            problem = "the customer pays there: https is required (http only on a loopback host)"
    if problem is not None:
        raise ValidationError(
            f"checkout_url: {accepted}; got {_shown_text(value)}: {problem}",
            field="checkout_url",
        )
    return template


def is_checkout_url(value: object, max_chars: int) -> bool:
    """True for a checkout URL an API answer may give: an absolute ``https`` URL (``http`` only
    on a loopback host) of visible ASCII, at most ``max_chars`` long, with no user name or
    password. Never another scheme (``javascript:``, ``data:``)."""
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        return False
    if not value[:8].lower().startswith(("https://", "http://")) or not _VISIBLE_ASCII(value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # a bracketed host that is not an IPv6 address
        return False
    if not host or "@" in parts.netloc:
        return False
    return parts.scheme == "https" or is_loopback_host(host)


# An HTTP header name: a token (RFC 9110), visible ASCII without separators; a header value the
# SDK sends as given: visible ASCII, spaces and tabs. Compiled on first use (re caches them).
_HEADER_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_HEADER_VALUE = r"[\t !-~]*"
#: Headers the transport sets from the request itself: framing and routing, never defaults.
TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def check_default_headers(value: object) -> dict[str, str]:
    """``value`` as a dict of headers every request carries (``{}`` for ``None``).

    Names are HTTP tokens (visible ASCII, no separators such as ``:`` or spaces), each given
    once whatever its case; values are strings of visible ASCII, spaces and tabs (no CR, LF or
    NUL, which would split or end a header). ``Host``, ``Content-Length``, ``Transfer-Encoding``
    and ``Connection`` are the transport's. A value is never shown in an error: it may be a
    secret.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            "default_headers: expected a mapping of header names to str values, such as "
            f'{{"Authorization": "Bearer …"}}, got {type(value).__name__}',
            field="default_headers",
        )
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, header_value in value.items():
        if not isinstance(name, str) or not re.fullmatch(_HEADER_NAME, name):
            shown = _shown_text(name) if isinstance(name, str) else type(name).__name__
            raise ValidationError(
                f"default_headers: expected header names of letters, digits and !#$%&'*+.^_`|~- "
                f"(no spaces or colons), got {shown}",
                field="default_headers",
            )
        lower = name.lower()
        if lower in TRANSPORT_HEADERS:
            raise ValidationError(
                f"default_headers: {name} is set by the transport for each request; it cannot "
                "be a default header",
                field="default_headers",
            )
        if lower in seen:
            raise ValidationError(
                f"default_headers: {name} is given twice (header names ignore case)",
                field="default_headers",
            )
        seen.add(lower)
        if not isinstance(header_value, str):
            raise ValidationError(
                f"default_headers[{name!r}]: expected a str, got {type(header_value).__name__}",
                field="default_headers",
            )
        if not re.fullmatch(_HEADER_VALUE, header_value):
            # the position only: the value may be a secret
            position = next(
                i
                for i, char in enumerate(header_value, 1)
                if not (" " <= char <= "~" or char == "\t")
            )
            raise ValidationError(
                f"default_headers[{name!r}]: expected visible ASCII, spaces and tabs only (no CR, "
                f"LF, NUL or other control or non-ASCII characters); character {position} of the "
                "value is not one",
                field="default_headers",
            )
        headers[name] = header_value
    return headers
