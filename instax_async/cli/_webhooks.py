"""``instax webhook sign|verify|send``: test webhooks, signed as InstaXchange signs them."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import WebhookVerificationError
from ..models import WebhookEvent
from ._core import UsageError, run
from ._output import emit, json_text, shown, terminal_text

__all__ = ["cmd_send", "cmd_sign", "cmd_verify"]


# -- webhook -----------------------------------------------------------------------------------


def _secret(args: argparse.Namespace) -> str:
    secret: str | None = args.secret or os.environ.get("INSTAX_WEBHOOK_SECRET")
    if not secret:
        raise UsageError("instax: no webhook secret: pass --secret or set INSTAX_WEBHOOK_SECRET")
    return secret


def _read_body(path: str) -> bytes:
    from ..webhooks import DEFAULT_MAX_BODY

    # One byte more than a webhook may have, so an oversized body is told apart from a full one
    # without reading a huge file into memory.
    limit = DEFAULT_MAX_BODY + 1
    if path == "-":
        stdin = sys.stdin
        if stdin is None:
            raise UsageError("instax: no body: standard input is closed; give a FILE")
        if stdin.isatty():
            print(
                "instax: reading the body from standard input (end it with Ctrl-D)", file=sys.stderr
            )
        try:
            return stdin.buffer.read(limit)
        except (OSError, ValueError) as exc:
            raise UsageError(f"instax: cannot read standard input: {exc}") from None
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
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
        "is_paid": event.is_paid,
    }


def cmd_sign(args: argparse.Namespace) -> int:
    from ..webhooks import DEFAULT_MAX_BODY, sign

    secret = _secret(args)
    body = _read_body(args.file)
    if len(body) > DEFAULT_MAX_BODY:
        raise UsageError(
            f"instax: the body is over {DEFAULT_MAX_BODY} bytes, more than a webhook carries"
        )
    signature = sign(body, secret)
    emit(args, {"signature": signature}, signature)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..webhooks import verify

    secret = _secret(args)
    body = _read_body(args.file)
    try:
        event = verify(body, args.signature, secret)
    except WebhookVerificationError as exc:
        if args.json:
            failure = {"verified": False, "reason": str(exc.reason.value), "error": str(exc)}
            print(json_text(failure))
        else:
            print(f"not verified: {terminal_text(exc)}", file=sys.stderr)
        return 1
    summary = _event_summary(event)
    parts = [f"verified: {shown(summary['status'])}"]
    if summary["amount_in_fiat"] is not None or summary["amount_in_crypto"] is not None:
        parts.append(
            f"{shown(summary['amount_in_fiat'])} {shown(summary['fiat_currency'])} -> "
            f"{shown(summary['amount_in_crypto'])} {shown(summary['crypto_currency'])}"
        )
    labels = (
        ("reference", "reference"),
        ("session", "session_id"),
        ("withdraw_tx", "withdraw_tx_id"),
    )
    fields = [f"{label}={shown(summary[key])}" for label, key in labels if summary[key] is not None]
    text = " ".join(parts) + ("  " + " ".join(fields) if fields else "")
    emit(args, {"verified": True, **summary}, text)
    return 0


async def _send_webhook(url: str, body: bytes, signature: str, timeout: float) -> tuple[int, bytes]:
    from ..transports.aiohttp import AiohttpTransport
    from ..transports.base import Request
    from ..webhooks import SIGNATURE_HEADER

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


def cmd_send(args: argparse.Namespace) -> int:
    from ..sandbox.events import webhook_payload
    from ..serialization import dumps
    from ..webhooks import sign

    secret = _secret(args)
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"instax: URL must start with http:// or https://, got {args.url!r}")
    body = dumps(webhook_payload(status=args.status, reference=args.reference))
    status, answer = run(_send_webhook(args.url, body, sign(body, secret), args.timeout))
    preview = answer[:200].decode("utf-8", "replace")
    emit(
        args,
        {"status": status, "response": preview},
        f"{shown(args.url)} answered HTTP {status}: {shown(preview)}",
    )
    return 0 if 200 <= status < 300 else 1
