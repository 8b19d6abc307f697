"""The parser of Go's text/template: tokens in, one tree per defined template out.

Follows Go's grammar and its error messages (``template: NAME:LINE: unexpected EOF``,
``function "x" not defined``, ``unexpected {{end}}``); function names are checked at parse
time against the function table, as Go does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Container

from ctmpl.gotemplate import lexer as lx
from ctmpl.gotemplate.lexer import Token
from ctmpl.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    is_empty_tree,
)


class ParseError(Exception):
    """A syntax error; the message is Go's (``template: NAME:LINE: …``)."""


_TERMS = {lx.BOOL, lx.CHARCONST, lx.COMPLEX, lx.DOT, lx.FIELD, lx.IDENT, lx.NUMBER, lx.NIL,
          lx.RAWSTRING, lx.STRING, lx.VARIABLE, lx.LPAREN}
_OCTAL = re.compile(r"[+-]?0[0-7_]+")


_ESCAPES = re.compile(r"\\(?:[abfnrtv\\'\"]|x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}"
                      r"|U[0-9a-fA-F]{8})|\\")


def unquote(text: str) -> str:
    """strconv.Unquote for "…", `…` and '…' literals."""
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    if any(m.group() == "\\" for m in _ESCAPES.finditer(text)):
        raise ValueError("invalid syntax")
    try:
        value = ast.literal_eval(text if not text.startswith("'") else '"' + text[1:-1] + '"')
    except (ValueError, SyntaxError):
        raise ValueError("invalid syntax") from None
    if not isinstance(value, str):
        raise ValueError("invalid syntax")
    return value


def parse_number(pos: int, text: str, typ: str) -> NumberNode:
    """Go's newNumber: the int, uint and float readings a constant allows."""
    node = NumberNode(pos, text)
    if typ == lx.CHARCONST:
        rune = ord(unquote(text))
        node.is_int = node.is_uint = node.is_float = True
        node.int_value = node.uint_value = rune
        node.float_value = float(rune)
        return node
    if typ == lx.COMPLEX or text.endswith("i"):
        raise ValueError(f"complex numbers are not supported: {text!r}")
    value = _parse_int(text)
    if value is not None:
        if 0 <= value < 1 << 64:
            node.is_uint, node.uint_value = True, value
        if -(1 << 63) <= value < 1 << 63:
            node.is_int, node.int_value = True, value
        if node.is_int or node.is_uint:
            node.is_float, node.float_value = True, float(value)
            return node
        raise ValueError(f"integer overflow: {_q(text)}")
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"illegal number syntax: {_q(text)}") from None
    node.is_float, node.float_value = True, number
    if number.is_integer():
        as_int = int(number)
        if -(1 << 63) <= as_int < 1 << 63:
            node.is_int, node.int_value = True, as_int
        if 0 <= as_int < 1 << 64:
            node.is_uint, node.uint_value = True, as_int
    return node


def _parse_int(text: str) -> int | None:
    if any(c in text for c in ".eEpP") and not text.lower().lstrip("+-").startswith("0x"):
        return None
    try:
        if _OCTAL.fullmatch(text):
            return int(text.replace("_", ""), 8)
        return int(text, 0)
    except ValueError:
        return None


def _q(text: str) -> str:
    from ctmpl.gotemplate.gofmt import quote

    return quote(text)


