"""The transport contract: one request in, one response out.

A transport moves bytes; it knows nothing of InstaXchange. The client builds a :class:`Request`,
a transport sends it and returns a :class:`Response`, and the client interprets the status and
body. Any object with the two methods of :class:`Transport` can be passed as ``transport=``.

The helpers below keep every transport to the same two promises, which no library underneath
makes for us:

- **A response costs at most** ``max_response_bytes`` **of memory.** :class:`BodyCollector`
  counts the body as it arrives (after decompression) and refuses it with
  :class:`~instax_async.ResponseTooLargeError` past the limit, keeping only a short prefix.
- **No secret leaves through an error.** HTTP libraries attach the request, headers and all, to
  their exceptions (aiohttp's ``ClientResponseError.request_info``), and error reporters record
  the ``repr`` of every exception in a chain. :func:`scrub_exception` copies such an exception
  chain with the secret header values removed, so a transport can raise its own error ``from``
  the copy, outside the ``except`` block, and the original (kept alive by ``__context__``
  otherwise) is nowhere in the chain.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import attr  # the library ``attrs`` re-exports; see _frozen.py

from .._frozen import Frozen
from .._validate import check_count
from ..errors import RESPONSE_PREFIX_BYTES, ResponseTooLargeError, ValidationError

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "INFLATE_STEP",
    "MIN_REDACTED_LENGTH",
    "SECRET_HEADERS",
    "SECRET_HEADER_WORDS",
    "BodyCollector",
    "Inflater",
    "RedactedError",
    "Request",
    "Response",
    "Transport",
    "check_max_response_bytes",
    "is_secret_header",
    "redacted_headers",
    "scrub_exception",
    "secret_values",
    "unsendable_request_error",
    "without_secret",
]

#: The most bytes of a response body a transport reads unless told otherwise: 16 MiB.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024

#: Request headers whose values are secrets (lower case): the api key, credentials, cookies and
#: the webhook signature. Their values never appear in a repr, an error or a log line.
SECRET_HEADERS = frozenset(
    {"x-api-key", "authorization", "proxy-authorization", "cookie", "x-instaxwh-key"}
)

#: Words that make any header name secret-looking (``X-Auth-Token``, ``X-Client-Secret``,
#: ``Idempotency-Key``): a header a merchant adds through ``default_headers`` or a hook to follow
#: an API change is treated as a secret when its name says it may be one.
SECRET_HEADER_WORDS = ("auth", "token", "secret", "key", "password", "signature", "cookie")

_REDACTED = "<redacted>"


def is_secret_header(name: str) -> bool:
    """True when a header's value must never be shown: a :data:`SECRET_HEADERS` name, or one
    holding a word of :data:`SECRET_HEADER_WORDS` (in any case)."""
    lower = name.lower()
    return lower in SECRET_HEADERS or any(word in lower for word in SECRET_HEADER_WORDS)


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with the value of every secret header (:func:`is_secret_header`)
    redacted."""
    return {name: _REDACTED if is_secret_header(name) else value for name, value in headers.items()}


