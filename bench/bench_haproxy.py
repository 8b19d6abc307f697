"""Benchmark: a server change through HAProxy's runtime API versus a checked reload.

Starts a private HAProxy (master-worker, loopback port, temp directory) with ``--servers``
servers in one backend, then times ``HaproxyController.apply()`` for ``--changes`` changes
of each kind: a server weight (runtime API, no reload) and a backend added and removed
(``haproxy -c`` + state save + ``reload`` on the master CLI until the new workers run).

    python bench/bench_haproxy.py [--changes 20] [--servers 50]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctmpl.config.model import HaproxyConfig  # noqa: E402
from ctmpl.proxy.haproxy import HaproxyController  # noqa: E402
from ctmpl.proxy.haproxy_procs import leftovers  # noqa: E402

BASE = """\
global
    stats socket {root}/admin.sock mode 600 level admin
    server-state-file {root}/server-state
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    load-server-state-from-file global
frontend fe
    bind 127.0.0.1:{port}
    default_backend web
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backends(servers: int, weight: int, extra: bool) -> str:
    lines = ["backend web", "    balance roundrobin"]
    lines += [f"    server s{i} 127.0.0.1:{20000 + i} weight {weight if i == 0 else 1}"
              for i in range(servers)]
    if extra:
        lines += ["backend extra", "    server x 127.0.0.1:9"]
    return "\n".join(lines) + "\n"


def timed(runs: int, step: Callable[[int], str], want: str) -> list[float]:
    times = []
    for i in range(runs):
        started = time.perf_counter()
        outcome = step(i)
        times.append(time.perf_counter() - started)
        assert want in outcome, outcome
    return times


def report(name: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(f"| {name} | {statistics.median(ms):.0f} ms | {p95:.0f} ms | {ms[-1]:.0f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--servers", type=int, default=50)
    opts = parser.parse_args()
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        sys.exit("haproxy is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, rendered = root / "base.cfg", root / "backends.cfg"
        base.write_text(BASE.format(root=root, port=free_port()))
        rendered.write_text(backends(opts.servers, 1, False))
        cfg = HaproxyConfig(binary=binary, config=(str(base), str(rendered)),
                            master_socket=str(root / "master.sock"),
                            admin_socket=str(root / "admin.sock"),
                            pid_file=str(root / "haproxy.pid"), reload_timeout=30.0)
        ctl = HaproxyController(cfg)
        try:
            ctl.apply()

            def weight(i: int) -> str:
                rendered.write_text(backends(opts.servers, 2 + i, False))
                return ctl.apply()

            def structural(i: int) -> str:
                rendered.write_text(backends(opts.servers, 2, i % 2 == 0))
                return ctl.apply()

            runtime = timed(opts.changes, weight, "runtime API")
            reload = timed(opts.changes, structural, "reloaded")
        finally:
            for proc in leftovers(binary, cfg.master_socket):
                with contextlib.suppress(Exception):
                    proc.kill()
    print(f"HAProxy, {opts.servers} servers, {opts.changes} changes of each kind")
    print("| change | median | p95 | max |")
    print("|---|---:|---:|---:|")
    report("server weight (runtime API)", runtime)
    report("backend added/removed (check + reload)", reload)


if __name__ == "__main__":
    main()
