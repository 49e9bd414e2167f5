"""The webhook receivers: aiohttp (through aiohttp's test client) and ASGI (Starlette, httpx)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from starlette.applications import Starlette
from starlette.routing import Route

from instax_async import ClaimResult, InMemoryDedupeStore, ValidationError, WebhookEvent
from instax_async.integrations._receiver import Outcome, WebhookReceiver
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.integrations.asgi import webhook_app
from instax_async.webhooks import (
    RECEIVER_BODY_TIMEOUT,
    RECEIVER_MAX_BODY,
    RECEIVER_MAX_PENDING_BYTES,
    SIGNATURE_HEADER,
    sign,
)

SECRET = "receiver-secret"
VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "signatures.json").read_text())
BODY: bytes = next(v for v in VECTORS if v["name"] == "documented_completed")["body"].encode()
KEY = sign(BODY, SECRET)

Post = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


class Recorder:
    def __init__(self, fail_times: int = 0, delay: float = 0.0) -> None:
        self.events: list[WebhookEvent] = []
        self.fail_times = fail_times
        self.delay = delay

    async def __call__(self, event: WebhookEvent) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("database down: password=hunter2")
        self.events.append(event)


def aiohttp_poster(**handler_kwargs: Any) -> Callable[[Any], Any]:
    async def make(on_event: Any) -> tuple[Post, Callable[[], Awaitable[None]]]:
        app = web.Application()
        app.router.add_post("/hook", webhook_handler(SECRET, on_event, **handler_kwargs))
        client = TestClient(TestServer(app))
        await client.start_server()

        async def post(body: bytes, headers: dict[str, str] | None = None) -> Any:
            response = await client.post("/hook", data=body, headers=headers or {})
            return response.status, await response.json()

        return post, client.close

    return make


def asgi_poster(**handler_kwargs: Any) -> Callable[[Any], Any]:
    async def make(on_event: Any) -> tuple[Post, Callable[[], Awaitable[None]]]:
        receiver_app = webhook_app(SECRET, on_event, **handler_kwargs)
        app = Starlette(routes=[Route("/hook", receiver_app, methods=["POST"])])
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

        async def post(body: bytes, headers: dict[str, str] | None = None) -> Any:
            response = await client.post("/hook", content=body, headers=headers or {})
            return response.status_code, response.json()

        return post, client.aclose

    return make


@pytest.fixture(params=["aiohttp", "asgi"])
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    closers: list[Callable[[], Awaitable[None]]] = []
    factory = aiohttp_poster if request.param == "aiohttp" else asgi_poster

    async def make(on_event: Any, **kwargs: Any) -> Post:
        post, close = await factory(**kwargs)(on_event)
        closers.append(close)
        return post  # type: ignore[no-any-return]

    yield make
    for close in closers:
        await close()


def signed(body: bytes = BODY) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(body, SECRET), "Content-Type": "application/json"}


async def test_verified_event_is_handled_once_and_answered_200(receiver: Any) -> None:
    recorder = Recorder()
    post = await receiver(recorder)
    assert await post(BODY, signed()) == (200, {"status": "ok"})
    assert [e.reference for e in recorder.events] == ["your_reference"]
    # a redelivery: 200 again, the handler is not called twice
    assert await post(BODY, signed()) == (200, {"status": "duplicate"})
    assert len(recorder.events) == 1


async def test_header_name_is_case_insensitive(receiver: Any) -> None:
    recorder = Recorder()
    post = await receiver(recorder)
    status, _ = await post(BODY, {"x-instaxwh-key": KEY.upper()})
    assert status == 200


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (BODY, {}, 401),
        (BODY, {SIGNATURE_HEADER: ""}, 401),
        (BODY, {SIGNATURE_HEADER: "0" * 32}, 401),
        (BODY, {SIGNATURE_HEADER: "not-hex"}, 401),
        (b"{not json", {SIGNATURE_HEADER: "0" * 32}, 400),
        (b"[1]", {SIGNATURE_HEADER: "0" * 32}, 400),
    ],
)
async def test_refusals(receiver: Any, body: bytes, headers: dict[str, str], status: int) -> None:
    recorder = Recorder()
    post = await receiver(recorder)
    got_status, got_body = await post(body, headers)
    assert got_status == status
    assert SECRET not in json.dumps(got_body)
    assert "Traceback" not in json.dumps(got_body)
    assert recorder.events == []


async def test_too_large_is_413_declared_or_streamed(receiver: Any) -> None:
    post = await receiver(Recorder(), max_body=64)
    big = b'{"pad": "' + b"x" * 200 + b'"}'
    status, _ = await post(big, signed(big))
    assert status == 413


async def test_handler_failure_is_500_and_the_redelivery_is_processed(
    receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail_times=1)
    post = await receiver(recorder)
    status, body = await post(BODY, signed())
    assert status == 500
    assert "hunter2" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert SECRET not in caplog.text
    status, _ = await post(BODY, signed())
    assert status == 200
    assert len(recorder.events) == 1


async def test_concurrent_redelivery_while_processing_is_409(receiver: Any) -> None:
    recorder = Recorder(delay=0.2)
    post = await receiver(recorder)
    first, second = await asyncio.gather(post(BODY, signed()), post(BODY, signed()))
    assert sorted([first[0], second[0]]) == [200, 409]
    assert len(recorder.events) == 1


async def test_dedupe_off_and_sync_handlers(receiver: Any) -> None:
    seen: list[str | None] = []
    post = await receiver(lambda event: seen.append(event.reference), dedupe=False)
    assert (await post(BODY, signed()))[0] == 200
    assert (await post(BODY, signed()))[0] == 200
    assert seen == ["your_reference", "your_reference"]


class BrokenStore:
    def __init__(self, fail: str) -> None:
        self.fail = fail

    async def claim(self, key: str) -> ClaimResult:
        if self.fail == "claim":
            raise ConnectionError("redis down")
        return ClaimResult.NEW

    async def mark_done(self, key: str) -> None:
        if self.fail == "mark_done":
            raise ConnectionError("redis down")

    async def release(self, key: str) -> None:
        raise ConnectionError("redis down")


async def test_store_failures(receiver: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    post = await receiver(Recorder(), dedupe=BrokenStore("claim"))
    assert (await post(BODY, signed()))[0] == 503
    recorder = Recorder()
    post = await receiver(recorder, dedupe=BrokenStore("mark_done"))
    assert (await post(BODY, signed()))[0] == 200
    assert len(recorder.events) == 1
    post = await receiver(Recorder(fail_times=1), dedupe=BrokenStore("none"))
    assert (await post(BODY, signed()))[0] == 500
    assert "could not release" in caplog.text


async def test_asgi_app_rejects_other_methods_and_ignores_lifespan() -> None:
    app = webhook_app(SECRET, Recorder())
    assert "WebhookApp" in repr(app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    await app({"type": "lifespan"}, _never, _never)


async def _never(*args: Any) -> Any:  # pragma: no cover - must not be called
    raise AssertionError("called")


async def test_asgi_body_in_chunks_and_disconnect() -> None:
    recorder = Recorder()
    app = webhook_app(SECRET, recorder, max_body=len(BODY))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    half = len(BODY) // 2
    messages = [
        {"type": "http.request", "body": BODY[:half], "more_body": True},
        {"type": "http.request", "body": BODY[half:], "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Any:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "headers": [(b"x-instaxwh-key", KEY.encode())]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert len(recorder.events) == 1


def test_receiver_configuration_errors() -> None:
    with pytest.raises(ValidationError, match="secret"):
        WebhookReceiver("", Recorder())
    with pytest.raises(ValidationError, match="on_event"):
        WebhookReceiver(SECRET, "nope")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="max_body"):
        WebhookReceiver(SECRET, Recorder(), max_body=0)
    with pytest.raises(ValidationError, match="dedupe"):
        WebhookReceiver(SECRET, Recorder(), dedupe="redis")  # type: ignore[arg-type]
    receiver = WebhookReceiver(SECRET, Recorder(), dedupe=True)
    assert SECRET not in repr(receiver)
    assert "InMemoryDedupeStore" in repr(receiver)


async def test_cancellation_releases_the_claim() -> None:
    store = InMemoryDedupeStore()
    started = asyncio.Event()

    async def hang(event: WebhookEvent) -> None:
        started.set()
        await asyncio.sleep(3600)

    receiver = WebhookReceiver(SECRET, hang, dedupe=store)
    task = asyncio.create_task(receiver.handle(BODY, KEY))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(store) == 0


async def test_handle_answers_with_outcomes_of_the_callers_own() -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder)
    handled = await receiver.handle(BODY, KEY)
    assert handled == Outcome(200, {"status": "ok"})
    handled.body["status"] = "changed by the caller"
    duplicate = await receiver.handle(BODY, KEY)
    assert duplicate == Outcome(200, {"status": "duplicate"})
    duplicate.body.clear()
    assert await receiver.handle(BODY, KEY) == Outcome(200, {"status": "duplicate"})
    other = WebhookReceiver(SECRET, recorder)
    assert await other.handle(BODY, KEY) == Outcome(200, {"status": "ok"})
    assert len(recorder.events) == 2


# -- a store's claim() answer is compared by value -----------------------------------------


class AnsweringStore:
    """A custom store whose claim() answers with whatever it was given."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[str] = []

    async def claim(self, key: str) -> Any:
        self.calls.append("claim")
        return self.answer

    async def mark_done(self, key: str) -> None:
        self.calls.append("mark_done")

    async def release(self, key: str) -> None:
        self.calls.append("release")


