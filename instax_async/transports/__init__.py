"""Transports: how requests travel. ``aiohttp`` is the default; ``httpx`` is an optional extra."""

from .aiohttp import AiohttpTransport
from .base import Request, Response, Transport
from .mock import MockTransport

__all__ = ["AiohttpTransport", "MockTransport", "Request", "Response", "Transport"]
