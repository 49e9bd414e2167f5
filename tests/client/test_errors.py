"""The error tree: what each error is, besides an InstaxError."""

from __future__ import annotations

from instax_async import (
    APIStatusError,
    InstaxError,
    PollTimeoutError,
)
from instax_async.errors import status_error_class


def test_poll_timeout_error_is_a_timeout_error_with_the_last_status() -> None:
    error = PollTimeoutError("no hash after 600 s", last_status={"status": "pending"})
    assert isinstance(error, TimeoutError) and isinstance(error, InstaxError)
    assert error.last_status == {"status": "pending"}


def test_status_error_class_for_unlisted_status() -> None:
    assert status_error_class(418) is APIStatusError
