"""Reload groups: templates that share a reload command (or the built-in proxy).

A group has one quiescence timer (its *debounce*) and causes one check and one reload per
burst of changes; ``build_groups`` compiles every template of a config (TemplateError on a
bad one). The group owns its scheduling state: *run_now* (run at the next turn, without the
debounce: the first render, a SIGHUP, a render the shrink guard held) and
*rendered_complete* (a pass rendered every template completely; until then changes are not
debounced, as consul-template does not delay the first render).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ctmpl.config.model import Config
from ctmpl.quiesce import Quiescence
from ctmpl.render import TemplateState
from ctmpl.template.engine import Template


@dataclass(eq=False)
class Group:
    """Templates that share a reload command: one quiescence timer, one reload."""

    states: list[TemplateState]
    debounce: Quiescence
    run_now: bool = True  # run at the next turn without waiting (first render, SIGHUP)
    rendered_complete: bool = False  # had a pass where every template rendered completely

    def note_change(self, key: str, now: float) -> None:
        """The data of query ``key`` changed at ``now``: its templates render again."""
        touched = [s for s in self.states if key in s.queries]
        for state in touched:
            state.dirty = True
        if touched and self.rendered_complete:
            self.debounce.change(now)
        elif touched:
            self.run_now = True

    def rerender(self, destinations: Collection[Path]) -> None:
        """Render the templates installed at ``destinations`` at the next turn."""
        for state in (s for s in self.states if s.destination in destinations):
            state.dirty, self.run_now = True, True

    def is_due(self, now: float) -> bool:
        """True when the group must run now (and consumes its timer and run_now)."""
        if not any(s.dirty for s in self.states):
            return False
        due = self.run_now or self.debounce.tick(now)
        self.run_now = False
        return due

    def pass_done(self) -> None:
        """A pass ran: note whether every template has now rendered completely."""
        if all(s.complete_once for s in self.states):
            self.rendered_complete = True


def build_groups(config: Config) -> list[Group]:
    """Compile every template (TemplateError on a bad one) and group them by command."""
    groups: dict[str, Group] = {}
    for index, tcfg in enumerate(config.templates):
        state = TemplateState(Template(tcfg))
        key = tcfg.command or f"#{index}"
        if config.proxy != "none":
            key = f"{config.proxy}|{tcfg.command}"  # one proxy reload per burst for all files
        if key not in groups:
            groups[key] = Group([], Quiescence(tcfg.wait))
        groups[key].states.append(state)
    return list(groups.values())
