"""toTOML and toYAML output shaped like the Go encoders consul-template uses
(BurntSushi/toml: ``port = 8080.0``, tables after plain keys; yaml.v2: sorted keys, floats
as Go prints them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from ctmpl.gotemplate.calls import GoError
from ctmpl.gotemplate.fmtfloat import go_float
from ctmpl.gotemplate.values import GoStruct, is_nilable_nil

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESC = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
             "\\": "\\\\"}


def _toml_key(key: str) -> str:
    return key if _BARE.fullmatch(key) else _toml_str(key)


def _toml_str(text: str) -> str:
    return '"' + "".join(_TOML_ESC.get(c, c) for c in text) + '"'


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping | GoStruct)


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, GoStruct):
        return [(f, getattr(value, f)) for f in value.go_fields]
    return sorted((str(k), v) for k, v in value.items())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        text = go_float(value, "f")
        return text if "." in text else text + ".0"
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if not is_nilable_nil(v)) + "]"
    raise GoError(f"toml: unsupported type {type(value).__name__}")


class _Toml:
    def __init__(self) -> None:
        self.out: list[str] = []

    def newline(self) -> None:
        if self.out:
            self.out.append("\n")

    def table(self, key: list[str], value: Any) -> None:
        if len(key) == 1:
            self.newline()
        if key:
            self.out.append("  " * (len(key) - 1) + "[" + ".".join(map(_toml_key, key)) + "]")
            self.newline()
        self.body(key, value)

    def body(self, key: list[str], value: Any) -> None:
        items = [(k, v) for k, v in _items(value) if not is_nilable_nil(v)]
        direct = [(k, v) for k, v in items if not _is_table(v) and not _table_array(v)]
        for k, v in direct:
            self.out.append("  " * len(key) + f"{_toml_key(k)} = {_toml_value(v)}")
            self.newline()
        for k, v in items:
            if _is_table(v):
                self.table([*key, k], v)
            elif _table_array(v):
                for entry in v:
                    self.newline()
                    self.out.append("  " * len(key) + "[[" + ".".join(map(_toml_key, [*key, k]))
                                    + "]]")
                    self.newline()
                    self.body([*key, k], entry)


def _table_array(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(_is_table(v) for v in value)


def go_toml(value: Any) -> str:
    """toTOML of a map."""
    encoder = _Toml()
    encoder.table([], value)
    return "".join(encoder.out).strip()


class _GoDumper(yaml.SafeDumper):
    pass


def _plain(value: Any) -> Any:
    if is_nilable_nil(value):
        return None
    if isinstance(value, GoStruct):
        return {f.lower(): _plain(getattr(value, f)) for f in value.go_fields}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return int(value)
    return str(value)


def _float(dumper: yaml.SafeDumper, value: float) -> yaml.ScalarNode:
    # Written as Go prints it (8080, 1.5, 1e+06), plain and untagged like yaml.v2's output.
    text = go_float(value)
    tag = dumper.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return dumper.represent_scalar(tag, text)


_GoDumper.add_representer(float, _float)


def go_yaml(value: Any) -> str:
    """toYAML of a map (keys sorted, block style)."""
    text = yaml.dump(_plain(value), Dumper=_GoDumper, default_flow_style=False,
                     allow_unicode=True, sort_keys=True, width=1 << 30)
    return text.strip()
