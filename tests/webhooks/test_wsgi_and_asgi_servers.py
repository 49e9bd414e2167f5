"""The Django and Flask receivers in real server processes: gunicorn with threads (Django,
WSGI), Werkzeug's development server (Flask, threaded) and uvicorn (Django, ASGI).

Each process serves :mod:`tests.webhooks.webhook_apps`, whose ``on_event`` fails once for
each reference starting with ``crash-once``. What a test sees is what InstaXchange would:
the answers, including those to two signature headers sent on the wire.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instax_async.sandbox.events import webhook_payload
from instax_async.serialization import dumps
from instax_async.webhooks import SIGNATURE_HEADER, sign
from tests.webhooks.webhook_apps import CRASH_ONCE, SECRET

pytestmark = pytest.mark.subprocess  # each server runs as a process of its own

ROOT = Path(__file__).resolve().parents[2]
APPS = "tests.webhooks.webhook_apps"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server started with ``command`` (``{port}`` filled in), up until :meth:`stop`."""

    def __init__(self, *command: str) -> None:
        self.port = _free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": APPS}
        self._process = subprocess.Popen(
            [sys.executable, *(part.format(port=self.port) for part in command)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        output = self.output()
        self.stop()
        raise AssertionError(f"{command[:3]} did not start:\n{output}")

    def output(self) -> str:
        """What the server wrote (for a failure's message)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a server that hangs
                self._process.kill()
                self._process.wait()
        self._log.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def raw(self, request: bytes, pause_after: int | None = None) -> bytes:
        """Send ``request`` as bytes (sleeping a second after its first ``pause_after``
        bytes); the answer's status line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            if pause_after is None:
                sock.sendall(request)
            else:
                sock.sendall(request[:pause_after])
                time.sleep(1)
                sock.sendall(request[pause_after:])
            return sock.makefile("rb").readline()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    running = ServerProcess(*request.param)
    try:
        yield running
    finally:
        running.stop()


def _body(reference: str) -> bytes:
    return dumps(webhook_payload(reference=reference))


def _signed(body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(body, SECRET)}


def _check_a_receiver(server: ServerProcess, path: str) -> None:
    body = _body(f"order-{path}")
    assert server.post(path, body, _signed(body)) == (200, {"status": "ok"})
    assert server.post(path, body, _signed(body)) == (200, {"status": "duplicate"})
    crash = _body(f"{CRASH_ONCE}-{path}")
    assert server.post(path, crash, _signed(crash))[0] == 500
    assert server.post(path, crash, _signed(crash)) == (200, {"status": "ok"})
    assert server.post(path, crash, _signed(crash)) == (200, {"status": "duplicate"})
    status, answer = server.post(path, body, {})
    assert status == 401 and "missing" in answer["error"]
    twice = (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{SIGNATURE_HEADER}: {sign(body, SECRET)}\r\n"
        f"{SIGNATURE_HEADER}: {sign(body, SECRET)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    assert server.raw(twice).split(b" ")[1] == b"400"


GUNICORN = ("-m", "gunicorn", "--threads", "4", "-b", "127.0.0.1:{port}", f"{APPS}:django_wsgi")
FLASK_DEV = ("-c", f"from {APPS} import flask_app; flask_app.run(port={{port}}, threaded=True)")
UVICORN = ("-m", "uvicorn", "--port", "{port}", "--log-level", "warning", f"{APPS}:django_asgi")


@pytest.mark.parametrize("server", [GUNICORN], indirect=True, ids=["gunicorn-threads"])
def test_django_under_gunicorn_with_threads(server: ServerProcess) -> None:
    _check_a_receiver(server, "/hook")
    _check_a_receiver(server, "/hook-async-handler")
    # a body that arrives after body_timeout (0.5 s here) is answered 408, not handled
    body = _body("slow")
    slow = (
        f"POST /hook-slow-body HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        f"{SIGNATURE_HEADER}: {sign(body, SECRET)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    assert server.raw(slow, pause_after=len(slow) - 100).split(b" ")[1] == b"408"


@pytest.mark.parametrize("server", [FLASK_DEV], indirect=True, ids=["flask-dev-server"])
def test_flask_under_its_development_server(server: ServerProcess) -> None:
    _check_a_receiver(server, "/hook")
    _check_a_receiver(server, "/hook-async-handler")


@pytest.mark.parametrize("server", [UVICORN], indirect=True, ids=["uvicorn"])
def test_django_under_uvicorn(server: ServerProcess) -> None:
    _check_a_receiver(server, "/async-hook")
    _check_a_receiver(server, "/async-hook-sync-handler")
    _check_a_receiver(server, "/hook")  # the sync view, which Django runs in a thread
