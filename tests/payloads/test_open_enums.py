"""Open str enums: an unknown value is kept as a plain string, a non-string is refused."""

from __future__ import annotations

import pytest

from instax_async.serialization import converter


async def test_open_enum_hook_reraises_for_non_strings() -> None:
    from instax_async.payloads import AmountDirection

    with pytest.raises(Exception):  # noqa: B017 - cattrs may wrap the ValueError
        converter.structure(3, AmountDirection)
    assert converter.structure("sideways", AmountDirection) == "sideways"
