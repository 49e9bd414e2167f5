"""JavaScript-compatible JSON handling for InstaXchange webhook signatures.

InstaXchange signs every webhook on its (Node.js) side roughly like this::

    const sorted = {};
    Object.keys(body).sort().forEach((k) => { sorted[k] = body[k]; });
    md5(`${JSON.stringify(sorted)}:${secret}`)

A receiver only has the raw request body, so verifying the signature means rebuilding,
character for character, the string the sender hashed.  Python's :mod:`json` differs
from ``JSON.parse``/``JSON.stringify`` in many small ways (number formatting, big
integers, property order of integer-like keys, lone surrogates, key sorting by UTF-16
code units, ...).  This module reproduces the JavaScript behaviour exactly:

* :func:`loads` parses a body the way ``JSON.parse`` does (and rejects what it rejects, and
  anything nested deeper than :data:`MAX_JSON_DEPTH` levels);
* :func:`stringify` serializes a parsed value exactly like ``JSON.stringify``;
* :func:`sort_top_level` reorders the top-level keys like the signing code above;
* :func:`signing_string` combines the two, and :func:`signature_base` returns the UTF-8
  bytes that are fed to MD5 together with the secret.

Everything here is synchronous, pure and only depends on the standard library.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any, Final

from ._nesting import MAX_JSON_DEPTH, marks_too_deep, too_deep

__all__ = [
    "MAX_JSON_DEPTH",
    "loads",
    "signature_base",
    "signing_string",
    "sort_top_level",
    "stringify",
]

#: Largest magnitude up to which every integer is exactly representable as a double.
_MAX_SAFE: Final = 2**53
#: Largest integer that JavaScript treats as an array index (2**32 - 2).
_MAX_ARRAY_INDEX: Final = 2**32 - 2


# Encodes a Python value the way JSON.stringify does once numbers and key order have
# been fixed up: no whitespace, non-ASCII kept verbatim, control characters escaped as
# ``\u00xx`` (lowercase), ``"`` and ``\`` escaped, ``/`` left alone.
_encode: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False
).encode

# A high and a low surrogate stored as two code points: one character in UTF-16.
_SURROGATE_PAIR: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _new_marker() -> str:
    """Return a fresh, unpredictable placeholder prefix for numbers."""
    return f"jsjson-number-{secrets.token_hex(16)}"


# Numbers that need a notation Python cannot produce are temporarily replaced by strings
# made of this marker and an index, and substituted after encoding.  The random part
# makes an accidental (or malicious) occurrence of the marker in payload text practically
# impossible; an occurrence is still detected and handled by retrying with a new marker.
_MARKER: Final = _new_marker()

# Exponents (as ``repr`` writes them) whose notation JavaScript writes differently:
# plain "0.0000ddd" with this prefix, for 1e-6 <= |x| < 1e-4 ...
_PLAIN_SMALL: Final = {"-05": "0.0000", "-06": "0.00000"}
# ... an exponent without zero padding, for 1e-9 <= |x| < 1e-6 ...
_SHORT_EXPONENT: Final = {"-07": "e-7", "-08": "e-8", "-09": "e-9"}
# ... and an integer with this many digits, for 1e16 <= |x| < 1e21.
_PLAIN_LARGE: Final = {f"+{exponent}": exponent + 1 for exponent in range(16, 21)}


class _Pending:
    """Numbers awaiting substitution during one :func:`stringify` call."""

    __slots__ = ("marker", "numbers")

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.numbers: list[str] = []


# --------------------------------------------------------------------------- parsing
def _parse_int(text: str) -> int | float:
    """Convert a JSON integer literal to the value a JavaScript number would hold."""
    if len(text) < 16:  # at most 15 digits: always below 2**53, exact as a double
        return int(text)
    value = float(text)  # correctly rounded, like JavaScript (inf on overflow)
    if -_MAX_SAFE < value < _MAX_SAFE:
        return int(value)
    return value


def _reject_constant(name: str) -> Any:
    """Refuse the ``NaN``/``Infinity``/``-Infinity`` literals that JSON.parse rejects."""
    raise ValueError(f"invalid JSON: {name} is not a valid JSON value")


def _checked_text(body: str | bytes | bytearray | memoryview, *, measure: bool = True) -> str:
    """The text of a body for :func:`loads`, once its encoding (and nesting) were checked."""
    if isinstance(body, str):
        text = body
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                # Raw surrogate code points: like a JavaScript (UTF-16) string, treat an
                # adjacent high/low pair as one character; lone ones are kept.
                text = text.encode("utf-16-le", "surrogatepass").decode(
                    "utf-16-le", "surrogatepass"
                )
        if measure and too_deep(text, MAX_JSON_DEPTH):
            raise _nested_too_deep()
    elif isinstance(body, (bytes, bytearray, memoryview)):
        raw = body if isinstance(body, (bytes, bytearray)) else bytes(body)
        if measure and too_deep(raw, MAX_JSON_DEPTH):
            raise _nested_too_deep()
        text = str(raw, "utf-8")
    else:
        raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
    return text


# The parser, built once: JavaScript's number semantics, no NaN/Infinity literals.
_decode: Final = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant).decode


def loads(body: str | bytes | bytearray | memoryview) -> Any:
    """Parse a webhook body like JavaScript's ``JSON.parse``.

    ``body`` may be the raw request bytes, which must be valid UTF-8, or an already
    decoded string.  Objects become :class:`dict` (keys in the order they appear; for a
    duplicated key the first position is kept with the last value, as in JavaScript),
    arrays become :class:`list`, strings :class:`str` (escaped lone surrogates are kept),
    and ``true``/``false``/``null`` become ``True``/``False``/``None``.  In a ``str``
    body, a raw high/low surrogate pair counts as one character, as in JavaScript.

    Numbers follow JavaScript's double semantics: numbers with a fraction or exponent are
    :class:`float` (``1e400`` becomes ``inf``), integers within ±2**53 are :class:`int`,
    and larger integer literals become the :class:`float` JavaScript would hold.

    Raises:
        ValueError: the body is not valid UTF-8, not valid JSON, starts with a byte
            order mark, uses the ``NaN``/``Infinity`` literals or nests arrays and objects
            deeper than :data:`MAX_JSON_DEPTH` levels.  (:class:`json.JSONDecodeError` and
            :class:`UnicodeDecodeError` are subclasses of :class:`ValueError`.)
        TypeError: ``body`` is neither text nor bytes.
    """
    return _run(_decode, _checked_text(body))


# For signing only: integer literals stay exact ``int`` (``stringify`` rounds those past 2**53
# to the double JavaScript holds, as :func:`loads` would have), which spares a Python call per
# integer literal.
_decode_for_signing: Final = json.JSONDecoder(parse_constant=_reject_constant).decode


def _loads_for_signing(body: bytes | str) -> Any:
    """:func:`loads` for a body about to be signed, which costs less.

    Integers are exact (``stringify`` writes the same text for them), and the nesting is not
    measured before parsing: ``stringify`` refuses a value nested deeper than
    :data:`MAX_JSON_DEPTH` as it walks it anyway, and the parser itself stops (``ValueError``)
    long before a nesting could exhaust the stack.
    """
    text = _checked_text(body, measure=False)
    try:
        return _run(_decode_for_signing, text)
    except json.JSONDecodeError:
        raise  # not JSON: no second parse
    except ValueError:
        # An integer literal longer than int() accepts, which JavaScript reads as a double
        # (or a NaN literal): the full parser decides.
        return _run(_decode, text)


def _run(decode: Callable[[str], Any], text: str) -> Any:
    try:
        return decode(text)
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        raise _nested_too_deep() from None


def _nested_too_deep() -> ValueError:
    return ValueError(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")


# ----------------------------------------------------------------------- serializing


def _prep_float(value: float, pending: _Pending) -> Any:
    """Return a stand-in for ``value`` that the stdlib encoder prints like JavaScript.

    ``repr`` yields the same shortest round-trip digits as ECMAScript
    ``Number::toString``; only the notation differs: Python switches to exponent form
    below 1e-4 and from 1e16 on (JavaScript: below 1e-6 and from 1e21 on), pads the
    exponent to two digits and appends ``.0`` to integral values.
    """
    if -1e16 < value < 1e16 and not value % 1.0:
        return int(value)  # integral and exact: plain digits (and 0 for -0.0)
    text = repr(value)
    if "e" not in text:
        if "n" in text:  # nan, inf, -inf
            return None
        return value
    mantissa, _, exponent_text = text.partition("e")
    if exponent_text in _PLAIN_SMALL:  # JavaScript: 0.00000ddd
        digits = mantissa.replace(".", "")
        if value < 0:
            number = "-" + _PLAIN_SMALL[exponent_text] + digits[1:]
        else:
            number = _PLAIN_SMALL[exponent_text] + digits
    elif exponent_text in _SHORT_EXPONENT:  # JavaScript: unpadded exponent, e.g. 1e-7
        number = mantissa + _SHORT_EXPONENT[exponent_text]
    elif exponent_text in _PLAIN_LARGE:  # JavaScript: the digits and zeros, an integer
        digits = mantissa.replace(".", "")
        return int(digits + "0" * (_PLAIN_LARGE[exponent_text] - len(digits.lstrip("-"))))
    else:
        return value  # the same exponent notation in both languages
    numbers = pending.numbers
    numbers.append(number)
    return f"{pending.marker}#{len(numbers) - 1}"


def _prep_big_int(value: int, pending: _Pending) -> Any:
    """Stand-in for an integer beyond ±2**53: JavaScript holds the nearest double."""
    try:
        as_double = float(value)
    except OverflowError:
        return None  # Infinity, serialized as null
    return _prep_float(as_double, pending)


def _is_array_index(key: str) -> bool:
    """Whether JavaScript treats the property name ``key`` as an array index."""
    return (
        len(key) <= 10
        and key.isascii()
        and key.isdigit()
        and (key[0] != "0" or len(key) == 1)
        and int(key) <= _MAX_ARRAY_INDEX
    )


def _js_order(obj: dict[str, Any]) -> dict[str, Any]:
    """Reorder keys like a JavaScript object: array indices ascending, then the rest."""
    indices = [key for key in obj if key.isdigit() and _is_array_index(key)]
    if not indices:
        return obj
    indices.sort(key=int)
    ordered = {key: obj[key] for key in indices}
    for key, value in obj.items():
        if key not in ordered:
            ordered[key] = value
    return ordered


def _prep_dict(obj: dict[str, Any], pending: _Pending, depth: int) -> dict[str, Any]:
    """Copy-on-write preparation of an object, ``depth`` levels deep, for the stdlib encoder."""
    if depth > MAX_JSON_DEPTH:
        raise _nested_too_deep()
    try:
        # Cheap pre-check: array-index keys start with a digit, so sort before ":".
        reorder = bool(obj) and min(obj) < ":"
    except TypeError:
        raise TypeError("JSON object keys must be str") from None
    result = obj
    for key, value in obj.items():
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is float and (1e-4 <= value < 1e16 or -1e16 < value <= -1e-4) and value % 1.0:
            continue  # non-integral in Python's plain-notation range: repr is JavaScript's
        if kind is int and -_MAX_SAFE <= value <= _MAX_SAFE:
            continue
        # Containers directly: one stack frame per nesting level, like the parser.
        new: Any
        if kind is dict:
            new = _prep_dict(value, pending, depth + 1)
        elif kind is list:
            new = _prep_list(value, pending, depth + 1)
        else:
            new = _prep(value, pending, depth + 1)
        if new is not value:
            if result is obj:
                result = obj.copy()
            result[key] = new
    return _js_order(result) if reorder else result


def _prep_list(items: list[Any], pending: _Pending, depth: int) -> list[Any]:
    """Copy-on-write preparation of an array, ``depth`` levels deep, for the stdlib encoder."""
    if depth > MAX_JSON_DEPTH:
        raise _nested_too_deep()
    result = items
    for index, value in enumerate(items):
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is float and (1e-4 <= value < 1e16 or -1e16 < value <= -1e-4) and value % 1.0:
            continue  # non-integral in Python's plain-notation range: repr is JavaScript's
        if kind is int and -_MAX_SAFE <= value <= _MAX_SAFE:
            continue
        # Containers directly: one stack frame per nesting level, like the parser.
        new: Any
        if kind is dict:
            new = _prep_dict(value, pending, depth + 1)
        elif kind is list:
            new = _prep_list(value, pending, depth + 1)
        else:
            new = _prep(value, pending, depth + 1)
        if new is not value:
            if result is items:
                result = items.copy()
            result[index] = new
    return result


def _prep(value: Any, pending: _Pending, depth: int) -> Any:
    """Return a value the stdlib encoder serializes exactly like JSON.stringify.

    ``depth`` is the nesting level ``value`` has if it is an array or object (1 at the top).
    """
    kind = type(value)
    if kind is dict:
        return _prep_dict(value, pending, depth)
    if kind is list:
        return _prep_list(value, pending, depth)
    if kind is str or value is None or kind is bool:
        return value
    if kind is float:
        return _prep_float(value, pending)
    if kind is int:
        if -_MAX_SAFE <= value <= _MAX_SAFE:
            return value
        return _prep_big_int(value, pending)
    # Subclasses of the JSON types (enums, OrderedDict, tuples, ...).
    if isinstance(value, str):
        return value  # the stdlib encoder writes str subclasses as their text
    if isinstance(value, int):  # bool is handled above; IntEnum and friends
        return _prep(int(value), pending, depth)
    if isinstance(value, float):
        return _prep_float(float(value), pending)
    if isinstance(value, dict):
        return _prep_dict(dict(value), pending, depth)
    if isinstance(value, (list, tuple)):
        return _prep_list(list(value), pending, depth)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _join_surrogate_pair(match: re.Match[str]) -> str:
    """Join a high and a low surrogate code point into one character, as UTF-16 does."""
    return match.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _encode_with_surrogates(value: Any) -> str:
    """Serialize like JSON.stringify, except that surrogate code points are left as is."""
    marker = _MARKER
    while True:
        pending = _Pending(marker)
        text = _encode(_prep(value, pending, 1))
        numbers = pending.numbers
        if not numbers:
            return text
        # Placeholders are the JSON strings "<marker>#<index into numbers>"; object keys
        # may have been reordered, so the index, not the position, identifies the number.
        pieces = text.split(f'"{marker}#')
        if len(pieces) == len(numbers) + 1:
            out = [pieces[0]]
            for piece in pieces[1:]:
                index, _, rest = piece.partition('"')
                out.append(numbers[int(index)])
                out.append(rest)
            return "".join(out)
        marker = _new_marker()  # the marker occurs in the payload itself: pick another


def _fix_and_encode(text: str) -> tuple[str, bytes]:
    """Escape/join surrogates in ``text`` (see :func:`stringify`); return it and its UTF-8."""
    try:
        return text, text.encode("utf-8")  # fast check: fails only if surrogates remain
    except UnicodeEncodeError:
        pass
    if _SURROGATE_PAIR.search(text) is not None:
        text = _SURROGATE_PAIR.sub(_join_surrogate_pair, text)
    # Lone surrogates only occur inside JSON strings, where "\udxxx" is their escape.
    data = text.encode("utf-8", "backslashreplace")
    return data.decode("utf-8"), data


def stringify(value: Any) -> str:
    """Serialize ``value`` exactly like JavaScript's ``JSON.stringify(value)``.

    Accepts what :func:`loads` produces (``dict`` with ``str`` keys, ``list``, ``str``,
    ``int``, ``float``, ``bool``, ``None``; subclasses such as enums or tuples are
    treated as their JSON counterparts).  The output has no whitespace; numbers use
    ECMAScript ``Number::toString`` (``1e21`` → ``1e+21``, ``1e-7`` → ``1e-7``,
    ``0.000001``, ``-0`` → ``0``, integers beyond ±2**53 as the nearest double, NaN and
    infinities → ``null``); strings escape only ``"``, ``\\``, control characters and
    lone surrogates; object keys that are array indices (``"0"`` … ``"4294967294"``)
    come first in numeric order, followed by the other keys in insertion order.

    Raises:
        TypeError: a value (or object key) has no JSON representation.
        ValueError: arrays and objects nest deeper than :data:`MAX_JSON_DEPTH` levels.
    """
    text = _encode_with_surrogates(value)
    if text.isascii():
        return text
    return _fix_and_encode(text)[0]


# ------------------------------------------------------------------------- signing


def _utf16_key(key: str) -> bytes:
    """Sort key comparing strings by UTF-16 code units, like ``Array.prototype.sort``."""
    return key.encode("utf-16-be", "surrogatepass")


def sort_top_level(obj: dict[str, Any]) -> dict[str, Any]:
    """Reorder the top-level keys of ``obj`` exactly like the InstaXchange signer.

    Emulates ``Object.keys(body).sort()`` followed by assigning every key to a fresh
    object: keys are sorted by UTF-16 code units (not by code points, which differ for
    characters beyond U+FFFF), then the new object applies JavaScript property order
    (array-index keys first, ascending numerically, then the rest in sorted order).
    A ``"__proto__"`` key is dropped: assigning it to a plain object changes the
    prototype instead of creating a property, so it never reaches ``JSON.stringify``.
    Nested values are shared with ``obj``, not copied.

    Raises:
        TypeError: ``obj`` is not a dict or has a non-``str`` key.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"expected a JSON object (dict), not {type(obj).__name__}")
    try:
        keys = "".join(obj)
    except TypeError:
        raise TypeError("JSON object keys must be str") from None
    # Below U+D800, code points and UTF-16 code units order strings alike.
    names = sorted(obj) if keys.isascii() or max(keys) < "\ud800" else sorted(obj, key=_utf16_key)
    if "__proto__" in obj:
        names.remove("__proto__")
    ordered = {}
    for name in names:
        ordered[name] = obj[name]
    # Array-index keys start with a digit, so sort before ":".
    return _js_order(ordered) if names and names[0] < ":" else ordered


