"""Template functions and their Go signatures: how a function is described (``GoFunc``), the
errors a call can raise, and Go's assignability rules for arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctmpl.gotemplate.values import GoList, GoMap, Int64, Uint64, type_name


class GoError(Exception):
    """Raised by a template function: becomes ``error calling NAME: message``."""


class ExecError(Exception):
    """An execution error with Go's full message."""


@dataclass(frozen=True)
class GoFunc:
    """A template function with its Go signature.

    ``params`` are Go type names (``string``, ``int``, ``int64``, ``any`` for interface{},
    ``value`` for the builtins that take any reflect.Value); with ``variadic`` the last
    entry is the element type of the ``...`` parameter.
    """

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: bool = False
    builtin: bool = False

    @property
    def fixed(self) -> int:
        """How many parameters come before the ``...`` one."""
        return len(self.params) - 1 if self.variadic else len(self.params)


_SCALARS = {"string": str, "float64": float, "bool": bool}


def assignable(value: Any, typ: str) -> bool:
    """Go's AssignableTo for the value kinds templates meet."""
    if typ in ("any", "value"):
        return True
    if typ in _SCALARS:
        return type(value) is _SCALARS[typ]
    if typ == "int":
        return type(value) is int
    if typ == "int64":
        return isinstance(value, Int64)
    if typ == "uint64":
        return isinstance(value, Uint64)
    name = type_name(value)
    # A named slice type (dependency.ServiceTags) is assignable to its unnamed underlying type.
    return name == typ or (typ == "[]string" and name == "dependency.ServiceTags")


def quote_text(text: str) -> str:
    from ctmpl.gotemplate.fmtvalue import quote

    return quote(text)


class _NoFinal:
    def __repr__(self) -> str:
        return "NO_FINAL"


NO_FINAL: Any = _NoFinal()  # "no piped value" (Go's missingVal)


class Boxed:
    """A scalar read from a JSON map, kept boxed so errors name its static type."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def zero_of(typ: str) -> Any:
    if typ.startswith("[]"):
        return GoList.of(typ)
    return GoMap.of(typ, None)
