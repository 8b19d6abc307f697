"""PID 1 duties, tested with ctmpl as a child subreaper: orphans reaped, SIGQUIT stops."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil

from ctmpl.reaper import Reaper
from tests.daemon import wait_for, write_catalog

# Mark the process a child subreaper (kept across exec), then become ctmpl: what tini or
# a container runtime's PID 1 would be to it.
AS_SUBREAPER = (
    "import os, sys; from ctmpl.reaper import set_subreaper; assert set_subreaper(); "
    "os.execv(sys.executable, [sys.executable, '-m', 'ctmpl', *sys.argv[1:]])"
)


def test_orphans_are_reaped_and_sigquit_stops_gracefully(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": [{"id": "w", "address": "127.0.0.1", "port": 8001}]})
    template = tmp_path / "t.tmpl"
    template.write_text('{% for i in service("web") %}{{ i.Port }}{% endfor %}\n')
    # The command's shell exits at once; its background sleep is orphaned and adopted by ctmpl.
    command = "sleep 0.5 & echo $! > " + str(tmp_path / "orphan.pid")
    log = (tmp_path / "log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_SUBREAPER, "-catalog", f"file://{catalog}", "-wait", "0s",
         "-log-level", "debug", "-template", f"{template}:{tmp_path / 'out'}:{command}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        pid_file = tmp_path / "orphan.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="orphan")
        orphan = int(pid_file.read_text())
        wait_for(lambda: not psutil.pid_exists(orphan) or psutil.Process(orphan).ppid()
                 == proc.pid, what="orphan adopted by ctmpl")
        wait_for(lambda: not psutil.pid_exists(orphan), what="orphan reaped (no zombie left)")
        assert "reaped orphaned process" in (tmp_path / "log").read_text()
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_reaper_takes_only_lingering_unprotected_zombies() -> None:
    kids = [subprocess.Popen(["true"]) for _ in range(2)]
    for kid in kids:
        wait_for(lambda k=kid: psutil.Process(k.pid).status() == psutil.STATUS_ZOMBIE,
                 what="zombie")
    reaper = Reaper(protected=lambda: {kids[1].pid})
    assert reaper.scan() == [], "a zombie seen once may still be waited for by its owner"
    assert reaper.scan() == [kids[0].pid]
    assert psutil.Process(kids[1].pid).status() == psutil.STATUS_ZOMBIE
    assert kids[1].wait(5) == 0