class StrSubclass(str):
    pass


class UnshowableAnswer:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class EqualsEverything:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparisons")

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("answer", "status", "handled"),
    [
        ("done", 200, False),
        (StrSubclass("done"), 200, False),
        (ClaimResult.DONE, 200, False),
        ("processing", 409, False),
        ("new", 200, True),
        (ClaimResult.NEW, 200, True),
        (None, 503, False),
        (42, 503, False),
        ("DONE", 503, False),
        (b"done", 503, False),
        (object(), 503, False),
        (EqualsEverything(), 503, False),
        (UnshowableAnswer(), 503, False),
    ],
    ids=lambda answer: (
        repr(answer) if isinstance(answer, (str, bytes, int)) else type(answer).__name__
    ),
)
async def test_a_claim_answer_counts_by_value_and_anything_else_is_a_store_failure(
    receiver: Any, caplog: pytest.LogCaptureFixture, answer: Any, status: int, handled: bool
) -> None:
    caplog.set_level(logging.ERROR, logger="instax_async.webhooks")
    recorder = Recorder()
    store = AnsweringStore(answer)
    post = await receiver(recorder, dedupe=store)
    for _ in range(3):  # three deliveries of one event
        got, _body = await post(BODY, signed())
        assert got == status
    assert len(recorder.events) == (3 if handled else 0)
    if status == 503:
        assert store.calls == ["claim"] * 3  # never marked done nor released
        assert "answered claim() with" in caplog.text and "'done'" in caplog.text
    else:
        assert "answered claim() with" not in caplog.text


