"""The documentation's code is code: every example of README.md and docs/ runs, or says why not.

Each page runs in order, in a namespace of its own, against a sandbox of its own. The conventions
a page follows are in :mod:`tests.markdown_blocks`; the names its examples leave open come from
:mod:`tests.doc_fixtures` and from the page's hidden code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from instax_async.sandbox import SandboxConfig
from tests.doc_fixtures import BackgroundSandbox, page_fixtures
from tests.markdown_blocks import Page, blocks, code_lines, defines_tests
from tests.redis_fixtures import redis_url

__all__ = ["redis_url"]  # a fixture the Redis section asks for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("**/*.md"))]
PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]

# arq 0.28 closes its pool with redis-py's deprecated close(); not this SDK's to fix
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


def test_every_guide_is_a_page() -> None:
    assert {page.name for page in PAGES} >= {
        "README.md",
        "index.md",
        "getting-started.md",
        "sessions.md",
        "webhooks.md",
        "payouts.md",
        "celery.md",
        "sandbox.md",
        "testing.md",
        "going-live.md",
        "production.md",
        "errors.md",
        "performance.md",
        "reference.md",
        "changelog.md",
    }


#: The columns of code the site's content column shows at 1280 px; a longer line is cut off.
CODE_COLUMNS = 80


@pytest.mark.parametrize(
    "path",
    [*PAGES, ROOT / "benchmarks" / "README.md"],
    ids=[*PAGE_IDS, "benchmarks/README.md"],
)
def test_code_blocks_keep_to_80_columns(path: Path) -> None:
    """Every line of code a page shows fits the column whole, so it reads and copies as is."""
    long = [
        f"{path.name}:{n}: {len(t)} columns" for n, t in code_lines(path) if len(t) > CODE_COLUMNS
    ]
    assert not long, "code lines wider than the column:\n" + "\n".join(long)


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_every_example_of_the_page_runs(path: Path, request: pytest.FixtureRequest) -> None:
    config = SandboxConfig(confirmation_polls=0)  # payouts are on chain at the first poll
    with BackgroundSandbox(config) as sandbox, Page(path) as page:
        page.fixtures.update(page_fixtures(page, sandbox, request))
        page.run()


def _test_examples(path: Path) -> list[str]:
    return [b.source for b in blocks(path) if b.kind == "example" and defines_tests(b)]


TEST_EXAMPLE_PAGES = [page for page in PAGES if _test_examples(page)]


def test_the_docs_show_how_to_test_with_the_sandbox() -> None:
    assert TEST_EXAMPLE_PAGES


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize(
    "path", TEST_EXAMPLE_PAGES, ids=[str(p.relative_to(ROOT)) for p in TEST_EXAMPLE_PAGES]
)
def test_the_test_examples_pass_under_pytest(tmp_path: Path, path: Path, mode: str) -> None:
    """An example written as a pytest test passes as the reader pastes it, in either mode."""
    examples = _test_examples(path)
    for number, source in enumerate(examples):
        (tmp_path / f"test_example_{number}.py").write_text(source, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings =\n"
        "    error::ResourceWarning\n"
        "    error::pytest.PytestUnraisableExceptionWarning\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # pytest-asyncio alone, as in a user's project
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_asyncio.plugin",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(examples)} passed" in result.stdout
    assert "Unclosed" not in result.stdout + result.stderr
