"""How deep a JSON text nests, measured before any parser recurses into it.

Shared by :mod:`instax_async.serialization` (API responses) and :mod:`instax_async.jsjson`
(webhook bodies); it imports nothing, so the client's import stays light.
"""

from __future__ import annotations

import operator
from itertools import accumulate, count
from typing import Final

MAX_JSON_DEPTH: Final = 128
"""Every JSON the SDK reads (API responses, webhook bodies, the sandbox's requests) is refused
as invalid beyond it. Real bodies nest a handful of levels; 128 leaves ample room while
keeping every recursive step (parsing, ``JSON.stringify``, the model converter) far from
Python's recursion limit, however deep the caller's own stack already is."""


# Every byte except the five that shape the nesting: deleted before the depth is measured.
_NOT_STRUCTURE: Final = bytes(range(256)).translate(None, b'"[]{}')
# Both kinds of brackets as one: only the depth counts, and malformed text is refused later.
_AS_PARENTHESES: Final = bytes.maketrans(b"[{]}", b"(())")


def too_deep(data: bytes | bytearray | str, limit: int) -> bool:
    """Whether the JSON text ``data`` nests arrays and objects deeper than ``limit`` levels.

    Brackets inside strings do not count. Linear time, in C-level operations only: a body with
    few brackets is answered after one pass over it. Text that is not well-formed JSON may be
    answered either way: the parser refuses it anyway.
    """
    if isinstance(data, str):
        if data.count("[") + data.count("{") <= limit:
            return False
        # Brackets, quotes and backslashes are ASCII: no other UTF-8 character contains them.
        data = data.encode("utf-8", "surrogatepass")
    elif data.count(b"[") + data.count(b"{") <= limit:
        return False
    if data.find(b"\\") >= 0:  # (``bytes in bytes`` first tries an int, at a cost)
        # Escapes, leftmost first as a parser reads them: each ``\\`` pair, then each ``\"``.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    return marks_too_deep(data.translate(None, _NOT_STRUCTURE), limit)


def marks_too_deep(marks: bytes | bytearray, limit: int) -> bool:
    """:func:`too_deep` of a JSON text without escapes, given only its bytes ``"[]{}``."""
    if len(marks) <= limit or marks.count(b"[") + marks.count(b"{") <= limit:
        return False
    # Quotes alternate open/close. Dropping two adjacent ones keeps that alternation, and
    # makes every string without a bracket in it disappear.
    if marks.count(b'""') * 2 == marks.count(b'"'):  # no string holds a bracket
        marks = marks.translate(None, b'"')  # what dropping the pairs leaves: no quote
    else:
        marks = marks.replace(b'""', b"")
        # some string holds brackets: keep only what lies between the strings
        marks = b"".join(marks.split(b'"')[::2])
    nesting = marks.translate(_AS_PARENTHESES)
    if nesting.find(b"(" * (limit + 1)) >= 0:
        return True
    # Peel the innermost pairs: each round lowers the depth by exactly one. A real body is
    # gone after a few short rounds; a deep one stops when the work done reaches a few times
    # its size (so the total stays linear), and what is left is measured.
    rounds, budget = 0, 3 * len(nesting)
    while nesting and rounds < limit and len(nesting) <= budget:
        budget -= len(nesting)
        peeled = nesting.replace(b"()", b"")
        if len(peeled) == len(nesting):
            return False  # malformed: the parser refuses it
        nesting, rounds = peeled, rounds + 1
    if not nesting:
        return False  # gone after at most ``limit`` rounds
    if rounds == limit:
        return True  # still there after ``limit`` rounds
    # After each ")", the depth is the "(" so far minus the ")" so far.
    opens = accumulate(map(len, nesting.split(b")")))
    deepest: int = max(map(operator.sub, opens, count()))
    return deepest > limit - rounds