# -- max_age: an old or future event is refused, on_event never runs ------------------------


def _body_created(at: datetime) -> bytes:
    payload = json.loads(BODY)
    payload["createdAt"] = at.isoformat()
    return json.dumps(payload).encode()


@pytest.mark.parametrize("max_age", [300, timedelta(minutes=5)])
async def test_max_age_refuses_old_and_future_events_with_400(receiver: Any, max_age: Any) -> None:
    recorder = Recorder()
    post = await receiver(recorder, max_age=max_age)
    now = datetime.now(timezone.utc)
    old = _body_created(now - timedelta(minutes=6))
    future = _body_created(now + timedelta(minutes=10))
    undated = json.dumps({k: v for k, v in json.loads(BODY).items() if k != "createdAt"}).encode()
    for body, reason in ((old, "max_age"), (future, "future"), (undated, "createdAt")):
        status, answer = await post(body, signed(body))
        assert status == 400 and reason in answer["error"]
    assert recorder.events == []
    fresh = _body_created(now - timedelta(seconds=5))
    assert await post(fresh, signed(fresh)) == (200, {"status": "ok"})
    assert len(recorder.events) == 1
    # the captured documented body (2024) is refused however often it is replayed
    assert (await post(BODY, signed()))[0] == 400


def test_a_bad_max_age_is_refused_when_the_receiver_is_built() -> None:
    for build in (WebhookReceiver, webhook_handler, webhook_app):
        with pytest.raises(ValidationError, match="max_age"):
            build(SECRET, Recorder(), max_age=-5)  # type: ignore[operator]
    receiver = WebhookReceiver(SECRET, Recorder(), max_age=90)
    assert receiver.max_age == timedelta(seconds=90)
    assert WebhookReceiver(SECRET, Recorder()).max_age is None


