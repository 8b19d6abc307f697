"""What a ``{% reuse %}`` block reads from outside itself, and what it must not do.

Read at parse time from the block's syntax tree: the variables whose values the cache
compares (``ctmpl.template.reuse``), and the side effects that reusing would skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import nodes
from jinja2.parser import Parser

_MUTATORS = frozenset({"append", "extend", "insert", "pop", "popitem", "remove", "clear",
                       "update", "setdefault", "add", "discard", "sort", "reverse"})


def free_names(body: Sequence[nodes.Node], bound: frozenset[str] = frozenset()) -> set[str]:
    """Variables ``body`` reads from outside itself (a superset: never one too few).

    A name is bound by a ``set`` before it in the same statement list, or by a ``for``
    loop around it; anything else a statement names counts as read.
    """
    free: set[str] = set()
    for node in body:
        if isinstance(node, nodes.Assign):
            free |= _loads(node.node, bound)
            bound = bound | stores(node.target)
        elif isinstance(node, nodes.AssignBlock):
            free |= free_names(node.body, bound)
            free |= _loads(node.filter, bound) if node.filter is not None else set()
            bound = bound | stores(node.target)
        elif isinstance(node, nodes.For):
            free |= _loads(node.iter, bound)
            inner = bound | stores(node.target) | {"loop"}
            free |= _loads(node.test, inner) if node.test is not None else set()
            free |= free_names(node.body, inner) | free_names(node.else_, bound)
        elif isinstance(node, nodes.If):
            free |= _loads(node.test, bound) | free_names(node.body, bound)
            free |= free_names(node.elif_, bound) | free_names(node.else_, bound)
        else:  # output, macros, nested blocks, …: every name they mention
            free |= _loads(node, bound)
    return free


def _loads(node: nodes.Node, bound: frozenset[str]) -> set[str]:
    names = {n.name for n in find([node], nodes.Name) if n.ctx == "load"}
    return names - bound


def stores(target: nodes.Node) -> frozenset[str]:
    return frozenset(n.name for n in find([target], nodes.Name))


def find(body: Sequence[nodes.Node], kind: type[nodes.Node]) -> list[Any]:
    """Every node of ``kind`` in ``body``, the statements themselves included."""
    found: list[Any] = []
    for node in body:
        if isinstance(node, kind):
            found.append(node)
        found.extend(node.find_all(kind))
    return found


def refuse_side_effects(parser: Parser, body: Sequence[nodes.Node]) -> None:
    """A reused block does not run: anything it changes outside itself would not change."""
    for ref in find(body, nodes.NSRef):
        parser.fail(f"reuse: a reused block must not assign {ref.name}.{ref.attr} "
                    "(its output is reused without running it)", ref.lineno)
    for call in find(body, nodes.Call):
        if isinstance(call.node, nodes.Getattr) and call.node.attr in _MUTATORS:
            parser.fail(f"reuse: a reused block must not call .{call.node.attr}() "
                        "(its output is reused without running it)", call.lineno)
