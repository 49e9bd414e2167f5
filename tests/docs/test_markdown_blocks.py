"""The collector that runs documentation pages' Python blocks (tests/markdown_blocks.py)."""

from __future__ import annotations

import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pytest

from tests.doc_fixtures import Recorder
from tests.markdown_blocks import MarkdownError, Page, blocks, defines_tests

F = "```"


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(tmp_path: Path, text: str, **fixtures: Any) -> dict[str, Any]:
    with Page(page(tmp_path, text), fixtures) as running:
        running.run()
        return running.namespace


def test_blocks_are_found_in_order_with_their_kind_and_line(tmp_path: Path) -> None:
    path = page(
        tmp_path,
        f"""\
        # Title

        {F}python
        a = 1
        {F}

        {F}sh
        echo not python
        {F}

        - a list item:

          {F}py title="x.py"
          b = a + 1
            # indented
          {F}

        <!-- test
          assert b == 2
        -->

        <!-- a comment readers do not see
        {F}python
        never = run
        {F}
        -->
        <!-- one line -->

        ~~~~python3
        {F}
        c = 3
        ~~~~

        <!-- fragment: needs your FastAPI app -->
        {F}python
        app.add_route("/", handler)
        {F}

        {F}Python
        # myapp/tasks.py
        d = 4
        {F}
        """,
    )
    found = blocks(path)
    assert [(b.kind, b.line) for b in found] == [
        ("example", 4),
        ("example", 14),
        ("hidden", 19),
        ("example", 30),
        ("fragment", 36),
        ("module", 40),
    ]
    assert found[0].source == "a = 1\n"
    assert found[1].source == "b = a + 1\n  # indented\n"
    assert found[2].source == "assert b == 2\n"
    assert found[3].source == f"{F}\nc = 3\n"
    assert found[4].reason == "needs your FastAPI app"
    assert found[4].source == 'app.add_route("/", handler)\n'  # the reader's code only
    assert found[5].module == "myapp.tasks"
    assert found[0].where == "page.md:4"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{F}python\na = 1\n", "page.md:1: the code block is never closed"),
        ("<!-- test\na = 1\n", "page.md:1: the HTML comment is never closed"),
        ("<!-- note\n", "page.md:1: the HTML comment is never closed"),
        (f"<!-- fragment: -->\n{F}python\na = 1\n{F}\n", "page.md:1: .* must say why"),
        (f"<!-- not run:  -->\n{F}sh\ninstax demo\n{F}\n", "page.md:1: .* must say why"),
        # the old markers, inside the block: shown to readers and copied
        (
            f"{F}python\n# fragment: a reason\na = 1\n{F}\n",
            "page.md:2: '# fragment:' would be shown to readers and copied: write it as "
            "<!-- fragment: <why> --> on the line before the block",
        ),
        (f"{F}sh\n# not run: a reason\ninstax demo\n{F}\n", "page.md:2: '# not run:' would be"),
        # a marker stands right before the block it marks, of its language
        (
            f"<!-- fragment: a reason -->\n\n{F}python\na = 1\n{F}\n",
            "page.md:1: <!-- fragment: --> must stand right before a code block",
        ),
        ("text\n<!-- not run: a reason -->\n", "page.md:2: .* must stand right before"),
        (
            f"<!-- not run: a reason -->\n{F}python\na = 1\n{F}\n",
            "page.md:1: <!-- not run: --> marks a bash or console or sh or shell block, not python",
        ),
        (
            f"<!-- fragment: a reason -->\n{F}\na = 1\n{F}\n",
            "page.md:1: <!-- fragment: --> marks a py or python or python3 block, not one without",
        ),
    ],
)
def test_a_page_that_breaks_the_conventions_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(MarkdownError, match=message):
        blocks(page(tmp_path, text))


