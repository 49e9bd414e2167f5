"""``instax demo``: the SDK's whole job against a local sandbox, checked step by step."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiohttp import web

from .._compat import timeout as timeout_scope
from ..client import AsyncSession
from ..errors import InstaxError
from ..models import PaymentSession, WebhookEvent
from ..payloads import SessionRequest
from ._core import run
from ._output import json_text, session_record, shown, terminal_text

__all__ = ["DEMO_SECRET", "DemoFailure", "cmd_demo", "run_demo"]


# -- demo ------------------------------------------------------------------------------------

DEMO_SECRET = "demo-webhook-secret"


class DemoFailure(Exception):
    """A step of the demo did not check out."""


async def run_demo(
    out: list[str] | None = None,
    *,
    step_timeout: float = 10.0,
    echo: bool = True,
    report: dict[str, Any] | None = None,
) -> int:
    """The SDK's whole job on one machine: sessions, checkout, webhooks, payout hash.

    Starts the sandbox and a webhook receiver on free loopback ports, creates a sending and a
    receiving session concurrently, pays one and declines the other, verifies both webhooks,
    waits for the paid one's blockchain hash with the poller, and prints a summary. Returns 0
    only if every step checked out. ``echo=False`` prints nothing (the lines still go to
    ``out``); ``report`` is filled with the outcome as data (``instax demo --json``).
    """
    from ..integrations.aiohttp import webhook_handler
    from ..poller import BlockchainPoller
    from ..sandbox import Sandbox, SandboxConfig

    lines: list[str] = [] if out is None else out
    data: dict[str, Any] = {} if report is None else report
    data.update(ok=False, sandbox=None, webhooks=None, sessions=[], failed_step=None, error=None)

    def say(line: str) -> None:
        lines.append(line)
        if echo:
            print(line, flush=True)

    finals: dict[str, WebhookEvent] = {}
    arrived = asyncio.Event()

    def on_event(event: WebhookEvent) -> None:
        if event.session_id and (event.is_completed or event.is_failed):
            finals[event.session_id] = event
            arrived.set()

    receiver = web.Application()
    receiver.router.add_post("/webhooks/instax", webhook_handler(DEMO_SECRET, on_event))
    receiver_runner = web.AppRunner(receiver, access_log=None, shutdown_timeout=0.5)
    await receiver_runner.setup()
    step = "start the webhook receiver"
    try:
        await web.TCPSite(receiver_runner, "127.0.0.1", 0).start()
        hook_url = f"http://127.0.0.1:{receiver_runner.addresses[0][1]}/webhooks/instax"
        config = SandboxConfig(
            webhook_url=hook_url, webhook_secret=DEMO_SECRET, confirmation_polls=2
        )
        step = "start the sandbox"
        async with (
            Sandbox(config) as sandbox,
            AsyncSession(base_url=sandbox.url, api_key="demo-key", timeout=step_timeout) as client,
        ):
            data.update(sandbox=sandbox.url, webhooks=hook_url)
            say(f"sandbox   {shown(sandbox.url)}")
            say(f"webhooks  {shown(hook_url)}")
            step = "create a sending and a receiving session"
            sending, receiving = await asyncio.gather(
                client.create_session(
                    SessionRequest.sending(
                        from_amount="50.00",
                        from_currency="USD",
                        to_currency="USDT-TRON",
                        address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
                        webhook_ref="order-1001",
                    )
                ),
                client.create_session(
                    SessionRequest.receiving(
                        to_amount="10",
                        from_currency="EUR",
                        to_currency="USDC",
                        webhook_ref="order-1002",
                    )
                ),
            )
            for label, session in (("sending", sending), ("receiving", receiving)):
                say(f"{label:<9} {shown(session.id)}  checkout: {shown(session.iframe_url)}")
            step = "pay the sending session and decline the receiving one"
            paid: dict[str, Any]
            paid, _ = await asyncio.gather(sandbox.complete(sending.id), sandbox.fail(receiving.id))
            step = "receive and verify both webhooks"

            async def both_webhooks() -> None:
                while not {sending.id, receiving.id} <= finals.keys():
                    arrived.clear()
                    await arrived.wait()

            async with timeout_scope(step_timeout):
                await both_webhooks()
            paid_event, declined_event = finals[sending.id], finals[receiving.id]
            if not paid_event.is_completed or not declined_event.is_failed:
                raise DemoFailure(
                    f"webhook statuses were {paid_event.status} and {declined_event.status}"
                )
            step = "wait for the paid payout's blockchain hash"
            tx_id = paid_event.withdraw_tx_id or paid["withdraw_tx_id"]
            async with BlockchainPoller(client, interval=0.1, timeout=step_timeout) as poller:
                payout = await poller.watch(tx_id)
            if not payout.hash:
                raise DemoFailure(f"the payout ended as {payout.status!r} without a hash")
            say("")
            rows = [
                ("session", "direction", "amounts", "status", "webhook", "payout hash"),
                _demo_row(sending, paid_event, payout.hash),
                _demo_row(receiving, declined_event, None),
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            data["sessions"] = [
                _demo_record(sending, paid_event, payout.hash),
                _demo_record(receiving, declined_event, None),
            ]
    except BrokenPipeError:
        raise  # the reader went away: nothing left to tell anyone
    except (InstaxError, DemoFailure, TimeoutError, asyncio.TimeoutError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        data.update(failed_step=step, error=f"{type(exc).__name__}: {detail}")
        say(f"demo failed at step '{step}': {type(exc).__name__}: {terminal_text(detail)}")
        return 1
    finally:
        await receiver_runner.cleanup()
    data["ok"] = True
    say("")
    say("demo ok: every step checked out")
    return 0


def _demo_row(
    session: PaymentSession, event: WebhookEvent, payout_hash: str | None
) -> tuple[str, str, str, str, str, str]:
    amounts = (
        f"{shown(session.from_amount)} {shown(session.from_currency)} -> "
        f"{shown(session.to_amount)} {shown(session.to_currency)}"
    )
    status = shown(event.status)
    if event.data.status_reason:
        status += f" ({shown(event.data.status_reason)})"
    short_hash = shown(f"{payout_hash[:10]}…{payout_hash[-6:]}" if payout_hash else None)
    direction = shown(session.amount_direction)
    return (shown(session.id), direction, amounts, status, "verified", short_hash)


def _demo_record(
    session: PaymentSession, event: WebhookEvent, payout_hash: str | None
) -> dict[str, Any]:
    """A session of ``instax demo --json``, under the names ``instax session status --json``
    uses for the same things."""
    return session_record(
        session.id,
        event.status,
        (session.from_amount, session.from_currency, session.to_amount, session.to_currency),
        amount_direction=None
        if session.amount_direction is None
        else str(session.amount_direction),
        status_reason=event.data.status_reason,
        withdraw_tx_id=event.withdraw_tx_id,
        webhook_verified=True,
        payout_hash=payout_hash,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.json:
        return run(run_demo())
    report: dict[str, Any] = {}
    code = run(run_demo(echo=False, report=report))
    print(json_text(report))
    return code
