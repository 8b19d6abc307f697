"""The executor of Go's text/template: walks a parsed tree and writes text.

Follows Go's exec.go: variables live until the ``{{end}}`` of their block, ``range`` over
maps is in sorted key order, ``break``/``continue`` leave the innermost range, templates
run with their own ``$``, and errors carry the position and text of the node being
evaluated: ``template: NAME:LINE:COL: executing "T" at <node>: message``.
Expressions are evaluated by :class:`ctmpl.gotemplate.evaluate.Evaluator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ctmpl.gotemplate import nodes as n
from ctmpl.gotemplate.calls import ExecError, GoFunc
from ctmpl.gotemplate.evaluate import Evaluator
from ctmpl.gotemplate.fmtfloat import go_float
from ctmpl.gotemplate.fmtvalue import format_mapping_key, quote
from ctmpl.gotemplate.gofmt import sprint
from ctmpl.gotemplate.reuse import Plan, Planner, inputs, slot_key
from ctmpl.gotemplate.values import (
    MISSING,
    NIL,
    GoList,
    GoMap,
    GoStruct,
    NilPtr,
    truth,
    type_name,
)

if TYPE_CHECKING:
    from ctmpl.template.reuse import Session

MAX_DEPTH = 200


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State(Evaluator):
    """One execution: output, variables and the node being evaluated (for errors)."""

    def __init__(self, text: str, name: str, trees: Mapping[str, n.ListNode],
                 funcs: Mapping[str, GoFunc], missing_key_error: bool = False,
                 *, reuse: tuple[Planner, Session] | None = None) -> None:
        self.text = text
        self.parse_name = name
        self.trees = trees
        self.funcs = funcs
        self.missing_key_error = missing_key_error
        self.tmpl_name = name
        self.out: list[str] = []
        self.vars: list[list[Any]] = []
        self.node: n.Node | None = None
        self.depth = 0
        self.reuse = reuse  # keeps unchanged range iterations (ctmpl.gotemplate.reuse)
        self._walkers: dict[type, Callable[[Any, Any], None]] = {
            n.TextNode: self._walk_text,
            n.ListNode: self._walk_list,
            n.ActionNode: self._walk_action,
            n.IfNode: self.walk_if_or_with,
            n.WithNode: self.walk_if_or_with,
            n.RangeNode: self.walk_range,
            n.TemplateNode: self.walk_template,
            n.BreakNode: self._walk_break,
            n.ContinueNode: self._walk_continue,
            n.CommentNode: self._walk_comment,
        }

    def error(self, message: str) -> ExecError:
        """Go's state.errorf: location and context of the current node."""
        if self.node is None:
            return ExecError(f"template: {self.tmpl_name}: {message}")
        pos = self.node.pos
        line_start = self.text.rfind("\n", 0, pos) + 1
        line = self.text.count("\n", 0, pos) + 1
        col = len(self.text[line_start:pos].encode("utf-8"))
        location = f"{self.parse_name}:{line}:{col}"
        return ExecError(f'template: {location}: executing "{self.tmpl_name}" at '
                         f"<{self.node}>: {message}")

    def execute(self, name: str, dot: Any) -> str:
        """Run template ``name`` with ``dot``; return the text it wrote."""
        root = self.trees.get(name)
        if root is None:
            raise ExecError(f"template: no template {quote(name)} associated with template "
                            f"{quote(self.parse_name)}")
        saved = (self.out, self.vars, self.tmpl_name, self.node)
        self.out, self.vars, self.tmpl_name = [], [["$", dot]], name
        try:
            self.walk(dot, root)
            return "".join(self.out)
        finally:
            self.out, self.vars, self.tmpl_name, self.node = saved

    # -- statements ----------------------------------------------------------------------

    def walk(self, dot: Any, node: n.Node) -> None:
        """Execute one node."""
        self.node = node
        walker = self._walkers.get(type(node))
        if walker is None:
            raise self.error(f"unknown node: {node}")
        walker(dot, node)

    def _walk_text(self, dot: Any, node: n.TextNode) -> None:
        self.out.append(node.text)

    def _walk_list(self, dot: Any, node: n.ListNode) -> None:
        walkers, out = self._walkers, self.out
        for child in node.nodes:
            kind = type(child)
            if kind is n.TextNode:
                out.append(child.text)  # type: ignore[attr-defined]
                continue
            self.node = child
            walkers[kind](dot, child)

    def _walk_action(self, dot: Any, node: n.ActionNode) -> None:
        fields = node.fields
        if fields is not None:
            # {{ .A.B }} on structs: plain attribute reads. Anything else (maps, nil, methods,
            # unknown fields) takes the general path below, which also reports errors.
            value = dot
            for name in fields:
                if not isinstance(value, GoStruct) or value.go_methods or \
                        name not in value.go_fields:
                    break
                value = getattr(value, name)
            else:
                self.print_value(node, MISSING if value is NIL else value)
                return
        if node.variable is not None:
            for entry in reversed(self.vars):
                if entry[0] == node.variable:
                    self.print_value(node, MISSING if entry[1] is NIL else entry[1])
                    return
        value = self.eval_pipeline(dot, node.pipe)
        if not node.pipe.decl:
            self.print_value(node, value)

    def _walk_break(self, dot: Any, node: n.BreakNode) -> None:
        raise _Break

    def _walk_continue(self, dot: Any, node: n.ContinueNode) -> None:
        raise _Continue

    def _walk_comment(self, dot: Any, node: n.CommentNode) -> None:
        pass

    def print_value(self, node: n.Node, value: Any) -> None:
        """Write ``value`` as fmt.Fprint would."""
        kind = type(value)
        if kind is str:
            self.out.append(value)
        elif kind is int:
            self.out.append(str(value))
        elif kind is float:
            self.out.append(go_float(value))
        elif value is MISSING:
            self.out.append("<no value>")
        elif callable(value) and not isinstance(value, GoStruct | GoMap | GoList):
            self.node = node
            raise self.error(f"can't print {node} of type {type_name(value)}")
        elif isinstance(value, GoStruct):
            self.out.append(sprint([value])[1:])  # printed through the pointer: {…}, not &{…}
        else:
            self.out.append(sprint([value]))

    def walk_if_or_with(self, dot: Any, node: n.BranchNode) -> None:
        """``if`` and ``with``: variables declared in the pipeline end with the block."""
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if truth(value):
                self.walk(value if type(node) is n.WithNode else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: n.RangeNode) -> None:
        """``range`` over a slice, a map (sorted keys); ``else`` when there is nothing."""
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            items = self._range_items(value)
            inner = len(self.vars)
            decls = len(node.pipe.decl)
            plan = None if self.reuse is None or not items else self.reuse[0].plan(node)
            try:
                for index, elem in items:
                    if decls:
                        self.vars[-1][1] = elem
                    if decls > 1:
                        self.vars[-2][1] = index
                    try:
                        if plan is None or not self._walk_kept(plan, index, elem, node.list):
                            self.walk(elem, node.list)
                    except _Continue:
                        pass
                    finally:
                        del self.vars[inner:]
                if items:
                    return
            except _Break:
                return
            if node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def _walk_kept(self, plan: Plan, index: Any, elem: Any, body: n.ListNode) -> bool:
        """One iteration of a reusable range: its kept output, or the body run and kept.
        False when the iteration cannot be kept (it is then run as usual)."""
        assert self.reuse is not None
        key = slot_key(index, elem)
        now = None if key is None else inputs(elem, plan.variables, self.vars)
        if now is None:
            return False
        session = self.reuse[1]
        kept = session.enter(plan.site, key, now)
        if kept is None:
            mark = len(self.out)
            self.walk(elem, body)
            kept = session.leave("".join(self.out[mark:]))
            del self.out[mark:]
        self.out.append(kept)
        return True

    def _range_items(self, value: Any) -> list[tuple[Any, Any]] | Any:
        if value is MISSING or value is NIL:
            return []
        if isinstance(value, list | tuple):
            return enumerate(value) if value else []
        if isinstance(value, Mapping):
            return [(k, value[k]) for k in format_mapping_key(value)]
        if isinstance(value, str):
            raise self.error(f"range can't iterate over {value}")
        if value is None or isinstance(value, NilPtr):
            raise self.error("range can't iterate over <nil>")
        raise self.error(f"range can't iterate over {sprint([value])}")

    def walk_template(self, dot: Any, node: n.TemplateNode) -> None:
        """``{{template "name" pipeline}}``: no variables are inherited."""
        if node.name not in self.trees:
            raise self.error(f"template {quote(node.name)} not defined")
        if self.depth >= MAX_DEPTH:
            raise self.error(f"exceeded maximum template depth ({MAX_DEPTH})")
        value = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else MISSING
        saved = (self.vars, self.tmpl_name)
        self.vars, self.tmpl_name = [["$", value]], node.name
        self.depth += 1
        try:
            self.walk(value, self.trees[node.name])
        finally:
            self.depth -= 1
            self.vars, self.tmpl_name = saved
