"""The parser of Go's text/template: tokens in, one tree per defined template out.

Follows Go's grammar and its error messages (``template: NAME:LINE: unexpected EOF``,
``function "x" not defined``, ``unexpected {{end}}``); function names are checked at parse
time against the function table, as Go does.
"""

from __future__ import annotations

from collections.abc import Container

from ctmpl.gotemplate import tokens as lx
from ctmpl.gotemplate.fmtvalue import quote
from ctmpl.gotemplate.nodes import (
    ActionNode,
    BreakNode,
    ContinueNode,
    ElseNode,
    EndNode,
    IfNode,
    ListNode,
    Node,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    WithNode,
    is_empty_tree,
)
from ctmpl.gotemplate.parse_pipeline import PipelineParser
from ctmpl.gotemplate.tokens import Token


class Parser(PipelineParser):
    """Parses one template text into ``trees`` (name → root list)."""

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
            raise self.errorf(f"template: multiple definition of template {quote(name)}")

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

    def _template_call(self, context: str) -> tuple[Token, str, PipeNode | None]:
        """The ``"name" [pipeline]`` that follows ``template`` and ``block``."""
        tok = self.next_non_space()
        name = self._template_name(tok, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != lx.RIGHT:
            self.backup()
            pipe = self._pipeline(context, lx.RIGHT)
        return tok, name, pipe

    def _template(self) -> Node:
        tok, name, pipe = self._template_call("template clause")
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def _block(self) -> Node:
        context = "block clause"
        tok, name, pipe = self._template_call(context)
        saved = (self.vars, self.range_depth)
        self.vars, self.range_depth = ["$"], 0
        root, end = self._item_list()
        self.vars, self.range_depth = saved
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self._add(name, root)
        return TemplateNode(tok.pos, tok.line, name, pipe)

def parse(name: str, text: str, funcs: Container[str],
          left: str = "{{", right: str = "}}") -> dict[str, ListNode]:
    """Parse ``text``; raise ParseError with Go's message."""
    return Parser(name, text, funcs, left, right).parse()
