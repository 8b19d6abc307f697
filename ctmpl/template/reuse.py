"""``{% reuse key %}…{% endreuse %}``: a block rendered again only when what it reads changed.

A template over thousands of services writes one block per service; after a change to one
service the others would render exactly as before. A *reused block* keeps its output from
the last complete render, per call site and ``key`` (e.g. the service name), together with
what it read:

- the value of every variable its body names (``instances``, ``svc``, ``domain``, …);
- every data function call it made (``service()``, ``key()``, …) and the data it got.

When all of them are the same now (the same object, or equal and of the same type), the
block's output is reused and its calls are recorded again (so its queries stay watched and
its instances are counted by the shrink guard); otherwise the body renders. The output is
byte for byte what rendering the body gives: a block that reads ``env()``, ``loop``, a
``namespace``, a macro or the ``random`` filter renders every time. A body must only
produce text: its ``set``s stay inside it, and a namespace assignment or a call of a
mutating method (``append``, ``update``, …) in it is a syntax error.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Undefined
from markupsafe import Markup

from ctmpl.errors import TemplateError
from ctmpl.template.block_scope import find, free_names, refuse_side_effects
from ctmpl.template.data import DataFunctions, Recording, Use

# Types whose values cannot change: scalars, and frozen dataclasses once seen.
_IMMUTABLE: set[type] = {str, int, float, bool, type(None), bytes, Markup}
_ENTER, _LEAVE = "reuse_enter", "reuse_leave"  # internal filters (see ReuseExtension)
_VOLATILE_NAMES = frozenset({"loop", "lipsum"})  # a new value on every use
_UNDEFINED = object()  # what an undefined variable counts as (StrictUndefined cannot compare)
_UNCOMPARABLE = object()  # a variable whose value cannot be kept to compare with later


@dataclass
class ReuseStats:
    """Blocks of one render: reused from the last render, or rendered."""

    reused: int = 0
    rendered: int = 0


@dataclass(frozen=True)
class _Entry:
    inputs: tuple[Any, ...]
    uses: tuple[Use, ...]
    output: str


@dataclass
class BlockCache:
    """Outputs of the last complete render's blocks, by (call site, key)."""

    previous: dict[tuple[int, Hashable], _Entry] = field(default_factory=dict)
    current: dict[tuple[int, Hashable], _Entry] = field(default_factory=dict)

    def end(self, complete: bool) -> None:
        """After a render: a complete one replaces what is kept; any other is forgotten."""
        if complete:
            self.previous = self.current
        self.current = {}


class ReuseExtension(Extension):
    """The ``reuse`` tag; ``session`` is set by the engine around each render."""

    tags = {"reuse"}  # noqa: RUF012 (Extension declares it so)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.sites = 0
        self.cache = BlockCache()
        self.session: Session | None = None
        # Only compiled reuse blocks can pass this: a template cannot reach it.
        self.token = object()
        # Filters are called directly by compiled code (calls go through the sandbox's
        # checks, which cost more than a reused block itself).
        environment.filters[_ENTER] = self._enter
        environment.filters[_LEAVE] = self._leave

    def parse(self, parser: Parser) -> list[nodes.Node]:
        """``reuse KEY`` … ``endreuse``: look the block up; on a miss render and keep it.

        Compiles to ``{% set out = KEY | enter(…) %}{% if out is none %}{% set out |
        leave %}BODY{% endset %}{% endif %}{{ out }}``: inline, no macro per use.
        """
        lineno = next(parser.stream).lineno
        key = parser.parse_expression()
        body = parser.parse_statements(("name:endreuse",), drop_needle=True)
        refuse_side_effects(parser, body)
        names = sorted(free_names(body))
        volatile = any(n.name == "random" for n in find(body, nodes.Filter)) or \
            bool(_VOLATILE_NAMES & set(names))
        self.sites += 1
        out = f"_reuse_{self.sites}"  # a name no template is expected to use
        inputs = nodes.Tuple([nodes.Name(n, "load") for n in names], "load")
        token = self.attr("token", lineno)
        enter = nodes.Filter(key, _ENTER, [token, nodes.Const(self.sites),
                                           nodes.Const(volatile), inputs], [], None, None)
        leave = nodes.Filter(None, _LEAVE, [token], [], None, None)
        missed = nodes.Test(nodes.Name(out, "load"), "none", [], [], None, None)
        result: list[nodes.Node] = [
            nodes.Assign(nodes.Name(out, "store"), enter),
            nodes.If(missed, [nodes.AssignBlock(nodes.Name(out, "store"), leave, body)], [], []),
            nodes.Output([nodes.Name(out, "load")]),
        ]
        for node in result:
            node.set_lineno(lineno)
        return result

    def _enter(self, key: Any, token: object, site: int, volatile: bool,
               inputs: tuple[Any, ...]) -> str | None:
        _check(token is self.token)
        if self.session is None:  # rendered outside the engine: nothing is kept
            return None
        return self.session.enter(site, None if volatile else key, inputs)

    def _leave(self, output: str, token: object) -> str:
        _check(token is self.token)
        return output if self.session is None else self.session.leave(output)


