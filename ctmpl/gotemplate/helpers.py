"""consul-template's helper functions (strings, parsing, encoding, math), with its Go
signatures and error texts: ``split`` trims first, ``join``/``split`` take the separator
first, math takes the piped value as the left operand, parse functions read "" as zero."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from ctmpl.gotemplate.calls import GoError, GoFunc
from ctmpl.gotemplate.gojson import go_json
from ctmpl.gotemplate.gotoml import go_toml, go_yaml
from ctmpl.gotemplate.text import (
    contains,
    contains_some,
    in_,
    indent,
    join,
    loop,
    regex_match,
    regex_replace_all,
    replace_all,
    split,
    to_lower,
    to_title,
    to_upper,
    trim_space,
)
from ctmpl.gotemplate.values import (
    NIL,
    Int64,
    JSONMap,
    Uint64,
    json_list,
    kind,
    type_name,
    wrap_int64,
    wrap_uint64,
)


def _strconv(func: str, s: str, reason: str) -> GoError:
    return GoError(f"{func}: strconv.{_STRCONV[func]}: parsing {json.dumps(s)}: {reason}")


_STRCONV = {"parseBool": "ParseBool", "parseInt": "ParseInt", "parseUint": "ParseUint",
            "parseFloat": "ParseFloat"}
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?[0-9]*(?:[eE][+-]?[0-9]+)?|inf|infinity"
                    r"|nan)", re.IGNORECASE)


def parse_bool(s: str) -> bool:
    """parseBool: strconv.ParseBool; "" is false."""
    if s == "":
        return False
    if s not in _BOOLS:
        raise _strconv("parseBool", s, "invalid syntax")
    return _BOOLS[s]


def parse_int(s: str) -> Int64:
    """parseInt: a base-10 int64; "" is 0."""
    if s == "":
        return Int64(0)
    if not _INT.fullmatch(s):
        raise _strconv("parseInt", s, "invalid syntax")
    value = int(s)
    if not -(1 << 63) <= value < 1 << 63:
        raise _strconv("parseInt", s, "value out of range")
    return Int64(value)


def parse_uint(s: str) -> Uint64:
    """parseUint: a base-10 uint64; "" is 0."""
    if s == "":
        return Uint64(0)
    if not s.isdigit() or not s.isascii():
        raise _strconv("parseUint", s, "invalid syntax")
    value = int(s)
    if value >= 1 << 64:
        raise _strconv("parseUint", s, "value out of range")
    return Uint64(value)


def parse_float(s: str) -> float:
    """parseFloat: a float64; "" is 0."""
    if s == "":
        return 0.0
    if not s or not _FLOAT.fullmatch(s) or s.strip("+-.") == "":
        raise _strconv("parseFloat", s, "invalid syntax")
    try:
        value = float(s.replace("_", ""))
    except ValueError:
        raise _strconv("parseFloat", s, "invalid syntax") from None
    if value in (float("inf"), float("-inf")) and "inf" not in s.lower():
        raise _strconv("parseFloat", s, "value out of range")
    return value


def _from_json(value: Any) -> Any:
    if value is None:
        return NIL
    if isinstance(value, dict):
        return JSONMap((k, _from_json(v)) for k, v in value.items())
    if isinstance(value, list):
        return json_list(_from_json(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_json(s: str) -> Any:
    """parseJSON: numbers become float64, null a nil interface; "" is an empty map."""
    if s == "":
        return JSONMap()
    try:
        return _from_json(json.loads(s))
    except json.JSONDecodeError as exc:
        raise GoError(f"parseJSON: {exc.msg}") from None
    except RecursionError:
        raise GoError("parseJSON: exceeded max depth") from None


def to_json(value: Any) -> str:
    """toJSON: compact JSON, map keys sorted, <>& escaped."""
    return go_json(value).strip()


def to_json_pretty(value: Any) -> str:
    """toJSONPretty: two-space indented JSON of a map."""
    return go_json(value, indent="  ").strip()


def _b64(func: str, op: Any, s: str) -> str:
    try:
        data = op(s.encode("utf-8", "surrogateescape"))
    except (binascii.Error, ValueError) as exc:
        raise GoError(f"{func}: illegal base64 data: {exc}") from None
    return data.decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]


def _strict_b64decode(altchars: bytes | None) -> Any:
    def decode(data: bytes) -> bytes:
        return base64.b64decode(data, altchars=altchars, validate=True)

    return decode


def _int_kind(v: Any) -> str:
    k = kind(v)
    return k if k in ("int", "uint", "float") else "other"


def _math(name: str, op: Any, int_op: Any) -> Any:
    def run(b: Any, a: Any) -> Any:
        ka, kb = _int_kind(a), _int_kind(b)
        if ka == "other":
            raise GoError(f"{name}: unknown type for {_go_v(a)} ({type_name(a)})")
        if kb == "other":
            raise GoError(f"{name}: unknown type for {_go_v(b)} ({type_name(b)})")
        if "float" in (ka, kb):
            if int_op is None:
                bad = a if ka == "float" else b
                raise GoError(f"{name}: unknown type for {_go_v(bad)} ({type_name(bad)})")
            return op(float(a), float(b))
        if ka == "uint" and kb == "uint":
            return wrap_uint64(int_op(int(a), int(b)))
        return wrap_int64(int_op(wrap_int64(int(a)), wrap_int64(int(b))))

    return run


def _go_v(value: Any) -> str:
    from ctmpl.gotemplate.gofmt import sprintf

    return sprintf("%q", [value])


def _int_div(a: int, b: int) -> int:
    if b == 0:
        raise GoError("runtime error: integer divide by zero")
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def _int_mod(a: int, b: int) -> int:
    if b == 0:
        raise GoError("runtime error: integer divide by zero")
    return a - _int_div(a, b) * b


def _float_div(a: float, b: float) -> float:
    if b == 0:
        return float("nan") if a == 0 else (float("inf") if a > 0 else float("-inf"))
    return a / b


def _unsupported(name: str, why: str) -> GoFunc:
    def call(*_: Any) -> Any:
        raise GoError(f"{name}: {why}")

    return GoFunc(call, ("any",), variadic=True)


_VAULT = "Vault is not supported by ctmpl (the vault block is ignored); render secrets " \
    "with another tool"
_GO_LAYOUT = [("2006", "%Y"), ("January", "%B"), ("Jan", "%b"), ("Monday", "%A"),
              ("Mon", "%a"), ("MST", "%Z"), ("Z07:00", "Z07:00"), ("-07:00", "-07:00"),
              ("-0700", "%z"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("03", "%I"),
              ("04", "%M"), ("05", "%S"), ("PM", "%p"), ("06", "%y")]


def timestamp(*layout: str) -> str:
    """timestamp: now in UTC, RFC 3339 by default, ``"unix"`` or a Go time layout."""
    now = datetime.now(UTC)
    if not layout:
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if layout[0] == "unix":
        return str(int(now.timestamp()))
    text = layout[0]
    out, i = [], 0
    while i < len(text):
        for go, py in _GO_LAYOUT:
            if text.startswith(go, i):
                out.append("Z" if go == "Z07:00" else ("+00:00" if go == "-07:00" else
                                                        now.strftime(py)))
                i += len(go)
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


HELPERS: dict[str, GoFunc] = {
    **{name: _unsupported(name, _VAULT) for name in ("secret", "secrets", "pkiCert")},
    "plugin": _unsupported("plugin", "plugins are not supported by ctmpl"),
    "sockaddr": _unsupported("sockaddr", "not supported by ctmpl"),
    "timestamp": GoFunc(timestamp, ("string",), variadic=True),
    "base64Decode": GoFunc(lambda s: _b64("base64Decode", _strict_b64decode(None), s),
                           ("string",)),
    "base64Encode": GoFunc(lambda s: _b64("base64Encode", base64.b64encode, s), ("string",)),
    "base64URLDecode": GoFunc(lambda s: _b64("base64URLDecode", _strict_b64decode(b"-_"), s),
                              ("string",)),
    "base64URLEncode": GoFunc(lambda s: _b64("base64URLEncode", base64.urlsafe_b64encode, s),
                              ("string",)),
    "contains": GoFunc(contains, ("any", "any")),
    "containsAll": GoFunc(contains_some(True, True), ("[]interface {}", "any")),
    "containsAny": GoFunc(contains_some(False, True), ("[]interface {}", "any")),
    "containsNone": GoFunc(contains_some(False, False), ("[]interface {}", "any")),
    "containsNotAll": GoFunc(contains_some(True, False), ("[]interface {}", "any")),
    "in": GoFunc(in_, ("any", "any")),
    "indent": GoFunc(indent, ("int", "string")),
    "loop": GoFunc(loop, ("int64",), variadic=True),
    "join": GoFunc(join, ("string", "[]string")),
    "trimSpace": GoFunc(trim_space, ("string",)),
    "parseBool": GoFunc(parse_bool, ("string",)),
    "parseFloat": GoFunc(parse_float, ("string",)),
    "parseInt": GoFunc(parse_int, ("string",)),
    "parseJSON": GoFunc(parse_json, ("string",)),
    "parseUint": GoFunc(parse_uint, ("string",)),
    "regexReplaceAll": GoFunc(regex_replace_all, ("string", "string", "string")),
    "regexMatch": GoFunc(regex_match, ("string", "string")),
    "replaceAll": GoFunc(replace_all, ("string", "string", "string")),
    "toLower": GoFunc(to_lower, ("string",)),
    "toUpper": GoFunc(to_upper, ("string",)),
    "toTitle": GoFunc(to_title, ("string",)),
    "toJSON": GoFunc(to_json, ("any",)),
    "toJSONPretty": GoFunc(to_json_pretty, ("map[string]interface {}",)),
    "toTOML": GoFunc(go_toml, ("map[string]interface {}",)),
    "toYAML": GoFunc(go_yaml, ("map[string]interface {}",)),
    "split": GoFunc(split, ("string", "string")),
    "add": GoFunc(_math("add", lambda a, b: a + b, lambda a, b: a + b), ("any", "any")),
    "subtract": GoFunc(_math("subtract", lambda a, b: a - b, lambda a, b: a - b),
                       ("any", "any")),
    "multiply": GoFunc(_math("multiply", lambda a, b: a * b, lambda a, b: a * b),
                       ("any", "any")),
    "divide": GoFunc(_math("divide", _float_div, _int_div), ("any", "any")),
    "modulo": GoFunc(_math("modulo", None, _int_mod), ("any", "any")),
}
