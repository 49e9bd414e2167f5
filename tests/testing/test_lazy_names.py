"""The testing package loads its names on first use."""

from __future__ import annotations

import pytest


def test_the_testing_package_resolves_its_names_lazily() -> None:
    import instax_async.testing as testing

    assert callable(testing.make_webhook) and testing.WebhookRecorder.__name__ == "WebhookRecorder"
    with pytest.raises(AttributeError, match="nothing"):
        testing.nothing  # noqa: B018
