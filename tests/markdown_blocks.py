"""Run the Python examples of a Markdown page, so that documentation cannot rot.

What a page writes (the conventions, all visible in the Markdown source):

- Every fenced block whose language is ``python`` (or ``py``, ``python3``) is an **example**.
  The examples of a page run in page order, in **one namespace per page**: a later block sees
  the names an earlier one defined, as a reader does.
- A block right after the line ``<!-- fragment: <reason> -->`` is a **fragment**: shown to the
  reader, never run. It is compiled, and every module and name it imports must exist, so a
  renamed API still breaks the page. The reason is for the page's maintainers: an HTML comment
  is neither shown nor copied (a ``# fragment:`` first line would be both, and is refused).
- A block whose first line is ``# <path>.py`` (``# myapp/tasks.py``) is a **module**: it runs
  as the module ``myapp.tasks``, importable under that name for the rest of the page (say, by an
  arq job path), in a namespace of its own that starts with the page's fixtures only.
- **Hidden code** sits in an HTML comment that readers never see::

      <!-- test
      orders = Recorder()
      -->

  (``<!-- test`` and ``-->`` each on a line of their own). It runs in the page's namespace where
  it stands, like an example: it fills in the names the examples leave open (``secret``,
  ``client``, ``tx_id`` …) and checks what they did. Other HTML comments are ignored.
- A block with top-level ``await`` (or ``async for`` / ``async with``) runs on the page's event
  loop, one loop for the whole page. Any other block runs synchronously with no loop running,
  so ``asyncio.run(main())`` works as shown.
- A shell block (``sh``, ``bash``, ``shell``, ``console``) in which a line starts with ``instax``
  is a **command example**: it runs as one ``bash -eu -o pipefail`` script, ``instax`` being
  ``python -m instax_async`` of this tree, in the page's environment (``INSTAX_BASE_URL`` points
  at the page's sandbox) and in ``workdir``, a directory of the page's own that hidden code may
  fill (``body.json``). Before it runs, each key of the page's ``shell_substitutions`` dict (set by
  hidden code) is replaced by its value: the reader sees ``http://127.0.0.1:8000`` or ``wd_…``,
  the test a real URL or id. A shell block right after ``<!-- not run: <reason> -->`` is shown
  only (say, ``instax sandbox``, which runs until interrupted); one without ``instax`` (``pip``,
  ``make``) is not an example at all.
- Such a marker stands alone on the line right before the block's opening fence (indented as
  the fence is, in a list item); one anywhere else, or before a block of the other language, is
  refused.
- ``test_*`` functions an example defines (sync or async, without parameters) are called right
  after it.
- ``printed`` holds what the last example printed (a command example: its stdout and stderr);
  ``exit_stack`` is an ``AsyncExitStack`` closed on the page's loop when the page ends (register
  servers and clients on it).

A failure names the page and line of the block; tracebacks point into the Markdown file. A
hidden block that calls ``pytest.skip`` (say, no Redis) skips the rest of the page.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import io
import linecache
import os
import re
import sys
import tempfile
import textwrap
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

__all__ = [
    "Block",
    "MarkdownError",
    "Page",
    "blocks",
    "check_fragment",
    "code_lines",
    "defines_tests",
]

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
BlockKind = Literal["example", "fragment", "module", "hidden", "shell", "not-run"]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>fragment|not run):(?P<reason>.*?)-->\s*$")
# the markers' old form, inside the block: shown to readers and copied by the copy button
_SHOWN_MARKER = re.compile(r"^#\s*(?P<kind>fragment|not run):")
_MODULE = re.compile(r"^#\s*(?P<path>[A-Za-z_][\w/]*)\.py\s*$")
_RUNS_INSTAX = re.compile(r"^\s*instax(\s|$)", re.MULTILINE)
_HIDDEN_OPEN = re.compile(r"^\s*<!--\s*test\s*$")
_COMPILE_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


class MarkdownError(Exception):
    """A page breaks the conventions, or one of its blocks failed."""


@dataclass(frozen=True)
class Block:
    """One Python block of a page: its kind, its code and where it is."""

    kind: BlockKind
    source: str
    path: Path
    line: int  # the line of the page holding the block's first line of code (1-based)
    reason: str = ""  # a fragment's reason
    module: str = ""  # a module block's dotted name

    @property
    def where(self) -> str:
        """``README.md:42``: the page and line of the block."""
        return f"{self.path.name}:{self.line}"

    def compile(self, flags: int = _COMPILE_FLAGS) -> types.CodeType:
        """The block's code, with line numbers that are the page's."""
        padded = "\n" * (self.line - 1) + self.source
        # dont_inherit: this module's own __future__ imports must not change the example
        code: types.CodeType = compile(
            padded, str(self.path), "exec", flags=flags, dont_inherit=True
        )
        return code


def _refuse_shown_marker(path: Path, line: int, source: str) -> None:
    shown = _SHOWN_MARKER.match(source.split("\n", 1)[0].strip())
    if shown:
        raise MarkdownError(
            f"{path.name}:{line}: '# {shown['kind']}:' would be shown to readers and copied: "
            f"write it as <!-- {shown['kind']}: <why> --> on the line before the block"
        )


def _classify(path: Path, line: int, source: str, marker: re.Match[str] | None) -> Block:
    _refuse_shown_marker(path, line, source)
    if marker is not None:
        return Block("fragment", source, path, line, reason=marker["reason"].strip())
    module = _MODULE.match(source.split("\n", 1)[0].strip())
    if module:
        return Block("module", source, path, line, module=module["path"].replace("/", "."))
    return Block("example", source, path, line)


def _classify_shell(
    path: Path, line: int, source: str, marker: re.Match[str] | None
) -> Block | None:
    _refuse_shown_marker(path, line, source)
    if marker is not None:
        return Block("not-run", source, path, line, reason=marker["reason"].strip())
    if _RUNS_INSTAX.search(source):
        return Block("shell", source, path, line)
    return None


def _check_marker(path: Path, line: int, marker: re.Match[str], language: str | None) -> None:
    """A marker names why, and stands right before a block of its language (``None``: it does
    not stand before a block)."""
    kind = marker["kind"]
    where = f"{path.name}:{line}"
    if not marker["reason"].strip():
        raise MarkdownError(f"{where}: <!-- {kind}: --> must say why the block does not run")
    wanted = PYTHON_LANGUAGES if kind == "fragment" else SHELL_LANGUAGES
    if language is None:
        raise MarkdownError(f"{where}: <!-- {kind}: --> must stand right before a code block")
    if language not in wanted:
        raise MarkdownError(
            f"{where}: <!-- {kind}: --> marks a {' or '.join(sorted(wanted))} block, "
            f"not {language or 'one without a language'}"
        )


def blocks(path: Path) -> list[Block]:
    """Every Python block of the Markdown file ``path``, hidden ones included, in page order."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    marker: re.Match[str] | None = None  # the marker on the line before, if any
    marker_line = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            indent, closing = len(fence["indent"]), fence["fence"]
            language = (fence["info"].split() or [""])[0].lower()
            if marker is not None:
                _check_marker(path, marker_line, marker, language)
            end = _closing_fence(lines, i, closing, path)
            body = "\n".join(_strip_indent(text, indent) for text in lines[i + 1 : end]) + "\n"
            if language in PYTHON_LANGUAGES:
                found.append(_classify(path, i + 2, body, marker))
            elif language in SHELL_LANGUAGES:
                shell = _classify_shell(path, i + 2, body, marker)
                if shell is not None:
                    found.append(shell)
            marker = None
            i = end + 1
        elif marker is not None:
            _check_marker(path, marker_line, marker, None)  # not right before a block
        elif _MARKER.match(line):
            marker, marker_line = _MARKER.match(line), i + 1
            i += 1
        elif _HIDDEN_OPEN.match(line):
            end = _closing_comment(lines, i, path, lambda text: text.strip() == "-->")
            code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
            found.append(Block("hidden", code, path, i + 2))
            i = end + 1
        elif line.lstrip().startswith("<!--"):
            # a comment readers do not see: nothing in it is an example
            if "-->" in line:
                i += 1
            else:
                i = _closing_comment(lines, i, path, lambda text: "-->" in text) + 1
        else:
            i += 1
    if marker is not None:
        _check_marker(path, marker_line, marker, None)
    return found


