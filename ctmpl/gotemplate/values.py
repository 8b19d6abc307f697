"""Go values in Python: the few distinctions text/template and fmt can see.

Python's types stand for Go's: ``bool``, ``str`` (string), ``float`` (float64), ``int``
(Go's ``int``), and the two int subclasses :class:`Int64` and :class:`Uint64` for the
results of ``parseInt``/``loop`` and ``parseUint``. Lists and tuples are slices, dicts are
maps, :class:`GoStruct` subclasses are structs (reached through a pointer, as
consul-template hands them out). Three kinds of "nothing" print differently in Go:

* :data:`MISSING` — the invalid ``reflect.Value`` (nil root data, a nil interface result),
  printed ``<no value>``;
* :data:`NIL` — a nil inside an interface (a JSON ``null`` in a list), printed ``<nil>``
  inside a container and ``<no value>`` when printed alone;
* ``None`` — a nil pointer (an unknown node's ``.Node``), printed ``<nil>``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, ClassVar


class _Missing:
    """The invalid reflect.Value."""

    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


class _Nil:
    """A nil held in an interface{} (JSON null)."""

    _instance: ClassVar[_Nil | None] = None

    def __new__(cls) -> _Nil:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NIL"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
NIL: Any = _Nil()


class NilPtr:
    """A typed nil pointer (``(*dependency.Node)(nil)``): prints ``<nil>``, is false."""

    __slots__ = ("go_type",)

    def __init__(self, go_type: str) -> None:
        self.go_type = go_type

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NilPtr({self.go_type})"


def is_nil_ptr(value: Any) -> bool:
    """True for a nil pointer (typed or not)."""
    return value is None or isinstance(value, NilPtr)


class Int64(int):
    """A Go int64 (parseInt, loop, math results)."""

    go_type = "int64"


class Uint64(int):
    """A Go uint64 (parseUint)."""

    go_type = "uint64"


class GoList(tuple[Any, ...]):
    """A Go slice with its element type (``[]string``, ``[]interface {}``, …)."""

    go_type = "[]interface {}"

    @classmethod
    def of(cls, go_type: str, items: Any = ()) -> GoList:
        """A slice of type ``go_type`` holding ``items``."""
        sub = _LIST_TYPES.get(go_type)
        if sub is None:
            sub = _LIST_TYPES[go_type] = type("GoList", (GoList,), {"go_type": go_type})
        return sub(items)


_LIST_TYPES: dict[str, type[GoList]] = {}


class GoMap(dict[Any, Any]):
    """A Go map with its type and the zero value a missing key gives."""

    go_type = "map[string]interface {}"
    zero: Any = None

    @classmethod
    def of(cls, go_type: str, zero: Any, items: Any = ()) -> GoMap:
        """A map of type ``go_type`` whose missing keys read as ``zero``."""
        value = cls(items)
        value.go_type, value.zero = go_type, zero
        return value


class StrMap(GoMap):
    """A ``map[string]string``: a missing key gives the empty string."""

    go_type = "map[string]string"
    zero = ""


class JSONMap(GoMap):
    """A ``map[string]interface {}`` decoded from JSON: a missing key gives a nil interface."""

    go_type = "map[string]interface {}"


def json_list(items: Any = ()) -> GoList:
    """A ``[]interface {}``."""
    return GoList.of("[]interface {}", items)


def str_list(items: Any = ()) -> GoList:
    """A ``[]string``."""
    return GoList.of("[]string", items)


class GoStruct:
    """Base for Go structs; ``go_fields`` lists the exported fields in declaration order."""

    go_type: ClassVar[str] = "struct"
    go_fields: ClassVar[tuple[str, ...]] = ()
    go_methods: ClassVar[Mapping[str, Any]] = {}

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def reuse_key(self) -> Hashable | None:
        """What names this value across renders (a service, a node, a key), if anything
        (see :mod:`ctmpl.gotemplate.reuse`)."""
        return None

    def reuse_source(self) -> object | None:
        """The immutable catalog data this value shows, if any: equal sources render alike."""
        return None


INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
UINT_MAX = (1 << 64) - 1


def wrap_int64(value: int) -> Int64:
    """Two's-complement wrap into int64, as Go arithmetic does."""
    value &= UINT_MAX
    return Int64(value - (1 << 64) if value > INT_MAX else value)


def wrap_uint64(value: int) -> Uint64:
    """Wrap into uint64."""
    return Uint64(value & UINT_MAX)


def kind(value: Any) -> str:
    """Go's reflect kind family: bool, int, uint, float, string, slice, map, struct, ptr, nil."""
    if value is MISSING:
        return "invalid"
    if value is None or value is NIL or isinstance(value, NilPtr):
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Uint64):
        return "uint"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "slice"
    if isinstance(value, list | tuple):
        return "slice"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, GoStruct):
        return "ptr"
    return "func" if callable(value) else "struct"


def type_name(value: Any) -> str:
    """The Go type name used in error messages (``int``, ``[]string``, ``*dependency.Node``)."""
    explicit = getattr(value, "go_type", None)
    if isinstance(explicit, str):
        return explicit
    if value is None or value is NIL or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, str) for v in value):
            return "[]string"
        return "[]interface {}" if not value else f"[]{type_name(value[0])}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return "interface {}"


JSONMap.zero = NIL


def truth(value: Any) -> bool:
    """Go's template truth: false for zero values, nil and empty containers."""
    if value is MISSING or value is None or value is NIL or isinstance(value, NilPtr):
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict | bytes):
        return bool(value)
    if isinstance(value, Mapping):
        return len(value) > 0
    return True


def is_nilable_nil(value: Any) -> bool:
    """True for any flavour of nil (pointer, interface, invalid)."""
    return value is NIL or value is MISSING or is_nil_ptr(value)
