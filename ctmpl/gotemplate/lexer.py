"""The lexer of Go's text/template: template text in, a list of tokens out.

Text outside actions becomes TEXT tokens; ``{{- `` and `` -}}`` trim the adjacent white space
(space, tab, CR, LF); comments ``{{/* … */}}`` produce no token. A lexical error ends the list
with an ERROR token carrying Go's message, so the parser reports it at the same point Go does.
"""

from __future__ import annotations

from typing import Any

from ctmpl.gotemplate.scan import LiteralScanner
from ctmpl.gotemplate.tokens import (
    ASSIGN,
    BOOL,
    CHAR,
    DECLARE,
    DOT,
    EOF,
    ERROR,
    FIELD,
    IDENT,
    KEYWORDS,
    LEFT,
    LPAREN,
    PIPE,
    RIGHT,
    RPAREN,
    SPACE,
    SPACE_CHARS,
    TEXT,
    VARIABLE,
    Token,
    is_alnum,
    rune_name,
)

_SPACE = SPACE_CHARS


class Lexer(LiteralScanner):
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
        elif is_alnum(ch):
            self.pos -= 1
            return self._lex_identifier
        elif ch == "(":
            self._emit(LPAREN)
            self.paren_depth += 1
        elif ch == ")":
            self._emit(RPAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self._error(f"unexpected right paren {rune_name(ch)}")
                return None
        elif ord(ch) < 0x80 and ch.isprintable():
            self._emit(CHAR)
        else:
            self._error(f"unrecognized character in action: {rune_name(ch)}")
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
        while self.pos < len(self.text) and is_alnum(self.text[self.pos]):
            self.pos += 1
        word = self.text[self.start:self.pos]
        if not self._at_terminator():
            self._error(f"bad character {rune_name(self._peek())}")
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
        while self.pos < len(self.text) and is_alnum(self.text[self.pos]):
            self.pos += 1
        if not self._at_terminator():
            self._error(f"bad character {rune_name(self._peek())}")
            return None
        self._emit(typ)
        return self._lex_inside

def lex(text: str, left: str = "{{", right: str = "}}") -> list[Token]:
    """Tokens of ``text``; the last is EOF or ERROR."""
    return Lexer(text, left, right).run()
