"""Reload groups: templates that share a reload command (or the built-in proxy).

A group has one quiescence timer and causes one check and one reload per burst of changes;
``build_groups`` compiles every template of a config (TemplateError on a bad one).
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def is_due(self, now: float) -> bool:
        """True when the group must run now (and consumes its timer)."""
        if not any(s.dirty for s in self.states):
            return False
        return self.run_now or self.debounce.tick(now)


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
