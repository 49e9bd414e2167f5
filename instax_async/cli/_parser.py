"""The command line's grammar: every command, its options, and their help.

Each command's function is looked up in its module when the parser is built
(``_webhooks.cmd_sign``), so a test can replace it there.
"""

from __future__ import annotations

import argparse
import platform
from typing import Any

from .._version import __version__
from . import _demo, _doctor, _payments, _sandbox, _webhooks
from ._core import Parser, UsageError, count, fraction, port, seconds, seconds_or_zero
from ._output import TEXT_LIMIT

__all__ = ["build_parser"]


# -- the parser --------------------------------------------------------------------------------


class _AfterTheCommand(argparse.Action):
    """An API option given before the command: say where it goes, not "invalid choice"."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        raise UsageError(
            f"instax: {option} goes after the command, e.g. 'instax status TX_ID {option} …' "
            "(only session, status and doctor take it; webhook send takes --timeout)"
        )


_JSON_HELP = "print strict JSON for scripts (NaN and Infinity as null; never cut)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="instax",
        description="The InstaXchange SDK's command line.",
        epilog="Text a server sent is shown with control characters escaped (ESC as \\x1b) "
        f"and cut at {TEXT_LIMIT} characters; --json output is strict JSON (NaN and "
        "Infinity as null). Exit status: 0 done; 1 the API, a receiver or a check said no; "
        "2 bad input; 130 interrupted.",
    )
    parser.add_argument("--json", action="store_true", help=_JSON_HELP)
    for option in ("--base-url", "--api-key", "--timeout"):
        parser.add_argument(option, action=_AfterTheCommand, help=argparse.SUPPRESS)
    parser.add_argument(
        "--version",
        action="version",
        version=f"instax (instax-async) {__version__}, Python {platform.python_version()}",
    )
    # --json is accepted after the subcommand too; the subcommand's copy must not reset it.
    json_option = Parser(add_help=False)
    json_option.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help=_JSON_HELP
    )
    timeout_option = Parser(add_help=False)
    timeout_option.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds per request (default 30)",
    )
    api_options = Parser(add_help=False, parents=[timeout_option])
    api_options.add_argument(
        "--base-url", metavar="URL", help="API base URL (default: $INSTAX_BASE_URL)"
    )
    api_options.add_argument("--api-key", metavar="KEY", help="API key (default: $INSTAX_API_KEY)")

    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    demo = commands.add_parser(
        "demo", parents=[json_option], help="run the whole payment flow against a local sandbox"
    )
    demo.set_defaults(run=_demo.cmd_demo)

    session = commands.add_parser("session", help="create a payment session or read its status")
    sessions = session.add_subparsers(dest="session_command", required=True, parser_class=Parser)
    create = sessions.add_parser(
        "create", parents=[json_option, api_options], help="create a payment session"
    )
    create.add_argument(
        "--direction",
        choices=["sending", "receiving"],
        default="sending",
        help="sending: the customer pays AMOUNT; receiving: the payout is AMOUNT",
    )
    create.add_argument("--amount", required=True, help="a decimal amount, e.g. 50.00")
    create.add_argument("--from", dest="from_currency", required=True, help="fiat, e.g. USD")
    create.add_argument("--to", dest="to_currency", required=True, help="payout, e.g. USDT")
    for flag, help_text in (
        ("address", "the payout wallet address (a TRON address for USDT-TRON, 0x… for EVM)"),
        ("webhook-ref", "your reference, echoed in the session's webhooks (an order id)"),
        ("return-url", "where the checkout sends the customer after paying (http(s) URL)"),
        (
            "account-ref-id",
            "your merchant account id (default: $INSTAX_ACCOUNT_REF_ID)",
        ),
        ("method", "payment method: card (default), sepa, ideal, apple-pay, …"),
        ("email", "the customer's e-mail address"),
        ("country", "the customer's country, ISO 3166 alpha-2 (DE)"),
    ):
        create.add_argument(f"--{flag}", metavar=flag.split("-")[-1].upper(), help=help_text)
    create.add_argument(
        "--checkout-url",
        metavar="TEMPLATE",
        help="checkout link template with {id}, e.g. {base_url}/order/{id} "
        "(default: $INSTAX_CHECKOUT_URL, else {base_url}/embed/{id})",
    )
    create.add_argument(
        "--allow-unlisted",
        action="store_true",
        help="send a currency or method this release does not list",
    )
    create.set_defaults(run=_payments.cmd_session_create)
    read = sessions.add_parser(
        "status", parents=[json_option, api_options], help="a session's status (api key)"
    )
    read.add_argument("session_id", metavar="SESSION_ID", help="the session's id (ps_…)")
    read.set_defaults(run=_payments.cmd_session_status)

    status = commands.add_parser(
        "status",
        parents=[json_option, api_options],
        help="a payout's blockchain status, by withdraw tx id",
    )
    status.add_argument(
        "tx_id", metavar="TX_ID", help="the withdraw tx id (a webhook's Withdraw_tx_ID)"
    )
    status.add_argument("--wait", action="store_true", help="poll until the hash appears")
    status.add_argument(
        "--interval",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="seconds between polls (default 2)",
    )
    status.add_argument(
        "--wait-timeout",
        type=seconds,
        metavar="SECONDS",
        default=600.0,
        help="give up waiting after this many seconds (default 600)",
    )
    status.add_argument(
        "--unreachable-timeout",
        type=seconds,
        metavar="SECONDS",
        default=30.0,
        help="give up once the API has been unreachable this many seconds (default 30)",
    )
    status.set_defaults(run=_payments.cmd_status)

    sandbox = commands.add_parser(
        "sandbox", parents=[json_option], help="run the local InstaXchange sandbox"
    )
    sandbox.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)",
    )
    sandbox.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        dest="allowed_hosts",
        metavar="NAME",
        help="also answer requests for this host name, say a proxy's (repeatable)",
    )
    sandbox.add_argument(
        "--port", type=port, default=8080, help="the port (default 8080; 0 picks a free one)"
    )
    sandbox.add_argument(
        "--webhook-url", metavar="URL", help="where to deliver webhooks (default: none are sent)"
    )
    sandbox.add_argument("--secret", help="webhook secret (default: $INSTAX_WEBHOOK_SECRET)")
    sandbox.add_argument(
        "--api-key", metavar="KEY", help="the x-api-key the status endpoint requires (default: any)"
    )
    sandbox.add_argument(
        "--strict",
        action="store_true",
        help="the newest API's rules: accountRefId and address required (400 without), "
        "checkout links on /order/{id} in each created session's answer",
    )
    sandbox.add_argument(
        "--confirmation-polls",
        type=count,
        default=2,
        metavar="N",
        help="blockchain-status answers that say pending before a payout's hash (default 2)",
    )
    sandbox.add_argument(
        "--confirmation-delay",
        type=seconds_or_zero,
        default=0.0,
        metavar="SECONDS",
        help="seconds a payout stays pending at least (default 0)",
    )
    sandbox.add_argument(
        "--error-rate",
        type=fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of API requests answered 500 (default 0)",
    )
    sandbox.add_argument(
        "--rate-limit-rate",
        type=fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of API requests answered 429 (default 0)",
    )
    sandbox.add_argument(
        "--retry-after",
        type=seconds_or_zero,
        default=1.0,
        metavar="SECONDS",
        help="the Retry-After of those 429 answers (default 1)",
    )
    sandbox.add_argument(
        "--latency",
        type=seconds_or_zero,
        default=0.0,
        metavar="SECONDS",
        help="seconds added to each API request (default 0)",
    )
    sandbox.set_defaults(run=_sandbox.cmd_sandbox)

    doctor = commands.add_parser(
        "doctor",
        parents=[json_option, timeout_option],
        help="check the configuration you are about to go live with",
        description="Check the configuration a merchant goes live with: api key, base URL, "
        "webhook secret, checkout URL template, account id; with --online also that the API "
        "answers (no key is sent) and this machine's clock. Exit 0 when every check passes.",
    )
    doctor.add_argument(
        "--base-url", metavar="URL", help="API base URL (default: $INSTAX_BASE_URL)"
    )
    doctor.add_argument("--api-key", metavar="KEY", help="API key (default: $INSTAX_API_KEY)")
    doctor.add_argument(
        "--secret", help="the webhook secret (default: $INSTAX_WEBHOOK_SECRET); never printed"
    )
    doctor.add_argument(
        "--account-ref-id",
        metavar="ID",
        help="your merchant account id (default: $INSTAX_ACCOUNT_REF_ID)",
    )
    doctor.add_argument(
        "--checkout-url",
        metavar="TEMPLATE",
        help="checkout link template with {id} (default: $INSTAX_CHECKOUT_URL)",
    )
    doctor.add_argument(
        "--online",
        action="store_true",
        help="also reach the base URL (a HEAD request without the api key, no redirects) and "
        "compare its Date header with this machine's clock",
    )
    doctor.set_defaults(run=_doctor.cmd_doctor)

    webhook = commands.add_parser("webhook", help="sign, verify or send test webhooks")
    hooks = webhook.add_subparsers(dest="webhook_command", required=True, parser_class=Parser)
    secret_help = "the webhook secret (default: $INSTAX_WEBHOOK_SECRET)"

    sign = hooks.add_parser(
        "sign", parents=[json_option], help="print the X-Instaxwh-Key of a body"
    )
    sign.add_argument("--secret", help=secret_help)
    sign.add_argument("file", nargs="?", default="-", help="the JSON body (default: stdin)")
    sign.set_defaults(run=_webhooks.cmd_sign)

    verify = hooks.add_parser("verify", parents=[json_option], help="verify a body and its key")
    verify.add_argument("--secret", help=secret_help)
    verify.add_argument("--signature", required=True, help="the X-Instaxwh-Key header value")
    verify.add_argument("file", nargs="?", default="-", help="the JSON body (default: stdin)")
    verify.set_defaults(run=_webhooks.cmd_verify)

    send = hooks.add_parser(
        "send", parents=[json_option, timeout_option], help="POST a signed test webhook to URL"
    )
    send.add_argument("url", help="your webhook receiver, e.g. http://127.0.0.1:8000/hook")
    send.add_argument("--secret", help=secret_help)
    send.add_argument(
        "--status",
        choices=["completed", "failed", "pending"],
        default="completed",
        help="the payment status the event carries (default completed)",
    )
    send.add_argument("--reference", help="the webhookRef to put in the event")
    send.set_defaults(run=_webhooks.cmd_send)
    return parser