def code_lines(path: Path) -> list[tuple[int, str]]:
    """Every line of every fenced code block of ``path``, whatever its language, as the reader
    sees it (a list item's indentation removed), with its line number (1-based)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence:
            end = _closing_fence(lines, i, fence["fence"], path)
            indent = len(fence["indent"])
            found += [(j + 1, _strip_indent(lines[j], indent)) for j in range(i + 1, end)]
            i = end
        i += 1
    return found


def _closing_fence(lines: list[str], start: int, marker: str, path: Path) -> int:
    for j in range(start + 1, len(lines)):
        text = lines[j].strip()
        if text.startswith(marker) and set(text) == {marker[0]}:
            return j
    raise MarkdownError(f"{path.name}:{start + 1}: the code block is never closed")


def _closing_comment(
    lines: list[str], start: int, path: Path, closes: Callable[[str], bool]
) -> int:
    for j in range(start + 1, len(lines)):
        if closes(lines[j]):
            return j
    raise MarkdownError(f"{path.name}:{start + 1}: the HTML comment is never closed")


def _strip_indent(text: str, indent: int) -> str:
    # a fence indented in a list item: its content lines carry the same indentation
    spaces = len(text) - len(text.lstrip(" "))
    return text[min(spaces, indent) :]


def defines_tests(block: Block) -> bool:
    """True when the block defines a ``test_*`` function at its top level."""
    tree = ast.parse(block.source)
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
        for node in tree.body
    )


class Page:
    """The examples of one Markdown page and everything they run in.

    ``fixtures`` are names the test gives every block of the page (module blocks see only
    these); add to them before :meth:`run`. Use as a context manager: leaving it closes
    ``exit_stack``, cancels what is left on the page's loop and forgets the module blocks.
    """

    def __init__(self, path: Path, fixtures: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.blocks = blocks(path)
        self.fixtures: dict[str, Any] = dict(fixtures or {})
        self.loop = asyncio.new_event_loop()
        self.exit_stack = contextlib.AsyncExitStack()
        self.namespace: dict[str, Any] = {}
        self._modules: list[str] = []
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        _show_python_in_tracebacks(path, self.blocks)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self) -> None:
        """Run the page's blocks in order; raise :class:`MarkdownError` for the first failure."""
        self.namespace = {
            "__name__": f"markdown:{self.path.name}",
            "exit_stack": self.exit_stack,
            "printed": "",
            "workdir": self.workdir,
            "shell_substitutions": {},
            **self.fixtures,
        }
        for block in self.blocks:
            try:
                self._run(block)
            except pytest.skip.Exception as skip:
                pytest.skip(f"{block.where}: {skip.msg} (the rest of the page was not run)")
            except MarkdownError:
                raise
            except Exception as exc:
                kind = {"hidden": "hidden test code"}.get(block.kind, f"the {block.kind}")
                raise MarkdownError(
                    f"{block.where}: {kind} failed: {type(exc).__name__}: {exc}"
                ) from exc

    @property
    def workdir(self) -> Path:
        """The page's own directory, where its command examples run (removed with the page)."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="markdown-page-")
        return Path(self._workdir.name)

    def _run(self, block: Block) -> None:
        if block.kind == "not-run":
            return
        if block.kind == "shell":
            self._run_shell(block)
        elif block.kind == "fragment":
            check_fragment(block)
        elif block.kind == "module":
            self._run_module(block)
        elif block.kind == "hidden":
            self._execute(block.compile(), self.namespace)
        else:
            before = dict(self.namespace)
            output = io.StringIO()
            try:
                with contextlib.redirect_stdout(output):
                    self._execute(block.compile(), self.namespace)
                    self._call_tests(block, before)
            finally:
                sys.stdout.write(output.getvalue())  # pytest shows it when the test fails
            self.namespace["printed"] = output.getvalue()

    def _run_shell(self, block: Block) -> None:
        script = block.source
        for shown, real in self.namespace.get("shell_substitutions", {}).items():
            script = script.replace(shown, str(real))
        tree = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")])),
            "INSTAX_PYTHON": sys.executable,
        }
        prelude = 'instax() { "$INSTAX_PYTHON" -m instax_async "$@"; }\n'
        # on the page's loop, so that servers the page started answer the commands
        status, output = self.loop.run_until_complete(
            _run_script(prelude + script, self.workdir, env, timeout=120)
        )
        sys.stdout.write(output)
        self.namespace["printed"] = output
        if status != 0:
            raise MarkdownError(
                f"{block.where}: the commands failed with exit status {status}:\n" + output
            )

    def _execute(self, code: types.CodeType, namespace: dict[str, Any]) -> None:
        if code.co_flags & inspect.CO_COROUTINE:
            self.loop.run_until_complete(eval(code, namespace))
        else:
            exec(code, namespace)

    def _call_tests(self, block: Block, before: Mapping[str, Any]) -> None:
        for name, value in list(self.namespace.items()):
            if not (name.startswith("test_") and callable(value)) or before.get(name) is value:
                continue
            if inspect.signature(value).parameters:
                raise MarkdownError(f"{block.where}: {name}() must take no parameters to run here")
            result = value()
            if inspect.isawaitable(result):
                self.loop.run_until_complete(result)

    def _run_module(self, block: Block) -> None:
        name = block.module
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            taken = ".".join(parts[:depth])
            if taken in sys.modules and taken not in self._modules:
                raise MarkdownError(f"{block.where}: the module {taken} exists already")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent not in sys.modules:
                package = types.ModuleType(parent)
                package.__path__ = []
                sys.modules[parent] = package
                self._modules.append(parent)
        module = types.ModuleType(name)
        module.__file__ = str(self.path)
        module.__dict__.update(self.fixtures)
        sys.modules[name] = module
        self._modules.append(name)
        if len(parts) > 1:
            setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)
        exec(block.compile(flags=0), module.__dict__)

    def close(self) -> None:
        """Close ``exit_stack`` and the page's loop; forget the module blocks."""
        try:
            if not self.loop.is_closed():
                self.loop.run_until_complete(self.exit_stack.aclose())
        finally:
            for name in reversed(self._modules):
                sys.modules.pop(name, None)
            self._modules.clear()
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None
            _close_loop(self.loop)


