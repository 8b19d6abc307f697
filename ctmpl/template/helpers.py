"""consul-template's helper functions for Jinja.

Each helper exists as a global with consul-template's argument order
(``split(",", text)``) and as a filter with the value first, Jinja's way
(``text | split(",")``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ctmpl.errors import TemplateError


def by_tag(items: Iterable[Any]) -> dict[str, list[Any]]:
    """Group services or instances by each of their tags, tags sorted."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        for tag in getattr(item, "Tags", ()):
            groups.setdefault(tag, []).append(item)
    return dict(sorted(groups.items()))


def _go_replacement(repl: str) -> str:
    """Go's ``$1``/``${name}`` replacement syntax as Python's ``\\g<1>``."""
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", repl.replace("\\", "\\\\"))


def regex_match(pattern: str, text: str) -> bool:
    """True when ``pattern`` matches anywhere in ``text`` (Go's MatchString)."""
    return re.search(pattern, str(text)) is not None


def regex_replace_all(pattern: str, repl: str, text: str) -> str:
    """Replace every match of ``pattern``; ``$1`` refers to a group as in Go."""
    return re.sub(pattern, _go_replacement(repl), str(text))


def parse_json(text: str) -> Any:
    """Decode JSON text (e.g. a KV value); a clear error when it is not JSON.

    Empty text gives an empty map, as in consul-template: ``key()`` returns "" until its
    data arrives, and that first render must not fail.
    """
    if not str(text).strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"parseJSON: invalid JSON: {exc}") from None


def to_json(value: Any) -> str:
    """Encode as compact JSON with sorted keys, so output is deterministic."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "__dataclass_fields__"):
            return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")

    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=default)


def contains(needle: Any, haystack: Any) -> bool:
    """True when ``needle`` is in the list, string or map ``haystack``."""
    try:
        return needle in haystack
    except TypeError:
        return False


def _join(sep: str, items: Iterable[Any]) -> str:
    return sep.join(str(i) for i in items)


def _vault(name: str) -> Callable[..., Any]:
    """consul-template's Vault functions: ctmpl ignores the vault block, so they fail clearly."""

    def call(*_args: Any, **_kwargs: Any) -> Any:
        raise TemplateError(
            f"{name}(): Vault is not supported by ctmpl (the vault block is ignored); "
            "render secrets with another tool"
        )

    return call


GLOBALS: dict[str, Callable[..., Any]] = {
    **{name: _vault(name) for name in ("secret", "secrets", "pkiCert")},
    "byTag": by_tag,
    "toLower": lambda s: str(s).lower(),
    "toUpper": lambda s: str(s).upper(),
    "trimSpace": lambda s: str(s).strip(),
    "split": lambda sep, s: str(s).split(sep) if s != "" else [],
    "join": _join,
    "replaceAll": lambda old, new, s: str(s).replace(old, new),
    "regexMatch": regex_match,
    "regexReplaceAll": regex_replace_all,
    "parseJSON": parse_json,
    "toJSON": to_json,
    "contains": contains,
}

FILTERS: dict[str, Callable[..., Any]] = {
    "byTag": by_tag,
    "toLower": GLOBALS["toLower"],
    "toUpper": GLOBALS["toUpper"],
    "trimSpace": GLOBALS["trimSpace"],
    "split": lambda s, sep: GLOBALS["split"](sep, s),
    "replaceAll": lambda s, old, new: str(s).replace(old, new),
    "regexMatch": lambda s, pattern: regex_match(pattern, s),
    "regexReplaceAll": lambda s, pattern, repl: regex_replace_all(pattern, repl, s),
    "parseJSON": parse_json,
    "toJSON": to_json,
    "contains": lambda haystack, needle: contains(needle, haystack),
}
