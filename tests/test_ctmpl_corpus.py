"""Every case of the consul-template conformance corpus renders as consul-template did.

The corpus state is loaded into Consul (the API double, or a real agent named like the
recording's when ``CTMPL_CONSUL_BIN`` is set) and each ``cases/NAME.ctmpl`` is rendered with
``ctmpl -once``: the bytes must equal ``NAME.out`` (no file at all when consul-template
created none); for an error case the exit code (14) and the ``LINE[:COL]`` must match.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ctmpl_corpus import CORPUS, load_state, read_state
from tests.fixtures_consul import AgentServer, ConsulFixture, DoubleServer, Server, consul_binary

pytestmark = pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(),
                                reason="conformance corpus not present")

TIMEOUT_CASE_WAIT = 3.0


def _manifest() -> dict[str, dict[str, object]]:
    if not (CORPUS / "manifest.json").is_file():
        return {}
    return dict(json.loads((CORPUS / "manifest.json").read_text())["cases"])


CASES = _manifest()


@pytest.fixture(scope="module")
def corpus_consul() -> Iterator[ConsulFixture]:
    """One Consul holding the corpus state for every case of the module."""
    state = read_state()
    agent = state["agent"]
    binary = consul_binary()
    with tempfile.TemporaryDirectory(prefix="ctmpl-corpus-") as tmp:
        server: Server = (
            AgentServer(binary, Path(tmp), agent["Node"], agent["ID"]) if binary
            else DoubleServer(agent["Node"], agent["ID"])
        )
        server.start()
        try:
            fixture = ConsulFixture(server)
            load_state(fixture, state)
            yield fixture
        finally:
            server.stop()


def _env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "")}
    env.update(read_state()["env"])
    return env


def _run(consul: ConsulFixture, name: str, workdir: Path, timeout: float) -> tuple[
        subprocess.CompletedProcess[str] | None, Path]:
    (workdir / f"{name}.ctmpl").write_bytes((CORPUS / "cases" / f"{name}.ctmpl").read_bytes())
    dest = workdir / f"{name}.out"
    cmd = [sys.executable, "-m", "ctmpl", "-consul-addr", consul.addr, "-template",
           f"{name}.ctmpl:{name}.out", "-once", "-log-level", "warn"]
    try:
        done = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, dest
    return done, dest


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_case(corpus_consul: ConsulFixture, name: str, tmp_path: Path) -> None:
    case = CASES[name]
    if case["result"] == "timeout":
        done, dest = _run(corpus_consul, name, tmp_path, TIMEOUT_CASE_WAIT)
        assert done is None, f"expected ctmpl to keep waiting, it exited: {done}"
        assert not dest.exists()
        return
    started = time.monotonic()
    done, dest = _run(corpus_consul, name, tmp_path, 60)
    assert done is not None, f"{name}: no exit after {time.monotonic() - started:.0f}s"
    if case["result"] == "error":
        expected = (CORPUS / "cases" / f"{name}.err").read_text()
        code = int(re.search(r"exit: (\d+)", expected)[1])  # type: ignore[index]
        position = re.search(r"template: :(\d+(?::\d+)?):", expected)[1]  # type: ignore[index]
        assert done.returncode == code, done.stderr
        assert f"{name}.ctmpl: " in done.stderr, done.stderr
        assert f"template: :{position}:" in done.stderr, done.stderr
        assert not dest.exists()
        return
    assert done.returncode == 0, done.stderr
    if not case["file_created"]:
        assert not dest.exists()
        return
    assert dest.read_bytes() == (CORPUS / "cases" / f"{name}.out").read_bytes()
