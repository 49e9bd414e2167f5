"""The ``instax`` command line (also ``python -m instax_async``).

Exit status: 0 on success, 1 when the API, a receiver or a verification said no, 2 for bad
input, 130 when interrupted (Ctrl-C). Whatever happens, the user reads one line on stderr,
never a traceback:

- Errors speak the command line's language: a bad value names the option (``--amount``,
  ``--base-url``), not the SDK's parameter.
- A closed pipe (``instax … | head -1``) ends the command quietly with status 0, as Unix
  tools do: the reader has what it wanted.
- ``--json`` works with every command; options a command does not use are not offered to it.

Nothing a server (or a webhook body) controls reaches the terminal raw. Human output shows
control characters escaped (:func:`terminal_text`: ESC as ``\\x1b``, CR as ``\\r``) and cuts
such text at :data:`TEXT_LIMIT` characters with a marker saying how many more there were;
``--json`` output is strict JSON (:func:`json_text`: NaN and Infinity become ``null``, C1
controls are escaped). A hostile API cannot retitle the window, write the clipboard, clear the
screen, overwrite a line or flood the terminal with one 10 MB line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from aiohttp import web

from . import AsyncSession, SessionRequest
from ._compat import timeout as timeout_scope
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InstaxError,
    PollTimeoutError,
    ValidationError,
    WebhookVerificationError,
)
from .models import BlockchainStatus, WebhookEvent

if TYPE_CHECKING:
    from .polling import PollAttempt

__all__ = ["main"]

T = TypeVar("T")


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class CommandFailed(Exception):
    """The command could not do its job (the cause is in the message): exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


#: The most characters of one server-provided value that human output shows.
TEXT_LIMIT = 500

# Characters a terminal may obey instead of showing: C0 controls (ESC starts the sequences that
# retitle the window, write the clipboard or clear the screen; CR overwrites the line), DEL, C1
# controls (U+009B alone starts a sequence), line and paragraph separators, bidirectional
# controls that reorder what is shown (a hash would read differently), and lone surrogates,
# which no encoding can write. JSON output escapes the same ones.
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x2028, 0x202F),
    *range(0x2066, 0x206A),
    *range(0xD800, 0xE000),
]
# str.translate rather than a regex with a callback: `instax status --json` on a 10 MB answer
# of U+009B takes 0.6 s instead of 4.2 s.
_SHOWN_AS = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _UNSAFE}
_SHOWN_AS.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})
_JSON_ESCAPED = {code: f"\\u{code:04x}" for code in _UNSAFE}


def terminal_text(value: object, limit: int | None = TEXT_LIMIT) -> str:
    """``value`` as text that is safe to print to a terminal, for human output.

    Control characters are shown, not obeyed: ``\\t``, ``\\n``, ``\\r``, ``\\xNN`` for other
    C0 controls, DEL and C1 controls, ``\\uNNNN`` for separators, bidirectional controls and
    lone surrogates. Text longer than ``limit`` characters is cut there, with a marker saying
    how many more there were (``None``: never cut). Backslashes are left as they are.

    >>> terminal_text("\\x1b]0;owned\\x07\\x9b2J")
    '\\\\x1b]0;owned\\\\x07\\\\x9b2J'
    >>> terminal_text("x" * 502)[-24:]
    'xxx… [2 more characters]'
    """
    text = str(value)
    marker = ""
    if limit is not None and len(text) > limit:
        marker = f"… [{len(text) - limit} more characters]"
        text = text[:limit]  # before escaping: the work stays bounded whatever the size
    return text.translate(_SHOWN_AS) + marker


