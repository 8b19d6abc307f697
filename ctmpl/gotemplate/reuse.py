"""Range iterations of a Go template rendered again only when what they read changed.

A consul-template template writes one block per service (``{{ range services }}`` …
``{{ range service .Name }}`` …); after a change to one service every other block would
render exactly as before. Jinja templates opt in with ``{% reuse %}``
(:mod:`ctmpl.template.reuse`); a Go template needs no markup, because its language lets the
engine prove when an iteration cannot depend on anything but what it reads.

A ``range`` is *reusable* when its body asks the catalog (calls a data function such as
``service`` or ``key``) or ranges itself — the iterations worth keeping — and cannot have an
effect outside itself or read untracked state: it assigns no variable (``$x = …``), has no
``break``/``continue``, and calls none of ``scratch``, ``env``, ``timestamp`` or
``executeTemplate``, neither directly nor in a ``{{template}}`` it runs.

Each iteration of a reusable range keeps its output from the last complete render, by
element (a service's name, an instance's node and ID, a node's name, a KV key, a map key or
a scalar; otherwise its position), together with what it read:

- the element, as the catalog data it shows;
- the value of every variable the body names that is bound outside it (``$``, ``$domain``,
  the range's own ``$i, $e``);
- every data function call it made and the data it got (:class:`ctmpl.template.data.Use`).

When all of them are the same now, the kept output is written and the calls are recorded
again, so the queries stay watched and the shrink guard still counts the instances; else the
body runs. Either way the bytes are those a render from scratch gives.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ctmpl.gotemplate import nodes as n
from ctmpl.gotemplate.values import MISSING, NIL, GoList, GoMap, GoStruct, Int64, NilPtr, Uint64

# Functions that ask the catalog: a body calling one is worth keeping.
DATA_FUNCTIONS = frozenset({"service", "services", "node", "nodes", "datacenters", "key",
                            "keyOrDefault", "keyExists", "ls", "tree", "file"})
# Functions with effects or untracked inputs: a body calling one renders every time.
UNTRACKED = frozenset({"scratch", "env", "timestamp", "executeTemplate"})

UNFROZEN = object()  # a value that cannot be kept to compare with later
_SCALARS = (str, int, float, bool)
_UNBOUND = ("go:unbound",)  # a variable the body declares itself


@dataclass(frozen=True)
class Plan:
    """A reusable range: its site number and the variables its body names."""

    site: int
    variables: tuple[str, ...]


class Planner:
    """Which ranges of one parsed template are reusable (decided once per range)."""

    def __init__(self, trees: Mapping[str, n.ListNode]) -> None:
        self._trees = trees
        self._plans: dict[int, Plan | None] = {}
        self._keep: list[n.RangeNode] = []  # the ids above stay valid while they live

    def plan(self, node: n.RangeNode) -> Plan | None:
        """The plan of a reusable range; None when it renders every time."""
        try:
            return self._plans[id(node)]
        except KeyError:
            pass
        scan = _Scan(self._trees)
        scan.visit_all(node.list.nodes, own=True)
        plan = None
        if scan.pure and scan.asks:
            plan = Plan(len(self._keep) + 1, tuple(sorted(scan.variables)))
        self._keep.append(node)
        self._plans[id(node)] = plan
        return plan


class _Scan:
    """One walk over a range body (and the templates it runs)."""

    def __init__(self, trees: Mapping[str, n.ListNode]) -> None:
        self.trees = trees
        self.pure = True
        self.asks = False
        self.variables: set[str] = set()
        self._entered: set[str] = set()

    def visit_all(self, items: Iterable[n.Node | None], own: bool) -> None:
        for item in items:
            if item is not None:
                self.visit(item, own)

    def visit(self, node: n.Node, own: bool) -> None:
        """``own``: the node is in the body itself, where outer variables are visible."""
        if isinstance(node, n.IdentifierNode):
            self.asks |= node.ident in DATA_FUNCTIONS
            self.pure &= node.ident not in UNTRACKED
        elif isinstance(node, n.VariableNode):
            if own:
                self.variables.add(node.idents[0])
        elif isinstance(node, n.PipeNode):
            self.pure &= not node.is_assign
            self.visit_all(node.cmds, own)
        elif isinstance(node, n.BreakNode | n.ContinueNode):
            self.pure = False
        elif isinstance(node, n.BranchNode):
            self.asks |= isinstance(node, n.RangeNode)
            self.visit_all((node.pipe, node.list, node.else_list), own)
        elif isinstance(node, n.TemplateNode):
            self.visit_all((node.pipe,), own)
            tree = self.trees.get(node.name)
            if tree is not None and node.name not in self._entered:
                self._entered.add(node.name)
                self.visit(tree, own=False)  # a template sees none of our variables
        elif isinstance(node, n.ListNode):
            self.visit_all(node.nodes, own)
        elif isinstance(node, n.ActionNode):
            self.visit(node.pipe, own)
        elif isinstance(node, n.CommandNode):
            self.visit_all(node.args, own)
        elif isinstance(node, n.ChainNode):
            self.visit(node.node, own)


def slot_key(index: Any, elem: Any) -> Hashable:
    """What identifies an iteration across renders (a collision only costs a render)."""
    if isinstance(elem, GoStruct):
        key = elem.reuse_key()
        if key is not None:
            return key
    elif type(elem) in _SCALARS:
        return ("go:value", elem)
    return ("go:index", index) if type(index) in _SCALARS else None


def freeze(value: Any) -> Any:
    """``value`` as scalars, tuples and frozen catalog data, to compare with later (by
    :func:`ctmpl.template.reuse.same`); UNFROZEN when it cannot be kept."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if value is MISSING:
        return ("go:missing",)
    if value is NIL:
        return ("go:nil",)
    if kind is Int64 or kind is Uint64:
        return ("go:" + kind.go_type, int(value))
    if kind is NilPtr:
        return ("go:nilptr", value.go_type)
    if isinstance(value, GoStruct):
        source = value.reuse_source()
        return UNFROZEN if source is None else ("go:struct", value.go_type, source)
    if isinstance(value, GoList):
        items = tuple(map(freeze, value))
        return UNFROZEN if UNFROZEN in items else ("go:list", value.go_type, items)
    if isinstance(value, GoMap):
        pairs = tuple((k, freeze(v)) for k, v in value.items())
        if any(v is UNFROZEN or type(k) not in _SCALARS for k, v in pairs):
            return UNFROZEN
        return ("go:map", kind.__name__, value.go_type, freeze(value.zero), pairs)
    return UNFROZEN


def inputs(elem: Any, variables: tuple[str, ...], bound: list[list[Any]]) -> tuple[Any, ...] | None:
    """The element and the variables as they are now; None when one cannot be kept."""
    values = [freeze(elem)]
    for name in variables:
        for entry in reversed(bound):
            if entry[0] == name:
                values.append(freeze(entry[1]))
                break
        else:
            values.append(_UNBOUND)
    return None if UNFROZEN in values else tuple(values)