def test_blocks_share_one_namespace_and_hidden_code_fills_in_and_checks(tmp_path: Path) -> None:
    namespace = run(
        tmp_path,
        f"""\
        <!-- test
        secret = "s3cret"
        -->

        {F}python
        import asyncio

        async def greet():
            await asyncio.sleep(0)
            return f"hello {{secret}}"

        print(await greet())
        {F}

        <!-- test
        assert printed == "hello s3cret\\n"
        -->

        {F}python
        # no loop runs here: asyncio.run() works as shown
        result = asyncio.run(greet())
        print(result, given)
        {F}
        """,
        given="fixture",
    )
    assert namespace["result"] == "hello s3cret"
    assert namespace["printed"] == "hello s3cret fixture\n"


def test_test_functions_an_example_defines_are_called(tmp_path: Path) -> None:
    calls: list[str] = []
    run(
        tmp_path,
        f"""\
        {F}python
        def test_sync():
            calls.append("sync")

        async def test_async():
            calls.append("async")

        def helper_test():
            calls.append("not a test")
        {F}

        {F}python
        x = 1  # test_sync and test_async are not defined again: not called again
        {F}
        """,
        calls=calls,
    )
    assert sorted(calls) == ["async", "sync"]


def test_a_test_function_that_takes_parameters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MarkdownError, match=r"page.md:2: test_x\(\) must take no parameters"):
        run(tmp_path, f"{F}python\ndef test_x(tmp_path):\n    pass\n{F}\n")


def test_defines_tests(tmp_path: Path) -> None:
    found = blocks(page(tmp_path, f"{F}python\nasync def test_a(): ...\n{F}\n{F}py\nx = 1\n{F}\n"))
    assert [defines_tests(block) for block in found] == [True, False]


def test_a_fragment_is_compiled_and_its_imports_resolved_but_not_run(tmp_path: Path) -> None:
    namespace = run(
        tmp_path,
        f"""\
        <!-- fragment: shows a shape, not a program -->
        {F}python
        import os
        from os import path, sep
        from instax_async import transports
        from instax_async.transports import *
        await undefined_coroutine()
        raise SystemExit("never runs")
        {F}
        """,
    )
    assert "os" not in namespace


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("import instax_async.nowhere", "ModuleNotFoundError"),
        ("from instax_async import no_such_name", "ModuleNotFoundError"),
        ("def broken(:", "SyntaxError"),
    ],
)
def test_a_fragment_that_would_not_compile_or_import_fails(
    tmp_path: Path, code: str, error: str
) -> None:
    with pytest.raises(MarkdownError, match=f"page.md:3: the fragment failed: {error}"):
        run(tmp_path, f"<!-- fragment: a reason -->\n{F}python\n{code}\n{F}\n")


def test_a_module_block_is_importable_and_sees_only_the_fixtures(tmp_path: Path) -> None:
    orders = Recorder("orders")
    namespace = run(
        tmp_path,
        f"""\
        {F}python
        page_only = "not seen by modules"
        {F}

        {F}python
        # docsapp/tasks.py
        def record(reference):
            orders.mark_paid(reference)

        seen = "page_only" in globals()
        {F}

        <!-- test
        import sys
        from docsapp.tasks import record, seen
        assert not seen
        assert sys.modules["docsapp"].tasks is sys.modules["docsapp.tasks"]
        record("order-1")
        -->
        """,
        orders=orders,
    )
    assert orders.calls == [("mark_paid", "order-1")]
    assert "docsapp.tasks" not in sys.modules and "docsapp" not in sys.modules
    assert namespace["seen"] is False


@pytest.mark.parametrize("module", ["json", "json/tool", "json/new"])
def test_a_module_block_may_not_replace_or_extend_a_real_module(
    tmp_path: Path, module: str
) -> None:
    with pytest.raises(MarkdownError, match=r"page\.md:2: the module json exists already"):
        run(tmp_path, f"{F}python\n# {module}.py\nx = 1\n{F}\n")
    assert not hasattr(sys.modules["json"], "new")