def _strict(value: Any) -> Any:
    # A Decimal as its exact text; a number JSON has no words for as null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def json_text(data: object) -> str:
    """``data`` as one line of strict JSON that is safe to print to a terminal (``--json``).

    NaN and Infinity (float or ``Decimal``; JSON has no words for them) become ``null``, as
    JavaScript's ``JSON.stringify`` makes them; a finite ``Decimal`` becomes its exact text.
    Non-ASCII text stays readable, but DEL, C1 controls and the other characters
    :func:`terminal_text` escapes are written as ``\\uNNNN`` escapes (C0 controls always are),
    so the output parses with any strict parser and carries nothing a terminal would obey.

    >>> json_text({"fee": float("nan"), "rate": Decimal("1.50"), "status": "\\x9b2J"})
    '{"fee": null, "rate": "1.50", "status": "\\\\u009b2J"}'
    >>> json_text([Decimal("-Infinity"), float("inf")])
    '[null, null]'
    """
    text = json.dumps(_strict(data), default=str, ensure_ascii=False, allow_nan=False)
    # These characters can only be inside strings, where an escape means the same thing.
    return text.translate(_JSON_ESCAPED)


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text`` (built from :func:`_shown` parts)."""
    print(json_text(data) if args.json else text)


def _shown(value: object) -> str:
    """A value for human output: ``-`` for a missing one, never ``None``; made terminal-safe."""
    return "-" if value is None or value == "" else terminal_text(value)


# -- option types ------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _seconds_or_zero(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    try:
        return _seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # also false for nan
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535 (0 picks a free one), got {text!r}"
        )
    return value


# -- running a coroutine -------------------------------------------------------------------------


class _Interrupted(Exception):
    """Ctrl-C (SIGINT) arrived while a command was running."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, where Ctrl-C cancels the coroutine so it cleans up after itself.

    The same on every Python (3.10's ``asyncio.run`` lets ``KeyboardInterrupt`` tear through
    whatever is running): the cancelled command closes its connections, then ``main`` exits
    with status 130 without a traceback.
    """

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        interrupted = False

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            assert task is not None  # a coroutine run by asyncio.run is a task
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            handled = True
        except (NotImplementedError, RuntimeError, ValueError):
            handled = False  # not the main thread (tests), or no signals here
        try:
            return await coro
        except asyncio.CancelledError:
            if interrupted:
                raise _Interrupted from None
            raise
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(guarded())


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
    from .integrations.aiohttp import webhook_handler
    from .poller import BlockchainPoller
    from .sandbox import Sandbox, SandboxConfig

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
            say(f"sandbox   {_shown(sandbox.url)}")
            say(f"webhooks  {_shown(hook_url)}")
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
                say(f"{label:<9} {_shown(session.id)}  checkout: {_shown(session.iframe_url)}")
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
            data["sessions"] = [
                _demo_record(sending.id, sending.raw, paid_event, payout.hash),
                _demo_record(receiving.id, receiving.raw, declined_event, None),
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
    session_id: str, raw: Any, event: WebhookEvent, payout_hash: str | None
) -> tuple[str, str, str, str, str, str]:
    amounts = (
        f"{_shown(raw['from_amount'])} {_shown(raw['from_currency'])} -> "
        f"{_shown(raw['to_amount'])} {_shown(raw['to_currency'])}"
    )
    status = _shown(event.status)
    if event.data.status_reason:
        status += f" ({_shown(event.data.status_reason)})"
    short_hash = _shown(f"{payout_hash[:10]}…{payout_hash[-6:]}" if payout_hash else None)
    direction = _shown(raw["payment_direction"])
    return (_shown(session_id), direction, amounts, status, "verified", short_hash)


def _demo_record(
    session_id: str, raw: Any, event: WebhookEvent, payout_hash: str | None
) -> dict[str, Any]:
    return {
        "id": session_id,
        "direction": raw["payment_direction"],
        "from_amount": raw["from_amount"],
        "from_currency": raw["from_currency"],
        "to_amount": raw["to_amount"],
        "to_currency": raw["to_currency"],
        "status": str(event.status),
        "status_reason": event.data.status_reason,
        "webhook_verified": True,
        "payout_hash": payout_hash,
    }


def _cmd_demo(args: argparse.Namespace) -> int:
    if not args.json:
        return _run(run_demo())
    report: dict[str, Any] = {}
    code = _run(run_demo(echo=False, report=report))
    print(json_text(report))
    return code


# -- sessions and payouts ----------------------------------------------------------------------


def _client(args: argparse.Namespace, **kwargs: Any) -> AsyncSession:
    return AsyncSession(
        api_key=args.api_key, base_url=args.base_url, timeout=args.timeout, **kwargs
    )


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
        async with _client(args) as client:
            return await client.create_session(request)

    session = _run(create())
    _emit(
        args,
        {"id": session.id, "iframe_url": session.iframe_url, "response": session.raw},
        f"{_shown(session.id)}\n{_shown(session.iframe_url)}",
    )
    return 0


def _require_api_key(args: argparse.Namespace, command: str) -> None:
    if not (args.api_key or os.environ.get("INSTAX_API_KEY")):
        raise UsageError(
            f"instax: {command} needs an api key: pass --api-key or set INSTAX_API_KEY"
        )


def _cmd_session_status(args: argparse.Namespace) -> int:
    _require_api_key(args, "session status")

    async def fetch() -> Any:
        async with _client(args) as client:
            return await client.session_status(args.session_id)

    status = _run(fetch())
    parts = [f"{_shown(status.session_id or args.session_id)}: {_shown(status.session_status)}"]
    for label, value, reason in (
        ("deposit", status.deposit_status, status.deposit_status_reason),
        ("withdraw", status.withdraw_status, status.withdraw_status_reason),
    ):
        if value:
            parts.append(f"{label}={_shown(value)}" + (f" ({_shown(reason)})" if reason else ""))
    if status.from_amount is not None or status.to_amount is not None:
        parts.append(
            f"{_shown(status.from_amount)} {_shown(status.from_currency)} -> "
            f"{_shown(status.to_amount)} {_shown(status.to_currency)}"
        )
    if status.withdrawal_id:
        parts.append(f"withdraw_tx={_shown(status.withdrawal_id)}")
    _emit(args, dict(status.raw), "  ".join(parts))
    return 0


class _WaitProgress:
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
        shown = _shown(status.status or ("hash" if status.hash else "unknown"))
        if shown != self.status:
            self.status = shown
            if self.live:
                self.redraw()
            else:
                self._say(f"{self.tx_id}: {shown} (after {self._elapsed()}, {self.poll_count()})")

    def failed(self, started: float, error: InstaxError, *, again: bool = True) -> None:
        """A poll failed; a connection failure starts or continues a run of them."""
        if isinstance(error, APIConnectionError) and self.failing_since is None:
            self.failing_since = started
        self.failures += 1
        self.last_error = _describe(error)
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
    progress = _WaitProgress(args.tx_id, sys.stderr or io.StringIO(), live=live, clock=now)
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


def _cmd_status(args: argparse.Namespace) -> int:
    async def fetch() -> BlockchainStatus:
        async with _client(args) as client:
            return await client.blockchain_status(args.tx_id)

    status = _run(_wait_for_hash(args) if args.wait else fetch())
    _emit(
        args,
        {"tx_id": status.tx_id, "status": status.status, "hash": status.hash, "raw": status.raw},
        f"{_shown(status.tx_id)}: {_shown(status.status or 'unknown')}  hash={_shown(status.hash)}",
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
        allowed_hosts=args.allowed_hosts,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    def tell(data: dict[str, Any], text: str) -> None:
        _emit(args, data, text)
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
            # A clean stop on a process manager's SIGTERM (Ctrl-C is handled by _run), in place
            # before the URL is out: whoever read it may send SIGTERM at once.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, stop.set)
            signed = bool(config.webhook_secret)
            tell({"url": sandbox.url}, f"sandbox listening on {_shown(sandbox.url)}")
            if config.webhook_url:
                tell(
                    {"webhook_url": config.webhook_url, "signed": signed},
                    f"webhooks go to {_shown(config.webhook_url)}, "
                    + ("signed" if signed else "UNSIGNED (no --secret)"),
                )
            await stop.wait()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)  # False when it was never added
            await sandbox.stop()
        tell({"stopped": True}, "sandbox stopped")

    try:
        _run(serve())
    except _Interrupted:
        tell({"stopped": True}, "sandbox stopped")
    return 0


# -- webhook -----------------------------------------------------------------------------------


def _secret(args: argparse.Namespace) -> str:
    secret: str | None = args.secret or os.environ.get("INSTAX_WEBHOOK_SECRET")
    if not secret:
        raise UsageError("instax: no webhook secret: pass --secret or set INSTAX_WEBHOOK_SECRET")
    return secret


def _read_body(path: str) -> bytes:
    from .webhooks import DEFAULT_MAX_BODY

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
    }


def _cmd_webhook_sign(args: argparse.Namespace) -> int:
    from .webhooks import DEFAULT_MAX_BODY, sign

    secret = _secret(args)
    body = _read_body(args.file)
    if len(body) > DEFAULT_MAX_BODY:
        raise UsageError(
            f"instax: the body is over {DEFAULT_MAX_BODY} bytes, more than a webhook carries"
        )
    signature = sign(body, secret)
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
            print(json_text(failure))
        else:
            print(f"not verified: {terminal_text(exc)}", file=sys.stderr)
        return 1
    summary = _event_summary(event)
    parts = [f"verified: {_shown(summary['status'])}"]
    if summary["amount_in_fiat"] is not None or summary["amount_in_crypto"] is not None:
        parts.append(
            f"{_shown(summary['amount_in_fiat'])} {_shown(summary['fiat_currency'])} -> "
            f"{_shown(summary['amount_in_crypto'])} {_shown(summary['crypto_currency'])}"
        )
    labels = (
        ("reference", "reference"),
        ("session", "session_id"),
        ("withdraw_tx", "withdraw_tx_id"),
    )
    fields = [
        f"{label}={_shown(summary[key])}" for label, key in labels if summary[key] is not None
    ]
    text = " ".join(parts) + ("  " + " ".join(fields) if fields else "")
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
    status, answer = _run(_send_webhook(args.url, body, sign(body, secret), args.timeout))
    preview = answer[:200].decode("utf-8", "replace")
    _emit(
        args,
        {"status": status, "response": preview},
        f"{_shown(args.url)} answered HTTP {status}: {_shown(preview)}",
    )
    return 0 if 200 <= status < 300 else 1


# -- errors in the command line's words ----------------------------------------------------------

#: The SDK's parameter names, as the options (or environment variables) that set them.
_OPTION_OF = {
    "base_url": "--base-url (or INSTAX_BASE_URL)",
    "api_key": "--api-key (or INSTAX_API_KEY)",
    "timeout": "--timeout",
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
    "tx_id": "TX_ID",
    "session_id": "SESSION_ID",
    "webhook_url": "--webhook-url",
    "allowed_hosts": "--allowed-host",
    "url": "URL",
}


def _in_cli_words(error: ValidationError) -> str:
    message = str(error)
    option = _OPTION_OF.get(error.field or "")
    if option and message.startswith(f"{error.field}:"):
        message = option + message[len(error.field or "") :]
    return message.replace("allow_unlisted=True", "--allow-unlisted")


def _describe(error: BaseException) -> str:
    """One line about an SDK error: its kind, then what happened, each said once."""
    kind = type(error).__name__
    if isinstance(error, APIStatusError):
        # the message is the server's own words, of any length
        message = terminal_text(error.args[0]) if error.args else ""
        said = f"HTTP {error.status}"
        text = message if said in message else f"{said}: {message}" if message else said
        if error.body and message.startswith("InstaXchange answered HTTP"):
            # a body without a message of its own: show its start, it is all there is
            preview = error.body[:200].decode("utf-8", "replace").replace("\n", " ")
            text += f"; body: {terminal_text(preview)}{'…' if len(error.body) > 200 else ''}"
        if isinstance(error, AuthenticationError):
            text += " (check --api-key or INSTAX_API_KEY)"
        return f"{kind}: {text}"
    return f"{kind}: {terminal_text(error)}"


def _check_text(args: argparse.Namespace) -> None:
    """Refuse arguments that are not valid text (bytes the locale could not decode)."""
    for name, value in vars(args).items():
        # a file name may be any bytes: open() takes it back as it came
        if isinstance(value, str) and name != "file":
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                shown = _OPTION_OF.get(name, "--" + name.replace("_", "-"))
                raise UsageError(f"instax: {shown}: not valid UTF-8 text") from None


# -- the parser --------------------------------------------------------------------------------


class _AfterTheCommand(argparse.Action):
    """An API option given before the command: say where it goes, not "invalid choice"."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        raise UsageError(
            f"instax: {option} goes after the command, e.g. 'instax status TX_ID {option} …' "
            "(only session and status take it; webhook send takes --timeout)"
        )


