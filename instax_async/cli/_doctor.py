"""``instax doctor``: the configuration a merchant is about to go live with, checked.

Offline by default: every check reads the options and the environment only, so the command runs
in a build or deploy step without network access and never surprises anyone with a request to
production. ``--online`` adds the two checks that need the API: that the base URL answers (one
HEAD request for the base URL itself, with no api key or other credential, following no
redirect, so nothing secret can reach another host, and no body to read) and how far this
machine's clock is from the API's ``Date`` header (a webhook receiver's ``max_age`` compares the
event's time with it).

Secrets are never printed: the api key and the webhook secret are reported as set or not, and
what is wrong with them by position or kind only.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from .._protocol import DEFAULT_BASE_URL, user_agent
from .._validate import check_api_key, check_base_url, check_checkout_url, is_loopback_host
from ..errors import InstaxError, ValidationError
from ..payloads import check_text
from ._core import run
from ._output import json_text, terminal_text

__all__ = ["CLOCK_SKEW_LIMIT", "MIN_API_KEY_CHARS", "Check", "cmd_doctor", "diagnose"]

#: The most this machine's clock may differ from the API's (seconds): well inside the 5 minutes
#: (``MAX_CLOCK_SKEW``) by which ``max_age`` lets an event come from the future, and far above
#: what a clock kept by NTP is off by, plus the ``Date`` header's one-second steps.
CLOCK_SKEW_LIMIT = 60.0

#: The shortest api key that looks like one a provider issues, rather than a placeholder.
MIN_API_KEY_CHARS = 16

# Values people leave in a configuration instead of the real one (compared in lower case).
_PLACEHOLDER_WORDS = ("your", "changeme", "change-me", "placeholder", "example", "xxxx", "<", ">")

Status = Literal["ok", "fail", "skip"]


class Check:
    """One line of the report: ``name`` (snake_case, for ``--json``), ``label`` (for people),
    ``status`` (``ok``, ``fail`` or ``skip``) and ``detail``."""

    __slots__ = ("detail", "label", "name", "status")

    def __init__(self, name: str, label: str, status: Status, detail: str) -> None:
        self.name = name
        self.label = label
        self.status: Status = status
        self.detail = detail

    def as_dict(self) -> dict[str, str]:
        """The check in ``--json`` output."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


def _reason(error: ValidationError) -> str:
    """The error's message without the field name it starts with (the check names it)."""
    message = str(error)
    prefix = f"{error.field}: "
    return message[len(prefix) :] if error.field and message.startswith(prefix) else message


def _setting(given: str | None, variable: str, option: str) -> tuple[str | None, str]:
    """The value of a setting and where it came from (``--api-key`` or ``INSTAX_API_KEY``)."""
    if given is not None:
        return given, option
    value = os.environ.get(variable)
    return (value, variable) if value else (None, "")


def _api_key_check(given: str | None) -> Check:
    value, source = _setting(given, "INSTAX_API_KEY", "--api-key")
    name, label = "api_key", "api key"
    if value is None:
        return Check(
            name,
            label,
            "fail",
            "not set: pass --api-key or set INSTAX_API_KEY (the session-status endpoint needs "
            "it, and so do newer versions of the API)",
        )
    try:
        key = check_api_key(value)
    except ValidationError as exc:  # its message shows a position, never the key
        return Check(name, label, "fail", f"from {source}: {_reason(exc)}")
    assert key is not None
    if value != key:
        return Check(
            name, label, "fail", f"from {source}: has blanks around it (a copy-paste slip?)"
        )
    if len(key) < MIN_API_KEY_CHARS or any(word in key.lower() for word in _PLACEHOLDER_WORDS):
        return Check(
            name,
            label,
            "fail",
            f"from {source}: does not look like an api key (shorter than "
            f"{MIN_API_KEY_CHARS} characters, or a placeholder); use the key from your "
            "InstaXchange dashboard",
        )
    return Check(name, label, "ok", f"set (from {source}); not shown")


def _base_url_check(given: str | None) -> tuple[Check, str | None]:
    value, source = _setting(given, "INSTAX_BASE_URL", "--base-url")
    name, label = "base_url", "base URL"
    if value is None:
        value, source = DEFAULT_BASE_URL, "the default"
    try:
        url = check_base_url(value, DEFAULT_BASE_URL)
    except ValidationError as exc:
        return Check(name, label, "fail", f"from {source}: {_reason(exc)}"), None
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return Check(
            name,
            label,
            "fail",
            f"from {source}: holds a user name or password (not shown); the API takes an api "
            "key instead",
        ), None
    if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
        return Check(
            name,
            label,
            "fail",
            f"{url} (from {source}): plain http to another machine; use https",
        ), url
    note = " (loopback: a local sandbox, not production)" if parts.scheme == "http" else ""
    return Check(name, label, "ok", f"{url} (from {source}){note}"), url


def _secret_check(given: str | None) -> Check:
    value, source = _setting(given, "INSTAX_WEBHOOK_SECRET", "--secret")
    name, label = "webhook_secret", "webhook secret"
    if value is None:
        return Check(
            name,
            label,
            "fail",
            "not set: pass --secret or set INSTAX_WEBHOOK_SECRET to the secret registered "
            "with your webhook URL in the InstaXchange dashboard",
        )
    if value != value.strip():
        return Check(
            name,
            label,
            "fail",
            f"from {source}: has blanks around it; signatures are computed with the secret "
            "exactly as registered, so no webhook would verify",
        )
    return Check(name, label, "ok", f"set (from {source}); not shown")


