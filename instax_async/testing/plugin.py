"""The pytest plugin: fixtures that run the sandbox and a webhook receiver for each test.

pytest loads this module through the ``pytest11`` entry point named ``instax_async`` in every
project where ``instax-async`` is installed, so importing it must cost next to nothing: it
imports pytest, pytest-asyncio (both loaded by then), and the :mod:`instax_async` and
:mod:`instax_async.testing` packages, which import their public names on first use; the models,
aiohttp and the sandbox load when a fixture first runs. ``-p no:instax_async`` turns the
plugin off.

The fixtures are function-scoped, so every test starts from a fresh sandbox:

- ``instax_webhooks`` — a started :class:`~instax_async.testing.WebhookRecorder`;
- ``instax_sandbox`` — a started :class:`~instax_async.sandbox.Sandbox` whose webhooks go to
  ``instax_webhooks``, signed with its secret, configured with :data:`SANDBOX_TEST_DEFAULTS`
  and then with the options of ``@pytest.mark.instax_sandbox(**options)``;
- ``instax_client`` — an :class:`~instax_async.AsyncSession` on ``instax_sandbox.url`` with the
  api key ``sk_test_sandbox``, closed after the test.

The first two are declared with ``pytest_asyncio.fixture``, which pytest-asyncio runs in
``strict`` mode (tests marked ``@pytest.mark.asyncio``) and in ``auto`` mode alike, in the event
loop its ``asyncio_default_fixture_loop_scope`` setting selects. That loop may not be the test's
(a fixture loop scope of ``session``, a test marked ``loop_scope="module"``), and it waits while
the test runs: so the recorder and the sandbox each run in an event loop of their own, in a
thread of their own, and answer whichever loop the test runs in. ``instax_client`` is a plain
fixture: its client sends from the test's loop and is closed there (see ``_client``). Without an
active pytest-asyncio a test that requests a fixture fails with a message saying what to install.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..client import AsyncSession
    from ..sandbox import Sandbox, SandboxConfig
    from ._recorder import WebhookRecorder

__all__ = [
    "CLIENT_API_KEY",
    "SANDBOX_TEST_DEFAULTS",
    "instax_client",
    "instax_sandbox",
    "instax_webhooks",
]

#: The api key ``instax_client`` sends (the sandbox accepts any key unless ``api_key`` is set).
CLIENT_API_KEY = "sk_test_sandbox"

#: What ``instax_sandbox`` changes in :class:`~instax_async.sandbox.SandboxConfig`'s defaults:
#: payouts confirmed after one pending poll, redeliveries within milliseconds, and a fixed seed
#: so that fault injection (``error_rate``, ``rate_limit_rate``) rolls the same way on every run
#: (``seed=None`` in the marker makes it random). No artificial delays, as in the defaults.
SANDBOX_TEST_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "confirmation_polls": 1,
        "confirmation_delay": 0.0,
        "latency": 0.0,
        "webhook_backoff": 0.01,
        "seed": 0,
    }
)

_MARKER = "instax_sandbox"
_FIXTURES = frozenset({"instax_webhooks", "instax_sandbox"})  # instax_client needs the latter
_NEEDS_PYTEST_ASYNCIO = (
    "the {name} fixture is async and needs pytest-asyncio (0.23 or later): "
    "pip install pytest-asyncio, then mark async tests with @pytest.mark.asyncio or set "
    "asyncio_mode = auto"
)


def _async_fixture(function: Callable[..., Any]) -> Any:
    try:
        from pytest_asyncio import fixture
    except ImportError:  # pragma: no cover - pytest-asyncio is a dev dependency
        # pytest_fixture_setup below fails such a fixture with an explanation before it runs.
        return pytest.fixture(function)
    return fixture(function)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``instax_sandbox`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): SandboxConfig fields that replace the test defaults of the "
        "instax_sandbox fixture for this test, e.g. error_rate=0.3, rate_limit_rate=0.1",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    """Fail a test that uses an async fixture of this plugin without an active pytest-asyncio."""
    if fixturedef.argname not in _FIXTURES:
        return
    module = sys.modules.get("pytest_asyncio.plugin")
    if module is None or not request.config.pluginmanager.is_registered(module):
        pytest.fail(_NEEDS_PYTEST_ASYNCIO.format(name=fixturedef.argname), pytrace=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test marked ``instax_sandbox`` that never starts the sandbox (a silent no-op)."""
    marked = any(mark.name == _MARKER for mark in item.own_markers)
    if marked and _MARKER not in getattr(item, "fixturenames", ()):
        pytest.fail(
            f"@pytest.mark.{_MARKER} configures the instax_sandbox fixture, which "
            f"{item.name} does not use (directly or through instax_client)",
            pytrace=False,
        )


