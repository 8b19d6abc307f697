"""The daemon's garbage-collector rules (``ctmpl.gcpolicy``) and the lazily decoded answer
they are applied to."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctmpl import gcpolicy
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import Answer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_paused_pauses_and_restores_even_on_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gcpolicy.paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    with gcpolicy.paused():
        pass
    assert not gc.isenabled(), "a collector disabled by someone else stays disabled"


def test_settle_freezes_what_is_alive() -> None:
    gcpolicy.settle()
    assert gc.get_freeze_count() > 0


def test_answer_decodes_when_read_and_names_the_query_when_invalid() -> None:
    assert Answer(index=3, raw=b'[{"a": 1}]').body == [{"a": 1}]
    assert Answer(index=3, raw=b"").body is None
    bad = Answer(index=3, raw=b"[{", invalid="catalog.feed(ui/nodes): invalid JSON in the "
                                           "answer from 127.0.0.1:8500")
    with pytest.raises(SourceError, match=r"^catalog\.feed\(ui/nodes\): invalid JSON"):
        _ = bad.body
    answer = Answer(index=3, raw=b"[1]")
    assert answer.decode_with(lambda raw: raw) == b"[1]"
    answer.release()
    assert answer.body is None and answer.index == 3


def test_collections_paused_for_the_start_resume_when_settled_or_told() -> None:
    gcpolicy.pause_for_start()
    assert not gc.isenabled()
    gcpolicy.settle()
    assert gc.isenabled()
    gcpolicy.pause_for_start()
    gcpolicy.resume()
    assert gc.isenabled()


DAEMON = """
import gc, os, signal, sys
from ctmpl import daemon_services
first_render = daemon_services.DaemonServices.first_render

async def noted(self):
    print("starting", gc.isenabled(), flush=True)
    await first_render(self)
    print("rendered", gc.isenabled(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

daemon_services.DaemonServices.first_render = noted
from ctmpl.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_daemon_collects_again_after_its_first_complete_render(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("services: {}\n")
    template = tmp_path / "t.j2"
    template.write_text("{{ services() | length }}\n")
    args = ["-catalog", f"file://{catalog}", "-template", f"{template}:{tmp_path / 'out'}"]
    done = subprocess.run([sys.executable, "-c", DAEMON, *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["starting False", "rendered True"], done.stderr
    assert done.returncode == 0, done.stderr
