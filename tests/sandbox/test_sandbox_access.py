"""Who the sandbox answers: its own hosts only (DNS rebinding), writes from its own origin only.

Every request is real loopback HTTP with the headers a browser would send (or an attacker's page
would make it send); tests/sandbox/test_browser.py replays the attacks in Chromium.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from instax_async import InstaxError, ValidationError
from instax_async.cli import main
from instax_async.sandbox import Sandbox, SandboxConfig
from tests.conftest import StartServer

SENDING = {
    "amountDirection": "sending",
    "fromAmount": 50,
    "fromCurrency": "USD",
    "toCurrency": "USDT",
}

#: What a ``text/plain`` form posts with one field named ``{"reason":"x`` whose value is ``"}``:
#: a JSON body no preflight stops.
FORM_BODY = '{"reason":"x="}'


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as sandbox:
        yield sandbox


async def call(
    method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, **kwargs) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def new_session(sandbox: Sandbox) -> str:
    status, body = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
    assert status == 201, body
    session_id: str = body["id"]
    return session_id


def port_of(sandbox: Sandbox) -> int:
    return int(sandbox.url.rsplit(":", 1)[1])


def fill(headers: dict[str, str], sandbox: Sandbox) -> dict[str, str]:
    port = port_of(sandbox)
    return {k: v.format(own=sandbox.url, port=port, other=port + 1) for k, v in headers.items()}


# -- writes from another origin ---------------------------------------------------------------

CROSS_ORIGIN = {
    "another-localhost-port": {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
    "another-site": {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    "sandboxed-frame": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    "own-origin-but-cross-site": {"Origin": "{own}", "Sec-Fetch-Site": "cross-site"},
    "same-site-only": {"Sec-Fetch-Site": "same-site"},
    "cross-site-only": {"Sec-Fetch-Site": "cross-site"},
    "unknown-fetch-site": {"Sec-Fetch-Site": "same-origin, cross-site"},
    # browsers without Sec-Fetch-Site: the Origin decides
    "origin-null": {"Origin": "null"},
    "origin-other-port": {"Origin": "http://127.0.0.1:{other}"},
    "origin-other-host": {"Origin": "http://localhost:{port}"},
    "origin-without-scheme": {"Origin": "127.0.0.1:{port}"},
    "origin-with-a-path": {"Origin": "{own}/x"},
    "origin-userinfo": {"Origin": "http://evil@127.0.0.1:{port}"},
}


@pytest.mark.parametrize("action", ["complete", "fail"])
@pytest.mark.parametrize("headers", CROSS_ORIGIN.values(), ids=CROSS_ORIGIN.keys())
async def test_a_write_from_another_origin_settles_nothing(
    sandbox: Sandbox, headers: dict[str, str], action: str
) -> None:
    session_id = await new_session(sandbox)
    status, body = await call(
        "POST",
        f"{sandbox.url}/sandbox/sessions/{session_id}/{action}",
        {**fill(headers, sandbox), "Content-Type": "text/plain"},
        data=FORM_BODY,
    )
    assert status == 403
    assert body["message"].startswith("cross-origin POST refused: ") and body["field"] is None
    assert sandbox.state.sessions[session_id]["status"] == "initiated"
    assert sandbox.state.payouts == {} and sandbox.state.deliveries == []


@pytest.mark.parametrize(
    "headers", [CROSS_ORIGIN["another-localhost-port"], CROSS_ORIGIN["origin-null"]]
)
async def test_a_session_cannot_be_created_from_another_origin(
    sandbox: Sandbox, headers: dict[str, str]
) -> None:
    status, body = await call(
        "POST",
        f"{sandbox.url}/api/session",
        {**headers, "Content-Type": "text/plain"},
        data=json.dumps(SENDING),
    )
    assert status == 403 and "cross-origin" in body["message"]
    assert sandbox.state.sessions == {}


async def test_a_refused_write_is_logged_with_its_reason(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await new_session(sandbox)
    huge = "http://" + "a" * 6000 + ".example"
    with caplog.at_level(logging.WARNING, logger="instax_async.sandbox"):
        status, body = await call(
            "POST", f"{sandbox.url}/sandbox/sessions/{session_id}/complete", {"Origin": huge}
        )
    assert status == 403 and len(body["message"]) < 500  # the header is quoted, cut short
    (record,) = [r for r in caplog.records if r.name == "instax_async.sandbox"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(
        f"sandbox: refused a cross-origin POST /sandbox/sessions/{session_id}"
    )
    assert "Origin: 'http://aaa" in message and "…'" in message and len(message) < 500


SAME_ORIGIN = {
    "no-browser": ({}, None),  # the SDK, curl
    "fetch-from-own-page": ({"Origin": "{own}", "Sec-Fetch-Site": "same-origin"}, None),
    "typed-by-the-user": ({"Sec-Fetch-Site": "none"}, None),
    "older-browser-own-page": ({"Origin": "{own}"}, None),
    "own-page-by-name": ({"Origin": "http://LOCALHOST:{port}"}, "localhost:{port}"),
    "own-page-ipv6": ({"Origin": "http://[::1]:{port}"}, "[::1]:{port}"),
    "own-page-without-port": ({"Origin": "http://localhost"}, "localhost"),
}


@pytest.mark.parametrize(("headers", "host"), SAME_ORIGIN.values(), ids=SAME_ORIGIN.keys())
async def test_writes_from_the_sandbox_itself_and_from_non_browsers_work(
    sandbox: Sandbox, headers: dict[str, str], host: str | None
) -> None:
    session_id = await new_session(sandbox)
    sent = fill(headers, sandbox)
    if host:
        sent["Host"] = host.format(port=port_of(sandbox))
    status, body = await call(
        "POST", f"{sandbox.url}/sandbox/sessions/{session_id}/complete", sent, json={}
    )
    assert status == 200, body
    assert sandbox.state.sessions[session_id]["status"] == "completed"


async def test_the_helpers_of_sandbox_objects_still_work(sandbox: Sandbox) -> None:
    assert (await sandbox.complete(await new_session(sandbox)))["status"] == "completed"
    assert (await sandbox.fail(await new_session(sandbox)))["status"] == "failed"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_other_sites_may_still_embed_and_link_the_checkout_page(
    sandbox: Sandbox, method: str
) -> None:
    session_id = await new_session(sandbox)
    headers = {"Origin": "https://shop.example", "Sec-Fetch-Site": "cross-site"}
    for path in (f"/embed/{session_id}", f"/order/{session_id}"):
        status, _ = await call(method, f"{sandbox.url}{path}", headers)
        assert status == 200


# -- foreign hosts -----------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/api/session"),
    ("GET", "/api/session/ps_1/status"),
    ("GET", "/utils/blockchain-status?txId=wd_1"),
    ("GET", "/embed/{session}"),
    ("GET", "/order/{session}"),
    ("POST", "/sandbox/sessions/{session}/complete"),
    ("POST", "/sandbox/sessions/{session}/fail"),
    ("GET", "/sandbox/webhooks"),
    ("GET", "/no/such/endpoint"),
    ("DELETE", "/api/session"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_refuses_a_rebound_host(
    sandbox: Sandbox, method: str, path: str
) -> None:
    session_id = await new_session(sandbox)
    requests_before = sandbox.state.requests
    status, body = await call(
        method,
        sandbox.url + path.format(session=session_id),
        {"Host": f"evil.example:{port_of(sandbox)}", "x-api-key": "k"},
        json=SENDING if path == "/api/session" else {},
    )
    assert status == 421
    assert "does not answer for the host 'evil.example:" in body["message"]
    assert "--allowed-host" in body["message"]
    assert len(sandbox.state.sessions) == 1
    assert sandbox.state.sessions[session_id]["status"] == "initiated"
    assert sandbox.state.requests == requests_before  # refused before fault injection counts


FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:{port}",
    "localhost.evil.example:{port}",
    "127.0.0.1.nip.io:{port}",
    "localhostx:{port}",
    "10.1.2.3:{port}",
    "[2001:db8::1]:{port}",
    "2130706433:{port}",  # 127.0.0.1 as one number: a browser would have sent 127.0.0.1
    "0x7f.1:{port}",
]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_hosts_that_are_not_this_machine_are_refused(
    sandbox: Sandbox, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="instax_async.sandbox"):
        status, body = await call(
            "GET", f"{sandbox.url}/sandbox/webhooks", {"Host": host.format(port=port_of(sandbox))}
        )
    assert status == 421 and body["field"] is None
    assert "refused GET /sandbox/webhooks: this sandbox does not answer" in caplog.text


MALFORMED_HOSTS = ["", " ", "a b", "[::1", "[not-an-ip]:{port}", "x:{port}:{port}", "u@localhost"]


@pytest.mark.parametrize("host", MALFORMED_HOSTS)
async def test_a_malformed_host_is_a_400(sandbox: Sandbox, host: str) -> None:
    status, body = await call(
        "GET", f"{sandbox.url}/sandbox/webhooks", {"Host": host.format(port=port_of(sandbox))}
    )
    assert status == 400 and "is not a host name" in body["message"]


OWN_HOSTS = [
    "127.0.0.1:{port}",
    "127.0.0.1",
    "localhost",
    "LocalHost:{port}",
    "localhost.:{port}",
    "127.5.6.7:1",  # the port is not compared: a port forward (ssh -L 9000:…) changes it
    "[::1]:{port}",
    "[0:0::1]",
    "[::ffff:127.0.0.1]:{port}",
    "0.0.0.0:{port}",  # reaches this machine
    "[::]:{port}",
]


@pytest.mark.parametrize("host", OWN_HOSTS)
async def test_this_machines_names_and_addresses_are_answered(sandbox: Sandbox, host: str) -> None:
    status, body = await call(
        "GET", f"{sandbox.url}/sandbox/webhooks", {"Host": host.format(port=port_of(sandbox))}
    )
    assert (status, body) == (200, [])


async def test_a_request_without_host_is_answered(sandbox: Sandbox) -> None:
    # HTTP/1.0 has no Host: no browser sends such a request, so no page can be behind it.
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(sandbox))
    try:
        writer.write(b"GET /sandbox/webhooks HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.0 200 ") and answer.endswith(b"\r\n\r\n[]")


async def test_allowed_hosts_let_a_proxy_name_through() -> None:
    config = SandboxConfig(allowed_hosts=["Sandbox.Example.Test", "[2001:db8::5]"])
    async with Sandbox(config) as sandbox:
        webhooks = f"{sandbox.url}/sandbox/webhooks"
        for host in ("sandbox.example.test", "SANDBOX.example.test.:8443", "[2001:db8::5]:80"):
            assert (await call("GET", webhooks, {"Host": host}))[0] == 200, host
        assert (await call("GET", webhooks, {"Host": "other.example.test"}))[0] == 421
        # A TLS proxy in front: the page's origin is https://name, the Host the same name.
        behind_proxy = {"Host": "sandbox.example.test", "Origin": "https://sandbox.example.test"}
        session_id = await new_session(sandbox)
        complete = f"{sandbox.url}/sandbox/sessions/{session_id}/complete"
        refused = {**behind_proxy, "Origin": "https://sandbox.example.test:444"}
        assert (await call("POST", complete, refused, json={}))[0] == 403
        assert (await call("POST", complete, behind_proxy, json={}))[0] == 200


@pytest.mark.parametrize(
    "value",
    [
        "sandbox.example.test",  # a str, not a list of them
        b"x",
        5,
        ["http://sandbox.example.test"],
        ["sandbox.example.test:8080"],
        ["[::1]:8080"],
        ["sandbox.example.test/path"],
        [""],
        ["."],
        ["a b"],
        [5],
        [None],
    ],
)
def test_allowed_hosts_takes_bare_host_names_only(value: Any) -> None:
    with pytest.raises(ValidationError, match=r"^allowed_hosts: expected ") as info:
        SandboxConfig(allowed_hosts=value)
    assert info.value.field == "allowed_hosts"


def test_allowed_hosts_are_kept_in_one_spelling() -> None:
    config = SandboxConfig(allowed_hosts=("Name.Test.", "::1", "[0::1]", "10.0.0.1", "my_box"))
    assert config.allowed_hosts == ("name.test", "::1", "::1", "10.0.0.1", "my_box")
    assert SandboxConfig().allowed_hosts == ()


async def test_the_host_it_was_started_on_is_answered(start_server: StartServer) -> None:
    # (served by start_server on 127.0.0.1: only the name the app was given is tested here)
    url = await start_server(Sandbox(host="Sandbox.Internal").app)
    assert (await call("GET", f"{url}/sandbox/webhooks", {"Host": "sandbox.internal:1"}))[0] == 200
    assert (await call("GET", f"{url}/sandbox/webhooks", {"Host": "other.internal"}))[0] == 421


def _can_listen(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _can_listen("::1"), reason="no IPv6 loopback here")
async def test_on_the_ipv6_loopback() -> None:
    async with Sandbox(host="::1") as sandbox:
        assert sandbox.url.startswith("http://[::1]:")
        session_id = await new_session(sandbox)
        assert (await sandbox.complete(session_id))["status"] == "completed"
        webhooks = f"{sandbox.url}/sandbox/webhooks"
        assert (await call("GET", webhooks))[0] == 200  # Host: [::1]:port
        assert (await call("GET", webhooks, {"Host": "evil.example"}))[0] == 421
        own = {"Origin": sandbox.url}
        second = await new_session(sandbox)
        complete = f"{sandbox.url}/sandbox/sessions/{second}/fail"
        assert (await call("POST", complete, {"Origin": "http://[::1]:1"}, json={}))[0] == 403
        assert (await call("POST", complete, own, json={}))[0] == 200


def _lan_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address: str = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


async def test_on_every_address() -> None:
    async with Sandbox(host="0.0.0.0") as sandbox:
        assert sandbox.url.startswith("http://0.0.0.0:")
        assert (await sandbox.complete(await new_session(sandbox)))["status"] == "completed"
        port = port_of(sandbox)
        lan = _lan_address()
        if lan is None:
            pytest.skip("this machine has no address but loopback")
        # From the network: its own address as Host is answered, a name still is not.
        webhooks = f"http://{lan}:{port}/sandbox/webhooks"
        assert (await call("GET", webhooks))[0] == 200
        assert (await call("GET", webhooks, {"Host": "evil.example"}))[0] == 421
        other = lan.rsplit(".", 1)[0] + (".1" if not lan.endswith(".1") else ".2")
        assert (await call("GET", webhooks, {"Host": f"{other}:{port}"}))[0] == 421
        # and through loopback, the LAN address was not the one the request came in on
        loopback = f"http://127.0.0.1:{port}/sandbox/webhooks"
        assert (await call("GET", loopback, {"Host": f"{lan}:{port}"}))[0] == 421


# -- the command line --------------------------------------------------------------------------


def test_the_command_takes_allowed_hosts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[SandboxConfig] = []

    async def start(self: Sandbox) -> str:
        seen.append(self.config)
        raise InstaxError("stop here")

    monkeypatch.setattr(Sandbox, "start", start)
    argv = ["sandbox", "--allowed-host", "Sandbox.Test", "--allowed-host", "10.0.0.5"]
    assert main(argv) == 2
    assert seen[0].allowed_hosts == ("sandbox.test", "10.0.0.5")
    assert main(["sandbox"]) == 2
    assert seen[1].allowed_hosts == ()
    capsys.readouterr()
    assert main(["sandbox", "--allowed-host", "https://sandbox.test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("instax: --allowed-host: expected host names ") and err.count("\n") == 1
    assert "'https://sandbox.test'" in err
