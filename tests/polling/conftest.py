"""The fake clock every polling test may ask for."""

from __future__ import annotations

import pytest

from tests.polling.fakes import FakeTime


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()
