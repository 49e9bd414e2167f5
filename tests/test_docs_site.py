"""The documentation site: it builds strictly, its API reference is complete, and it renders.

The strict build (``mkdocs build --strict``: a broken link, anchor or reference fails) runs here
once for the module; screenshots of the rendered Getting started and API reference pages, in
Debian's headless Chromium, are kept in ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("INSTAX_CHROMIUM", "/usr/bin/chromium")

#: The modules whose public names (``__all__``) the API reference documents.
DOCUMENTED_MODULES = [
    "instax_async",
    "instax_async.webhooks",
    "instax_async.integrations.aiohttp",
    "instax_async.integrations.asgi",
    "instax_async.integrations.django",
    "instax_async.integrations.flask",
    "instax_async.integrations.redis",
    "instax_async.integrations.arq",
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
        "reference",
        "changelog",
    ]:
        assert (site / page / "index.html").is_file(), page
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Keep a Changelog" in changelog and "--8&lt;--" not in changelog
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for module, name in PUBLIC_NAMES:
        assert f'id="{module}.{name}"' in reference, f"{module}.{name}"


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


@pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)",
)
@pytest.mark.parametrize("page", ["getting-started", "reference"])
async def test_the_rendered_page(served_site: str, page: str) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    from tests.integration.test_browser import CHROMIUM_ARGS

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            tab: Any = await browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            tab.on("pageerror", lambda error: problems.append(str(error)))
            response = await tab.goto(f"{served_site}/{page}/", wait_until="networkidle")
            assert response is not None and response.status == 200
            title = await tab.title()
            assert title.endswith("instax-async"), title
            code_blocks = await tab.locator("pre code").count()
            assert code_blocks > 0
            ARTIFACTS.mkdir(exist_ok=True)
            await tab.screenshot(path=str(ARTIFACTS / f"docs-{page}.png"))
            await tab.screenshot(path=str(ARTIFACTS / f"docs-{page}-full.png"), full_page=True)
            assert not problems, problems
        finally:
            await browser.close()