class TtlStore(AnsweringStore):
    def __init__(self, ttl: Any) -> None:
        super().__init__(ClaimResult.NEW)
        self.ttl = ttl


class BrokenTtlStore(AnsweringStore):
    @property
    def ttl(self) -> float:
        raise RuntimeError("cannot tell")


@pytest.mark.parametrize(
    ("store", "max_age", "warned"),
    [
        (InMemoryDedupeStore(ttl=3600), 3600, True),  # the clock skew is not covered
        (InMemoryDedupeStore(ttl=3900), 3600, False),
        (InMemoryDedupeStore(ttl=3899.5), timedelta(hours=1), True),
        (InMemoryDedupeStore(), None, False),
        (InMemoryDedupeStore(ttl=1), None, False),
        (TtlStore(60), 3600, True),
        (TtlStore(10**9), 3600, False),
        (TtlStore("long"), 3600, False),
        (TtlStore(True), 3600, False),
        (AnsweringStore(ClaimResult.NEW), 3600, False),  # no ttl: nothing to compare
        (BrokenTtlStore(ClaimResult.NEW), 3600, False),
        (False, 3600, False),
    ],
)
def test_a_store_that_forgets_before_max_age_runs_out_is_warned_about(
    caplog: pytest.LogCaptureFixture, store: Any, max_age: Any, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="instax_async.webhooks")
    WebhookReceiver(SECRET, Recorder(), dedupe=store, max_age=max_age)
    records = [r for r in caplog.records if "dedupe store remembers" in r.getMessage()]
    assert len(records) == (1 if warned else 0)
    if warned:
        assert records[0].levelno == logging.WARNING
        assert records[0].name == "instax_async.webhooks"
        assert "max_age" in records[0].getMessage()


def test_the_redis_store_tells_its_ttl_to_the_receiver(caplog: pytest.LogCaptureFixture) -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from instax_async.integrations.redis import RedisDedupeStore

    store = RedisDedupeStore(redis_asyncio.Redis(), ttl=600)  # no connection is made
    assert store.ttl == 600
    caplog.set_level(logging.WARNING, logger="instax_async.webhooks")
    webhook_app(SECRET, Recorder(), dedupe=store, max_age=3600)
    assert "remembers handled events for 600 s" in caplog.text


async def test_a_failing_handler_without_dedupe_is_500(receiver: Any) -> None:
    post = await receiver(Recorder(fail_times=1), dedupe=False)
    assert (await post(BODY, signed()))[0] == 500
    assert (await post(BODY, signed()))[0] == 200


# -- two signature headers: refused, whichever of them is right -----------------------------


@pytest.mark.parametrize("order", ["right first", "right last"])
async def test_two_signature_headers_are_400_and_call_nothing(receiver: Any, order: str) -> None:
    recorder = Recorder()
    post = await receiver(recorder)
    keys = [KEY, "0" * 32] if order == "right first" else ["0" * 32, KEY]
    headers = [(SIGNATURE_HEADER, key) for key in keys]
    status, answer = await post(BODY, headers)
    assert (status, answer) == (400, {"error": f"more than one {SIGNATURE_HEADER} header"})
    # the same value twice is no better
    assert (await post(BODY, [(SIGNATURE_HEADER, KEY), (SIGNATURE_HEADER, KEY)]))[0] == 400
    assert recorder.events == []


# -- limits against floods, through a real aiohttp server and the ASGI app ------------------


