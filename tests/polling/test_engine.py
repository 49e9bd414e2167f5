"""The poll engine, through the client's poll and wait methods: pace, transient errors, one
deadline, the options."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from instax_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSession,
    BlockchainPoller,
    BlockchainStatus,
    InstaxError,
    NotFoundError,
    PollTimeoutError,
    RateLimitError,
    Request,
    Response,
    ServerError,
    SessionStatusValue,
    ValidationError,
)
from instax_async.polling import PollOptions, poll
from instax_async.retry import is_transient, retry_after
from tests.polling.fakes import (
    DONE,
    PENDING,
    FakeTime,
    answer,
    make_client,
    scripted,
)

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


def test_every_poll_method_takes_the_options_spelled_once() -> None:
    """The pacing keywords are PollOptions' fields, typed once (PollPacing) with PollOptions'
    defaults in their documentation; every poll method takes them as ``**options``."""
    import inspect
    import re

    import attrs

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
