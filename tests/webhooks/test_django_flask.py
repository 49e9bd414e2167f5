"""The Django and Flask webhook receivers, through their frameworks' own test clients.

Three views: Django's sync ``webhook_view`` (WSGI), Django's ``async_webhook_view`` (ASGI, through
``AsyncClient``) and Flask's ``webhook_view``. A sync view's deliveries are posted from worker
threads, as a threaded WSGI server would call it. Every answer of the aiohttp and ASGI
receivers is checked on each, with the in-memory and the Redis stores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import django
import pytest
import redis
import redis.asyncio
from django.test import AsyncClient
from django.test import Client as DjangoClient
from django.test.utils import override_settings
from django.urls import path
from django.utils.asyncio import async_unsafe

from instax_async import (
    ClaimResult,
    InMemoryDedupeStore,
    ValidationError,
    WebhookEvent,
)
from instax_async.integrations import django as django_receiver
from instax_async.integrations import flask as flask_receiver
from instax_async.integrations._receiver import (
    Outcome,
    SyncWebhookReceiver,
    content_length,
    signatures_in,
)
from instax_async.integrations.redis import RedisDedupeStore
from instax_async.sandbox.events import webhook_payload
from instax_async.serialization import dumps
from instax_async.webhooks import SIGNATURE_HEADER, sign
from tests.redis_fixtures import redis_url
from tests.webhooks import webhook_apps  # noqa: F401 - the Django settings

__all__ = ["redis_url"]

django.setup()  # with tests.webhooks.webhook_apps as settings, unless configured already

SECRET = "framework-receiver-secret"
VIEWS = ["django", "django-async", "flask"]

Post = Callable[..., Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]


def body_of(**fields: Any) -> bytes:
    fields.setdefault("reference", "order-1")
    return dumps(webhook_payload(**fields))


def signed(body: bytes, key: str | None = None) -> dict[str, str]:
    return {SIGNATURE_HEADER: key if key is not None else sign(body, SECRET)}


class Handler:
    """An ``on_event``: records where and what it was called with; may wait or fail."""

    def __init__(self, *, fail_times: int = 0, hold: threading.Event | None = None) -> None:
        self.events: list[WebhookEvent] = []
        self.threads: list[str] = []
        self.fail_times = fail_times
        self.hold = hold
        self.entered = threading.Event()

    def __call__(self, event: WebhookEvent) -> None:
        async_unsafe(lambda: None)()  # what Django's ORM checks: no event loop in this thread
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(10)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("database down: password=hunter2")
        self.events.append(event)


class AsyncHandler(Handler):
    async def __call__(self, event: WebhookEvent) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait, 10)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("database down: password=hunter2")
        self.events.append(event)


def _django_answer(response: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return response.status_code, json.loads(response.content), dict(response.headers)


def _urlconf(view: Any) -> types.ModuleType:
    urls = types.ModuleType("webhook_urls")
    urls.urlpatterns = [path("hook", view)]  # type: ignore[attr-defined]
    return urls


def make_poster(kind: str, on_event: Any, **keywords: Any) -> Post:
    """POST to a new view of ``kind``: ``await post(body, headers, method="POST")``."""
    if kind == "flask":
        from flask import Flask

        app = Flask(__name__)
        view = flask_receiver.webhook_view(SECRET, on_event, **keywords)
        app.add_url_rule("/hook", view_func=view, methods=["POST", "GET"])

        def flask_call(body: bytes, headers: dict[str, str], method: str) -> Any:
            response = app.test_client().open("/hook", method=method, data=body, headers=headers)
            return response.status_code, response.get_json(), dict(response.headers)

        async def flask_post(body: bytes, headers: dict[str, str], method: str = "POST") -> Any:
            return await asyncio.to_thread(flask_call, body, headers, method)

        return flask_post
    if kind == "django":
        view = django_receiver.webhook_view(SECRET, on_event, **keywords)
        urls = _urlconf(view)

        def django_call(body: bytes, headers: dict[str, str], method: str) -> Any:
            with override_settings(ROOT_URLCONF=urls):
                client = DjangoClient(enforce_csrf_checks=True)
                call = client.post if method == "POST" else client.get
                response = call(
                    "/hook", data=body, content_type="application/json", headers=headers
                )
            return _django_answer(response)

        async def django_post(body: bytes, headers: dict[str, str], method: str = "POST") -> Any:
            return await asyncio.to_thread(django_call, body, headers, method)

        return django_post
    view = django_receiver.async_webhook_view(SECRET, on_event, **keywords)
    urls = _urlconf(view)

    async def async_post(body: bytes, headers: dict[str, str], method: str = "POST") -> Any:
        with override_settings(ROOT_URLCONF=urls):
            client = AsyncClient(enforce_csrf_checks=True)
            call = client.post if method == "POST" else client.get
            response = await call(
                "/hook", data=body, content_type="application/json", headers=headers
            )
        return _django_answer(response)

    return async_post


@pytest.fixture(params=VIEWS)
def view_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("handler_kind", ["sync", "async"])
async def test_a_delivery_is_handled_once_and_redelivery_is_a_duplicate(
    view_kind: str, handler_kind: str
) -> None:
    handler = Handler() if handler_kind == "sync" else AsyncHandler()
    post = make_poster(view_kind, handler)
    body = body_of()
    assert (await post(body, signed(body)))[:2] == (200, {"status": "ok"})
    assert (await post(body, signed(body)))[:2] == (200, {"status": "duplicate"})
    assert [event.reference for event in handler.events] == ["order-1"]
    if handler_kind == "sync" and view_kind != "django-async":
        # called in the request's thread (a worker thread here), never on an event loop's
        assert handler.threads[0].startswith("asyncio")  # the thread that made the request
    if handler_kind == "async" and view_kind != "django-async":
        assert handler.threads == ["instax_async webhook handlers"]


async def test_every_refusal_is_answered_without_calling_on_event(view_kind: str) -> None:
    handler = Handler()
    post = make_poster(view_kind, handler, max_body=4096, max_age=300)
    body = body_of()
    old = body_of(created_at=datetime.now(timezone.utc) - timedelta(hours=1))
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (body, {}, 401, "missing"),
        (body, signed(body, "0" * 32), 401, "does not match"),
        (body, signed(body, "not-hex"), 401, "32 hex digits"),
        (b"{not json", signed(b"", "0" * 32), 400, "JSON"),
        (old, signed(old), 400, "max_age"),
        (body, signed(body, f"{sign(body, SECRET)},{'0' * 32}"), 400, "more than one"),
        (b'{"pad": "' + b"x" * 5000 + b'"}', signed(b"", "0" * 32), 413, "over 4096 bytes"),
    ]
    for payload, headers, status, words in cases:
        got, answer, _ = await post(payload, headers)
        assert (got, words in answer["error"]) == (status, True), (status, answer)
        assert SECRET not in json.dumps(answer)
    assert handler.events == []
    got, answer, headers = await post(b"", {}, method="GET")
    assert (got, answer, headers["Allow"]) == (405, {"error": "use POST"}, "POST")


async def test_a_handler_crash_is_500_and_the_redelivery_is_handled_once(
    view_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    handler = Handler(fail_times=1)
    post = make_poster(view_kind, handler)
    body = body_of()
    status, answer, _ = await post(body, signed(body))
    assert status == 500 and "hunter2" not in json.dumps(answer)
    assert "webhook handler failed" in caplog.text
    assert (await post(body, signed(body)))[:2] == (200, {"status": "ok"})
    assert (await post(body, signed(body)))[:2] == (200, {"status": "duplicate"})
    assert len(handler.events) == 1


async def test_a_redelivery_while_the_first_is_handled_is_409(view_kind: str) -> None:
    release = threading.Event()
    handler = Handler(hold=release) if view_kind != "django-async" else AsyncHandler(hold=release)
    post = make_poster(view_kind, handler)
    body = body_of()
    first = asyncio.ensure_future(post(body, signed(body)))
    await asyncio.to_thread(handler.entered.wait, 10)
    status, answer, _ = await post(body, signed(body))
    assert (status, answer) == (409, {"error": "this event is being handled; retry later"})
    release.set()
    assert (await first)[0] == 200
    assert len(handler.events) == 1


async def test_503_when_the_bodies_being_received_are_at_max_pending_bytes(
    view_kind: str,
) -> None:
    release = threading.Event()
    handler = Handler(hold=release) if view_kind != "django-async" else AsyncHandler(hold=release)
    post = make_poster(view_kind, handler, max_body=2000, max_pending_bytes=2000)
    first_body, second_body = body_of(reference="a"), body_of(reference="b")
    first = asyncio.ensure_future(post(first_body, signed(first_body)))
    await asyncio.to_thread(handler.entered.wait, 10)  # its body counts until it is answered
    status, answer, headers = await post(second_body, signed(second_body))
    assert status == 503 and headers["Retry-After"] == "5" and "retry later" in answer["error"]
    release.set()
    assert (await first)[0] == 200
    assert (await post(second_body, signed(second_body)))[0] == 200


class BrokenStore:
    """A store that fails where it is told to, in both kinds."""

    def __init__(self, fail: str) -> None:
        self.fail = fail

    def claim_sync(self, key: str) -> ClaimResult:
        if self.fail == "claim":
            raise ConnectionError("redis down")
        return ClaimResult.NEW

    def mark_done_sync(self, key: str) -> None:
        if self.fail == "mark_done":
            raise ConnectionError("redis down")

    def release_sync(self, key: str) -> None:
        raise ConnectionError("redis down")

    async def claim(self, key: str) -> ClaimResult:
        return self.claim_sync(key)

    async def mark_done(self, key: str) -> None:
        self.mark_done_sync(key)

    async def release(self, key: str) -> None:
        self.release_sync(key)


async def test_store_failures_are_503_or_logged(
    view_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    body = body_of()
    post = make_poster(view_kind, Handler(), dedupe=BrokenStore("claim"))
    assert (await post(body, signed(body)))[0] == 503
    handler = Handler()
    post = make_poster(view_kind, handler, dedupe=BrokenStore("mark_done"))
    assert (await post(body, signed(body)))[0] == 200
    assert len(handler.events) == 1
    post = make_poster(view_kind, Handler(fail_times=1), dedupe=BrokenStore("none"))
    assert (await post(body, signed(body)))[0] == 500
    assert "could not release" in caplog.text
    post = make_poster(view_kind, Handler(), dedupe=False)
    assert (await post(body, signed(body)))[0] == 200
    assert (await post(body, signed(body)))[0] == 200  # no store: handled again


@pytest.fixture
async def redis_store(redis_url: str, view_kind: str) -> AsyncIterator[RedisDedupeStore]:
    """A Redis store of the view's kind on an empty database."""
    if view_kind == "django-async":
        async_client = redis.asyncio.Redis.from_url(redis_url)
        await async_client.flushdb()
        yield RedisDedupeStore(async_client, prefix="views:")
        await async_client.flushdb()
        await async_client.aclose()
        return
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield RedisDedupeStore(client, prefix="views:")
    client.flushdb()
    client.close()