def _checkout_check(given: str | None, base_url: str | None) -> Check:
    value, source = _setting(given, "INSTAX_CHECKOUT_URL", "--checkout-url")
    name, label = "checkout_url", "checkout URL"
    if base_url is None:
        return Check(name, label, "skip", "not checked: the base URL is not valid")
    if value is None:
        return Check(
            name,
            label,
            "ok",
            f"the default, {base_url}/embed/{{id}} (newer provider pages show /order/{{id}}: "
            "set INSTAX_CHECKOUT_URL to '{base_url}/order/{id}' to follow them)",
        )
    try:
        template = check_checkout_url(value, base_url)
    except ValidationError as exc:
        return Check(name, label, "fail", f"from {source}: {_reason(exc)}")
    return Check(name, label, "ok", f"{template} (from {source})")


def _account_check(given: str | None) -> Check:
    value, source = _setting(given, "INSTAX_ACCOUNT_REF_ID", "--account-ref-id")
    name, label = "account_ref_id", "account ref id"
    if value is None:
        return Check(
            name,
            label,
            "fail",
            "not set: pass --account-ref-id or set INSTAX_ACCOUNT_REF_ID (the API knows your "
            "merchant account by it; the newest API requires it)",
        )
    try:
        check_text(value, "account_ref_id")
    except ValidationError as exc:
        return Check(name, label, "fail", f"from {source}: {_reason(exc)}")
    return Check(name, label, "ok", f"{value} (from {source})")


async def _reach(base_url: str, timeout: float) -> tuple[Check, Check]:
    """HEAD the base URL (no key, no redirects); the reachability and clock checks."""
    from ..transports.aiohttp import AiohttpTransport
    from ..transports.base import Request

    transport = AiohttpTransport()
    started = time.monotonic()
    try:
        # Only what any browser sends: no api key, no default headers of a client.
        request = Request("HEAD", base_url, {"User-Agent": user_agent()}, b"", timeout)
        response = await transport.send(request)
    except InstaxError as exc:
        reach = Check("reachable", "reachable", "fail", f"{base_url}: {exc}")
        return reach, Check("clock", "clock", "skip", "not checked: the API was not reached")
    finally:
        await transport.aclose()
    arrived = time.time()
    seconds = time.monotonic() - started
    answer = f"HTTP {response.status} in {seconds:.2f} s"
    location = response.headers.get("Location")
    if 300 <= response.status < 400 and location:
        answer += f", redirecting to {location[:200]} (not followed)"
    reach = Check("reachable", "reachable", "ok", f"{base_url} answered {answer}")
    return reach, _clock_check(response.headers.get("Date"), arrived)


def _clock_check(date: str | None, now: float) -> Check:
    name, label = "clock", "clock"
    if not date:
        return Check(name, label, "skip", "not checked: the answer had no Date header")
    try:
        server = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return Check(name, label, "skip", f"not checked: the Date header {date[:80]!r} is unclear")
    skew = now - server
    said = f"this machine is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the API"
    if abs(skew) > CLOCK_SKEW_LIMIT:
        return Check(
            name,
            label,
            "fail",
            f"{said} (more than {CLOCK_SKEW_LIMIT:.0f} s): sync it (NTP); webhook receivers "
            "with max_age judge each event's age by this clock",
        )
    return Check(name, label, "ok", f"{said} (within {CLOCK_SKEW_LIMIT:.0f} s)")


def diagnose(args: argparse.Namespace) -> list[Check]:
    """Every check, in the order a merchant sets things up."""
    base_check, base_url = _base_url_check(args.base_url)
    checks = [
        _account_check(args.account_ref_id),
        _api_key_check(args.api_key),
        base_check,
        _secret_check(args.secret),
        _checkout_check(args.checkout_url, base_url),
    ]
    if not args.online:
        skipped = "not checked: offline by default (pass --online)"
        checks.append(Check("reachable", "reachable", "skip", skipped))
        checks.append(Check("clock", "clock", "skip", skipped))
    elif base_url is None:
        checks.append(Check("reachable", "reachable", "skip", "not checked: no valid base URL"))
        checks.append(Check("clock", "clock", "skip", "not checked: no valid base URL"))
    else:
        checks.extend(run(_reach(base_url, args.timeout)))
    return checks


_MARK: dict[str, str] = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = diagnose(args)
    counts = Counter(check.status for check in checks)
    failed = counts["fail"]
    if args.json:
        report: dict[str, Any] = {
            "ok": not failed,
            "online": args.online,
            "checks": [check.as_dict() for check in checks],
        }
        print(json_text(report))
    else:
        width = max(len(check.label) for check in checks)
        for check in checks:
            print(f"{_MARK[check.status]}  {check.label:<{width}}  {terminal_text(check.detail)}")
        print(
            f"doctor: {counts['ok']} passed, {failed} failed, {counts['skip']} skipped"
            + ("" if failed else " (ready as far as these checks go)")
        )
    return 1 if failed else 0
