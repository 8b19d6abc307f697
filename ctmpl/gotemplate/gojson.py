"""Go's encoding/json output for template values: sorted map keys, struct fields in
declaration order, ``<``, ``>``, ``&`` escaped as ``\\u003c`` …, floats as Go writes them
(``8080``, ``1.5``, ``1e+21``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ctmpl.gotemplate.calls import GoError
from ctmpl.gotemplate.fmtfloat import go_float
from ctmpl.gotemplate.values import GoStruct, is_nilable_nil

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
        "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
        "\u2029": "\\u2029"}


def json_string(text: str) -> str:
    """A JSON string literal as Go's encoder writes it (HTML-safe)."""
    out = ['"']
    for ch in text:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_float(value: float) -> str:
    """A float64 as Go's encoder writes it."""
    if math.isnan(value) or math.isinf(value):
        raise GoError(f"json: unsupported value: {go_float(value)}")
    size = abs(value)
    if size != 0 and (size < 1e-6 or size >= 1e21):
        text = go_float(value, "e")
        mantissa, _, exp = text.partition("e")
        sign, digits = exp[0], exp[1:].lstrip("0") or "0"
        return f"{mantissa}e{sign}{digits}"
    return go_float(value, "f")


def go_json(value: Any, indent: str = "", level: int = 0) -> str:
    """json.Marshal (or MarshalIndent with ``indent``) of a template value."""
    if is_nilable_nil(value):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, GoStruct):
        items = [(name, getattr(value, name)) for name in value.go_fields]
        return _object(items, indent, level)
    if isinstance(value, Mapping):
        items = sorted(((str(k), v) for k, v in value.items()),
                       key=lambda kv: kv[0].encode("utf-8", "surrogateescape"))
        return _object(items, indent, level)
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        parts = [go_json(v, indent, level + 1) for v in value]
        return _wrap("[", "]", parts, indent, level)
    raise GoError(f"json: unsupported type: {type(value).__name__}")


def _object(items: list[tuple[str, Any]], indent: str, level: int) -> str:
    if not items:
        return "{}"
    sep = ": " if indent else ":"
    parts = [json_string(k) + sep + go_json(v, indent, level + 1) for k, v in items]
    return _wrap("{", "}", parts, indent, level)


def _wrap(open_: str, close: str, parts: list[str], indent: str, level: int) -> str:
    if not indent:
        return open_ + ",".join(parts) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(parts) + "\n" + indent * level + close
