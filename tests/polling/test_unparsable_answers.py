"""Answers the SDK cannot parse, however pathological, on every status call and poll."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from instax_async import (
    APIStatusError,
    PollTimeoutError,
    RetryPolicy,
    ServerError,
)
from instax_async.serialization import MAX_JSON_DEPTH
from tests.polling.fakes import (
    FakeTime,
    answer,
    make_client,
    poller_for,
    scripted,
)

# -- bodies the SDK cannot parse, however pathological -------------------------------------

DEEP_BODIES = {
    "100k [": b"[" * 100_000,
    "100k {a:": b'{"a":' * 100_000,
    "limit + 1": b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
}
JUST_UNDER = b'{"status": "pending", "x": ' + b"[" * 127 + b"]" * 127 + b"}"


def _is_unparsable_200(error: BaseException, body: bytes) -> bool:
    return (
        type(error) is APIStatusError
        and error.status == 200
        and error.body == body
        and "not JSON" in str(error)
    )


@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
async def test_a_deeply_nested_answer_is_an_api_status_error_on_every_call(
    fake: FakeTime, body: bytes
) -> None:
    handler, _ = scripted(answer(body))
    async with make_client(handler, fake, api_key="k") as client:
        calls = {
            "blockchain_status": lambda: client.blockchain_status("wd_1"),
            "session_status": lambda: client.session_status("ps_1"),
            "wait_for_blockchain_hash": lambda: client.wait_for_blockchain_hash("wd_1"),
            "wait_for_session": lambda: client.wait_for_session("ps_1"),
            "poll": lambda: _last(client.poll_blockchain_status("wd_1")),
        }
        for name, call in calls.items():
            with pytest.raises(APIStatusError) as caught:
                await call()
            assert _is_unparsable_200(caught.value, body), name
        async with poller_for(client, fake, timeout=10) as poller:
            outcome = await asyncio.gather(poller.watch("wd_1"), return_exceptions=True)
        assert _is_unparsable_200(outcome[0], body)


async def _last(stream: Any) -> Any:
    async for _item in stream:  # pragma: no cover - the stream fails before its first item
        pass


@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
async def test_a_deeply_nested_error_answer_is_a_server_error_with_the_body(
    fake: FakeTime, body: bytes
) -> None:
    handler, seen = scripted(answer(body, 500))
    async with make_client(handler, fake, api_key="k", retry=RetryPolicy(max_retries=1)) as client:
        for call in (client.blockchain_status, client.session_status):
            with pytest.raises(ServerError) as caught:
                await call("x_1")
            assert caught.value.body == body and caught.value.status == 500
            assert str(caught.value).startswith("InstaXchange answered HTTP 500 (")
        # a poll retries a 5xx until its deadline; the last error is the cause
        with pytest.raises(PollTimeoutError) as timed_out:
            await client.wait_for_blockchain_hash("wd_1", timeout=10)
        assert isinstance(timed_out.value.__cause__, ServerError)
        assert timed_out.value.__cause__.body == body
        async with poller_for(client, fake, timeout=10) as poller:
            outcome = await asyncio.gather(poller.watch("wd_1"), return_exceptions=True)
        assert isinstance(outcome[0], PollTimeoutError)
    assert len(seen) > 4


async def test_an_answer_nested_just_under_the_limit_is_read(fake: FakeTime) -> None:
    handler, _ = scripted(answer(JUST_UNDER))
    async with make_client(handler, fake, api_key="k") as client:
        status = await client.blockchain_status("wd_1")
        assert status.status == "pending"
        assert status.raw["x"] == json.loads(b"[" * 127 + b"]" * 127)
        session = await client.session_status("ps_1")
        assert session.raw["status"] == "pending"
