"""Go's ``fmt`` formatting of one operand: verbs, flags, width and precision.

``%v`` of a float64 is its shortest representation, with an exponent from 1e+06 up or below
1e-04 (``1e+06``, ``2``); slices print ``[a b]``, maps ``map[k:v]`` in sorted key order, a
pointer to a struct ``&{…}``, nil ``<nil>``; a verb that does not fit its operand prints
``%!d(string=x)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctmpl.gotemplate.fmtfloat import binary_float, go_float, sharp_float
from ctmpl.gotemplate.values import GoStruct, Uint64, is_nilable_nil, kind, type_name


class Spec:
    """One conversion's flags, width and precision."""

    __slots__ = ("minus", "plus", "plus_v", "prec", "sharp", "sharp_v", "space", "width", "zero")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.width: int | None = None
        self.prec: int | None = None


_PLAIN = Spec()


def _is_nil(value: Any) -> bool:
    return is_nilable_nil(value)


def _pad(text: str, spec: Spec, zero_ok: bool = True) -> str:
    width = spec.width
    if width is None or len(text) >= width:
        return text
    fill = width - len(text)
    if spec.minus:
        return text + " " * fill
    return ("0" if spec.zero and zero_ok else " ") * fill + text


def _bad(verb: str, value: Any, spec: Spec = _PLAIN) -> str:
    """Go's badVerb: the operand's type and its %v with the conversion's flags."""
    if _is_nil(value):
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(value)}={format_arg(value, 'v', spec)})"


def go_syntax(value: Any, in_interface: bool = False) -> str:
    """``%#v``: the value as Go source (``[]string{"a", "b"}``)."""
    k = kind(value)
    if k in ("nil", "invalid"):
        return "interface {}(nil)" if in_interface else "<nil>"
    if k == "string":
        return quote(value)
    if k == "bool":
        return "true" if value else "false"
    if k == "uint":
        return f"0x{int(value):x}"
    if k == "int":
        return str(int(value))
    if k == "float":
        return go_float(value)
    elem = type_name(value).startswith(("[]interface", "map[string]interface"))
    if k == "slice":
        return type_name(value) + "{" + ", ".join(go_syntax(v, elem) for v in value) + "}"
    if k == "map":
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return type_name(value) + "{" + ", ".join(
            f"{go_syntax(key)}:{go_syntax(val, elem)}" for key, val in items) + "}"
    if isinstance(value, GoStruct):
        fields = ", ".join(f"{f}:{go_syntax(getattr(value, f))}" for f in value.go_fields)
        return "&" + type_name(value).lstrip("*") + "{" + fields + "}"
    return str(value)


def format_arg(value: Any, verb: str, spec: Spec, depth: int = 0) -> str:
    """Format one operand with one verb, as fmt's printArg/printValue do."""
    if verb == "T":
        return _pad(type_name(value), spec)
    if spec.sharp_v and verb == "v":
        return _pad(go_syntax(value), spec)
    k = kind(value)
    if k in ("nil", "invalid"):
        if depth > 0:
            return "<nil>"
        return _pad("<nil>", spec) if verb == "v" else _bad(verb, value)
    if k == "bool":
        return _pad("true" if value else "false", spec) if verb in "tv" else \
            _bad(verb, value, spec)
    if k in ("int", "uint"):
        return _format_int(int(value), verb, spec, k == "uint")
    if k == "float":
        return _format_float(float(value), verb, spec)
    if k == "string":
        return _format_string(value, verb, spec)
    if k == "slice":
        items = " ".join(format_arg(v, verb, spec, depth + 1) for v in value)
        return f"[{items}]"
    if k == "map":
        parts = (
            f"{format_arg(key, verb, spec, depth + 1)}:{format_arg(val, verb, spec, depth + 1)}"
            for key, val in sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        )
        return f"map[{' '.join(parts)}]"
    if isinstance(value, GoStruct):
        if depth > 0:
            return "0xc000010000"
        fields = []
        for name in value.go_fields:
            text = format_arg(getattr(value, name), verb, spec, depth + 2)
            fields.append(f"{name}:{text}" if spec.plus_v else text)
        return "&{" + " ".join(fields) + "}"
    return _bad(verb, value, spec)


def _sort_key(key: Any) -> Any:
    if isinstance(key, str):
        return (1, key.encode("utf-8"))
    if isinstance(key, bool):
        return (0, int(key))
    if isinstance(key, int | float):
        return (0, key)
    return (2, str(key))


