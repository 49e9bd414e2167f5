"""``instax session create|status`` and ``instax status [--wait]``: sessions and payouts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ..client import AsyncSession
from ..errors import APIConnectionError, APITimeoutError, InstaxError, PollTimeoutError
from ..models import BlockchainStatus
from ..payloads import SessionRequest
from ._core import CommandFailed, UsageError, run
from ._output import api_body, describe_error, emit, session_record, shown, terminal_text

if TYPE_CHECKING:
    from ..models import PaymentSession, SessionStatus
    from ..polling import PollAttempt

__all__ = [
    "WaitProgress",
    "cmd_session_create",
    "cmd_session_status",
    "cmd_status",
    "created_record",
    "status_record",
]


# -- sessions and payouts ----------------------------------------------------------------------


def _client(args: argparse.Namespace, **kwargs: Any) -> AsyncSession:
    return AsyncSession(
        api_key=args.api_key, base_url=args.base_url, timeout=args.timeout, **kwargs
    )


def created_record(session: PaymentSession) -> dict[str, Any]:
    """``instax session create --json``: the session under the shared names, its checkout
    link, and the API's answer."""
    return session_record(
        session.id,
        session.status,
        (session.from_amount, session.from_currency, session.to_amount, session.to_currency),
        amount_direction=None
        if session.amount_direction is None
        else str(session.amount_direction),
        iframe_url=session.iframe_url,
        response=api_body(session.raw),
    )


def status_record(status: SessionStatus, session_id: str) -> dict[str, Any]:
    """``instax session status --json``: the status under the shared names (the withdraw tx id
    is what ``instax status`` takes), and the API's answer."""
    return session_record(
        status.session_id or session_id,
        status.session_status,
        (status.from_amount, status.from_currency, status.to_amount, status.to_currency),
        webhook_ref=status.webhook_ref,
        address=status.address,
        deposit_tx_id=status.deposit_id,
        deposit_status=status.deposit_status,
        deposit_status_reason=status.deposit_status_reason,
        withdraw_tx_id=status.withdrawal_id,
        withdraw_status=status.withdraw_status,
        withdraw_status_reason=status.withdraw_status_reason,
        created_at=None if status.created_at is None else status.created_at.isoformat(),
        updated_at=None if status.updated_at is None else status.updated_at.isoformat(),
        response=api_body(status.raw),
    )


def cmd_session_create(args: argparse.Namespace) -> int:
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
    # A ValidationError names the option the user typed (main translates the field).
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

    async def create() -> Any:
        async with _client(args, checkout_url=args.checkout_url) as client:
            return await client.create_session(request)

    session = run(create())
    emit(args, created_record(session), f"{shown(session.id)}\n{shown(session.iframe_url)}")
    return 0


def _require_api_key(args: argparse.Namespace, command: str) -> None:
    if not (args.api_key or os.environ.get("INSTAX_API_KEY")):
        raise UsageError(
            f"instax: {command} needs an api key: pass --api-key or set INSTAX_API_KEY"
        )


def cmd_session_status(args: argparse.Namespace) -> int:
    _require_api_key(args, "session status")

    async def fetch() -> Any:
        async with _client(args) as client:
            return await client.session_status(args.session_id)

    status = run(fetch())
    parts = [f"{shown(status.session_id or args.session_id)}: {shown(status.session_status)}"]
    for label, value, reason in (
        ("deposit", status.deposit_status, status.deposit_status_reason),
        ("withdraw", status.withdraw_status, status.withdraw_status_reason),
    ):
        if value:
            parts.append(f"{label}={shown(value)}" + (f" ({shown(reason)})" if reason else ""))
    if status.from_amount is not None or status.to_amount is not None:
        parts.append(
            f"{shown(status.from_amount)} {shown(status.from_currency)} -> "
            f"{shown(status.to_amount)} {shown(status.to_currency)}"
        )
    if status.withdrawal_id:
        parts.append(f"withdraw_tx={shown(status.withdrawal_id)}")
    emit(args, status_record(status, args.session_id), "  ".join(parts))
    return 0


