"""instax_async.testing without a server: make_webhook and the plugin's checks of its input."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from instax_async import InstaxError, TransactionStatus, ValidationError, webhooks
from instax_async.sandbox import Sandbox
from instax_async.testing import WebhookRecorder, make_webhook, plugin
from instax_async.testing.plugin import SANDBOX_TEST_DEFAULTS, _sandbox_config

SECRET = "whsec_unit"
VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "signatures.json").read_text())
DOCUMENTED = {v["name"]: json.loads(v["body"]) for v in VECTORS if v["name"].startswith("doc")}


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively, in order (values left out)."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    return None


def test_a_completed_webhook_verifies_and_has_the_documented_shape() -> None:
    body, headers = make_webhook(SECRET, reference="order-1", session_id="ps_1")
    assert list(headers) == ["Content-Type", "X-InstaXWH-KEY"]
    assert headers["Content-Type"] == "application/json"
    event = webhooks.verify(body, headers["X-InstaXWH-KEY"], SECRET)
    assert event.is_completed
    assert (event.reference, event.session_id) == ("order-1", "ps_1")
    assert event.data.amount_in_fiat == Decimal("50")
    assert event.data.amount_in_crypto == Decimal("48.5")
    assert (event.data.fiat_currency, event.data.crypto_currency) == ("USD", "USDT")
    assert event.data.status_reason is None
    assert event.withdraw_tx_id is not None and event.withdraw_tx_id.startswith("wd_")
    assert shape(json.loads(body)) == shape(DOCUMENTED["documented_completed"])
    # amounts are JSON numbers, as InstaXchange sends them
    assert b'"amountInFiat":50,' in body and b'"amountInCrypto":48.5,' in body


def test_a_failed_webhook_has_the_documented_failed_shape() -> None:
    body, headers = make_webhook(SECRET, status="failed", amount_in_fiat=5)
    event = webhooks.verify(body, headers["X-InstaXWH-KEY"], SECRET)
    assert event.is_failed
    assert event.data.status_reason == "Do Not Honor"
    raw = json.loads(body)
    assert raw["data"]["additionalData"] is None
    assert raw["invoiceData"]["Withdraw_tx_status"] == "failed"
    assert shape(raw) == shape(DOCUMENTED["documented_failed"])


def test_every_option_reaches_the_body() -> None:
    body, headers = make_webhook(
        SECRET,
        status="failed",
        reference="order-9",
        session_id="ps_9",
        status_reason="Insufficient funds",
        withdraw_tx_id="wd_9",
        amount_in_fiat=Decimal("10.25"),
        fiat_currency="EUR",
        amount_in_crypto="0.0421399418187522",
        crypto_currency="LTC",
    )
    event = webhooks.verify(body, headers["X-InstaXWH-KEY"], SECRET)
    assert (event.reference, event.session_id, event.withdraw_tx_id) == ("order-9", "ps_9", "wd_9")
    assert event.data.status_reason == "Insufficient funds"
    assert event.data.additional_data == {"wdId": "wd_9"}
    assert (event.data.amount_in_fiat, event.data.fiat_currency) == (Decimal("10.25"), "EUR")
    assert event.data.amount_in_crypto == Decimal("0.0421399418187522")
    assert event.data.crypto_currency == "LTC"


def test_each_webhook_is_new_and_created_now() -> None:
    first, _ = make_webhook(SECRET, status="pending")
    second, _ = make_webhook(SECRET, status="pending")
    one, two = webhooks.parse(first), webhooks.parse(second)
    assert one.status == TransactionStatus.PENDING
    assert one.webhook_id != two.webhook_id and one.session_id != two.session_id
    assert one.created_at is not None
    # a replay window of minutes accepts it (a generous bound: never flaky)
    assert abs(datetime.now(timezone.utc) - one.created_at) < timedelta(minutes=1)


def test_the_signature_depends_on_the_secret() -> None:
    body, headers = make_webhook("whsec_other")
    with pytest.raises(InstaxError, match="does not match"):
        webhooks.verify(body, headers["X-InstaXWH-KEY"], SECRET)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"secret": ""}, "secret"),
        ({"secret": b"whsec"}, "secret"),
        ({"status": ""}, "status"),
        ({"status": None}, "status"),
        ({"reference": 7}, "reference"),
        ({"reference": "  "}, "reference"),
        ({"session_id": ["ps_1"]}, "session_id"),
        ({"status_reason": ""}, "status_reason"),
        ({"withdraw_tx_id": 1}, "withdraw_tx_id"),
        ({"amount_in_fiat": "fifty"}, "amount_in_fiat"),
        ({"amount_in_fiat": "-1"}, "amount_in_fiat"),
        ({"amount_in_fiat": True}, "amount_in_fiat"),
        ({"amount_in_crypto": "NaN"}, "amount_in_crypto"),
        ({"amount_in_crypto": "1e999999"}, "amount_in_crypto"),
        ({"fiat_currency": None}, "fiat_currency"),
        ({"crypto_currency": ""}, "crypto_currency"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"secret": SECRET, **kwargs}
    secret = arguments.pop("secret")
    with pytest.raises(ValidationError) as caught:
        make_webhook(secret, **arguments)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_bad_secret_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        make_webhook(b"whsec_bytes_secret")
    assert "whsec_bytes_secret" not in str(caught.value)


@pytest.mark.parametrize(
    "field",
    ["reference", "session_id", "status_reason", "withdraw_tx_id", "status", "fiat_currency"],
)
@pytest.mark.parametrize(
    ("text", "at"),
    [("order-\ud800", "U+D800) at index 6"), ("\udfff", "U+DFFF"), ("ok \ud83d\ude00", "U+D83D")],
    ids=["lone high", "lone low", "split pair"],
)
def test_text_utf8_cannot_encode_is_refused_naming_the_argument(
    field: str, text: str, at: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(at)) as caught:
        make_webhook(SECRET, **{field: text})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: must be valid Unicode text")
    # A pair joined into one character is fine.
    body, _ = make_webhook(SECRET, **{field: "ok \U0001f600"})
    assert "ok \U0001f600".encode() in body


@pytest.mark.parametrize(
    "value", [10**5000, [[[[[]]]]], " " * 100_000], ids=["huge int", "nested", "blank"]
)
def test_a_bad_argument_is_shown_briefly(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        make_webhook(SECRET, reference=value)  # type: ignore[arg-type]
    assert caught.value.field == "reference" and len(str(caught.value)) < 200


def test_recorder_arguments_and_repr() -> None:
    recorder = WebhookRecorder()
    assert recorder.secret.startswith("whsec_test_") and recorder.secret != WebhookRecorder().secret
    assert repr(recorder) == "<WebhookRecorder url='not started' events=0 refused=0>"
    assert recorder.secret not in repr(recorder)
    assert WebhookRecorder("whsec_mine").secret == "whsec_mine"
    with pytest.raises(ValidationError, match="secret") as caught:
        WebhookRecorder("")
    assert caught.value.field == "secret"


@pytest.mark.parametrize("make", [WebhookRecorder, Sandbox], ids=["WebhookRecorder", "Sandbox"])
async def test_a_server_on_the_ipv6_loopback_has_a_usable_url(make: Any) -> None:
    try:
        server = make(host="::1")
        await server.start()
    except InstaxError as exc:  # pragma: no cover - a machine without IPv6
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert server.url.startswith("http://[::1]:"), server.url
        async with aiohttp.ClientSession() as http, http.get(server.url) as response:
            assert response.status in (404, 405)  # reached through the URL as given
    finally:
        await server.stop()


@pytest.mark.parametrize("make", [WebhookRecorder, Sandbox], ids=["WebhookRecorder", "Sandbox"])
async def test_servers_are_async_context_managers_only(make: Any) -> None:
    # A plain ``with`` (a forgotten ``async``) says what to write, as the client's does.
    refused = pytest.raises(TypeError, match=rf"^{make.__name__} is asynchronous: use 'async with")
    with refused, make():
        pass  # pragma: no cover - never entered
    server = make()
    async with server:
        url = server.url
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status in (404, 405)  # listening
        with pytest.raises(InstaxError, match=f"^this {make.__name__} is already running$"):
            await server.start()  # (a second server would be left running)
        assert server.url == url
    assert server.url == "" and "not started" in repr(server)  # stopped on leaving
    await server.aclose()  # closing again is a no-op
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(url)
    async with server:  # and it starts again
        assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("make", [WebhookRecorder, Sandbox], ids=["WebhookRecorder", "Sandbox"])
def test_a_server_is_driven_from_its_own_loop_or_refuses_clearly(make: Any) -> None:
    # Its loop waits, in this thread, while another runs: waiting for it would never end.
    home, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    server = make()
    try:
        url = home.run_until_complete(server.start())
        for call in (server.stop, server.start):
            with pytest.raises(InstaxError) as caught:
                other.run_until_complete(call())
            assert str(caught.value) == (
                f"this {make.__name__} runs in another event loop, which is not running now: "
                "start and stop it from the loop it was started in"
            )
        assert server.url == url  # untouched
        home.run_until_complete(server.stop())
        home.close()
        other.run_until_complete(server.stop())  # its loop has ended: nothing to wait for
        assert server.url == ""
    finally:
        home.close()
        other.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"session_id": ""}, "session_id"),
        ({"status": 3}, "status"),
        ({"reference": b"order-1"}, "reference"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "5"}, "timeout"),
    ],
)
async def test_wait_for_checks_its_arguments(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await WebhookRecorder().wait_for(**kwargs)
    assert caught.value.field == field


class FakeMark:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class FakeNode:
    """The part of a pytest item the marker resolution reads: markers, closest first."""

    def __init__(self, *marks: FakeMark) -> None:
        self.marks = marks

    def iter_markers(self, name: str) -> Any:
        assert name == "instax_sandbox"
        return iter(self.marks)


def test_marker_options_replace_the_test_defaults_closest_first() -> None:
    recorder = WebhookRecorder("whsec_x")
    recorder.url = "http://127.0.0.1:9/webhooks/instax"
    config = _sandbox_config(FakeNode(), recorder)
    for name, value in SANDBOX_TEST_DEFAULTS.items():
        assert getattr(config, name) == value
    assert (config.webhook_url, config.webhook_secret) == (recorder.url, "whsec_x")
    function, module = FakeMark(error_rate=1.0), FakeMark(error_rate=0.5, latency=0.01)
    config = _sandbox_config(FakeNode(function, module), recorder)
    assert (config.error_rate, config.latency) == (1.0, 0.01)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (
            FakeMark(error_rat=1.0),
            "@pytest.mark.instax_sandbox: unknown option 'error_rat'; did you mean 'error_rate'? "
            "the options are SandboxConfig fields: webhook_url, ",
        ),
        (FakeMark(colour="red"), "unknown option 'colour'; the options are SandboxConfig"),
        (FakeMark(1.0), "takes keyword options only (SandboxConfig fields), got positional"),
        (FakeMark(error_rate=2), "@pytest.mark.instax_sandbox: error_rate: expected a fraction"),
    ],
)
def test_bad_marker_options_fail_the_test_clearly(mark: FakeMark, message: str) -> None:
    recorder = WebhookRecorder()
    recorder.url = "http://127.0.0.1:9/webhooks/instax"
    with pytest.raises(pytest.fail.Exception) as caught:
        _sandbox_config(FakeNode(mark), recorder)
    assert message in str(caught.value)


class FakePluginManager:
    def is_registered(self, plugin: object) -> bool:
        return False


class FakeConfig:
    pluginmanager = FakePluginManager()


class FakeRequest:
    config = FakeConfig()


class FakeFixtureDef:
    def __init__(self, argname: str) -> None:
        self.argname = argname


def test_without_an_active_pytest_asyncio_the_fixtures_fail_with_a_hint() -> None:
    with pytest.raises(pytest.fail.Exception) as caught:
        plugin.pytest_fixture_setup(FakeFixtureDef("instax_sandbox"), FakeRequest())
    assert str(caught.value) == (
        "the instax_sandbox fixture is async and needs pytest-asyncio (0.23 or later): "
        "pip install pytest-asyncio, then mark async tests with @pytest.mark.asyncio or set "
        "asyncio_mode = auto"
    )
    # other fixtures are none of its business
    assert plugin.pytest_fixture_setup(FakeFixtureDef("tmp_path"), FakeRequest()) is None


class FakeItem:
    name = "test_x"

    def __init__(self, fixturenames: list[str], *marks: str) -> None:
        self.fixturenames = fixturenames
        self.own_markers = [SimpleNamespace(name=name) for name in marks]


def test_the_marker_on_a_test_without_the_sandbox_fails_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="which test_x does not use"):
        plugin.pytest_runtest_setup(FakeItem(["instax_webhooks"], "instax_sandbox"))
    plugin.pytest_runtest_setup(FakeItem(["instax_sandbox"], "instax_sandbox"))
    plugin.pytest_runtest_setup(FakeItem(["instax_webhooks"], "asyncio"))
