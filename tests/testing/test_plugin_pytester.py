"""The pytest plugin as a user's project meets it: pytest in a subprocess, in a temporary project.

Each run starts a fresh interpreter that finds the plugin through the installed ``pytest11``
entry point (there is no conftest import of it), with ``-W error`` so that any warning, an
unclosed resource included, fails the run. An autouse fixture of the temporary project asserts
after every test, once the plugin's fixtures are torn down, that no task is left running.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import pytest_asyncio

from tests.markdown_blocks import blocks

TESTING_PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
PYTEST_ASYNCIO = tuple(int(part) for part in pytest_asyncio.__version__.split(".")[:2])


def docs_example() -> str:
    """The complete test file of docs/testing.md ("Testing your integration"), exactly as shown."""
    for block in blocks(TESTING_PAGE):
        if block.kind == "fragment" and "import pytest_asyncio" in block.source:
            return block.source
    raise AssertionError("docs/testing.md shows no test file for the pytest plugin")


def docs_settings() -> str:
    """The pytest-asyncio settings docs/testing.md tells a project to set: its pyproject.toml."""
    page = TESTING_PAGE.read_text(encoding="utf-8")
    found = re.search(
        r"```toml\n(# pyproject\.toml\n\[tool\.pytest\.ini_options\]\n.*?)```", page, re.S
    )
    assert found, "docs/testing.md shows no pyproject.toml with the pytest-asyncio settings"
    settings = found.group(1)
    if PYTEST_ASYNCIO < (0, 24):  # the option (and its warning) came in 0.24
        settings = re.sub(r"(?m)^asyncio_default_fixture_loop_scope.*\n", "", settings)
    return settings


NO_TASK_LEFT_BEHIND = """
import asyncio

import pytest_asyncio


@pytest_asyncio.fixture(autouse=True)
async def no_task_left_behind():
    yield
    left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert not left, f"tasks still running after the test: {left}"


@pytest_asyncio.fixture
async def fixture_loop():
    \"\"\"The event loop the async fixtures run in.\"\"\"
    return asyncio.get_running_loop()
"""

ORDER = """
from instax_async import SessionRequest

def order(reference):
    return SessionRequest.sending(
        from_amount="50", from_currency="USD", to_currency="USDT", webhook_ref=reference
    )
"""

STRICT_TESTS = (
    ORDER
    + """
import sys

import aiohttp
import pytest

from instax_async import ServerError
from instax_async.testing import make_webhook


@pytest.mark.asyncio
async def test_pays_and_declines(pytestconfig, instax_client, instax_sandbox, instax_webhooks):
    plugin = pytestconfig.pluginmanager.get_plugin("instax_async")  # the entry point's name
    assert plugin is sys.modules["instax_async.testing.plugin"]
    paid = await instax_client.create_session(order("order-paid"))
    declined = await instax_client.create_session(order("order-declined"))
    await instax_sandbox.complete(paid.id)
    await instax_sandbox.fail(declined.id)
    completed = await instax_webhooks.wait_for(session_id=paid.id, status="completed")
    failed = await instax_webhooks.wait_for(session_id=declined.id, status="failed")
    assert (completed.reference, failed.reference) == ("order-paid", "order-declined")
    assert failed.data.status_reason == "Do Not Honor"


@pytest.mark.asyncio
@pytest.mark.instax_sandbox(error_rate=1.0)
async def test_the_marker_injects_faults(instax_client):
    with pytest.raises(ServerError):
        await instax_client.create_session(order("order-1"))


@pytest.mark.asyncio
async def test_a_wrong_signature_is_refused(instax_webhooks):
    body, headers = make_webhook("whsec_wrong")
    async with aiohttp.ClientSession() as http:
        async with http.post(instax_webhooks.url, data=body, headers=headers) as answer:
            assert answer.status == 401
    assert instax_webhooks.refused == 1 and instax_webhooks.events == []


@pytest.mark.asyncio
@pytest.mark.instax_sandbox(error_rat=1.0)
async def test_an_unknown_option(instax_sandbox):
    raise AssertionError("never reached: the fixture fails first")


@pytest.mark.asyncio
@pytest.mark.instax_sandbox(latency=0.1)
async def test_a_marker_without_the_sandbox(instax_webhooks):
    raise AssertionError("never reached: the marker fails the test first")


@pytest.mark.asyncio
async def test_nothing_arrives(instax_webhooks):
    await instax_webhooks.wait_for(reference="order-nobody-paid", timeout=0.1)
"""
)

AUTO_TESTS = (
    ORDER
    + """
import pytest

from instax_async import ServerError


async def test_pays(instax_client, instax_sandbox, instax_webhooks):
    session = await instax_client.create_session(order("order-1"))
    settled = await instax_sandbox.complete(session.id)
    event = await instax_webhooks.wait_for(reference="order-1", status="completed")
    assert event.withdraw_tx_id == settled["withdraw_tx_id"]
    payout = await instax_client.wait_for_blockchain_hash(event.withdraw_tx_id, interval=0.01)
    assert payout.hash.startswith("0x")


@pytest.mark.instax_sandbox(error_rate=1.0)
async def test_the_marker_injects_faults(instax_client):
    with pytest.raises(ServerError):
        await instax_client.create_session(order("order-1"))
"""
)


# Each fixture in a test of each loop scope, a second test in a module loop that is still open,
# and a synchronous test: run under each fixture loop scope. fixture_loop shows that the test's
# loop is the fixtures' exactly when their scopes are the same.
LOOP_SCOPE_TESTS = (
    ORDER
    + """
import asyncio
import json
import urllib.request

import pytest

from instax_async import APIConnectionError, InstaxError

