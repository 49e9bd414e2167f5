from __future__ import annotations

import subprocess
import sys

import pytest

from instax_async.cli import main, run_demo


async def test_demo_creates_both_sessions_and_prints_links(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    assert await run_demo(lines) == 0
    text = "\n".join(lines)
    assert "sending   ps_" in text
    assert "receiving ps_" in text
    assert text.count("/embed/ps_") == 2
    assert lines[-1] == "demo ok"
    assert "demo ok" in capsys.readouterr().out


def test_demo_as_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "instax_async", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "demo ok" in result.stdout


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
