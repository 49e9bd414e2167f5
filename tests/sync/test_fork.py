"""A ``Client`` across ``os.fork()``: gunicorn ``--preload`` and Celery's prefork pool.

The client is built and used in the parent, and is busy there (a poll on another thread) when
the process forks. The child's calls work, on connections of its own; the parent's go on, on
the connection it had before the fork: the child neither used nor closed it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import warnings

import pytest

from instax_async import Client, Request
from tests.sync.conftest import REQUEST, ThreadServer

pytestmark = [
    pytest.mark.subprocess,  # forks this process
    pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform"),
]


def _mark_process(request: Request) -> None:
    request.headers["x-pid"] = str(os.getpid())


def _fork_and_call(client: Client) -> tuple[int, list[str]]:
    """Fork; in the child, make three calls with ``client`` and report their session ids."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock the child: the
        # client's own lock is made anew there, which is what this test shows
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's lines are measured in no coverage file
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(30)  # a child that hangs ends, and the test fails rather than hangs
        code = 1
        try:
            ids = [client.create_session(REQUEST).id for _ in range(3)]
            client.close()
            os.write(write, json.dumps(ids).encode())
            code = 0
        except BaseException as exc:
            os.write(write, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return pid, json.loads(output)


def test_a_client_used_in_the_parent_works_in_a_forked_child_and_still_in_the_parent(
    server: ThreadServer,
) -> None:
    server.pending_polls = 10**6  # the parent's poll goes on until it is closed
    client = Client(base_url=server.url, event_hooks={"request": [_mark_process]})
    parent = str(os.getpid())
    assert client.create_session(REQUEST).id == "ps_1"
    polling = threading.Event()
    stop = threading.Event()

    def poll_in_the_parent() -> None:
        with client.poll_blockchain_status("wd_1", interval=0.01) as statuses:
            next(statuses)
            polling.set()
            stop.wait(30)

    poller = threading.Thread(target=poll_in_the_parent)
    poller.start()
    polling.wait(10)
    before_fork = len(server.seen)
    child, child_ids = _fork_and_call(client)
    assert len(child_ids) == 3 and len(set(child_ids)) == 3
    stop.set()
    poller.join(10)
    assert client.create_session(REQUEST).id not in child_ids
    client.close()

    parent_ports = {seen.port for seen in server.seen if seen.pid == parent}
    child_ports = {seen.port for seen in server.seen if seen.pid == str(child)}
    assert child_ports, server.seen
    assert child_ports.isdisjoint(parent_ports)  # no socket shared
    # after the fork the parent went on with the connections it had: the child left them open
    before = {seen.port for seen in server.seen[:before_fork] if seen.pid == parent}
    after = {seen.port for seen in server.seen[before_fork:] if seen.pid == parent}
    assert after and after <= before