_JSON_HELP = "print strict JSON for scripts (NaN and Infinity as null; never cut)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="instax",
        description="The InstaXchange SDK's command line.",
        epilog="Text a server sent is shown with control characters escaped (ESC as \\x1b) "
        f"and cut at {TEXT_LIMIT} characters; --json output is strict JSON (NaN and "
        "Infinity as null). Exit status: 0 done; 1 the API, a receiver or a check said no; "
        "2 bad input; 130 interrupted.",
    )
    parser.add_argument("--json", action="store_true", help=_JSON_HELP)
    for option in ("--base-url", "--api-key", "--timeout"):
        parser.add_argument(option, action=_AfterTheCommand, help=argparse.SUPPRESS)
    parser.add_argument(
        "--version",
        action="version",
        version=f"instax (instax-async) {__version__}, Python {platform.python_version()}",
    )
    # --json is accepted after the subcommand too; the subcommand's copy must not reset it.
    json_option = _Parser(add_help=False)
    json_option.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help=_JSON_HELP
    )
    timeout_option = _Parser(add_help=False)
    timeout_option.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds per request (default 30)",
    )
    api_options = _Parser(add_help=False, parents=[timeout_option])
    api_options.add_argument(
        "--base-url", metavar="URL", help="API base URL (default: $INSTAX_BASE_URL)"
    )
    api_options.add_argument("--api-key", metavar="KEY", help="API key (default: $INSTAX_API_KEY)")

    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser(
        "demo", parents=[json_option], help="run the whole payment flow against a local sandbox"
    )
    demo.set_defaults(run=_cmd_demo)

    session = commands.add_parser("session", help="create a payment session or read its status")
    sessions = session.add_subparsers(dest="session_command", required=True, parser_class=_Parser)
    create = sessions.add_parser(
        "create", parents=[json_option, api_options], help="create a payment session"
    )
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
    read = sessions.add_parser(
        "status", parents=[json_option, api_options], help="a session's status (api key)"
    )
    read.add_argument("session_id", metavar="SESSION_ID")
    read.set_defaults(run=_cmd_session_status)

    status = commands.add_parser(
        "status",
        parents=[json_option, api_options],
        help="a payout's blockchain status, by withdraw tx id",
    )
    status.add_argument(
        "tx_id", metavar="TX_ID", help="the withdraw tx id (a webhook's Withdraw_tx_ID)"
    )
    status.add_argument("--wait", action="store_true", help="poll until the hash appears")
    status.add_argument(
        "--interval",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="seconds between polls (default 2)",
    )
    status.add_argument(
        "--wait-timeout",
        type=_seconds,
        metavar="SECONDS",
        default=600.0,
        help="give up waiting after this many seconds (default 600)",
    )
    status.add_argument(
        "--unreachable-timeout",
        type=_seconds,
        metavar="SECONDS",
        default=30.0,
        help="give up once the API has been unreachable this many seconds (default 30)",
    )
    status.set_defaults(run=_cmd_status)

    sandbox = commands.add_parser(
        "sandbox", parents=[json_option], help="run the local InstaXchange sandbox"
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        dest="allowed_hosts",
        metavar="NAME",
        help="also answer requests for this host name, say a proxy's (repeatable)",
    )
    sandbox.add_argument("--port", type=_port, default=8080, help="0 picks a free port")
    sandbox.add_argument("--webhook-url", help="where to deliver webhooks")
    sandbox.add_argument("--secret", help="webhook secret (default: $INSTAX_WEBHOOK_SECRET)")
    sandbox.add_argument("--api-key", help="the x-api-key the status endpoint requires")
    sandbox.add_argument("--confirmation-polls", type=_count, default=2)
    sandbox.add_argument("--confirmation-delay", type=_seconds_or_zero, default=0.0)
    sandbox.add_argument("--error-rate", type=_fraction, default=0.0, help="fraction answered 500")
    sandbox.add_argument(
        "--rate-limit-rate", type=_fraction, default=0.0, help="fraction answered 429"
    )
    sandbox.add_argument("--retry-after", type=_seconds_or_zero, default=1.0)
    sandbox.add_argument(
        "--latency", type=_seconds_or_zero, default=0.0, help="seconds added per request"
    )
    sandbox.set_defaults(run=_cmd_sandbox)

    webhook = commands.add_parser("webhook", help="sign, verify or send test webhooks")
    hooks = webhook.add_subparsers(dest="webhook_command", required=True, parser_class=_Parser)
    secret_help = "the webhook secret (default: $INSTAX_WEBHOOK_SECRET)"

    sign = hooks.add_parser(
        "sign", parents=[json_option], help="print the X-Instaxwh-Key of a body"
    )
    sign.add_argument("--secret", help=secret_help)
    sign.add_argument("file", nargs="?", default="-", help="the JSON body (default: stdin)")
    sign.set_defaults(run=_cmd_webhook_sign)

    verify = hooks.add_parser("verify", parents=[json_option], help="verify a body and its key")
    verify.add_argument("--secret", help=secret_help)
    verify.add_argument("--signature", required=True, help="the X-Instaxwh-Key header value")
    verify.add_argument("file", nargs="?", default="-", help="the JSON body (default: stdin)")
    verify.set_defaults(run=_cmd_webhook_verify)

    send = hooks.add_parser(
        "send", parents=[json_option, timeout_option], help="POST a signed test webhook to URL"
    )
    send.add_argument("url", help="your webhook receiver, e.g. http://127.0.0.1:8000/hook")
    send.add_argument("--secret", help=secret_help)
    send.add_argument("--status", choices=["completed", "failed", "pending"], default="completed")
    send.add_argument("--reference", help="the webhookRef to put in the event")
    send.set_defaults(run=_cmd_webhook_send)
    return parser


