"""Transport helpers at the unit level: bounded bodies, inflation, scrubbed exception chains."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import aiohttp
import httpx
import pytest

import instax_async
from instax_async import (
    AiohttpTransport,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSession,
    InstaxError,
    MockTransport,
    Request,
    Response,
    ResponseTooLargeError,
    RetryPolicy,
    SessionRequest,
    ValidationError,
)
from instax_async.retry import is_transient
from instax_async.transports.base import (
    INFLATE_STEP,
    SECRET_HEADERS,
    BodyCollector,
    Inflater,
    RedactedError,
    scrub_exception,
)
from instax_async.transports.httpx import HttpxTransport
from instax_async.webhooks import SIGNATURE_HEADER

KEY = "sk_test_4f9c2e7a1b8d6035"
REQUEST = Request("GET", "http://api.test/x", {"x-api-key": KEY, "Accept": "a/b"}, b"", 1.0)


def chain(exc: BaseException | None) -> list[BaseException]:
    """Every exception reachable through __cause__ and __context__."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        item = stack.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        stack += [item.__cause__, item.__context__]
    return seen


def shown(exc: BaseException) -> str:
    return "\n".join(
        text for item in chain(exc) for text in (str(item), repr(item), *map(repr, item.args))
    )


# -- ResponseTooLargeError and max_response_bytes ------------------------------------------


def test_response_too_large_error_is_public_and_a_status_error() -> None:
    assert "ResponseTooLargeError" in instax_async.__all__
    assert issubclass(ResponseTooLargeError, APIStatusError)
    assert ResponseTooLargeError.__doc__
    error = ResponseTooLargeError(
        "too big", status=200, body=b"x" * 10_000, headers={"A": "b"}, max_response_bytes=5
    )
    assert (error.status, error.headers, error.max_response_bytes) == (200, {"A": "b"}, 5)
    assert len(error.body) == 4096
    assert "HTTP 200" in str(error)


@pytest.mark.parametrize("status", [200, 404, 429, 500, 503])
def test_a_too_large_response_is_never_transient(status: int) -> None:
    assert not is_transient(ResponseTooLargeError("big", status=status))


@pytest.mark.parametrize("factory", [AiohttpTransport, HttpxTransport])
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "16", None])
def test_max_response_bytes_is_validated(factory: Any, value: object) -> None:
    with pytest.raises(ValidationError, match="max_response_bytes: expected an int >= 1") as info:
        factory(max_response_bytes=value)
    assert info.value.field == "max_response_bytes"


def test_max_response_bytes_is_shown_and_defaults_to_16_mib() -> None:
    assert AiohttpTransport().max_response_bytes == 16 * 1024 * 1024
    assert HttpxTransport(max_response_bytes=10).max_response_bytes == 10
    assert "max_response_bytes=10" in repr(AiohttpTransport(max_response_bytes=10))
    assert "max_response_bytes=16777216" in repr(HttpxTransport())


def test_aiohttp_transport_rejects_a_bad_limit_with_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="limit: expected a non-negative int"):
        AiohttpTransport(limit=True)


def test_body_collector_keeps_the_whole_body_up_to_the_limit() -> None:
    body = BodyCollector(REQUEST, 200, {}, limit=10)
    for chunk in (b"0123", b"", b"456789"):
        body.add(chunk)
    assert body.content() == b"0123456789"
    body.check_length(10)
    body.check_length(None)


def test_body_collector_refuses_past_the_limit_with_a_prefix() -> None:
    body = BodyCollector(REQUEST, 502, {"Server": "x"}, limit=5000)
    body.add(b"a" * 3000)
    with pytest.raises(ResponseTooLargeError) as info:
        body.add(b"b" * 3000)
    error = info.value
    assert error.status == 502
    assert error.headers == {"Server": "x"}
    assert error.body == b"a" * 3000 + b"b" * 1096
    assert error.max_response_bytes == 5000
    assert "GET http://api.test/x" in str(error)
    assert "larger than max_response_bytes (5000)" in str(error)


def test_body_collector_prefix_never_exceeds_a_small_limit() -> None:
    body = BodyCollector(REQUEST, 200, {}, limit=3)
    with pytest.raises(ResponseTooLargeError) as info:
        body.add(b"abcdef")
    assert info.value.body == b"abc"