def test_the_flood_limits_default_to_64_kib_10_s_and_16_mib() -> None:
    for receiver in (
        WebhookReceiver(SECRET, Recorder()),
        webhook_handler(SECRET, Recorder()).receiver,  # type: ignore[attr-defined]
        webhook_app(SECRET, Recorder()).receiver,
    ):
        assert receiver.max_body == RECEIVER_MAX_BODY == 64 * 1024
        assert receiver.body_timeout == RECEIVER_BODY_TIMEOUT == 10
        assert receiver.max_pending_bytes == RECEIVER_MAX_PENDING_BYTES == 16 * 1024 * 1024
        assert receiver.pending_bytes == 0


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"body_timeout": 0}, "body_timeout"),
        ({"body_timeout": -1}, "body_timeout"),
        ({"body_timeout": float("inf")}, "body_timeout"),
        ({"body_timeout": float("nan")}, "body_timeout"),
        ({"body_timeout": True}, "body_timeout"),
        ({"body_timeout": "10"}, "body_timeout"),
        ({"max_pending_bytes": 1000, "max_body": 1001}, "max_pending_bytes"),
        ({"max_pending_bytes": 2**20 + 0.5}, "max_pending_bytes"),
        ({"max_pending_bytes": False}, "max_pending_bytes"),
    ],
)
def test_bad_flood_limits_are_refused_when_the_receiver_is_built(
    keywords: dict[str, Any], field: str
) -> None:
    for build in (WebhookReceiver, webhook_handler, webhook_app):
        with pytest.raises(ValidationError, match=field) as info:
            build(SECRET, Recorder(), **keywords)  # type: ignore[operator]
        assert info.value.field == field