IN_EACH_LOOP = [
    pytest.param("function", marks=pytest.mark.asyncio(loop_scope="function")),
    pytest.param("module", marks=pytest.mark.asyncio(loop_scope="module")),
]


@pytest.mark.parametrize("test_loop", IN_EACH_LOOP)
@pytest.mark.parametrize("run", [1, 2])
async def test_the_fixtures_answer(
    run, test_loop, fixture_loop, pytestconfig, instax_client, instax_sandbox, instax_webhooks
):
    fixture_scope = pytestconfig.getini("asyncio_default_fixture_loop_scope")
    assert (asyncio.get_running_loop() is fixture_loop) == (test_loop == fixture_scope)
    reference = f"order-{test_loop}-{run}"
    session = await instax_client.create_session(order(reference))
    completed = asyncio.ensure_future(
        instax_webhooks.wait_for(reference=reference, status="completed")
    )
    settled = await instax_sandbox.complete(session.id)
    event = await completed  # waited for before it arrived
    assert event.withdraw_tx_id == settled["withdraw_tx_id"]
    pending = await instax_webhooks.wait_for(reference=reference, status="pending")
    assert pending.session_id == session.id  # arrived before it was waited for
    payout = await instax_client.wait_for_blockchain_hash(event.withdraw_tx_id, interval=0.01)
    assert payout.hash.startswith("0x")

    # stopped from the test, in their own loops
    never = asyncio.ensure_future(instax_webhooks.wait_for(reference="order-never"))
    await asyncio.sleep(0)  # it waits
    await instax_webhooks.stop()
    with pytest.raises(InstaxError, match="the webhook recorder stopped"):
        await never
    await instax_sandbox.stop()
    with pytest.raises(APIConnectionError):
        await instax_client.with_options(max_retries=0).create_session(order(reference))
    assert (await instax_sandbox.start()).startswith("http://127.0.0.1:")


def test_a_synchronous_test_reaches_the_servers(instax_sandbox, instax_webhooks):
    with urllib.request.urlopen(f"{instax_sandbox.url}/sandbox/webhooks", timeout=5) as answer:
        assert answer.status == 200 and json.load(answer) is not None
"""
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A temporary project that does not mention the plugin anywhere."""
    names = {ep.name for ep in entry_points(group="pytest11")}
    if "instax_async" not in names:
        pytest.fail(
            "the instax_async pytest11 entry point is not installed: "
            "reinstall the package (pip install -e '.[dev]')"
        )
    pytester.makeconftest(NO_TASK_LEFT_BEHIND)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # hypothesis' plugin is the slowest import of a run and none of these tests needs it
    options = ("-W", "error", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result = pytester.runpytest_subprocess(*options, *args)
    # what asyncio and aiohttp say, outside the warnings system, about what was left open
    output = result.stdout.str() + result.stderr.str()
    for leftover in ("Task was destroyed", "Unclosed", "unclosed"):
        assert leftover not in output, output
    return result


def add_docs_example(pytester: pytest.Pytester) -> None:
    """The test file of docs/testing.md, as a user's tests/test_checkout.py."""
    (pytester.path / "test_checkout.py").write_text(docs_example())


@pytest.mark.subprocess
def test_strict_mode_the_fixtures_and_the_docs_example(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(docs_settings())
    project.makepyfile(test_strict=STRICT_TESTS)
    add_docs_example(project)
    result = run(project, "-rfE", "-o", "asyncio_mode=strict")
    result.assert_outcomes(passed=3 + 3, failed=1, errors=2, warnings=0)
    result.stdout.fnmatch_lines_random(
        [
            "*@pytest.mark.instax_sandbox: unknown option 'error_rat'; "
            "did you mean 'error_rate'? the options are SandboxConfig fields: webhook_url, *",
            "*@pytest.mark.instax_sandbox configures the instax_sandbox fixture, "
            "which test_a_marker_without_the_sandbox does not use*",
            "*TimeoutError: no webhook with reference='order-nobody-paid' arrived within 0.1 s;"
            " none arrived",
            "test_checkout.py ...*",
        ]
    )
    result.stdout.no_fnmatch_line("*never reached*")


@pytest.mark.subprocess
def test_the_docs_settings_the_fixtures_and_the_docs_example(project: pytest.Pytester) -> None:
    """Auto mode and fixtures in the test's loop, as docs/testing.md sets them; no warning."""
    project.makepyprojecttoml(docs_settings())
    project.makepyfile(test_auto=AUTO_TESTS, test_loop_scopes=LOOP_SCOPE_TESTS)
    add_docs_example(project)
    run(project).assert_outcomes(passed=2 + 3 + 5, warnings=0)


@pytest.mark.subprocess
@pytest.mark.skipif(PYTEST_ASYNCIO < (0, 24), reason="loop scopes of their own came in 0.24")
@pytest.mark.parametrize("fixture_loop_scope", ["module", "session"])
def test_the_fixtures_answer_tests_in_another_loop(
    project: pytest.Pytester, fixture_loop_scope: str
) -> None:
    """Fixtures in a module or session loop; tests in a function or module loop, or none."""
    project.makepyprojecttoml(docs_settings())
    project.makepyfile(test_loop_scopes=LOOP_SCOPE_TESTS)
    option = f"asyncio_default_fixture_loop_scope={fixture_loop_scope}"
    run(project, "-o", option).assert_outcomes(passed=5, warnings=0)


@pytest.mark.subprocess
def test_without_pytest_asyncio_the_fixtures_say_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_uses_the_sandbox(instax_sandbox):
            raise AssertionError("never reached")
        """
    )
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*the instax_webhooks fixture is async and needs pytest-asyncio (0.23 or later)*"]
    )
