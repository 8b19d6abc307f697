"""Reload groups and their timers in the runner, driven with a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ctmpl.config.model import CatalogConfig, Config, TemplateConfig, Wait
from ctmpl.groups import build_groups
from ctmpl.runner import Runner


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


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
def runner(tmp_path: Path) -> tuple[Runner, FakeClock]:
    clock = FakeClock()
    run = Runner(config(tmp_path, "reload-a", "reload-b"), clock=clock)
    run.groups = build_groups(run.config)
    a, b = run.groups
    a.states[0].queries = {"svc(a)": None}  # type: ignore[dict-item]
    b.states[0].queries = {"svc(b)": None}  # type: ignore[dict-item]
    for group in run.groups:
        group.run_now, group.rendered_complete = False, True
        for state in group.states:
            state.dirty = False
    return run, clock


def test_a_change_restarts_only_its_own_groups_timer(runner: tuple[Runner, FakeClock]) -> None:
    run, clock = runner
    a, b = run.groups
    run._on_data("svc(a)", ("v1",))
    assert a.debounce.fire_at() == 102.0 and a.states[0].dirty
    assert b.debounce.fire_at() is None and not b.states[0].dirty
    clock.now = 101.5
    run._on_data("svc(b)", ("v1",))
    assert a.debounce.fire_at() == 102.0, "b's input must not push a's timer"
    assert b.debounce.fire_at() == 103.5


def test_burst_fires_once_capped_by_max(runner: tuple[Runner, FakeClock]) -> None:
    run, clock = runner
    a, _ = run.groups
    fired = 0
    for step in range(40):  # a change every second for 40 s: min never elapses
        clock.now = 100.0 + step
        run._on_data("svc(a)", (f"v{step}",))
        if a.is_due(clock.now):
            fired += 1
            a.states[0].dirty = False
            run._on_data("svc(a)", (f"again{step}",))
    assert 3 <= fired <= 4, "one fire per max window (10 s) while changes keep coming"


def test_equal_data_does_not_touch_any_group(runner: tuple[Runner, FakeClock]) -> None:
    run, _ = runner
    run._on_data("svc(a)", ("same",))
    a, _ = run.groups
    a.debounce.tick(1e9)
    a.states[0].dirty = False
    run._on_data("svc(a)", ("same",))
    assert a.debounce.fire_at() is None and not a.states[0].dirty


def test_first_render_is_not_delayed(runner: tuple[Runner, FakeClock]) -> None:
    run, clock = runner
    a, _ = run.groups
    a.rendered_complete = False
    run._on_data("svc(a)", ("v1",))
    assert a.is_due(clock.now), "a group that never rendered completely runs at once"


def test_reload_keeps_the_nginx_controller_only_when_its_settings_are_unchanged(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from ctmpl.config.model import NginxConfig

    base = config(tmp_path, "", proxy="nginx")
    configs = iter([base, replace(base, nginx=NginxConfig(config=str(tmp_path / "other.conf")))])
    run = Runner(base, reload_config=lambda: next(configs))
    run.catalog = None  # type: ignore[assignment]
    run.groups = build_groups(base)
    run.pipeline = run._pipeline()
    first = run.pipeline.proxy
    asyncio.run(run._apply_reload())
    assert run.pipeline.proxy is first
    asyncio.run(run._apply_reload())
    assert run.pipeline.proxy is not first
    assert run.pipeline.proxy is not None
    assert run.pipeline.proxy.cfg.config == str(tmp_path / "other.conf")