def signing_string(obj: dict[str, Any]) -> str:
    """Return the JSON text InstaXchange hashes for the webhook payload ``obj``.

    Equivalent to ``stringify(sort_top_level(obj))``; ``obj`` is normally the result of
    :func:`loads` applied to the raw request body. Raises what :func:`stringify` raises.
    """
    return stringify(sort_top_level(obj))


def _js_utf8(text: str) -> bytes:
    """Encode ``text`` to UTF-8 like Node.js, which writes U+FFFD for lone surrogates."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Join code-point-separated surrogate pairs; replace lone ones with U+FFFD.
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return joined.encode("utf-8")


def signature_base(obj: dict[str, Any], secret: str) -> bytes:
    """Return the exact bytes whose MD5 digest is the webhook signature.

    That is ``f"{signing_string(obj)}:{secret}"`` encoded as UTF-8 the way Node.js's
    ``hash.update(string)`` does it (a lone surrogate in ``secret`` becomes U+FFFD). Raises
    what :func:`stringify` raises.
    """
    return _signing_string_and_base(obj, secret)[1]


def _signing_string_and_base(obj: dict[str, Any], secret: str) -> tuple[str, bytes]:
    """:func:`signing_string` and :func:`signature_base` of ``obj``, from one serialization."""
    text, payload = _signing_text_and_utf8(obj)
    return text, payload + b":" + _js_utf8(secret)


def _signing_text_and_utf8(obj: dict[str, Any]) -> tuple[str, bytes]:
    """:func:`signing_string` of ``obj``, and its UTF-8."""
    return _fix_and_encode(_encode_with_surrogates(sort_top_level(obj)))


# ------------------------------------------------------------------------ verifying
#
# ``verify`` needs the signing string and, for the event, the value that string parses back to
# with ``Decimal`` numbers (``sign`` needs only the string). Most bodies give both from one parse
# and one serialization, both in C, with no Python call for a number (but for an integer literal):
#
# * the parser reads each number with a fraction or an exponent as the ``Decimal`` of its text,
#   and each integer as JavaScript holds it (:func:`_signed_integer`);
# * the C encoder writes each Decimal's ``str()`` between marks, in a string; one split at the
#   marks yields the numbers' texts, checked all at once (:func:`_signed_texts`), and the pieces
#   around them, whose quotes are dropped. A number's text is nearly always the very text
#   ``JSON.stringify`` writes for it (plain, a fraction not ending in 0, 15 significant digits at
#   most, see :func:`_signed_one_by_one`); a longer one is checked against the shortest digits of
#   its double, anything else rewritten, and a Decimal that is not the value its signed text
#   parses back to (``5.0``, ``1.50``, ``3.74000000000000000009``) replaced in the value
#   (:func:`_sign_numbers`);
# * whether a body can take that path is decided from one reduced copy of it (see
#   :data:`_PRECHECK_DELETE`): its nesting, the mark, escapes, keys that may be array indices.
#
# What that path cannot handle (array-index keys in nested objects, which JavaScript moves to the
# front, nesting over the limit, surrogates, the mark in the body) takes the general path:
# parse, :func:`stringify`, parse the signed text back.


def _signed_integer(text: str) -> Decimal | int | None:
    """The value a JSON integer ``text`` has once signed: itself up to 15 digits (exact as a
    double), else what JavaScript holds, the nearest double (infinite beyond them)."""
    if len(text) < 16:
        return int(text)
    return _signed_double(float(text))


def _signed_double(value: float) -> Decimal | int | None:
    """The value ``JSON.stringify``'s text for the double ``value`` parses back to.

    That is the ``Decimal`` of that text, an ``int`` when it is an integer, ``None`` when it is
    ``null`` (infinite).
    """
    if -1e16 < value < 1e16:
        if value % 1.0:
            # repr's digits are JavaScript's (the shortest that read back as the double), and
            # a Decimal keeps digits and exponent, not the notation they were written in.
            return Decimal(repr(value))
        return int(value)  # JavaScript writes the integer (0 for -0)
    if not math.isfinite(value):
        return None  # JavaScript writes null
    if -1e21 < value < 1e21:  # JavaScript writes the shortest digits, then zeros: an integer
        mantissa, _, exponent = repr(value).partition("e")
        digits = mantissa.replace(".", "")
        return int(digits + "0" * (int(exponent) + 1 - len(digits.lstrip("-"))))
    return Decimal(repr(value))  # the same digits and exponent as JavaScript's


def _js_text(value: Decimal | int | None) -> str:
    """The text ``JSON.stringify`` writes for a value of :func:`_signed_double`."""
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    return str(value).replace("E", "e")  # a Decimal: the exponent's letter in lowercase


def _plain_fractions(joined: bytes, count: int) -> bool:
    """Whether each of the ``count`` texts in ``joined`` (separated by ",") is a plain decimal with
    a fraction that does not end in 0."""
    # (A byte as an int: ``bytes in bytes`` first tries the argument as an int, and formats an
    # exception to learn that it is not one.)
    return (
        joined.count(46) == count  # one "." in each ...
        and 69 not in joined  # ... no exponent ("E") ...
        and 101 not in joined  # ("e")
        and joined.find(b"0,") < 0  # ... and no trailing 0
        and joined[-1] != 48  # ("0")
    )


def _signed_texts(numbers: list[bytes]) -> dict[int, Decimal | int | None]:
    """Make each of ``numbers`` (the ``str()`` of a Decimal read from a JSON number, in ASCII) the
    text ``JSON.stringify`` writes for the double JavaScript reads from it; return, by position,
    the value that text parses back to (see :func:`_signed_double`) for each such Decimal that is
    not that value.

    All at once for the texts of 16 characters at most, one at a time for longer ones (and for
    all of a few).
    """
    if len(numbers) <= 8:
        return _signed_one_by_one(numbers, range(len(numbers)))
    lengths = list(map(len, numbers))
    longer = [i for i, length in enumerate(lengths) if length > 16] if max(lengths) > 16 else []
    shorter = numbers
    if longer:
        shorter = numbers.copy()
        for index in longer:
            shorter[index] = b".1"  # (not among those looked at here)
    joined = b",".join(shorter)
    if not _plain_fractions(joined, len(shorter)):  # some others are not: which ones
        others = _not_plain(shorter, joined)
        longer = sorted(longer + others)
    # Each of the others is plain, with a fraction that does not end in 0 and 15 significant
    # digits at most: its own signed text.
    return _signed_one_by_one(numbers, longer) if longer else {}


def _not_plain(numbers: list[bytes], joined: bytes) -> list[int]:
    """The positions of the texts among ``numbers`` (joined by "," in ``joined``) that are not
    plain fractions ending in 1-9: looked for in C when they are few."""
    found: set[int] = set()
    for mark in (b"0,", b"E", b"e"):  # a trailing "0" (but the last's), an exponent
        at = joined.find(mark)
        while at >= 0 and len(found) <= 32:
            found.add(joined.count(b",", 0, at))
            at = joined.find(mark, at + 1)
    if joined[-1] == 48:  # "0"
        found.add(len(numbers) - 1)
    # Each of the others has one ".": then no other text is without one.
    without_dot = sum(46 not in numbers[i] for i in found)
    if len(found) <= 32 and joined.count(46) + without_dot == len(numbers):
        return sorted(found)
    return [
        i
        for i, number in enumerate(numbers)
        if number[-1] == 48 or 46 not in number or 69 in number or 101 in number
    ]  # a trailing "0", no ".", an "E" or an "e"


def _signed_one_by_one(
    numbers: list[bytes], positions: Iterable[int]
) -> dict[int, Decimal | int | None]:
    """:func:`_signed_texts` of the numbers at ``positions``, one at a time.

    A plain text with a fraction that does not end in 0 and 15 significant digits at most needs
    no arithmetic: no other text of as many digits reads as the same double, so these are the
    shortest digits, which JavaScript writes plainly at that size (1e-6 and more, where the
    ``str()`` of a Decimal is plain too). ``float()`` of any other is correctly rounded, as
    JavaScript reads the text.
    """
    unsigned: dict[int, Decimal | int | None] = {}
    for index in positions:
        number = numbers[index]
        if (
            len(number) <= 16
            and number[-1] != 48  # "0" (bytes as ints: see _plain_fractions)
            and 46 in number  # "."
            and 69 not in number  # "E"
            and 101 not in number  # "e"
        ):
            continue  # plain, a fraction not ending in 0, 15 significant digits at most
        text = number.decode("ascii")
        if text[-1] != "0" and "." in text and "E" not in text and "e" not in text:
            # Plain, with a fraction that does not end in 0: its own signed text if it has 15
            # significant digits at most, or if they are the shortest that read back as its
            # double (``repr``'s), which JavaScript writes plainly where a Decimal's str() is
            # plain (1e-6 and more).
            digits = text.lstrip("-0.")  # the significant digits, and maybe a "."
            if len(digits) - ("." in digits) <= 15:
                continue
            shortest = repr(float(text))
            if shortest == text:
                continue
            mantissa, exponent, _ = shortest.partition("e")
            # The same digits, both read as the same (normal) double: the same number.
            if exponent and mantissa.replace(".", "").lstrip("-") == digits.replace(".", ""):
                continue
        value = _signed_double(float(text))
        if type(value) is Decimal and str(value) == text:
            numbers[index] = text.replace("E", "e").encode("ascii")  # JavaScript's letter
        else:
            numbers[index] = _js_text(value).encode("ascii")
            unsigned[index] = value
    return unsigned


def _sign_numbers(value: dict[str, Any], signed: dict[int, Decimal | int | None]) -> None:
    """Replace, in place, the Decimals of ``value`` at the positions of ``signed`` (counted in the
    order the encoder writes them) by the values given there."""
    last, position = max(signed), -1
    # Depth first, without a call per container: each iterator resumes where it stopped.
    stack: list[tuple[Any, Iterator[tuple[Any, Any]]]] = [(value, iter(value.items()))]
    while stack:  # pragma: no branch - the last position is always reached
        container, items = stack[-1]
        for key, item in items:  # assigning to an existing key or index keeps iterating valid
            kind = type(item)
            if kind is Decimal:
                position += 1
                if position in signed:
                    container[key] = signed[position]
                    if position == last:
                        return
            elif kind is dict:
                stack.append((item, iter(item.items())))
                break
            elif kind is list:
                stack.append((item, enumerate(item)))
                break
        else:
            stack.pop()


def _one_pass_parser(
    parse_int: Callable[[str], Any],
) -> tuple[Callable[[str, int], tuple[Any, int]], Callable[[str], Any]]:
    """A scanner and a parser of the one-parse path: ``JSON.parse`` with numbers as Decimals,
    integers read by ``parse_int``, and no NaN/Infinity literals.

    The scanner alone reads a body that is one JSON value without surrounding whitespace; for
    anything else, the parser says what is wrong.
    """
    decoder = json.JSONDecoder(
        parse_float=Decimal, parse_int=parse_int, parse_constant=_reject_constant
    )
    scan: Callable[[str, int], tuple[Any, int]] = getattr(decoder, "scan_once", None) or (
        lambda text, _index: (decoder.decode(text), len(text))
    )
    return scan, decoder.decode


# Integers as Python reads them, exact: as JavaScript holds them when they have 15 digits at
# most. For a body whose integers may be longer, as JavaScript holds them.
_ONE_PASS_PARSER: Final = _one_pass_parser(int)
_ONE_PASS_PARSER_LONG_INTEGERS: Final = _one_pass_parser(_signed_integer)


# The mark around each number's text: DEL, which the encoder writes as is (one character) and
# which a body's strings hold only if the body has it raw or as an escape ``\u007f``.
_MARK: Final = "\x7f"


def _marked_encoder() -> Callable[[Any, int], Iterable[str]]:
    """The chunks of the compact JSON of a value, each ``Decimal`` as its ``str()`` between marks,
    in a string: the stdlib's C encoder, made once, where there is one."""
    options: dict[str, Any] = {
        "ensure_ascii": False,
        "separators": (",", ":"),
        "check_circular": False,
        "allow_nan": False,
        "default": f"{_MARK}{{!s}}{_MARK}".format,
    }
    encoder = json.JSONEncoder(**options)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        with contextlib.suppress(TypeError):  # another signature: the stdlib's own way
            chunks: Callable[[Any, int], Iterable[str]] = make(
                None,
                encoder.default,
                json.encoder.encode_basestring,
                None,
                encoder.key_separator,
                encoder.item_separator,
                False,
                False,
                False,
            )
            return chunks
    return lambda value, _level: encoder.iterencode(value)  # pragma: no cover - no _json module


