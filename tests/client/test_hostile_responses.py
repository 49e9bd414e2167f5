"""Hostile servers on 127.0.0.1 against both transports: huge bodies and broken HTTP.

A response may not cost more than ``max_response_bytes`` of memory, nor more time than the
attempt's timeout; and whatever breaks, no exception in the chain a public call raises, and no
log line, shows the api key.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import re
import socket
import struct
import time
import traceback
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from instax_async import (
    AiohttpTransport,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSession,
    InstaxError,
    PollTimeoutError,
    Request,
    ResponseTooLargeError,
    RetryPolicy,
    SessionRequest,
    Transport,
)
from instax_async.transports.httpx import HttpxTransport
from tests.conftest import StartServer

KEY = "sk_live_7f3a9c1e5b2d8046aa"
CAP = 64 * 1024
PREFIX = b'{"txId": "big", "status": "pending", "pad": "'
SENDING = SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
FAST = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)
TRANSPORTS: dict[str, Callable[..., Transport]] = {
    "aiohttp": AiohttpTransport,
    "httpx": HttpxTransport,
}


@pytest.fixture(params=sorted(TRANSPORTS))
async def make_client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    made: list[tuple[AsyncSession, Transport]] = []

    def make(base_url: str, max_response_bytes: int = CAP, **kwargs: Any) -> AsyncSession:
        transport = TRANSPORTS[request.param](max_response_bytes=max_response_bytes)
        kwargs.setdefault("retry", FAST)
        client = AsyncSession(KEY, base_url=base_url, transport=transport, **kwargs)
        made.append((client, transport))
        return client

    yield make
    for client, transport in made:
        await client.aclose()
        await transport.aclose()


def exact_json(size: int) -> bytes:
    """A blockchain-status JSON body of exactly ``size`` bytes."""
    body = PREFIX + b'"}'
    return PREFIX + b"a" * (size - len(body)) + b'"}'


@functools.cache
def bombs() -> tuple[bytes, bytes]:
    """16 MiB (256 times the cap) as a gzip and as a deflate body, about 16 KiB each."""
    bomb = PREFIX + b"a" * (16 * 1024 * 1024)
    return gzip.compress(bomb, compresslevel=6), zlib.compress(bomb, 6)


def hostile_app(state: dict[str, Any]) -> web.Application:
    """``txId`` (or, for POST, the ``kind`` query) picks the body; requests are counted."""
    gzip_bomb, deflate_bomb = bombs()

    async def handle(request: web.Request) -> web.StreamResponse:
        kind = request.query.get("txId") or request.query.get("kind", "endless-503")
        state["requests"].append(kind)
        assert request.transport is not None
        state["ports"].append(request.transport.get_extra_info("peername")[1])
        if kind == "ok":
            return web.json_response({"txId": "ok", "status": "pending"})
        if kind == "echo-accept-encoding":
            accepted = request.headers.get("Accept-Encoding", "")
            return web.json_response({"txId": kind, "status": accepted})
        if kind in ("gzip-ok", "deflate-ok", "gzip-trickle"):
            small = b'{"txId": "z", "status": "completed", "hash": "0xabc"}'
            raw_deflate = zlib.compress(small)[2:-4]  # without the zlib header, as some send
            body = raw_deflate if kind == "deflate-ok" else gzip.compress(small)
            coding = "deflate" if kind == "deflate-ok" else "gzip"
            if kind != "gzip-trickle":
                return web.Response(body=body, headers={"Content-Encoding": coding})
            trickle = web.StreamResponse(headers={"Content-Encoding": coding})
            trickle.enable_chunked_encoding()
            await trickle.prepare(request)
            for start in range(0, len(body), 4):  # the gzip header alone inflates to nothing
                await trickle.write(body[start : start + 4])
                await asyncio.sleep(0.002)
            await trickle.write_eof()
            return trickle
        if kind.startswith("exact-"):
            return web.Response(body=exact_json(int(kind[6:])), content_type="application/json")
        if kind in ("gzip-bomb", "deflate-bomb"):
            body, coding = (gzip_bomb, "gzip") if kind == "gzip-bomb" else (deflate_bomb, "deflate")
            return web.Response(body=body, headers={"Content-Encoding": coding})
        status = 503 if kind.endswith("-503") else 500 if kind.endswith("-500") else 200
        headers = {"Content-Type": "application/json", "X-Kind": kind}
        if kind == "huge-length":
            headers["Content-Length"] = str(10 * 1024**3)
        response = web.StreamResponse(status=status, headers=headers)
        if kind != "huge-length":
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(PREFIX)
            while True:
                if kind == "drip":
                    await response.write(b"a")
                    await asyncio.sleep(0.05)
                else:
                    await response.write(b"a" * 8192)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up
        return response

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", handle)
    app.router.add_post("/api/session", handle)
    return app


@pytest.fixture
async def hostile(start_server: StartServer) -> tuple[str, dict[str, Any]]:
    state: dict[str, Any] = {"requests": [], "ports": []}
    return await start_server(hostile_app(state)), state


# -- item: bounded bodies ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["endless", "gzip-bomb", "deflate-bomb"])
async def test_a_body_past_the_cap_is_refused_with_its_prefix(
    hostile: tuple[str, dict[str, Any]], make_client: Any, kind: str
) -> None:
    base_url, state = hostile
    client = make_client(base_url)
    with pytest.raises(ResponseTooLargeError) as info:
        await client.blockchain_status(kind)
    error = info.value
    assert error.status == 200
    assert error.max_response_bytes == CAP
    assert error.body.startswith(PREFIX) and len(error.body) == 4096
    assert "larger than max_response_bytes (65536)" in str(error)
    assert state["requests"] == [kind]


async def test_a_declared_length_past_the_cap_is_refused_before_reading(
    hostile: tuple[str, dict[str, Any]], make_client: Any
) -> None:
    base_url, _ = hostile
    client = make_client(base_url)
    with pytest.raises(
        ResponseTooLargeError, match=r"Content-Length \(10737418240 bytes\)"
    ) as info:
        await client.blockchain_status("huge-length")
    assert info.value.body == b""
    headers = {name.lower(): value for name, value in info.value.headers.items()}
    assert headers["x-kind"] == "huge-length"


@pytest.mark.parametrize("kind", ["gzip-ok", "deflate-ok", "gzip-trickle"])
async def test_compressed_answers_are_inflated(
    hostile: tuple[str, dict[str, Any]], make_client: Any, kind: str
) -> None:
    base_url, _ = hostile
    client = make_client(base_url)
    status = await client.blockchain_status(kind)
    assert (status.status, status.hash) == ("completed", "0xabc")


async def test_only_the_codings_the_transport_undoes_are_asked_for(
    hostile: tuple[str, dict[str, Any]], make_client: Any
) -> None:
    base_url, _ = hostile
    client = make_client(base_url)
    assert (await client.blockchain_status("echo-accept-encoding")).status == "gzip, deflate"
    url = f"{base_url}/utils/blockchain-status?txId=echo-accept-encoding"
    own = Request("GET", url, {"accept-encoding": "identity"}, b"", 5.0)
    response = await client.requester.shared.transport.send(own)
    assert b'"status": "identity"' in response.content


async def test_a_body_of_exactly_the_cap_is_read_and_one_more_byte_is_not(
    hostile: tuple[str, dict[str, Any]], make_client: Any
) -> None:
    base_url, _ = hostile
    client = make_client(base_url)
    status = await client.blockchain_status(f"exact-{CAP}")
    assert status.status == "pending"
    with pytest.raises(ResponseTooLargeError):
        await client.blockchain_status(f"exact-{CAP + 1}")


async def test_a_refused_connection_is_closed_not_reused(
    hostile: tuple[str, dict[str, Any]], make_client: Any
) -> None:
    base_url, state = hostile
    client = make_client(base_url)
    await client.blockchain_status("ok")
    await client.blockchain_status("ok")
    with pytest.raises(ResponseTooLargeError):
        await client.blockchain_status("endless")
    await client.blockchain_status("ok")
    ports = state["ports"]
    assert ports[0] == ports[1]  # keep-alive works: the check below means something
    assert ports[3] != ports[2]


async def test_too_large_is_never_retried_by_the_client_or_the_poll_engine(
    hostile: tuple[str, dict[str, Any]], make_client: Any
) -> None:
    base_url, state = hostile
    client = make_client(base_url)
    with pytest.raises(ResponseTooLargeError) as info:
        await client.blockchain_status("endless-500")  # GETs retry 5xx
    assert info.value.status == 500
    with pytest.raises(ResponseTooLargeError):
        await client.create_session(SENDING)  # POST with a 503: retried when the body is small
    with pytest.raises(ResponseTooLargeError):
        await client.wait_for_blockchain_hash("endless-503", interval=0.01, timeout=5)
    assert state["requests"] == ["endless-500", "endless-503", "endless-503"]


async def test_a_body_still_arriving_at_the_deadline_times_out(
    hostile: tuple[str, dict[str, Any]], make_client: Any
) -> None:
    base_url, state = hostile
    client = make_client(base_url, timeout=0.5, retry=RetryPolicy(max_retries=0))
    start = time.monotonic()
    with pytest.raises(APITimeoutError, match=r"timed out after 0\.5 s"):
        await client.blockchain_status("drip")
    assert time.monotonic() - start < 0.5 + 5
    assert state["requests"] == ["drip"]


async def test_a_callers_aiohttp_session_still_gets_the_cap(
    hostile: tuple[str, dict[str, Any]],
) -> None:
    base_url, _ = hostile
    async with aiohttp.ClientSession() as own:  # aiohttp decompresses for this one
        transport = AiohttpTransport(own, max_response_bytes=CAP)
        async with AsyncSession(base_url=base_url, transport=transport) as client:
            with pytest.raises(ResponseTooLargeError) as info:
                await client.blockchain_status("gzip-bomb")
            assert info.value.body.startswith(PREFIX)
            assert (await client.blockchain_status(f"exact-{CAP}")).status == "pending"


# -- item: no secret in exception chains or logs -------------------------------------------


def _linger_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


Scenario = Callable[[asyncio.StreamWriter], Awaitable[None]]

SCENARIOS: dict[str, Scenario] = {
    "bad status line": lambda w: _write(w, b"HTTP/1.1 abc OK\r\n\r\n"),
    "200 KB header": lambda w: _write(
        w, b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    ),
    "bad chunk": lambda w: _write(
        w, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
    "corrupt gzip": lambda w: _write(
        w, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n0123456789"
    ),
    "too large": lambda w: _write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n"),
    "closed without answer": lambda w: asyncio.sleep(0),
    "silence": lambda w: asyncio.sleep(30),
}


async def _reset_mid_body(writer: asyncio.StreamWriter) -> None:
    await _write(writer, b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"id"')
    await asyncio.sleep(0.01)
    _linger_reset(writer)


SCENARIOS["reset mid-body"] = _reset_mid_body


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Scenario], Awaitable[str]]]:
    servers: list[asyncio.base_events.Server] = []

    async def start(scenario: Scenario) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                await scenario(writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def _everything_shown(error: BaseException) -> str:
    texts = ["".join(traceback.format_exception(error))]
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        item = stack.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        texts += [str(item), repr(item), *map(repr, item.args)]
        texts += [str(note) for note in getattr(item, "__notes__", ())]
        stack += [item.__cause__, item.__context__]
    return "\n".join(texts)


async def _every_public_call(client: AsyncSession) -> list[BaseException]:
    poll = {"interval": 0.01, "timeout": 0.25}
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.create_session(SENDING),
        lambda: client.blockchain_status("wd_1"),
        lambda: client.session_status("ps_1"),
        lambda: client.wait_for_blockchain_hash("wd_1", **poll),
        lambda: client.wait_for_session("ps_1", **poll),
    ]
    errors: list[BaseException] = []
    for call in calls:
        with pytest.raises(InstaxError) as info:
            await call()
        errors.append(info.value)
    return errors


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_no_error_chain_or_log_shows_the_api_key(
    raw_server: Any,
    make_client: Any,
    scenario: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base_url = await raw_server(SCENARIOS[scenario])
    client = make_client(
        base_url, max_response_bytes=1024, timeout=0.2, retry=RetryPolicy(1, 0.0, 0.0)
    )
    errors = await _every_public_call(client)
    for error in errors:
        assert KEY not in _everything_shown(error), (scenario, error)
        assert isinstance(error, (APIConnectionError, ResponseTooLargeError, PollTimeoutError))
    for record in caplog.records:
        assert KEY not in record.getMessage()
    assert KEY not in caplog.text


async def test_the_scrubbed_cause_keeps_its_type_and_message(
    raw_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base_url = await raw_server(SCENARIOS["bad status line"])
    async with AsyncSession(KEY, base_url=base_url, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.blockchain_status("wd_1")
    cause = info.value.__cause__
    assert type(cause) is aiohttp.ClientResponseError
    assert cause.status == 400 and "abc" in cause.message
    assert cause.request_info.headers["x-api-key"] == "<redacted>"
    assert cause.request_info.headers["Accept"] == "application/json"
    assert info.value.__context__ is None
    assert "ClientResponseError" in str(info.value)


async def test_a_callers_session_that_does_not_decompress_asks_for_gzip_and_inflates(
    hostile: tuple[str, dict[str, Any]],
) -> None:
    """The transport's own session sends Accept-Encoding as a session default; a caller's
    session without decompression gets it per request, and the body is still inflated."""
    base_url, _ = hostile
    async with aiohttp.ClientSession(auto_decompress=False) as own:
        transport = AiohttpTransport(own, max_response_bytes=CAP)
        async with AsyncSession(base_url=base_url, transport=transport) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.blockchain_status("gzip-bomb")  # inflated by the transport


async def test_a_declared_length_body_that_arrives_after_its_headers_is_read_whole(
    start_server: StartServer,
) -> None:
    body = b'{"id":"ps_late","status":"initiated"}'

    async def late(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)  # the headers go out alone
        await response.write(body[:7])
        await asyncio.sleep(0.05)
        await response.write(body[7:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/api/session", late)
    url = await start_server(app)
    request = SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
    async with AsyncSession(base_url=url) as client:
        session = await client.create_session(request)
    assert session.id == "ps_late" and session.raw["status"] == "initiated"


def _echo_app() -> web.Application:
    """A server that echoes the request's api key back: in an error's message, body and
    headers, in a 2xx answer's fields, and at the start of a body too large to read."""

    async def session_status(request: web.Request) -> web.Response:
        key = request.headers["x-api-key"]
        if request.match_info["id"] == "ps_big":
            return web.Response(body=b'{"echo": "' + key.encode() + b'"' + b" " * 4096 + b"}")
        return web.json_response(
            {"id": request.match_info["id"], "status": "pending", "debug": f"key={key}"}
        )

    async def create(request: web.Request) -> web.Response:
        key = request.headers["x-api-key"]
        return web.json_response(
            {"message": f"invalid key {key}", "headers": {"x-api-key": key}},
            status=400,
            headers={"X-Debug-Key": key, "X-Request-Id": "req_1"},
        )

    app = web.Application()
    app.router.add_post("/api/session", create)
    app.router.add_get("/api/session/{id}/status", session_status)
    return app


