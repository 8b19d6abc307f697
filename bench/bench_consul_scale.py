"""Benchmark: ctmpl with the shipped nginx template over 1,000 and 10,000 Consul services.

    python bench/bench_consul_scale.py [--services 1000 10000] [--changes 200] [--burst 1000]

For each size it builds a catalog of N services x 3 instances (half the services tagged
``calico``, 20 nodes) in the Consul API double (a real agent is not supported yet), puts a
counting proxy (``tests.consul_proxy``) in front of it, runs ``python -m ctmpl`` with
``templates/nginx.conf.j2`` and ``-wait 0``, and reports:

- first complete render after start;
- RSS and CPU while idle;
- change -> file latency p50/p99 over ``--changes`` single-instance changes of mixed kinds
  (address, port, check flap, new instance, removal), timed until the file shows them;
- requests sent and connections held per change, split into related changes (a service the
  template reads) and unrelated ones (a service without the tag);
- CPU and peak RSS while ``--burst`` changes are applied back to back, and the time from the
  last of them until the file shows the final state (converged).

The double runs in this process (its own thread), the daemon in its own; the loader fills the
double directly rather than through 30,000 HTTP registrations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.consul_double import ConsulDouble, ConsulState  # noqa: E402
from tests.consul_proxy import ConsulProxy  # noqa: E402

TEMPLATE = ROOT / "templates" / "nginx.conf.j2"
NODES = 20
INSTANCES = 3
QUIET = 0.3  # no request for this long (at least): the daemon is done with a change


def name(n: int) -> str:
    return f"svc-{n:05d}"


def address(n: int, i: int, gen: int = 0) -> str:
    """Instance i of service n: its first address, or the one change ``gen`` gives it."""
    if gen == 0:
        return f"10.{i + 1}.{n // 250}.{n % 250 + 1}"
    return f"172.{16 + gen // 62500}.{gen // 250 % 250}.{gen % 250 + 1}"


def body(n: int, i: int, gen: int = 0, status: str = "passing", port: int = 8080
         ) -> dict[str, Any]:
    node = f"node-{(n * INSTANCES + i) % NODES:02d}"
    sid = f"{name(n)}-{i}"
    return {
        "Node": node, "Address": f"10.250.0.{(n * INSTANCES + i) % NODES + 1}",
        "Service": {"ID": sid, "Service": name(n), "Address": address(n, i, gen), "Port": port,
                    "Tags": ["calico", "v1"] if n % 2 == 0 else ["internal"]},
        "Check": {"CheckID": f"chk-{sid}", "Name": "check", "Status": status, "ServiceID": sid},
    }


class Backend:
    """The double in this process, loaded directly, or a real agent loaded over HTTP."""

    def __init__(self) -> None:
        self.double = ConsulDouble()
        self.double.start()
        self.addr = self.double.addr

    def load(self, services: int) -> None:
        def fill(state: ConsulState) -> None:
            for n in range(services):
                for i in range(INSTANCES):
                    state.catalog_register(body(n, i))

        self.double.call(fill)

    def put(self, data: dict[str, Any]) -> None:
        req = urllib.request.Request(f"http://{self.addr}/v1/catalog/register",
                                     data=json.dumps(data).encode(), method="PUT")
        urllib.request.urlopen(req, timeout=30).read()

    def delete(self, node: str, sid: str) -> None:
        req = urllib.request.Request(f"http://{self.addr}/v1/catalog/deregister",
                                     data=json.dumps({"Node": node, "ServiceID": sid}).encode(),
                                     method="PUT")
        urllib.request.urlopen(req, timeout=30).read()

    def stop(self) -> None:
        self.double.stop()


class Output:
    """The rendered file, read again only when its mtime moves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = 0
        self.text = ""

    def refresh(self) -> str:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return ""
        if stamp != self._stamp:
            self._stamp = stamp
            self.text = self.path.read_text()
        return self.text

    def wait(self, cond: Callable[[str], bool], timeout: float = 120.0) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if cond(self.refresh()):
                return time.perf_counter() - started
            time.sleep(0.001)
        raise TimeoutError(f"{self.path} never reached the expected state")