def _sandbox_config(node: Any, webhooks: WebhookRecorder) -> SandboxConfig:
    """The sandbox configuration for ``node``: test defaults, then its markers' options.

    Markers closer to the test win (a function's over its class's over its module's).
    Fails the test when an option is not a ``SandboxConfig`` field or has a bad value.
    """
    import attrs

    from ..sandbox import SandboxConfig

    options: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers(_MARKER))):
        if mark.args:
            pytest.fail(
                f"@pytest.mark.{_MARKER} takes keyword options only (SandboxConfig fields), "
                f"got positional {mark.args!r}",
                pytrace=False,
            )
        options.update(mark.kwargs)
    known = list(attrs.fields_dict(SandboxConfig))
    for name in sorted(options):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            pytest.fail(
                f"@pytest.mark.{_MARKER}: unknown option {name!r}; {hint}"
                f"the options are SandboxConfig fields: {', '.join(known)}",
                pytrace=False,
            )
    settings = {
        **SANDBOX_TEST_DEFAULTS,
        "webhook_url": webhooks.url,
        "webhook_secret": webhooks.secret,
        **options,
    }
    try:
        return SandboxConfig(**settings)
    except ValidationError as exc:
        pytest.fail(f"@pytest.mark.{_MARKER}: {exc}", pytrace=False)


@_async_fixture
async def instax_webhooks() -> AsyncIterator[WebhookRecorder]:
    """A webhook receiver on a free loopback port that verifies and records every delivery.

    ``url``, ``secret``, ``events``, ``refused`` and ``await wait_for(session_id=..., status=...,
    reference=..., timeout=5.0)``: see :class:`~instax_async.testing.WebhookRecorder`.
    """
    from ._loop_thread import serve_in_thread
    from ._recorder import WebhookRecorder

    async with serve_in_thread(WebhookRecorder(), "instax_webhooks") as recorder:
        yield recorder


@_async_fixture
async def instax_sandbox(
    request: pytest.FixtureRequest, instax_webhooks: WebhookRecorder
) -> AsyncIterator[Sandbox]:
    """A started sandbox on a free port, delivering signed webhooks to ``instax_webhooks``.

    Settle a session with ``await instax_sandbox.complete(session_id)`` or
    ``await instax_sandbox.fail(session_id, reason="Do Not Honor")``. Configure it for one test
    with ``@pytest.mark.instax_sandbox(**options)`` (``SandboxConfig`` fields).
    """
    from ..sandbox import Sandbox
    from ._loop_thread import serve_in_thread

    config = _sandbox_config(request.node, instax_webhooks)
    async with serve_in_thread(Sandbox(config), "instax_sandbox") as sandbox:
        yield sandbox


@pytest.fixture
def instax_client(instax_sandbox: Sandbox) -> Iterator[AsyncSession]:
    """An ``AsyncSession`` for ``instax_sandbox``, closed after the test.

    Its api key is ``sk_test_sandbox``; the sandbox accepts any key unless the marker sets one.
    Its checkout URLs are the sandbox's ``/embed/{id}`` pages, whatever ``INSTAX_CHECKOUT_URL``
    the shell running the tests holds. It sends from whichever event loop the test runs in, and
    is closed in that loop.
    """
    from ..client import AsyncSession
    from ._client import LoopTrackingTransport, close_client

    transport = LoopTrackingTransport()
    client = AsyncSession(
        base_url=instax_sandbox.url,
        api_key=CLIENT_API_KEY,
        transport=transport,
        checkout_url="{base_url}/embed/{id}",
    )
    yield client
    close_client(client, transport)
