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

``{% reuse for x in items if test %}…{% endreuse %}`` is the loop form: a ``for`` loop whose
unchanged iterations do not run at all (``ctmpl.template.reuse_loop``).

Which kept data a render must compare: the calls whose query changed in the brain since
the last complete render (``Brain.changed_since``); the others give the very objects they
gave then. With a catalog that pins a version per render, or when that is not known, every
call is compared.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from ctmpl.errors import TemplateError
from ctmpl.template.block_scope import find, free_names, refuse_side_effects, stores
from ctmpl.template.data import Calls, DataFunctions, Recording
from ctmpl.template.frozen import frozen, same
from ctmpl.template.reuse_loop import LoopPlan

_ENTER, _LEAVE = "reuse_enter", "reuse_leave"  # internal filters (see ReuseExtension)
# The loop form's internal filters: plan, test each item, accept one, the items to run, one
# item's output, the loop's output.
_LOOP, _TEST, _ACCEPT, _TODO, _DONE, _OUTPUT = (
    "reuse_loop", "reuse_test", "reuse_accept", "reuse_todo", "reuse_done", "reuse_output")
_VOLATILE_NAMES = frozenset({"loop", "lipsum"})  # a new value on every use
_UNCOMPARABLE = object()  # a variable whose value cannot be kept to compare with later


@dataclass
class ReuseStats:
    """Blocks of one render: reused from the last render, or rendered."""

    reused: int = 0
    rendered: int = 0


@dataclass(frozen=True)
class _Entry:
    inputs: tuple[Any, ...]
    calls: Calls
    output: str


