"""The catalog prefix's registrations indexed by service name: a change costs O(its service).

``ServiceIndex`` listens to the ``RangeCache`` of the catalog prefix. For each group of keys
the cache reports changed (one service's ``P/<service>/…`` keys, or the flat layout's
``P/<ip>:<port>`` keys), it parses that group again — unchanged keys keep their parsed
instance — and recomputes only the services those keys register. Terms:

- a service's *version* is the etcd revision of the last change to its instances; a name
  with no instance has the *floor*: the revision of the last full read or removal;
- ``seq`` numbers every state the index publishes, so answers only ever move forward;
- a query's own version (``Answers``) moves only when that query's data changes: a flap of
  an instance a query filters out wakes nothing, and a change to one service wakes no
  query of another (they wait on ``signal.changed(name)``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ctmpl.change_signal import ChangeSignal
from ctmpl.model import Instance, ServiceSummary
from ctmpl.sources.etcd_cache import RangeCache
from ctmpl.sources.registrations import EntryParser

SUMMARY = "\0services"  # the signal name of services(): names and their tags

_T = TypeVar("_T")
Parsed = dict[bytes, tuple[bytes, Instance | None]]  # key -> (value, instance)


@dataclass(frozen=True, eq=False)
class ServiceState:
    """Every valid instance of one service name (sorted) as of ``version``."""

    version: int
    seq: int
    instances: tuple[Instance, ...]


class Summary:
    """``services()`` as of ``version``; the tuple is built on first use."""

    __slots__ = ("_data", "parts", "seq", "version")

    def __init__(self, version: int, seq: int, parts: Mapping[str, ServiceSummary]) -> None:
        self.version, self.seq, self.parts = version, seq, parts
        self._data: tuple[ServiceSummary, ...] | None = None

    @property
    def data(self) -> tuple[ServiceSummary, ...]:
        """One entry per service name, sorted by name."""
        if self._data is None:
            self._data = tuple(self.parts[name] for name in sorted(self.parts))
        return self._data


@dataclass(frozen=True)
class IndexView:
    """The index at one moment (a render's pin holds one; later changes copy)."""

    states: Mapping[str, ServiceState]
    summary: Summary
    floor: ServiceState  # the state of every name with no instance

    def service(self, name: str) -> ServiceState:
        """The state of one service name."""
        return self.states.get(name, self.floor)


def _order(inst: Instance) -> tuple[str, str, str, int]:
    return inst.Node, inst.ID, inst.Address, inst.Port


class ServiceIndex:
    """Service name → its instances, kept current from the changed groups only."""

    def __init__(
        self, cache: RangeCache, parser: EntryParser, on_empty: Callable[[], None]
    ) -> None:
        self._cache = cache
        self._parser = parser
        self._on_empty = on_empty
        self._parsed: dict[bytes, Parsed] = {}  # group -> its keys, parsed
        self._names_of: dict[bytes, frozenset[str]] = {}  # group -> names it registers
        self._groups_of: dict[str, set[bytes]] = {}  # name -> groups that register it
        self._states: dict[str, ServiceState] = {}
        self._shared = False  # an IndexView holds self._states: copy it before changing it
        self._seq = 0
        self._floor = ServiceState(0, 0, ())
        self._summary = Summary(0, 0, {})
        self.signal = ChangeSignal()
        self.parsed = 0  # keys parsed so far: the work changes cost (tests count it)
        cache.listen(self)
        if cache.index:  # another query over the same range has read it already
            self.changed(tuple(cache.view(frozen=False).groups), cache.index, full=True)

    @property
    def ready(self) -> bool:
        """True once the range has been read."""
        return self._cache.index != 0

    def view(self, *, frozen: bool = True) -> IndexView:
        """The index now; ``frozen``: later changes copy rather than alter it."""
        self._shared |= frozen
        return IndexView(self._states, self._summary, self._floor)

    def state_changed(self) -> None:
        """The cache's watch failed or came back: every waiting query looks again."""
        self.signal.touch_all()

    def changed(self, groups: Collection[bytes], revision: int, full: bool) -> None:
        """Parse the changed groups again; publish the services whose instances differ."""
        names: set[str] = set()
        for group in groups:
            names |= self._reparse(group)
        updates: dict[str, ServiceState | None] = {}
        for name in names:
            instances = self._instances_of(name)
            old = self._states.get(name)
            if (old.instances if old else ()) != instances:
                self._seq += 1
                updates[name] = ServiceState(revision, self._seq, instances) if instances else None
        if full or None in updates.values():
            self._seq += 1
            self._floor = ServiceState(revision, self._seq, ())
        if updates:
            if self._shared:
                self._states, self._shared = dict(self._states), False
            for name, state in updates.items():
                if state is None:
                    self._states.pop(name, None)
                else:
                    self._states[name] = state
        touched = list(updates)
        if self._update_summary(touched, revision):
            touched.append(SUMMARY)
        self.signal.touch(touched)
        if self._cache.empty:
            self._on_empty()

    def _reparse(self, group: bytes) -> set[str]:
        """Parse one group again (unchanged keys are not); the names it did or does hold."""
        old = self._parsed.get(group, {})
        parsed: Parsed = {}
        for key, value in self._cache.group(group).items():
            hit = old.get(key)
            if hit is None or hit[0] != value:
                hit = (value, self._parser.parse(key, value))
                self.parsed += 1
            parsed[key] = hit
        names = frozenset(inst.Name for _, inst in parsed.values() if inst is not None)
        before = self._names_of.get(group, frozenset())
        _put(self._parsed, group, parsed)
        _put(self._names_of, group, names)
        for name in before - names:
            self._groups_of[name].discard(group)
            if not self._groups_of[name]:
                del self._groups_of[name]
        for name in names - before:
            self._groups_of.setdefault(name, set()).add(group)
        return set(before | names)

    def _instances_of(self, name: str) -> tuple[Instance, ...]:
        found = [
            inst
            for group in self._groups_of.get(name, ())
            for _, inst in self._parsed[group].values()
            if inst is not None and inst.Name == name
        ]
        return tuple(sorted(found, key=_order))

    def _update_summary(self, names: Collection[str], revision: int) -> bool:
        """Bring the services() entries of ``names`` up to date; True when one moved."""
        parts = self._summary.parts
        moved: dict[str, ServiceSummary] | None = None
        for name in names:
            state = self._states.get(name)
            entry = None
            if state is not None:
                tags = sorted({tag for inst in state.instances for tag in inst.Tags})
                entry = ServiceSummary(name, tuple(tags))
            if parts.get(name) != entry:
                moved = dict(parts) if moved is None else moved
                if entry is None:
                    del moved[name]
                else:
                    moved[name] = entry
        if moved is None and self._summary.version:
            return False
        self._seq += 1
        self._summary = Summary(revision, self._seq, parts if moved is None else moved)
        return True


def _put(table: dict[bytes, _T], key: bytes, value: _T) -> None:
    if value:
        table[key] = value
    else:
        table.pop(key, None)


class Answers:
    """Each query's last data and its own version, which moves only when the data does."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, object, int]] = {}  # key -> (seq, data, version)
        self.computed = 0  # answers computed (not reused): the work changes cost

    def get(
        self, key: str, seq: int, version: int, compute: Callable[[], object]
    ) -> tuple[object, int]:
        """(data, version) of query ``key`` for a source state (``seq``, ``version``)."""
        last = self._last.get(key)
        if last is not None and last[0] == seq:
            return last[1], last[2]
        data = compute()
        self.computed += 1
        if last is not None and data == last[1]:
            data, version = last[1], last[2]  # same data: same version, same object
        if last is None or seq > last[0]:  # an older pinned state never replaces a newer one
            self._last[key] = (seq, data, version)
        return data, version
