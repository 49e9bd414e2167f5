"""``on_attempt``: every attempt of a poll, seen as it happens; and the regular method names."""

from __future__ import annotations

from itertools import accumulate
from typing import Any

import pytest

from instax_async import (
    APIConnectionError,
    BlockchainStatus,
    NotFoundError,
    PollTimeoutError,
    ServerError,
    SessionStatus,
    ValidationError,
)
from instax_async.polling import PollAttempt
from tests.polling.fakes import DONE, PENDING, FakeTime, answer, make_client, scripted


async def test_on_attempt_sees_every_answer_and_every_transient_failure(fake: FakeTime) -> None:
    failure = APIConnectionError("refused", connect_failed=True)
    handler, seen = scripted(
        answer(PENDING), failure, answer({}, 503), answer(PENDING), answer(DONE)
    )
    attempts: list[PollAttempt[BlockchainStatus]] = []
    async with make_client(handler, fake) as client:
        final = await client.wait_for_blockchain_status(
            "wd_1", interval=1.0, backoff=1.0, on_attempt=attempts.append
        )
    assert final.hash == "0xfeed" and len(seen) == 5
    assert [a.number for a in attempts] == [1, 2, 3, 4, 5]
    assert [a.status.status if a.status else None for a in attempts] == [
        "pending",
        None,
        None,
        "pending",
        "completed",
    ]
    assert attempts[1].error is failure
    assert isinstance(attempts[2].error, ServerError) and attempts[2].error.status == 503
    assert all(a.error is None for a in (attempts[0], attempts[3], attempts[4]))
    # the waits between them, as slept; none after the final status
    assert [a.next_wait for a in attempts[:4]] == fake.sleeps
    assert attempts[4].next_wait is None
    assert [a.elapsed for a in attempts] == pytest.approx([0.0, *accumulate(fake.sleeps)])
    assert all(a.duration == 0.0 for a in attempts)
    assert "number=2" in repr(attempts[1]) and "error=" in repr(attempts[1])


async def test_on_attempt_may_shorten_the_next_wait(fake: FakeTime) -> None:
    handler, seen = scripted(answer(PENDING), answer(PENDING), answer(DONE))

    def sooner(attempt: PollAttempt[BlockchainStatus]) -> None:
        if attempt.next_wait is not None:
            attempt.next_wait = 0.25

    async with make_client(handler, fake) as client:
        await client.wait_for_blockchain_status("wd_1", interval=5.0, on_attempt=sooner)
    assert fake.sleeps == [0.25, 0.25] and len(seen) == 3


async def test_the_deadline_still_holds_and_none_means_no_attempt_before_it(
    fake: FakeTime,
) -> None:
    handler, seen = scripted(answer(PENDING))
    waits: list[float | None] = []

    def later(attempt: PollAttempt[BlockchainStatus]) -> None:
        waits.append(attempt.next_wait)
        if attempt.next_wait is not None:
            attempt.next_wait = 100.0  # past the deadline: the poll waits for it and ends

    async with make_client(handler, fake) as client:
        with pytest.raises(PollTimeoutError) as caught:
            await client.wait_for_blockchain_status(
                "wd_1", interval=4.0, backoff=1.0, timeout=10.0, on_attempt=later
            )
    assert caught.value.last_status.status == "pending"
    assert len(seen) == 1 and waits[0] is not None and fake.sleeps == [10.0]
    handler, seen = scripted(answer(PENDING))
    fake.sleeps.clear()
    waits.clear()
    async with make_client(handler, fake) as client:
        with pytest.raises(PollTimeoutError):
            await client.wait_for_blockchain_status(
                "wd_1", interval=20.0, max_interval=20.0, timeout=10.0, on_attempt=later
            )
    assert waits == [None] and len(seen) == 1  # the first wait would pass the deadline