def test_body_collector_refuses_early_on_a_declared_length() -> None:
    body = BodyCollector(REQUEST, 200, {}, limit=100)
    with pytest.raises(ResponseTooLargeError, match=r"Content-Length \(101 bytes\)") as info:
        body.check_length(101)
    assert info.value.body == b""


# -- Inflater ------------------------------------------------------------------------------


def inflate(inflater: Inflater, data: bytes, step: int = 1000) -> list[bytes]:
    return [p for i in range(0, len(data), step) for p in inflater.feed(data[i : i + step])]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib header
    ],
)
def test_inflater_undoes_each_coding_in_bounded_pieces(encoding: str, compress: Any) -> None:
    original = bytes(range(256)) * 4000 + bytes(3 * INFLATE_STEP)
    inflater = Inflater.for_encoding(f" {encoding.upper()} ")
    assert inflater is not None
    pieces = inflate(inflater, compress(original))
    assert b"".join(pieces) == original
    assert max(map(len, pieces)) <= INFLATE_STEP


def test_inflater_bounds_a_bomb_fed_in_one_chunk() -> None:
    bomb = gzip.compress(bytes(50 * INFLATE_STEP))
    inflater = Inflater.for_encoding("gzip")
    assert inflater is not None
    pieces = list(inflater.feed(bomb))
    assert max(map(len, pieces)) == INFLATE_STEP
    assert sum(map(len, pieces)) == 50 * INFLATE_STEP
    assert list(inflater.feed(b"")) == []


def test_inflater_ignores_bytes_after_the_stream_and_rejects_garbage() -> None:
    inflater = Inflater.for_encoding("gzip")
    assert inflater is not None
    assert b"".join(inflater.feed(gzip.compress(b"{}") + b"trailing")) == b"{}"
    deflate = Inflater.for_encoding("deflate")
    assert deflate is not None
    assert list(deflate.feed(b"")) == []
    broken = Inflater.for_encoding("gzip")
    assert broken is not None
    with pytest.raises(zlib.error):
        list(broken.feed(b"not gzip at all"))


@pytest.mark.parametrize("encoding", [None, "", "identity", "br", "zstd", "gzip, gzip"])
def test_inflater_leaves_other_codings_alone(encoding: str | None) -> None:
    assert Inflater.for_encoding(encoding) is None


# -- secrets -------------------------------------------------------------------------------


def test_request_repr_redacts_secret_headers() -> None:
    headers = {
        "x-api-key": KEY,
        "Authorization": "Bearer tok_1",
        "Cookie": "sid=c00k1e",
        SIGNATURE_HEADER: "0123456789abcdef0123456789abcdef",
        "User-Agent": "ua/1",
    }
    text = repr(Request("POST", "http://api.test/x", headers, b"{}", 3.0))
    for secret in (KEY, "tok_1", "c00k1e", "0123456789abcdef"):
        assert secret not in text
    assert "'x-api-key': '<redacted>'" in text
    assert "ua/1" in text
    assert SIGNATURE_HEADER.lower() in SECRET_HEADERS
    odd = Request("GET", "http://api.test/x", [("x-api-key", KEY)], b"", 1.0)  # type: ignore[arg-type]
    assert KEY not in repr(odd) and "headers=<list>" in repr(odd)


def test_scrub_copies_the_chain_keeping_types_and_messages() -> None:
    root = ConnectionResetError(104, "Connection reset by peer")
    try:
        try:
            raise root
        except OSError as exc:
            raise aiohttp.ClientPayloadError("payload cut") from exc
    except aiohttp.ClientPayloadError as exc:
        middle = exc
    middle.__notes__ = ["a note"]  # add_note() is Python 3.11+
    copy = scrub_exception(middle, [KEY])
    assert type(copy) is aiohttp.ClientPayloadError and str(copy) == "payload cut"
    assert copy is not middle and copy.__traceback__ is None
    assert getattr(copy, "__notes__", None) == ["a note"]
    cause = copy.__cause__
    assert type(cause) is ConnectionResetError and cause is not root
    assert (cause.errno, cause.strerror) == (104, "Connection reset by peer")
    assert copy.__context__ is cause and copy.__suppress_context__


