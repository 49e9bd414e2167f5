"""AsyncSession at the unit level: MockTransport and aioresponses."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses

import instax_async
from instax_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSession,
    AuthenticationError,
    BadRequestError,
    InstaxError,
    MockTransport,
    NotFoundError,
    RateLimitError,
    Request,
    Response,
    RetryPolicy,
    ServerError,
    SessionRequest,
    ValidationError,
)
from instax_async.serialization import MAX_JSON_DEPTH

REQUEST = SessionRequest.sending(from_amount="0.1", from_currency="USD", to_currency="USDT")
FAST = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)


def ok(body: Any = None, status: int = 201, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps({"id": "ps_1"} if body is None else body).encode()
    return Response(status=status, headers=headers or {}, content=content)


def client_with(handler: Any, **kwargs: Any) -> AsyncSession:
    kwargs.setdefault("retry", FAST)
    return AsyncSession(base_url="http://api.test", transport=MockTransport(handler), **kwargs)


def test_every_public_name_imports() -> None:
    for name in instax_async.__all__:
        assert getattr(instax_async, name) is not None, name
        if not name.startswith("_"):
            assert getattr(instax_async, name).__doc__, name


async def test_create_session_sends_exact_json_and_headers() -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return ok({"id": "ps_abc", "status": "initiated", "to_amount": 0.097})

    async with client_with(handler, api_key="k-secret") as client:
        session = await client.create_session(REQUEST)
    assert session.id == "ps_abc"
    assert session.iframe_url == "http://api.test/embed/ps_abc"
    assert session.status == "initiated"
    assert session.raw["to_amount"] == Decimal("0.097")
    (request,) = seen
    assert request.method == "POST"
    assert request.url == "http://api.test/api/session"
    assert request.content == (
        b'{"amountDirection":"sending","fromCurrency":"USD","toCurrency":"USDT","fromAmount":0.1}'
    )
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["x-api-key"] == "k-secret"
    ua = request.headers["User-Agent"]
    assert ua.startswith(f"instax-async/{instax_async.__version__} python/")
    assert " aiohttp/" in ua
    assert request.timeout == 30.0


async def test_async_handler_and_session_id_fallback() -> None:
    async def handler(request: Request) -> Response:
        await asyncio.sleep(0)
        return ok({"sessionId": "ps_old"}, status=200)

    async with client_with(handler) as client:
        assert (await client.create_session(REQUEST)).id == "ps_old"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"status": "initiated"}', "without a session id"),
        (b'{"id": ""}', "without a session id"),
        (b"\xff\xfe", "not JSON"),
    ],
)
async def test_unusable_2xx_bodies_raise_api_status_error(content: bytes, match: str) -> None:
    async with client_with(lambda r: Response(200, {}, content)) as client:
        with pytest.raises(APIStatusError, match=match) as info:
            await client.create_session(REQUEST)
    assert info.value.status == 200
    assert info.value.body == content


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"id": "ps_1", "x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
    ],
    ids=["100k [", "100k {a:", "limit + 1"],
)
@pytest.mark.parametrize("status", [201, 500, 400, 429])
async def test_deeply_nested_bodies_are_api_status_errors_keeping_the_body(
    content: bytes, status: int
) -> None:
    calls = 0

    def handler(request: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(status, {}, content)

    async with client_with(handler) as client:
        with pytest.raises(APIStatusError) as info:
            await client.create_session(REQUEST)
    assert info.value.status == status and info.value.body == content
    assert isinstance(info.value, ServerError) is (status == 500)
    if status == 201:
        assert "nested deeper than 128 levels" in str(info.value)
    else:
        assert str(info.value).startswith(f"InstaXchange answered HTTP {status}")
    assert calls == (3 if status == 429 else 1)  # a POST is retried only when refused (429)


async def test_a_body_nested_just_under_the_limit_is_read() -> None:
    inner = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    content = b'{"id": "ps_1", "x": ' + inner + b"}"
    async with client_with(lambda r: Response(201, {}, content)) as client:
        session = await client.create_session(REQUEST)
    assert session.id == "ps_1" and session.raw["x"] == json.loads(inner)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (409, APIStatusError),
    ],
)
async def test_status_errors_map_to_classes(status: int, cls: type[APIStatusError]) -> None:
    body = {"message": f"nope {status}"}
    async with client_with(
        lambda r: ok(body, status=status, headers={"X-Trace": "t1"}),
        retry=RetryPolicy(max_retries=0),
    ) as client:
        with pytest.raises(cls) as info:
            await client.create_session(REQUEST)
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert json.loads(error.body) == body
    assert error.headers["X-Trace"] == "t1"
    assert f"nope {status}" in str(error)
    assert f"HTTP {status}" in str(error)


async def test_error_message_from_error_key_or_default() -> None:
    async with client_with(
        lambda r: ok({"error": {"message": "bad currency"}}, status=400)
    ) as client:
        with pytest.raises(BadRequestError, match="bad currency"):
            await client.create_session(REQUEST)
    async with client_with(lambda r: Response(400, {}, b"x" * 500)) as client:
        with pytest.raises(BadRequestError, match="answered HTTP 400") as info:
            await client.create_session(REQUEST)
    assert "…" in str(info.value)
    async with client_with(lambda r: Response(400, {}, b"")) as client:
        with pytest.raises(BadRequestError, match=r"\(HTTP 400\)$"):
            await client.create_session(REQUEST)


def counting(responses: list[Any]) -> tuple[list[Request], Any]:
    calls: list[Request] = []

    def handler(request: Request) -> Response:
        calls.append(request)
        item = responses[min(len(calls), len(responses)) - 1]
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    return calls, handler


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        (ok(status=429), True),
        (ok(status=503), True),
        (APIConnectionError("refused", connect_failed=True), True),
        (ok(status=500), False),
        (ok(status=502), False),
        (ok(status=408), False),
        (APITimeoutError("slow"), False),
        (APIConnectionError("reset after send"), False),
    ],
)
async def test_post_retries_only_where_nothing_was_processed(first: Any, retried: bool) -> None:
    calls, handler = counting([first, ok()])
    async with client_with(handler) as client:
        if retried:
            assert (await client.create_session(REQUEST)).id == "ps_1"
        else:
            with pytest.raises(InstaxError):
                await client.create_session(REQUEST)
    assert len(calls) == (2 if retried else 1)


async def test_retries_stop_after_max_retries() -> None:
    calls, handler = counting([ok(status=503)])
    async with client_with(handler) as client:
        with pytest.raises(ServerError):
            await client.create_session(REQUEST)
    assert len(calls) == 3


async def test_retry_after_is_honoured_and_capped() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    calls, handler = counting([ok(status=429, headers={"Retry-After": "7"}), ok()])
    client = client_with(handler)
    client.requester.sleep = fake_sleep
    await client.create_session(REQUEST)
    assert slept == [7.0]

    calls, handler = counting([ok(status=429, headers={"Retry-After": "120"}), ok()])
    client = client_with(handler)
    client.requester.sleep = fake_sleep
    with pytest.raises(RateLimitError) as info:
        await client.create_session(REQUEST)
    assert info.value.retry_after == 120.0
    assert len(calls) == 1


async def test_retries_are_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    _, handler = counting([ok(status=503), ok()])
    caplog.set_level(logging.WARNING, logger="instax_async")
    async with client_with(handler, api_key="top-secret-key") as client:
        await client.create_session(REQUEST)
    assert "retrying POST /api/session" in caplog.text
    assert "HTTP 503" in caplog.text
    assert "top-secret-key" not in caplog.text


async def test_unexpected_transport_exceptions_are_wrapped() -> None:
    def boom(request: Request) -> Response:
        raise OSError("socket gone")

    async with client_with(boom, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(APIConnectionError, match="OSError: socket gone") as info:
            await client.create_session(REQUEST)
    assert isinstance(info.value.__cause__, OSError)

    def slow(request: Request) -> Response:
        raise asyncio.TimeoutError

    async with client_with(slow, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(APITimeoutError):
            await client.create_session(REQUEST)


async def test_timeout_is_enforced_even_if_the_transport_ignores_it() -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with client_with(hang, timeout=0.05, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(APITimeoutError, match=r"timed out after 0\.05 s"):
            await client.create_session(REQUEST)


async def test_cancellation_propagates_untouched() -> None:
    started = asyncio.Event()

    async def hang(request: Request) -> Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    client = client_with(hang)
    task = asyncio.create_task(client.create_session(REQUEST))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_max_concurrency_bounds_in_flight() -> None:
    in_flight = peak = 0

    async def handler(request: Request) -> Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return ok()

    async with client_with(handler, max_concurrency=7) as client:
        results = await asyncio.gather(*(client.create_session(REQUEST) for _ in range(1000)))
    assert len(results) == 1000
    assert peak == 7


def test_construction_needs_no_loop_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTAX_API_KEY", "env-key")
    monkeypatch.setenv("INSTAX_BASE_URL", "http://127.0.0.1:9/")
    client = AsyncSession()
    assert client.base_url == "http://127.0.0.1:9"
    assert client.has_api_key
    assert "env-key" not in repr(client)
    assert "api_key=set" in repr(client)
    assert client.iframe_url("ps_1/../x y") == "http://127.0.0.1:9/embed/ps_1%2F..%2Fx%20y"
    monkeypatch.delenv("INSTAX_API_KEY")
    monkeypatch.delenv("INSTAX_BASE_URL")
    default = AsyncSession()
    assert default.base_url == "https://instaxchange.com"
    assert not default.has_api_key
    assert "api_key=unset" in repr(default)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": None}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"base_url": "instaxchange.com"}, "base_url"),
        ({"base_url": 5}, "base_url"),
        ({"base_url": "https://x.test/?q=1"}, "base_url"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "a\nb"}, "api_key"),
        ({"retry": 3}, "retry"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"transport": object()}, "transport"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(**kwargs)
    assert info.value.field == field
    assert "a\nb" not in str(info.value)


@pytest.mark.parametrize(
    "key",
    [
        "sk_live_abc\x7f",  # DEL
        "sk_live_abc\x1b[2J",
        "sk_live_\x85abc",  # C1
        "sk_live abc",
        "sk_live_abc\tdef",
        "sk_live_\u00e9abc",
        "sk_live_\u2028abc",
        "sk_live_\ud800abc",  # a lone surrogate
        "sk_live_abc\r\nX-Evil: 1",
        "sk_live_abc\x00",
    ],
)
def test_an_api_key_of_anything_but_visible_ascii_is_refused_unshown(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    makers: list[Any] = [lambda: AsyncSession(api_key=key)]
    if "\x00" not in key and "\ud800" not in key:  # what an environment can hold
        monkeypatch.setenv("INSTAX_API_KEY", key)
        makers.append(AsyncSession)
    for make in makers:
        with pytest.raises(ValidationError, match="visible ASCII") as info:
            make()
        assert info.value.field == "api_key"
        assert "sk_live" not in str(info.value) and "abc" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__context__ is None


def test_an_api_key_of_visible_ascii_is_kept_without_surrounding_blanks() -> None:
    printable = "".join(chr(code) for code in range(0x21, 0x7F))
    client = AsyncSession(api_key=f"  {printable}\n")
    assert client._api_key == printable


def test_plain_with_raises_type_error() -> None:
    with pytest.raises(TypeError, match="async with"), AsyncSession():
        pass  # pragma: no cover


async def test_use_after_close_raises_and_close_is_idempotent() -> None:
    client = client_with(lambda r: ok())
    await client.aclose()
    await client.aclose()
    assert client.closed
    assert "closed" in repr(client)
    with pytest.raises(InstaxError, match="closed"):
        await client.create_session(REQUEST)
    with pytest.raises(InstaxError, match="closed"):
        async with client:
            pass  # pragma: no cover


async def test_bad_arguments_to_methods() -> None:
    async with client_with(lambda r: ok()) as client:
        with pytest.raises(ValidationError, match="SessionRequest"):
            await client.create_session({"fromAmount": 1})  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="session_id"):
            client.iframe_url("")
        for dots in (".", ".."):
            with pytest.raises(ValidationError, match="another endpoint") as info:
                client.iframe_url(dots)
            assert info.value.field == "session_id"
        assert client.iframe_url("...") == "http://api.test/embed/..."
        # a lone surrogate has no UTF-8 form to percent-encode: refused, not UnicodeEncodeError
        for call in (client.iframe_url, client.session_status, client.blockchain_status):
            with pytest.raises(ValidationError, match="lone surrogate") as info:
                result = call("ps_\ud800")
                if asyncio.iscoroutine(result):  # the API calls raise when awaited
                    await result
            assert info.value.field in ("session_id", "tx_id")
        assert client.iframe_url("../x") == "http://api.test/embed/..%2Fx"


async def test_owned_transport_is_closed_and_passed_one_is_not() -> None:
    closed: list[str] = []

    class Recording(MockTransport):
        async def aclose(self) -> None:
            closed.append("passed")

    client = AsyncSession(transport=Recording(lambda r: ok()))
    await client.aclose()
    assert closed == []


def test_retry_policy_validation_and_backoff() -> None:
    with pytest.raises(ValidationError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValidationError, match="backoff_base"):
        RetryPolicy(backoff_base=float("nan"))
    with pytest.raises(ValidationError, match="backoff_max"):
        RetryPolicy(backoff_max="1")  # type: ignore[arg-type]
    policy = RetryPolicy(backoff_base=1.0, backoff_max=3.0)
    for retry_number, ceiling in ((1, 1.0), (2, 2.0), (3, 3.0), (9, 3.0)):
        waits = {policy.backoff(retry_number) for _ in range(50)}
        assert all(0.0 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered


async def test_aioresponses_through_the_default_transport() -> None:
    with aioresponses() as mocked:
        mocked.post("https://instaxchange.com/api/session", status=503)
        mocked.post("https://instaxchange.com/api/session", payload={"id": "ps_x"}, status=201)
        async with AsyncSession(retry=FAST) as client:
            session = await client.create_session(REQUEST)
        assert session.iframe_url == "https://instaxchange.com/embed/ps_x"
        calls = [c for key, cs in mocked.requests.items() for c in cs]
        assert len(calls) == 2
        assert calls[0].kwargs["data"] == (
            b'{"amountDirection":"sending","fromCurrency":"USD","toCurrency":"USDT","fromAmount":0.1}'
        )
