"""Token types of Go's text/template lexer and how a token prints in error messages."""

from __future__ import annotations

from dataclasses import dataclass

EOF, ERROR, TEXT, LEFT, RIGHT = "EOF", "ERROR", "TEXT", "LEFT", "RIGHT"
SPACE, IDENT, FIELD, VARIABLE, DOT = "SPACE", "IDENT", "FIELD", "VARIABLE", "DOT"
STRING, RAWSTRING, CHARCONST, NUMBER, COMPLEX, BOOL = (
    "STRING", "RAWSTRING", "CHARCONST", "NUMBER", "COMPLEX", "BOOL")
PIPE, LPAREN, RPAREN, ASSIGN, DECLARE, CHAR, NIL = (
    "PIPE", "LPAREN", "RPAREN", "ASSIGN", "DECLARE", "CHAR", "NIL")
KEYWORDS = {
    "block": "block", "break": "break", "continue": "continue", "define": "define",
    "else": "else", "end": "end", "if": "if", "range": "range", "nil": NIL,
    "template": "template", "with": "with",
}
SPACE_CHARS = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical item: its type, character offset, text, and line."""

    typ: str
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ in KEYWORDS.values() and self.typ != NIL:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote_trunc(self.val)
        return go_quote(self.val)


def go_quote(text: str) -> str:
    """strconv.Quote."""
    from ctmpl.gotemplate.fmtvalue import quote

    return quote(text)


def _go_quote_trunc(text: str) -> str:
    return go_quote(text[:10]) + "..."


def is_alnum(ch: str) -> bool:
    """Go's isAlphaNumeric: a letter, a digit or an underscore."""
    return ch == "_" or ch.isalpha() or ch.isdigit()



def rune_name(ch: str) -> str:
    """Go's %#U of a rune: U+0021 '!'."""
    if not ch:
        return "U+FFFFFFFF"
    text = f"U+{ord(ch):04X}"
    return f"{text} '{ch}'" if ch.isprintable() else text
