"""The client-level settings a merchant goes live with: ``account_ref_id``, ``checkout_url``,
``default_headers`` and ``require``, each with its environment variable and precedence rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from instax_async import (
    NEWEST_API_REQUIRED,
    APIConnectionError,
    AsyncSession,
    MockTransport,
    Request,
    Response,
    RetryPolicy,
    SessionRequest,
    ValidationError,
)

REQUEST = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")
ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
NO_RETRY = RetryPolicy(max_retries=0)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "INSTAX_API_KEY",
        "INSTAX_BASE_URL",
        "INSTAX_ACCOUNT_REF_ID",
        "INSTAX_CHECKOUT_URL",
    ):
        monkeypatch.delenv(name, raising=False)


class Recording:
    """A MockTransport handler that answers a created session and keeps every request."""

    def __init__(self, answer: dict[str, Any] | None = None) -> None:
        self.requests: list[Request] = []
        self.answer = answer if answer is not None else {"id": "ps_1", "status": "initiated"}

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        if request.method == "GET":
            return Response(200, {}, b'{"sessionStatus": "pending"}')
        return Response(201, {}, json.dumps(self.answer).encode())

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def client_with(handler: Recording, **kwargs: Any) -> AsyncSession:
    kwargs.setdefault("base_url", "https://api.test")
    return AsyncSession(transport=MockTransport(handler), retry=NO_RETRY, **kwargs)


# -- account_ref_id ----------------------------------------------------------------------------


async def test_account_ref_id_fills_requests_without_one_and_never_changes_them() -> None:
    handler = Recording()
    own = REQUEST.with_account_ref_id("merchant-own")
    async with client_with(handler, account_ref_id="merchant-7") as client:
        assert client.account_ref_id == "merchant-7"
        await client.create_session(REQUEST)
        await client.create_session(own)
    first, second = handler.bodies
    assert first["accountRefId"] == "merchant-7"
    assert second["accountRefId"] == "merchant-own"  # a request's own value wins
    assert REQUEST.account_ref_id is None  # the caller's request object is unchanged
    assert own.account_ref_id == "merchant-own"
    assert own.with_account_ref_id("merchant-7") is own


async def test_account_ref_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTAX_ACCOUNT_REF_ID", "merchant-env")
    handler = Recording()
    async with client_with(handler) as client:
        await client.create_session(REQUEST)
    async with client_with(handler, account_ref_id="merchant-arg") as client:
        await client.create_session(REQUEST)  # the argument wins over the environment
    assert [body["accountRefId"] for body in handler.bodies] == ["merchant-env", "merchant-arg"]


async def test_without_account_ref_id_nothing_is_added() -> None:
    handler = Recording()
    async with client_with(handler) as client:
        assert client.account_ref_id is None
        await client.create_session(REQUEST)
    assert "accountRefId" not in handler.bodies[0]


@pytest.mark.parametrize("value", ["", "   ", 7, "a\ud800b"], ids=["empty", "blank", "int", "lone"])
def test_a_bad_account_ref_id_is_refused_at_construction(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(account_ref_id=value)  # type: ignore[arg-type]
    assert info.value.field == "account_ref_id"


def test_with_account_ref_id_copies_every_field_and_checks_the_value() -> None:
    request = SessionRequest.receiving(
        to_amount="10", from_currency="EUR", to_currency="USDT-TRON", address=ADDRESS
    )
    filled = request.with_account_ref_id("m-1")
    assert filled.to_payload() == {**request.to_payload(), "accountRefId": "m-1"}
    assert filled.to_json() != request.to_json() and filled == filled
    with pytest.raises(ValidationError, match="account_ref_id"):
        request.with_account_ref_id("  ")


# -- checkout_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "https://api.test/embed/ps_1"),
        ("https://api.test/order/{id}", "https://api.test/order/ps_1"),
        ("https://checkout.example/order/{id}", "https://checkout.example/order/ps_1"),
        ("{base_url}/order/{id}", "https://api.test/order/ps_1"),
        ("  https://checkout.example/pay?session={id}&lang=en  ", None),
        ("http://127.0.0.1:8080/order/{id}", "http://127.0.0.1:8080/order/ps_1"),
        ("http://localhost/order/{id}", "http://localhost/order/ps_1"),
        ("http://[::1]:9/o/{id}", "http://[::1]:9/o/ps_1"),
    ],
)
async def test_checkout_url_template(template: str | None, expected: str | None) -> None:
    expected = expected or "https://checkout.example/pay?session=ps_1&lang=en"
    async with client_with(Recording(), checkout_url=template) as client:
        session = await client.create_session(REQUEST)
        assert session.iframe_url == expected
        assert client.iframe_url("ps_1") == expected
        assert client.checkout_url == expected.replace("ps_1", "{id}")


async def test_checkout_url_from_the_environment_and_the_argument_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTAX_CHECKOUT_URL", "{base_url}/order/{id}")
    async with client_with(Recording()) as client:
        assert client.iframe_url("ps_9") == "https://api.test/order/ps_9"
    async with client_with(Recording(), checkout_url="https://c.example/{id}") as client:
        assert client.iframe_url("ps_9") == "https://c.example/ps_9"


def test_the_id_is_percent_encoded_into_the_template() -> None:
    client = AsyncSession(base_url="https://api.test", checkout_url="https://c.example/o/{id}/x")
    assert client.iframe_url("ps 1/../?#x") == "https://c.example/o/ps%201%2F..%2F%3F%23x/x"
    with pytest.raises(ValidationError, match="session_id"):
        client.iframe_url("..")


def test_an_http_base_url_keeps_its_default_checkout_url() -> None:
    # a sandbox behind a Compose service name: the default template follows the base URL
    client = AsyncSession(base_url="http://sandbox:8080")
    assert client.iframe_url("ps_1") == "http://sandbox:8080/embed/ps_1"
    assert AsyncSession(
        base_url="http://sandbox:8080", checkout_url="{base_url}/order/{id}"
    ).iframe_url("ps_1") == ("http://sandbox:8080/order/ps_1")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://checkout.example/order/", "exactly once"),
        ("https://checkout.example/{id}/{id}", "exactly once"),
        ("https://checkout.example/{session}/{id}", "braces"),
        ("https://checkout.example/{id}}", "braces"),
        ("https://checkout.example/{ID}", "exactly once"),
        ("x{base_url}/order/{id}", "braces"),
        ("/order/{id}", "absolute"),
        ("checkout.example/order/{id}", "absolute"),
        ("ftp://checkout.example/{id}", "absolute"),
        ("javascript:alert(1)//{id}", "absolute"),
        ("data:text/html,{id}", "absolute"),
        ("http://checkout.example/order/{id}", "https is required"),
        ("https://{id}.checkout.example/", "path or query"),
        ("https://checkout.example/#{id}", "path or query"),
        ("https://user:pw@checkout.example/{id}", "user name"),
        ("https://checkout.example/or der/{id}", "blank"),
        ("https://checkout.example/\u00e9/{id}", "non-ASCII"),
        ("https://checkout.example/\r\n/{id}", "control"),
        ("https://[::1/{id}", "absolute"),
        ("", "exactly once"),
    ],
)
def test_a_bad_checkout_url_is_refused_at_construction(template: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(base_url="https://api.test", checkout_url=template)
    assert info.value.field == "checkout_url"
    assert str(info.value).startswith("checkout_url: expected a URL template with {id} once")
    assert problem in str(info.value)


@pytest.mark.parametrize("value", [7, b"https://c.example/{id}", ["x"]])
def test_a_checkout_url_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match=f"got {type(value).__name__}") as info:
        AsyncSession(checkout_url=value)  # type: ignore[arg-type]
    assert info.value.field == "checkout_url"


def test_a_bad_checkout_url_in_the_environment_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTAX_CHECKOUT_URL", "https://checkout.example/order")
    with pytest.raises(ValidationError) as info:
        AsyncSession()
    assert info.value.field == "checkout_url"


def test_a_huge_template_is_refused_with_a_short_message() -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(checkout_url="https://c.example/" + "x" * 1_000_000)
    assert len(str(info.value)) < 600


# -- default_headers ---------------------------------------------------------------------------


async def test_default_headers_go_with_every_request() -> None:
    handler = Recording()
    headers = {"Authorization": "Bearer sk_live_bearer", "X-Tenant": "shop-1"}
    async with client_with(handler, api_key="sk_live_key", default_headers=headers) as client:
        await client.create_session(REQUEST)
        await client.session_status("ps_1")
        patient = client.with_options(timeout=60.0)
        await patient.session_status("ps_1")
    for request in handler.requests:
        assert request.headers["Authorization"] == "Bearer sk_live_bearer"
        assert request.headers["X-Tenant"] == "shop-1"
        assert request.headers["x-api-key"] == "sk_live_key"
    assert handler.requests[0].headers["Content-Type"] == "application/json"


async def test_default_headers_replace_the_sdks_own_in_any_case() -> None:
    handler = Recording()
    headers = {"user-agent": "shop/2.0", "ACCEPT": "application/vnd.instax+json"}
    headers["content-type"] = "application/json; charset=utf-8"
    async with client_with(handler, default_headers=headers) as client:
        await client.create_session(REQUEST)
    sent = handler.requests[0].headers
    names = [name.lower() for name in sent]
    assert len(names) == len(set(names))  # one of each, whatever the case
    assert sent["user-agent"] == "shop/2.0"
    assert sent["ACCEPT"] == "application/vnd.instax+json"
    assert sent["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("name", ["x-api-key", "X-API-Key"])
def test_an_api_key_header_never_silently_replaces_the_api_key(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(api_key="sk_live_key", default_headers={name: "sk_live_other"})
    assert info.value.field == "default_headers"
    assert "api_key" in str(info.value) and "sk_live" not in str(info.value)
    monkeypatch.setenv("INSTAX_API_KEY", "sk_live_env")
    with pytest.raises(ValidationError, match="INSTAX_API_KEY"):
        AsyncSession(default_headers={name: "sk_live_other"})


async def test_an_api_key_header_without_an_api_key_is_the_api_key() -> None:
    handler = Recording()
    client = client_with(handler, default_headers={"X-Api-Key": " sk_live_header "})
    assert client.has_api_key and "sk_live" not in repr(client)
    async with client:
        await client.session_status("ps_1")  # the status endpoint's key requirement is met
    sent = handler.requests[0].headers
    assert [name for name in sent if name.lower() == "x-api-key"] == ["x-api-key"]
    assert sent["x-api-key"] == "sk_live_header"
    with pytest.raises(ValidationError, match="api_key"):
        AsyncSession(default_headers={"x-api-key": "sk live"})


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ("Authorization: Bearer x", "expected a mapping"),
        ([("Authorization", "Bearer x")], "expected a mapping"),
        ({"Bad Name": "x"}, "header names"),
        ({"X-A:b": "x"}, "header names"),
        ({"": "x"}, "header names"),
        ({"X-\u00e9": "x"}, "header names"),
        ({7: "x"}, "header names"),
        ({"X-Tenant": 7}, "expected a str"),
        ({"X-Tenant": None}, "expected a str"),
        ({"X-Tenant": b"x"}, "expected a str"),
        ({"Authorization": "Bearer sk_live_x\r\nX-Evil: 1"}, "character 17"),
        ({"Authorization": "Bearer sk_live_x\n"}, "character 17"),
        ({"Authorization": "Bearer sk_live_x\x00"}, "character 17"),
        ({"Authorization": "Bearer sk_live_\u00e9"}, "character 16"),
        ({"Host": "evil.example"}, "set by the transport"),
        ({"content-length": "0"}, "set by the transport"),
        ({"Transfer-Encoding": "chunked"}, "set by the transport"),
        ({"Connection": "close"}, "set by the transport"),
        ({"X-Tenant": "a", "x-tenant": "b"}, "given twice"),
    ],
)
def test_bad_default_headers_are_refused_without_showing_values(
    headers: object, words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(default_headers=headers)  # type: ignore[arg-type]
    assert info.value.field == "default_headers"
    assert words in str(info.value)
    assert "sk_live" not in str(info.value) and "Bearer x" not in str(info.value)


async def test_secret_default_headers_are_redacted_and_scrubbed_from_errors() -> None:
    seen: list[Request] = []

    def leaky(request: Request) -> Response:
        seen.append(request)
        # a library that puts the request's headers in its error message
        raise RuntimeError(f"connection reset; sent {dict(request.headers)}")

    headers = {
        "Authorization": "Bearer sk_live_bearer",
        "X-Auth-Token": "tok_live_secret",
        "X-Tenant": "shop-1",
    }
    client = AsyncSession(
        base_url="https://api.test",
        transport=MockTransport(leaky),
        retry=NO_RETRY,
        default_headers=headers,
    )
    async with client:
        with pytest.raises(APIConnectionError) as info:
            await client.create_session(REQUEST)
    shown = repr(seen[0])
    assert "shop-1" in shown
    assert "sk_live_bearer" not in shown and "tok_live_secret" not in shown
    error: BaseException | None = info.value
    while error is not None:
        for text in (str(error), repr(error), repr(error.args)):
            assert "sk_live_bearer" not in text and "tok_live_secret" not in text
        assert error.__context__ is None or error.__context__ is error.__cause__
        error = error.__cause__
    assert "sk_live" not in repr(client)


# -- require -----------------------------------------------------------------------------------


async def test_require_refuses_a_request_without_the_fields_before_sending() -> None:
    handler = Recording()
    async with client_with(handler, require=NEWEST_API_REQUIRED) as client:
        assert client.require == ("account_ref_id", "address")
        with pytest.raises(ValidationError) as info:
            await client.create_session(REQUEST)
        assert info.value.field == "account_ref_id"
        assert "required by this client" in str(info.value)
        with_id = REQUEST.with_account_ref_id("merchant-1")
        with pytest.raises(ValidationError) as info:
            await client.create_session(with_id)
        assert info.value.field == "address"
    assert handler.requests == []  # nothing was sent


async def test_require_counts_the_clients_account_ref_id() -> None:
    handler = Recording()
    request = SessionRequest.sending(
        from_amount="50", from_currency="USD", to_currency="USDT-TRON", address=ADDRESS
    )
    async with client_with(
        handler, require=NEWEST_API_REQUIRED, account_ref_id="merchant-1"
    ) as client:
        await client.create_session(request)
    assert handler.bodies[0]["accountRefId"] == "merchant-1"
    assert handler.bodies[0]["address"] == ADDRESS


def test_session_request_itself_stays_lenient() -> None:
    assert REQUEST.account_ref_id is None and REQUEST.address is None  # built without them


@pytest.mark.parametrize(
    ("require", "words"),
    [
        ("address", "expected a tuple"),
        (7, "expected a tuple"),
        (("address", "wallet"), "'wallet' is not one"),
        (("allow_unlisted",), "is not one"),
        ([["address"]], "is not one"),
    ],
)
def test_a_bad_require_is_refused_at_construction(require: object, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncSession(require=require)  # type: ignore[arg-type]
    assert info.value.field == "require" and words in str(info.value)


def test_require_takes_any_field_once_in_order() -> None:
    client = AsyncSession(require=["webhook_ref", "address", "webhook_ref"])
    assert client.require == ("webhook_ref", "address")
    assert AsyncSession(require=()).require == AsyncSession().require == ()
