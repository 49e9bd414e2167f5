"""The one base of the SDK's immutable values: ``repr``, ``==`` and ``hash``, written out once.

Every frozen value (a model, a request, a policy, a config) is an attrs class declared
``@attr.frozen(repr=False, eq=False)`` on :class:`Frozen`. attrs then generates only what each
class needs of its own (``__init__`` with its validators, ``__setattr__`` refusing changes),
and importing a module compiles no ``repr``/``eq``/``hash`` per class: these three are
here, over :func:`attr.fields`.

They behave as attrs' own would: ``Name(field=value, ...)`` over the fields with ``repr=True``
(a callable ``repr`` formats its field's value); equality of the fields with ``eq=True`` with an
instance of the very same class (``NotImplemented`` otherwise); a hash of those fields
(``TypeError`` if one is unhashable, as a ``dict`` is).
"""

from __future__ import annotations

from typing import Any

# ``attr``, not ``attrs``: the same library and objects (``attrs`` re-exports ``attr``'s through
# six small modules of its own), and aiohttp, which the client loads, imports ``attr`` itself.
import attr

__all__ = ["Frozen"]


def _fields(instance: object) -> tuple[attr.Attribute[Any], ...]:
    fields: tuple[attr.Attribute[Any], ...] = attr.fields(type(instance))  # type: ignore[arg-type]
    return fields


class Frozen:
    """Base of an immutable attrs value: ``@attr.frozen(repr=False, eq=False)`` on a subclass."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = []
        for field in _fields(self):
            if field.repr:
                value = getattr(self, field.name)
                text = field.repr(value) if callable(field.repr) else repr(value)
                shown.append(f"{field.name}={text}")
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = [field.name for field in _fields(self) if field.eq]
        return tuple(getattr(self, name) for name in names) == tuple(
            getattr(other, name) for name in names
        )

    def __hash__(self) -> int:
        return hash(
            (
                type(self),
                *(
                    getattr(self, field.name)
                    for field in _fields(self)
                    if (field.eq if field.hash is None else field.hash)
                ),
            )
        )
