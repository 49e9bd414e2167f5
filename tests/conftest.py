"""Shared fixtures: real aiohttp servers on 127.0.0.1 with random ports."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from hypothesis import settings

from tests.redis_fixtures import redis_client, redis_url

__all__ = ["StartServer", "redis_client", "redis_url"]

# The machine running the suite is shared and its speed varies: hypothesis's per-example
# deadline (200 ms) would turn a slow moment into a failure that says nothing about the code.
settings.register_profile("instax", deadline=None)
settings.load_profile("instax")

# pytester runs the plugin's own tests. The plugin itself is loaded here rather than through its
# entry point, which pyproject.toml turns off for this suite: pytest imports entry-point plugins,
# and with them this package, before pytest-cov starts measuring, so the package's module-level
# code would count as never run. (Loaded already when that option is overridden: not again.)
pytest_plugins = ["pytester"]
if "instax_async.testing.plugin" not in sys.modules:
    pytest_plugins.append("instax_async.testing.plugin")

StartServer = Callable[[web.Application], Awaitable[str]]

# What a test needs beyond this process, as markers (registered in pyproject.toml); each of them
# also makes the test "slow", so that ``pytest -m "not slow"`` is the quick loop. Redis is found
# by the fixtures a test asks for; the others are marked where the tests are.
_SLOW_MARKERS = ("redis", "browser", "node", "subprocess")
_REDIS_FIXTURES = {"redis_url", "redis_client"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)
        if any(item.get_closest_marker(name) for name in _SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start an ``aiohttp.web`` app on a free loopback port; yields a starter returning its URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


class _StubStreamWriter:
    output_size = 0


def _aioresponses_compat() -> None:
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument
    (pnuckowski/aioresponses#289); give its responses one until a fixed release exists."""
    import inspect

    import aioresponses.core
    from aiohttp import ClientResponse

    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return  # pragma: no cover - aiohttp < 3.14

    class CompatClientResponse(ClientResponse):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("stream_writer", _StubStreamWriter())
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[misc]


_aioresponses_compat()
