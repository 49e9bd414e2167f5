"""Integrations: webhook receivers for web frameworks (aiohttp, ASGI) over one framework-free
core, and, as optional extras, a Redis-backed dedupe store (:mod:`.redis`) and durable payout
watches on arq workers (:mod:`.arq`)."""
