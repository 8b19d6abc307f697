"""``{% reuse for x in items if test %}…{% endreuse %}``: a loop whose unchanged iterations
are not run at all.

A ``{% reuse key %}`` block inside a ``for`` loop still costs its loop iteration: the
loop's test, the lines before the block, the cache lookup. Over a thousand services
that is most of a re-render. The loop form keeps the whole loop's last output, one piece
per iteration, and on the next render runs only the iterations whose inputs changed:

- the loop's *outer inputs* (every variable the body or the test reads that the loop does
  not bind), compared once per render: when one differs, every iteration runs;
- the items: when the iterable is the same object as last time (a catalog answer that did
  not change) or holds the same items, the items the test accepted last time are taken
  again without running the test, unless a data function the test called changed;
- per item: the data function calls its iteration made. Only a call whose query changed
  since the last complete render (``Brain.changed_since``) is compared again; the rest are
  known to give the very same objects.

An iteration kept is replayed (its calls recorded again, so its queries stay watched and
its instances are counted by the shrink guard). The output is byte for byte what the
plain ``{% for %}`` loop gives. The body may not use ``loop`` (iterations run out of
order) and, as in every reused block, must only produce text.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctmpl.template.data import Calls, Recording
from ctmpl.template.frozen import same

if TYPE_CHECKING:
    from ctmpl.template.reuse import Session


@dataclass(frozen=True)
class Piece:
    """One iteration's output and the calls it made."""

    output: str
    calls: Calls


@dataclass(frozen=True)
class LoopEntry:
    """What one run of a reused loop kept for the next render."""

    items: tuple[Any, ...]  # every item of the iterable
    inputs: tuple[Any, ...]  # the outer inputs, frozen
    test: Calls | None  # the calls the test made (None: no test, or not reusable)
    accepted: tuple[Any, ...]  # the items the test accepted, in order
    pieces: tuple[Piece | None, ...]  # per accepted item (None: not reusable)


