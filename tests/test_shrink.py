"""The shrink guard's rules, on a fake clock; then end to end with a file catalog and Consul."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from ctmpl.config.model import ShrinkGuardConfig
from ctmpl.shrink import Held, ShrinkGuard
from tests.daemon import daemon, render_daemons, wait_for, write_catalog
from tests.fixtures_consul import ConsulFixture

DEST = Path("/etc/nginx/conf.d/up.conf")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard_at(clock: Clock, **settings: float | bool) -> ShrinkGuard:
    config = ShrinkGuardConfig(**{"grace": 60.0, "settle": 10.0, **settings})  # type: ignore[arg-type]
    guard = ShrinkGuard(config, clock())
    clock.now += 11  # past the startup settle
    assert guard.admit("t", DEST, 10, clock())  # the baseline: 10 instances live
    return guard


def test_dropping_everything_is_held_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    guard = guard_at(clock)
    with caplog.at_level(logging.ERROR):
        assert not guard.admit("t", DEST, 0, clock())
    assert "would drop 10 of 10 instances (100%: every instance)" in caplog.text
    assert guard.held() == (Held("t", str(DEST), 10, 0, clock(), "drop"),)
    caplog.clear()
    clock.now += 5
    assert not guard.admit("t", DEST, 0, clock())  # the same hold is not logged again
    assert not caplog.records
    assert guard.held()[0].since == clock() - 5


def test_held_until_the_catalog_recovers() -> None:
    clock = Clock()
    guard = guard_at(clock)
    assert not guard.admit("t", DEST, 0, clock())
    clock.now += 3
    assert guard.admit("t", DEST, 9, clock())  # back, minus one: an ordinary change
    assert guard.held() == ()


def test_a_drop_that_persists_past_grace_goes_live() -> None:
    clock = Clock()
    guard = guard_at(clock)
    assert not guard.admit("t", DEST, 0, clock())
    assert guard.next_deadline() == clock() + 60
    clock.now += 59.9
    assert guard.due(clock()) == set()
    assert not guard.admit("t", DEST, 0, clock())
    clock.now += 0.1
    assert guard.due(clock()) == {DEST}
    assert guard.admit("t", DEST, 0, clock())
    assert guard.held() == ()
    assert guard.admit("t", DEST, 0, clock())  # the new baseline is 0


def test_disabled_guard_lets_everything_through() -> None:
    clock = Clock()
    guard = guard_at(clock, enabled=False)
    assert guard.admit("t", DEST, 0, clock())


@pytest.mark.parametrize(("max_drop", "after", "held"),
                         [(1.0, 1, False), (0.5, 5, False), (0.5, 4, True), (0.25, 7, True)])
def test_max_drop_share(max_drop: float, after: int, held: bool) -> None:
    clock = Clock()
    guard = guard_at(clock, max_drop=max_drop)
    assert guard.admit("t", DEST, after, clock()) is not held


def test_after_a_reset_any_drop_waits_for_the_catalog_to_settle() -> None:
    clock = Clock()
    guard = guard_at(clock)
    guard.note_reset("health.service(web|passing)", clock())
    assert not guard.admit("t", DEST, 0, clock())
    clock.now += 2
    guard.note_change(clock())  # registrations come back one by one
    assert not guard.admit("t", DEST, 3, clock())
    assert guard.held()[0].reason == "settling"
    assert guard.next_deadline() == clock() + 10
    clock.now += 9
    assert guard.due(clock()) == set()
    clock.now += 1  # quiet for `settle`: the partial catalog is what it is
    assert guard.due(clock()) == {DEST}
    assert guard.admit("t", DEST, 3, clock())


def test_first_render_empty_over_an_existing_file_waits_for_settle() -> None:
    clock = Clock()
    guard = ShrinkGuard(ShrinkGuardConfig(settle=10.0), clock())
    assert not guard.admit("t", DEST, 0, clock(), has_file=True)
    assert guard.held()[0].before == -1
    assert guard.admit("t", Path("/other.conf"), 0, clock(), has_file=False)
    clock.now += 10
    assert guard.due(clock()) == {DEST}
    assert guard.admit("t", DEST, 0, clock(), has_file=True)


# -- end to end ----------------------------------------------------------------------------

TEMPLATE = "{% for i in service('web') %}server {{ i.Address }}:{{ i.Port }};\n{% endfor %}"
WEB = [{"id": f"web-{n}", "address": f"10.0.0.{n}", "port": 80} for n in (1, 2, 3)]
FULL = "".join(f"server 10.0.0.{n}:80;\n" for n in (1, 2, 3))


def test_emptied_file_catalog_is_held_then_goes_live_after_grace(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": WEB})
    args = ["-catalog", f"file://{catalog}", "-shrink-guard-grace", "3s"]
    with render_daemons(tmp_path, TEMPLATE, args) as start:
        proc = start()
        proc.wait_for(FULL)
        write_catalog(catalog, {"web": []})
        proc.wait_log("would drop 3 of 3 instances (100%: every instance)")
        assert proc.read() == FULL, "held: the last good file stays"
        proc.wait_for("", timeout=30)  # the grace ended: the drop is real
        proc.wait_log("installing the smaller config")


def test_guard_off_empties_at_once(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": WEB})
    args = ["-catalog", f"file://{catalog}", "-shrink-guard=false"]
    with render_daemons(tmp_path, TEMPLATE, args) as start:
        proc = start()
        proc.wait_for(FULL)
        write_catalog(catalog, {"web": []})
        proc.wait_for("")
        assert "shrink guard" not in proc.text()


class FileRecorder:
    """Every distinct content a file takes, polled in a thread every few milliseconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[str | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            try:
                text: str | None = self.path.read_text()
            except FileNotFoundError:
                text = None
            if not self.seen or self.seen[-1] != text:
                self.seen.append(text)

    def stop(self) -> list[str | None]:
        self._stop.set()
        self._thread.join()
        return self.seen


def test_consul_restarting_empty_never_empties_the_file(
    consul: ConsulFixture, tmp_path: Path
) -> None:
    """The agent comes back without its state; registrations return a few seconds later."""
    for n in (1, 2, 3):
        consul.register(f"web-{n}", "web", f"10.0.0.{n}", 80)
    with render_daemons(tmp_path, TEMPLATE, ["-consul-addr", consul.addr]) as start:
        proc = start()
        proc.wait_for(FULL)
        recorder = FileRecorder(proc.dest)
        consul.stop()
        proc.wait_log("retrying")
        consul.start()  # empty, as a dev agent restarted without its state
        proc.wait_log("would drop 3 of 3 instances (100%: every instance)")
        for n in (1, 2, 3):
            time.sleep(0.7)  # part of the scenario: registrations trickle back in
            consul.register(f"web-{n}", "web", f"10.0.0.{n}", 80)
        proc.wait_log("shrink guard released")
        assert proc.read() == FULL
        assert recorder.stop() == [FULL], "a smaller config went live"


def test_go_templates_are_guarded_too(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": WEB})
    src, dest = tmp_path / "up.ctmpl", tmp_path / "up.conf"
    src.write_text('{{ range service "web" }}server {{ .Address }}:{{ .Port }};\n{{ end }}')
    args = ["-catalog", f"file://{catalog}", "-template", f"{src}:{dest}", "-wait", "0s"]
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        wait_for(lambda: dest.exists() and dest.read_text() == FULL, what="first render")
        write_catalog(catalog, {"web": []})
        proc.wait_log("would drop 3 of 3 instances")
        assert dest.read_text() == FULL


def test_templates_without_service_calls_are_not_guarded(tmp_path: Path) -> None:
    """A KV-only template drops no instances: its first render over an old file goes live."""
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {}, kv={"mode": "green"})
    (tmp_path / "upstreams.conf").write_text("mode blue\n")  # from before a restart
    with render_daemons(tmp_path, 'mode {{ key("mode") }}\n',
                        ["-catalog", f"file://{catalog}"]) as start:
        proc = start()
        proc.wait_for("mode green\n")
        assert "shrink guard" not in proc.text()
