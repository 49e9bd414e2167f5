"""Small behaviours: errors, transports' reprs and guards, the sandbox's validation, __main__."""

from __future__ import annotations

import runpy
import subprocess
import sys
from typing import Any

import pytest

from instax_async import (
    APIStatusError,
    InstaxError,
    MockTransport,
    PollTimeoutError,
    Request,
    Response,
)
from instax_async import cli as cli_module
from instax_async.errors import status_error_class
from instax_async.sandbox import SandboxConfig, create_app
from instax_async.serialization import converter
from instax_async.transports.httpx import HttpxTransport
from tests.conftest import StartServer


def test_poll_timeout_error_is_a_timeout_error_with_the_last_status() -> None:
    error = PollTimeoutError("no hash after 600 s", last_status={"status": "pending"})
    assert isinstance(error, TimeoutError) and isinstance(error, InstaxError)
    assert error.last_status == {"status": "pending"}


def test_status_error_class_for_unlisted_status() -> None:
    assert status_error_class(418) is APIStatusError


def test_transport_reprs_and_guards() -> None:
    def handler(request: Request) -> Response:
        return Response(200, {}, b"{}")

    assert "handler" in repr(MockTransport(handler))
    with pytest.raises(TypeError, match="callable"):
        MockTransport("nope")  # type: ignore[arg-type]
    assert "owned" in repr(HttpxTransport())


async def test_open_enum_hook_reraises_for_non_strings() -> None:
    from instax_async.payloads import AmountDirection

    with pytest.raises(Exception):  # noqa: B017 - cattrs may wrap the ValueError
        converter.structure(3, AmountDirection)
    assert converter.structure("sideways", AmountDirection) == "sideways"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, None),
        (b"[1]", 400, None),
        (b'{"colour": "red"}', 400, "colour"),
        (
            b'{"amountDirection": "sending", "fromCurrency": "USD", "toCurrency": "USDT"}',
            400,
            "from_amount",
        ),
        (
            b'{"amountDirection": "sending", "fromCurrency": "XYZ", "toCurrency": "USDT",'
            b' "fromAmount": 5}',
            400,
            "from_currency",
        ),
    ],
)
async def test_sandbox_rejects_bad_session_bodies(
    start_server: StartServer, body: bytes, status: int, field: str | None
) -> None:
    import aiohttp

    base_url = await start_server(create_app(SandboxConfig()))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/api/session", data=body) as response,
    ):
        assert response.status == status
        data: dict[str, Any] = await response.json()
    assert data["field"] == field
    assert data["message"]


async def test_demo_reports_a_failing_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instax_async.sandbox import Sandbox

    async def refuse(self: Sandbox, session_id: str, *args: object) -> dict[str, object]:
        raise InstaxError("card network unavailable")

    monkeypatch.setattr(Sandbox, "fail", refuse)
    assert await cli_module.run_demo() == 1
    out = capsys.readouterr().out
    assert "demo failed at step 'pay the sending session and decline the receiving one'" in out
    assert "card network unavailable" in out


async def test_demo_reports_a_missing_webhook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instax_async.cli import _demo

    monkeypatch.setattr(_demo, "DEMO_SECRET", "not-the-receivers-secret")
    from instax_async.sandbox import app as sandbox_app

    original = sandbox_app.sign
    monkeypatch.setattr(sandbox_app, "sign", lambda body, secret: original(body, "wrong"))
    assert await cli_module.run_demo(step_timeout=0.5) == 1
    assert "demo failed at step 'receive and verify both webhooks'" in capsys.readouterr().out


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["instax", "demo"])
    # pytest rewrites the asserts of every package that ships a pytest plugin, this one
    # included, and its rewriting import hook cannot serve runpy (pytest-dev/pytest#9007).
    finders = [f for f in sys.meta_path if type(f).__name__ != "AssertionRewritingHook"]
    monkeypatch.setattr(sys, "meta_path", finders)
    with pytest.raises(SystemExit) as info:
        runpy.run_module("instax_async", run_name="__main__")
    assert info.value.code == 0


def test_every_public_name_resolves_lazily_and_matches_all() -> None:
    import instax_async

    assert set(instax_async._LAZY) == set(instax_async.__all__) - {"__version__"}
    for name in instax_async.__all__:
        assert getattr(instax_async, name) is not None
    assert set(instax_async.__all__) <= set(dir(instax_async))
    with pytest.raises(AttributeError, match="no_such_name"):
        instax_async.no_such_name  # noqa: B018


def test_importing_the_package_or_the_pytest_plugin_loads_nothing_heavy() -> None:
    code = (
        "import sys, instax_async, instax_async.testing, instax_async.testing.plugin\n"
        "heavy = ['aiohttp', 'attrs', 'cattrs', 'instax_async.models', 'instax_async.client']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_client_and_a_request_load_no_cattrs_until_a_model_is_structured() -> None:
    code = (
        "import sys\n"
        "from instax_async import AsyncSession, SessionRequest\n"
        "import instax_async.webhooks\n"
        "print('cattrs' in sys.modules, 'opentelemetry' in sys.modules)\n"
        "from instax_async.serialization import converter, get_converter\n"
        "print('cattrs' in sys.modules, converter is get_converter())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False", "True", "True"]


def test_the_client_import_builds_nothing_a_client_does_not_need_yet() -> None:
    # The webhook and status models, jsjson, MockTransport and the poll engine (PollOptions)
    # load on first use. (retry.py, one module with the transient rule the requester applies,
    # loads with the client: RetryPolicy costs less than a split by load time would save.)
    code = (
        "import sys\n"
        "from instax_async import AsyncSession, SessionRequest\n"
        "lazy = ['instax_async._webhook_models', 'instax_async._status_models',\n"
        "        'instax_async.jsjson', 'instax_async.transports.mock',\n"
        "        'instax_async.polling']\n"
        "print([name for name in lazy if name in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_names_loaded_on_first_use_resolve_from_their_public_homes() -> None:
    import importlib

    from instax_async import jsjson, models, serialization, transports
    from instax_async.transports import mock

    for name, home in models._LAZY.items():
        assert getattr(models, name) is getattr(importlib.import_module(home, "instax_async"), name)
    assert set(models.__all__) <= set(dir(models))
    assert serialization.MAX_JSON_DEPTH == jsjson.MAX_JSON_DEPTH
    assert transports.MockTransport is mock.MockTransport
    for module in (models, serialization, transports):
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name  # noqa: B018


def test_the_testing_package_resolves_its_names_lazily() -> None:
    import instax_async.testing as testing

    assert callable(testing.make_webhook) and testing.WebhookRecorder.__name__ == "WebhookRecorder"
    with pytest.raises(AttributeError, match="nothing"):
        testing.nothing  # noqa: B018
