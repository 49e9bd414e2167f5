"""The transports' reprs, and the guards on what they are given."""

from __future__ import annotations

import pytest

from instax_async import (
    MockTransport,
    Request,
    Response,
)
from instax_async.transports.httpx import HttpxTransport


def test_transport_reprs_and_guards() -> None:
    def handler(request: Request) -> Response:
        return Response(200, {}, b"{}")

    assert "handler" in repr(MockTransport(handler))
    with pytest.raises(TypeError, match="callable"):
        MockTransport("nope")  # type: ignore[arg-type]
    assert "owned" in repr(HttpxTransport())
