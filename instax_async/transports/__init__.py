"""Transports: how requests travel. ``aiohttp`` is the default; ``httpx`` is an optional extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .aiohttp import AiohttpTransport
from .base import Request, Response, Transport

if TYPE_CHECKING:
    from .mock import MockTransport

__all__ = ["AiohttpTransport", "MockTransport", "Request", "Response", "Transport"]


def __getattr__(name: str) -> Any:
    # ``MockTransport`` is for tests: loaded on first access (PEP 562), not with the client.
    if name == "MockTransport":
        from .mock import MockTransport

        return MockTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
