"""What the user reads: text safe for a terminal, strict JSON, and errors in the command line's
words (``--amount``, not ``from_amount``)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import APIStatusError, AuthenticationError, ValidationError
from ._core import UsageError

__all__ = [
    "OPTION_OF",
    "TEXT_LIMIT",
    "api_body",
    "check_text",
    "describe_error",
    "emit",
    "in_cli_words",
    "json_text",
    "plain",
    "session_record",
    "shown",
    "terminal_text",
]


TEXT_LIMIT = 500

# Characters a terminal may obey instead of showing: C0 controls (ESC starts the sequences that
# retitle the window, write the clipboard or clear the screen; CR overwrites the line), DEL, C1
# controls (U+009B alone starts a sequence), line and paragraph separators, bidirectional
# controls that reorder what is shown (a hash would read differently), and lone surrogates,
# which no encoding can write. JSON output escapes the same ones.
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x2028, 0x202F),
    *range(0x2066, 0x206A),
    *range(0xD800, 0xE000),
]
# str.translate rather than a regex with a callback: `instax status --json` on a 10 MB answer
# of U+009B takes 0.6 s instead of 4.2 s.
_SHOWN_AS = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _UNSAFE}
_SHOWN_AS.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})
_JSON_ESCAPED = {code: f"\\u{code:04x}" for code in _UNSAFE}


def terminal_text(value: object, limit: int | None = TEXT_LIMIT) -> str:
    """``value`` as text that is safe to print to a terminal, for human output.

    Control characters are shown, not obeyed: ``\\t``, ``\\n``, ``\\r``, ``\\xNN`` for other
    C0 controls, DEL and C1 controls, ``\\uNNNN`` for separators, bidirectional controls and
    lone surrogates. Text longer than ``limit`` characters is cut there, with a marker saying
    how many more there were (``None``: never cut). Backslashes are left as they are.

    >>> terminal_text("\\x1b]0;owned\\x07\\x9b2J")
    '\\\\x1b]0;owned\\\\x07\\\\x9b2J'
    >>> terminal_text("x" * 502)[-24:]
    'xxx… [2 more characters]'
    """
    text = str(value)
    marker = ""
    if limit is not None and len(text) > limit:
        marker = f"… [{len(text) - limit} more characters]"
        text = text[:limit]  # before escaping: the work stays bounded whatever the size
    return text.translate(_SHOWN_AS) + marker


def _strict(value: Any) -> Any:
    # A Decimal as its exact text; a number JSON has no words for as null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, Mapping):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def json_text(data: object) -> str:
    """``data`` as one line of strict JSON that is safe to print to a terminal (``--json``).

    NaN and Infinity (float or ``Decimal``; JSON has no words for them) become ``null``, as
    JavaScript's ``JSON.stringify`` makes them; a finite ``Decimal`` becomes its exact text.
    Non-ASCII text stays readable, but DEL, C1 controls and the other characters
    :func:`terminal_text` escapes are written as ``\\uNNNN`` escapes (C0 controls always are),
    so the output parses with any strict parser and carries nothing a terminal would obey.

    >>> json_text({"fee": float("nan"), "rate": Decimal("1.50"), "status": "\\x9b2J"})
    '{"fee": null, "rate": "1.50", "status": "\\\\u009b2J"}'
    >>> json_text([Decimal("-Infinity"), float("inf")])
    '[null, null]'
    """
    text = json.dumps(_strict(data), default=str, ensure_ascii=False, allow_nan=False)
    # These characters can only be inside strings, where an escape means the same thing.
    return text.translate(_JSON_ESCAPED)


def api_body(value: Any) -> Any:
    """An API's answer for ``--json``, under ``response``: its own keys, and every number as the
    string of its exact decimal (``50`` → ``"50"``, ``48.50`` → ``"48.50"``), as amounts are
    everywhere in ``--json`` output: a JSON number would be read as a binary float by most
    parsers (``jq``, JavaScript), and an answer does not say which of its numbers are amounts.
    NaN and Infinity become ``null``.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return str(value) if not isinstance(value, Decimal) or value.is_finite() else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: api_body(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [api_body(item) for item in value]
    return value


def plain(value: object) -> str | None:
    """A str enum (or any value) as its plain text for ``--json``; ``None`` stays ``None``."""
    return None if value is None else str(value)


def session_record(
    session_id: str | None,
    status: object,
    amounts: tuple[object, object, object, object],
    **more: Any,
) -> dict[str, Any]:
    """A payment session in ``--json`` output, with the names every command uses for it:
    ``session_id``, ``status``, ``from_amount``, ``from_currency``, ``to_amount``,
    ``to_currency`` (amounts as exact decimal strings), then ``more``."""
    from_amount, from_currency, to_amount, to_currency = amounts
    return {
        "session_id": session_id,
        "status": plain(status),
        "from_amount": from_amount,
        "from_currency": from_currency,
        "to_amount": to_amount,
        "to_currency": to_currency,
        **more,
    }


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text`` (built from :func:`shown` parts)."""
    print(json_text(data) if args.json else text)


def shown(value: object) -> str:
    """A value for human output: ``-`` for a missing one, never ``None``; made terminal-safe."""
    return "-" if value is None or value == "" else terminal_text(value)


# -- errors in the command line's words ----------------------------------------------------------

#: The SDK's parameter names, as the options (or environment variables) that set them.
OPTION_OF = {
    "base_url": "--base-url (or INSTAX_BASE_URL)",
    "api_key": "--api-key (or INSTAX_API_KEY)",
    "timeout": "--timeout",
    "from_amount": "--amount",
    "to_amount": "--amount",
    "from_currency": "--from",
    "to_currency": "--to",
    "address": "--address",
    "webhook_ref": "--webhook-ref",
    "return_url": "--return-url",
    "account_ref_id": "--account-ref-id (or INSTAX_ACCOUNT_REF_ID)",
    "checkout_url": "--checkout-url (or INSTAX_CHECKOUT_URL)",
    "method": "--method",
    "email": "--email",
    "country": "--country",
    "tx_id": "TX_ID",
    "session_id": "SESSION_ID",
    "webhook_url": "--webhook-url",
    "allowed_hosts": "--allowed-host",
    "url": "URL",
}


def in_cli_words(error: ValidationError) -> str:
    message = str(error)
    option = OPTION_OF.get(error.field or "")
    if option and message.startswith(f"{error.field}:"):
        message = option + message[len(error.field or "") :]
    return message.replace("allow_unlisted=True", "--allow-unlisted")


def describe_error(error: BaseException) -> str:
    """One line about an SDK error: its kind, then what happened, each said once."""
    kind = type(error).__name__
    if isinstance(error, APIStatusError):
        # the message is the server's own words, of any length
        message = terminal_text(error.args[0]) if error.args else ""
        said = f"HTTP {error.status}"
        text = message if said in message else f"{said}: {message}" if message else said
        if error.body and message.startswith("InstaXchange answered HTTP"):
            # a body without a message of its own: show its start, it is all there is
            preview = error.body[:200].decode("utf-8", "replace").replace("\n", " ")
            text += f"; body: {terminal_text(preview)}{'…' if len(error.body) > 200 else ''}"
        if isinstance(error, AuthenticationError):
            text += " (check --api-key or INSTAX_API_KEY)"
        return f"{kind}: {text}"
    return f"{kind}: {terminal_text(error)}"


def check_text(args: argparse.Namespace) -> None:
    """Refuse arguments that are not valid text (bytes the locale could not decode)."""
    for name, value in vars(args).items():
        # a file name may be any bytes: open() takes it back as it came
        if isinstance(value, str) and name != "file":
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                shown = OPTION_OF.get(name, "--" + name.replace("_", "-"))
                raise UsageError(f"instax: {shown}: not valid UTF-8 text") from None