class LoopPlan:
    """One run of a reused loop in one render: which iterations to run, then the output."""

    def __init__(self, session: Session | None, slot: tuple[int, Hashable] | None,
                 iterable: Any, inputs: tuple[Any, ...], has_test: bool) -> None:
        self._session = session
        self._data = session.data if session is not None else None
        self._slot = slot if session is not None else None
        self.items: tuple[Any, ...] = iterable if type(iterable) is tuple else tuple(iterable)
        self._frozen = session.freeze(inputs) if session is not None and slot else None
        prev = session.cache.previous.get(slot) if session is not None and slot else None
        if not isinstance(prev, LoopEntry) or self._frozen is None or \
                not _same_items(prev.inputs, self._frozen):
            prev = None
        self._prev = prev
        self._accepted: list[Any] = []
        self._test: Calls | None = None
        self.needs_test = has_test
        if not has_test:
            self._accepted = list(self.items)
        elif prev is not None and prev.test is not None and _same_items(prev.items, self.items) \
                and self._clean(prev.test):
            assert session is not None
            session.data.replay(prev.test)
            self._test, self._accepted = prev.test, list(prev.accepted)
            self.needs_test = False
        self._pieces: list[str] = []
        self._kept: list[Piece | None] = []
        self._todo: list[int] = []  # indexes in the accepted items of those that must run
        self._ran = 0  # how many of them ran
        self._recording: Recording | None = None

    # -- the test (only when it must run) ------------------------------------------------

    def candidates(self) -> Iterator[Any]:
        """Every item, for the template to test (each accepted one is passed to accept);
        nothing when the test need not run."""
        if not self.needs_test:
            return
        recording = self._open()
        yield from self.items
        self._close(recording)
        self._test = recording.calls()
        if self._test is None:
            self._slot = None

    def accept(self, item: Any) -> str:
        """``item`` passed the test (the empty string: nothing to write)."""
        self._accepted.append(item)
        return ""

    # -- the body (only for the iterations that must run) ---------------------------------

    def todo(self) -> Iterator[Any]:
        """The accepted items whose iteration must run; kept ones are replayed."""
        self._plan()
        for index in self._todo:
            self._recording = self._open()
            yield self._accepted[index]
        self._recording = None

    def done(self, output: str) -> str:
        """The iteration just yielded by ``todo`` rendered ``output`` (the empty string:
        the loop writes every output at its end)."""
        recording = self._recording
        assert recording is not None
        self._close(recording)
        index = self._todo[self._ran]
        self._ran += 1
        self._pieces[index] = output
        calls = recording.calls()
        self._kept[index] = None if calls is None else Piece(output, calls)
        if self._session is not None:
            self._session.stats.rendered += 1
        return ""

    def output(self) -> str:
        """The loop's output; what the next render may reuse is kept."""
        session = self._session
        if session is not None and self._slot is not None and self._frozen is not None:
            session.cache.current[self._slot] = LoopEntry(
                self.items, self._frozen, self._test, tuple(self._accepted),
                tuple(self._kept))
        return "".join(self._pieces)

    # -- helpers -------------------------------------------------------------------------

    def _plan(self) -> None:
        """Which accepted items must run; the kept pieces of the others are replayed."""
        accepted = self._accepted
        prev, session = self._prev, self._session
        if prev is None or session is None:
            self._pieces, self._kept = [""] * len(accepted), [None] * len(accepted)
            self._todo = list(range(len(accepted)))
            return
        if len(prev.accepted) == len(accepted) and all(map(operator.is_, prev.accepted,
                                                           accepted)):
            pieces: list[Piece | None] = list(prev.pieces)  # the same items, in order
        else:
            pieces = self._match(prev)
        # Only a piece that made a call whose query changed is compared (``Session.dirty``;
        # None: not known, compare them all).
        dirty, unchanged = session.dirty, session.unchanged
        if dirty is None:
            todo = [i for i, p in enumerate(pieces) if p is None or not unchanged(p.calls)]
        else:
            todo = [i for i, p in enumerate(pieces) if p is None or (
                not p.calls.keys.isdisjoint(dirty) and not unchanged(p.calls))]
        for index in todo:
            pieces[index] = None
        kept = [p for p in pieces if p is not None]
        session.data.replay(*(p.calls for p in kept))
        session.stats.reused += len(kept)
        self._kept, self._todo = pieces, todo
        self._pieces = [p.output if p is not None else "" for p in pieces]

    def _match(self, prev: LoopEntry) -> list[Piece | None]:
        """The kept piece of each accepted item, by position or else by value."""
        old, pieces = prev.accepted, prev.pieces
        by_item: dict[Any, Piece | None] | None = None
        found: list[Piece | None] = []
        for index, item in enumerate(self._accepted):
            if index < len(old) and (old[index] is item or same(old[index], item)):
                found.append(pieces[index])
                continue
            if by_item is None:
                by_item = _index(old, pieces)
            try:
                found.append(by_item.get(item))
            except TypeError:  # an unhashable item
                found.append(None)
        return found

    def _clean(self, calls: Calls) -> bool:
        assert self._session is not None
        return self._session.unchanged(calls)

    def _open(self) -> Recording:
        recording = Recording()
        if self._data is not None:
            self._data.recordings.append(recording)
        return recording

    def _close(self, recording: Recording) -> None:
        if self._data is not None:
            self._data.recordings.remove(recording)


def _index(items: tuple[Any, ...], pieces: tuple[Piece | None, ...]) -> dict[Any, Piece | None]:
    """Pieces by item (equal items render alike); unhashable items are left out."""
    found: dict[Any, Piece | None] = {}
    for item, piece in zip(items, pieces, strict=True):
        with contextlib.suppress(TypeError):
            found.setdefault(item, piece)
    return found


def _same_items(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The same items, each the same object or equal and of one type."""
    if a is b:
        return True
    if len(a) != len(b):
        return False
    return all(x is y or same(x, y) for x, y in zip(a, b, strict=True))
