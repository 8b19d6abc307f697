"""Go's predefined template functions: and, or, not, len, index, slice, print*, html, js,
urlquery and the comparisons eq, ne, lt, le, gt, ge, with Go's rules and error texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

from ctmpl.gotemplate.calls import GoError, GoFunc
from ctmpl.gotemplate.gofmt import sprint, sprintf, sprintln
from ctmpl.gotemplate.values import (
    MISSING,
    NIL,
    GoList,
    GoMap,
    GoStruct,
    Uint64,
    is_nil_ptr,
    kind,
    truth,
    type_name,
)

_BAD_COMPARISON = "incompatible types for comparison"
_BAD_TYPE = "invalid type for comparison"


def go_len(item: Any) -> int:
    """len: bytes of a string, elements of a slice or map."""
    if is_nil_ptr(item) or item is NIL:
        raise GoError("len of nil pointer")
    if item is MISSING:
        raise GoError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, list | tuple | Mapping):
        return len(item)
    raise GoError(f"len of type {type_name(item).lstrip('*')}")


def _index_arg(index: Any, cap: int) -> int:
    k = kind(index)
    if k in ("int", "uint"):
        x = int(index)
    elif k in ("invalid", "nil"):
        raise GoError("cannot index slice/array with nil")
    else:
        raise GoError(f"cannot index slice/array with type {type_name(index)}")
    if x < 0 or x > cap:
        raise GoError(f"index out of range: {x}")
    return x


def go_index(item: Any, *indexes: Any) -> Any:
    """index: item[i][j]…; a missing map key gives the map's zero value."""
    if item is MISSING or item is NIL:
        raise GoError("index of untyped nil")
    for index in indexes:
        if is_nil_ptr(item) or item is NIL:
            raise GoError("index of nil pointer")
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogateescape")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise GoError("reflect: string index out of range")
            item = Uint64(data[x])
            item.go_type = "uint8"
        elif isinstance(item, list | tuple):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise GoError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, Mapping):
            key = "" if index is MISSING or index is NIL else index
            if not isinstance(key, str):
                raise GoError(f"value has type {type_name(key)}; should be string")
            item = item[key] if key in item else (item.zero if isinstance(item, GoMap) else NIL)
        else:
            raise GoError(f"can't index item of type {type_name(item).lstrip('*')}")
    return item


def go_slice(item: Any, *indexes: Any) -> Any:
    """slice: item[i:j] (bytes for a string)."""
    if item is MISSING or item is NIL:
        raise GoError("slice of untyped nil")
    if len(indexes) > 3:
        raise GoError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise GoError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogateescape")
        length = len(data)
    elif isinstance(item, list | tuple):
        length = len(item)
    else:
        raise GoError(f"can't slice item of type {type_name(item)}")
    idx = [0, length, length]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, length)
    if idx[0] > idx[1]:
        raise GoError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise GoError(f"invalid slice index: {idx[1]} > {idx[2]}")
    if isinstance(item, str):
        return data[idx[0]:idx[1]].decode("utf-8", "surrogateescape")
    result = item[idx[0]:idx[1]]
    return GoList.of(type_name(item), result)


def go_not(arg: Any) -> bool:
    """not: the negated truth of its argument."""
    return not truth(arg)


def _basic(value: Any) -> str:
    k = kind(value)
    return k if k in ("bool", "int", "uint", "float", "string") else "invalid"


def _valid(value: Any) -> bool:
    return value is not MISSING and value is not NIL


def go_eq(arg1: Any, *others: Any) -> bool:
    """eq: arg1 == any of the others."""
    if not others:
        raise GoError("missing argument for comparison")
    k1 = _basic(arg1)
    for arg in others:
        k2 = _basic(arg)
        if k1 != k2:
            if k1 == "int" and k2 == "uint":
                result = arg1 >= 0 and arg1 == arg
            elif k1 == "uint" and k2 == "int":
                result = arg >= 0 and arg1 == arg
            elif _valid(arg1) and _valid(arg):
                raise GoError(_BAD_COMPARISON)
            else:
                result = False
        elif k1 != "invalid":
            result = arg1 == arg
        else:
            result = _same_other(arg1, arg)
        if result:
            return True
    return False


def _same_other(a: Any, b: Any) -> bool:
    if not _valid(a) or not _valid(b) or is_nil_ptr(a) or is_nil_ptr(b):
        return (not _valid(a) or is_nil_ptr(a)) and (not _valid(b) or is_nil_ptr(b))
    if kind(a) != kind(b):
        raise GoError(f"non-comparable types {sprintf('%s', [a])}: {type_name(a)}, "
                      f"{type_name(b)}: {sprintf('%v', [b])}")
    if isinstance(b, list | tuple | Mapping):
        raise GoError(f"non-comparable type {sprintf('%s', [b])}: {type_name(b)}")
    if isinstance(a, GoStruct):
        return a is b
    raise GoError(_BAD_COMPARISON)


