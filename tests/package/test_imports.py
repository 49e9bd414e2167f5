"""What importing the package costs and loads: public names resolve lazily from their homes."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_every_public_name_resolves_lazily_and_matches_all() -> None:
    import instax_async

    assert set(instax_async._LAZY) == set(instax_async.__all__) - {"__version__"}
    for name in instax_async.__all__:
        assert getattr(instax_async, name) is not None
    assert set(instax_async.__all__) <= set(dir(instax_async))
    with pytest.raises(AttributeError, match="no_such_name"):
        instax_async.no_such_name  # noqa: B018


@pytest.mark.subprocess
def test_importing_the_package_or_the_pytest_plugin_loads_nothing_heavy() -> None:
    code = (
        "import sys, instax_async, instax_async.testing, instax_async.testing.plugin\n"
        "heavy = ['aiohttp', 'attrs', 'cattrs', 'instax_async.models', 'instax_async.client']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.subprocess
def test_the_client_and_a_request_load_no_cattrs_until_a_model_is_structured() -> None:
    code = (
        "import sys\n"
        "from instax_async import AsyncSession, SessionRequest\n"
        "import instax_async.webhooks\n"
        "print('cattrs' in sys.modules, 'opentelemetry' in sys.modules)\n"
        "from instax_async.serialization import converter, get_converter\n"
        "print('cattrs' in sys.modules, converter is get_converter())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False", "True", "True"]


@pytest.mark.subprocess
def test_the_client_import_builds_nothing_a_client_does_not_need_yet() -> None:
    # The webhook and status models, jsjson, MockTransport and the poll engine (PollOptions)
    # load on first use. (retry.py, one module with the transient rule the requester applies,
    # loads with the client: RetryPolicy costs less than a split by load time would save.)
    code = (
        "import sys\n"
        "from instax_async import AsyncSession, SessionRequest\n"
        "lazy = ['instax_async._webhook_models', 'instax_async._status_models',\n"
        "        'instax_async.jsjson', 'instax_async.transports.mock',\n"
        "        'instax_async.polling']\n"
        "print([name for name in lazy if name in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_names_loaded_on_first_use_resolve_from_their_public_homes() -> None:
    import importlib

    from instax_async import jsjson, models, serialization, transports
    from instax_async.transports import mock

    for name, home in models._LAZY.items():
        assert getattr(models, name) is getattr(importlib.import_module(home, "instax_async"), name)
    assert set(models.__all__) <= set(dir(models))
    assert serialization.MAX_JSON_DEPTH == jsjson.MAX_JSON_DEPTH
    assert transports.MockTransport is mock.MockTransport
    for module in (models, serialization, transports):
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name  # noqa: B018