async def test_two_instances_sharing_a_redis_store_handle_an_event_once(
    view_kind: str, redis_store: RedisDedupeStore
) -> None:
    first, second = Handler(fail_times=1), Handler()
    one = make_poster(view_kind, first, dedupe=redis_store)
    other = make_poster(view_kind, second, dedupe=redis_store)
    body = body_of()
    assert (await one(body, signed(body)))[0] == 500  # crashed: the claim is released
    assert (await other(body, signed(body)))[:2] == (200, {"status": "ok"})
    assert (await one(body, signed(body)))[:2] == (200, {"status": "duplicate"})
    assert (len(first.events), len(second.events)) == (0, 1)


def test_a_store_of_the_wrong_kind_is_refused_when_the_view_is_built(redis_url: str) -> None:
    async_store = RedisDedupeStore(redis.asyncio.Redis.from_url(redis_url))
    sync_store = RedisDedupeStore(redis.Redis.from_url(redis_url))
    for build in (django_receiver.webhook_view, flask_receiver.webhook_view):
        with pytest.raises(ValidationError, match="other kind of receiver") as info:
            build(SECRET, Handler(), dedupe=async_store)  # type: ignore[arg-type]
        assert info.value.field == "dedupe"
        with pytest.raises(ValidationError, match="SyncDedupeStore"):
            build(SECRET, Handler(), dedupe="redis")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="other kind of receiver"):
        django_receiver.async_webhook_view(SECRET, Handler(), dedupe=sync_store)  # type: ignore[arg-type]
    for build in (
        django_receiver.webhook_view,
        django_receiver.async_webhook_view,
        flask_receiver.webhook_view,
    ):
        with pytest.raises(ValidationError, match="max_age"):
            build(SECRET, Handler(), max_age=-1)  # type: ignore[operator]
        view = build(SECRET, Handler(), dedupe=InMemoryDedupeStore())  # type: ignore[operator]
        receiver = view.receiver  # type: ignore[attr-defined]
        assert receiver.max_body == 64 * 1024 and receiver.body_timeout == 10
        assert SECRET not in repr(receiver) and "InMemoryDedupeStore" in repr(receiver)