def go_ne(arg1: Any, arg2: Any) -> bool:
    """ne: not eq."""
    return not go_eq(arg1, arg2)


def go_lt(arg1: Any, arg2: Any) -> bool:
    """lt: arg1 < arg2 for basic types of the same kind."""
    k1, k2 = _basic(arg1), _basic(arg2)
    if k1 == "invalid" or k2 == "invalid":
        raise GoError(_BAD_TYPE)
    if k1 != k2:
        if k1 == "int" and k2 == "uint":
            return bool(arg1 < 0 or arg1 < arg2)
        if k1 == "uint" and k2 == "int":
            return bool(arg2 >= 0 and arg1 < arg2)
        raise GoError(_BAD_COMPARISON)
    if k1 == "bool":
        raise GoError(_BAD_TYPE)
    if k1 == "string":
        return _utf8(arg1) < _utf8(arg2)
    return bool(arg1 < arg2)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def go_le(arg1: Any, arg2: Any) -> bool:
    """le: lt or eq."""
    return go_lt(arg1, arg2) or go_eq(arg1, arg2)


def go_gt(arg1: Any, arg2: Any) -> bool:
    """gt: not le."""
    return not go_le(arg1, arg2)


def go_ge(arg1: Any, arg2: Any) -> bool:
    """ge: not lt."""
    return not go_lt(arg1, arg2)


def _printable(args: tuple[Any, ...]) -> list[Any]:
    return [a if a is not NIL and a is not MISSING else None for a in args]


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is NIL or a is MISSING else a for a in args])


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}


def go_html(*args: Any) -> str:
    """html: HTMLEscapeString of the operands."""
    text = _eval_args(args)
    return "".join(_HTML.get(c, c) for c in text)


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}


def go_js(*args: Any) -> str:
    """js: JSEscapeString of the operands."""
    out = []
    for c in _eval_args(args):
        if c in _JS:
            out.append(_JS[c])
        elif c < " ":
            out.append(f"\\u00{ord(c):02X}")
        elif ord(c) >= 0x80 and not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def go_urlquery(*args: Any) -> str:
    """urlquery: url.QueryEscape of the operands."""
    data = _eval_args(args).encode("utf-8", "surrogateescape")
    return quote_plus(data, safe="-_.~")


def go_print(*args: Any) -> str:
    """print: fmt.Sprint."""
    return sprint(_printable(args))


def go_printf(fmt: str, *args: Any) -> str:
    """printf: fmt.Sprintf."""
    return sprintf(fmt, _printable(args))


def go_println(*args: Any) -> str:
    """println: fmt.Sprintln."""
    return sprintln(_printable(args))


def go_call(fn: Any, *args: Any) -> Any:
    """call: templates here hold no function values, so this always fails as Go would."""
    raise GoError(f"non-function of type {type_name(fn)}")


BUILTINS: dict[str, GoFunc] = {
    "and": GoFunc(lambda *a: a[-1], ("value", "value"), variadic=True, builtin=True),
    "or": GoFunc(lambda *a: a[-1], ("value", "value"), variadic=True, builtin=True),
    "not": GoFunc(go_not, ("value",), builtin=True),
    "len": GoFunc(go_len, ("value",), builtin=True),
    "index": GoFunc(go_index, ("value", "value"), variadic=True, builtin=True),
    "slice": GoFunc(go_slice, ("value", "value"), variadic=True, builtin=True),
    "call": GoFunc(go_call, ("value", "value"), variadic=True, builtin=True),
    "eq": GoFunc(go_eq, ("value", "value"), variadic=True, builtin=True),
    "ne": GoFunc(go_ne, ("value", "value"), builtin=True),
    "lt": GoFunc(go_lt, ("value", "value"), builtin=True),
    "le": GoFunc(go_le, ("value", "value"), builtin=True),
    "gt": GoFunc(go_gt, ("value", "value"), builtin=True),
    "ge": GoFunc(go_ge, ("value", "value"), builtin=True),
    "print": GoFunc(go_print, ("any",), variadic=True),
    "printf": GoFunc(go_printf, ("string", "any"), variadic=True),
    "println": GoFunc(go_println, ("any",), variadic=True),
    "html": GoFunc(go_html, ("any",), variadic=True),
    "js": GoFunc(go_js, ("any",), variadic=True),
    "urlquery": GoFunc(go_urlquery, ("any",), variadic=True),
}
