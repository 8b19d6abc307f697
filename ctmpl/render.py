"""Rendering one template, and the state a template carries from one render to the next.

``TemplateState`` is the one owner of a template's runtime state; the runner, the reload
groups and the pipeline change it only through its methods. Terms:

- *queries*: the catalog queries (by key) the last render read; the runner watches them;
- *dirty*: an input changed (or a pass asked for it) since the last render;
- *missing*: query keys the last render needed and the catalog had not answered yet; such
  a render is *incomplete* and installs nothing;
- *awaiting*: some missing queries have still not answered, so rendering again cannot
  complete yet (waiting for all of them turns the discovery of thousands of service()
  queries into a few renders instead of one per arriving answer);
- *complete_once*: the template has rendered completely at least once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ctmpl import telemetry
from ctmpl.brain import Brain
from ctmpl.errors import TemplateError
from ctmpl.sources.base import Catalog, Query
from ctmpl.template.engine import Template

log = logging.getLogger(__name__)


@dataclass(eq=False)
class TemplateState:
    """Runtime state of one template: what it last read, lacked and rendered."""

    template: Template
    queries: dict[str, Query] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()
    dirty: bool = True
    complete_once: bool = False
    incomplete_since: float | None = None
    warned_missing: bool = False
    last_dry: bytes | None = None
    instances: int | None = None  # instances the last render used; None: no service() call

    @property
    def destination(self) -> Path:
        """Where this template is installed."""
        return Path(self.template.config.destination)

    def awaiting(self, brain: Brain) -> bool:
        """True while a query the last render lacked has still not answered."""
        return any(k in self.queries and not brain.has(k) for k in self.missing)

    def render(self, catalog: Catalog, brain: Brain, now: float) -> bytes | None:
        """Render the template; None when incomplete. TemplateError propagates."""
        self.dirty = False
        started = time.perf_counter()
        try:
            rendered = self.template.render(catalog, brain)
        except TemplateError:  # keep watching what it read: fixed data renders again
            self.queries = self.template.last_deps.queries
            self.missing = frozenset(self.template.last_deps.missing)
            raise
        telemetry.rendered(self.template.name, str(self.destination),
                           time.perf_counter() - started, rendered.complete)
        if rendered.deps.queries.keys() != self.queries.keys():
            self.queries = rendered.deps.queries  # kept otherwise: the runner syncs watches
                                                  # only when a state's queries changed
        self.missing = frozenset(rendered.deps.missing)
        if not rendered.complete:
            if self.incomplete_since is None:
                self.incomplete_since = now
            log.debug("%s: waiting for %s", self.template.name, ", ".join(sorted(self.missing)))
            return None
        self.incomplete_since, self.warned_missing = None, False
        self.complete_once = True
        self.instances = rendered.deps.instances if rendered.deps.uses_instances else None
        return rendered.content

    def warn_at(self, limit: float) -> float | None:
        """When to warn that data is still missing (``limit`` s after the render became
        incomplete); None when complete or warned already."""
        if self.incomplete_since is None or self.warned_missing:
            return None
        return self.incomplete_since + limit

    def warn_if_still_missing(self, now: float, limit: float) -> None:
        """Warn once when data has been missing for ``limit`` seconds."""
        at = self.warn_at(limit)
        if at is None or now < at:
            return
        self.warned_missing = True
        assert self.incomplete_since is not None
        log.warning("%s: still waiting after %.0fs for %s", self.template.name,
                    now - self.incomplete_since, ", ".join(sorted(self.missing)))