async def _raw(port: int, request: bytes, *, then: bytes = b"") -> tuple[bytes, bytes, bool]:
    """Send ``request`` on a new connection (``then`` after the answer): the answer's head and
    body, and whether the server closed the connection after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(
        next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")).split(
            b":"
        )[1]
    )
    body = await reader.readexactly(length)
    try:
        writer.write(then)
        closed = await asyncio.wait_for(reader.read(1), 2) == b""
    except ConnectionError:
        closed = True
    except asyncio.TimeoutError:
        closed = False
    writer.close()
    return head, body, closed


def _request(body: bytes, key: str | None, *, length: int | None = None) -> bytes:
    head = b"POST /hook HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % (
        len(body) if length is None else length
    )
    if key is not None:
        head += f"{SIGNATURE_HEADER}: {key}\r\n".encode()
    return head + b"\r\n" + body


@pytest.fixture
async def aiohttp_server() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    """Start ``webhook_handler`` with the given keywords on a real server: its port."""
    servers: list[TestServer] = []

    async def start(on_event: Any, **kwargs: Any) -> int:
        app = web.Application()
        app.router.add_post("/hook", webhook_handler(SECRET, on_event, **kwargs))
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        assert server.port is not None
        return server.port

    yield start
    for server in servers:
        await server.close()


async def test_aiohttp_refuses_without_reading_and_closes_only_then(
    aiohttp_server: Any,
) -> None:
    recorder = Recorder()
    port = await aiohttp_server(recorder, max_body=1000)
    # no signature, body still to come: 401 at once (as verify words it), connection closed
    head, body, closed = await _raw(port, _request(b"", None, length=500))
    assert head.startswith(b"HTTP/1.1 401 ") and b"Connection: close" in head
    assert json.loads(body) == {"error": f"the {SIGNATURE_HEADER} header is missing"}
    assert closed
    head, body, closed = await _raw(port, _request(b"", "not-hex", length=500))
    assert head.startswith(b"HTTP/1.1 401 ") and b"32 hex digits" in body and closed
    # declared over max_body: 413 before any of it is read, connection closed
    head, _, closed = await _raw(port, _request(b"x" * 10, KEY, length=5000))
    assert head.startswith(b"HTTP/1.1 413 ") and closed
    # a body read to its end keeps the connection, whatever the answer
    head, _, closed = await _raw(port, _request(BODY, "0" * 32), then=_request(BODY, KEY))
    assert head.startswith(b"HTTP/1.1 401 ") and not closed
    head, _, closed = await _raw(port, _request(BODY, KEY), then=_request(BODY, KEY))
    assert head.startswith(b"HTTP/1.1 200 ") and not closed
    assert len(recorder.events) == 1


async def test_aiohttp_answers_503_with_retry_after_when_max_pending_bytes_are_being_read(
    aiohttp_server: Any,
) -> None:
    recorder = Recorder()
    port = await aiohttp_server(recorder, max_body=len(BODY), max_pending_bytes=2 * len(BODY))
    # two deliveries send half their body and stall: their declared lengths fill the budget
    stalled = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = _request(BODY, KEY)
        writer.write(request[: len(request) - len(BODY) // 2])
        stalled.append((reader, writer, request[len(request) - len(BODY) // 2 :]))
    await asyncio.sleep(0.2)
    head, body, _ = await _raw(port, _request(BODY, KEY))
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in head
    assert b"retry later" in body
    # the stalled ones finish: answered, and their bytes no longer count
    for reader, writer, rest in stalled:
        writer.write(rest)
        assert (await reader.readline()).startswith(b"HTTP/1.1 ")
        writer.close()
    assert (await _raw(port, _request(BODY, KEY)))[0].startswith(b"HTTP/1.1 200 ")


async def test_aiohttp_chunked_body_over_max_body_is_413_and_closed(aiohttp_server: Any) -> None:
    port = await aiohttp_server(Recorder(), max_body=100)
    request = (
        b"POST /hook HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        + f"{SIGNATURE_HEADER}: {KEY}\r\n\r\n".encode()
        + b"c8\r\n"
        + b"x" * 200
        + b"\r\n"
    )
    head, _, closed = await _raw(port, request)
    assert head.startswith(b"HTTP/1.1 413 ") and closed


class AsgiCall:
    """One call of the ASGI app with a scripted ``receive``: what it sent."""

    def __init__(self, messages: list[dict[str, Any]], stall: bool = False) -> None:
        self.messages = messages
        self.stall = stall
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.messages:
            if self.stall:
                await asyncio.sleep(3600)
            return {"type": "http.disconnect"}  # pragma: no cover - not reached
        return self.messages.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def _scope(body_length: int | None, keys: list[str]) -> dict[str, Any]:
    headers = [(SIGNATURE_HEADER.encode(), key.encode()) for key in keys]
    if body_length is not None:
        headers.append((b"content-length", str(body_length).encode()))
    return {"type": "http", "method": "POST", "headers": headers}


async def test_asgi_asks_to_close_the_connection_only_when_the_body_was_not_read() -> None:
    recorder = Recorder()
    app = webhook_app(SECRET, recorder, max_body=1000, max_pending_bytes=2000)
    whole = [{"type": "http.request", "body": BODY, "more_body": False}]
    cases = [
        (_scope(len(BODY), [KEY]), whole, 200, False),
        (_scope(len(BODY), ["0" * 32]), whole, 401, False),
        (_scope(500, []), [], 401, True),  # refused before the body: never read
        (_scope(5000, [KEY]), [], 413, True),
        (_scope(None, [KEY]), [{"type": "http.request", "body": b"x" * 1001}], 413, True),
        (_scope(len(BODY), [KEY, KEY]), [], 400, True),
    ]
    for scope, messages, status, close in cases:
        call = AsgiCall(list(messages))
        await app(scope, call.receive, call.send)
        assert call.status == status, (scope, call.sent)
        assert (call.headers.get(b"connection") == b"close") is close, (scope, call.sent)
    assert len(recorder.events) == 1


async def test_asgi_answers_503_with_retry_after_and_408_when_the_body_is_late() -> None:
    app = webhook_app(SECRET, Recorder(), max_body=1000, max_pending_bytes=1500, body_timeout=0.2)
    first = AsgiCall([], stall=True)  # declares 1000 bytes, sends none of them
    pending = asyncio.ensure_future(app(_scope(1000, [KEY]), first.receive, first.send))
    await asyncio.sleep(0.05)
    assert app.receiver.pending_bytes == 1000
    second = AsgiCall([])
    await app(_scope(600, [KEY]), second.receive, second.send)
    assert second.status == 503 and second.headers[b"retry-after"] == b"5"
    assert second.headers[b"connection"] == b"close"
    await pending
    assert first.status == 408 and first.headers[b"connection"] == b"close"
    assert b"0.2 s" in first.sent[1]["body"]
    assert app.receiver.pending_bytes == 0


async def test_pending_bytes_are_released_whatever_ends_the_delivery() -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder, max_body=100_000, body_timeout=0.2)

    def reading(body: bytes | None = None, error: BaseException | None = None) -> Any:
        async def read(limit: int) -> bytes | None:
            assert receiver.pending_bytes > 0  # counted while being read
            if error is not None:
                raise error
            if body is None:
                await asyncio.sleep(3600)
            return body

        return read

    large = b'{"pad": "' + b"x" * 50_000 + b'"}'
    answers = [
        await receiver.receive([KEY], len(BODY), reading(BODY)),
        await receiver.receive([KEY], None, reading(BODY)),
        await receiver.receive([KEY], len(large), reading(large)),  # verified off the loop
        await receiver.receive(["0" * 32], None, reading(None)),  # too slow
        await receiver.receive(["0" * 32], 10, reading(b"{}" * 5)),
    ]
    assert [answer.status for answer in answers] == [200, 200, 401, 408, 400]
    with pytest.raises(ConnectionResetError):
        await receiver.receive([KEY], 10, reading(error=ConnectionResetError()))
    assert receiver.pending_bytes == 0
    assert len(recorder.events) == 1


async def test_a_body_cancelled_while_verified_off_the_loop_counts_until_the_worker_is_done() -> (
    None
):
    receiver = WebhookReceiver(SECRET, Recorder(), max_body=400_000)
    costly = b'{"a":[' + b",".join([b"0.10"] * 60_000) + b"]}"

    async def read(limit: int) -> bytes:
        return costly

    tasks = [
        asyncio.ensure_future(receiver.receive(["0" * 32], len(costly), read)) for _ in range(3)
    ]
    await asyncio.sleep(0.01)  # the three are with the worker: one running, two queued
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert receiver.pending_bytes > 0  # the running one still holds its body
    for _ in range(500):
        if receiver.pending_bytes == 0:
            break
        await asyncio.sleep(0.01)
    assert receiver.pending_bytes == 0


async def test_handle_verifies_a_large_body_off_the_loop_and_answers_outcomes_of_its_own() -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder, max_body=200_000)
    payload = json.loads(BODY)
    payload["pad"] = "x" * 100_000
    large = json.dumps(payload).encode()
    assert await receiver.handle(large, sign(large, SECRET)) == Outcome(200, {"status": "ok"})
    refused = await receiver.handle(None, KEY)
    assert refused == Outcome(413, {"error": "body over 200000 bytes"})
    refused.body.clear()
    assert (await receiver.handle(None, KEY)).body == {"error": "body over 200000 bytes"}
    assert len(recorder.events) == 1


async def test_aiohttp_clients_that_hang_up_are_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Right after the head (refused before the body: 413, 401), or halfway through the body:
    # nothing is handled, nothing is logged at ERROR (no traceback per client), nothing stays
    # counted against max_pending_bytes.
    caplog.set_level(logging.ERROR)
    recorder = Recorder()
    handler = webhook_handler(SECRET, recorder, max_body=10_000)
    app = web.Application()
    app.router.add_post("/hook", handler)
    # web.run_app's runner: handlers are not cancelled when their client leaves (TestServer's
    # are), so the handler itself sees the connection go.
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    receiver = handler.receiver  # type: ignore[attr-defined]

    async def settled(done: Callable[[], bool]) -> None:
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0.01)

    async def hang_up(request: bytes, reading: bool) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        if reading:
            await settled(lambda: receiver.pending_bytes > 0)  # the body is being read
        writer.transport.abort()
        await settled(lambda: receiver.pending_bytes == 0)

    requests = [
        (_request(b"", KEY, length=50_000), False),
        (_request(b"", None, length=500), False),
        (_request(BODY[:100], KEY, length=len(BODY)), True),
    ]
    for request, reading in requests * 5:
        await hang_up(request, reading)
    assert receiver.pending_bytes == 0
    await asyncio.sleep(0.1)
    await runner.cleanup()
    assert recorder.events == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
