"""The ``instax`` command line (also ``python -m instax_async``).

Exit status: 0 on success, 1 when the API, a receiver or a verification said no, 2 for bad
input (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from aiohttp import web

from . import AsyncSession, SessionRequest
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


# -- demo --------------------------------------------------------------------------------------


async def _start_sandbox(host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    from .sandbox import create_app

    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


async def run_demo(out: list[str] | None = None) -> int:
    """Create a sending and a receiving session against a local sandbox; print their links."""
    lines: list[str] = [] if out is None else out

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    runner, base_url = await _start_sandbox()
    say(f"sandbox listening on {base_url}")
    try:
        async with AsyncSession(base_url=base_url) as client:
            sending, receiving = await asyncio.gather(
                client.create_session(
                    SessionRequest.sending(
                        from_amount="50.00",
                        from_currency="USD",
                        to_currency="USDT",
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
            raw = session.raw
            say(
                f"{label:<9} {session.id}  {raw['from_amount']} {raw['from_currency']} -> "
                f"{raw['to_amount']} {raw['to_currency']}  status={session.status}"
            )
            say(f"          iframe: {session.iframe_url}")
    except InstaxError as exc:
        say(f"demo failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        await runner.cleanup()
    say("demo ok")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(run_demo())


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
    send.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
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
