"""``instax demo`` and ``python -m instax_async``: a step that fails is named."""

from __future__ import annotations

import runpy
import sys

import pytest

from instax_async import (
    InstaxError,
)
from instax_async import cli as cli_module


async def test_demo_reports_a_failing_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instax_async.sandbox import Sandbox

    async def refuse(self: Sandbox, session_id: str, *args: object) -> dict[str, object]:
        raise InstaxError("card network unavailable")

    monkeypatch.setattr(Sandbox, "fail", refuse)
    assert await cli_module.run_demo() == 1
    out = capsys.readouterr().out
    assert "demo failed at step 'pay the sending session and decline the receiving one'" in out
    assert "card network unavailable" in out


async def test_demo_reports_a_missing_webhook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instax_async.cli import _demo

    monkeypatch.setattr(_demo, "DEMO_SECRET", "not-the-receivers-secret")
    from instax_async.sandbox import app as sandbox_app

    original = sandbox_app.sign
    monkeypatch.setattr(sandbox_app, "sign", lambda body, secret: original(body, "wrong"))
    assert await cli_module.run_demo(step_timeout=0.5) == 1
    assert "demo failed at step 'receive and verify both webhooks'" in capsys.readouterr().out


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["instax", "demo"])
    # pytest rewrites the asserts of every package that ships a pytest plugin, this one
    # included, and its rewriting import hook cannot serve runpy (pytest-dev/pytest#9007).
    finders = [f for f in sys.meta_path if type(f).__name__ != "AssertionRewritingHook"]
    monkeypatch.setattr(sys, "meta_path", finders)
    with pytest.raises(SystemExit) as info:
        runpy.run_module("instax_async", run_name="__main__")
    assert info.value.code == 0
