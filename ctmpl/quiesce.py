"""Quiescence: consul-template's ``wait min:max`` as a pure object with an injected clock.

A burst of changes to one reload group's inputs is folded into a single render and reload:
the first change of a burst starts it, every change restarts a ``min`` timer, and the
deadline never passes ``first_change + max`` (consul-template's ``runner.go`` quiescence).
With wait disabled (``min == 0``) the group fires at the time of the change.

The object never sleeps and never reads a clock: the runner passes ``now`` to
:meth:`Quiescence.change` and :meth:`Quiescence.tick`, and sleeps until
:meth:`Quiescence.fire_at` itself.

Not handled here: consul-template does not delay the first render after start. The runner
renders that one at once and only feeds later changes into the quiescence.
"""

from __future__ import annotations

from ctmpl.config.model import Wait


class Quiescence:
    """The ``wait min:max`` timer of one reload group."""

    def __init__(self, wait: Wait) -> None:
        self._min = max(0.0, wait.min) if wait.enabled else 0.0
        # A max below min (or unset) cannot shorten the calm period: cap at min instead.
        self._max = max(self._min, wait.max)
        self._first: float | None = None
        self._deadline: float | None = None

    def change(self, now: float) -> None:
        """Record a change of the group's inputs at time ``now``."""
        if self._first is None:
            self._first = now
        self._deadline = min(now + self._min, self._first + self._max)

    def fire_at(self) -> float | None:
        """When the pending burst fires, or None when idle."""
        return self._deadline

    def tick(self, now: float) -> bool:
        """True exactly once when ``now`` reaches the deadline; the group is then idle again."""
        if self._deadline is None or now < self._deadline:
            return False
        self._first = None
        self._deadline = None
        return True