async def test_an_async_on_attempt_is_awaited(fake: FakeTime) -> None:
    handler, _ = scripted(answer(PENDING), answer(DONE))
    seen: list[int] = []

    async def record(attempt: PollAttempt[BlockchainStatus]) -> None:
        seen.append(attempt.number)
        attempt.next_wait = 0.5

    async with make_client(handler, fake) as client:
        await client.wait_for_blockchain_status("wd_1", on_attempt=record)
    assert seen == [1, 2] and fake.sleeps == [0.5]


async def test_what_on_attempt_raises_ends_the_poll_as_it_is(fake: FakeTime) -> None:
    class Enough(Exception):
        pass

    handler, seen = scripted(APIConnectionError("refused"))

    def give_up(attempt: PollAttempt[BlockchainStatus]) -> None:
        if attempt.number == 2:
            raise Enough

    async with make_client(handler, fake) as client:
        with pytest.raises(Enough):
            await client.wait_for_blockchain_status("wd_1", on_attempt=give_up)
    assert len(seen) == 2


async def test_an_error_that_is_not_transient_ends_the_poll_without_an_attempt(
    fake: FakeTime,
) -> None:
    handler, _ = scripted(answer(PENDING), answer({"message": "gone"}, 404))
    attempts: list[PollAttempt[BlockchainStatus]] = []
    async with make_client(handler, fake) as client:
        with pytest.raises(NotFoundError):
            await client.wait_for_blockchain_status("wd_1", on_attempt=attempts.append)
    assert [a.number for a in attempts] == [1]


@pytest.mark.parametrize("bad", [-1.0, "soon", float("nan"), True])
async def test_a_next_wait_set_to_no_number_of_seconds_is_refused(fake: FakeTime, bad: Any) -> None:
    handler, _ = scripted(answer(PENDING))

    def set_wait(attempt: PollAttempt[BlockchainStatus]) -> None:
        attempt.next_wait = bad

    async with make_client(handler, fake) as client:
        with pytest.raises(ValidationError, match="next_wait") as caught:
            await client.wait_for_blockchain_status("wd_1", on_attempt=set_wait)
    assert caught.value.field == "next_wait"


async def test_the_options_are_checked_before_any_request(fake: FakeTime) -> None:
    handler, seen = scripted(answer(DONE))
    async with make_client(handler, fake, api_key="k") as client:
        with pytest.raises(ValidationError) as caught:
            client.poll_blockchain_status("wd_1", on_attempt="print")  # type: ignore[arg-type]
        assert caught.value.field == "on_attempt"
        with pytest.raises(ValidationError) as caught:
            await client.wait_for_session_status("ps_1", until=3)  # type: ignore[arg-type]
        assert caught.value.field == "until"
        with pytest.raises(
            TypeError,
            match=r"poll_blockchain_status\(\) got an unexpected keyword argument 'intervall'",
        ):
            client.poll_blockchain_status("wd_1", intervall=1.0)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'until'"):
            from instax_async import BlockchainPoller

            BlockchainPoller(client, until=None)  # type: ignore[call-arg]
    assert seen == []


async def test_the_regular_names_and_their_aliases_give_the_same_final_status(
    fake: FakeTime,
) -> None:
    failed = {"status": "failed"}
    handler, _ = scripted(answer(PENDING), answer(failed))
    async with make_client(handler, fake) as client:
        status = await client.wait_for_blockchain_status("wd_1")
    handler, _ = scripted(answer(PENDING), answer(failed))
    async with make_client(handler, fake) as client:
        alias = await client.wait_for_blockchain_hash("wd_1")
    assert status == alias and status.hash is None and status.is_failed  # a failed payout
    session = {"sessionStatus": "completed"}
    handler, _ = scripted(answer({"sessionStatus": "pending"}), answer(session))
    async with make_client(handler, fake, api_key="k") as client:
        done = await client.wait_for_session_status("ps_1")
        again = await client.wait_for_session("ps_1")
    assert done == again and isinstance(done, SessionStatus) and done.is_completed