def _check(ok: bool) -> None:
    if not ok:
        raise TemplateError("reuse: the reuse filters are internal to {% reuse %} blocks")


class Session:
    """One render's use of the block cache."""

    def __init__(self, cache: BlockCache, data: DataFunctions, stable: frozenset[int]) -> None:
        self.cache = cache
        self.data = data
        self.stats = ReuseStats()
        self._stable = stable  # ids of functions that are the same object in every render
        self._open: list[tuple[tuple[int, Hashable] | None, tuple[Any, ...] | None,
                               Recording]] = []

    def enter(self, site: int, key: Any, inputs: tuple[Any, ...]) -> str | None:
        """The kept output when nothing the block reads changed; else None (render it).

        ``key`` None: the block is never kept.
        """
        slot: tuple[int, Hashable] | None = None
        if key is not None:
            try:
                slot = (site, key)
                entry = self.cache.previous.get(slot)
            except TypeError:  # an unhashable key: render every time
                slot, entry = None, None
            if slot is not None and entry is not None and self._unchanged(entry, inputs):
                for use in entry.uses:
                    self.data.replay(use)
                self.cache.current[slot] = entry
                self.stats.reused += 1
                return entry.output
        # Kept as they are now, before the body runs.
        frozen = self._freeze(inputs) if slot is not None else None
        recording = Recording()
        self.data.recordings.append(recording)
        self._open.append((slot, frozen, recording))
        return None

    def leave(self, output: str) -> str:
        """The block rendered: keep its output with what it read."""
        slot, frozen, recording = self._open.pop()
        self.data.recordings.remove(recording)
        if slot is not None and frozen is not None and not recording.volatile:
            self.cache.current[slot] = _Entry(frozen, tuple(recording.uses), output)
        self.stats.rendered += 1
        return output

    def _unchanged(self, entry: _Entry, inputs: tuple[Any, ...]) -> bool:
        for kept, value in zip(entry.inputs, inputs, strict=True):
            # Usually the very same object (an unchanged service's data); else compare.
            if kept is not value and not same(kept, self._frozen(value)):
                return False
        if not entry.uses:
            return True
        peek = self.data.peek
        return all(same(peek(use.query), use.value) for use in entry.uses)

    def _freeze(self, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Inputs as values that cannot change later; None when one cannot be compared."""
        frozen = tuple(map(self._frozen, inputs))
        return None if any(item is _UNCOMPARABLE for item in frozen) else frozen

    def _frozen(self, value: Any) -> Any:
        item = _frozen(value)
        if item is None and value is not None:
            if id(value) in self._stable:
                return value  # the same object in every render
            if isinstance(getattr(value, "__self__", None), DataFunctions):
                return (DataFunctions, value.__name__)  # a data function: calls are replayed
            return _UNCOMPARABLE
        return item


def same(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` render alike: the same object, or equal and of one type."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(map(same, a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


def _frozen(value: Any) -> Any:
    """An immutable copy of ``value`` to compare with later; None when there is none."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is tuple and all(type(v) in _IMMUTABLE for v in value):
        return value  # the usual case: a service's instances
    if isinstance(value, Undefined):
        return _UNDEFINED
    if kind is tuple or kind is list:
        items = tuple(_frozen(v) for v in value)
        if any(f is None and v is not None for f, v in zip(items, value, strict=True)):
            return None
        return items if kind is tuple else (list, items)
    if kind is dict:
        pairs = _frozen(tuple(value.items()))
        return None if pairs is None else (dict, pairs)
    params = getattr(kind, "__dataclass_params__", None)
    if params is not None and params.frozen:  # catalog data: Instance, ServiceSummary, …
        _IMMUTABLE.add(kind)
        return value
    return None
