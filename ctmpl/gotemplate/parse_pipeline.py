"""The token stream of the template parser and Go's pipeline grammar:
declarations (``$x :=``, ``$i, $e :=``), commands, operands, terms, with Go's error texts
(``function "x" not defined``, ``undefined variable "$x"``, ``missing value for command``)."""

from __future__ import annotations

from collections.abc import Container

from ctmpl.gotemplate import tokens as lx
from ctmpl.gotemplate.fmtvalue import quote
from ctmpl.gotemplate.lexer import lex
from ctmpl.gotemplate.literals import parse_number, unquote
from ctmpl.gotemplate.nodes import (
    BoolNode,
    ChainNode,
    CommandNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    VariableNode,
)
from ctmpl.gotemplate.tokens import Token


class ParseError(Exception):
    """A syntax error; the message is Go's (``template: NAME:LINE: …``)."""


_TERMS = {lx.BOOL, lx.CHARCONST, lx.COMPLEX, lx.DOT, lx.FIELD, lx.IDENT, lx.NUMBER, lx.NIL,
          lx.RAWSTRING, lx.STRING, lx.VARIABLE, lx.LPAREN}
_TERMS = {lx.BOOL, lx.CHARCONST, lx.COMPLEX, lx.DOT, lx.FIELD, lx.IDENT, lx.NUMBER, lx.NIL,
          lx.RAWSTRING, lx.STRING, lx.VARIABLE, lx.LPAREN}


class PipelineParser:
    """Token stream helpers and the pipeline grammar; ``Parser`` adds the statements."""

    def __init__(self, name: str, text: str, funcs: Container[str],
                 left: str = "{{", right: str = "}}") -> None:
        self.name = name
        self.text = text
        self.funcs = funcs
        self.tokens = lex(text, left, right)
        self.i = 0
        self.last: Token = self.tokens[0]
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.trees: dict[str, ListNode] = {}

    # -- token stream ------------------------------------------------------------------

    def next(self) -> Token:
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]
        self.i += 1
        self.last = tok
        return tok

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> Token:
        return self.tokens[min(self.i, len(self.tokens) - 1)]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.typ == lx.SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    def errorf(self, message: str) -> ParseError:
        return ParseError(f"template: {self.name}:{self.last.line}: {message}")

    def expect(self, typ: str, context: str) -> Token:
        tok = self.next_non_space()
        if tok.typ != typ:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> ParseError:
        if tok.typ == lx.ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            return self.errorf(f"{tok}{extra}")
        return self.errorf(f"unexpected {tok} in {context}")

    def _unquote(self, text: str) -> str:
        try:
            return unquote(text)
        except ValueError as exc:
            raise self.errorf(str(exc)) from None

    def _pipeline(self, context: str, end: str) -> PipeNode:
        start = self.peek_non_space()
        pipe = PipeNode(start.pos, start.line)
        self._declarations(pipe, context)
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self._check_pipeline(pipe, context)
                return pipe
            if tok.typ in _TERMS:
                self.backup()
                pipe.cmds.append(self._command())
            else:
                raise self.unexpected(tok, context)

    def _declarations(self, pipe: PipeNode, context: str) -> None:
        while True:
            var = self.peek_non_space()
            if var.typ != lx.VARIABLE:
                return
            start = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (lx.ASSIGN, lx.DECLARE):
                pipe.is_assign = nxt.typ == lx.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                return
            if nxt.typ == lx.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (lx.VARIABLE, lx.RIGHT, lx.RPAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            self.i = start
            return

    def _check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for n, cmd in enumerate(pipe.cmds[1:], 2):
            if isinstance(cmd.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                raise self.errorf(f"non executable command in pipeline stage {n}")

    def _command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self._operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == lx.SPACE:
                continue
            if tok.typ in (lx.RIGHT, lx.RPAREN):
                self.backup()
            elif tok.typ != lx.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.errorf("empty command")
        return cmd

    def _operand(self) -> Node | None:
        node = self._term()
        if node is None:
            return None
        if self.peek().typ == lx.FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == lx.FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, node.idents + chain.fields)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, node.idents + chain.fields)
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                raise self.errorf(f"unexpected . after term {quote(str(node))}")
            return chain
        return node

    def _term(self) -> Node | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == lx.IDENT:
            if tok.val not in self.funcs:
                raise self.errorf(f"function {quote(tok.val)} not defined")
            return IdentifierNode(tok.pos, tok.val)
        if typ == lx.DOT:
            return DotNode(tok.pos)
        if typ == lx.NIL:
            return NilNode(tok.pos)
        if typ == lx.VARIABLE:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                raise self.errorf(f"undefined variable {quote(name)}")
            return VariableNode(tok.pos, tok.val.split("."))
        if typ == lx.FIELD:
            return FieldNode(tok.pos, tok.val[1:].split("."))
        if typ == lx.BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if typ in (lx.CHARCONST, lx.COMPLEX, lx.NUMBER):
            try:
                return parse_number(tok.pos, tok.val, typ)
            except ValueError as exc:
                raise self.errorf(str(exc)) from None
        if typ == lx.LPAREN:
            return self._pipeline("parenthesized pipeline", lx.RPAREN)
        if typ in (lx.STRING, lx.RAWSTRING):
            return StringNode(tok.pos, tok.val, self._unquote(tok.val))
        self.backup()
        return None


