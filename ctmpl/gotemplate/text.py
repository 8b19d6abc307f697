"""consul-template's text and list helpers: case, trimming, ``split`` (which trims first),
``join``, ``replaceAll``, regular expressions with Go's ``$1`` expansion, ``in``/``contains``,
``indent`` and ``loop``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ctmpl.gotemplate.calls import GoError
from ctmpl.gotemplate.values import GoList, Int64, kind, str_list, type_name


def _simple_case(text: str, convert: str) -> str:
    if text.isascii():
        return getattr(text, convert)()  # type: ignore[no-any-return]
    out = []
    for ch in text:
        mapped = getattr(ch, convert)()
        out.append(mapped if len(mapped) == 1 else ch)
    return "".join(out)


def to_lower(s: str) -> str:
    """strings.ToLower (rune by rune)."""
    return _simple_case(s, "lower")


def to_upper(s: str) -> str:
    """strings.ToUpper (rune by rune)."""
    return _simple_case(s, "upper")


def _is_separator(ch: str) -> bool:
    if ord(ch) <= 0x7F:
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdigit():
        return False
    return ch.isspace()


def to_title(s: str) -> str:
    """strings.Title: upper-case the first letter after a separator (``_`` is none)."""
    out = []
    prev = " "
    for ch in s:
        if _is_separator(prev):
            mapped = ch.title()
            out.append(mapped if len(mapped) == 1 else ch)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def trim_space(s: str) -> str:
    """strings.TrimSpace."""
    return s.strip(" \t\n\r\v\f\x85\xa0")


def split(sep: str, s: str) -> GoList:
    """split: trim first; an empty string gives an empty list."""
    s = trim_space(s)
    if not s:
        return str_list()
    if not sep:
        return str_list(list(s))
    return str_list(s.split(sep))


def join(sep: str, items: Any) -> str:
    """join: strings.Join(items, sep)."""
    return sep.join(items)


def replace_all(old: str, new: str, s: str) -> str:
    """strings.ReplaceAll (an empty ``old`` inserts around every rune)."""
    if not old:
        return new + new.join(s) + new if s else new
    return s.replace(old, new)


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise GoError(f"error parsing regexp: {exc}") from None


def regex_match(pattern: str, s: str) -> bool:
    """regexMatch: true when the pattern matches anywhere."""
    return _regex(pattern).search(s) is not None


def regex_replace_all(pattern: str, repl: str, s: str) -> str:
    """regexReplaceAll with Go's ``$1`` / ``${name}`` expansion."""
    compiled = _regex(pattern)

    def expand(match: re.Match[str]) -> str:
        def group(ref: re.Match[str]) -> str:
            name = ref.group(1) or ref.group(2)
            if name == "$":
                return "$"
            try:
                key: int | str = int(name) if name.isdigit() else name
                return match.group(key) or ""
            except IndexError:
                return ""

        return re.sub(r"\$(?:\{(\w+)\}|(\w+|\$))", group, repl)

    return compiled.sub(expand, s)


def in_(items: Any, value: Any) -> bool:
    """in: ``value`` is an element of the list (same type) or a substring of the string."""
    if isinstance(items, list | tuple):
        for item in items:
            if type(item) is str and type(value) is str:
                if item == value:
                    return True
                continue
            if isinstance(item, list | tuple | Mapping):
                raise GoError(f"in: {item!r} ({type_name(item)}) is not a scalar")
            if kind(item) == kind(value) and type_name(item) == type_name(value) \
                    and item == value:
                return True
        return False
    if isinstance(items, str) and isinstance(value, str):
        return value in items
    return False


def contains(value: Any, items: Any) -> bool:
    """contains: ``in`` with the arguments swapped, for ``.Tags | contains "x"``."""
    return in_(items, value)


def contains_some(need_all: bool, want: bool) -> Any:
    def check(values: Any, items: Any) -> bool:
        hits = [in_(items, v) for v in values]
        found = all(hits) if need_all else any(hits)
        return found == want

    return check


def indent(spaces: int, s: str) -> str:
    """indent: prefix every non-empty line with ``spaces`` spaces."""
    if spaces < 0:
        raise GoError("indent value must be a positive integer")
    prefix = " " * spaces
    out = []
    at_start = True
    for ch in s:
        if at_start and ch != "\n":
            out.append(prefix)
        out.append(ch)
        at_start = ch == "\n"
    return "".join(out)


def loop(*ints: int) -> GoList:
    """loop N or loop START STOP: the integers start..stop-1."""
    if len(ints) == 1:
        start, stop = 0, ints[0]
    elif len(ints) == 2:
        start, stop = ints
    else:
        raise GoError(f"loop: wrong number of arguments, expected 1 or 2, but got {len(ints)}")
    return GoList.of("<-chan int64", [Int64(i) for i in range(start, stop)])


