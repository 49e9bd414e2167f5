"""``Client``: the synchronous client, for threads (Django, Flask, Celery, scripts).

A :class:`Client` is a blocking face on one :class:`~instax_async.AsyncSession`, which runs on
an event loop in a daemon thread of the client's own (:mod:`instax_async._background`). Every
call goes through that session: the retries, event hooks, telemetry, logging and limits are the
async client's, not a second copy of them, and the results and exceptions are the same objects.

- **Thread-safe.** Any number of threads may share one client: their calls run concurrently on
  its loop, over one connection pool of ``max_connections`` connections.
- **Fork-safe.** In a child process forked after the client was used (gunicorn ``--preload``,
  Celery's prefork pool), the first call starts a new loop with new connections; the parent's
  sockets are never used, nor closed, in the child (see :mod:`instax_async._background`), and
  the parent's client goes on working.
- **Usable from async code.** A call blocks the calling thread, even one that runs an event
  loop (as ``httpx.Client`` does); the work runs on the client's loop, so nothing deadlocks.
  The one exception: code that runs *on* the client's loop (an event hook) cannot call the
  client, which would wait for itself; it raises :class:`~instax_async.InstaxError`.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._background import BackgroundLoop, abandon_after_fork, keep_forever
from ._validate import check_count
from .client import NOT_GIVEN, AsyncSession, EventHook
from .errors import InstaxError, ValidationError
from .transports.aiohttp import AiohttpTransport
from .transports.base import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .models import BlockchainStatus, PaymentSession, SessionStatus
    from .payloads import SessionRequest
    from .polling import BlockchainPollOptions, SessionPollOptions
    from .retry import RetryPolicy

__all__ = ["Client", "StatusIterator"]

T = TypeVar("T")

_THREAD_NAME = "instax_async.Client"


class Client:
    """The synchronous client for the InstaXchange API: the methods of
    :class:`~instax_async.AsyncSession`, blocking, safe to share between threads and to use
    across ``os.fork()``.

    :param api_key: sent as ``x-api-key``; defaults to the ``INSTAX_API_KEY`` environment
        variable. Never shown in reprs, logs or errors.
    :param base_url: defaults to ``INSTAX_BASE_URL``, else ``https://instaxchange.com``.
    :param timeout: seconds each attempt may take, connection included.
    :param retry: a :class:`~instax_async.RetryPolicy`; ``RetryPolicy()`` by default.
    :param max_retries: shorthand for ``retry=RetryPolicy(max_retries=n)``.
    :param max_concurrency: the most requests this client has in flight at once, across all
        threads (``None``: bounded by ``max_connections`` only).
    :param event_hooks: ``{"request": [...], "response": [...]}`` of plain functions (an
        ``async def`` is refused): they run on the client's event loop thread, for every
        attempt, so keep them quick, and never call the client from one.
    :param account_ref_id: your merchant account's id, filled into every
        :class:`~instax_async.SessionRequest` that has none; defaults to
        ``INSTAX_ACCOUNT_REF_ID`` (as :class:`~instax_async.AsyncSession`'s).
    :param checkout_url: the checkout page's URL template with ``{id}``; defaults to
        ``INSTAX_CHECKOUT_URL``, else ``{base_url}/embed/{id}`` (as ``AsyncSession``'s).
    :param default_headers: headers sent with every request, such as
        ``{"Authorization": f"Bearer {key}"}`` (the precedence of ``AsyncSession``'s).
    :param require: :class:`~instax_async.SessionRequest` fields :meth:`create_session`
        insists on, such as ``NEWEST_API_REQUIRED`` (as ``AsyncSession``'s).
    :param max_response_bytes: the most bytes of a response body read (16 MiB by default).
    :param trust_env: honour ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` and ``.netrc``.
    :param max_connections: the size of the connection pool shared by every thread (the
        :class:`~instax_async.AiohttpTransport` ``limit``); a thread that finds every
        connection busy waits for one.

    Every call returns the same results and raises the same exceptions as ``AsyncSession``'s.
    Building a client starts nothing: its thread starts with the first call. Close it
    (``with Client() as client:`` or :meth:`close`) when done; a client left open is closed
    when it is garbage collected, or at exit::

        client = Client()              # once, at import time: threads share it
        session = client.create_session(
            SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")
        )
        print(session.iframe_url)
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        event_hooks: Mapping[str, Sequence[EventHook]] | None = None,
        account_ref_id: str | None = None,
        checkout_url: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        require: Sequence[str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        trust_env: bool = True,
        max_connections: int = 100,
    ) -> None:
        _refuse_async_hooks(event_hooks)
        if not isinstance(trust_env, bool):
            raise ValidationError(
                f"trust_env: expected True or False, got {trust_env!r}", field="trust_env"
            )
        check_count("max_connections", max_connections, minimum=1)
        self._engine = _Engine(
            {
                "api_key": api_key,
                "base_url": base_url,
                "timeout": timeout,
                "retry": retry,
                "max_retries": max_retries,
                "max_concurrency": max_concurrency,
                "account_ref_id": account_ref_id,
                "checkout_url": checkout_url,
                "default_headers": default_headers,
                "require": require,
            },
            event_hooks,
            {
                "limit": max_connections,
                "max_response_bytes": max_response_bytes,
                "trust_env": trust_env,
            },
        )
        self._session = self._base = self._engine.session()
        self._is_copy = False
        self._options: dict[str, Any] = {}
        self._root: Client | None = None
        self._closed = False
        # Closed when garbage collected, without waiting (the collector may run anywhere, the
        # loop's thread included); at exit, _background ends every loop and waits for it.
        self._finalizer = weakref.finalize(self, self._engine.close, wait=False)
        self._finalizer.atexit = False

    # -- lifecycle ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        key = "set" if self.has_api_key else "unset"
        state = " closed" if self.closed else ""
        return f"<Client base_url={self.base_url!r} api_key={key}{state}>"

    def __enter__(self) -> Client:
        self._async()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client: its connections, then its thread. Calling it again does nothing.

        Closing a copy made by :meth:`with_options` closes only the copy; closing the client
        it copies makes the copies fail with the usual "closed" error.
        """
        if not self._is_copy:
            self._engine.close()
            self._finalizer.detach()
        self._closed = True

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called (on this client or the one it copies)."""
        return self._closed or self._engine.loop.closed

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._session.base_url

    @property
    def account_ref_id(self) -> str | None:
        """The merchant account id filled into requests that have none (``None``: not set)."""
        return self._session.account_ref_id

    @property
    def checkout_url(self) -> str:
        """The checkout URL template, with ``{id}`` where the session id goes."""
        return self._session.checkout_url

    @property
    def require(self) -> tuple[str, ...]:
        """The :class:`~instax_async.SessionRequest` fields :meth:`create_session` insists on."""
        return self._session.require

    @property
    def has_api_key(self) -> bool:
        """True when an api key is configured (the key itself is never exposed)."""
        return self._session.has_api_key

    @property
    def event_hooks(self) -> dict[str, list[EventHook]]:
        """The hooks called on every attempt: ``{"request": [...], "response": [...]}``.

        A mutable dict of lists, as :attr:`AsyncSession.event_hooks
        <instax_async.AsyncSession.event_hooks>`; the hooks run on the client's thread.
        """
        return self._async().event_hooks

    @event_hooks.setter
    def event_hooks(self, hooks: Mapping[str, Sequence[EventHook]]) -> None:
        _refuse_async_hooks(hooks)
        self._async().event_hooks = hooks

    def with_options(
        self,
        *,
        timeout: float = NOT_GIVEN,
        retry: RetryPolicy | None = NOT_GIVEN,
        max_retries: int | None = NOT_GIVEN,
        event_hooks: Mapping[str, Sequence[EventHook]] | None = NOT_GIVEN,
    ) -> Client:
        """A client like this one, with the options given replaced.

        The copy shares this client's thread, connection pool, api key, base URL and
        ``max_concurrency`` bound; it has its own timeout, retry policy and event hooks, as
        :meth:`AsyncSession.with_options <instax_async.AsyncSession.with_options>`.
        """
        session = self._async()
        options: dict[str, Any] = {
            name: value
            for name, value in (
                ("timeout", timeout),
                ("retry", retry),
                ("max_retries", max_retries),
            )
            if value is not NOT_GIVEN
        }
        hooks: dict[str, Any] = {}
        if event_hooks is not NOT_GIVEN:
            _refuse_async_hooks(event_hooks)
            hooks["event_hooks"] = event_hooks
        copy_session = session.with_options(**options, **hooks)
        inherited = dict(self._options)
        if "retry" in options or "max_retries" in options:  # the new policy replaces the old
            inherited.pop("retry", None)
            inherited.pop("max_retries", None)
        copy = object.__new__(Client)
        copy._engine = self._engine
        copy._session = copy_session
        copy._base = self._base
        copy._is_copy = True
        copy._options = {**inherited, **options}
        copy._root = self._root or self  # keeps the client that owns the thread alive
        copy._closed = False
        return copy

    def _async(self) -> AsyncSession:
        """The session this client's calls go through (made anew after a fork)."""
        if self._closed or self._engine.loop.closed:
            raise InstaxError(
                "this Client is closed; create a new one (or keep it open with 'with' around "
                "all of its use)"
            )
        base = self._engine.session()
        if base is not self._base:  # a forked child's new session
            if self._is_copy:  # made again, with this copy's options and hooks
                hooks = self._session.event_hooks
                self._session = base.with_options(**self._options, event_hooks=hooks)
            else:
                self._session = base
            self._base = base
        return self._session

    def _run(self, method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self._engine.loop.run(functools.partial(method, *args, **kwargs))

    # -- the API -----------------------------------------------------------------------------

    def create_session(self, request: SessionRequest) -> PaymentSession:
        """Create a payment session: ``POST /api/session``
        (:meth:`AsyncSession.create_session <instax_async.AsyncSession.create_session>`)."""
        result: PaymentSession = self._engine.loop.run(self._async().create_session, request)
        return result

    def iframe_url(self, session_id: str) -> str:
        """The checkout page of a session, to embed in an iframe: the ``checkout_url`` template
        with the id (``{base_url}/embed/{id}`` by default)."""
        return self._async().iframe_url(session_id)

    def blockchain_status(self, tx_id: str) -> BlockchainStatus:
        """The payout's on-chain status: ``GET /utils/blockchain-status?txId={tx_id}``
        (:meth:`AsyncSession.blockchain_status
        <instax_async.AsyncSession.blockchain_status>`)."""
        result: BlockchainStatus = self._engine.loop.run(self._async().blockchain_status, tx_id)
        return result

    def session_status(self, session_id: str) -> SessionStatus:
        """A payment session's state: ``GET /api/session/{session_id}/status`` (needs an api
        key; :meth:`AsyncSession.session_status <instax_async.AsyncSession.session_status>`)."""
        result: SessionStatus = self._engine.loop.run(self._async().session_status, session_id)
        return result

    def poll_blockchain_status(
        self, tx_id: str, **options: Unpack[BlockchainPollOptions]
    ) -> StatusIterator[BlockchainStatus]:
        """Poll a payout's blockchain status; each status that differs from the last, for a
        ``for`` loop. The options (:class:`~instax_async.polling.BlockchainPollOptions`), the
        end and the errors are those of :meth:`AsyncSession.poll_blockchain_status
        <instax_async.AsyncSession.poll_blockchain_status>`, checked at the call; ``until``
        and ``on_attempt`` run on the client's event loop thread, like event hooks::

            for status in client.poll_blockchain_status(event.withdraw_tx_id):
                print(status.status, status.hash)
        """
        updates = self._async().poll_blockchain_status(tx_id, **options)
        return StatusIterator(self._engine.loop, updates)

    def wait_for_blockchain_status(
        self, tx_id: str, **options: Unpack[BlockchainPollOptions]
    ) -> BlockchainStatus:
        """Poll until the payout has a hash (or ``until``), or failed; return that final
        status (check ``.hash`` or :attr:`~instax_async.BlockchainStatus.is_failed`).

        Blocks the calling thread for up to ``timeout`` seconds (600 by default), then raises
        :class:`~instax_async.PollTimeoutError`. In a web request, prefer a background worker
        (see the Django and Flask guide). The options are :meth:`poll_blockchain_status`'s.
        """
        result: BlockchainStatus = self._run(
            self._async().wait_for_blockchain_status, tx_id, **options
        )
        return result

    def wait_for_blockchain_hash(
        self, tx_id: str, **options: Unpack[BlockchainPollOptions]
    ) -> BlockchainStatus:
        """The same as :meth:`wait_for_blockchain_status` (the name of
        :meth:`AsyncSession.wait_for_blockchain_hash
        <instax_async.AsyncSession.wait_for_blockchain_hash>`)."""
        return self.wait_for_blockchain_status(tx_id, **options)

    def poll_session_status(
        self, session_id: str, **options: Unpack[SessionPollOptions]
    ) -> StatusIterator[SessionStatus]:
        """Poll a session's status; each one that differs from the last, for a ``for`` loop,
        up to a terminal status (:meth:`AsyncSession.poll_session_status
        <instax_async.AsyncSession.poll_session_status>`; the options are
        :class:`~instax_async.polling.SessionPollOptions`)."""
        updates = self._async().poll_session_status(session_id, **options)
        return StatusIterator(self._engine.loop, updates)

    def wait_for_session_status(
        self, session_id: str, **options: Unpack[SessionPollOptions]
    ) -> SessionStatus:
        """Poll until the session is ``completed`` or ``failed`` (or ``until``); return it.
        Blocks the calling thread for up to ``timeout`` seconds."""
        result: SessionStatus = self._run(
            self._async().wait_for_session_status, session_id, **options
        )
        return result

    def wait_for_session(
        self, session_id: str, **options: Unpack[SessionPollOptions]
    ) -> SessionStatus:
        """The same as :meth:`wait_for_session_status` (the name of
        :meth:`AsyncSession.wait_for_session <instax_async.AsyncSession.wait_for_session>`)."""
        return self.wait_for_session_status(session_id, **options)


class StatusIterator(Generic[T]):
    """The statuses of a poll, one per ``next()`` (what :meth:`Client.poll_blockchain_status`
    and :meth:`Client.poll_session_status` return).

    Leaving the ``for`` loop early is fine: the poll stops when the iterator is closed
    (:meth:`close`, or a ``with`` block around it) or dropped.
    """

    def __init__(self, loop: BackgroundLoop, updates: AsyncGenerator[T, None]) -> None:
        self._loop = loop
        self._updates = updates
        self._generation = loop.generation
        self._done = False
        self._lock = threading.Lock()  # one next() at a time: the generator runs one step

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        with self._lock:
            if self._done:
                raise StopIteration
            self._check_process()
            try:
                status: T = self._loop.run(_next_of, self._updates)
            except StopAsyncIteration:
                self._done = True
                raise StopIteration from None
            except BaseException:
                self._done = True  # a poll that raised has ended
                raise
            return status

    def __enter__(self) -> StatusIterator[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the poll (its span ends, no more requests). Closing twice does nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
            if self._generation == self._loop.generation and not self._loop.closed:
                self._loop.run(_close_of, self._updates)

    def _check_process(self) -> None:
        if self._generation != self._loop.generation:
            self._done = True
            raise InstaxError(
                "this poll was started before os.fork(), in the parent process; start a new "
                "one in this process (the client itself works here)"
            )

    def __del__(self) -> None:
        # Dropped unfinished, its generator is closed by the client's loop (asyncio's own
        # finalizer for async generators). In a forked child that loop is the parent's: the
        # generator is kept instead, so that its finalizer never wakes the parent's loop.
        if self._generation != self._loop.generation:
            keep_forever(self._updates)


async def _next_of(updates: AsyncGenerator[T, None]) -> T:
    return await updates.__anext__()


async def _close_of(updates: AsyncGenerator[Any, None]) -> None:
    await updates.aclose()


class _Engine:
    """What a client and the copies :meth:`Client.with_options` makes of it share: the
    background loop, and the transport and ``AsyncSession`` that run on it (built anew in a
    forked child)."""

    def __init__(
        self,
        session_options: dict[str, Any],
        event_hooks: Mapping[str, Sequence[EventHook]] | None,
        transport_options: dict[str, Any],
    ) -> None:
        self.loop = BackgroundLoop(_THREAD_NAME)
        self._session_options = session_options
        self._transport_options = transport_options
        self._lock = threading.Lock()
        # checks every option now, in the caller's thread
        self._session: AsyncSession | None
        self._transport: AiohttpTransport | None
        self._session, self._transport = self._build(event_hooks)
        self._hooks = self._session.event_hooks
        abandon_after_fork(self)

    def _build(
        self, event_hooks: Mapping[str, Sequence[EventHook]] | None
    ) -> tuple[AsyncSession, AiohttpTransport]:
        transport = AiohttpTransport(**self._transport_options)
        session = AsyncSession(
            **self._session_options, event_hooks=event_hooks, transport=transport
        )
        return session, transport

    def session(self) -> AsyncSession:
        """The client's session in this process."""
        with self._lock:
            if self._session is None:
                self._session, self._transport = self._build(self._hooks)
            return self._session

    def close(self, *, wait: bool = True) -> None:
        session, transport = self._session, self._transport
        if session is None or transport is None:  # abandoned in a fork: nothing of this process
            self.loop.close(wait=wait)
            return

        async def cleanup() -> None:
            await session.aclose()
            await transport.aclose()

        self.loop.close(cleanup, wait=wait)

    def abandon_in_child(self) -> None:
        """In a forked child: keep the parent's session and transport (and their sockets)
        referenced forever, unused; the next call builds new ones."""
        if self._session is not None:
            self._hooks = self._session.event_hooks  # as the user left them
        keep_forever(self._session, self._transport)
        self._session = self._transport = None
        self._lock = threading.Lock()


def _is_async(hook: object) -> bool:
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _refuse_async_hooks(hooks: object) -> None:
    """A ``ValidationError`` for an ``async def`` hook: a Client calls its hooks as plain
    functions. (Other mistakes are ``AsyncSession``'s to report.)"""
    if not isinstance(hooks, Mapping):
        return
    for kind, functions in hooks.items():
        if isinstance(functions, (str, bytes)) or not isinstance(functions, Sequence):
            continue
        for function in functions:
            if _is_async(function):
                name = getattr(function, "__qualname__", type(function).__name__)
                raise ValidationError(
                    f"event_hooks[{kind!r}]: {name} is an async function; a Client's hooks "
                    "are plain functions (def), called on its own thread. Use AsyncSession "
                    "for async hooks.",
                    field="event_hooks",
                )
