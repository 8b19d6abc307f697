"""Go's ``fmt`` printing for templates: Sprint, Sprintln and Sprintf.

Operands are formatted by :mod:`ctmpl.gotemplate.fmtvalue`; a missing operand prints
``%!s(MISSING)`` and surplus ones ``%!(EXTRA int=1)``, as Go does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ctmpl.gotemplate.fmtvalue import _PLAIN, Spec, format_arg
from ctmpl.gotemplate.values import is_nilable_nil, type_name


def sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = False
    for n, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if n > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(format_arg(arg, "v", _PLAIN))
        prev_string = is_string
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    """fmt.Sprintln: always a space between operands, and a final newline."""
    return " ".join(format_arg(a, "v", _PLAIN) for a in args) + "\n"


_SIMPLE_VERB = re.compile(r"%([sdv%])")


@lru_cache(maxsize=1024)
def _simple_format(template: str) -> tuple[str, ...] | None:
    """Chunks of a format using only bare %s, %d, %v and %% (odd items: verbs), else None."""
    parts = _SIMPLE_VERB.split(template)
    if "%" in "".join(parts[::2]):
        return None
    return tuple(parts)


def _simple_sprintf(parts: tuple[str, ...], args: Sequence[Any]) -> str | None:
    out, n = [], 0
    for i, part in enumerate(parts):
        if not i % 2:
            out.append(part)
        elif part == "%":
            out.append("%")
        elif n >= len(args):
            return None
        else:
            arg, kind = args[n], type(args[n])
            n += 1
            if kind is str and part != "d":
                out.append(arg)
            elif kind is int and part != "s":
                out.append(str(arg))
            else:
                return None
    return "".join(out) if n == len(args) else None


def sprintf(template: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf."""
    parts = _simple_format(template)
    if parts is not None:
        text = _simple_sprintf(parts, args)
        if text is not None:
            return text
    out: list[str] = []
    cursor = _Cursor(template, args)
    end = len(template)
    while cursor.i < end:
        j = template.find("%", cursor.i)
        if j < 0:
            out.append(template[cursor.i:])
            break
        out.append(template[cursor.i:j])
        cursor.i = j + 1
        spec = cursor.spec()
        if cursor.i >= end:
            out.append("%!(NOVERB)")
            break
        verb = template[cursor.i]
        cursor.i += 1
        out.extend(cursor.bad)
        if verb == "%":
            out.append("%")
        elif not cursor.good_index:
            out.append(f"%!{verb}(BADINDEX)")
        elif cursor.n >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                spec.sharp_v, spec.plus_v = spec.sharp, spec.plus
                spec.sharp = spec.plus = False
            out.append(format_arg(args[cursor.n], verb, spec))
            cursor.n += 1
    if not cursor.reordered and cursor.n < len(args):
        extra = ", ".join(
            "<nil>" if is_nilable_nil(a) else f"{type_name(a)}={format_arg(a, 'v', _PLAIN)}"
            for a in args[cursor.n:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


class _Cursor:
    """Position in a format string and in its operands."""

    def __init__(self, text: str, args: Sequence[Any]) -> None:
        self.text, self.args = text, args
        self.i = self.n = 0
        self.bad: list[str] = []
        self.reordered = False
        self.good_index = True

    def index(self) -> bool:
        """An explicit argument index ``[n]`` (1-based) at the cursor; True if one was read."""
        text = self.text
        if self.i >= len(text) or text[self.i] != "[":
            return False
        self.reordered = True
        close = text.find("]", self.i + 1)
        if close < 0:
            self.i += 1
            self.good_index = False
            return False
        digits = text[self.i + 1:close]
        self.i = close + 1
        if digits.isdigit() and 1 <= int(digits) <= len(self.args):
            self.n = int(digits) - 1
            return True
        self.good_index = False
        return True

    def spec(self) -> Spec:
        """Flags, width and precision of one conversion."""
        spec = Spec()
        text = self.text
        while self.i < len(text) and text[self.i] in "#0+- ":
            c = text[self.i]
            if c == "#":
                spec.sharp = True
            elif c == "0":
                spec.zero = not spec.minus
            elif c == "+":
                spec.plus = True
            elif c == "-":
                spec.minus, spec.zero = True, False
            else:
                spec.space = True
            self.i += 1
        self.bad = []
        self.good_index = True
        after_index = self.index()
        star = self.at_star()
        if self.number(spec, "width"):
            self.bad.append("%!(BADWIDTH)")
        if star:
            after_index = False
        elif after_index and spec.width is not None:
            self.good_index = False  # "%[3]2d"
        if self.i < len(text) and text[self.i] == ".":
            self.i += 1
            if after_index:
                self.good_index = False  # "%[3].2d"
            after_index = self.index()
            star = self.at_star()
            if self.number(spec, "prec"):
                self.bad.append("%!(BADPREC)")
            elif spec.prec is None:
                spec.prec = 0
            if star:
                after_index = False
        if not after_index:
            self.index()
        return spec

    def at_star(self) -> bool:
        """True when a ``*`` (width or precision from an operand) is next."""
        return self.i < len(self.text) and self.text[self.i] == "*"

    def number(self, spec: Spec, attr: str) -> bool:
        """Read digits or ``*`` into ``spec.attr``; True when ``*`` had no usable operand."""
        text = self.text
        if self.i < len(text) and text[self.i] == "*":
            self.i += 1
            value = self.args[self.n] if self.n < len(self.args) else None
            self.n += 1
            if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 1_000_000:
                return True
            if attr == "prec" and value < 0:
                return True  # a negative precision is no precision
            if attr == "width" and value < 0:
                spec.minus, spec.zero, value = True, False, -value
            setattr(spec, attr, value)
            return False
        start = self.i
        while self.i < len(text) and text[self.i].isdigit():
            self.i += 1
        if self.i > start:
            setattr(spec, attr, int(text[start:self.i]))
        return False


