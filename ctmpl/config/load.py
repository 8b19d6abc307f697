"""Build the whole configuration from argv and the environment, once per start or SIGHUP.

Defaults < environment < config files (in order) < flags, finalized once. A value that
came from a flag and is rejected while finalizing (``-catalog bogus``, an unreadable
``-consul-token-file``) is a usage error (exit 2) naming the flag, like every other bad
flag value; the same value from a config file is a config error (exit 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctmpl.config.flags import FLAGS, Flag, parse_flags
from ctmpl.config.layers import env_layer, file_layers, finalize, merge
from ctmpl.config.model import Config
from ctmpl.errors import ConfigError, UsageError


def build_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """The finalized config for ``argv``; UsageError, ConfigError or TemplateError."""
    flags = parse_flags(argv)
    for path in flags.config_paths:
        if not Path(path).exists():
            raise UsageError(f"-config {path}: no such file or directory")
    ignored: list[str] = []
    layers = [env_layer(environ), *file_layers(flags.config_paths, ignored), flags.layer]
    try:
        return finalize(merge(layers), flags.config_paths, ignored)
    except ConfigError as exc:
        flag = flag_behind(str(exc), flags.layer)
        if flag is None:
            raise
        raise UsageError(f"flag {flag}: {exc}") from None


def flag_behind(
    message: str, layer: Mapping[str, Any], flags: Sequence[Flag] = FLAGS
) -> str | None:
    """The flag that set the value a finalize error names (``consul.retry: …``), if any."""
    head = message.split(":", 1)[0].split(" ", 1)[0]
    for flag in flags:
        related = flag.path == head or flag.path.startswith(f"{head}.")
        if flag.path and related and _is_set(layer, flag.path):
            return f"-{flag.name}"
    return None


def _is_set(layer: Mapping[str, Any], dotted: str) -> bool:
    node: Any = layer
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
