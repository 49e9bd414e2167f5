"""One cattrs converter for the package, and JSON encoding that keeps ``Decimal`` exact.

Naming rule: a Python field ``snake_case`` is ``camelCase`` on the wire, unless the field's
metadata names its wire key (``attrs.field(metadata={"wire": "Credit_card_number"})``).
A field named ``raw`` receives the whole mapping it was structured from.

Parsing: :func:`loads` refuses JSON nested deeper than :data:`MAX_JSON_DEPTH` levels of arrays
and objects (the one limit for every JSON the SDK reads, webhook bodies included).

Hooks: ``Decimal`` from a JSON number or a numeric string, without passing through ``float``
when the JSON was parsed with ``parse_float=Decimal``; timezone-aware ``datetime`` from ISO
8601; str enums that keep an unknown value as the plain string instead of failing.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeVar, get_args, get_origin, get_type_hints

import attr  # the library ``attrs`` re-exports; see models.py

from ._nesting import MAX_JSON_DEPTH, too_deep
from .errors import ValidationError

if TYPE_CHECKING:
    import cattrs

# The public names; the others (the converter's hooks, OpenStrEnum, wire_name …) serve the
# SDK's own modules.
__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "dumps",
    "get_converter",
    "loads",
]


#: What an ``_`` in a field name is dropped before, the character upper-cased (``a_b1_2`` is
#: ``aB12``): ASCII lower-case letters and digits.
_CAMEL_NEXT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
T = TypeVar("T")


def wire_name(field: attr.Attribute[Any]) -> str:
    """The JSON key of an attrs field: its ``wire`` metadata, else its name in camelCase."""
    explicit = field.metadata.get("wire")
    if explicit is not None:
        return str(explicit)
    head, *parts = field.name.split("_")
    return head + "".join(
        part[0].upper() + part[1:] if part[:1] in _CAMEL_NEXT else "_" + part for part in parts
    )


class OpenStrEnum(str, enum.Enum):
    """A str enum whose converter hook keeps unknown values as plain strings.

    Members compare equal to their values (``TransactionStatus.COMPLETED == "completed"``).
    """

    def __str__(self) -> str:
        return str(self.value)


def _structure_decimal(value: Any, _type: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        # float goes through its shortest repr (3.74 -> Decimal("3.74")), never its binary value
        result = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return result


def parse_datetime(value: str) -> datetime:
    """Parse ISO 8601 (``Z`` suffix allowed) into an aware ``datetime`` (UTC when no offset)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _structure_datetime(value: Any, _type: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # epoch milliseconds, as JavaScript clients send them
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date-time, got {value!r}")
    return parse_datetime(value)


def _structure_open_enum(value: Any, cls: type[OpenStrEnum]) -> Any:
    try:
        return cls(value)
    except ValueError:
        if isinstance(value, str):
            return value
        raise


def _is_open_union(tp: Any) -> bool:
    args = get_args(tp)
    return bool(args) and any(isinstance(a, type) and issubclass(a, OpenStrEnum) for a in args)


def _open_union_hook(tp: Any) -> Callable[[Any, Any], Any]:
    enum_cls = next(a for a in get_args(tp) if isinstance(a, type) and issubclass(a, OpenStrEnum))
    allows_none = type(None) in get_args(tp)

    def structure(value: Any, _type: Any) -> Any:
        if value is None and allows_none:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return _structure_open_enum(value, enum_cls)

    return structure


def _is_plain_optional(tp: Any) -> bool:
    args = get_args(tp)
    return len(args) == 2 and type(None) in args and not _is_open_union(tp)


def _optional_hook(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        inner_type = next(a for a in get_args(tp) if a is not type(None))
        if inner_type is str:

            def structure_str(value: Any, _type: Any) -> Any:
                return value if value is None or type(value) is str else str(value)

            return structure_str
        inner = conv.get_structure_hook(inner_type)

        def structure(value: Any, _type: Any) -> Any:
            return None if value is None else inner(value, inner_type)

        return structure

    return factory


def _make_attrs_hook(conv: cattrs.Converter) -> Callable[[type[Any]], Callable[[Any, Any], Any]]:
    from cattrs.gen import make_dict_structure_fn, override

    def factory(cls: type[Any]) -> Callable[[Any, Any], Any]:
        overrides: dict[str, Any] = {}
        has_raw = False
        for field in attr.fields(cls):
            if field.name == "raw":
                has_raw = True
                overrides["raw"] = override(omit=True)
            else:
                overrides[field.name] = override(rename=wire_name(field))
        inner = make_dict_structure_fn(cls, conv, **overrides)
        name = cls.__name__

        def structure(data: Any, tp: Any) -> Any:
            if not isinstance(data, Mapping):
                raise ValueError(f"{name}: expected a JSON object, got {type(data).__name__}")
            obj = inner(data, tp)
            if has_raw:
                # ``raw`` is excluded from generated code, then attached without another copy.
                object.__setattr__(obj, "raw", data)
            return obj

        return structure

    return factory


def _build_converter() -> cattrs.Converter:
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_structure_hook(datetime, _structure_datetime)
    # Registered on the base class, so every subclass gets it; the hook receives the subclass.
    conv.register_structure_hook(OpenStrEnum, _structure_open_enum)
    # ``X | None`` binds X's hook once (cattrs would dispatch on every value); registered
    # before the open-enum unions, which take precedence.
    conv.register_structure_hook_factory(_is_plain_optional, _optional_hook(conv))
    conv.register_structure_hook_factory(_is_open_union, _open_union_hook)
    conv.register_structure_hook_factory(attr.has, _make_attrs_hook(conv))
    conv.register_unstructure_hook(Decimal, lambda d: d)
    conv.register_unstructure_hook(datetime, lambda d: d.isoformat())
    return conv


@functools.cache
def get_converter() -> cattrs.Converter:
    """The package's one converter: models are structured from wire mappings with it.

    Built on first use, so that importing the package does not import cattrs (most of the
    import time it would add); ``serialization.converter`` is the same object.
    """
    return _build_converter()


def __getattr__(name: str) -> Any:
    # ``converter``, made on first access (PEP 562)
    if name == "converter":
        return get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def structure_json(data: Any, cls: type[T]) -> T:
    """``converter.structure(data, cls)`` for ``data`` parsed from JSON (keys are ``str``).

    The same result, or the same exception, as the converter. A mapping whose every value has
    the plain type its field expects is built by straight-line code generated once per class
    (see :func:`_fast_builder`), without the converter's call per field; anything else (and any
    class with a field of another type) is handed to the converter.
    """
    try:
        build = _BUILDERS[cls]
    except KeyError:
        build = _fast_builder(cls)
    if build is not None and type(data) is dict:
        try:
            result: T = build(data)
            return result
        except Exception:  # an unexpected value: the converter decides, and explains
            pass
    structured: T = get_converter().structure(data, cls)
    return structured


class _Unexpected(Exception):
    """A value the generated builder leaves to the converter."""


_BUILDERS: dict[Any, Callable[[dict[str, Any]], Any] | None] = {}
_STR_ANY = (str, Any)


def _fast_builder(cls: Any) -> Callable[[dict[str, Any]], Any] | None:
    """:func:`_make_builder` of ``cls``, made once."""
    try:
        return _BUILDERS[cls]
    except KeyError:
        build = _BUILDERS[cls] = _make_builder(cls)
        return build


def _make_builder(cls: Any) -> Callable[[dict[str, Any]], Any] | None:
    """Straight-line code that builds ``cls`` from a JSON object as the converter does.

    Each field must be optional (default ``None``) and ``str``, ``Decimal``, ``datetime``,
    ``dict[str, Any]``, an :class:`OpenStrEnum` union or an attrs class, or an attrs class
    whose default is a factory, or ``raw``; otherwise ``None`` (no builder). A value is taken
    as the converter would take it when it is ``None`` or of the plain type (a ``str`` for a
    ``datetime`` or an enum, a ``dict`` for a mapping or an attrs class); any other value
    raises, and the caller asks the converter.
    """
    try:
        hints = get_type_hints(cls)
    except Exception:  # pragma: no cover - an annotation that does not resolve
        return None
    namespace: dict[str, Any] = {
        "cls": cls,
        "Decimal": Decimal,
        "UNEXPECTED": _Unexpected,
        "parse_datetime": parse_datetime,
        "setattr": object.__setattr__,
    }
    lines = ["def build(o):", "    get = o.get"]
    arguments = []
    has_raw = False
    for index, field in enumerate(attr.fields(cls)):
        if field.name == "raw":
            has_raw = True
            continue
        value, key = f"v{index}", wire_name(field)
        tp = hints[field.name]
        args = set(get_args(tp))
        optional = type(None) in args and field.default is None
        inner = [a for a in args if a is not type(None)]
        lines.append(f"    {value} = get({key!r})")
        if isinstance(field.default, attr.Factory) and attr.has(tp):  # type: ignore[arg-type]
            if field.default.takes_self:
                return None
            namespace[f"build{index}"] = _fast_builder(tp)
            namespace[f"factory{index}"] = field.default.factory
            if namespace[f"build{index}"] is None:
                return None
            lines += [
                f"    if {value} is None:",
                f"        if {key!r} in o: raise UNEXPECTED",
                f"        {value} = factory{index}()",
                f"    elif type({value}) is dict: {value} = build{index}({value})",
                "    else: raise UNEXPECTED",
            ]
        elif not optional or len(inner) not in (1, 2):
            return None
        elif inner in ([str], [Decimal]):
            lines.append(
                f"    if {value} is not None and type({value}) is not {inner[0].__name__}:"
                " raise UNEXPECTED"
            )
        elif inner == [datetime]:
            lines.append(
                f"    if {value} is not None: {value} = parse_datetime({value})"
                f" if type({value}) is str else _unexpected()"
            )
        elif _is_open_union(tp) and str in inner:
            enum_cls = next(a for a in inner if a is not str)
            namespace[f"members{index}"] = {member.value: member for member in enum_cls}
            lines += [
                f"    if {value} is not None:",
                f"        if type({value}) is not str: raise UNEXPECTED",
                f"        {value} = members{index}.get({value}, {value})",
            ]
        elif len(inner) == 1 and get_origin(inner[0]) is dict and get_args(inner[0]) == _STR_ANY:
            lines += [
                f"    if {value} is not None:",
                f"        if type({value}) is not dict: raise UNEXPECTED",
                f"        {value} = dict({value})",
            ]
        elif len(inner) == 1 and attr.has(inner[0]):
            namespace[f"build{index}"] = _fast_builder(inner[0])
            if namespace[f"build{index}"] is None:
                return None
            lines += [
                f"    if {value} is not None:",
                f"        if type({value}) is not dict: raise UNEXPECTED",
                f"        {value} = build{index}({value})",
            ]
        else:
            return None
        arguments.append(f"{field.name}={value}")
    lines.append(f"    result = cls({', '.join(arguments)})")
    if has_raw:
        lines.append("    setattr(result, 'raw', o)")
    lines.append("    return result")
    namespace["_unexpected"] = _raise_unexpected
    exec("\n".join(lines), namespace)
    build: Callable[[dict[str, Any]], Any] = namespace["build"]
    return build


def _raise_unexpected() -> Any:
    raise _Unexpected


_dumps_str = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
#: JSON string quoting as ``ensure_ascii=False`` does it, in C.
encode_str: Callable[[str], str] = json.encoder.encode_basestring
_decoder = json.JSONDecoder(parse_float=Decimal)

MAX_NUMBER_DIGITS: Final = 4300
"""How many digits a ``Decimal``'s exponent may make its plain notation take: 4,300, the limit
Python sets for an ``int`` (``sys.int_info.default_max_str_digits``). :func:`dumps` refuses a
``Decimal`` of 10**4300 or more in magnitude, or below 10**-4299 (but 0), which would take more:
``Decimal("1E+999999999")`` takes a few bytes, but a billion digits written out."""
_MIN_ADJUSTED: Final = -MAX_NUMBER_DIGITS


def encode_decimal(value: Decimal) -> str:
    """An exact JSON number, in plain notation: ``Decimal("1E+2")`` → ``100``.

    The text is never longer than the digits of ``value`` and :data:`MAX_NUMBER_DIGITS` more.

    :raises ValidationError: ``value`` is not finite, or its exponent would make its plain
        notation longer than :data:`MAX_NUMBER_DIGITS` digits (``Decimal("1E+4300")``,
        ``Decimal("1E-4300")``); nothing is written out before that is known.
    """
    # adjusted(): the exponent of the leading digit, where its plain notation starts or ends.
    if value.is_finite() and _MIN_ADJUSTED < value.adjusted() < MAX_NUMBER_DIGITS:
        return format(value, "f")
    if value.is_finite() and value.is_zero() and value.adjusted() > 0:
        return format(value, "f")  # "0" (or "-0"), whatever the exponent
    raise ValidationError(_decimal_problem(value))


def _decimal_problem(value: Decimal) -> str:
    if value.is_nan():
        return "NaN cannot be written as a JSON number"
    if value.is_infinite():
        return f"{'-' if value.is_signed() else ''}Infinity cannot be written as a JSON number"
    shown = value if value.is_zero() else f"{value:.6E}"  # a few characters, whatever its digits
    return (
        f"a number too long to write as JSON: {shown} has more than {MAX_NUMBER_DIGITS:,} "
        "digits in plain notation"
    )


def dumps(value: Any) -> bytes:
    """Encode JSON as UTF-8 bytes, writing ``Decimal`` as an exact JSON number.

    >>> dumps({"fromAmount": Decimal("0.1")})
    b'{"fromAmount":0.1}'

    :raises ValidationError: a value JSON (or UTF-8) cannot hold: a type other than ``str``,
        ``int``, ``float``, ``Decimal``, ``bool``, ``None``, a mapping, list or tuple (a set,
        say); a string with a surrogate code point (lone, or half of a pair split in two);
        NaN or an infinity; an ``int`` longer than Python writes (4,300 digits unless
        ``sys.set_int_max_str_digits`` says otherwise) or a ``Decimal`` whose exponent would
        make it longer than :data:`MAX_NUMBER_DIGITS` digits (see :func:`encode_decimal`);
        nesting past the interpreter's stack (or a value that holds itself).
        ``error.field`` is the path of the first such value, like ``data.items[3]`` (``None``
        when it is the whole value, or its nesting: a value that fails past
        :data:`MAX_JSON_DEPTH` levels is refused as nested too deeply). The work done stays
        proportional to the size of ``value``.
    """
    try:
        return _encode(value).encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    # Outside the ``except``: no exception chain, and the stack is back to the caller's depth.
    raise _unwritable(value)


def _encode(value: Any) -> str:
    # Exact types first: the common payload values never reach the slower generic checks.
    kind = type(value)
    if kind is str:
        return encode_str(value)
    if kind is Decimal:
        return encode_decimal(value)
    if kind is dict:
        return "{" + ",".join(_key(k) + ":" + _encode(v) for k, v in value.items()) + "}"
    if value is None or kind is bool or kind is int:
        return _dumps_str(value)
    if isinstance(value, Decimal):
        return encode_decimal(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(_key(k) + ":" + _encode(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return _dumps_str(value)


def _key(key: Any) -> str:
    return encode_str(key) if type(key) is str else _dumps_str(str(key))


# Path components longer than this are cut in error messages.
_SHOWN_KEY = 40
# The search for what :func:`dumps` cannot write stops at MAX_JSON_DEPTH levels: the SDK reads
# no JSON nested deeper, and a value that holds itself is as deep as it gets.
_TOO_DEEP = f"nested deeper than {MAX_JSON_DEPTH} levels (or holds itself)"


def _unwritable(value: Any) -> ValidationError:
    """The error for a value :func:`_encode` failed on: the path of the first part of it that
    cannot be written, and why. Only called after a failure, so the common case pays nothing."""
    try:
        found = _find_unwritable(value, None, 0)
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        found = None
    where, problem = found or (None, _TOO_DEEP)
    if where is None:  # the value as a whole
        return ValidationError(problem)
    path = _path(where)
    return ValidationError(f"{path}: {problem}", field=path)


def _find_unwritable(value: Any, where: Any, depth: int) -> tuple[Any, str] | None:
    """``(where, problem)`` for the first part of ``value`` (at ``where``, ``depth`` containers
    deep) that :func:`_encode` cannot write, in the order it writes them; else ``None``.

    ``where`` is built as the search goes down, one tuple per step: ``(where its container is,
    its key or index)``, ``None`` for the whole value. The path is written out (:func:`_path`)
    only for the part the error names, so the search stays linear however deep it goes.
    """
    if isinstance(value, str):
        problem = _text_problem(value)
        return (where, problem) if problem else None
    if isinstance(value, Decimal):
        try:
            encode_decimal(value)
        except ValidationError as exc:
            return where, str(exc)
        return None
    is_mapping = isinstance(value, Mapping)
    if is_mapping or isinstance(value, (list, tuple)):
        if depth >= MAX_JSON_DEPTH:
            return None, _TOO_DEEP  # the whole value: its nesting, not one part, is the problem
        if not is_mapping:
            for index, item in enumerate(value):
                found = _find_unwritable(item, (where, index), depth + 1)
                if found:
                    return found
            return None
        for key, item in value.items():
            try:
                name = key if type(key) is str else str(key)
            except ValueError as exc:  # an int key past Python's limit for writing it
                return where, f"a key too long to write as JSON ({exc})"
            inner = (where, name)
            problem = _text_problem(name)
            if problem:
                return inner, "its key " + problem
            found = _find_unwritable(item, inner, depth + 1)
            if found:
                return found
        return None
    try:
        _dumps_str(value)
    except TypeError:
        name = type(value).__name__
        return where, (
            f"{'an' if name[:1] in 'aeiou' else 'a'} {name} cannot be written as JSON (expected "
            "a str, int, float, Decimal, bool, None, a mapping, list or tuple)"
        )
    except ValueError as exc:
        if isinstance(value, int):  # past Python's limit for writing an int as text
            return where, f"an integer too long to write as JSON ({exc})"
        return where, f"{value!r} cannot be written as a JSON number"  # NaN, infinities
    return None


def _text_problem(text: str) -> str | None:
    """What is wrong with ``text`` if UTF-8 cannot encode it (a surrogate code point in it)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            "must be valid Unicode text, got a surrogate code point "
            f"(U+{ord(text[exc.start]):04X}) at index {exc.start}, which UTF-8 cannot encode"
        )
    return None


def _path(where: Any) -> str:
    """The path of a ``where``: ``data.items[3]``, and ``data["a b"]`` for a key that is not a
    name (in ASCII, cut if long)."""
    steps: list[str | int] = []
    while where is not None:
        where, step = where
        steps.append(step)
    path = ""
    for step in reversed(steps):
        if isinstance(step, int):
            path += f"[{step}]"
        elif step.isidentifier() and len(step) <= _SHOWN_KEY:  # letters, digits, "_"
            path += f".{step}" if path else step
        else:
            shown = json.dumps(step[:_SHOWN_KEY])  # ASCII, quoted: escapes, surrogates and all
            path += f'[{shown[:-1]}..."]' if len(step) > _SHOWN_KEY else f"[{shown}]"
    return path


def loads(content: bytes | str) -> Any:
    """Decode JSON with every non-integer number as an exact ``Decimal``.

    :raises ValueError: the content is not JSON (``json.JSONDecodeError``), not text in a JSON
        encoding (``UnicodeDecodeError``), starts with a byte order mark, nests arrays and
        objects deeper than :data:`MAX_JSON_DEPTH` levels, or has a number no ``Decimal`` holds
        (an exponent beyond about ±10**18) or an integer longer than Python reads (4,300 digits
        unless ``sys.set_int_max_str_digits`` says otherwise). Work and memory stay
        proportional to the content's size: ``1e999999999`` is read as ``Decimal("1E+999999999")``,
        never written out.
    """
    if not isinstance(content, str):
        if content[:1] == b"{" and content[1:2] != b"\0":
            # what json.detect_encoding answers for such a start, without asking it
            content = content.decode("utf-8", "surrogatepass")
        else:
            content = content.decode(json.detect_encoding(content), "surrogatepass")
    if content.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", content, 0)
    # a text of 2 * MAX_JSON_DEPTH characters or fewer cannot nest deeper
    if len(content) > 2 * MAX_JSON_DEPTH and too_deep(content, MAX_JSON_DEPTH):
        raise ValueError(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return _decoder.decode(content)
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        raise ValueError(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except InvalidOperation:  # "1e9999999999999999999": past the exponents a Decimal holds
        raise ValueError(
            "a number's exponent is beyond what a Decimal holds (about ±10**18)"
        ) from None