_marked_chunks: Final = _marked_encoder()


# What the checks before the one-parse path look at, in one reduced copy of the body: quotes,
# brackets, colons, commas, dots, backslashes, the mark, and digits, each as "0"; whitespace,
# letters, "-" and all else go.
_PRECHECK_DIGITS: Final = bytes.maketrans(b"123456789", b"000000000")
_PRECHECK_DELETE: Final = bytes(b for b in range(256) if b not in b'0123456789"[]{}:,.\\\x7f')
# In the reduced copy: 16 digits right after what precedes a number, the start of an integer
# literal too long to be exact as a double (or of a long number with a fraction).
_LONG_INTEGERS: Final = tuple(start + b"0" * 16 for start in (b":", b",", b"["))
_LOOK_FOR_LONG_INTEGERS: Final = 2048  # bytes of the reduced copy
# In compact JSON: an object key made of digits, which JavaScript may treat as an array index.
_DIGITS_KEY: Final = re.compile(rb'[{,]"[0-9]+":')

# How :func:`loads_for_verifying` read a body, for :func:`signing_string_base_and_value`:
_GENERAL: Final = 0  # by :func:`_loads_for_signing`
_ONE_PASS: Final = 1  # numbers as in the one-parse path; no object key ends with a digit
_ONE_PASS_DIGIT_KEY: Final = 2  # the same, but some object key may end with a digit


