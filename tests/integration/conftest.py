"""Fixtures of the integration tests that need real services (Redis)."""

from tests.integration.redis_fixtures import redis_client, redis_url

__all__ = ["redis_client", "redis_url"]