def _show_python_in_tracebacks(path: Path, page: list[Block]) -> None:
    """Let tracebacks (and pytest's excerpts) read only the page's Python, at its own lines.

    The code of each block is compiled under the page's path with the page's line numbers;
    linecache serves that path as the page with every line outside a Python block blank, so a
    failure shows the statement that failed, not the Markdown around it. An entry without an
    mtime is never checked against the file, so it outlives the page (for pytest's report).
    """
    text = path.read_text(encoding="utf-8").split("\n")
    view = [""] * len(text)
    for block in page:
        if block.kind in ("shell", "not-run"):
            continue
        for offset, line in enumerate(block.source.split("\n")[:-1]):
            view[block.line - 1 + offset] = line
    lines = [line + "\n" for line in view]
    linecache.cache[str(path)] = (sum(map(len, lines)), None, lines, str(path))


async def _run_script(
    script: str, cwd: Path, env: Mapping[str, str], *, timeout: float
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-eu",
        "-o",
        "pipefail",
        "-c",
        script,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise MarkdownError(f"the commands took longer than {timeout} s") from None
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed():
        return
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def check_fragment(block: Block) -> None:
    """Compile a fragment and resolve its imports, without running it."""
    tree = ast.parse(block.source)
    block.compile()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            module = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name != "*" and not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")