@dataclass
class Result:
    services: int
    first_render: float
    idle_rss: float
    idle_cpu: float
    latencies: list[float]
    related: list[tuple[int, int]]
    unrelated: list[tuple[int, int]]
    burst_cpu: float
    burst_rss: float
    converge: float
    reply: float


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class Session:
    """One daemon over one catalog size, behind the counting proxy."""

    def __init__(self, services: int) -> None:
        self.services = services
        self.backend = Backend()
        self.backend.load(services)
        self.proxy = ConsulProxy(self.backend.addr)
        self.proxy.start()
        self.out = Output(Path(tempfile.mkdtemp(prefix="ctmpl-bench-")) / "nginx.conf")
        self.started = time.perf_counter()
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "ctmpl", "-consul-addr", self.proxy.addr, "-template",
             f"{TEMPLATE}:{self.out.path}", "-wait", "0s", "-log-level", "err"], cwd=ROOT)
        self.proc = psutil.Process(self.daemon.pid)
        self.rng = random.Random(1)
        self.quiet = QUIET

    def first_render(self) -> float:
        last = f"upstream {name(self.services - 2)} {{"
        half = self.services // 2
        self.out.wait(lambda t: last in t and t.count("\nupstream ") == half)
        return time.perf_counter() - self.started

    def idle(self) -> tuple[float, float]:
        """(CPU share, RSS in MB) over 3 quiet seconds."""
        time.sleep(1.0)
        self.proxy.quiet(0.5)
        c0 = cpu(self.proc)
        time.sleep(3.0)
        return (cpu(self.proc) - c0) / 3.0, self.proc.memory_info().rss / 2**20

    def one_change(self, k: int) -> tuple[bool, float | None, int, int]:
        """One single-instance change of a random kind, undone afterwards:
        (related, seconds until the file showed it, requests, connections)."""
        n, i = self.rng.randrange(self.services), self.rng.randrange(INSTANCES)
        kind = self.rng.choice(["address", "port", "flap"])
        port = 9000 + k if kind == "port" else 8080
        data = body(n, i, gen=k + 1 if kind == "address" else 0, port=port,
                    status="critical" if kind == "flap" else "passing")
        mark = self.proxy.mark()
        self.proxy.max_connections = self.proxy.open_connections
        self.backend.put(data)
        took = None
        if n % 2 == 0:
            if kind == "flap":
                gone = f"server {address(n, i)}:8080 "
                took = self.out.wait(lambda t: gone not in t)
            else:
                want = f"server {data['Service']['Address']}:{port} "
                took = self.out.wait(lambda t: want in t)
        # the long-poll that carried the change is asked again once its answer is handled
        self.proxy.quiet(self.quiet)
        sent, held = len(self.proxy.since(mark)), self.proxy.max_connections
        self.backend.put(body(n, i))
        if n % 2 == 0:
            back = f"server {address(n, i)}:8080 "
            self.out.wait(lambda t: back in t)
        self.proxy.quiet(self.quiet)
        return n % 2 == 0, took, sent, held

    def reply_time(self) -> float:
        """Median seconds the backend takes to answer the catalog-wide read by itself."""
        times = []
        for _ in range(5):
            started = time.perf_counter()
            urllib.request.urlopen(f"http://{self.backend.addr}/v1/internal/ui/nodes",
                                   timeout=60).read()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    def burst(self, count: int, first_gen: int) -> tuple[float, float, float]:
        """``count`` related address changes back to back: (CPU s, peak RSS MB, seconds from
        the last change until the file shows every final address)."""
        c0, peak = cpu(self.proc), self.proc.memory_info().rss
        final: dict[int, str] = {}
        for k in range(count):
            n = self.rng.randrange(0, self.services, 2)
            self.backend.put(body(n, 0, gen=first_gen + k))
            final[n] = address(n, 0, first_gen + k)
            if k % 50 == 0:
                peak = max(peak, self.proc.memory_info().rss)
        wants = [f"server {a}:8080 " for a in final.values()]
        converge = self.out.wait(lambda t: all(w in t for w in wants))
        peak = max(peak, self.proc.memory_info().rss)
        return cpu(self.proc) - c0, peak / 2**20, converge

    def close(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(10)
        self.proxy.stop()
        self.backend.stop()


def run(services: int, changes: int, burst: int) -> Result:
    """Every measurement for one catalog size."""
    session = Session(services)
    try:
        first = session.first_render()
        idle_cpu, idle_rss = session.idle()
        reply = session.reply_time()
        session.quiet = max(QUIET, 2 * reply)  # longer than one long-poll turnaround
        latencies: list[float] = []
        related: list[tuple[int, int]] = []
        unrelated: list[tuple[int, int]] = []
        for k in range(changes):
            is_related, took, sent, held = session.one_change(k)
            (related if is_related else unrelated).append((sent, held))
            if took is not None:
                latencies.append(took)
        burst_cpu, burst_rss, converge = session.burst(burst, changes + 1)
        return Result(services, first, idle_rss, idle_cpu, latencies, related, unrelated,
                      burst_cpu, burst_rss, converge, reply)
    finally:
        session.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def report(results: list[Result]) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print("| services × 3 instances | " + " | ".join(f"{r.services:,}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("first complete render", lambda r: f"{r.first_render:.2f} s"),
        ("the double's own answer to /v1/internal/ui/nodes", lambda r: f"{r.reply * 1000:.0f} ms"),
        ("change → file p50 / p99", lambda r: f"{statistics.median(r.latencies) * 1000:.0f} / "
                                                f"{pct(r.latencies, 0.99) * 1000:.0f} ms"),
        ("requests per related change (max)", lambda r: f"{max(c for c, _ in r.related)}"),
        ("requests per unrelated change (max)", lambda r: f"{max(c for c, _ in r.unrelated)}"),
        ("connections held (max)", lambda r: f"{max(m for _, m in r.related + r.unrelated)}"),
        ("RSS idle", lambda r: f"{r.idle_rss:.0f} MB"),
        ("CPU idle", lambda r: f"{r.idle_cpu * 100:.1f} %"),
        ("CPU for the burst of changes", lambda r: f"{r.burst_cpu:.2f} s"),
        ("peak RSS during the burst", lambda r: f"{r.burst_rss:.0f} MB"),
        ("converged after the burst", lambda r: f"{r.converge:.2f} s"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")


def main() -> None:
    """Run each size and print the Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    report([run(n, args.changes, args.burst) for n in args.services])


if __name__ == "__main__":
    main()
