"""The ``instax`` command line (also ``python -m instax_async``).

Exit status: 0 on success, 1 when the API, a receiver or a verification said no, 2 for bad
input (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from aiohttp import web

from . import AsyncSession, SessionRequest
from ._compat import timeout as timeout_scope
from .errors import InstaxError, ValidationError, WebhookVerificationError
from .models import WebhookEvent

__all__ = ["main"]


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(data, default=str, ensure_ascii=False))
    else:
        print(text)


# -- demo ------------------------------------------------------------------------------------

DEMO_SECRET = "demo-webhook-secret"


class DemoFailure(Exception):
    """A step of the demo did not check out."""


async def run_demo(out: list[str] | None = None, *, step_timeout: float = 10.0) -> int:
    """The SDK's whole job on one machine: sessions, checkout, webhooks, payout hash.

    Starts the sandbox and a webhook receiver on free loopback ports, creates a sending and a
    receiving session concurrently, pays one and declines the other, verifies both webhooks,
    waits for the paid one's blockchain hash with the poller, and prints a summary. Returns 0
    only if every step checked out.
    """
    from .integrations.aiohttp import webhook_handler
    from .polling import BlockchainPoller
    from .sandbox import Sandbox, SandboxConfig

    lines: list[str] = [] if out is None else out

    def say(line: str) -> None:
        lines.append(line)
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
            say(f"sandbox   {sandbox.url}")
            say(f"webhooks  {hook_url}")
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
                say(f"{label:<9} {session.id}  checkout: {session.iframe_url}")
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
                _demo_row(sending.id, sending.raw, paid_event, payout.hash),
                _demo_row(receiving.id, receiving.raw, declined_event, None),
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    except (InstaxError, DemoFailure, TimeoutError, asyncio.TimeoutError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        say(f"demo failed at step '{step}': {type(exc).__name__}: {detail}")
        return 1
    finally:
        await receiver_runner.cleanup()
    say("")
    say("demo ok: every step checked out")
    return 0


def _demo_row(
    session_id: str, raw: Any, event: WebhookEvent, payout_hash: str | None
) -> tuple[str, str, str, str, str, str]:
    amounts = (
        f"{raw['from_amount']} {raw['from_currency']} -> {raw['to_amount']} {raw['to_currency']}"
    )
    status = str(event.status)
    if event.data.status_reason:
        status += f" ({event.data.status_reason})"
    short_hash = f"{payout_hash[:10]}…{payout_hash[-6:]}" if payout_hash else "-"
    return (session_id, str(raw["payment_direction"]), amounts, status, "verified", short_hash)


def _cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(run_demo())


# -- sessions and payouts ----------------------------------------------------------------------


def _client(args: argparse.Namespace) -> AsyncSession:
    return AsyncSession(api_key=args.api_key, base_url=args.base_url, timeout=args.timeout)


# SessionRequest fields and the ``session create`` options that set them.
_CREATE_FLAGS = {
    "from_amount": "--amount",
    "to_amount": "--amount",
    "from_currency": "--from",
    "to_currency": "--to",
    "address": "--address",
    "webhook_ref": "--webhook-ref",
    "return_url": "--return-url",
    "account_ref_id": "--account-ref-id",
    "method": "--method",
    "email": "--email",
    "country": "--country",
}


def _cmd_session_create(args: argparse.Namespace) -> int:
    optional = {
        key: value
        for key, value in (
            ("address", args.address),
            ("webhook_ref", args.webhook_ref),
            ("return_url", args.return_url),
            ("account_ref_id", args.account_ref_id),
            ("method", args.method),
            ("email", args.email),
            ("country", args.country),
        )
        if value is not None
    }
    if args.allow_unlisted:
        optional["allow_unlisted"] = True
    try:
        if args.direction == "sending":
            request = SessionRequest.sending(
                from_amount=args.amount,
                from_currency=args.from_currency,
                to_currency=args.to_currency,
                **optional,
            )
        else:
            request = SessionRequest.receiving(
                to_amount=args.amount,
                from_currency=args.from_currency,
                to_currency=args.to_currency,
                **optional,
            )
    except ValidationError as exc:
        # Name the option the user typed, not the SessionRequest field behind it.
        field = exc.field or ""
        flag = _CREATE_FLAGS.get(field, field)
        detail = str(exc).removeprefix(f"{field}: ")
        raise UsageError(f"instax: {flag}: {detail}" if flag else f"instax: {detail}") from None

    async def create() -> Any:
        async with _client(args) as client:
            return await client.create_session(request)

    session = asyncio.run(create())
    _emit(
        args,
        {"id": session.id, "iframe_url": session.iframe_url, "response": session.raw},
        f"{session.id}\n{session.iframe_url}",
    )
    return 0


def _cmd_session_status(args: argparse.Namespace) -> int:
    async def fetch() -> Any:
        async with _client(args) as client:
            return await client.session_status(args.session_id)

    status = asyncio.run(fetch())
    raw = dict(status.raw)
    _emit(
        args,
        raw,
        f"{status.session_id}: {status.session_status}  deposit={status.deposit_status} "
        f"withdraw={status.withdraw_status}  {status.from_amount} {status.from_currency} -> "
        f"{status.to_amount} {status.to_currency}",
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    progress = sys.stderr.isatty() and not args.json

    async def fetch() -> Any:
        async with _client(args) as client:
            if not args.wait:
                return await client.blockchain_status(args.tx_id)
            loop = asyncio.get_running_loop()
            started = loop.time()
            last = None
            async for last in client.poll_blockchain_status(
                args.tx_id,
                interval=args.interval,
                max_interval=max(30.0, args.interval),
                timeout=args.wait_timeout,
            ):
                if progress:
                    elapsed = loop.time() - started
                    sys.stderr.write(
                        f"\rwaiting for {args.tx_id}: {last.status or '?'} ({elapsed:.0f} s)  "
                    )
                    sys.stderr.flush()
            if progress:
                sys.stderr.write("\n")
            return last

    status = asyncio.run(fetch())
    _emit(
        args,
        {"tx_id": status.tx_id, "status": status.status, "hash": status.hash, "raw": status.raw},
        f"{status.tx_id}: {status.status or 'unknown'}  hash={status.hash or '-'}",
    )
    return 0 if (status.hash or not args.wait) else 1


def _cmd_sandbox(args: argparse.Namespace) -> int:
    import logging

    from .sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(
        webhook_url=args.webhook_url,
        webhook_secret=args.secret or os.environ.get("INSTAX_WEBHOOK_SECRET"),
        api_key=args.api_key,
        confirmation_polls=args.confirmation_polls,
        confirmation_delay=args.confirmation_delay,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        latency=args.latency,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    async def serve() -> None:
        async with Sandbox(config, host=args.host, port=args.port, access_log=True) as sandbox:
            print(f"sandbox listening on {sandbox.url}", flush=True)
            if config.webhook_url:
                signed = "signed" if config.webhook_secret else "UNSIGNED (no --secret)"
                print(f"webhooks go to {config.webhook_url}, {signed}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                # A clean stop on Ctrl-C and on a process manager's SIGTERM.
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
            await stop.wait()
            print("sandbox stopped", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


# -- webhook -----------------------------------------------------------------------------------


def _secret(args: argparse.Namespace) -> str:
    secret: str | None = args.secret or os.environ.get("INSTAX_WEBHOOK_SECRET")
    if not secret:
        raise UsageError("instax: no webhook secret: pass --secret or set INSTAX_WEBHOOK_SECRET")
    return secret


def _read_body(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"instax: cannot read {path}: {exc.strerror or exc}") from None


def _event_summary(event: WebhookEvent) -> dict[str, Any]:
    return {
        "webhook_id": event.webhook_id,
        "transaction_id": event.transaction_id,
        "reference": event.reference,
        "status": str(event.status) if event.status is not None else None,
        "session_id": event.session_id,
        "amount_in_fiat": event.data.amount_in_fiat,
        "fiat_currency": event.data.fiat_currency,
        "amount_in_crypto": event.data.amount_in_crypto,
        "crypto_currency": event.data.crypto_currency,
        "withdraw_tx_id": event.withdraw_tx_id,
    }


def _cmd_webhook_sign(args: argparse.Namespace) -> int:
    from .webhooks import sign

    secret = _secret(args)
    signature = sign(_read_body(args.file), secret)
    _emit(args, {"signature": signature}, signature)
    return 0


def _cmd_webhook_verify(args: argparse.Namespace) -> int:
    from .webhooks import verify

    secret = _secret(args)
    body = _read_body(args.file)
    try:
        event = verify(body, args.signature, secret)
    except WebhookVerificationError as exc:
        if args.json:
            failure = {"verified": False, "reason": str(exc.reason.value), "error": str(exc)}
            print(json.dumps(failure))
        else:
            print(f"not verified: {exc}", file=sys.stderr)
        return 1
    summary = _event_summary(event)
    text = (
        f"verified: {summary['status']} {summary['amount_in_fiat']} {summary['fiat_currency']} -> "
        f"{summary['amount_in_crypto']} {summary['crypto_currency']}  "
        f"reference={summary['reference']} session={summary['session_id']} "
        f"withdraw_tx={summary['withdraw_tx_id']}"
    )
    _emit(args, {"verified": True, **summary}, text)
    return 0


async def _send_webhook(url: str, body: bytes, signature: str, timeout: float) -> tuple[int, bytes]:
    from .transports.aiohttp import AiohttpTransport
    from .transports.base import Request
    from .webhooks import SIGNATURE_HEADER

    transport = AiohttpTransport()
    try:
        response = await transport.send(
            Request(
                "POST",
                url,
                {"Content-Type": "application/json", SIGNATURE_HEADER: signature},
                body,
                timeout,
            )
        )
    finally:
        await transport.aclose()
    return response.status, response.content


def _cmd_webhook_send(args: argparse.Namespace) -> int:
    from .sandbox.events import webhook_payload
    from .serialization import dumps
    from .webhooks import sign

    secret = _secret(args)
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"instax: URL must start with http:// or https://, got {args.url!r}")
    body = dumps(webhook_payload(status=args.status, reference=args.reference))
    status, answer = asyncio.run(_send_webhook(args.url, body, sign(body, secret), args.timeout))
    preview = answer[:200].decode("utf-8", "replace")
    _emit(
        args,
        {"status": status, "response": preview},
        f"{args.url} answered HTTP {status}: {preview}",
    )
    return 0 if 200 <= status < 300 else 1


# -- the parser --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> _Parser:
        # Given before or after the subcommand; the subcommand's copy must not reset the value.
        default: Any = argparse.SUPPRESS if suppress else None
        common = _Parser(add_help=False)
        common.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS if suppress else False,
            help="print JSON for scripts",
        )
        common.add_argument(
            "--base-url", default=default, help="API base URL (default: $INSTAX_BASE_URL)"
        )
        common.add_argument("--api-key", default=default, help="API key (default: $INSTAX_API_KEY)")
        common.add_argument(
            "--timeout",
            type=float,
            default=argparse.SUPPRESS if suppress else 30.0,
            help="seconds per request (default 30)",
        )
        return common

    parser = _Parser(
        prog="instax",
        description="The InstaXchange SDK's command line.",
        parents=[options(suppress=False)],
    )
    common = options(suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser("demo", parents=[common], help="run the demo against a sandbox")
    demo.set_defaults(run=_cmd_demo)

    session = commands.add_parser("session", help="create a payment session or read its status")
    sessions = session.add_subparsers(dest="session_command", required=True, parser_class=_Parser)
    create = sessions.add_parser("create", parents=[common], help="create a payment session")
    create.add_argument(
        "--direction",
        choices=["sending", "receiving"],
        default="sending",
        help="sending: the customer pays AMOUNT; receiving: the payout is AMOUNT",
    )
    create.add_argument("--amount", required=True, help="a decimal amount, e.g. 50.00")
    create.add_argument("--from", dest="from_currency", required=True, help="fiat, e.g. USD")
    create.add_argument("--to", dest="to_currency", required=True, help="payout, e.g. USDT")
    for flag in (
        "address",
        "webhook-ref",
        "return-url",
        "account-ref-id",
        "method",
        "email",
        "country",
    ):
        create.add_argument(f"--{flag}")
    create.add_argument(
        "--allow-unlisted", action="store_true", help="send a currency this release does not list"
    )
    create.set_defaults(run=_cmd_session_create)
    read = sessions.add_parser("status", parents=[common], help="a session's status (api key)")
    read.add_argument("session_id")
    read.set_defaults(run=_cmd_session_status)

    status = commands.add_parser(
        "status", parents=[common], help="a payout's blockchain status, by withdraw tx id"
    )
    status.add_argument("tx_id", help="the withdraw tx id (a webhook's Withdraw_tx_ID)")
    status.add_argument("--wait", action="store_true", help="poll until the hash appears")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    status.add_argument(
        "--wait-timeout", type=float, default=600.0, help="give up after this many seconds"
    )
    status.set_defaults(run=_cmd_status)

    sandbox = commands.add_parser("sandbox", help="run the local InstaXchange sandbox")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--webhook-url", help="where to deliver webhooks")
    sandbox.add_argument("--secret", help="webhook secret (default: $INSTAX_WEBHOOK_SECRET)")
    sandbox.add_argument("--api-key", help="the x-api-key the status endpoint requires")
    sandbox.add_argument("--confirmation-polls", type=int, default=2)
    sandbox.add_argument("--confirmation-delay", type=float, default=0.0)
    sandbox.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    sandbox.add_argument("--rate-limit-rate", type=float, default=0.0, help="fraction answered 429")
    sandbox.add_argument("--retry-after", type=float, default=1.0)
    sandbox.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    sandbox.set_defaults(run=_cmd_sandbox)

    webhook = commands.add_parser("webhook", help="sign, verify or send test webhooks")
    hooks = webhook.add_subparsers(dest="webhook_command", required=True, parser_class=_Parser)
    secret_help = "the webhook secret (default: $INSTAX_WEBHOOK_SECRET)"

    sign = hooks.add_parser("sign", parents=[common], help="print the X-Instaxwh-Key of a body")
    sign.add_argument("--secret", help=secret_help)
    sign.add_argument("file", nargs="?", default="-", help="the JSON body (default: stdin)")
    sign.set_defaults(run=_cmd_webhook_sign)

    verify = hooks.add_parser("verify", parents=[common], help="verify a body and its key")
    verify.add_argument("--secret", help=secret_help)
    verify.add_argument("--signature", required=True, help="the X-Instaxwh-Key header value")
    verify.add_argument("file", nargs="?", default="-", help="the JSON body (default: stdin)")
    verify.set_defaults(run=_cmd_webhook_verify)

    send = hooks.add_parser("send", parents=[common], help="POST a signed test webhook to URL")
    send.add_argument("url", help="your webhook receiver, e.g. http://127.0.0.1:8000/hook")
    send.add_argument("--secret", help=secret_help)
    send.add_argument("--status", choices=["completed", "failed", "pending"], default="completed")
    send.add_argument("--reference", help="the webhookRef to put in the event")
    send.set_defaults(run=_cmd_webhook_send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``instax`` command; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"instax: {exc}", file=sys.stderr)
        return 2
    except InstaxError as exc:
        print(f"instax: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
