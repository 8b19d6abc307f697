"""The lexer of Go's text/template: template text in, a list of tokens out.

Text outside actions becomes TEXT tokens; ``{{- `` and `` -}}`` trim the adjacent white space
(space, tab, CR, LF); comments ``{{/* … */}}`` produce no token. A lexical error ends the list
with an ERROR token carrying Go's message, so the parser reports it at the same point Go does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
_SPACE = " \t\r\n"


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
        return _go_quote(self.val)


def _go_quote(text: str) -> str:
    from ctmpl.gotemplate.fmtvalue import quote

    return quote(text)


def _go_quote_trunc(text: str) -> str:
    return _go_quote(text[:10]) + "..."


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


class Lexer:
    """Scans one template text with the given delimiters."""

    def __init__(self, text: str, left: str = "{{", right: str = "}}") -> None:
        self.text = text
        self.left = left or "{{"
        self.right = right or "}}"
        self.tokens: list[Token] = []
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self._line_at = 0
        self._line_no = 1

    # -- helpers ------------------------------------------------------------------------

    def _line(self, pos: int) -> int:
        # Tokens start at increasing offsets: count newlines incrementally, not from 0.
        if pos >= self._line_at:
            self._line_no += self.text.count("\n", self._line_at, pos)
        else:
            self._line_no -= self.text.count("\n", pos, self._line_at)
        self._line_at = pos
        return self._line_no

    def _emit(self, typ: str) -> None:
        self.tokens.append(Token(typ, self.start, self.text[self.start:self.pos],
                                 self._line(self.start)))
        self.start = self.pos

    def _error(self, message: str) -> None:
        self.tokens.append(Token(ERROR, self.start, message, self._line(self.start)))

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _at_right_delim(self) -> tuple[bool, bool]:
        rest = self.text[self.pos:self.pos + 2 + len(self.right)]
        if len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-" and \
                rest[2:].startswith(self.right):
            return True, True
        return rest.startswith(self.right), False

    def _at_terminator(self) -> bool:
        ch = self._peek()
        return ch == "" or ch in _SPACE or ch in ".,|:)(" or ch == self.right[0]

    # -- states -------------------------------------------------------------------------

    def run(self) -> list[Token]:
        """Lex the whole text."""
        state: Any = self._lex_text
        while state is not None:
            state = state()
        return self.tokens

    def _lex_text(self) -> object:
        x = self.text.find(self.left, self.pos)
        if x < 0:
            self.pos = len(self.text)
            if self.pos > self.start:
                self._emit(TEXT)
            self._emit(EOF)
            return None
        self.pos = x
        delim_end = x + len(self.left)
        trim = 0
        if self._left_trim_at(delim_end):
            chunk = self.text[self.start:self.pos]
            trim = len(chunk) - len(chunk.rstrip(_SPACE))
        self.pos -= trim
        if self.pos > self.start:
            self._emit(TEXT)
        self.pos += trim
        self.start = self.pos
        return self._lex_left_delim

    def _left_trim_at(self, pos: int) -> bool:
        return self.text[pos:pos + 1] == "-" and self.text[pos + 1:pos + 2] != "" and \
            self.text[pos + 1] in _SPACE

    def _lex_left_delim(self) -> object:
        self.pos += len(self.left)
        trim = self._left_trim_at(self.pos)
        after = 2 if trim else 0
        if self.text.startswith("/*", self.pos + after):
            self.pos += after
            self.start = self.pos
            return self._lex_comment
        self._emit(LEFT)
        self.pos += after
        self.start = self.pos
        self.paren_depth = 0
        return self._lex_inside

    def _lex_comment(self) -> object:
        self.pos += 2
        x = self.text.find("*/", self.pos)
        if x < 0:
            self._error("unclosed comment")
            return None
        self.pos = x + 2
        delim, trim = self._at_right_delim()
        if not delim:
            self._error("comment ends before closing delimiter")
            return None
        if trim:
            self.pos += 2
        self.pos += len(self.right)
        if trim:
            self._skip_space()
        self.start = self.pos
        return self._lex_text

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def _lex_right_delim(self) -> object:
        _, trim = self._at_right_delim()
        if trim:
            self.pos += 2
            self.start = self.pos
        self.pos += len(self.right)
        self._emit(RIGHT)
        if trim:
            self._skip_space()
            self.start = self.pos
        return self._lex_text

    def _lex_inside(self) -> object:
        delim, _ = self._at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self._lex_right_delim
            self._error("unclosed left paren")
            return None
        if self.pos >= len(self.text):
            self._error("unclosed action")
            return None
        ch = self.text[self.pos]
        self.pos += 1
        if ch in _SPACE:
            self.pos -= 1
            return self._lex_space
        if ch == "=":
            self._emit(ASSIGN)
        elif ch == ":":
            if self._peek() != "=":
                self._error("expected :=")
                return None
            self.pos += 1
            self._emit(DECLARE)
        elif ch == "|":
            self._emit(PIPE)
        elif ch == '"':
            return self._lex_quote
        elif ch == "`":
            return self._lex_raw_quote
        elif ch == "$":
            return self._lex_variable
        elif ch == "'":
            return self._lex_char
        elif ch == "." and not ("0" <= self._peek() <= "9" and self._peek() != ""):
            return self._lex_field
        elif ch in "+-." or "0" <= ch <= "9":
            self.pos -= 1
            return self._lex_number
        elif _is_alnum(ch):
            self.pos -= 1
            return self._lex_identifier
        elif ch == "(":
            self._emit(LPAREN)
            self.paren_depth += 1
        elif ch == ")":
            self._emit(RPAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self._error(f"unexpected right paren {_rune_name(ch)}")
                return None
        elif ord(ch) < 0x80 and ch.isprintable():
            self._emit(CHAR)
        else:
            self._error(f"unrecognized character in action: {_rune_name(ch)}")
            return None
        return self._lex_inside

    def _lex_space(self) -> object:
        count = 0
        while self._peek() != "" and self._peek() in _SPACE:
            self.pos += 1
            count += 1
        # " -}}": the space is followed by a trim marker and the right delimiter.
        if self.text.startswith("-", self.pos) and \
                self.text.startswith(self.right, self.pos + 1):
            self.pos -= 1
            if count == 1:
                return self._lex_right_delim
        self._emit(SPACE)
        return self._lex_inside

    def _lex_identifier(self) -> object:
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
        word = self.text[self.start:self.pos]
        if not self._at_terminator():
            self._error(f"bad character {_rune_name(self._peek())}")
            return None
        if word in KEYWORDS:
            self._emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self._emit(BOOL)
        else:
            self._emit(IDENT)
        return self._lex_inside

    def _lex_field(self) -> object:
        return self._field_or_variable(FIELD)

    def _lex_variable(self) -> object:
        return self._field_or_variable(VARIABLE)

    def _field_or_variable(self, typ: str) -> object:
        if self._at_terminator():
            self._emit(VARIABLE if typ == VARIABLE else DOT)
            return self._lex_inside
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
        if not self._at_terminator():
            self._error(f"bad character {_rune_name(self._peek())}")
            return None
        self._emit(typ)
        return self._lex_inside

    def _lex_char(self) -> object:
        while True:
            ch = self._peek()
            self.pos += 1
            if ch == "\\":
                nxt = self._peek()
                if nxt not in ("", "\n"):
                    self.pos += 1
                    continue
                ch = nxt
            if ch in ("", "\n"):
                self._error("unterminated character constant")
                return None
            if ch == "'":
                break
        self._emit(CHARCONST)
        return self._lex_inside

    def _lex_quote(self) -> object:
        while True:
            ch = self._peek()
            self.pos += 1
            if ch == "\\":
                nxt = self._peek()
                if nxt not in ("", "\n"):
                    self.pos += 1
                    continue
                ch = nxt
            if ch in ("", "\n"):
                self._error("unterminated quoted string")
                return None
            if ch == '"':
                break
        self._emit(STRING)
        return self._lex_inside

    def _lex_raw_quote(self) -> object:
        x = self.text.find("`", self.pos)
        if x < 0:
            self._error("unterminated raw quoted string")
            return None
        self.pos = x + 1
        self._emit(RAWSTRING)
        return self._lex_inside

    def _lex_number(self) -> object:
        if not self._scan_number():
            self._error(f"bad number syntax: {_go_quote(self.text[self.start:self.pos])}")
            return None
        if self._peek() in ("+", "-") and self._peek() != "":
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                self._error(f"bad number syntax: {_go_quote(self.text[self.start:self.pos])}")
                return None
            self._emit(COMPLEX)
        else:
            self._emit(NUMBER)
        return self._lex_inside

    def _accept(self, valid: str) -> bool:
        if self._peek() != "" and self._peek() in valid:
            self.pos += 1
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self._peek() != "" and self._peek() in valid:
            self.pos += 1

    def _scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 11 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if self._peek() != "" and _is_alnum(self._peek()):
            self.pos += 1
            return False
        return True


def _rune_name(ch: str) -> str:
    """Go's %#U of a rune: U+0021 '!'."""
    if not ch:
        return "U+FFFFFFFF"
    text = f"U+{ord(ch):04X}"
    return f"{text} '{ch}'" if ch.isprintable() else text


def lex(text: str, left: str = "{{", right: str = "}}") -> list[Token]:
    """Tokens of ``text``; the last is EOF or ERROR."""
    return Lexer(text, left, right).run()
