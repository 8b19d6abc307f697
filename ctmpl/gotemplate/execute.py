"""The executor of Go's text/template: walks a parsed tree and writes text.

Follows Go's exec.go: pipelines pass the previous value as the last argument, variables
live until the ``{{end}}`` of their block, ``range`` over maps is in sorted key order,
``and``/``or`` short-circuit and return an operand, and errors carry the position and text
of the node being evaluated: ``template: NAME:LINE:COL: executing "T" at <node>: message``.
Function arguments are checked against the function's Go parameter types, so
``loop (len x)`` fails as in Go (``expected int64; got int``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ctmpl.gotemplate import nodes as n
from ctmpl.gotemplate.gofmt import format_mapping_key, sprint
from ctmpl.gotemplate.values import (
    MISSING,
    NIL,
    GoList,
    GoMap,
    GoStruct,
    Int64,
    Uint64,
    is_nil_ptr,
    truth,
    type_name,
)

MAX_DEPTH = 200


class GoError(Exception):
    """Raised by a template function: becomes ``error calling NAME: message``."""


class ExecError(Exception):
    """An execution error with Go's full message."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass(frozen=True)
class GoFunc:
    """A template function with its Go signature.

    ``params`` are Go type names (``string``, ``int``, ``int64``, ``any`` for interface{},
    ``value`` for the builtins that take any reflect.Value); with ``variadic`` the last
    entry is the element type of the ``...`` parameter.
    """

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: bool = False
    builtin: bool = False


_SCALARS = {"string": str, "float64": float, "bool": bool}


def assignable(value: Any, typ: str) -> bool:
    """Go's AssignableTo for the value kinds templates meet."""
    if typ in ("any", "value"):
        return True
    if typ == "int":
        return isinstance(value, int) and type(value) is int
    if typ == "int64":
        return isinstance(value, Int64)
    if typ == "uint64":
        return isinstance(value, Uint64)
    if typ in _SCALARS:
        return type(value) is _SCALARS[typ]
    name = type_name(value)
    if name == typ:
        return True
    # A named slice type (dependency.ServiceTags) is assignable to its unnamed underlying type.
    return typ == "[]string" and name == "dependency.ServiceTags"