def test_a_failure_names_the_block_and_its_traceback_the_page_line(tmp_path: Path) -> None:
    text = f"""\
        Some prose.

        {F}python
        x = 1
        assert x == 2, "x is one"
        {F}
        """
    with pytest.raises(
        MarkdownError, match=r"page\.md:4: the example failed: AssertionError: x is one"
    ):
        run(tmp_path, text)
    path = tmp_path / "page.md"
    with Page(path) as running:
        try:
            running.run()
        except MarkdownError as exc:
            frame = traceback.extract_tb(exc.__cause__.__traceback__)[-1]  # type: ignore[union-attr]
    assert (frame.filename, frame.lineno, frame.line) == (
        str(path),
        5,
        'assert x == 2, "x is one"',
    )


def test_hidden_code_that_fails_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(MarkdownError, match=r"page\.md:2: hidden test code failed: NameError"):
        run(tmp_path, "<!-- test\nundefined_name\n-->\n")


def test_a_skip_in_hidden_code_skips_the_rest_of_the_page(tmp_path: Path) -> None:
    text = f"<!-- test\nimport pytest\npytest.skip('no Redis')\n-->\n{F}python\n1 / 0\n{F}\n"
    with pytest.raises(pytest.skip.Exception, match=r"page\.md:2: no Redis"):
        run(tmp_path, text)


def test_the_exit_stack_closes_and_pending_tasks_are_cancelled(tmp_path: Path) -> None:
    events: list[str] = []
    namespace = run(
        tmp_path,
        f"""\
        {F}python
        import asyncio

        async def forever():
            try:
                await asyncio.Event().wait()
            finally:
                events.append("task cancelled")

        async def close():
            events.append("stack closed")

        task = asyncio.get_running_loop().create_task(forever())
        exit_stack.push_async_callback(close)
        await asyncio.sleep(0)
        {F}
        """,
        events=events,
    )
    assert events == ["stack closed", "task cancelled"]
    assert namespace["task"].cancelled()


async def test_a_recorder_records_calls_awaited_or_not() -> None:
    orders = Recorder("orders")
    await orders.mark_paid("order-1", amount=3)
    orders.note("order-2")
    assert orders.calls == [("mark_paid", "order-1", {"amount": 3}), ("note", "order-2")]
    assert orders.named("note") == [("order-2",)]
    assert "order-2" in repr(orders)
    with pytest.raises(AttributeError):
        orders._private  # noqa: B018


def test_a_command_example_runs_with_instax_in_the_workdir_and_substitutions(
    tmp_path: Path,
) -> None:
    text = f"""\
    <!-- test
    (workdir / "body.json").write_text('{{"a": 1}}\\n')
    shell_substitutions["KEY"] = "real-key"
    -->

    {F}sh
    instax --version
    cat body.json
    echo KEY
    {F}

    <!-- test
    version, body, key = printed.splitlines()
    assert version.startswith("instax (instax-async) ") and body == '{{"a": 1}}', printed
    assert key == "real-key"
    -->

    <!-- not run: it would never end -->
    {F}sh
    instax sandbox
    {F}

    {F}sh
    pip install instax-async
    {F}
    """
    path = page(tmp_path, text)
    assert [b.kind for b in blocks(path)] == ["hidden", "shell", "hidden", "not-run"]
    assert blocks(path)[3].reason == "it would never end"
    assert blocks(path)[3].source == "instax sandbox\n"
    with Page(path) as running:
        workdir = running.workdir
        running.run()
        assert workdir.is_dir()
    assert not workdir.exists()  # removed with the page


def test_a_failing_command_example_names_its_block_and_shows_the_output(tmp_path: Path) -> None:
    path = page(tmp_path, f"{F}sh\ninstax session status\n{F}\n")
    with pytest.raises(MarkdownError, match=r"page.md:2: the commands failed with exit status 2"):
        run(tmp_path, path.read_text())


def test_a_marker_in_a_list_item_stands_indented_before_its_block(tmp_path: Path) -> None:
    text = (
        f"- an item:\n\n  <!-- not run: runs until stopped -->\n  {F}sh\n  instax sandbox\n  {F}\n"
    )
    [block] = blocks(page(tmp_path, text))
    assert (block.kind, block.line, block.source) == ("not-run", 5, "instax sandbox\n")
