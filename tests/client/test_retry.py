from __future__ import annotations

import email.utils
from typing import Any

import pytest

from instax_async.retry import parse_retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after({"Retry-After": header}, now=now) == pytest.approx(42.0)
    past = email.utils.formatdate(now - 42, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": email.utils.formatdate(usegmt=True)}) is not None


# -- one rule for what is transient ------------------------------------------------------------

TRANSIENT = [408, 429, 500, 502, 503, 504, 506, 507, 511, 520, 521, 522, 523, 524, 599]
PERMANENT = [400, 401, 403, 404, 409, 422, 501, 505]


@pytest.mark.parametrize("status", TRANSIENT)
def test_these_statuses_are_transient(status: int) -> None:
    from instax_async import APIStatusError
    from instax_async.errors import status_error_class
    from instax_async.retry import RETRYABLE_GET_STATUSES, is_transient

    assert is_transient(status_error_class(status)("x", status=status))
    assert status in RETRYABLE_GET_STATUSES
    assert is_transient(APIStatusError("x", status=status))


@pytest.mark.parametrize("status", PERMANENT)
def test_these_statuses_are_not(status: int) -> None:
    from instax_async.errors import status_error_class
    from instax_async.retry import RETRYABLE_GET_STATUSES, is_transient

    assert not is_transient(status_error_class(status)("x", status=status))
    assert status not in RETRYABLE_GET_STATUSES


def test_connection_failures_are_transient_and_a_body_too_large_never_is() -> None:
    from instax_async import APIConnectionError, APITimeoutError, ResponseTooLargeError
    from instax_async.retry import is_transient

    assert is_transient(APIConnectionError("refused")) and is_transient(APITimeoutError("slow"))
    assert not is_transient(ResponseTooLargeError("big", status=503))
    assert not is_transient(ValueError("not the SDK's"))


def _answering(statuses: list[int]) -> tuple[list[str], Any]:
    from instax_async import MockTransport, Request, Response

    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.method)
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        body = b'{"id": "ps_1", "status": "pending", "hash": "0xabc"}'
        return Response(status, {}, body if status < 300 else b'{"message": "no"}')

    return seen, MockTransport(handler)


@pytest.mark.parametrize(("status", "calls"), [(501, 1), (505, 1), (520, 3), (524, 3), (500, 3)])
async def test_a_get_retries_exactly_the_transient_statuses(status: int, calls: int) -> None:
    from instax_async import AsyncSession, RetryPolicy, ServerError

    seen, transport = _answering([status])
    policy = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)
    async with AsyncSession(base_url="http://api.test", transport=transport, retry=policy) as c:
        with pytest.raises(ServerError):
            await c.blockchain_status("wd_1")
    assert len(seen) == calls


@pytest.mark.parametrize("status", [520, 500])
async def test_a_post_still_retries_only_what_cannot_have_been_processed(status: int) -> None:
    from instax_async import AsyncSession, RetryPolicy, ServerError, SessionRequest

    seen, transport = _answering([status, 201])
    request = SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
    policy = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)
    async with AsyncSession(base_url="http://api.test", transport=transport, retry=policy) as c:
        with pytest.raises(ServerError):
            await c.create_session(request)
    assert seen == ["POST"]


@pytest.mark.parametrize("status", [501, 505])
async def test_a_poll_ends_at_once_on_501_and_505_as_a_single_read_does(status: int) -> None:
    from instax_async import AsyncSession, ServerError

    seen, transport = _answering([status, 200])
    async with AsyncSession(base_url="http://api.test", transport=transport, max_retries=0) as c:
        with pytest.raises(ServerError) as caught:
            await c.wait_for_blockchain_hash("wd_1", interval=0.01, timeout=5.0)
    assert caught.value.status == status and seen == ["GET"]


async def test_a_poll_goes_on_after_a_cdn_520() -> None:
    from instax_async import AsyncSession

    seen, transport = _answering([520, 200])
    async with AsyncSession(base_url="http://api.test", transport=transport, max_retries=0) as c:
        status = await c.wait_for_blockchain_hash("wd_1", interval=0.01, timeout=5.0)
    assert status.hash == "0xabc" and seen == ["GET", "GET"]