def loads_for_verifying(body: bytes | str) -> tuple[Any, int]:
    """Parse a webhook body for :func:`~instax_async.webhooks.verify` (and ``sign``); raises what
    :func:`_loads_for_signing` raises.

    Returns the value and how it was read, for :func:`signing_string_base_and_value`: with the
    numbers of the one-parse path (Decimals as written, integers as JavaScript holds them), or,
    if the body nests deeper than :data:`MAX_JSON_DEPTH` levels or holds the mark, by
    :func:`_loads_for_signing`.
    """
    if type(body) is bytes:  # :func:`_checked_text`, inline
        raw, text = body, body.decode()
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
    else:
        text = _checked_text(body, measure=False)
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    reduced = raw.translate(_PRECHECK_DIGITS, _PRECHECK_DELETE)
    if 127 in reduced:  # the mark (a byte as an int: see _signed_texts)
        return _loads_for_signing(body), _GENERAL
    if 92 in reduced:  # a backslash: escapes have their own checks
        if "\\u007" in text or too_deep(raw, MAX_JSON_DEPTH):
            return _loads_for_signing(body), _GENERAL
    elif (
        len(reduced) > 2 * MAX_JSON_DEPTH  # (a nesting past the limit takes more brackets)
        # in a small body, few "[" and "{" answer sooner
        and (len(reduced) > 8192 or reduced.count(91) + reduced.count(123) > MAX_JSON_DEPTH)
        and marks_too_deep(reduced.translate(None, b"0:,."), MAX_JSON_DEPTH)
    ):
        return _loads_for_signing(body), _GENERAL
    # An array-index key is digits: its last character (or escape's) is a digit before `"` and `:`.
    how = _ONE_PASS_DIGIT_KEY if reduced.find(b'0":') >= 0 else _ONE_PASS
    # Integers read in C unless one may be too long to be exact as a double (in a small body,
    # looking costs more than reading its few integers in Python).
    scan, decode = (
        _ONE_PASS_PARSER
        if len(reduced) > _LOOK_FOR_LONG_INTEGERS and max(map(reduced.find, _LONG_INTEGERS)) < 0
        else _ONE_PASS_PARSER_LONG_INTEGERS
    )
    try:
        try:
            value, end = scan(text, 0)
        except StopIteration:  # leading whitespace, or not JSON
            end = -1
        if end != len(text):
            value = decode(text)  # trailing whitespace, or what is wrong
        return value, how
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        raise _nested_too_deep() from None
    except json.JSONDecodeError:
        raise
    except (ValueError, InvalidOperation):
        # A NaN or Infinity literal, or an exponent beyond a Decimal's: the general path
        # refuses or reads them as always.
        return _loads_for_signing(body), _GENERAL