class State:
    """One execution: output, variables and the node being evaluated (for errors)."""

    def __init__(self, text: str, name: str, trees: Mapping[str, n.ListNode],
                 funcs: Mapping[str, GoFunc], missing_key_error: bool = False) -> None:
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

    # -- errors --------------------------------------------------------------------------

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

    # -- entry points --------------------------------------------------------------------

    def execute(self, name: str, dot: Any) -> str:
        """Run template ``name`` with ``dot``; return the text it wrote."""
        root = self.trees.get(name)
        if root is None:
            raise ExecError(f"template: no template {_quote(name)} associated with template "
                            f"{_quote(self.parse_name)}")
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
        if isinstance(node, n.TextNode):
            self.out.append(node.text)
        elif isinstance(node, n.ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, n.ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, n.IfNode | n.WithNode):
            self.walk_if_or_with(node, dot)
        elif isinstance(node, n.RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, n.TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, n.BreakNode):
            raise _Break
        elif isinstance(node, n.ContinueNode):
            raise _Continue
        elif not isinstance(node, n.CommentNode):
            raise self.error(f"unknown node: {node}")

    def print_value(self, node: n.Node, value: Any) -> None:
        """Write ``value`` as fmt.Fprint would."""
        self.node = node
        if value is MISSING:
            self.out.append("<no value>")
        elif isinstance(value, str):
            self.out.append(value)
        elif callable(value) and not isinstance(value, GoStruct | GoMap | GoList):
            raise self.error(f"can't print {node} of type {type_name(value)}")
        else:
            self.out.append(sprint([value]))

    def walk_if_or_with(self, node: n.BranchNode, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if truth(value):
                self.walk(value if isinstance(node, n.WithNode) else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: n.RangeNode) -> None:
        self.node = node
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            items = self._range_items(value)
            inner = len(self.vars)
            try:
                for index, elem in items:
                    if node.pipe.decl:
                        self.vars[-1][1] = elem
                    if len(node.pipe.decl) > 1:
                        self.vars[-2][1] = index
                    try:
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

    def _range_items(self, value: Any) -> list[tuple[Any, Any]]:
        if value is MISSING or value is NIL:
            return []
        if isinstance(value, list | tuple):
            return list(enumerate(value))
        if isinstance(value, Mapping):
            return [(k, value[k]) for k in format_mapping_key(value)]
        if isinstance(value, str) or is_nil_ptr(value):
            raise self.error(f"range can't iterate over {value or '<nil>'}")
        raise self.error(f"range can't iterate over {sprint([value])}")

    def walk_template(self, dot: Any, node: n.TemplateNode) -> None:
        self.node = node
        if node.name not in self.trees:
            raise self.error(f"template {_quote(node.name)} not defined")
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

    # -- expressions ---------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: n.PipeNode) -> Any:
        """A pipeline's value; declared variables are pushed (or assigned)."""
        self.node = pipe
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is NIL:
                value = MISSING
        for var in pipe.decl:
            if pipe.is_assign:
                self._set_var(var.idents[0], value)
            else:
                self.vars.append([var.idents[0], value])
        return value

    def _set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.error(f"undefined variable: {name}")

    def _var(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.error(f"undefined variable: {name}")

    def eval_command(self, dot: Any, cmd: n.CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, n.FieldNode):
            self.node = first
            return self.eval_field_chain(dot, dot, first, first.idents, args=cmd.args, final=final)
        if isinstance(first, n.ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, n.IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, n.PipeNode):
            self._not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, n.VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.node = first
        self._not_a_function(cmd.args, final)
        if isinstance(first, n.BoolNode):
            return first.value
        if isinstance(first, n.DotNode):
            return dot
        if isinstance(first, n.NilNode):
            raise self.error("nil is not a command")
        if isinstance(first, n.NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, n.StringNode):
            return first.text
        raise self.error(f"can't evaluate command {_quote(str(first))}")

    def _not_a_function(self, args: Sequence[n.Node], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            raise self.error(f"can't give argument to non-function {args[0]}")

    def ideal_constant(self, node: n.NumberNode) -> Any:
        self.node = node
        text = node.text
        is_hex = text.lower().lstrip("+-").startswith("0x")
        if node.is_float and not is_hex and not text.startswith("'") and \
                any(c in text for c in ".eEpP"):
            return node.float_value
        if node.is_int:
            return node.int_value
        if node.is_uint:
            raise self.error(f"{text} overflows int")
        return MISSING

    def eval_chain(self, dot: Any, chain: n.ChainNode, args: Sequence[n.Node] | None,
                   final: Any) -> Any:
        self.node = chain
        if isinstance(chain.node, n.NilNode):
            raise self.error(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node, raw=True)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args=args, final=final)

    def eval_variable(self, dot: Any, var: n.VariableNode, args: Sequence[n.Node] | None,
                      final: Any) -> Any:
        self.node = var
        value = self._var(var.idents[0])
        if len(var.idents) == 1:
            self._not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args=args, final=final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: n.Node, idents: Sequence[str],
                         *, args: Sequence[n.Node] | None, final: Any) -> Any:
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, node, receiver, args=None, final=_NO_FINAL)
        return self.eval_field(dot, idents[-1], node, receiver, args=args, final=final)

    def eval_field(self, dot: Any, name: str, node: n.Node, receiver: Any, *,
                   args: Sequence[n.Node] | None, final: Any) -> Any:
        if receiver is MISSING:
            if self.missing_key_error:
                raise self.error(f"nil data; no entry for key {_quote(name)}")
            return MISSING
        if receiver is NIL:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        if isinstance(receiver, GoStruct) or is_nil_ptr(receiver):
            return self._struct_field(dot, name, node, receiver, args=args, final=final)
        if isinstance(receiver, Mapping):
            if has_args:
                raise self.error(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.missing_key_error:
                raise self.error(f"map has no entry for key {_quote(name)}")
            return receiver.zero if isinstance(receiver, GoMap) else NIL
        raise self.error(f"can't evaluate field {name} in type {type_name(receiver)}")

    def _struct_field(self, dot: Any, name: str, node: n.Node, receiver: Any, *,
                      args: Sequence[n.Node] | None, final: Any) -> Any:
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        if is_nil_ptr(receiver):
            raise self.error(f"nil pointer evaluating {type_name(receiver)}.{name}")
        method = receiver.go_methods.get(name)
        if method is not None:
            bound = GoFunc(partial(method.fn, receiver), method.params, method.variadic)
            return self.eval_call(dot, bound, node, name, args=args, final=final)
        if name in receiver.go_fields:
            if has_args:
                raise self.error(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        raise self.error(f"can't evaluate field {name} in type {type_name(receiver)}")

    def eval_function(self, dot: Any, ident: n.IdentifierNode, cmd: n.Node,
                      args: Sequence[n.Node] | None, final: Any) -> Any:
        self.node = ident
        func = self.funcs.get(ident.ident)
        if func is None:
            raise self.error(f"{_quote(ident.ident)} is not a defined function")
        return self.eval_call(dot, func, cmd, ident.ident, args=args, final=final)

    def eval_call(self, dot: Any, func: GoFunc, node: n.Node, name: str, *,
                  args: Sequence[n.Node] | None, final: Any) -> Any:
        args = list(args[1:]) if args is not None else []
        num_in = len(args) + (0 if final is _NO_FINAL else 1)
        params = func.params
        if func.variadic:
            num_fixed = len(params) - 1
            if num_in < num_fixed:
                raise self.error(f"wrong number of args for {name}: want at least {num_fixed} "
                                 f"got {len(args)}")
        else:
            num_fixed = len(params)
            if num_in != num_fixed:
                raise self.error(f"wrong number of args for {name}: want {num_fixed} got "
                                 f"{num_in}")
        if func.builtin and name in ("and", "or"):
            return self._and_or(dot, name, args, final)
        argv: list[Any] = []
        for i, arg in enumerate(args):
            typ = params[i] if i < num_fixed else params[-1]
            argv.append(self.eval_arg(dot, typ, arg))
        if final is not _NO_FINAL:
            typ = params[num_in - 1] if num_in - 1 < num_fixed else params[-1]
            argv.append(self.validate_type(final, typ))
        try:
            result = func.fn(*argv)
        except GoError as exc:
            self.node = node
            raise self.error(f"error calling {name}: {exc}") from None
        except ExecError:
            raise
        except RecursionError:
            raise self.error("exceeded maximum template depth") from None
        return result

    def _and_or(self, dot: Any, name: str, args: Sequence[n.Node], final: Any) -> Any:
        value: Any = MISSING
        for arg in args:
            value = self.eval_arg(dot, "value", arg)
            if truth(value) == (name == "or"):
                return value
        if final is not _NO_FINAL:
            value = self.validate_type(final, "value")
        return value

    def validate_type(self, value: Any, typ: str) -> Any:
        """Go's validateType: nil where allowed, else the value must be assignable."""
        if value is MISSING or value is NIL:
            if typ in ("any",) or typ.startswith(("*", "[]", "map[")):
                return None if typ.startswith("*") else (NIL if typ == "any" else _zero(typ))
            if typ == "value":
                return value
            raise self.error(f"invalid value; expected {typ}")
        if is_nil_ptr(value) and (typ.startswith("*") or typ in ("any", "value")):
            return value
        if not assignable(value, typ):
            raise self.error(f"wrong type for value; expected {typ}; got {type_name(value)}")
        return value

    def eval_arg(self, dot: Any, typ: str, node: n.Node, raw: bool = False) -> Any:
        """An argument node evaluated for a parameter of Go type ``typ``."""
        self.node = node
        if isinstance(node, n.DotNode):
            return dot if raw else self.validate_type(dot, typ)
        if isinstance(node, n.NilNode):
            if typ in ("any", "value") or typ.startswith(("*", "[]", "map[")):
                return NIL if typ in ("any", "value") else None
            raise self.error(f"cannot assign nil to {typ}")
        if isinstance(node, n.FieldNode):
            value = self.eval_field_chain(dot, dot, node, node.idents, args=[node],
                                          final=_NO_FINAL)
        elif isinstance(node, n.VariableNode):
            value = self.eval_variable(dot, node, None, _NO_FINAL)
        elif isinstance(node, n.PipeNode):
            value = self.eval_pipeline(dot, node)
        elif isinstance(node, n.IdentifierNode):
            value = self.eval_function(dot, node, node, None, _NO_FINAL)
        elif isinstance(node, n.ChainNode):
            value = self.eval_chain(dot, node, None, _NO_FINAL)
        else:
            return self._literal(node, typ)
        return value if raw else self.validate_type(value, typ)

    def _literal(self, node: n.Node, typ: str) -> Any:
        if typ in ("any", "value"):
            if isinstance(node, n.BoolNode):
                return node.value
            if isinstance(node, n.NumberNode):
                return self.ideal_constant(node)
            if isinstance(node, n.StringNode):
                return node.text
            raise self.error(f"can't handle assignment of {node} to empty interface argument")
        if typ == "bool":
            if isinstance(node, n.BoolNode):
                return node.value
            raise self.error(f"expected bool; found {node}")
        if typ == "string":
            if isinstance(node, n.StringNode):
                return node.text
            raise self.error(f"expected string; found {node}")
        if typ in ("int", "int64"):
            if isinstance(node, n.NumberNode) and node.is_int:
                return node.int_value if typ == "int" else Int64(node.int_value)
            raise self.error(f"expected integer; found {node}")
        if typ == "uint64":
            if isinstance(node, n.NumberNode) and node.is_uint:
                return Uint64(node.uint_value)
            raise self.error(f"expected unsigned integer; found {node}")
        if typ == "float64":
            if isinstance(node, n.NumberNode) and node.is_float:
                return node.float_value
            raise self.error(f"expected float; found {node}")
        raise self.error(f"can't handle {node} for arg of type {typ}")


def _zero(typ: str) -> Any:
    if typ.startswith("[]"):
        return GoList.of(typ)
    return GoMap.of(typ, None)


def _quote(text: str) -> str:
    from ctmpl.gotemplate.gofmt import quote

    return quote(text)


class _NoFinal:
    def __repr__(self) -> str:
        return "NO_FINAL"


_NO_FINAL: Any = _NoFinal()
