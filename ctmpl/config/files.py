"""Read config files into raw dicts: consul-template's HCL, or JSON.

python-hcl2 returns strings still quoted (``'"5s"'``), blocks as lists of dicts marked
``__is_block__``, and comments as ``__comments__`` / ``__inline_comments__`` keys wherever they
appear; ``normalize`` turns that into plain values (comments dropped) so every layer has one
shape. In JSON a ``perms`` number is the mode itself (consul-template's JSON writes 0644 as
``420``); ``perms`` strings are octal in both formats.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from ctmpl.errors import ConfigError

RawConfig = dict[str, Any]

# Keys python-hcl2 adds to the data: block markers, comments and line metadata.
_HCL2_META = frozenset(
    {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}
)


def config_files(path: str) -> list[Path]:
    """``path`` itself, or the files of a directory in lexical order (as consul-template)."""
    target = Path(path)
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith("."))
    if not target.exists():
        raise ConfigError(f"config {path}: no such file or directory")
    return [target]


def load_file(path: Path) -> RawConfig:
    """Parse one file (``.json`` as JSON, anything else as HCL) into a normalized dict."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: cannot read: {exc}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"config {path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path}: top level must be an object")
        return _json_perms(data)  # strings are plain already: unquoting would alter '"x"'
    data = _parse_hcl(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: top level must be an object")
    return {k: normalize(v) for k, v in data.items() if k not in _HCL2_META}


def _json_perms(data: RawConfig) -> RawConfig:
    """JSON ``"perms": 420`` is mode 0644: give it to the schema as the octal text ``"644"``."""
    templates = data.get("template")
    for block in templates if isinstance(templates, list) else [templates]:
        if isinstance(block, dict):
            perms = block.get("perms")
            if isinstance(perms, int) and not isinstance(perms, bool) and perms >= 0:
                block["perms"] = format(perms, "o")
    return data


def _parse_hcl(path: Path, text: str) -> Any:
    import hcl2  # only when an HCL file is read: a run without one starts faster

    try:
        return hcl2.loads(text)
    except Exception as exc:
        line = getattr(exc, "line", None)
        column = getattr(exc, "column", None)
        where = f"{path}:{line}:{column}" if line else str(path)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"config {where}: invalid HCL: {first}") from None


def normalize(value: Any) -> Any:
    """Unquote hcl2 strings, unwrap blocks, drop comments, recurse into lists and dicts."""
    if isinstance(value, str):
        return _unquote(value)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k not in _HCL2_META}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        if text.startswith('"<<'):
            return _heredoc(text[1:-1])
        try:
            result = json.loads(text)
        except json.JSONDecodeError:
            return text[1:-1]
        return result if isinstance(result, str) else text[1:-1]
    return text


def _heredoc(text: str) -> str:
    head, _, body = text.partition("\n")
    marker = head.lstrip("<-").strip()
    lines = body.split("\n")
    if lines and lines[-1].strip() == marker:
        lines = lines[:-1]
    if head.startswith("<<-"):  # indented heredoc: strip the common leading whitespace
        result = textwrap.dedent("\n".join(lines))
        return result + "\n" if lines else result
    result = "\n".join(lines)
    return result + "\n" if lines else result


def read_secret_file(what: str, path: str) -> str:
    """Contents of a token file, stripped; a clear error when it cannot be read."""
    try:
        return Path(os.path.expanduser(path)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: {path} is not UTF-8 text") from None