def signing_string_base_and_value(
    obj: dict[str, Any], secret: str, how: int, body: bytes | str, *, want_value: bool = True
) -> tuple[bytes, bytes, dict[str, Any] | None]:
    """The signing string as UTF-8 (like :func:`_signing_string_and_base`), the signature base,
    and, when ``want_value``, the signing string parsed back with ``Decimal`` numbers if ``obj``
    can be made that value (else ``None``); ``obj`` and ``how`` are what
    :func:`loads_for_verifying` read from ``body``.

    Raises what :func:`_signing_string_and_base` raises.
    """
    if how != _GENERAL:
        ordered = sort_top_level(obj)
        text = "".join(_marked_chunks(ordered, 0))
        value: dict[str, Any] | None = ordered if want_value else None
        try:
            marked = text.encode("utf-8")
        except UnicodeEncodeError:  # surrogates, escaped or joined: parse the text back
            marked = _fix_and_encode(text)[1]
            value = None
        # Array-index keys, which JavaScript moves to the front of their object, take the
        # general path.
        if how == _ONE_PASS or _DIGITS_KEY.search(marked) is None:
            pieces = marked.split(b"\x7f")
            if len(pieces) == 1:
                payload = marked
            else:
                numbers = pieces[1::2]
                signed = _signed_texts(numbers)
                if signed and value is not None:
                    _sign_numbers(value, signed)
                # Between two numbers: the quote that closes one, what follows, the quote that
                # opens the next (no number is at the top level, nor next to another quote).
                pieces[1::2] = numbers
                pieces[::2] = map(bytes.strip, pieces[::2], repeat(b'"'))
                payload = b"".join(pieces)
            return payload, payload + b":" + _js_utf8(secret), value
        obj = _loads_for_signing(body)  # the general path
    payload = _signing_text_and_utf8(obj)[1]
    return payload, payload + b":" + _js_utf8(secret), None
