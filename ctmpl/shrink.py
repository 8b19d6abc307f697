"""The shrink guard: a render that would suddenly drop most instances is held back.

A registry that restarts without its state, a token that loses read access or a script
that deletes an etcd prefix all answer "no services" for a while. Rendering that answer
empties every upstream at once (issue 17; consul-template does exactly that). The guard
compares the instances a render uses (everything ``service()`` returned) with the last
render that went live for the same destination:

- a render that drops *every* instance, or more than ``max_drop`` of them, is held: the
  last good file stays, the hold is logged at ERROR with the numbers and listed by
  :meth:`ShrinkGuard.held` for health and metrics;
- it goes live when the catalog recovers (a render that no longer drops too much), when
  the drop has persisted for ``grace``, or at once when the guard is disabled;
- after a registry restart or index reset (and at startup, when nothing is known yet),
  the catalog is *settling* until it has been quiet for ``settle``: meanwhile any drop
  is held, since registrations come back one by one.

Times come from the runner's clock, so the rules are tested with a fake one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ctmpl import telemetry
from ctmpl.config.model import ShrinkGuardConfig

log = logging.getLogger(__name__)

Reason = Literal["drop", "settling"]


@dataclass(frozen=True)
class Held:
    """A render the guard holds back, as health and metrics report it."""

    template: str
    destination: str
    before: int  # instances of the render that is live; -1: unknown (since startup)
    after: int  # instances of the held render
    since: float  # clock time the hold began
    reason: Reason  # "drop": too many gone; "settling": any drop while the catalog settles


class ShrinkGuard:
    """Per-destination baselines and holds; one instance lives as long as the daemon."""

    def __init__(self, config: ShrinkGuardConfig, now: float) -> None:
        self.config = config
        self._baseline: dict[Path, int] = {}
        self._held: dict[Path, Held] = {}
        self._settling = False  # a registry restarted and may still be re-registering
        self._last_change = now  # startup counts as a change: nothing is known yet

    # -- what the runner reports ---------------------------------------------------------

    def note_change(self, now: float) -> None:
        """Catalog data changed: the settle period restarts while it is running."""
        self._last_change = now

    def note_reset(self, key: str, now: float) -> None:
        """A query's index went backwards: the registry restarted or lost its state."""
        if not self._settling:
            log.warning("%s: index reset (registry restarted?); distrusting dropped "
                        "instances until the catalog is quiet for %gs", key, self.config.settle)
        self._settling, self._last_change = True, now

    def quiet(self, now: float) -> bool:
        """True once the catalog has not changed for ``settle`` seconds."""
        return now - self._last_change >= self.config.settle

    def settling(self, now: float) -> bool:
        """True while a restarted registry may still be re-registering its services."""
        if self._settling and self.quiet(now):
            self._settling = False
        return self._settling

    # -- the decision --------------------------------------------------------------------

    def admit(
        self, template: str, dest: Path, count: int, now: float, *, has_file: bool = True
    ) -> bool:
        """True when a render with ``count`` instances may go live at ``dest``."""
        before = self._baseline.get(dest)
        reason = self._suspect(before, count, now, has_file)
        if not self.config.enabled or reason is None:
            self.accept(template, dest, count)
            return True
        held = self._held.get(dest)
        since = held.since if held is not None else now
        if now - since >= self.config.grace:
            log.warning("%s: %d of %s instances gone for %gs (shrink guard grace): "
                        "installing the smaller config", template, count,
                        _known(before), now - since)
            self.accept(template, dest, count)
            return True
        if held is None or (held.before, held.after) != (_value(before), count):
            self._log_hold(template, dest, before, count, reason)
        self._held[dest] = Held(template, str(dest), _value(before), count, since, reason)
        telemetry.shrink_held(str(dest), telemetry.HeldState(template, _value(before), count,
                                                             reason))
        return False

    def _suspect(
        self, before: int | None, count: int, now: float, has_file: bool
    ) -> Reason | None:
        """Why a render with ``count`` instances must be held, or None."""
        if before is None:  # first render since startup: only an empty one over a file
            return "settling" if count == 0 and has_file and not self.quiet(now) else None
        if count >= before:
            return None
        if count == 0 or (before - count) / before > self.config.max_drop:
            return "drop"
        return "settling" if self.settling(now) else None

    def accept(self, template: str, dest: Path, count: int) -> None:
        """``count`` instances are live at ``dest`` (installed, or already there)."""
        telemetry.shrink_released(str(dest))
        if self._held.pop(dest, None) is not None:
            log.info("%s: shrink guard released: rendering %d instance(s) to %s",
                     template, count, dest)
        self._baseline[dest] = count

    def _log_hold(
        self, template: str, dest: Path, before: int | None, count: int, reason: Reason
    ) -> None:
        if before is None:
            log.error("%s: render has no instances while %s has content; holding it until "
                      "the catalog settles (shrink guard)", template, dest)
            return
        dropped = before - count
        why = ("the catalog is settling after a registry restart" if reason == "settling"
               else "every instance" if count == 0
               else f"more than {self.config.max_drop:.0%} of them")
        log.error("%s: render would drop %d of %d instances (%.0f%%: %s); holding the last "
                  "good %s for up to %gs unless the catalog recovers (shrink guard)",
                  template, dropped, before, 100 * dropped / before, why, dest,
                  self.config.grace)

    # -- timers and status ---------------------------------------------------------------

    def held(self) -> tuple[Held, ...]:
        """Renders held back right now (for health and metrics)."""
        return tuple(self._held.values())

    def due(self, now: float) -> set[Path]:
        """Held destinations to render again now: their grace ended or the catalog settled."""
        if not self._held:
            return set()
        settled = not self.settling(now) and self.quiet(now)
        return {dest for dest, h in self._held.items()
                if (settled and h.reason == "settling") or now - h.since >= self.config.grace}

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next return something (None: no hold)."""
        if not self._held:
            return None
        times = [h.since + self.config.grace for h in self._held.values()]
        if any(h.reason == "settling" for h in self._held.values()):
            times.append(self._last_change + self.config.settle)
        return min(times)


def _value(before: int | None) -> int:
    return -1 if before is None else before


def _known(before: int | None) -> str:
    return "?" if before is None else str(before)
