"""The ``instax`` command line (also ``python -m instax_async``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aiohttp import web

from . import AsyncSession, SessionRequest
from .errors import InstaxError

__all__ = ["main"]


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instax", description="The InstaXchange SDK's command line."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the end-to-end demo against a local sandbox")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``instax`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return asyncio.run(run_demo())
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
