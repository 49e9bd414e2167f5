"""A local InstaXchange sandbox: the whole payment flow on one machine, no network, no money.

InstaXchange has no public test environment. The sandbox answers the API's endpoints in their
real shapes, serves a checkout page, settles payments through test helpers, signs and delivers
webhooks, and confirms payouts on a fake blockchain::

    from instax_async import AsyncSession
    from instax_async.sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig(webhook_url=..., webhook_secret="s3cret")) as sandbox:
        async with AsyncSession(base_url=sandbox.url, api_key="any") as client:
            ...
            await sandbox.complete(session.id)     # as if the customer paid

Endpoints: ``POST /api/session``, ``GET /api/session/{id}/status`` (needs ``x-api-key``),
``GET /utils/blockchain-status?txId=``, ``GET /embed/{id}`` and ``/order/{id}`` (the checkout
page), ``POST /sandbox/sessions/{id}/complete`` and ``/fail``, ``GET /sandbox/webhooks`` (the
delivery log). Client mistakes get a 4xx ``{"message", "field"}`` JSON answer, never a 500.

Only requests for this machine are answered: a ``Host`` other than ``localhost``, a loopback
address, the address the sandbox listens on or a name in ``SandboxConfig.allowed_hosts`` gets a
421, and a POST that a browser sent from another origin's page a 403.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from .._lifecycle import AsyncResource, elsewhere, run_in
from .._server_log import server_logger
from .._validate import check_id
from ..errors import InstaxError, ValidationError
from .app import DEFAULT_RATES, STATE, SandboxConfig, SandboxState, create_app

__all__ = ["DEFAULT_RATES", "Sandbox", "SandboxConfig", "SandboxState", "create_app"]


class Sandbox(AsyncResource):
    """Run the sandbox on a loopback port for the duration of an ``async with`` block.

    The server runs in the event loop :meth:`start` is awaited in (its home), and answers only
    while that loop runs. :meth:`start` and :meth:`stop` may be awaited from another loop when the
    home loop runs in another thread (as the ``instax_sandbox`` fixture's does): they run there.
    :meth:`complete` and :meth:`fail` work from any loop.

    :param config: the sandbox's settings; ``SandboxConfig()`` by default.
    :param host: the address (or name) to listen on; ``"0.0.0.0"`` makes the sandbox reachable
        from other machines, which may then use this machine's address in their URLs. Other host
        names need ``SandboxConfig.allowed_hosts``.
    :param port: ``0`` picks a free port; ``url`` tells which.
    :param access_log: log a line per request on the ``aiohttp.access`` logger, as
        ``instax sandbox`` does.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
    ) -> None:
        self.config = config or SandboxConfig()
        self.app = create_app(self.config, host=host)
        self._host = host
        self._port = port
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self.url = ""

    def __repr__(self) -> str:
        return f"<Sandbox url={self.url or 'not started'!r}>"

    @property
    def state(self) -> SandboxState:
        """Sessions, payouts and webhook deliveries so far."""
        return self.app[STATE]

    async def start(self) -> str:
        """Start listening; returns the base URL. Raises :class:`InstaxError` while running."""
        home = elsewhere(self._home)
        if home is not None:
            return await run_in(home, self.start(), "this Sandbox")
        if self._runner is not None:
            raise InstaxError("this Sandbox is already running")
        kwargs: dict[str, Any] = {"shutdown_timeout": 1.0, "logger": server_logger}
        if not self._access_log:
            kwargs["access_log"] = None
        else:
            kwargs["access_log_format"] = '%a "%r" %s %b %Tfs'
        runner = web.AppRunner(self.app, **kwargs)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except (OSError, OverflowError) as exc:  # OverflowError: a port over 65535
            await runner.cleanup()
            raise InstaxError(
                f"the sandbox cannot listen on {self._host}:{self._port}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from exc
        self._runner = runner
        self._home = asyncio.get_running_loop()
        host, port = runner.addresses[0][:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening and cancel pending webhook deliveries; :attr:`url` is ``""`` again."""
        home = elsewhere(self._home)
        if home is not None:
            return await run_in(home, self.stop(), "this Sandbox")
        self.url = ""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def aclose(self) -> None:
        """The same as :meth:`stop` (leaving ``async with`` calls it)."""
        await self.stop()

    async def _helper(self, session_id: str, action: str, reason: str | None) -> dict[str, Any]:
        session_id = check_id(session_id, "session_id")  # never "..": another endpoint
        if reason is not None and not isinstance(reason, str):
            raise ValidationError(
                f"reason: expected a string, got {type(reason).__name__}", field="reason"
            )
        if not self.url:
            raise InstaxError(f"sandbox {action}: the sandbox is not started")
        body = {"reason": reason} if reason else {}
        url = f"{self.url}/sandbox/sessions/{quote(session_id, safe='')}/{action}"
        try:
            async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise InstaxError(f"sandbox {action} of {session_id!r} failed: {exc}") from exc
        if response.status != 200 or not isinstance(data, dict):
            message = data.get("message") if isinstance(data, dict) else data
            raise InstaxError(
                f"sandbox {action} of {session_id!r}: HTTP {response.status}: {message}"
            )
        return data

    async def complete(self, session_id: str) -> dict[str, Any]:
        """Settle a session as paid (as the success card would); returns its tx ids.

        A ``session_id`` that is not an id (blank, ``"."`` or ``".."``, not a string) raises
        :class:`~instax_async.ValidationError`.
        """
        return await self._helper(session_id, "complete", None)

    async def fail(self, session_id: str, reason: str = "Do Not Honor") -> dict[str, Any]:
        """Settle a session as declined with ``reason``."""
        return await self._helper(session_id, "fail", reason)
