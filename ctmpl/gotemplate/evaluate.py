"""Expression evaluation of Go's text/template: pipelines, commands, fields, calls.

Follows Go's exec.go: the previous command's value is the last argument of the next,
arguments are checked against the function's Go parameter types (``loop (len x)`` fails with
``expected int64; got int``), a missing map key gives the map's zero value, and every step
records the node it evaluates so an error names the position Go would name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ctmpl.gotemplate import nodes as n
from ctmpl.gotemplate.calls import (
    NO_FINAL,
    Boxed,
    ExecError,
    GoError,
    GoFunc,
    assignable,
    quote_text,
    zero_of,
)
from ctmpl.gotemplate.values import (
    MISSING,
    NIL,
    GoMap,
    GoStruct,
    Int64,
    JSONMap,
    NilPtr,
    Uint64,
    truth,
    type_name,
)

_NILLABLE = ("*", "[]", "map[")


class Evaluator:
    """Expression evaluation; ``State`` adds statements, output and error positions."""

    vars: list[list[Any]]
    node: n.Node | None
    funcs: Mapping[str, GoFunc]
    missing_key_error: bool

    def error(self, message: str) -> ExecError:
        """An error at the current node (see ``State.error``)."""
        raise NotImplementedError

    def eval_pipeline(self, dot: Any, pipe: n.PipeNode) -> Any:
        """A pipeline's value; declared variables are pushed (or assigned)."""
        self.node = pipe
        value: Any = NO_FINAL
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
        kind = type(first)
        if kind is n.FieldNode:
            self.node = first
            return self.eval_field_chain(dot, dot, first, first.idents,  # type: ignore[attr-defined]
                                         args=cmd.args, final=final)
        if kind is n.IdentifierNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)  # type: ignore[arg-type]
        if kind is n.VariableNode:
            return self.eval_variable(dot, first, cmd.args, final)  # type: ignore[arg-type]
        if kind is n.ChainNode:
            return self.eval_chain(dot, first, cmd.args, final)  # type: ignore[arg-type]
        if kind is n.PipeNode:
            self._not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)  # type: ignore[arg-type]
        self.node = first
        self._not_a_function(cmd.args, final)
        if isinstance(first, n.StringNode):
            return first.text
        if isinstance(first, n.NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, n.BoolNode):
            return first.value
        if isinstance(first, n.DotNode):
            return dot
        if isinstance(first, n.NilNode):
            raise self.error("nil is not a command")
        raise self.error(f"can't evaluate command {quote_text(str(first))}")

    def _not_a_function(self, args: Sequence[n.Node], final: Any) -> None:
        if len(args) > 1 or final is not NO_FINAL:
            raise self.error(f"can't give argument to non-function {args[0]}")

    def ideal_constant(self, node: n.NumberNode) -> Any:
        """A number constant passed where any type is allowed: int, or float64 if written so."""
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
            holder = receiver
            receiver = self.eval_field(dot, ident, node, receiver, args=None, final=NO_FINAL)
            if type(holder) is JSONMap and not isinstance(receiver, Mapping | GoStruct):
                # A JSON map's element has Go type interface {} (shown in errors).
                receiver = Boxed(receiver)
        return self.eval_field(dot, idents[-1], node, receiver, args=args, final=final)

    def eval_field(self, dot: Any, name: str, node: n.Node, receiver: Any, *,
                   args: Sequence[n.Node] | None, final: Any) -> Any:
        if type(receiver) is Boxed:
            if receiver.value is NIL:
                raise self.error(f"nil pointer evaluating interface {{}}.{name}")
            raise self.error(f"can't evaluate field {name} in type interface {{}}")
        if isinstance(receiver, GoStruct) and not receiver.go_methods \
                and name in receiver.go_fields:
            if (args is not None and len(args) > 1) or final is not NO_FINAL:
                raise self.error(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        if receiver is MISSING:
            if self.missing_key_error:
                raise self.error(f"nil data; no entry for key {quote_text(name)}")
            return MISSING
        if receiver is NIL:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoStruct | NilPtr) or receiver is None:
            return self._struct_field(dot, name, node, receiver, args=args, final=final)
        if isinstance(receiver, Mapping):
            if (args is not None and len(args) > 1) or final is not NO_FINAL:
                raise self.error(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.missing_key_error:
                raise self.error(f"map has no entry for key {quote_text(name)}")
            return receiver.zero if isinstance(receiver, GoMap) else NIL
        raise self.error(f"can't evaluate field {name} in type {type_name(receiver)}")

    def _struct_field(self, dot: Any, name: str, node: n.Node, receiver: Any, *,
                      args: Sequence[n.Node] | None, final: Any) -> Any:
        if not isinstance(receiver, GoStruct):
            raise self.error(f"nil pointer evaluating {type_name(receiver)}.{name}")
        method = receiver.go_methods.get(name)
        if method is not None:
            bound = GoFunc(partial(method.fn, receiver), method.params, method.variadic)
            return self.eval_call(dot, bound, node, name, args=args, final=final)
        if name in receiver.go_fields:
            if (args is not None and len(args) > 1) or final is not NO_FINAL:
                raise self.error(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        raise self.error(f"can't evaluate field {name} in type {type_name(receiver)}")

    def eval_function(self, dot: Any, ident: n.IdentifierNode, cmd: n.Node,
                      args: Sequence[n.Node] | None, final: Any) -> Any:
        self.node = ident
        func = self.funcs.get(ident.ident)
        if func is None:
            raise self.error(f"{quote_text(ident.ident)} is not a defined function")
        return self.eval_call(dot, func, cmd, ident.ident, args=args, final=final)

    def eval_call(self, dot: Any, func: GoFunc, node: n.Node, name: str, *,
                  args: Sequence[n.Node] | None, final: Any) -> Any:
        args = args[1:] if args is not None else ()
        num_in = len(args) + (0 if final is NO_FINAL else 1)
        params = func.params
        num_fixed = func.fixed
        if func.variadic:
            if num_in < num_fixed:
                raise self.error(f"wrong number of args for {name}: want at least {num_fixed} "
                                 f"got {len(args)}")
            if func.builtin and name in ("and", "or"):
                return self._and_or(dot, name, args, final)
            rest = params[-1]
            argv = [self.eval_arg(dot, params[i] if i < num_fixed else rest, arg)
                    for i, arg in enumerate(args)]
        elif num_in != num_fixed:
            raise self.error(f"wrong number of args for {name}: want {num_fixed} got {num_in}")
        else:
            argv = [self.eval_arg(dot, typ, arg) for typ, arg in zip(params, args, strict=False)]
        if final is not NO_FINAL:
            typ = params[num_in - 1] if num_in - 1 < num_fixed else params[-1]
            argv.append(self.validate_type(final, typ))
        try:
            return func.fn(*argv)
        except GoError as exc:
            self.node = node
            raise self.error(f"error calling {name}: {exc}") from None

    def _and_or(self, dot: Any, name: str, args: Sequence[n.Node], final: Any) -> Any:
        value: Any = MISSING
        for arg in args:
            value = self.eval_arg(dot, "value", arg)
            if truth(value) == (name == "or"):
                return value
        if final is not NO_FINAL:
            value = self.validate_type(final, "value")
        return value

    def validate_type(self, value: Any, typ: str) -> Any:
        """Go's validateType: nil where allowed, else the value must be assignable."""
        if value is MISSING or value is NIL:
            if typ == "value":
                return value
            if typ == "any":
                return NIL
            if typ.startswith(_NILLABLE):
                return NilPtr(typ) if typ.startswith("*") else zero_of(typ)
            raise self.error(f"invalid value; expected {typ}")
        if typ in ("any", "value") or assignable(value, typ):
            return value
        if (value is None or isinstance(value, NilPtr)) and typ.startswith("*"):
            return value
        raise self.error(f"wrong type for value; expected {typ}; got {type_name(value)}")

    def eval_arg(self, dot: Any, typ: str, node: n.Node, raw: bool = False) -> Any:
        """An argument node evaluated for a parameter of Go type ``typ``."""
        self.node = node
        kind = type(node)
        if kind is n.StringNode and typ in ("any", "value", "string"):
            return node.text  # type: ignore[attr-defined]
        if kind is n.FieldNode:
            value = self.eval_field_chain(dot, dot, node, node.idents,  # type: ignore[attr-defined]
                                          args=[node], final=NO_FINAL)
        elif kind is n.VariableNode:
            value = self.eval_variable(dot, node, None, NO_FINAL)  # type: ignore[arg-type]
        elif kind is n.PipeNode:
            value = self.eval_pipeline(dot, node)  # type: ignore[arg-type]
        elif kind is n.IdentifierNode:
            value = self.eval_function(dot, node, node, None, NO_FINAL)  # type: ignore[arg-type]
        elif kind is n.ChainNode:
            value = self.eval_chain(dot, node, None, NO_FINAL)  # type: ignore[arg-type]
        elif kind is n.DotNode:
            value = dot
        elif kind is n.NilNode:
            if typ == "value":
                return MISSING  # reflect.Zero(reflect.Value): the builtin sees no value
            if typ == "any" or typ.startswith(_NILLABLE):
                return NIL if typ == "any" else NilPtr(typ)
            raise self.error(f"cannot assign nil to {typ}")
        else:
            return self._literal(node, typ)
        return value if raw else self.validate_type(value, typ)

    def _literal(self, node: n.Node, typ: str) -> Any:
        if typ in ("any", "value", "string") and isinstance(node, n.StringNode):
            return node.text
        if typ in ("any", "value"):
            if isinstance(node, n.BoolNode):
                return node.value
            if isinstance(node, n.NumberNode):
                return self.ideal_constant(node)
            raise self.error(f"can't handle assignment of {node} to empty interface argument")
        if typ == "bool":
            if isinstance(node, n.BoolNode):
                return node.value
            raise self.error(f"expected bool; found {node}")
        if typ == "string":
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