@dataclass
class BlockCache:
    """Outputs of the last complete render's blocks, by (call site, key)."""

    previous: dict[tuple[int, Hashable], Any] = field(default_factory=dict)
    current: dict[tuple[int, Hashable], Any] = field(default_factory=dict)
    version: int | None = None  # the brain's version at the render ``previous`` is from
    pending: int | None = None  # the brain's version at the render now running

    def end(self, complete: bool) -> None:
        """After a render: a complete one replaces what is kept; any other is forgotten."""
        if complete:
            self.previous, self.version = self.current, self.pending
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
        environment.filters[_LOOP] = self._loop
        environment.filters[_TEST] = lambda plan, token: self._plan(plan, token).candidates()
        environment.filters[_ACCEPT] = lambda item, token, plan: self._plan(
            plan, token).accept(item)
        environment.filters[_TODO] = lambda plan, token: self._plan(plan, token).todo()
        environment.filters[_DONE] = lambda out, token, plan: self._plan(
            plan, token).done(out)
        environment.filters[_OUTPUT] = lambda plan, token: self._plan(plan, token).output()

    def parse(self, parser: Parser) -> list[nodes.Node]:
        """``reuse KEY`` … ``endreuse``: look the block up; on a miss render and keep it.

        Compiles to ``{% set out = KEY | enter(…) %}{% if out is none %}{% set out |
        leave %}BODY{% endset %}{% endif %}{{ out }}``: inline, no macro per use.
        """
        lineno = next(parser.stream).lineno
        if parser.stream.current.test("name:for"):
            return self._parse_loop(parser, lineno)
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

    def _parse_loop(self, parser: Parser, lineno: int) -> list[nodes.Node]:
        """``reuse for TARGET in ITER [if TEST]`` … ``endreuse``.

        Compiles to: the plan (``ITER | loop(…)``); a loop over the items the test must
        see, accepting those that pass (only when the test must run); a loop over the
        items whose iteration must run, each body's output handed to the plan; the output.
        """
        next(parser.stream)
        target = parser.parse_assign_target(extra_end_rules=("name:in",))
        parser.stream.expect("name:in")
        iterable = parser.parse_tuple(with_condexpr=False)
        test = parser.parse_expression() if parser.stream.skip_if("name:if") else None
        body = parser.parse_statements(("name:endreuse",), drop_needle=True)
        tested: list[nodes.Node] = [test] if test is not None else []
        refuse_side_effects(parser, [*body, *tested])
        bound = stores(target)
        names = free_names(body, bound) | free_names(
            [nodes.Output(tested)], bound) if tested else free_names(body, bound)
        for node in find([*body, *tested], nodes.Name):
            if node.name == "loop" and node.ctx == "load" and "loop" in names:
                parser.fail("reuse for: the body must not use loop (iterations run only "
                            "when they changed, out of order)", node.lineno)
        volatile = any(n.name == "random" for n in find([*body, *tested], nodes.Filter)) or \
            "lipsum" in names
        self.sites += 1
        plan, item = nodes.Name(f"_reuse_plan_{self.sites}", "load"), f"_reuse_item_{self.sites}"
        token = self.attr("token", lineno)

        def bind() -> nodes.Node:
            return nodes.Assign(copy.deepcopy(target), nodes.Name(item, "load"))

        def call(value: nodes.Expr | None, name: str, *args: nodes.Expr) -> nodes.Filter:
            return nodes.Filter(value, name, [token, *args], [], None, None)

        inputs = nodes.Tuple([nodes.Name(n, "load") for n in sorted(names)], "load")
        result: list[nodes.Node] = [nodes.Assign(
            nodes.Name(plan.name, "store"),
            call(iterable, _LOOP, nodes.Const((self.sites, volatile, test is not None)),
                 inputs))]
        if test is not None:
            accept = nodes.Output([call(nodes.Name(item, "load"), _ACCEPT, plan)])
            result.append(nodes.For(nodes.Name(item, "store"), call(plan, _TEST), [
                bind(), nodes.If(test, [accept], [], [])], [], None, False))
        done = nodes.AssignBlock(nodes.Name(f"_reuse_out_{self.sites}", "store"),
                                 call(None, _DONE, plan), body)
        result.append(nodes.For(nodes.Name(item, "store"), call(plan, _TODO),
                                [bind(), done], [], None, False))
        result.append(nodes.Output([call(plan, _OUTPUT)]))
        for node in result:
            node.set_lineno(lineno)
        return result

    def _loop(self, iterable: Any, token: object, spec: tuple[int, bool, bool],
              inputs: tuple[Any, ...]) -> LoopPlan:
        _check(token is self.token)
        site, volatile, has_test = spec
        session = self.session
        slot = None if session is None or volatile else session.loop_slot(site)
        return LoopPlan(session, slot, iterable, inputs, has_test)

    def _plan(self, plan: Any, token: object) -> LoopPlan:
        _check(token is self.token and isinstance(plan, LoopPlan))
        return plan  # type: ignore[no-any-return]

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
        self._loops: dict[int, int] = {}  # runs of each reused loop so far in this render
        cache.pending = data.version()
        # The queries whose data changed since the kept render (None: compare them all).
        self.dirty = data.changed_since(cache.version)

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
            if slot is not None and isinstance(entry, _Entry) and self._unchanged(entry, inputs):
                self.data.replay(entry.calls)
                self.cache.current[slot] = entry
                self.stats.reused += 1
                return entry.output
        # Kept as they are now, before the body runs.
        kept = self.freeze(inputs) if slot is not None else None
        recording = Recording()
        self.data.recordings.append(recording)
        self._open.append((slot, kept, recording))
        return None

    def loop_slot(self, site: int) -> tuple[int, Hashable]:
        """The cache slot of a reused loop's next run at ``site`` in this render."""
        run = self._loops.get(site, 0)
        self._loops[site] = run + 1
        return (site, run)

    def leave(self, output: str) -> str:
        """The block rendered: keep its output with what it read."""
        slot, kept, recording = self._open.pop()
        self.data.recordings.remove(recording)
        calls = recording.calls()
        if slot is not None and kept is not None and calls is not None:
            self.cache.current[slot] = _Entry(kept, calls, output)
        self.stats.rendered += 1
        return output

    def _unchanged(self, entry: _Entry, inputs: tuple[Any, ...]) -> bool:
        for kept, value in zip(entry.inputs, inputs, strict=True):
            # Usually the very same object (an unchanged service's data); else compare.
            if kept is not value and not same(kept, self._frozen(value)):
                return False
        return self.unchanged(entry.calls)

    def unchanged(self, calls: Calls) -> bool:
        """True when every one of ``calls`` would get the same data now."""
        if not calls.uses or (self.dirty is not None and calls.keys.isdisjoint(self.dirty)):
            return True
        peek = self.data.peek
        return all(same(peek(use.query), use.value) for use in calls.uses)

    def freeze(self, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Inputs as values that cannot change later; None when one cannot be compared."""
        items = tuple(map(self._frozen, inputs))
        return None if any(item is _UNCOMPARABLE for item in items) else items

    def _frozen(self, value: Any) -> Any:
        item = frozen(value)
        if item is None and value is not None:
            if id(value) in self._stable:
                return value  # the same object in every render
            if isinstance(getattr(value, "__self__", None), DataFunctions):
                return (DataFunctions, value.__name__)  # a data function: calls are replayed
            return _UNCOMPARABLE
        return item