class WaitProgress:
    """What ``instax status --wait`` tells the user while it waits, on stderr.

    On a terminal one line, redrawn at least once a second, shows the status, the time waited
    and the polls made; elsewhere (a log, a pipe) each status change is one line. A failed
    poll is always a line of its own, with its cause.
    """

    def __init__(
        self, tx_id: str, stream: IO[str], *, live: bool, clock: Callable[[], float]
    ) -> None:
        self.tx_id = terminal_text(tx_id)
        self.stream = stream
        self.live = live
        self.clock = clock
        self.started = clock()
        self.polls = 0
        self.status: str | None = None
        #: when the first poll of the current run of connection failures started
        self.failing_since: float | None = None
        self.failures = 0
        self.last_error: str | None = None
        self._drawn = False

    def _elapsed(self) -> str:
        return f"{self.clock() - self.started:.0f} s"

    def poll_count(self) -> str:
        """``1 poll``, ``2 polls``: the polls made so far."""
        return f"{self.polls} poll{'' if self.polls == 1 else 's'}"

    def line(self) -> str:
        """The live line's text."""
        text = f"waiting for {self.tx_id}: {self.status or 'no answer yet'}, "
        text += f"{self._elapsed()}, {self.poll_count()}"
        if self.failing_since is not None:
            text += f", unreachable for {self.clock() - self.failing_since:.0f} s"
        return text

    def redraw(self) -> None:
        """Redraw the live line (terminal only)."""
        if self.live:
            self.stream.write(f"\r\x1b[K{self.line()}")
            self.stream.flush()
            self._drawn = True

    def _say(self, text: str) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = False
        self.redraw()

    def poll_started(self) -> float:
        """Count a poll; returns when it started."""
        self.polls += 1
        return self.clock()

    def answered(self, status: BlockchainStatus) -> None:
        """A poll was answered: the API is reachable; a new status is reported."""
        self.failing_since = None
        self.last_error = None
        text = shown(status.status or ("hash" if status.hash else "unknown"))
        if text != self.status:
            self.status = text
            if self.live:
                self.redraw()
            else:
                self._say(f"{self.tx_id}: {text} (after {self._elapsed()}, {self.poll_count()})")

    def failed(self, started: float, error: InstaxError, *, again: bool = True) -> None:
        """A poll failed; a connection failure starts or continues a run of them."""
        if isinstance(error, APIConnectionError) and self.failing_since is None:
            self.failing_since = started
        self.failures += 1
        self.last_error = describe_error(error)
        then = "; trying again" if again else ""
        self._say(f"instax: poll {self.polls} failed: {self.last_error}{then}")

    def finish(self) -> None:
        """Clear the live line: the result goes to stdout."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    async def tick(self) -> None:
        """Keep the live line moving while nothing else happens."""
        while True:
            self.redraw()
            await asyncio.sleep(0.5)


async def _wait_for_hash(args: argparse.Namespace) -> BlockchainStatus:
    """Poll until the payout has a hash or failed, telling the user what happens."""
    loop = asyncio.get_running_loop()
    now = loop.time
    live = sys.stderr is not None and sys.stderr.isatty()
    progress = WaitProgress(args.tx_id, sys.stderr or io.StringIO(), live=live, clock=now)
    limit = args.unreachable_timeout
    slack = 0.001  # timers may fire a hair early

    def unreachable_too_long() -> bool:
        since = progress.failing_since
        return since is not None and now() >= since + limit - slack

    def give_up() -> CommandFailed:
        return CommandFailed(
            f"instax: gave up waiting for {progress.tx_id}: the API was unreachable for "
            f"{limit:g} s (--unreachable-timeout; {progress.failures} failed polls); "
            f"last error: {progress.last_error}"
        )

    def on_attempt(attempt: PollAttempt[BlockchainStatus]) -> None:
        progress.poll_started()
        if attempt.status is not None:
            progress.answered(attempt.status)
            return
        error = attempt.error
        assert isinstance(error, InstaxError)  # a failed attempt carries its transient error
        if isinstance(error, APITimeoutError) and attempt.elapsed >= args.wait_timeout - 0.01:
            return  # the attempt ran into the deadline of the whole wait: not a failed poll
        last = isinstance(error, APIConnectionError) and unreachable_too_long()
        progress.failed(now() - attempt.duration, error, again=not last)
        if last:
            raise give_up()
        # While the API is unreachable, the next poll comes no later than the limit, so the
        # give-up falls on it: the last try is made at --unreachable-timeout.
        if progress.failing_since is not None and attempt.next_wait is not None:
            until_limit = max(0.0, progress.failing_since + limit - now())
            attempt.next_wait = min(attempt.next_wait, until_limit)

    async with _client(args) as client:
        ticker = loop.create_task(progress.tick()) if live else None
        try:
            return await client.wait_for_blockchain_status(
                args.tx_id,
                interval=args.interval,
                max_interval=max(30.0, args.interval),
                timeout=args.wait_timeout,
                on_attempt=on_attempt,
            )
        except PollTimeoutError:
            if unreachable_too_long():
                raise give_up() from None
            seen = f"still {progress.status}" if progress.status else "no answer"
            if progress.last_error:
                seen += f"; last error: {progress.last_error}"
            raise CommandFailed(
                f"instax: gave up waiting for {progress.tx_id} after {args.wait_timeout:g} s "
                f"(--wait-timeout; {progress.poll_count()}): {seen}"
            ) from None
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            progress.finish()


def cmd_status(args: argparse.Namespace) -> int:
    async def fetch() -> BlockchainStatus:
        async with _client(args) as client:
            return await client.blockchain_status(args.tx_id)

    status = run(_wait_for_hash(args) if args.wait else fetch())
    emit(
        args,
        {
            "tx_id": status.tx_id,
            "status": status.status,
            "hash": status.hash,
            "response": api_body(status.raw),
        },
        f"{shown(status.tx_id)}: {shown(status.status or 'unknown')}  hash={shown(status.hash)}",
    )
    return 0 if (status.hash or not args.wait) else 1
