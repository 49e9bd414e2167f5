"""A missing optional extra is told with the ``pip install`` line that brings it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from instax_async import InstaxError, MissingExtraError
from instax_async._extras import extra_required, install_hint

PROBE = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed: importing it raises ModuleNotFoundError
try:
    import {module}
except ImportError as exc:
    from instax_async import InstaxError, MissingExtraError
    assert isinstance(exc, MissingExtraError) and isinstance(exc, ModuleNotFoundError)
    assert isinstance(exc, InstaxError)
    assert exc.__cause__ is None and exc.__suppress_context__
    print(exc.extra, exc.name)
    print(exc)
else:
    raise SystemExit("imported although {blocked} is missing")
"""


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("instax_async.integrations.redis", ["redis"], "redis"),
        ("instax_async.integrations.arq", ["arq"], "arq"),
        ("instax_async.integrations.arq", ["redis"], "arq"),  # arq brings redis with it
        ("instax_async.integrations.celery", ["celery"], "celery"),
        ("instax_async.integrations.celery", ["kombu"], "celery"),  # celery[redis] brings both
        ("instax_async.integrations.celery", ["redis"], "celery"),
        ("instax_async.transports.httpx", ["httpx"], "httpx"),
    ],
)
def test_a_missing_extra_names_the_pip_line(module: str, blocked: list[str], extra: str) -> None:
    code = textwrap.dedent(PROBE.format(module=module, blocked=blocked))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    names, message = result.stdout.splitlines()
    assert names == f"{extra} {blocked[0]}"
    assert message == (
        f"{module} needs {blocked[0]!r}, which is not installed; "
        f"install it with: pip install 'instax-async[{extra}]'"
    )


@pytest.mark.subprocess
def test_the_package_imports_without_any_extra() -> None:
    code = (
        "import sys\nfor n in ('redis', 'arq', 'celery', 'kombu', 'httpx'): sys.modules[n] = None\n"
    )
    code += "import instax_async, instax_async.cli, instax_async.sandbox\nprint('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_only_the_extras_own_modules_are_translated() -> None:
    # a dependency of the dependency is missing: a broken install, not a missing extra
    with pytest.raises(ModuleNotFoundError) as info, extra_required("redis"):
        raise ModuleNotFoundError("No module named 'async_timeout'", name="async_timeout")
    assert not isinstance(info.value, InstaxError)
    with pytest.raises(ImportError, match="cannot import name") as other, extra_required("redis"):
        raise ImportError("cannot import name 'Redis'", name="redis")
    assert not isinstance(other.value, MissingExtraError)
    with extra_required("redis"):
        pass  # nothing missing: nothing raised
    with (
        pytest.raises(
            MissingExtraError, match=r"^tests\.package\.test_extras needs 'redis', "
        ) as missing,
        extra_required("redis"),
    ):
        raise ModuleNotFoundError("No module named 'redis.asyncio'", name="redis.asyncio")
    assert missing.value.name == "redis" and missing.value.extra == "redis"


def test_install_hint_is_quoted_for_every_shell() -> None:
    assert install_hint("redis") == "pip install 'instax-async[redis]'"
