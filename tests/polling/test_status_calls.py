"""The status models and the single reads: blockchain_status and session_status."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from instax_async import (
    APIStatusError,
    AuthenticationError,
    BlockchainStatus,
    NotFoundError,
    Response,
    RetryPolicy,
    SessionStatus,
    SessionStatusValue,
    ValidationError,
)
from tests.polling.fakes import (
    DONE,
    answer,
    make_client,
    scripted,
)

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
