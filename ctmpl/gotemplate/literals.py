"""Go literals in templates: quoted strings (strconv.Unquote) and number constants
with every reading Go allows (int, uint, float64), with Go's error texts."""

from __future__ import annotations

import ast
import re

from ctmpl.gotemplate import tokens as lx
from ctmpl.gotemplate.fmtvalue import quote
from ctmpl.gotemplate.nodes import NumberNode

_OCTAL = re.compile(r"[+-]?0[0-7_]+")


_ESCAPES = re.compile(r"\\(?:[abfnrtv\\'\"]|x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}"
                      r"|U[0-9a-fA-F]{8})|\\")


def unquote(text: str) -> str:
    """strconv.Unquote for "…", `…` and '…' literals."""
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    if any(m.group() == "\\" for m in _ESCAPES.finditer(text)):
        raise ValueError("invalid syntax")
    try:
        value = ast.literal_eval(text if not text.startswith("'") else '"' + text[1:-1] + '"')
    except (ValueError, SyntaxError):
        raise ValueError("invalid syntax") from None
    if not isinstance(value, str):
        raise ValueError("invalid syntax")
    return value


def parse_number(pos: int, text: str, typ: str) -> NumberNode:
    """Go's newNumber: the int, uint and float readings a constant allows."""
    node = NumberNode(pos, text)
    if typ == lx.CHARCONST:
        rune = ord(unquote(text))
        node.is_int = node.is_uint = node.is_float = True
        node.int_value = node.uint_value = rune
        node.float_value = float(rune)
        return node
    if typ == lx.COMPLEX or text.endswith("i"):
        raise ValueError(f"complex numbers are not supported: {text!r}")
    value = _parse_int(text)
    if value is not None:
        if 0 <= value < 1 << 64:
            node.is_uint, node.uint_value = True, value
        if -(1 << 63) <= value < 1 << 63:
            node.is_int, node.int_value = True, value
        if node.is_int or node.is_uint:
            node.is_float, node.float_value = True, float(value)
            return node
        raise ValueError(f"integer overflow: {_q(text)}")
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"illegal number syntax: {_q(text)}") from None
    node.is_float, node.float_value = True, number
    if number.is_integer():
        as_int = int(number)
        if -(1 << 63) <= as_int < 1 << 63:
            node.is_int, node.int_value = True, as_int
        if 0 <= as_int < 1 << 64:
            node.is_uint, node.uint_value = True, as_int
    return node


def _parse_int(text: str) -> int | None:
    if any(c in text for c in ".eEpP") and not text.lower().lstrip("+-").startswith("0x"):
        return None
    try:
        if _OCTAL.fullmatch(text):
            return int(text.replace("_", ""), 8)
        return int(text, 0)
    except ValueError:
        return None


def _q(text: str) -> str:
    return quote(text)