def test_scrub_withholds_what_still_shows_a_secret() -> None:
    class Odd(Exception):
        def __init__(self, message: str, *, code: int) -> None:
            super().__init__(message)
            self.code = code

    leaky = Odd(f"headers: x-api-key={KEY}", code=7)
    noted = ValueError("fine")
    noted.__notes__ = [f"key was {KEY}"]
    leaky.__context__ = noted
    copy = scrub_exception(leaky, [KEY, ""])
    assert isinstance(copy, RedactedError)
    assert "Odd: its details held a request secret" in str(copy)
    assert isinstance(copy.__context__, RedactedError)
    assert KEY not in shown(copy)
    kept = scrub_exception(Odd("harmless", code=7), [KEY])
    assert type(kept) is Odd and kept.code == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "secret", ["sk_live_1\n", "sk_live_\x7f1", "sk_live_\u00e91", "sk_live_'1\"\\"]
)
def test_scrub_withholds_a_secret_quoted_in_escaped_form(secret: str) -> None:
    for text in (repr(secret), repr(secret.encode("utf-8", "backslashreplace")), secret):
        copy = scrub_exception(ValueError(f"Illegal header value {text}"), [secret])
        assert isinstance(copy, RedactedError), text
    assert not isinstance(scrub_exception(ValueError("fine"), [secret]), RedactedError)


def test_scrub_survives_cycles_uncopyable_and_unprintable_exceptions() -> None:
    class NoCopy(Exception):
        def __reduce__(self) -> Any:
            raise TypeError("no")

        def __new__(cls, *args: Any) -> NoCopy:
            if args:
                raise TypeError("no")
            return super().__new__(cls)

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("cannot")

    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    copy = scrub_exception(first, [KEY])
    assert copy.__context__ is not None and copy.__context__.__context__ is copy
    uncopyable = NoCopy()
    uncopyable.args = ("x",)
    assert isinstance(scrub_exception(uncopyable, [KEY]), RedactedError)
    assert isinstance(scrub_exception(Unprintable(), []), RedactedError)


def test_scrub_stops_on_a_very_long_chain_and_odd_copies() -> None:
    class Shapeshifter(Exception):
        def __reduce__(self) -> Any:
            return (ValueError, self.args)

    head = error = ValueError(0)
    for number in range(1, 100):
        error.__context__ = error = ValueError(number)
    copies = chain(scrub_exception(head, [KEY]))
    assert 10 < len(copies) < 100
    odd = scrub_exception(Shapeshifter("kept"), [KEY])
    assert type(odd) is Shapeshifter and str(odd) == "kept"


def test_scrub_redacts_aiohttp_request_info() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    from instax_async.transports.aiohttp import _redact

    info = aiohttp.RequestInfo(
        URL("http://api.test/x"),
        "GET",
        CIMultiDictProxy(CIMultiDict({"x-api-key": KEY, "Accept": "a/b"})),
        URL("http://api.test/x"),
    )
    error = aiohttp.ClientResponseError(info, (), status=400, message="Invalid status line")
    assert KEY in repr(error)  # what the library hands over
    copy = scrub_exception(error, [KEY], _redact)
    assert type(copy) is aiohttp.ClientResponseError
    assert copy.status == 400 and copy.message == "Invalid status line"
    assert copy.request_info.headers["x-api-key"] == "<redacted>"
    assert copy.request_info.headers["Accept"] == "a/b"
    assert KEY not in shown(copy)


def test_scrub_redacts_the_request_of_httpx_errors() -> None:
    from instax_async.transports.httpx import _redact

    request = httpx.Request("GET", "http://api.test/x", headers={"x-api-key": KEY})
    error = httpx.ReadError("boom", request=request)
    copy = scrub_exception(error, [KEY], _redact)
    assert type(copy) is httpx.ReadError and str(copy) == "boom"
    assert copy.request.headers["x-api-key"] == "<redacted>"
    assert error.request.headers["x-api-key"] == KEY  # the original is untouched
    bare = scrub_exception(httpx.ReadError("no request"), [KEY], _redact)
    assert type(bare) is httpx.ReadError


