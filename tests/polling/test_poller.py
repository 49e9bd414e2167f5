"""The poll engine, blockchain/session status and BlockchainPoller, with a fake clock."""

from __future__ import annotations

import asyncio
import bisect
import gc
import itertools
import json
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from instax_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSession,
    AuthenticationError,
    BlockchainPoller,
    BlockchainStatus,
    InstaxError,
    MockTransport,
    NotFoundError,
    PollTimeoutError,
    RateLimitError,
    Request,
    Response,
    RetryPolicy,
    ServerError,
    SessionStatus,
    SessionStatusValue,
    ValidationError,
)
from instax_async.poller import RATE_CATCH_UP, RATE_MARGIN, _send_spacing
from instax_async.polling import PollOptions, poll
from instax_async.retry import is_transient, retry_after
from instax_async.serialization import MAX_JSON_DEPTH

NO_RETRY = RetryPolicy(max_retries=0)
PENDING = {"status": "pending"}
DONE = {"status": "completed", "hash": "0xfeed"}


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # others run first, at the time the sleep began; then the sleeper wakes up later
        await asyncio.sleep(0)
        self.now += max(0.0, seconds)


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, headers or {}, content)


def scripted(*answers: Response | Exception) -> tuple[Callable[[Request], Response], list[Request]]:
    """A handler that answers from a script (the last answer repeats) and records requests."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        item = answers[min(len(seen), len(answers)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def make_client(
    handler: Callable[[Request], Any], fake: FakeTime | None = None, **kwargs: Any
) -> AsyncSession:
    kwargs.setdefault("retry", NO_RETRY)
    client = AsyncSession(base_url="http://api.test", transport=MockTransport(handler), **kwargs)
    if fake is not None:
        client.requester.sleep = fake.sleep
        client.requester.clock = fake.clock
    return client


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


# -- the models ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["hash", "txHash", "transactionHash", "blockchainHash", "tx_hash"])
def test_hash_is_read_from_every_known_key_at_top_level_and_inside_data(key: str) -> None:
    assert BlockchainStatus.from_mapping("wd_1", {key: "0xa"}).hash == "0xa"
    assert BlockchainStatus.from_mapping("wd_1", {"data": {key: "0xb"}}).hash == "0xb"


def test_hash_lookup_order_blanks_and_non_strings() -> None:
    status = BlockchainStatus.from_mapping(
        "wd_1",
        {
            "hash": "  ",
            "txHash": None,
            "transactionHash": 12,
            "data": {"hash": "0xnested", "status": "confirmed"},
            "blockchainHash": " 0xtop ",
        },
    )
    assert status.hash == "0xtop"  # every top-level key before the nested object, stripped
    assert status.status == "confirmed"  # from data when the top level has none
    assert BlockchainStatus.from_mapping("t", {"data": "0xnot-an-object"}).hash is None
    assert BlockchainStatus.from_mapping("t", {"status": "ok", "data": {"status": "x"}}).status == (
        "ok"
    )


def test_blockchain_status_flags_and_equality() -> None:
    for word in ("failed", "REJECTED", "Error", "cancelled", "canceled"):
        status = BlockchainStatus(tx_id="t", status=word)
        assert status.is_failed and status.is_final and status.hash is None
    assert not BlockchainStatus(tx_id="t", status="pending").is_final
    assert not BlockchainStatus(tx_id="t").is_failed
    assert BlockchainStatus(tx_id="t", hash="0x1").is_final
    a = BlockchainStatus(tx_id="t", status="pending", raw={"checkedAt": 1})
    b = BlockchainStatus(tx_id="t", status="pending", raw={"checkedAt": 2})
    assert a == b and hash(a) == hash(b)  # raw is not part of a status change
    assert "raw" not in repr(a)


def test_session_status_flags() -> None:
    assert SessionStatus(session_status=SessionStatusValue.COMPLETED).is_terminal
    assert SessionStatus(session_status="failed").is_terminal  # a plain str counts too
    assert SessionStatus(session_status="failed").is_failed
    assert not SessionStatus(session_status="on_hold").is_terminal
    assert not SessionStatus().is_terminal
    assert not SessionStatus(session_status="pending").is_completed


# -- blockchain_status ---------------------------------------------------------------------


async def test_blockchain_status_encodes_the_tx_id_and_parses_the_answer() -> None:
    handler, seen = scripted(answer({"data": {"txHash": "0xabc"}, "status": "completed"}))
    async with make_client(handler, api_key="k") as client:
        status = await client.blockchain_status("a b&c/d?e")
    assert seen[0].url == "http://api.test/utils/blockchain-status?txId=a%20b%26c%2Fd%3Fe"
    assert seen[0].method == "GET" and seen[0].content == b""
    assert status == BlockchainStatus(tx_id="a b&c/d?e", hash="0xabc", status="completed")
    assert status.raw == {"data": {"txHash": "0xabc"}, "status": "completed"}


async def test_blockchain_status_keeps_decimals_exact_in_raw() -> None:
    handler, _ = scripted(answer(b'{"status": "pending", "fee": 0.1}'))
    async with make_client(handler) as client:
        status = await client.blockchain_status("wd_1")
    assert status.raw["fee"] == Decimal("0.1")


async def test_blockchain_status_is_retried_like_every_get() -> None:
    handler, seen = scripted(answer({}, 502), answer(DONE))
    client = make_client(handler, retry=RetryPolicy(max_retries=1, backoff_base=0.0))
    async with client:
        assert (await client.blockchain_status("wd_1")).hash == "0xfeed"
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (answer({"message": "no such tx"}, 404), NotFoundError),
        (answer(b"<html>", 200), APIStatusError),
        (answer([1, 2], 200), APIStatusError),
        (answer({"message": "bad key"}, 401), AuthenticationError),
    ],
)
async def test_blockchain_status_errors(response: Response, error: type[Exception]) -> None:
    handler, _ = scripted(response)
    async with make_client(handler) as client:
        with pytest.raises(error) as caught:
            await client.blockchain_status("wd_1")
    assert type(caught.value) is error


@pytest.mark.parametrize("tx_id", ["", "   ", None, 12, b"wd_1"])
async def test_blockchain_calls_refuse_a_bad_tx_id(tx_id: Any) -> None:
    handler, seen = scripted(answer(DONE))
    async with make_client(handler) as client:
        with pytest.raises(ValidationError, match="tx_id") as caught:
            await client.blockchain_status(tx_id)
        assert caught.value.field == "tx_id"
        with pytest.raises(ValidationError, match="tx_id"):
            client.poll_blockchain_status(tx_id)
        with pytest.raises(ValidationError, match="tx_id"):
            await client.wait_for_blockchain_hash(tx_id)
    assert seen == []


# -- session_status -------------------------------------------------------------------------

SESSION_BODY = (
    b'{"sessionId": "ps_1", "webhookRef": null, "address": "TR7NHq", "sessionStatus": "completed",'
    b' "depositId": "dp_1", "depositStatus": "completed", "depositStatusReason": null,'
    b' "withdrawalID": "wd_1", "withdrawStatus": "completed", "withdrawStatusReason": null,'
    b' "fromAmount": 50.10, "toAmount": "49.123456789", "fromCurrency": "USD",'
    b' "toCurrency": "USDT", "createdAt": "2024-05-01T10:00:00Z",'
    b' "updatedAt": "2024-05-01T10:05:00+02:00", "extra": {"kept": true}}'
)


async def test_session_status_parses_every_documented_field() -> None:
    handler, seen = scripted(answer(SESSION_BODY))
    async with make_client(handler, api_key="k-secret") as client:
        status = await client.session_status("ps_1/..")
    request = seen[0]
    assert request.url == "http://api.test/api/session/ps_1%2F../status"
    assert request.headers["x-api-key"] == "k-secret"
    assert status.session_id == "ps_1" and status.webhook_ref is None
    assert status.session_status is SessionStatusValue.COMPLETED and status.is_completed
    assert status.withdrawal_id == "wd_1" and status.deposit_id == "dp_1"
    assert status.from_amount == Decimal("50.10") and status.to_amount == Decimal("49.123456789")
    assert status.created_at == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert status.updated_at is not None and status.updated_at.utcoffset() is not None
    assert status.raw["extra"] == {"kept": True}
    assert "k-secret" not in repr(status) and "k-secret" not in repr(client)


async def test_session_status_tolerates_sparse_answers_and_unknown_statuses() -> None:
    handler, _ = scripted(answer({"sessionStatus": "on_hold"}))
    async with make_client(handler, api_key="k") as client:
        status = await client.session_status("ps_1")
    assert status.session_status == "on_hold" and not status.is_terminal
    assert status.from_amount is None and status.created_at is None


@pytest.mark.parametrize(
    "body",
    [b'{"fromAmount": "abc"}', b'{"createdAt": "yesterday"}', b'{"sessionStatus": 3}'],
)
async def test_a_malformed_session_status_is_an_api_status_error_with_the_body(
    body: bytes,
) -> None:
    handler, _ = scripted(answer(body))
    async with make_client(handler, api_key="k") as client:
        with pytest.raises(APIStatusError) as caught:
            await client.session_status("ps_1")
    assert caught.value.body == body and caught.value.status == 200
    assert "does not parse" in str(caught.value) and "$." in str(caught.value)


async def test_session_calls_need_an_api_key_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INSTAX_API_KEY", raising=False)
    handler, seen = scripted(answer(SESSION_BODY))
    async with make_client(handler) as client:
        with pytest.raises(ValidationError, match="api key") as caught:
            await client.session_status("ps_1")
        assert caught.value.field == "api_key"
        with pytest.raises(ValidationError, match="api key"):
            client.poll_session_status("ps_1")
        with pytest.raises(ValidationError, match="api key"):
            await client.wait_for_session("ps_1")
    assert seen == []


async def test_session_calls_refuse_a_bad_session_id() -> None:
    handler, seen = scripted(answer(SESSION_BODY))
    async with make_client(handler, api_key="k") as client:
        with pytest.raises(ValidationError, match="session_id"):
            await client.session_status("")
        with pytest.raises(ValidationError, match="session_id"):
            await client.wait_for_session(None)  # type: ignore[arg-type]
    assert seen == []


# -- the poll engine through poll_blockchain_status ---------------------------------------------


async def test_hash_after_n_pending_answers_yields_only_changes(fake: FakeTime) -> None:
    handler, seen = scripted(
        answer(PENDING), answer(PENDING), answer({"status": "broadcast"}), answer(DONE)
    )
    async with make_client(handler, fake) as client:
        statuses = [s async for s in client.poll_blockchain_status("wd_1", interval=1.0)]
    assert [s.status for s in statuses] == ["pending", "broadcast", "completed"]
    assert statuses[-1].hash == "0xfeed"
    assert len(seen) == 4
    assert len(fake.sleeps) == 3


async def test_waits_grow_by_backoff_up_to_max_interval_with_jitter(fake: FakeTime) -> None:
    handler, _ = scripted(*[answer(PENDING)] * 8, answer(DONE))
    async with make_client(handler, fake) as client:
        await client.wait_for_blockchain_hash("wd_1", interval=1.0, backoff=2.0, max_interval=10.0)
    expected = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert len(fake.sleeps) == len(expected)
    for wait, ceiling in zip(fake.sleeps, expected, strict=True):
        assert ceiling * 0.8 <= wait <= ceiling  # jitter only ever shortens a wait


async def test_backoff_of_one_polls_at_a_steady_interval(fake: FakeTime) -> None:
    handler, _ = scripted(*[answer(PENDING)] * 3, answer(DONE))
    async with make_client(handler, fake) as client:
        await client.wait_for_blockchain_hash("wd_1", interval=5.0, backoff=1)
    assert all(4.0 <= wait <= 5.0 for wait in fake.sleeps)


@pytest.mark.parametrize(
    "failure",
    [
        APIConnectionError("connection reset"),
        APITimeoutError("slow"),
        answer({}, 408),
        answer({"message": "slow down"}, 429),
        answer({}, 500),
        answer({}, 502),
        answer({}, 503),
        answer({}, 504),
    ],
)
async def test_transient_failures_are_retried_inside_the_poll(
    fake: FakeTime, failure: Response | Exception
) -> None:
    handler, seen = scripted(answer(PENDING), failure, failure, answer(DONE))
    async with make_client(handler, fake) as client:
        final = await client.wait_for_blockchain_hash("wd_1", interval=1.0)
    assert final.hash == "0xfeed" and len(seen) == 4


async def test_a_raw_transport_exception_is_wrapped_and_retried(fake: FakeTime) -> None:
    handler, seen = scripted(OSError("network down"), answer(DONE))
    async with make_client(handler, fake) as client:
        assert (await client.wait_for_blockchain_hash("wd_1")).hash == "0xfeed"
    assert len(seen) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_errors_raise_at_once(fake: FakeTime, status: int) -> None:
    handler, seen = scripted(answer(PENDING), answer({"message": "nope"}, status))
    async with make_client(handler, fake) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.wait_for_blockchain_hash("wd_1")
    assert caught.value.status == status and len(seen) == 2


@pytest.mark.parametrize(("status", "header"), [(429, "7"), (503, "7"), (429, "0")])
async def test_retry_after_is_honoured(fake: FakeTime, status: int, header: str) -> None:
    handler, _ = scripted(answer({}, status, {"Retry-After": header}), answer(DONE))
    async with make_client(handler, fake) as client:
        await client.wait_for_blockchain_hash("wd_1", interval=1.0)
    (wait,) = fake.sleeps
    if header == "0":
        assert 0.8 <= wait <= 1.0  # never less than the poll's own wait
    else:
        assert wait == 7.0


async def test_deadline_raises_poll_timeout_with_the_last_status(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING), answer({"status": "broadcast"}))
    start = fake.now
    async with make_client(handler, fake) as client:
        with pytest.raises(PollTimeoutError) as caught:
            await client.wait_for_blockchain_hash("wd_1", interval=2.0, backoff=2, timeout=30.0)
    error = caught.value
    assert isinstance(error, TimeoutError) and isinstance(error, InstaxError)
    assert error.last_status == BlockchainStatus(tx_id="wd_1", status="broadcast")
    assert "wd_1" in str(error) and "30 s" in str(error)
    assert fake.now == pytest.approx(start + 30.0)  # it waits until the deadline, not past it
    assert sum(fake.sleeps) == pytest.approx(30.0)
    assert len(seen) == len(fake.sleeps)  # the last wait ends at the deadline: no request after


async def test_deadline_with_no_answer_at_all_keeps_the_last_error_as_cause(
    fake: FakeTime,
) -> None:
    handler, _ = scripted(answer({}, 500))
    async with make_client(handler, fake) as client:
        with pytest.raises(PollTimeoutError, match="no answer arrived") as caught:
            await client.wait_for_blockchain_hash("wd_1", timeout=10.0)
    assert caught.value.last_status is None
    assert isinstance(caught.value.__cause__, ServerError)


async def test_a_retry_after_past_the_deadline_ends_at_the_deadline(fake: FakeTime) -> None:
    handler, seen = scripted(answer({}, 429, {"Retry-After": "3600"}))
    async with make_client(handler, fake) as client:
        with pytest.raises(PollTimeoutError) as caught:
            await client.wait_for_blockchain_hash("wd_1", timeout=60.0)
    assert fake.sleeps == [pytest.approx(60.0)] and len(seen) == 1
    assert isinstance(caught.value.__cause__, RateLimitError)


async def test_each_attempt_may_take_only_the_time_left(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING))
    async with make_client(handler, fake, timeout=30.0) as client:
        with pytest.raises(PollTimeoutError):
            await client.wait_for_blockchain_hash(
                "wd_1", interval=40.0, max_interval=40.0, timeout=45.0
            )
    first_wait = fake.sleeps[0]
    assert len(seen) == 2
    assert seen[0].timeout == 30.0  # the client's own timeout, when it is shorter
    assert seen[1].timeout == pytest.approx(45.0 - first_wait)  # else what is left


async def test_an_oversleep_past_the_deadline_ends_the_poll_before_another_request(
    fake: FakeTime,
) -> None:
    handler, seen = scripted(answer({}, 500))

    async def oversleep(seconds: float) -> None:
        fake.now += seconds + 100.0  # a loaded machine wakes up far too late

    async with make_client(handler, fake) as client:
        client.requester.sleep = oversleep
        with pytest.raises(PollTimeoutError) as caught:
            await client.wait_for_blockchain_hash("wd_1", timeout=10.0)
    assert len(seen) == 1 and isinstance(caught.value.__cause__, ServerError)


async def test_an_attempt_that_runs_past_the_deadline_ends_the_poll(fake: FakeTime) -> None:
    def slow(request: Request) -> Response:
        fake.now += 8.0  # this attempt takes most of what is left
        return answer({}, 500)

    async with make_client(slow, fake) as client:
        with pytest.raises(PollTimeoutError) as caught:
            await client.wait_for_blockchain_hash("wd_1", interval=1.0, timeout=10.0)
    assert isinstance(caught.value.__cause__, ServerError)


async def test_a_terminal_failure_ends_the_poll_and_is_returned(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING), answer({"status": "Rejected"}), answer(DONE))
    async with make_client(handler, fake) as client:
        final = await client.wait_for_blockchain_hash("wd_1")
    assert final.hash is None and final.is_failed and len(seen) == 2


async def test_until_chooses_the_goal(fake: FakeTime) -> None:
    handler, seen = scripted(
        answer({"status": "broadcast", "hash": "0x1"}),
        answer({"status": "confirmed", "hash": "0x1"}),
    )
    async with make_client(handler, fake) as client:
        final = await client.wait_for_blockchain_hash(
            "wd_1", until=lambda s: s.status == "confirmed"
        )
    assert final.status == "confirmed" and len(seen) == 2
    handler, _ = scripted(answer(PENDING))
    async with make_client(handler, fake) as client:
        with pytest.raises(PollTimeoutError, match="awaited blockchain status"):
            await client.wait_for_blockchain_hash("wd_1", until=lambda s: False, timeout=5)


OPTION_CASES: list[tuple[dict[str, Any], str]] = [
    ({"interval": 0}, "interval"),
    ({"interval": -1}, "interval"),
    ({"interval": float("nan")}, "interval"),
    ({"interval": True}, "interval"),
    ({"interval": "2"}, "interval"),
    ({"max_interval": 0}, "max_interval"),
    ({"interval": 5.0, "max_interval": 1.0}, "max_interval"),
    ({"backoff": 0.5}, "backoff"),
    ({"backoff": float("inf")}, "backoff"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": None}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"until": "hash"}, "until"),
]


@pytest.mark.parametrize(("options", "field"), OPTION_CASES)
async def test_poll_options_are_checked_before_any_request(
    options: dict[str, Any], field: str
) -> None:
    handler, seen = scripted(answer(DONE))
    async with make_client(handler, api_key="k") as client:
        for call in (client.poll_blockchain_status, client.poll_session_status):
            with pytest.raises(ValidationError) as caught:
                call("id_1", **options)
            assert caught.value.field == field
            assert field in str(caught.value)
        with pytest.raises(ValidationError):
            await client.wait_for_blockchain_hash("wd_1", **options)
        with pytest.raises(ValidationError):
            await client.wait_for_session("ps_1", **options)
    assert seen == []


def test_poll_options_messages_say_what_is_accepted() -> None:
    with pytest.raises(ValidationError, match=r"backoff: expected a finite number >= 1"):
        PollOptions(backoff=0.9)
    with pytest.raises(ValidationError, match="None would poll forever"):
        PollOptions(timeout=None)  # type: ignore[arg-type]
    assert PollOptions(interval=1, max_interval=1).step(1.0, lambda: 0.0) == (1.0, 1.0)


def test_transient_classification() -> None:
    assert is_transient(APITimeoutError("t"))
    assert is_transient(ServerError("s", status=599))
    assert not is_transient(NotFoundError("n", status=404))
    assert not is_transient(ValueError("v"))
    assert retry_after(RateLimitError("r", status=429, retry_after=3.0)) == 3.0
    assert retry_after(ServerError("s", status=503, headers={"retry-after": "4"})) == 4.0
    assert retry_after(ServerError("s", status=500, headers={"Retry-After": "4"})) is None


async def test_cancelling_a_wait_stops_it_and_sends_nothing_after(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING))
    gate = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        gate.set()
        await asyncio.sleep(3600)

    async with make_client(handler, fake) as client:
        client.requester.sleep = slow_sleep
        task = asyncio.create_task(client.wait_for_blockchain_hash("wd_1"))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sent = len(seen)
        for _ in range(20):
            await asyncio.sleep(0)
    assert sent == 1 and len(seen) == 1


async def test_breaking_out_of_a_poll_loop_and_closing_it(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING), answer({"status": "broadcast"}), answer(DONE))
    async with make_client(handler, fake) as client:
        updates = client.poll_blockchain_status("wd_1")
        async for status in updates:
            assert status.status == "pending"
            break
        await updates.aclose()
    assert len(seen) == 1


async def test_the_engine_uses_the_loop_clock_by_default() -> None:
    calls = 0

    async def fetch(left: float) -> int:
        nonlocal calls
        calls += 1
        assert 0 < left <= 5.0
        return calls

    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    seen = [
        n
        async for n in poll(
            fetch,
            stop=lambda n: n >= 3,
            options=PollOptions(timeout=5.0),
            subject="x",
            sleep=no_wait,
        )
    ]
    assert seen == [1, 2, 3] and len(sleeps) == 2


async def test_the_poll_respects_max_concurrency(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING), answer(DONE))
    async with make_client(handler, fake, max_concurrency=1) as client:
        assert (await client.wait_for_blockchain_hash("wd_1")).hash == "0xfeed"
    assert len(seen) == 2


async def test_a_closed_client_refuses_to_poll(fake: FakeTime) -> None:
    handler, seen = scripted(answer(DONE))
    client = make_client(handler, fake)
    await client.aclose()
    with pytest.raises(InstaxError, match="closed"):
        await client.wait_for_blockchain_hash("wd_1")
    assert seen == []


# -- sessions on the same engine --------------------------------------------------------------


async def test_wait_for_session_until_terminal(fake: FakeTime) -> None:
    handler, seen = scripted(
        answer({"sessionStatus": "initiated"}),
        answer({"sessionStatus": "pending"}),
        answer({"sessionStatus": "on_hold"}),  # unknown: not terminal
        answer({"sessionStatus": "failed", "depositStatusReason": "card declined"}),
    )
    async with make_client(handler, fake, api_key="k") as client:
        final = await client.wait_for_session("ps_1", interval=1.0)
    assert final.is_failed and final.deposit_status_reason == "card declined"
    assert len(seen) == 4 and all(r.headers["x-api-key"] == "k" for r in seen)


async def test_poll_session_status_yields_changes_and_honours_until(fake: FakeTime) -> None:
    handler, seen = scripted(
        answer({"sessionStatus": "pending"}),
        answer({"sessionStatus": "pending"}),
        answer({"sessionStatus": "processing"}),
        answer({"sessionStatus": "completed"}),
    )
    async with make_client(handler, fake, api_key="k") as client:
        statuses = [
            s.session_status
            async for s in client.poll_session_status(
                "ps_1", until=lambda s: s.session_status == "processing"
            )
        ]
    assert statuses == ["pending", "processing"] and len(seen) == 3


async def test_wait_for_session_times_out_with_the_last_status(fake: FakeTime) -> None:
    handler, _ = scripted(answer({"sessionStatus": "processing"}))
    async with make_client(handler, fake, api_key="k") as client:
        with pytest.raises(PollTimeoutError, match="session 'ps_1'") as caught:
            await client.wait_for_session("ps_1", timeout=20.0)
    assert caught.value.last_status.session_status == SessionStatusValue.PROCESSING


# -- BlockchainPoller -------------------------------------------------------------------------


def per_tx(script: dict[str, list[Response]]) -> tuple[Callable[[Request], Response], list[str]]:
    """A handler answering each tx id from its own script (last answer repeats)."""
    from urllib.parse import parse_qs, urlsplit

    asked: list[str] = []

    def handler(request: Request) -> Response:
        tx_id = parse_qs(urlsplit(request.url).query)["txId"][0]
        asked.append(tx_id)
        answers = script[tx_id]
        return answers[min(asked.count(tx_id), len(answers)) - 1]

    return handler, asked


def poller_for(client: AsyncSession, fake: FakeTime, **kwargs: Any) -> BlockchainPoller:
    return BlockchainPoller(client, sleep=fake.sleep, clock=fake.clock, **kwargs)


async def test_poller_watches_resolve_and_share_one_poll(fake: FakeTime) -> None:
    handler, asked = per_tx(
        {"a": [answer(PENDING), answer(PENDING), answer(DONE)], "b": [answer(DONE)]}
    )
    async with make_client(handler) as client, poller_for(client, fake) as poller:
        first, second, other = poller.watch("a"), poller.watch("a"), poller.watch("b")
        assert poller.watching == 2 and "watching=2 open" in repr(poller)
        results = await asyncio.gather(first, second, other)
        assert poller.watching == 0
    assert (
        results[0] == results[1] == BlockchainStatus(tx_id="a", hash="0xfeed", status="completed")
    )
    assert results[2].tx_id == "b"
    assert asked.count("a") == 3 and asked.count("b") == 1
    assert "closed" in repr(poller)


async def test_poller_errors_and_timeouts_belong_to_one_tx(fake: FakeTime) -> None:
    handler, asked = per_tx(
        {
            "gone": [answer({"message": "no such tx"}, 404)],
            "slow": [answer(PENDING)],
            "flaky": [answer({}, 500), answer({}, 429, {"Retry-After": "5"}), answer(DONE)],
            "failed": [answer({"status": "FAILED"})],
        }
    )
    async with (
        make_client(handler) as client,
        poller_for(client, fake, interval=1.0, timeout=60.0) as poller,
    ):
        gone, slow = poller.watch("gone"), poller.watch("slow")
        flaky, failed = poller.watch("flaky"), poller.watch("failed")
        results = await asyncio.gather(gone, slow, flaky, failed, return_exceptions=True)
    assert isinstance(results[0], NotFoundError)
    assert isinstance(results[1], PollTimeoutError)
    assert results[1].last_status == BlockchainStatus(tx_id="slow", status="pending")
    assert "'slow'" in str(results[1])
    assert isinstance(results[2], BlockchainStatus) and results[2].hash == "0xfeed"
    assert isinstance(results[3], BlockchainStatus) and results[3].is_failed
    assert asked.count("gone") == 1 and asked.count("flaky") == 3 and asked.count("failed") == 1


async def test_poller_timeout_never_polls_past_the_deadline(fake: FakeTime) -> None:
    handler, asked = per_tx({"slow": [answer(PENDING)]})
    start = fake.now
    async with (
        make_client(handler) as client,
        poller_for(client, fake, interval=4.0, backoff=1, timeout=9.0) as poller,
    ):
        with pytest.raises(PollTimeoutError):
            await poller.watch("slow")
        assert fake.now == pytest.approx(start + 9.0)  # raised at the deadline
    # at 0, after one wait and after two (3.2 to 4 s each); a third would be past the deadline
    assert len(asked) == 3


async def test_poller_updates_reports_every_change_and_ends_on_close(fake: FakeTime) -> None:
    handler, _ = per_tx(
        {"a": [answer(PENDING), answer(PENDING), answer(DONE)], "b": [answer({"status": "x"})]}
    )
    seen: list[tuple[str, str | None]] = []
    async with make_client(handler) as client:
        async with poller_for(client, fake, timeout=30.0) as poller:
            updates = poller.updates()

            async def consume() -> None:
                async for status in updates:
                    seen.append((status.tx_id, status.status))

            consumer = asyncio.create_task(consume())
            poller.watch("a")
            poller.watch("b")
            await poller.watch("a")
            for _ in range(5):
                await asyncio.sleep(0)
        await consumer
    assert ("a", "pending") in seen and ("a", "completed") in seen and ("b", "x") in seen
    assert len(seen) == 3
    assert await anext(updates, None) is None  # an ended iterator stays ended


async def test_an_update_stream_can_be_closed_early(fake: FakeTime) -> None:
    handler, _ = per_tx({"a": [answer(DONE)]})
    async with make_client(handler) as client, poller_for(client, fake) as poller:
        updates = poller.updates()
        await updates.aclose()  # type: ignore[attr-defined]
        assert await anext(updates, None) is None
        await poller.watch("a")
        assert len(poller._streams) == 0


async def test_leaving_the_block_cancels_outstanding_watches_cleanly(fake: FakeTime) -> None:
    handler, _ = per_tx({"a": [answer(PENDING)], "b": [answer(PENDING)]})
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        async with make_client(handler) as client:
            async with poller_for(client, fake, timeout=600.0) as poller:
                awaited = poller.watch("a")
                poller.watch("b")  # nobody ever awaits this one
                for _ in range(10):
                    await asyncio.sleep(0)
                tasks = list(poller._tasks)
            assert awaited.cancelled() and poller.watching == 0
            with pytest.raises(asyncio.CancelledError):
                await awaited
            assert len(tasks) >= 2 and all(task.done() for task in tasks)
            await poller.aclose()  # a second close does nothing
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert problems == []


async def test_an_unawaited_failed_watch_logs_nothing(fake: FakeTime) -> None:
    handler, _ = per_tx({"gone": [answer({}, 404)]})
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        async with make_client(handler) as client, poller_for(client, fake) as poller:
            poller.watch("gone")
            for _ in range(10):
                await asyncio.sleep(0)
            assert poller.watching == 0
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert problems == []


async def test_cancelling_every_waiter_of_a_tx_stops_its_poll(fake: FakeTime) -> None:
    handler, asked = per_tx({"a": [answer(PENDING)], "b": [answer(PENDING), answer(DONE)]})
    async with make_client(handler) as client, poller_for(client, fake, interval=1.0) as poller:
        one, two = poller.watch("a"), poller.watch("a")
        for _ in range(5):
            await asyncio.sleep(0)
        one.cancel()
        await asyncio.sleep(0)
        assert poller.watching == 1  # 'two' still waits
        two.cancel()
        await asyncio.sleep(0)
        assert poller.watching == 0
        sent = asked.count("a")
        await poller.watch("b")  # time moves on; 'a' is not asked again
        assert asked.count("a") == sent
        again = poller.watch("a")  # a new watch of the same id starts a new poll
        for _ in range(5):
            await asyncio.sleep(0)
        assert poller.watching == 1 and not again.done()
    assert asked.count("a") > sent


async def test_a_waiter_cancelled_while_its_request_is_out_drops_the_answer(
    fake: FakeTime,
) -> None:
    release = asyncio.Event()
    asked: list[str] = []

    async def handler(request: Request) -> Response:
        asked.append(request.url)
        await release.wait()
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake) as poller:
        waiter = poller.watch("a")
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(asked) == 1
        waiter.cancel()
        await asyncio.sleep(0)
        updates = poller.updates()
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert updates._queue.empty()  # type: ignore[attr-defined]
    assert len(asked) == 1


def busiest(times: list[float], window: float = 1.0) -> int:
    """The most of the sorted ``times`` in any closed window ``[t, t + window]``."""
    return max((bisect.bisect_right(times, t + window) - i for i, t in enumerate(times)), default=0)


async def test_poller_concurrency_and_even_rate(fake: FakeTime) -> None:
    in_flight = peak = 0
    times: list[float] = []

    async def handler(request: Request) -> Response:
        nonlocal in_flight, peak
        times.append(fake.now)
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        return answer(DONE)

    async with (
        make_client(handler) as client,
        poller_for(client, fake, concurrency=3, rate_limit=4) as poller,
    ):
        await asyncio.gather(*(poller.watch(f"tx{n}") for n in range(12)))
        assert 0 < len(poller._tasks) <= 1 + 3  # the dispatcher and at most 3 workers
    assert peak <= 3 and len(times) == 12
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # evenly spaced, a little over 1/rate_limit apart: never a burst, and never 5 in a second
    assert all(0.25 <= gap <= 0.257 for gap in gaps)
    assert busiest(times) == 4


async def test_the_rate_is_not_saved_up_while_idle(fake: FakeTime) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(fake.now)
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake, rate_limit=2) as poller:
        await poller.watch("a")
        await fake.sleep(100.0)  # a long quiet spell earns no burst
        await asyncio.gather(*(poller.watch(f"b{n}") for n in range(3)))
    assert times[1] - times[0] == pytest.approx(100.0)  # the first after the pause goes at once
    assert all(0.5 <= b - a <= 0.513 for a, b in itertools.pairwise(times[1:]))


@pytest.mark.parametrize(
    ("rate_limit", "window", "most"),
    [
        (10, 1.0, 10),
        (40, 1.0, 40),
        (200, 1.0, 200),
        (1000, 1.0, 1000),
        (2.5, 2.0, 5),  # 2.5 per second: 5 in any 2 s, and at most 3 (rounded up) in one
        (2.5, 1.0, 3),
        (0.5, 2.0, 1),  # one every 2 s
    ],
)
async def test_a_stalled_loop_never_sends_a_burst(
    fake: FakeTime, rate_limit: float, window: float, most: int
) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(fake.now)
        return answer(DONE)

    # the loop wakes the scheduler a little late, or very late (a stall), now and then
    lateness = itertools.cycle([0.0, 0.0004, 0.3, 0.0, 0.0019, 0.004, 0.0, 1.7, 0.001, 0.05])

    async def late_sleep(seconds: float) -> None:
        await fake.sleep(seconds)
        fake.now += next(lateness)

    count = int(max(1.2 * rate_limit, 12))
    async with (
        make_client(handler) as client,
        BlockchainPoller(
            client, rate_limit=rate_limit, concurrency=8, sleep=late_sleep, clock=fake.clock
        ) as poller,
    ):
        await asyncio.gather(*(poller.watch(f"tx{n}") for n in range(count)))
    assert len(times) == count
    assert busiest(times, window) <= most
    # no two requests closer than half their spacing, even right after a stall (up to 250/s:
    # faster, the loop's timers cannot keep such gaps, and the window alone holds)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= (0.5 / rate_limit if rate_limit <= 250 else 0.0)


@pytest.mark.parametrize("rate_limit", [40, 1000])
async def test_a_little_lateness_is_caught_up_so_the_rate_holds(
    fake: FakeTime, rate_limit: float
) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(fake.now)
        return answer(DONE)

    async def late_sleep(seconds: float) -> None:
        await fake.sleep(seconds)
        fake.now += 0.0004  # as the loop's timers are, now and then

    count = 200
    async with (
        make_client(handler) as client,
        BlockchainPoller(
            client, rate_limit=rate_limit, concurrency=8, sleep=late_sleep, clock=fake.clock
        ) as poller,
    ):
        await asyncio.gather(*(poller.watch(f"tx{n}") for n in range(count)))
    mean_gap = (times[-1] - times[0]) / (count - 1)
    # 1/rate_limit plus the margin (2.5 %), not 0.4 ms more for every request
    assert 1 / rate_limit < mean_gap < 1.026 / rate_limit
    assert busiest(times) <= rate_limit


async def test_a_new_watch_wakes_an_idle_scheduler(fake: FakeTime) -> None:
    handler, asked = per_tx({"slow": [answer(PENDING)], "quick": [answer(DONE)]})
    gate = asyncio.Event()
    sleeping: list[float] = []

    async def blocking_sleep(seconds: float) -> None:
        sleeping.append(seconds)
        gate.set()
        await asyncio.sleep(3600)  # only a wake-up can end this wait

    async with make_client(handler) as client:
        poller = BlockchainPoller(client, sleep=blocking_sleep, clock=fake.clock)
        async with poller:
            poller.watch("slow")
            await gate.wait()  # the scheduler now sleeps until 'slow' is due again
            assert (await asyncio.wait_for(poller.watch("quick"), 5)).hash == "0xfeed"
    assert asked == ["slow", "quick"] and len(sleeping) >= 1


async def test_a_failing_injected_sleep_fails_every_watch(fake: FakeTime) -> None:
    handler, _ = per_tx({"a": [answer(PENDING)]})

    async def broken_sleep(seconds: float) -> None:
        raise RuntimeError("sleep is broken")

    client = make_client(handler)
    async with client, BlockchainPoller(client, sleep=broken_sleep, clock=fake.clock) as poller:
        with pytest.raises(InstaxError, match="stopped: RuntimeError") as caught:
            await poller.watch("a")
        assert isinstance(caught.value.__cause__, RuntimeError)
        with pytest.raises(InstaxError, match="stopped after an error"):
            poller.watch("b")


async def test_a_watch_that_waited_past_its_deadline_is_not_sent(fake: FakeTime) -> None:
    handler, asked = per_tx({"a0": [answer(PENDING)], "a": [answer(DONE)]})
    async with (
        make_client(handler) as client,
        poller_for(client, fake, rate_limit=0.01, timeout=50.0) as poller,
    ):
        first, late = poller.watch("a0"), poller.watch("a")
        with pytest.raises(PollTimeoutError):
            await late  # its slot came 100 s after the first request
        first.cancel()
    assert asked.count("a") == 0


async def test_poller_with_the_real_clock() -> None:
    handler, asked = per_tx({"a": [answer(PENDING), answer(DONE)]})
    async with (
        make_client(handler) as client,
        BlockchainPoller(client, interval=0.001, rate_limit=1000) as poller,
    ):
        assert (await poller.watch("a")).hash == "0xfeed"
    assert len(asked) == 2


async def test_poller_lifecycle_errors() -> None:
    handler, _ = per_tx({})
    async with make_client(handler) as client:
        poller = BlockchainPoller(client)
        with pytest.raises(InstaxError, match="not running"):
            poller.watch("a")
        with pytest.raises(InstaxError, match="not running"):
            poller.updates()
        with pytest.raises(TypeError, match="async with"), poller:  # type: ignore[attr-defined]
            pass
        async with poller:
            with pytest.raises(ValidationError, match="tx_id"):
                poller.watch("")
        with pytest.raises(InstaxError, match="not running"):
            poller.watch("a")
        with pytest.raises(InstaxError, match="one 'async with' block"):
            async with poller:
                pass
        await BlockchainPoller(client).aclose()  # never entered: nothing to stop


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -5}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
        ({"rate_limit": "10"}, "rate_limit"),
        ({"interval": 0}, "interval"),
        ({"max_interval": 0.5, "interval": 1.0}, "max_interval"),
        ({"timeout": None}, "timeout"),
        ({"backoff": 0}, "backoff"),
        ({"sleep": 3}, "sleep"),
        ({"clock": "now"}, "clock"),
    ],
)
async def test_poller_options_are_checked(options: dict[str, Any], field: str) -> None:
    handler, _ = per_tx({})
    async with make_client(handler) as client:
        with pytest.raises(ValidationError) as caught:
            BlockchainPoller(client, **options)
    assert caught.value.field == field and field in str(caught.value)


def test_poller_needs_an_async_session() -> None:
    with pytest.raises(ValidationError, match="AsyncSession") as caught:
        BlockchainPoller("http://api.test")  # type: ignore[arg-type]
    assert caught.value.field == "session"


async def test_a_watch_dropped_while_it_waits_for_a_free_slot_is_never_sent(
    fake: FakeTime,
) -> None:
    release = asyncio.Event()
    asked: list[str] = []

    async def handler(request: Request) -> Response:
        asked.append(request.url.rsplit("=", 1)[1])
        await release.wait()
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake, concurrency=1) as poller:
        busy, waiting = poller.watch("a"), poller.watch("b")
        for _ in range(5):
            await asyncio.sleep(0)
        assert asked == ["a"]  # 'b' is out of the heap, waiting for the one slot
        waiting.cancel()
        release.set()
        assert (await busy).hash == "0xfeed"
        for _ in range(5):
            await asyncio.sleep(0)
    assert asked == ["a"]


async def test_a_waiter_cancelled_just_as_its_answer_arrives(fake: FakeTime) -> None:
    release = asyncio.Event()

    async def handler(request: Request) -> Response:
        await release.wait()
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake) as poller:
        dropped, kept = poller.watch("a"), poller.watch("a")
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()  # the answer is processed before the cancellation's callback runs
        dropped.cancel()
        assert (await kept).hash == "0xfeed"
        assert dropped.cancelled()


@pytest.mark.parametrize("rate_limit", [0.001, 0.5, 1, 2.5, 40, 249, 250, 260, 1000, 1e6])
def test_the_send_spacing_keeps_the_window_and_its_margin(rate_limit: float) -> None:
    spacing, catch_up, min_gap = _send_spacing(rate_limit)
    # any rate_limit + 1 successive sends span rate_limit * spacing - catch_up or more
    assert rate_limit * spacing - catch_up == pytest.approx(1 + RATE_MARGIN)
    assert catch_up == RATE_CATCH_UP
    assert min_gap == (spacing / 2 if rate_limit <= 250 else 0.0)
    assert _send_spacing(None) == (0.0, 0.0, 0.0)


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


async def test_among_due_watches_the_oldest_is_polled_first(fake: FakeTime) -> None:
    """A watch that had its first poll is polled again before younger watches have had theirs,
    so answers arrive in the order the watches were made instead of all at the end."""
    handler, asked = per_tx({tx: [answer(PENDING), answer(DONE)] for tx in "abc"})
    async with (
        make_client(handler) as client,
        # one request per 0.25 s, the poll interval shorter: several watches are due at once
        poller_for(client, fake, concurrency=1, rate_limit=4, interval=0.1) as poller,
    ):
        done: list[str] = []
        waiters = [poller.watch(tx) for tx in "abc"]
        for waiter in asyncio.as_completed(waiters):
            done.append((await waiter).tx_id)
    # a is due again when b's request has gone: a comes before c's first poll; before, every
    # first poll came before any second one (a, b, c, a, b, c). The same 6 requests.
    assert asked == ["a", "b", "a", "b", "c", "c"]
    assert done == ["a", "b", "c"]


def test_every_poll_method_takes_the_options_spelled_once() -> None:
    """The pacing keywords are PollOptions' fields, typed once (PollPacing) with PollOptions'
    defaults in their documentation; every poll method takes them as ``**options``."""
    import inspect
    import re

    import attrs

    from instax_async import AsyncSession, BlockchainPoller
    from instax_async.polling import (
        POLL_DEFAULTS,
        BlockchainPollOptions,
        PollPacing,
        SessionPollOptions,
    )

    pacing = set(PollPacing.__annotations__)
    assert pacing == set(attrs.fields_dict(PollOptions))
    for typed in (BlockchainPollOptions, SessionPollOptions):
        assert set(typed.__annotations__) == pacing | {"until", "on_attempt"}
    source = inspect.getsource(PollPacing)
    for name in pacing:
        documented = re.search(rf"{name}: float\n +\"\"\"[^\"]*?\(default\s+``([0-9.]+)``", source)
        assert documented and float(documented[1]) == getattr(POLL_DEFAULTS, name), name
    methods = {
        AsyncSession.poll_blockchain_status: "BlockchainPollOptions",
        AsyncSession.wait_for_blockchain_status: "BlockchainPollOptions",
        AsyncSession.wait_for_blockchain_hash: "BlockchainPollOptions",
        AsyncSession.poll_session_status: "SessionPollOptions",
        AsyncSession.wait_for_session_status: "SessionPollOptions",
        AsyncSession.wait_for_session: "SessionPollOptions",
        BlockchainPoller.__init__: "PollPacing",
    }
    for method, typed in methods.items():
        [options] = [
            parameter
            for parameter in inspect.signature(method).parameters.values()
            if parameter.kind is inspect.Parameter.VAR_KEYWORD
        ]
        assert options.annotation == f"Unpack[{typed}]", method