def _tolerant_output() -> None:
    # A terminal or pipe whose encoding cannot show a character gets a '?' rather than a
    # UnicodeEncodeError halfway through the output.
    for stream in (sys.stdout, sys.stderr):
        reconfigure: Callable[..., None] | None = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):
                reconfigure(errors="replace")


def _quiet_closed_stdout() -> None:
    # The reader of our output has gone: whatever Python still flushes at exit goes nowhere,
    # instead of an "Exception ignored … BrokenPipeError" message.
    stdout = sys.stdout
    if stdout is None:
        return
    try:
        fd = stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _run_command(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        _check_text(args)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except UsageError as exc:
        message, code = str(exc), 2
    except ValidationError as exc:
        message, code = f"instax: {_in_cli_words(exc)}", 2
    except CommandFailed as exc:
        message, code = str(exc), 1
    except InstaxError as exc:
        message, code = f"instax: {_describe(exc)}", 1
    # Server text in the line is cut already; escaping the whole line also covers whatever
    # the message quotes of the user's arguments.
    print(terminal_text(message, limit=None), file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``instax`` command; returns the exit status.

    An exception no command expects is a bug: it is told in one line, or shown with its
    traceback when ``INSTAX_DEBUG`` is set.
    """
    _tolerant_output()
    try:
        try:
            code = _run_command(argv)
        except SystemExit as exc:  # --help and --version
            code = exc.code if isinstance(exc.code, int) else 0
        if sys.stdout is not None:
            sys.stdout.flush()  # here, where a closed pipe can still be handled
        return code
    except BrokenPipeError:
        _quiet_closed_stdout()
        return 0
    except (KeyboardInterrupt, _Interrupted):
        return 130
    except Exception as exc:
        if os.environ.get("INSTAX_DEBUG"):
            raise
        print(
            f"instax: unexpected {type(exc).__name__}: {terminal_text(exc)} (a bug in "
            "instax-async: please report it; INSTAX_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
