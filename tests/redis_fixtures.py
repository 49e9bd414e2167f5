"""A real Redis for the integration tests.

``redis_url`` (session scope) is ``INSTAX_TEST_REDIS_URL`` when set (``.ci/run`` starts a
redis-server and sets it), else the URL of a ``redis-server`` started here on a free loopback
port and stopped after the session. With neither, the Redis tests are skipped — except under
``CI=true``, where a missing Redis fails them. ``redis_client`` flushes its database before and
after each test: point ``INSTAX_TEST_REDIS_URL`` only at a Redis whose data may be thrown away.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    import redis.asyncio

# redis is imported where it is used, so that this conftest-loaded module never breaks the
# collection of the other integration tests in an environment without the dev extra

REDIS_URL_ENV = "INSTAX_TEST_REDIS_URL"


def in_ci() -> bool:
    """True when the tests run in CI, where every service they need must be there."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip the test for lack of Redis; in CI, fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the Redis tests must run)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis answers PING at ``url``."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Linux: have the kernel stop the server if the test process dies without cleaning up."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port: no persistence, its own dir."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="instax-redis-")

    def start(self, attempts: int = 3) -> str:
        """Start it and wait until it answers; returns its URL (database 0)."""
        for _ in range(attempts):
            port = free_port()
            process = subprocess.Popen(
                [
                    self.binary,
                    *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                    *("--appendonly", "no", "--dir", self._dir.name, "--loglevel", "warning"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 5.0
            while process.poll() is None and time.monotonic() < deadline:
                if ping(url, timeout=0.2):
                    self.process, self.url = process, url
                    return url
                time.sleep(0.02)
            process.kill()  # the port was taken meanwhile, or it never answered: try another
            process.wait()
        raise RuntimeError(f"{self.binary} did not start on a loopback port")

    def stop(self) -> None:
        """Stop it (nothing is saved) and remove its directory."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - a redis-server that hangs
                self.process.kill()
                self.process.wait()
            self.process = None
        self._dir.cleanup()


def redis_server_binary() -> str | None:
    """The ``redis-server`` on PATH (or Debian's), if any."""
    return shutil.which("redis-server") or shutil.which("/usr/bin/redis-server")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis these tests may flush (see the module docstring)."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        if not ping(url):
            pytest.fail(f"{REDIS_URL_ENV}={url} does not answer PING", pytrace=False)
        yield url
        return
    binary = redis_server_binary()
    if binary is None:
        unavailable(
            f"no Redis: set {REDIS_URL_ENV} or install redis-server (apt-get install redis-server)"
        )
    server = RedisServer(binary)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client on an empty database, flushed again after the test."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
