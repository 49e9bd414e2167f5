"""The ``instax`` command line (also ``python -m instax_async``).

Exit status: 0 on success, 1 when the API, a receiver or a verification said no, 2 for bad
input, 130 when interrupted (Ctrl-C). Whatever happens, the user reads one line on stderr,
never a traceback:

- Errors speak the command line's language: a bad value names the option (``--amount``,
  ``--base-url``), not the SDK's parameter.
- A closed pipe (``instax … | head -1``) ends the command quietly with status 0, as Unix
  tools do: the reader has what it wanted.
- ``--json`` works with every command; options a command does not use are not offered to it.

Nothing a server (or a webhook body) controls reaches the terminal raw. Human output shows
control characters escaped (:func:`terminal_text`: ESC as ``\\x1b``, CR as ``\\r``) and cuts
such text at :data:`TEXT_LIMIT` characters with a marker saying how many more there were;
``--json`` output is strict JSON (:func:`json_text`: NaN and Infinity become ``null``, C1
controls are escaped). A hostile API cannot retitle the window, write the clipboard, clear the
screen, overwrite a line or flood the terminal with one 10 MB line.

The package's modules: :mod:`._parser` (the grammar), one module per group of commands
(:mod:`._demo`, :mod:`._payments`, :mod:`._sandbox`, :mod:`._webhooks`), :mod:`._output` (what the
user reads) and :mod:`._core` (what every command shares). This one runs a command line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable, Sequence

from ..errors import InstaxError, ValidationError
from ._core import CommandFailed, Interrupted, UsageError
from ._demo import run_demo
from ._output import TEXT_LIMIT, check_text, describe_error, in_cli_words, json_text, terminal_text
from ._parser import build_parser

__all__ = ["TEXT_LIMIT", "json_text", "main", "run_demo", "terminal_text"]


def _tolerant_output() -> None:
    # A terminal or pipe whose encoding cannot show a character gets a '?' rather than a
    # UnicodeEncodeError halfway through the output.
    for stream in (sys.stdout, sys.stderr):
        reconfigure: Callable[..., None] | None = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):
                reconfigure(errors="replace")


def _quiet_closed_stdout() -> None:
    # The reader of our output has gone: whatever Python still flushes at exit goes nowhere,
    # instead of an "Exception ignored … BrokenPipeError" message.
    stdout = sys.stdout
    if stdout is None:
        return
    try:
        fd = stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def run_command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check_text(args)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except UsageError as exc:
        message, code = str(exc), 2
    except ValidationError as exc:
        message, code = f"instax: {in_cli_words(exc)}", 2
    except CommandFailed as exc:
        message, code = str(exc), 1
    except InstaxError as exc:
        message, code = f"instax: {describe_error(exc)}", 1
    # Server text in the line is cut already; escaping the whole line also covers whatever
    # the message quotes of the user's arguments.
    print(terminal_text(message, limit=None), file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``instax`` command; returns the exit status.

    An exception no command expects is a bug: it is told in one line, or shown with its
    traceback when ``INSTAX_DEBUG`` is set.
    """
    _tolerant_output()
    try:
        try:
            code = run_command(argv)
        except SystemExit as exc:  # --help and --version
            code = exc.code if isinstance(exc.code, int) else 0
        if sys.stdout is not None:
            sys.stdout.flush()  # here, where a closed pipe can still be handled
        return code
    except BrokenPipeError:
        _quiet_closed_stdout()
        return 0
    except (KeyboardInterrupt, Interrupted):
        return 130
    except Exception as exc:
        if os.environ.get("INSTAX_DEBUG"):
            raise
        print(
            f"instax: unexpected {type(exc).__name__}: {terminal_text(exc)} (a bug in "
            "instax-async: please report it; INSTAX_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
