"""Lexer states for literals inside actions: quoted and raw strings, character constants
and numbers (decimal, hex, octal, binary, floats, with ``_`` separators), as Go scans them."""

from __future__ import annotations

from ctmpl.gotemplate.tokens import (
    CHARCONST,
    COMPLEX,
    NUMBER,
    RAWSTRING,
    STRING,
    go_quote,
    is_alnum,
)


class LiteralScanner:
    """Mixed into ``Lexer``: needs its text, positions, ``_peek``, ``_emit`` and ``_error``."""

    text: str
    pos: int
    start: int

    def _peek(self) -> str:
        raise NotImplementedError

    def _emit(self, typ: str) -> None:
        raise NotImplementedError

    def _error(self, message: str) -> None:
        raise NotImplementedError

    def _lex_inside(self) -> object:
        raise NotImplementedError

    def _lex_char(self) -> object:
        return self._lex_escaped("'", "unterminated character constant", CHARCONST)

    def _lex_quote(self) -> object:
        return self._lex_escaped('"', "unterminated quoted string", STRING)

    def _lex_escaped(self, close: str, unterminated: str, typ: str) -> object:
        """Scan up to ``close``, skipping backslash escapes; a newline or EOF is an error."""
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
                self._error(unterminated)
                return None
            if ch == close:
                break
        self._emit(typ)
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
            self._error(f"bad number syntax: {go_quote(self.text[self.start:self.pos])}")
            return None
        if self._peek() in ("+", "-") and self._peek() != "":
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                self._error(f"bad number syntax: {go_quote(self.text[self.start:self.pos])}")
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
        if self._peek() != "" and is_alnum(self._peek()):
            self.pos += 1
            return False
        return True
