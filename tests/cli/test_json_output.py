"""The command line's ``--json`` output speaks one language, and every option says what it does.

In every document: keys in snake_case (the API's own answer, under ``response``, keeps its
keys), amounts as strings of the exact decimal, never JSON numbers; ``session create``,
``session status`` and ``demo`` name the same things the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from instax_async.cli import main
from instax_async.cli._parser import build_parser
from instax_async.sandbox import Sandbox, SandboxConfig

SNAKE = re.compile(r"[a-z][a-z0-9_]*").fullmatch
#: The names of a payment session that every command's record shares.
SESSION_NAMES = {"session_id", "status", "from_amount", "from_currency", "to_amount", "to_currency"}


def keys_outside_response(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            if key != "response":
                yield from keys_outside_response(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_outside_response(item)


def numbers(value: Any, path: str = "") -> Iterator[str]:
    """The path of every JSON number (not a bool) anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{path}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path


def assert_one_language(document: dict[str, Any]) -> None:
    bad_keys = [key for key in keys_outside_response(document) if not SNAKE(key)]
    assert bad_keys == [], bad_keys
    assert list(numbers(document)) == [], document


async def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code = await asyncio.to_thread(main, [*argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    document = json.loads(out)
    assert_one_language(document)
    return document


async def test_session_create_status_and_demo_share_names_and_exact_amounts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Sandbox(SandboxConfig(api_key="sk_json")) as sandbox:
        base = ["--base-url", sandbox.url, "--api-key", "sk_json"]
        create = ["session", "create", "--amount", "50", "--from", "USD", "--to", "USDT"]
        created = await cli_json([*create, *base], capsys)
        assert created["from_amount"] == "50" and created["to_amount"] == "48.5"
        assert created["amount_direction"] == "sending" and created["status"] == "initiated"
        assert created["iframe_url"] == f"{sandbox.url}/embed/{created['session_id']}"
        # the API's answer, with its own keys: every number there is an exact string too
        assert created["response"]["from_amount"] == "50"
        assert created["response"]["to_amount"] == "48.5"

        session_id = created["session_id"]
        settled = await sandbox.complete(session_id)
        status = await cli_json(["session", "status", session_id, *base], capsys)
        assert status["response"]["fromAmount"] == "50"  # a JSON number 50 in the answer
        assert status["response"]["toAmount"] == "48.5"
        assert status["withdraw_tx_id"] == settled["withdraw_tx_id"]
        assert status["status"] == "completed" and status["deposit_status"] == "completed"

        payout = await cli_json(["status", settled["withdraw_tx_id"], *base], capsys)
        assert set(payout) == {"tx_id", "status", "hash", "response"}

    demo = await cli_json(["demo"], capsys)
    paid, declined = demo["sessions"]
    assert set(status) & set(created) & set(paid) >= SESSION_NAMES
    assert {"amount_direction", "withdraw_tx_id"} <= set(paid) & set(declined)
    assert "amount_direction" in created and "withdraw_tx_id" in status
    for name in ("from_amount", "to_amount"):
        for record in (created, status, paid, declined):
            assert isinstance(record[name], str) and Decimal(record[name]) > 0
    assert paid["from_amount"] == "50.00" and declined["to_amount"] == "10"
    assert (paid["status"], declined["status"]) == ("completed", "failed")


async def test_create_with_a_checkout_template_and_account_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTAX_ACCOUNT_REF_ID", "merchant-env")
    async with Sandbox() as sandbox:
        base = ["--base-url", sandbox.url]
        create = ["session", "create", "--amount", "5", "--from", "USD", "--to", "USDT"]
        created = await cli_json(
            [*create, *base, "--checkout-url", "{base_url}/order/{id}"], capsys
        )
        assert created["iframe_url"] == f"{sandbox.url}/order/{created['session_id']}"
        assert created["response"]["merchant_account_id"] == "merchant-env"
        created = await cli_json([*create, *base, "--account-ref-id", "merchant-arg"], capsys)
        assert created["response"]["merchant_account_id"] == "merchant-arg"
        code = await asyncio.to_thread(main, [*create, *base, "--checkout-url", "http://x/{id}"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("instax: --checkout-url (or INSTAX_CHECKOUT_URL): ")


def test_webhook_verify_json_has_exact_amounts_and_is_paid(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from instax_async.sandbox.events import webhook_payload
    from instax_async.serialization import dumps
    from instax_async.webhooks import sign

    body = dumps(webhook_payload(status="completed"))
    path = tmp_path / "body.json"
    path.write_bytes(body)
    argv = ["webhook", "verify", "--secret", "s", "--signature", sign(body, "s"), str(path)]
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert_one_language(document)
    assert document["amount_in_fiat"] == "3.74" and document["is_paid"] is True


def subcommands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, Any]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help_text() -> None:
    missing = []
    commands = list(subcommands(build_parser(), "instax"))
    assert "instax doctor" in {path for path, _ in commands}
    for path, parser in commands:
        for action in parser._actions:
            # every option and argument; the choice of subcommand lists the subcommands' help
            if action.help is None and not isinstance(action, argparse._SubParsersAction):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_sandbox_help_offers_strict(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--help"])
    out = capsys.readouterr().out
    assert "--strict" in out and "--webhook-url" in out and "none are sent" in out


def test_an_api_answer_has_every_number_as_its_exact_decimal_string() -> None:
    from datetime import datetime

    from instax_async.cli._output import api_body

    answer = {
        "fromAmount": 50,
        "toAmount": Decimal("48.50"),
        "quotes": [1, 2.5, Decimal("1E+2"), True, None, "x", {"fee": float("nan")}],
        "rate": float("-inf"),
        "spread": Decimal("NaN"),
    }
    assert api_body(answer) == {
        "fromAmount": "50",
        "toAmount": "48.50",
        "quotes": ["1", "2.5", "1E+2", True, None, "x", {"fee": None}],
        "rate": None,
        "spread": None,
    }
    moment = datetime(2026, 1, 1)
    assert api_body(moment) is moment  # not from JSON: left for json_text to write