# -- the sync core, where a test client cannot reach: a body that arrives slowly ------------


def _chunks(*parts: bytes, pause: float = 0.0) -> Callable[[int], bytes]:
    """A blocking stream that gives ``parts`` one at a time (a part cut at the size asked
    for), after ``pause`` seconds each."""
    pending = list(parts)

    def read(size: int) -> bytes:
        if not pending:
            return b""
        if pause:
            threading.Event().wait(pause)
        part = pending.pop(0)
        if len(part) > size:
            pending.insert(0, part[size:])
        return part[:size]

    return read


def test_a_body_that_ends_after_body_timeout_is_408_and_not_handled() -> None:
    handler = Handler()
    receiver = SyncWebhookReceiver(SECRET, handler, body_timeout=0.05)
    body = body_of()
    half = len(body) // 2
    key = sign(body, SECRET)
    late = receiver.receive([key], len(body), _chunks(body[:half], body[half:], pause=0.1))
    assert late == Outcome(408, {"error": "the body took over 0.05 s"})
    assert handler.events == [] and receiver.pending_bytes == 0
    # in time, in chunks, with or without a declared length
    assert receiver.receive([key], len(body), _chunks(body[:half], body[half:])).status == 200
    assert receiver.receive([key], None, _chunks(body)).body == {"status": "duplicate"}
    over = receiver.receive([key], None, _chunks(*[b"x" * 16384] * 5))
    assert over.status == 413
    assert len(handler.events) == 1


