"""Proxies from the environment: honoured by default, never for loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from instax_async import AiohttpTransport, AsyncSession, RetryPolicy
from instax_async.transports.aiohttp import _is_loopback, _route_from_env
from tests.conftest import StartServer


def proxy_app(seen: list[tuple[str, str, str | None]]) -> web.Application:
    """A stand-in forward proxy: answers every request itself and records how it arrived."""

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.method, str(request.url), request.headers.get("Proxy-Authorization")))
        return web.json_response({"txId": "wd_1", "hash": "0xproxied"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_https_proxy_from_the_environment_is_used_for_a_remote_api(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    proxy = await start_server(proxy_app(seen))
    monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://user:pw@"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # the API's host does not resolve: only a proxy can answer for it
    async with AsyncSession(base_url="http://instaxchange.invalid", max_retries=0) as client:
        status = await client.blockchain_status("wd_1")
    assert status.hash == "0xproxied"
    [(method, url, auth)] = seen
    assert method == "GET" and url.startswith("http://instaxchange.invalid/utils/")
    assert auth is not None and auth.startswith("Basic ")


async def test_no_proxy_and_trust_env_false_bypass_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert _route_from_env("https://api.example.com") == {}
    assert str(_route_from_env("https://other.example.com")["proxy"]) == "http://127.0.0.1:9"
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@127.0.0.1:9")
    route = _route_from_env("https://other.example.com")
    assert route["proxy_headers"]["Proxy-Authorization"] == "Basic dXNlcjpwdw=="  # user:pw
    transport = AiohttpTransport(trust_env=False)
    assert transport._route("https://other.example.com/api/session") == {}


async def test_loopback_is_never_proxied(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def created(request: web.Request) -> web.Response:
        return web.json_response({"id": "ps_direct"}, status=201)

    app = web.Application()
    app.router.add_post("/api/session", created)
    url = await start_server(app)
    # a proxy that cannot be reached: a proxied request would fail
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://10.255.255.1:9")
    from instax_async import SessionRequest

    request = SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
    async with AsyncSession(base_url=url, retry=RetryPolicy(max_retries=0)) as client:
        assert (await client.create_session(request)).id == "ps_direct"
    for host in ("localhost", "127.0.0.1", "127.8.9.10", "[::1]", "api.localhost"):
        assert _is_loopback(host), host
    assert not _is_loopback("instaxchange.com") and not _is_loopback("10.0.0.1")


def test_netrc_credentials_are_sent_to_their_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example.com login merchant password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    route = _route_from_env("https://api.example.com")
    assert route["headers"]["Authorization"] == "Basic bWVyY2hhbnQ6czNjcmV0"  # merchant:s3cret
    assert "headers" not in _route_from_env("https://other.example.com")
