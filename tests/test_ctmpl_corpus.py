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


EXTRA = {
    # Not recorded cases: expectations follow the corpus README's rules (node services keep
    # an empty address and sort by name then ID; nodes sort by name; Checks node-level first).
    "node": (
        '{{ with node "node-b" }}{{ .Node.Node }} {{ .Node.ID }} {{ .Node.TaggedAddresses.wan }}'
        '{{ range .Services }} {{ .ID }}[{{ .Address }}]{{ end }}{{ end }}\n'
        '{{ with node "node-a" }}{{ range .Services }}{{ if eq .Service "ssh" }}'
        '{{ .ID }} {{ .Address }}:{{ .Port }}{{ end }}{{ end }}{{ end }}\n'
        '{{ range nodes }}{{ .Node }}={{ .Address }}({{ len .Meta }}) {{ end }}\n'
        '{{ range service "Web-App|any" }}{{ .ID }}:{{ range .Checks }}{{ .CheckID }},'
        '{{ end }} {{ end }}\n',
        "node-b b0000000-0000-4000-8000-00000000000b 198.51.100.11 web-app-2[] "
        "api-gateway-2[10.0.1.11] db-replica[10.0.1.11] legacy-billing-1[10.0.1.11] "
        "metrics-2[10.0.1.11] queue-2[10.0.1.11] ssh-b[]\n"
        "ssh-a :22\n"
        "consul-dev=127.0.0.1(1) node-a=10.0.1.10(3) node-b=10.0.1.11(3) "
        "node-c=10.0.2.12(4) node-d=10.0.3.13(0) \n"
        "web-app-1:service:web-app-1, web-app-2:service:web-app-2, "
        "web-app-3:service:web-app-3, web-app-4:node-health,service:web-app-4, \n",
    ),
    "local_node": (
        "{{ with node }}{{ .Node.Node }} {{ .Node.Address }} {{ len .Services }}{{ end }}\n",
        "consul-dev 127.0.0.1 1\n",
    ),
    "nil_node_first_pass": (
        '{{ (node "node-a").Node.Address }}',
        # Go reports the last node it evaluated: the argument of node.
        'error: execute: template: :1:9: executing "" at <"node-a">: nil pointer '
        "evaluating *dependency.CatalogNode.Node",
    ),
    "index_before_data": (
        '{{ (index (service "Web-App") 0).Address }}',
        'error: execute: template: :1:4: executing "" at <index (service "Web-App") 0>: '
        "error calling index: reflect: slice index out of range",
    ),
}


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_extra_case(corpus_consul: ConsulFixture, name: str, tmp_path: Path) -> None:
    text, expected = EXTRA[name]
    (tmp_path / f"{name}.ctmpl").write_text(text)
    cmd = [sys.executable, "-m", "ctmpl", "-consul-addr", corpus_consul.addr, "-template",
           f"{name}.ctmpl:{name}.out", "-once"]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    if expected.startswith("error: "):
        assert done.returncode == 14, done.stderr
        assert f"{name}.ctmpl: {expected[7:]}" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"{name}.out").read_text() == expected