async def test_an_api_key_the_server_echoes_back_shows_nowhere(
    start_server: StartServer, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    base_url = await start_server(_echo_app())
    client = make_client(base_url, max_response_bytes=1024)
    with pytest.raises(InstaxError) as info:
        await client.create_session(SENDING)
    error = info.value
    assert isinstance(error, APIStatusError) and error.status == 400
    assert "invalid key <redacted>" in str(error)  # the server's message, the key withheld
    assert error.request_id == "req_1"
    assert error.headers["x-debug-key"] == "<redacted>"
    assert KEY.encode() not in error.body and b"<redacted>" in error.body
    assert KEY not in _everything_shown(error) + repr(error.headers)

    status = await client.session_status("ps_1")  # a 2xx answer: its data keeps no key either
    assert KEY not in repr(status.raw) and "key=<redacted>" in repr(status.raw)

    with pytest.raises(ResponseTooLargeError) as too_large:
        await client.session_status("ps_big")
    assert KEY.encode() not in too_large.value.body
    assert KEY not in _everything_shown(too_large.value)
    ours = [r for r in caplog.records if r.name.startswith("instax_async")]
    assert ours and not [r for r in ours if KEY in r.getMessage()]  # (httpcore logs its own)


def test_only_a_key_long_enough_to_be_one_is_looked_for_in_answers() -> None:
    from instax_async.transports.base import MIN_REDACTED_LENGTH, without_secret

    headers = {"x-echo": KEY, "content-type": "application/json"}
    body = b'{"message": "wrong key ' + KEY.encode() + b'"}'
    # a placeholder key ("wrong") would match the server's own words: left as it is
    assert without_secret(400, headers, body, "wrong") == (headers, body)
    assert len("wrong") < MIN_REDACTED_LENGTH <= len(KEY)
    redacted_headers, content = without_secret(400, headers, body, KEY)
    assert content == b'{"message": "wrong key <redacted>"}'
    assert redacted_headers == {"x-echo": "<redacted>", "content-type": "application/json"}
    # a success's headers are shown nowhere: left as they are; its body is a result's raw
    ok_headers, ok_content = without_secret(200, headers, body, KEY)
    assert ok_headers is headers and KEY.encode() not in ok_content


async def test_a_custom_transports_answer_of_other_types_is_still_mapped_to_its_error() -> None:
    """Redaction reads a body and header values only where they have the contract's types."""

    class Careless:
        async def send(self, request: Request) -> Any:
            from instax_async.transports.base import Response

            headers: Any = {"x-echo": KEY.encode(), "x-debug": f"key {KEY}"}
            return Response(400, headers, b'{"message": "bad"}')

        async def aclose(self) -> None:
            pass

    async with AsyncSession(KEY, base_url="http://api.test", transport=Careless()) as client:
        with pytest.raises(APIStatusError) as info:
            await client.create_session(SENDING)
    assert info.value.status == 400 and info.value.headers["x-debug"] == "key <redacted>"