class Parser:
    """Parses one template text into ``trees`` (name → root list)."""

    def __init__(self, name: str, text: str, funcs: Container[str],
                 left: str = "{{", right: str = "}}") -> None:
        self.name = name
        self.text = text
        self.funcs = funcs
        self.tokens = lx.lex(text, left, right)
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

    # -- grammar -----------------------------------------------------------------------

    def parse(self) -> dict[str, ListNode]:
        """Parse everything; the main template is stored under ``self.name``."""
        root = ListNode(self.peek().pos)
        while self.peek().typ != lx.EOF:
            if self.peek().typ == lx.LEFT:
                mark = self.i
                self.next()
                if self.next_non_space().typ == "define":
                    self._definition()
                    continue
                self.i = mark
            node = self._text_or_action()
            if isinstance(node, EndNode | ElseNode):
                raise self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self._add(self.name, root)
        return self.trees

    def _add(self, name: str, root: ListNode) -> None:
        existing = self.trees.get(name)
        if existing is None or is_empty_tree(existing):
            self.trees[name] = root
        elif not is_empty_tree(root):
            raise self.errorf(f"template: multiple definition of template {_q(name)}")

    def _definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (lx.STRING, lx.RAWSTRING):
            raise self.unexpected(tok, context)
        name = self._unquote(tok.val)
        self.expect(lx.RIGHT, context)
        saved_vars, self.vars = self.vars, ["$"]
        root, end = self._item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self._add(name, root)

    def _unquote(self, text: str) -> str:
        try:
            return unquote(text)
        except ValueError as exc:
            raise self.errorf(str(exc)) from None

    def _item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != lx.EOF:
            node = self._text_or_action()
            if isinstance(node, EndNode | ElseNode):
                return lst, node
            lst.nodes.append(node)
        raise self.errorf("unexpected EOF")

    def _text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.typ == lx.TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.typ == lx.LEFT:
            self.action_line = tok.line
            try:
                return self._action()
            finally:
                self.action_line = 0
        raise self.unexpected(tok, "input")

    def _action(self) -> Node:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == "block":
            return self._block()
        if typ in ("break", "continue"):
            end = self.next_non_space()
            if end.typ != lx.RIGHT:
                raise self.unexpected(end, "{{" + typ + "}}")
            if self.range_depth == 0:
                raise self.errorf("{{" + typ + "}} outside {{range}}")
            return (BreakNode if typ == "break" else ContinueNode)(tok.pos, tok.line)
        if typ == "else":
            peek = self.peek_non_space()
            if peek.typ == "if":
                return ElseNode(peek.pos, peek.line)
            end_tok = self.expect(lx.RIGHT, "else")
            return ElseNode(end_tok.pos, end_tok.line)
        if typ == "end":
            return EndNode(self.expect(lx.RIGHT, "end").pos)
        if typ == "if":
            return self._control(IfNode, True, "if")
        if typ == "range":
            return self._control(RangeNode, False, "range")
        if typ == "with":
            return self._control(WithNode, False, "with")
        if typ == "template":
            return self._template()
        self.backup()
        start = self.peek()
        return ActionNode(start.pos, start.line, self._pipeline("command", lx.RIGHT))

    def _control(self, cls: type, allow_else_if: bool, context: str) -> Node:
        mark = len(self.vars)
        try:
            pipe = self._pipeline(context, lx.RIGHT)
            if context == "range":
                self.range_depth += 1
            body, nxt = self._item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                if allow_else_if and self.peek().typ == "if":
                    self.next()
                    else_list = ListNode(nxt.pos, [self._control(IfNode, True, "if")])
                else:
                    else_list, nxt = self._item_list()
                    if not isinstance(nxt, EndNode):
                        raise self.errorf(f"expected end; found {nxt}")
            node: Node = cls(pipe.pos, pipe.line, pipe, body, else_list, context)
            return node
        finally:
            del self.vars[mark:]

    def _template_name(self, tok: Token, context: str) -> str:
        if tok.typ in (lx.STRING, lx.RAWSTRING):
            return self._unquote(tok.val)
        raise self.unexpected(tok, context)

    def _template(self) -> Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self._template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != lx.RIGHT:
            self.backup()
            pipe = self._pipeline(context, lx.RIGHT)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def _block(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self._template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != lx.RIGHT:
            self.backup()
            pipe = self._pipeline(context, lx.RIGHT)
        saved = (self.vars, self.range_depth)
        self.vars, self.range_depth = ["$"], 0
        root, end = self._item_list()
        self.vars, self.range_depth = saved
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self._add(name, root)
        return TemplateNode(tok.pos, tok.line, name, pipe)

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
                raise self.errorf(f"unexpected . after term {_q(str(node))}")
            return chain
        return node

    def _term(self) -> Node | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == lx.IDENT:
            if tok.val not in self.funcs:
                raise self.errorf(f"function {_q(tok.val)} not defined")
            return IdentifierNode(tok.pos, tok.val)
        if typ == lx.DOT:
            return DotNode(tok.pos)
        if typ == lx.NIL:
            return NilNode(tok.pos)
        if typ == lx.VARIABLE:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                raise self.errorf(f"undefined variable {_q(name)}")
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


def parse(name: str, text: str, funcs: Container[str],
          left: str = "{{", right: str = "}}") -> dict[str, ListNode]:
    """Parse ``text``; raise ParseError with Go's message."""
    return Parser(name, text, funcs, left, right).parse()