async def test_client_scrubs_what_a_custom_transport_raises() -> None:
    class Leaky(Exception):
        pass

    def handler(request: Request) -> Response:
        try:
            raise KeyError(dict(request.headers))
        except KeyError as exc:
            raise Leaky(f"failed with {request.headers['x-api-key']}") from exc

    async def slow(request: Request) -> Response:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    def timing_out(request: Request) -> Response:
        raise asyncio.TimeoutError(f"gave up on {request.headers['x-api-key']}")

    class Bounding(MockTransport):
        """A transport that enforces the timeout itself: the client calls it directly."""

        enforces_timeout = True

    request = SessionRequest.sending(from_amount="1", from_currency="USD", to_currency="USDT")
    for transport, error in (
        (MockTransport(handler), APIConnectionError),
        (MockTransport(slow), APITimeoutError),
        (Bounding(handler), APIConnectionError),
        (Bounding(timing_out), APITimeoutError),
    ):
        async with AsyncSession(
            KEY,
            base_url="http://api.test",
            transport=transport,
            retry=RetryPolicy(max_retries=0),
            timeout=0.05,
        ) as client:
            with pytest.raises(error) as info:
                await client.create_session(request)
        assert KEY not in shown(info.value)
        assert info.value.__context__ is None or info.value.__suppress_context__


async def test_transport_errors_are_plain_instax_errors_never_retried() -> None:
    calls: list[int] = []

    class Refusing:
        async def send(self, request: Request) -> Response:
            calls.append(1)
            raise InstaxError("wrong loop")

        async def aclose(self) -> None:
            pass

    async with AsyncSession(base_url="http://api.test", transport=Refusing()) as client:
        with pytest.raises(InstaxError, match="wrong loop"):
            await client.blockchain_status("wd_1")
    assert calls == [1]


class TimingMockTransport(MockTransport):
    """A mock that says it enforces the timeout: the client calls it directly."""

    enforces_timeout = True


@pytest.mark.parametrize(
    ("kind", "max_concurrency"),
    [(MockTransport, None), (MockTransport, 2), (TimingMockTransport, None)],
    ids=["timed-by-client", "bounded", "direct"],
)
@pytest.mark.parametrize(
    "raised",
    [
        ValueError(f"Forbidden control character in header x-api-key: {KEY}\x7f"),
        TypeError("Header value must be str or bytes, not <class 'int'>"),
        UnicodeEncodeError("ascii", f"{KEY}\u00e9", 12, 13, "ordinal not in range(128)"),
    ],
    ids=["ValueError", "TypeError", "UnicodeEncodeError"],
)
async def test_a_custom_transports_build_error_is_a_validation_error_never_retried(
    raised: Exception, kind: type[MockTransport], max_concurrency: int | None
) -> None:
    calls: list[Request] = []

    def refuse(request: Request) -> Response:
        calls.append(request)
        raise raised

    async with AsyncSession(
        KEY,
        base_url="http://api.test",
        transport=kind(refuse),
        retry=RetryPolicy(max_retries=3, backoff_base=0.0, backoff_max=0.0),
        max_concurrency=max_concurrency,
    ) as client:
        with pytest.raises(ValidationError, match="could not be built, so nothing was sent"):
            await client.blockchain_status("wd_1")
        with pytest.raises(ValidationError) as info:  # not even a POST that never left
            await client.create_session(
                SessionRequest.sending(from_amount="1", from_currency="USD", to_currency="USDT")
            )
    assert len(calls) == 2  # one attempt each
    assert not isinstance(info.value, APIConnectionError) and info.value.field == "request"
    assert KEY not in shown(info.value)


def test_requests_and_responses_are_immutable_values() -> None:
    import copy
    import pickle

    import attrs

    request = Request("POST", "http://api.test/x", {"x-api-key": KEY}, b"{}", 30.0)
    same = Request(
        method="POST", url="http://api.test/x", headers={"x-api-key": KEY}, content=b"{}",
        timeout=30.0,
    )  # fmt: skip
    assert request == same
    assert request != Request("GET", "http://api.test/x", {}, b"", 30.0)
    assert request != ("POST", "http://api.test/x", {"x-api-key": KEY}, b"{}", 30.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.url = "http://elsewhere.test"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del request.url  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(request)) == request == copy.deepcopy(request)
    assert KEY not in repr(request) and "'<redacted>'" in repr(request)
    response = Response(status=200, headers=(("a", "b"),), content=b"x")  # type: ignore[arg-type]
    assert hash(response) == hash(Response(200, (("a", "b"),), b"x"))  # type: ignore[arg-type]
    assert (
        repr(Response(201, {"a": "b"}, b""))
        == "Response(status=201, headers={'a': 'b'}, content=b'')"
    )