def _format_int(value: int, verb: str, spec: Spec, unsigned: bool) -> str:
    if verb in "vd":
        return _integer(value, 10, verb, spec, "0123456789abcdefx")
    if verb in "bo":
        return _integer(value, 2 if verb == "b" else 8, verb, spec, "0123456789abcdefx")
    if verb == "O":
        return _integer(value, 8, verb, spec, "0123456789abcdefx")
    if verb == "x":
        return _integer(value, 16, verb, spec, "0123456789abcdefx")
    if verb == "X":
        return _integer(value, 16, verb, spec, "0123456789ABCDEFX")
    if verb == "c":
        return _pad(_rune(value), spec)
    if verb == "q":
        return _pad(quote(_rune(value), quote_char="'", ascii_only=spec.plus), spec)
    if verb == "U":
        text = f"U+{value & 0xFFFFFFFFFFFFFFFF:04X}"
        if spec.sharp and 0 <= value <= 0x10FFFF and chr(value).isprintable():
            text += f" '{chr(value)}'"
        return _pad(text, spec)
    return _bad(verb, Uint64(value) if unsigned else value, spec)


def _rune(value: int) -> str:
    return chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"


def _integer(value: int, base: int, verb: str, spec: Spec, digits: str) -> str:
    negative = value < 0
    u = -value if negative else value
    prec = 0
    if spec.prec is not None:
        prec = spec.prec
        if prec == 0 and u == 0:
            return _pad("", _without_zero(spec))
    elif spec.zero and spec.width is not None and not spec.minus:
        prec = spec.width - (1 if negative or spec.plus or spec.space else 0)
    body = ""
    while True:
        body = digits[u % base] + body
        u //= base
        if u == 0:
            break
    body = "0" * max(0, prec - len(body)) + body
    if spec.sharp:
        if base == 2:
            body = "0b" + body
        elif base == 8 and not body.startswith("0"):
            body = "0" + body
        elif base == 16:
            body = "0" + digits[16] + body
    if verb == "O":
        body = "0o" + body
    if negative:
        body = "-" + body
    elif spec.plus:
        body = "+" + body
    elif spec.space:
        body = " " + body
    return _pad(body, spec, zero_ok=False)


def _without_zero(spec: Spec) -> Spec:
    """A copy of ``spec`` without zero padding."""
    copy = Spec()
    copy.width, copy.minus = spec.width, spec.minus
    return copy


def _format_float(value: float, verb: str, spec: Spec) -> str:
    prec = spec.prec if spec.prec is not None else -1
    if verb == "v":
        text = go_float(value, "g", prec)
    elif verb in "gG":
        text = go_float(value, verb, prec)
    elif verb in "eEfF":
        text = go_float(value, verb, spec.prec if spec.prec is not None else 6)
    elif verb in "xXb":
        text = binary_float(value, verb)
    else:
        return _bad(verb, value, spec)
    if spec.sharp and verb != "b" and text[-1:].isdigit():
        text = sharp_float(text, verb, prec)
    if text in ("NaN", "+Inf", "-Inf"):
        if text == "NaN" and (spec.plus or spec.space):
            text = ("+" if spec.plus else " ") + text
        elif text == "+Inf" and not spec.plus:
            text = " Inf" if spec.space else "+Inf"
        return _pad(text, spec, zero_ok=False)
    if not text.startswith("-"):
        if spec.plus:
            text = "+" + text
        elif spec.space:
            text = " " + text
    if spec.zero and spec.width is not None and not spec.minus and text[:1] in "+- ":
        return text[0] + "0" * max(0, spec.width - len(text)) + text[1:]
    return _pad(text, spec)


def _format_string(value: str, verb: str, spec: Spec) -> str:
    if spec.prec is not None:
        value = value[: spec.prec]
    if verb in "sv":
        if spec.sharp_v:
            return _pad(quote(value), spec)
        return _pad(value, spec)
    if verb == "q":
        if spec.sharp and "`" not in value and all(c == "\t" or c.isprintable() for c in value):
            return _pad(f"`{value}`", spec)
        return _pad(quote(value, ascii_only=spec.plus), spec)
    if verb in "xX":
        data = value.encode("utf-8", "surrogateescape")
        if not data:
            return _pad("", spec)
        hexdigits = data.hex() if verb == "x" else data.hex().upper()
        pairs = [hexdigits[i:i + 2] for i in range(0, len(hexdigits), 2)]
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        if spec.space:
            return _pad(" ".join(prefix + p for p in pairs), spec)
        return _pad(prefix + "".join(pairs), spec)
    return _bad(verb, value, spec)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def quote(text: str, *, ascii_only: bool = False, quote_char: str = '"') -> str:
    """strconv.Quote (QuoteToASCII with ``ascii_only``)."""
    out = [quote_char]
    for ch in text:
        if ch in (quote_char, "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() and not (ascii_only and ord(ch) >= 0x80):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append(quote_char)
    return "".join(out)


def format_mapping_key(value: Mapping[str, Any]) -> list[str]:
    """Keys of a Go map in fmt's (and range's) sorted order."""
    return sorted(value, key=_sort_key)
