"""The part of Consul's ``filter=`` language (go-bexpr) that the API double understands.

Expressions combine matches with ``and``, ``or``, ``not`` and parentheses. A match is one of::

    <selector> == "<value>"        <selector> != "<value>"
    <selector> contains "<value>"  <selector> not contains "<value>"
    "<value>" in <selector>        "<value>" not in <selector>
    <selector> is empty            <selector> is not empty
    <selector> matches "<regex>"   <selector> not matches "<regex>"

A selector is a dotted path into the JSON entry (``Service.Tags``, ``Service.Meta.version``,
``Node.Node``). Values may be quoted or bare words. Anything else is a ``FilterError``, which
the double answers with 400 as the agent does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(==|!=)|([\w.\-/:]+))')

Predicate = Callable[[Any], bool]


class FilterError(ValueError):
    """The expression is not valid."""


def compile_filter(text: str) -> Predicate:
    """A predicate over one JSON entry for a ``filter=`` expression."""
    tokens = _tokenize(text)
    parser = _Parser(tokens)
    pred = parser.expr()
    if parser.pos != len(tokens):
        raise FilterError(f"unexpected {tokens[parser.pos]!r}")
    return pred


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"cannot parse {text[pos:]!r}")
        tokens.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    if not tokens:
        raise FilterError("empty expression")
    return tokens


def _select(entry: Any, path: str) -> Any:
    value = entry
    for part in path.split("."):
        if not isinstance(value, dict):
            raise FilterError(f"selector {path!r} does not name a field")
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.tokens[at] if at < len(self.tokens) else ""

    def take(self, *expected: str) -> str:
        token = self.peek()
        if not token or (expected and token not in expected):
            raise FilterError(f"expected {' or '.join(expected) or 'more'}, found {token!r}")
        self.pos += 1
        return token

    def expr(self) -> Predicate:
        left = self.conj()
        while self.peek() == "or":
            self.take()
            a, b = left, self.conj()
            left = lambda e, a=a, b=b: a(e) or b(e)  # noqa: E731
        return left

    def conj(self) -> Predicate:
        left = self.neg()
        while self.peek() == "and":
            self.take()
            a, b = left, self.neg()
            left = lambda e, a=a, b=b: a(e) and b(e)  # noqa: E731
        return left

    def neg(self) -> Predicate:
        if self.peek() == "not" and self.peek(1) != "in":
            self.take()
            inner = self.neg()
            return lambda e: not inner(e)
        if self.peek() == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        return self.match()

    def value(self) -> str:
        token = self.take()
        if token.startswith('"'):
            return re.sub(r"\\(.)", r"\1", token[1:-1])
        if token in ("(", ")", "==", "!="):
            raise FilterError(f"expected a value, found {token!r}")
        return token

    def match(self) -> Predicate:
        if self.peek().startswith('"') or self.peek(1) in ("in",) or (
            self.peek(1) == "not" and self.peek(2) == "in"
        ):
            wanted = self.value()
            negate = self.peek() == "not"
            if negate:
                self.take()
            self.take("in")
            path = self.take()
            return lambda e: negate != _contains(_select(e, path), wanted)
        path = self.take()
        op = self.take()
        negate = op == "not"
        if negate or op == "is":
            if op == "is" and self.peek() == "not":
                self.take()
                negate = True
            if op == "is" or self.peek() == "empty":
                self.take("empty")
                return lambda e: negate != (not _select(e, path))
            op = self.take("contains", "matches")
        if op in ("==", "!="):
            wanted = self.value()
            return lambda e: (op == "!=") != (_text(_select(e, path)) == wanted)
        if op == "contains":
            wanted = self.value()
            return lambda e: negate != _contains(_select(e, path), wanted)
        if op == "matches":
            pattern = re.compile(self.value())
            return lambda e: negate != bool(pattern.search(_text(_select(e, path))))
        raise FilterError(f"unknown operator {op!r}")


def _contains(value: Any, wanted: str) -> bool:
    if isinstance(value, str):
        return wanted in value
    if isinstance(value, (list, dict)):
        return wanted in [_text(v) for v in value]
    return False
