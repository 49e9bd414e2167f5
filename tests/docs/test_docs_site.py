"""The documentation site: it builds strictly, its API reference is complete, and it renders.

The strict build (``mkdocs build --strict``: a broken link, anchor or reference fails) runs here
once for the module; screenshots of the rendered Getting started and API reference pages, in
Debian's headless Chromium, are kept in ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import enum
import functools
import importlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("INSTAX_CHROMIUM", "/usr/bin/chromium")

#: The modules whose public names (``__all__``) the API reference documents.
DOCUMENTED_MODULES = [
    "instax_async",
    "instax_async.webhooks",
    "instax_async.polling",
    "instax_async.retry",
    "instax_async.serialization",
    "instax_async.integrations.aiohttp",
    "instax_async.integrations.asgi",
    "instax_async.integrations.django",
    "instax_async.integrations.flask",
    "instax_async.integrations.redis",
    "instax_async.integrations.arq",
    "instax_async.integrations.celery",
    "instax_async.transports.httpx",
    "instax_async.testing",
    "instax_async.sandbox",
]

PUBLIC_NAMES = [
    (module, name)
    for module in DOCUMENTED_MODULES
    for name in importlib.import_module(module).__all__
]


@functools.cache
def _package() -> Any:
    """The package as mkdocstrings reads it: through griffe, from the source."""
    griffe = pytest.importorskip("griffe")
    return griffe.load("instax_async", search_paths=[str(ROOT)], resolve_aliases=True)


@pytest.mark.parametrize(
    ("module", "name"), PUBLIC_NAMES, ids=[f"{m}.{n}" for m, n in PUBLIC_NAMES]
)
def test_the_reference_documents_every_public_name(module: str, name: str) -> None:
    """Each public name has its entry in the reference, and a docstring to fill it."""
    assert f"::: {module}.{name}\n" in REFERENCE.read_text(encoding="utf-8")
    package = _package()
    documented = package[f"{module}.{name}".removeprefix("instax_async.")]
    if module == "instax_async" and name in package.members:
        documented = package.members[name]
    docstring = documented.docstring
    assert docstring is not None and docstring.value.strip(), f"{module}.{name} has no docstring"


@pytest.mark.subprocess
def test_read_the_docs_builds_the_site_as_make_docs_does() -> None:
    # The "Documentation" URL is a Read the Docs site: it must build the same configuration,
    # as strictly, with the docs extra's tools, on a Python that extra supports.
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text(encoding="utf-8"))
    assert config["version"] == 2
    assert config["mkdocs"] == {"configuration": "mkdocs.yml", "fail_on_warning": True}
    assert (ROOT / config["mkdocs"]["configuration"]).is_file()
    assert config["python"]["install"] == [
        {"method": "pip", "path": ".", "extra_requirements": ["docs"]}
    ]
    python = tuple(map(int, config["build"]["tools"]["python"].split(".")))
    assert python >= (3, 11)  # the docs extra's tools are installed on 3.11+ only
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'Documentation = "https://instax-async.readthedocs.io"' in pyproject
    assert "site_url: https://instax-async.readthedocs.io/" in (ROOT / "mkdocs.yml").read_text(
        encoding="utf-8"
    )


def test_the_reference_documents_nothing_else() -> None:
    entries = [
        line.removeprefix("::: ").strip()
        for line in REFERENCE.read_text(encoding="utf-8").splitlines()
        if line.startswith("::: ")
    ]
    assert sorted(entries) == sorted(f"{m}.{n}" for m, n in PUBLIC_NAMES)


@functools.cache
def _rewrite() -> Any:
    """The reference's docstring rewriter (``scripts/griffe_sphinx.py``, a griffe extension)."""
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location(
        "griffe_sphinx", ROOT / "scripts" / "griffe_sphinx.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rewrite


def test_a_literal_block_becomes_fenced_code_without_its_double_colon() -> None:
    rewrite = _rewrite()
    assert rewrite("Use it as a context manager::\n\n    async with client:\n        ...\n") == (
        "Use it as a context manager:\n\n```python\nasync with client:\n    ...\n```"
    )
    # alone, or after a space, the colons go; a block that is not Python is text
    assert rewrite("Like this ::\n\n    a -> b\n\nDone.") == (
        "Like this\n\n```text\na -> b\n```\n\nDone."
    )
    assert rewrite("Text.\n\n::\n\n    x = 1\n") == "Text.\n\n```python\nx = 1\n```"
    # inside a fence, or without an indented block after it, nothing changes
    fenced = "```text\nkey::\n    value\n```"
    assert rewrite(fenced) == fenced
    assert rewrite("A C++ name, std::string::") == "A C++ name, std::string::"


def test_doctest_lines_become_a_console_block_without_directives() -> None:
    docstring = (
        "An example.\n\n"
        ">>> SessionRequest.sending(\n"
        '...     from_amount="25", from_currency="EUR", to_currency="USDC"\n'
        "... )  # doctest: +ELLIPSIS\n"
        "SessionRequest(...)\n"
        ">>> await client.aclose()\n"
        "... # doctest: +SKIP\n"
    )
    assert _rewrite()(docstring) == (
        "An example.\n\n```pycon\n"
        ">>> SessionRequest.sending(\n"
        '...     from_amount="25", from_currency="EUR", to_currency="USDC"\n'
        "... )\n"
        "SessionRequest(...)\n"
        ">>> await client.aclose()\n"
        "```"
    )


def test_text_after_the_fields_moves_above_them() -> None:
    docstring = (
        "A client.\n\n"
        ":param timeout: seconds\n"
        "    per attempt.\n\n"
        "    Never None.\n"
        ":class:`~instax_async.RetryPolicy` by default.\n\n"
        "Use it as a context manager."
    )
    assert _rewrite()(docstring) == (
        "A client.\n\n"
        "``RetryPolicy`` by default.\n\n"
        "Use it as a context manager.\n\n"
        ":param timeout: seconds\n"
        "    per attempt.\n\n"
        "    Never None."
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The site, built as ``make docs`` builds it (strict), into a temporary directory."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
    yield site_dir


@pytest.mark.subprocess
def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    for page in [
        "getting-started",
        "sessions",
        "webhooks",
        "payouts",
        "sandbox",
        "testing",
        "production",
        "errors",
        "performance",
        "reference",
        "changelog",
    ]:
        assert (site / page / "index.html").is_file(), page
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Keep a Changelog" in changelog and "--8&lt;--" not in changelog
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for module, name in PUBLIC_NAMES:
        assert f'id="{module}.{name}"' in reference, f"{module}.{name}"


def _constructor_parameters(cls: type) -> list[str]:
    """What a caller may pass to ``cls(...)``, by name."""
    parameters = inspect.signature(cls).parameters.values()
    return [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


#: The classes a user builds: every class of the reference but the exceptions (the SDK raises
#: them), the enums (their members are the values) and the TypedDicts (keyword options, whose
#: keys are documented where they are declared).
BUILT_CLASSES = [
    (module, name)
    for module, name in PUBLIC_NAMES
    if inspect.isclass(cls := getattr(importlib.import_module(module), name))
    and not issubclass(cls, (BaseException, enum.Enum))
    and not typing.is_typeddict(cls)
]
_ROW_NAME = re.compile(r'<tr class="doc-section-item">\s*<td>\s*<code>([^<]+)</code>')


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("module", "name"), BUILT_CLASSES, ids=[f"{m}.{n}" for m, n in BUILT_CLASSES]
)
def test_the_reference_shows_every_constructor_parameter(
    site: Path, module: str, name: str
) -> None:
    """Each parameter is a row of the class's parameter table (or an attribute documented
    under the class), and the class's description stands above the table, not in a row."""
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    start = reference.index(f'id="{module}.{name}"')
    entry = reference[start:].split('<div class="doc doc-object doc-class">', 1)[0]
    own = entry.split('<div class="doc doc-children">', 1)[0]
    table = ""
    for candidate in own.split("<table>")[1:]:
        if ">PARAMETER<" in candidate.split("</thead>", 1)[0]:
            table = candidate.split("</table>", 1)[0]
    rows = _ROW_NAME.findall(table)
    attributes = re.findall(rf'id="{re.escape(f"{module}.{name}")}\.(\w+)"', entry)
    cls = getattr(importlib.import_module(module), name)
    missing = [p for p in _constructor_parameters(cls) if p not in rows + attributes]
    assert not missing, f"{module}.{name}: no row for {missing} (rows: {rows})"
    if table:
        assert "<pre" not in table, f"{module}.{name}: a code block landed in the table"
        assert own.index("<p>") < own.index("<table>"), f"{module}.{name}: no text above"


@pytest.fixture
async def served_site(site: Path) -> AsyncIterator[str]:
    app = web.Application()

    async def index(request: web.Request) -> web.StreamResponse:
        # a directory's page, as a static host serves it
        path = (site / request.match_info["path"]).resolve()
        if path.is_dir():
            path = path / "index.html"
        if site not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app.router.add_get("/{path:.*}", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site_server = web.TCPSite(runner, "127.0.0.1", 0)
    await site_server.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# -- the site as a reader sees it, in Chromium ------------------------------------------------

#: Every page is read at both widths: a desktop browser's and a phone's.
WIDTHS = (1280, 390)
#: The pages whose screenshot at 1280 px is kept: tests/artifacts/docs-<page>-1280.png.
SCREENSHOTS = ("index", "getting-started", "webhooks", "production", "reference")
#: Text a reader must never see, nor copy with a code block's copy button: the docs tests'
#: markers, doctest's directives, an HTML comment shown as text.
MARKERS = ("# not run", "# fragment", "<!--", "-->", "doctest:")

#: What a reader would stumble on, found in the page's DOM: ``(desktop, markers) => problems``.
#: - Nothing sticks out of the content column (tables and code may scroll inside a box of their
#:   own that fits) and the page never scrolls sideways.
#: - At desktop width nothing scrolls sideways at all: no code line, no table is cut.
#: - No marker in the prose (inline code may name one) nor in what a code block's copy
#:   button copies.
#: - No markup left raw in the prose: ``::``, ``**``, a pair of backticks, a reST role or field,
#:   ``](``, a line of text starting "- ", doctest lines read as nested quotes.
#: - No name or path in a table cell broken inside a word (``instax_web`` / ``hooks``).
READING_PROBLEMS = r"""([desktop, markers]) => {
  const problems = [];
  const column = document.querySelector(".md-content");
  const article = column.querySelector("article");
  const edge = column.getBoundingClientRect();
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const text = (el.innerText || el.textContent || "").trim().replace(/\s+/g, " ");
    return `<${el.tagName.toLowerCase()}${id}> "${text.slice(0, 70)}"`;
  };
  const scrollsInside = (el) => getComputedStyle(el).overflowX !== "visible";
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) {
    problems.push(`the page scrolls sideways: ${root.scrollWidth} px in ${root.clientWidth} px`);
  }
  const outside = new Set();
  for (const el of article.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || (box.left >= edge.left - 1 && box.right <= edge.right + 1)) continue;
    let boxed = false;
    for (let up = el.parentElement; up && up !== article; up = up.parentElement) {
      if (outside.has(up) || scrollsInside(up)) { boxed = true; break; }
    }
    if (boxed) continue;
    outside.add(el);
    problems.push(`${describe(el)} spans ${Math.round(box.left)}..${Math.round(box.right)} px,`
      + ` outside its column (${Math.round(edge.left)}..${Math.round(edge.right)} px)`);
  }
  if (desktop) {
    for (const el of article.querySelectorAll("*")) {
      if (!scrollsInside(el) || el.scrollWidth <= el.clientWidth + 1) continue;
      const lines = el.tagName === "CODE" ? el.textContent.split("\n") : [];
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      problems.push(`${describe(el)} is cut: ${el.scrollWidth} px of it in ${el.clientWidth} px`
        + (longest ? ` (its longest line has ${longest.length} columns: "${longest}")` : ""));
    }
  }
  for (const code of article.querySelectorAll("pre > code")) {
    for (const marker of markers) {
      if (code.textContent.includes(marker)) {
        problems.push(`"${marker}" is copied with ${describe(code)}`);
      }
    }
  }
  const RAW = [
    [/::/, "a literal '::'"],
    [/(^|[\s(])\*\*[^\s*]/, "a raw '**'"],
    [/`[^`\s][^`]*`/, "a raw pair of backticks"],
    [/:(class|meth|func|attr|mod|exc|obj|data|const|param|ivar|var|raises?|returns?|rtype):/,
     "a raw reST role or field"],
    [/\]\(/, "a raw Markdown link"],
  ];
  const BLOCKS = /^(ARTICLE|BLOCKQUOTE|DD|DIV|DL|DT|H[1-6]|HR|LI|OL|P|PRE|TABLE|TD|TH|UL)$/;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (parent.closest("code, pre, kbd, script, style") || !parent.getClientRects().length) {
      continue;
    }
    for (const [pattern, what] of RAW) {
      if (pattern.test(node.textContent)) problems.push(`${what} in ${describe(parent)}`);
    }
    // "- item" at the start of a line of text: a list item Markdown did not make a list of
    const previous = node.previousSibling;
    const linesStart = !previous || BLOCKS.test(previous.nodeName);
    if (/\n[ \t]*[-*+] (\S|$)/.test(node.textContent)
        || (linesStart && /^\s*[-*+] (\S|$)/.test(node.textContent))) {
      const text = node.textContent.trim().replace(/\s+/g, " ").slice(0, 70);
      problems.push(`a raw list bullet in ${describe(parent)}: "${text}"`);
    }
    for (const marker of markers) {
      if (node.textContent.includes(marker)) {
        problems.push(`"${marker}" is shown in ${describe(parent)}`);
      }
    }
  }
  for (const el of article.querySelectorAll("blockquote blockquote")) {
    problems.push(`${describe(el)}: doctest lines shown as nested quotes`);
  }
  // a line may end after a space, or after a hyphen or slash that follows a letter or digit
  // (USDT-|AVALANCHE, /api/|session), never inside a word (s|tatus) or an option (--|wait)
  const breaksBadly = (code) => {
    const chars = [];
    const texts = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    for (let text = texts.nextNode(); text; text = texts.nextNode()) {
      for (let i = 0; i < text.length; i++) {
        const range = document.createRange();
        range.setStart(text, i);
        range.setEnd(text, i + 1);
        const rect = range.getBoundingClientRect();
        chars.push([text.data[i], rect.top, rect.width]);
      }
    }
    for (let i = 1; i < chars.length; i++) {
      const [before, top] = chars[i - 1];
      if (chars[i][1] <= top + 2 || !chars[i][2]) continue;
      const fine = /\s/.test(before)
        || (/[-/]/.test(before) && i > 1 && /[A-Za-z0-9_}]/.test(chars[i - 2][0]));
      if (!fine) return true;
    }
    return false;
  };
  for (const code of article.querySelectorAll("td code, th code")) {
    if (code.getClientRects().length > 1 && breaksBadly(code)) {
      problems.push(`${describe(code)} is broken inside a word in its table cell`);
    }
  }
  return problems;
}"""

#: Where a class's entry in the reference starts and its first table ends, in page pixels.
ENTRY = """(id) => {
  const heading = document.getElementById(id);
  const table = heading.closest(".doc-object").querySelector(".doc-contents table");
  const top = heading.getBoundingClientRect().top + window.scrollY - 16;
  return [top, (table || heading).getBoundingClientRect().bottom + window.scrollY + 16];
}"""


def _site_pages(site: Path) -> list[str]:
    """Every page of the built site, by its path (``""`` is the home page)."""
    pages = [p.parent.relative_to(site).as_posix() for p in site.glob("**/index.html")]
    return sorted("" if page == "." else page for page in pages)


def _chromium_or_skip() -> Any:
    """Playwright's async API with Chromium at hand; a skip without them (a failure in CI)."""
    reason = ""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        reason = f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"
    try:
        import playwright.async_api as playwright_api
    except ImportError:
        reason = reason or "Playwright is not installed (the dev extra brings it)"
    if reason and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    if reason:
        pytest.skip(reason)
    return playwright_api


@pytest.mark.browser
@pytest.mark.subprocess
async def test_every_page_reads_right_in_chromium(served_site: str, site: Path) -> None:
    """Each page of the site, at 1280 and 390 px, as a newcomer reads it: see READING_PROBLEMS."""
    playwright_api = _chromium_or_skip()
    from tests.sandbox.test_browser import CHROMIUM_ARGS

    pages = _site_pages(site)
    assert {"", "getting-started", "webhooks", "production", "reference"} <= set(pages)
    problems: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    for stale in ARTIFACTS.glob("docs-*-problems.png"):
        stale.unlink()  # what is left after this run is this run's
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for width in WIDTHS:
                tab: Any = await browser.new_page(viewport={"width": width, "height": 900})
                # the site's web fonts are not fetched: no test reaches the internet
                await tab.route(
                    lambda url: not url.startswith(served_site), lambda route: route.abort()
                )
                tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
                for page in pages:
                    name = page or "index"
                    response = await tab.goto(f"{served_site}/{page}/" if page else served_site)
                    assert response is not None and response.status == 200, page
                    assert (await tab.title()).endswith("instax-async"), page
                    found = await tab.evaluate(READING_PROBLEMS, [width >= 1000, MARKERS])
                    problems.extend(f"{name} at {width} px: {problem}" for problem in found)
                    if found:
                        shot = ARTIFACTS / f"docs-{name}-{width}-problems.png"
                        await tab.screenshot(path=str(shot), full_page=True)
                    if width == 1280 and name in SCREENSHOTS:
                        shot = ARTIFACTS / f"docs-{name}-{width}.png"
                        clip = None
                        if name == "reference":  # the client's entry, to its parameter table
                            top, bottom = await tab.evaluate(ENTRY, "instax_async.AsyncSession")
                            clip = {"x": 0, "y": top, "width": width, "height": bottom - top}
                        await tab.screenshot(path=str(shot), full_page=True, clip=clip)
                await tab.close()
        finally:
            await browser.close()
    assert not problems, "\n".join(problems)
