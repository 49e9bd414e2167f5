"""``instax sandbox``: the local InstaXchange stand-in, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from ..errors import InstaxError
from ._core import Interrupted, UsageError, run
from ._output import emit, shown

__all__ = ["cmd_sandbox"]


def cmd_sandbox(args: argparse.Namespace) -> int:
    import logging

    from ..sandbox import Sandbox, SandboxConfig

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
        allowed_hosts=args.allowed_hosts,
        strict=args.strict,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    def tell(data: dict[str, Any], text: str) -> None:
        emit(args, data, text)
        sys.stdout.flush()

    async def serve() -> None:
        sandbox = Sandbox(config, host=args.host, port=args.port, access_log=True)
        try:
            await sandbox.start()
        except InstaxError as exc:
            # the port is taken, or the host is not an address of this machine
            raise UsageError(f"instax: {exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            # A clean stop on a process manager's SIGTERM (Ctrl-C is handled by run), in place
            # before the URL is out: whoever read it may send SIGTERM at once.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, stop.set)
            signed = bool(config.webhook_secret)
            tell({"url": sandbox.url}, f"sandbox listening on {shown(sandbox.url)}")
            if config.webhook_url:
                tell(
                    {"webhook_url": config.webhook_url, "signed": signed},
                    f"webhooks go to {shown(config.webhook_url)}, "
                    + ("signed" if signed else "UNSIGNED (no --secret)"),
                )
            else:
                tell(
                    {"webhook_url": None, "signed": signed},
                    "no webhooks will be sent (no --webhook-url)",
                )
            if config.strict:
                tell(
                    {"strict": True},
                    "strict: accountRefId and address are required; checkout links on /order/{id}",
                )
            await stop.wait()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)  # False when it was never added
            await sandbox.stop()
        tell({"stopped": True}, "sandbox stopped")

    try:
        run(serve())
    except Interrupted:
        tell({"stopped": True}, "sandbox stopped")
    return 0
