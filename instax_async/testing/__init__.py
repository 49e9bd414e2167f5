"""Test your own InstaXchange integration: a pytest plugin and webhook factories.

Installing ``instax-async`` registers a pytest plugin (entry point ``instax_async``, module
:mod:`instax_async.testing.plugin`) that gives every test run three fixtures, with nothing to
configure:

- ``instax_webhooks`` — a :class:`WebhookRecorder`: a webhook receiver on a free loopback port
  that verifies every delivery and records it;
- ``instax_sandbox`` — a started :class:`~instax_async.sandbox.Sandbox` whose webhooks go to
  ``instax_webhooks``, tuned for tests (no artificial delays, payouts confirmed after one
  pending poll);
- ``instax_client`` — an :class:`~instax_async.AsyncSession` talking to ``instax_sandbox``.

``@pytest.mark.instax_sandbox(error_rate=0.3, ...)`` replaces the sandbox's test defaults with
:class:`~instax_async.sandbox.SandboxConfig` fields for one test. The fixtures need
pytest-asyncio (``strict`` or ``auto`` mode)::

    @pytest.mark.asyncio
    async def test_paid(instax_client, instax_sandbox, instax_webhooks):
        session = await instax_client.create_session(
            SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT"))
        await instax_sandbox.complete(session.id)
        event = await instax_webhooks.wait_for(session_id=session.id, status="completed")

:func:`make_webhook` builds a signed webhook for unit tests of your own webhook endpoint.

Importing this package stays cheap: aiohttp's server side and the sandbox load only when a
fixture or a recorder starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._factories import make_webhook
    from ._recorder import WebhookRecorder

__all__ = ["WebhookRecorder", "make_webhook"]

# Imported on first use: pytest imports this package with the plugin in every project.
_LAZY = {"WebhookRecorder": "._recorder", "make_webhook": "._factories"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'instax_async.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