def secret_values(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The values of the secret headers in ``headers`` (:func:`is_secret_header`): the strings
    no error may show."""
    return tuple(value for name, value in headers.items() if value and is_secret_header(name))


#: The shortest api key that :func:`without_secret` looks for in an answer: a shorter one is a
#: placeholder ("test", "wrong"), and would match the server's own words.
MIN_REDACTED_LENGTH = 12


def without_secret(
    status: int, headers: Mapping[str, str], content: bytes, secret: str
) -> tuple[Mapping[str, str], bytes]:
    """``headers`` and ``content`` of an answer with every occurrence of ``secret`` (a request's
    api key that a server echoed back) replaced by ``<redacted>``; unchanged when it does not
    occur, or when ``secret`` is shorter than :data:`MIN_REDACTED_LENGTH` characters. Header
    values are looked at only for an error answer (status 400 or more): only an error shows
    them."""
    if len(secret) < MIN_REDACTED_LENGTH:
        return headers, content
    encoded = secret.encode("utf-8", "surrogatepass")
    # (a custom transport's body or header value of another type than the contract's is left
    # to the steps that read it, which say what is wrong with it)
    if isinstance(content, bytes) and encoded in content:
        content = content.replace(encoded, _REDACTED.encode())
    if status >= 400 and any(isinstance(v, str) and secret in v for v in headers.values()):
        # lower-case names: a plain dict is looked up that way
        headers = {
            str(k).lower(): v.replace(secret, _REDACTED) if isinstance(v, str) else v
            for k, v in headers.items()
        }
    return headers, content


def _headers_repr(headers: object) -> str:
    if not isinstance(headers, Mapping):  # not what the contract asks for: show no values
        return f"<{type(headers).__name__}>"
    return repr(redacted_headers(headers))


_set = object.__setattr__


@attr.frozen(init=False, repr=False, eq=False)
class Request(Frozen):
    """An HTTP request as the client hands it to a transport.

    ``timeout`` is the number of seconds this one attempt may take, connection included. The
    ``repr`` shows ``<redacted>`` for the values of secret headers (:data:`SECRET_HEADERS`).
    Immutable: build a new one to change a field. The client gives each attempt a ``dict`` of
    headers of its own, which a request hook may change in place for that attempt only.
    """

    method: str
    url: str
    headers: Mapping[str, str] = attr.field(repr=_headers_repr)
    content: bytes
    timeout: float

    # Written out (attrs would generate the same): one is built for every attempt.
    def __init__(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes, timeout: float
    ) -> None:
        _set(self, "method", method)
        _set(self, "url", url)
        _set(self, "headers", headers)
        _set(self, "content", content)
        _set(self, "timeout", timeout)


@attr.frozen(init=False, repr=False, eq=False)
class Response(Frozen):
    """An HTTP response as a transport hands it back: status, headers and the whole body.

    ``headers`` should look names up case-insensitively (aiohttp's and httpx's header mappings
    do); a plain ``dict`` works when its keys are lower case. Immutable.
    """

    status: int
    headers: Mapping[str, str]
    content: bytes

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        _set(self, "status", status)
        _set(self, "headers", headers)
        _set(self, "content", content)


@runtime_checkable
class Transport(Protocol):
    """What ``AsyncSession(transport=...)`` needs: two async methods.

    ``send`` performs one attempt (the client does the retrying) and should raise
    :class:`~instax_async.APIConnectionError` / :class:`~instax_async.APITimeoutError` when the
    request does not complete; any other exception it raises is wrapped by the client as an
    ``APIConnectionError``, except a ``ValueError`` or ``TypeError``: that is taken for a
    request that could not be built, raised as :class:`~instax_async.ValidationError`
    (:func:`unsendable_request_error`) and never retried. Set ``connect_failed=True`` on the
    error when nothing was sent, which lets the client retry a non-idempotent ``POST`` safely.

    A transport that bounds the whole attempt by ``Request.timeout`` itself may say so with a
    class attribute ``enforces_timeout = True``; the client then adds no timer of its own.
    """

    async def send(self, request: Request) -> Response:
        """Send one request and return its response."""
        ...

    async def aclose(self) -> None:
        """Release the transport's resources (connections, sessions)."""
        ...


# -- bounded bodies --------------------------------------------------------------------------


def check_max_response_bytes(value: object) -> int:
    """``value`` if it is a valid ``max_response_bytes`` (an int >= 1), else ValidationError."""
    return check_count(
        "max_response_bytes",
        value,
        minimum=1,
        accepted=" (bytes of a response body, counted after decompression; "
        f"default {DEFAULT_MAX_RESPONSE_BYTES})",
    )


class BodyCollector:
    """Gathers one response body, chunk by chunk, and refuses it past ``limit`` bytes.

    Feed it the body as it arrives, already decompressed and in pieces of bounded size (the
    transport's job: one huge decompressed piece would cost its size before it is counted).
    Past the limit, :meth:`add` raises :class:`~instax_async.ResponseTooLargeError` carrying the
    status, the headers and the first bytes (at most 4 KiB, never more than the limit); the
    transport then closes the connection instead of reading on.
    """

    __slots__ = (
        "_chunks",
        "_headers",
        "_limit",
        "_prefix",
        "_prefix_cap",
        "_request",
        "_size",
        "_status",
    )

    def __init__(
        self, request: Request, status: int, headers: Mapping[str, str], limit: int
    ) -> None:
        self._request = request
        self._status = status
        self._headers = headers
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []
        self._prefix = bytearray()
        self._prefix_cap = min(RESPONSE_PREFIX_BYTES, limit)

    def check_length(self, content_length: int | None) -> None:
        """Refuse at once when the declared length of an unencoded body is over the limit.

        Call it only for a body without a content coding: a compressed body's
        ``Content-Length`` says nothing about its size once decompressed.
        """
        if content_length is not None and content_length > self._limit:
            raise self._too_large(f"its Content-Length ({content_length} bytes) is")

    def add(self, chunk: bytes) -> None:
        """Count ``chunk`` in; raise ``ResponseTooLargeError`` once the body is over the limit."""
        if len(self._prefix) < self._prefix_cap:
            self._prefix += chunk[: self._prefix_cap - len(self._prefix)]
        self._size += len(chunk)
        if self._size > self._limit:
            self._chunks.clear()
            raise self._too_large("the body is")
        if chunk:
            self._chunks.append(chunk)

    def content(self) -> bytes:
        """The whole body, once it has all arrived."""
        return b"".join(self._chunks)

    def _too_large(self, what: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{self._request.method} {self._request.url}: {what} larger than "
            f"max_response_bytes ({self._limit}); "
            "the connection was closed without reading the rest",
            status=self._status,
            body=bytes(self._prefix),
            headers=self._headers,
            max_response_bytes=self._limit,
        )


# -- exception chains without secrets -------------------------------------------------------


class RedactedError(Exception):
    """Stands in, in an exception chain, for an exception whose text held a request secret."""


_MAX_CHAIN = 32


def scrub_exception(
    exc: BaseException,
    secrets: Collection[str],
    redact: Callable[[BaseException], None] | None = None,
) -> BaseException:
    """A copy of ``exc`` and its whole chain in which no ``secrets`` string shows.

    Each exception of the chain (``__cause__`` and ``__context__``, recursively) is copied,
    keeping its type, message and attributes; ``redact(copy)`` then removes what the library
    attached (such as request headers). A copy whose ``str``, ``repr``, ``args`` or notes
    still contain a secret is replaced by a :class:`RedactedError` naming only its type. The
    copies carry no traceback: the library's frames hold the request headers. Raise your own
    error ``from`` the result, outside the ``except`` block that caught ``exc``.
    """
    # each secret also as the escaped text of a str's or bytes' repr: libraries quote a value
    # they refuse that way (b'sk_1\\n')
    secrets = tuple(
        {
            form
            for s in secrets
            if s
            for form in (s, repr(s)[1:-1], repr(s.encode("utf-8", "backslashreplace"))[2:-1])
        }
    )
    copies: dict[int, BaseException] = {}

    def scrub(original: BaseException, depth: int) -> BaseException:
        known = copies.get(id(original))
        if known is not None:
            return known
        clone = _clone(original)
        if redact is not None and not isinstance(clone, RedactedError):
            redact(clone)
        if _shows(clone, secrets):
            clone = RedactedError(
                f"{type(original).__module__}.{type(original).__qualname__}: its details held "
                "a request secret and were withheld"
            )
        copies[id(original)] = clone
        if depth < _MAX_CHAIN:
            if original.__cause__ is not None:
                clone.__cause__ = scrub(original.__cause__, depth + 1)
            if original.__context__ is not None:
                clone.__context__ = scrub(original.__context__, depth + 1)
        clone.__suppress_context__ = original.__suppress_context__
        return clone

    return scrub(exc, 0)


def _clone(exc: BaseException) -> BaseException:
    """A shallow copy of ``exc`` without its traceback or chain; RedactedError if impossible."""
    cls = type(exc)
    try:
        clone = copy.copy(exc)  # through __reduce__: cls(*args), then the instance's __dict__
        if type(clone) is not cls:
            raise TypeError(cls)
    except Exception:
        try:  # an __init__ whose signature differs from ``args``: build without calling it
            clone = cls.__new__(cls, *exc.args)
            clone.args = exc.args
            clone.__dict__.update(getattr(exc, "__dict__", {}))
        except Exception:
            return RedactedError(f"{cls.__module__}.{cls.__qualname__} (could not be copied)")
    clone.__traceback__ = None
    clone.__cause__ = None
    clone.__context__ = None
    return clone


def _shows(exc: BaseException, secrets: tuple[str, ...]) -> bool:
    """True if a secret is in what an error reporter would record of ``exc`` (or if unsure)."""
    try:
        texts = [str(exc), repr(exc), *map(repr, exc.args)]
        texts.extend(str(note) for note in getattr(exc, "__notes__", ()))
    except Exception:
        return True
    return any(secret in text for text in texts for secret in secrets)


def unsendable_request_error(request: Request, cause: BaseException) -> ValidationError:
    """The error for a request that could not be built as given, so nothing was sent.

    For a ``ValueError`` or ``TypeError`` raised while the request is put together (a header
    value HTTP does not allow, such as one a request hook set) instead of a
    :class:`~instax_async.APIConnectionError`: nothing failed on the network, and the same
    request would fail the same way, so it is never retried. Pass a scrubbed ``cause``
    (:func:`scrub_exception`); raise the result ``from`` it.
    """
    return ValidationError(
        f"{request.method} {request.url}: the request could not be built, so nothing was sent "
        f"(a header value with a character HTTP does not allow?): "
        f"{type(cause).__name__}: {cause}",
        field="request",
    )


# -- bounded decompression -------------------------------------------------------------------

#: The content codings the transports ask for (``Accept-Encoding``) and decode themselves.
ACCEPT_ENCODING = "gzip, deflate"

#: The most bytes one decompression step may produce: a body is counted piece by piece, so a
#: small compressed chunk cannot inflate to gigabytes before the limit is checked.
INFLATE_STEP = 64 * 1024


class Inflater:
    """Decompresses a ``gzip`` or ``deflate`` body in pieces of at most :data:`INFLATE_STEP`.

    HTTP libraries inflate each network read in one go (a 64 KiB read of a gzip bomb is 64 MiB
    before anything can count it; aiohttp bounds this only from 3.13.3 on), so the transports
    take the body as it came off the wire and inflate it here. ``deflate`` is accepted with or
    without its zlib header, as browsers do. Bytes after the end of the compressed stream are
    ignored. A corrupt stream raises ``zlib.error``.
    """

    __slots__ = ("_encoding", "_inflater")

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._inflater: Any = (
            zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
        )

    @classmethod
    def for_encoding(cls, content_encoding: str | None) -> Inflater | None:
        """An inflater for a ``Content-Encoding`` it can undo, else ``None`` (pass bytes on)."""
        encoding = (content_encoding or "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            return cls(encoding)
        return None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of the next compressed ``data``."""
        if self._inflater is None:
            if not data:
                return
            # RFC 1950: a zlib stream starts with CM = 8 in the low nibble; else it is raw
            wbits = zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS
            self._inflater = zlib.decompressobj(wbits)
        inflater = self._inflater
        while True:
            piece: bytes = inflater.decompress(data, INFLATE_STEP)
            if piece:
                yield piece
            data = inflater.unconsumed_tail
            # a full piece may leave output pending inside zlib: ask again until it is short
            if not data and len(piece) < INFLATE_STEP:
                return
