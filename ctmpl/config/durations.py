"""Go-style durations (``5s``, ``1m30s``, ``250ms``) and consul-template's ``min:max`` wait."""

from __future__ import annotations

import re

from ctmpl.config.model import Wait
from ctmpl.errors import ConfigError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(what: str, value: object) -> float:
    """Seconds from ``"5s"``, ``"1m30s"``, a bare number of seconds, or an int; never negative."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(what, value.strip())
    else:
        raise ConfigError(f"{what}: {value!r} is not a duration")
    if seconds < 0:
        raise ConfigError(f"{what}: duration {value!r} must not be negative")
    return seconds


def _parse_text(what: str, text: str) -> float:
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if not body or pos != len(body):
        raise ConfigError(f"{what}: {text!r} is not a duration (use e.g. 500ms, 5s, 1m30s)")
    return sign * total


def parse_wait(what: str, value: object) -> Wait:
    """consul-template's wait: ``"min"`` (max = 4×min) or ``"min:max"``; max must be ≥ min."""
    if not isinstance(value, str):
        return make_wait(what, parse_duration(what, value), None)
    low, sep, high = value.partition(":")
    if not low.strip() or (sep and not high.strip()):
        raise ConfigError(f"{what}: {value!r} is not min[:max] (e.g. 5s:30s)")
    return make_wait(
        what, parse_duration(what, low), parse_duration(what, high) if sep else None
    )


def make_wait(what: str, low: float, high: float | None) -> Wait:
    """A Wait from seconds; ``high`` None means 4×min, as in consul-template."""
    if high is None:
        high = low * 4
    if high < low:
        raise ConfigError(f"{what}: max ({high:g}s) must not be less than min ({low:g}s)")
    return Wait(min=low, max=high)
