"""Reload groups: which templates share a reload, and when a group runs (fake clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctmpl.config.model import CatalogConfig, Config, TemplateConfig, Wait
from ctmpl.groups import Group, build_groups


def config(tmp_path: Path, *commands: str, proxy: str = "none") -> Config:
    templates = tuple(
        TemplateConfig(destination=str(tmp_path / f"out{i}"), contents="x", command=cmd,
                       wait=Wait(2.0, 10.0))
        for i, cmd in enumerate(commands)
    )
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("services: {}\n")
    return Config(
        templates=templates,
        catalog=CatalogConfig(kind="file", file_path=str(catalog)),
        wait=Wait(2.0, 10.0),
        proxy=proxy,  # type: ignore[arg-type]
    )


def test_templates_sharing_a_command_form_one_group(tmp_path: Path) -> None:
    groups = build_groups(config(tmp_path, "reload-a", "reload-b", "reload-a", ""))
    assert [len(g.states) for g in groups] == [2, 1, 1]


def test_proxy_mode_puts_every_template_in_one_reload_group(tmp_path: Path) -> None:
    groups = build_groups(config(tmp_path, "", "", "", proxy="nginx"))
    assert len(groups) == 1 and len(groups[0].states) == 3


def test_a_group_waits_as_its_template_says(tmp_path: Path) -> None:
    cfg = config(tmp_path, "a")
    cfg = Config(templates=(TemplateConfig(destination="d", contents="x", wait=Wait(1, 2)),),
                 wait=Wait(5, 20), catalog=cfg.catalog)
    group = build_groups(cfg)[0]
    group.debounce.change(0.0)
    assert group.debounce.fire_at() == 1.0


@pytest.fixture
def groups(tmp_path: Path) -> tuple[Group, Group]:
    """Two groups (wait 2s:10s) that rendered completely once, reading svc(a) and svc(b)."""
    a, b = build_groups(config(tmp_path, "reload-a", "reload-b"))
    a.states[0].queries = {"svc(a)": None}  # type: ignore[dict-item]
    b.states[0].queries = {"svc(b)": None}  # type: ignore[dict-item]
    for group in (a, b):
        assert group.is_due(0.0) is True  # the first render, at once
        group.states[0].dirty, group.states[0].complete_once = False, True  # what it did
        group.pass_done()
    return a, b


def test_a_change_restarts_only_its_own_groups_timer(groups: tuple[Group, Group]) -> None:
    a, b = groups
    a.note_change("svc(a)", 100.0)
    b.note_change("svc(a)", 100.0)
    assert a.debounce.fire_at() == 102.0 and a.states[0].dirty
    assert b.debounce.fire_at() is None and not b.states[0].dirty
    a.note_change("svc(b)", 101.5)
    b.note_change("svc(b)", 101.5)
    assert a.debounce.fire_at() == 102.0, "b's input must not push a's timer"
    assert b.debounce.fire_at() == 103.5


def test_a_burst_runs_once_per_max_window(groups: tuple[Group, Group]) -> None:
    a, _ = groups
    runs = []
    for step in range(40):  # a change every second for 40 s: min (2 s) never elapses
        now = 100.0 + step
        a.note_change("svc(a)", now)
        if a.is_due(now):
            runs.append(now)
            a.states[0].dirty = False  # the pass rendered it
    # Each burst runs max (10 s) after its first change; the next starts with the next change.
    assert runs == [110.0, 121.0, 132.0]
    assert a.debounce.fire_at() == 141.0, "the burst still running is capped at first + max"


def test_the_debounce_fires_min_after_the_last_change(groups: tuple[Group, Group]) -> None:
    a, _ = groups
    a.note_change("svc(a)", 100.0)
    a.note_change("svc(a)", 101.0)
    assert [a.is_due(t) for t in (102.0, 102.999, 103.0)] == [False, False, True]
    assert a.is_due(103.0) is False, "one run per burst"


def test_a_clean_group_never_runs(groups: tuple[Group, Group]) -> None:
    a, _ = groups
    a.note_change("svc(other)", 100.0)
    assert a.debounce.fire_at() is None
    assert a.is_due(1e9) is False


def test_first_render_is_not_delayed(tmp_path: Path) -> None:
    a, _ = build_groups(config(tmp_path, "reload-a", "reload-b"))
    assert a.is_due(100.0) is True, "a group runs at once at start"
    a.states[0].queries = {"svc(a)": None}  # type: ignore[dict-item]
    a.pass_done()  # the render was incomplete (data still missing)
    a.note_change("svc(a)", 100.5)
    assert a.is_due(100.5) is True, "a group that never rendered completely runs at once"
    assert a.debounce.fire_at() is None


def test_a_held_render_runs_at_the_next_turn(groups: tuple[Group, Group]) -> None:
    a, b = groups
    a.rerender({a.states[0].destination})
    assert a.is_due(100.0) is True and b.is_due(100.0) is False