def test_the_sync_core_handles_a_body_read_already() -> None:
    handler = Handler()
    receiver = SyncWebhookReceiver(SECRET, handler)
    body = body_of()
    handled = receiver.handle(body, sign(body, SECRET))
    assert handled == Outcome(200, {"status": "ok"})
    handled.body.clear()  # the caller's own: the shared answer is untouched
    assert receiver.handle(body, sign(body, SECRET)) == Outcome(200, {"status": "duplicate"})
    assert receiver.handle(None, sign(body, SECRET)).status == 413
    assert "SyncWebhookReceiver" in repr(receiver)


def test_what_wsgi_gives_of_the_headers() -> None:
    assert [content_length(v) for v in (None, "", " 12 ", "1e3", "-1", "\u0663")] == [
        None,
        None,
        12,
        None,
        None,
        None,
    ]
    assert signatures_in(None) == []
    assert signatures_in("") == [""]  # present but empty: verify() says it is missing
    assert signatures_in("a" * 32) == ["a" * 32]
    assert signatures_in("a,b") == ["a", "b"]  # two headers, as a WSGI server joins them


def test_a_client_that_hangs_up_mid_body_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.test import RequestFactory

    class HungUp:
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("the client went away")

    handler = Handler()
    view = django_receiver.webhook_view(SECRET, handler)
    body = body_of()
    request = RequestFactory().post(
        "/hook", data=body, content_type="application/json", headers=signed(body)
    )
    request._stream = HungUp()
    caplog.set_level(logging.ERROR)
    response = view(request)
    assert response.status_code == 400 and handler.events == []
    assert view.receiver.pending_bytes == 0  # type: ignore[attr-defined]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
