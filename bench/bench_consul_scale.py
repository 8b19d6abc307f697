"""Benchmark: ctmpl with the shipped nginx template over 1,000 and 10,000 Consul services.

    python bench/bench_consul_scale.py [--services 1000 10000] [--changes 200] [--burst 1000]
                                       [--starts 3] [--order stable|shuffled]

For each size it builds a catalog of N services × 3 instances on 20 nodes (half the
services tagged ``calico``) in the test suite's Consul API double — or, when
``CTMPL_CONSUL_BIN`` names a consul binary, in a real ``consul agent -dev`` on loopback ports,
filled through its catalog API — puts a counting proxy (``tests.consul_proxy``) in front of
it, runs ``python -m ctmpl`` with ``templates/nginx.conf.j2`` and ``-wait 0s``, and reports
what ``bench/scale.py`` measures: first complete render (median of ``--starts`` daemon
starts, wall and the daemon's CPU), RSS and CPU idle, change → file p50/p99 over
``--changes`` single-instance changes of mixed kinds (registration, deregistration, address,
port, tag, check flap, node failure, maintenance) split into the agent's reply (until the
proxy passed on the last byte of the answer that carried the change) and ctmpl's time beyond
it (until ctmpl wrote the file), ctmpl's CPU per change, requests sent and connections held
per change (related / unrelated), CPU and peak RSS while ``--burst`` changes are applied back
to back, and the time until the file shows all of them. ``--changes 0`` measures the first
render only. The output is the README's Markdown table, ready to paste.

Every change is written through Consul's catalog API (``PUT /v1/catalog/register`` and
``/deregister``), as an external registration would: a node failure is a failing node
check, maintenance mode the ``_service_maintenance:<id>`` check an agent registers. The
double runs in its own process, filled from a file at start (30,000 registrations over HTTP
take a while; a real agent is filled over HTTP by 8 threads). It writes
``/v1/internal/ui/nodes`` in an agent's order (nodes by name, instances by ID: an unchanged
node's bytes repeat from answer to answer, which ctmpl makes use of); ``--order shuffled``
serves the double's test-suite default instead, a new random order every answer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import Inst, node_address, report, run  # noqa: E402

from tests.consul_proxy import ConsulProxy  # noqa: E402
from tests.fixtures_consul import AgentServer, consul_binary  # noqa: E402

MAINT = "_service_maintenance:"


def register_body(inst: Inst) -> dict[str, Any]:
    """The catalog registration of one instance with its check."""
    return {
        "Node": inst.node, "Address": node_address(inst.node),
        "Service": {"ID": inst.id, "Service": inst.service, "Address": inst.address,
                    "Port": inst.port, "Tags": list(inst.tags)},
        "Check": {"CheckID": f"chk-{inst.id}", "Name": "check", "Status": inst.status,
                  "ServiceID": inst.id},
    }


def check_body(inst: Inst, check_id: str, status: str) -> dict[str, Any]:
    return {"Node": inst.node, "Address": node_address(inst.node),
            "Check": {"CheckID": check_id, "Name": check_id, "Status": status,
                      "ServiceID": inst.id}}


class ConsulBackend:
    """The double (in its own process) or a real dev agent, behind a counting proxy."""

    kinds: tuple[str, ...] = ("registration", "address", "port", "tag", "flap", "node",
                              "maintenance")

    def __init__(self, order: str = "stable") -> None:
        binary = consul_binary()
        self.order = order
        self.workdir = Path(tempfile.mkdtemp(prefix="ctmpl-bench-"))
        self.agent: AgentServer | None = None
        self.double: subprocess.Popen[str] | None = None
        self.addr = ""
        if binary:
            self.agent = AgentServer(binary, self.workdir)
            self.agent.start()
            self.addr = self.agent.addr
            version = self.call("GET", "/v1/agent/self")["Config"]["Version"]
            self.label = f"consul {version}"
        else:
            self.label = f"Consul API double ({order} order)"
        self.proxy: ConsulProxy | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.addr}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def daemon_args(self) -> list[str]:
        assert self.proxy is not None
        return ["-consul-addr", self.proxy.addr]

    def load(self, instances: Iterable[Inst]) -> None:
        bodies = [register_body(i) for i in instances]
        if self.agent is None:
            # The double runs in its own process (as an agent would): in this one it would
            # share one interpreter lock with the proxy and the file checks.
            load = self.workdir / "catalog.json"
            load.write_text(json.dumps(bodies))
            self.double = subprocess.Popen(
                [sys.executable, "-m", "tests.consul_double", "--load", str(load),
                 "--order", self.order],
                cwd=ROOT, stdout=subprocess.PIPE, text=True)
            assert self.double.stdout is not None
            self.addr = self.double.stdout.readline().strip()
        else:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda b: self.call("PUT", "/v1/catalog/register", b), bodies))
        self.proxy = ConsulProxy(self.addr)
        self.proxy.start()

    def put(self, old: Inst | None, new: Inst) -> None:
        if old is not None and old.maintenance != new.maintenance:
            if new.maintenance:
                self.call("PUT", "/v1/catalog/register",
                          check_body(new, MAINT + new.id, "critical"))
            else:
                self.call("PUT", "/v1/catalog/deregister",
                          {"Node": new.node, "CheckID": MAINT + new.id})
        elif old is not None and old.status != new.status:
            self.call("PUT", "/v1/catalog/register", check_body(new, f"chk-{new.id}", new.status))
        else:
            self.call("PUT", "/v1/catalog/register", register_body(new))

    def remove(self, inst: Inst) -> None:
        self.call("PUT", "/v1/catalog/deregister", {"Node": inst.node, "ServiceID": inst.id})

    def node_health(self, node: str, passing: bool) -> None:
        self.call("PUT", "/v1/catalog/register", {
            "Node": node, "Address": node_address(node),
            "Check": {"CheckID": "node-health", "Name": "node health",
                      "Status": "passing" if passing else "critical"}})

    def reply_time(self) -> float:
        """Median seconds Consul takes to answer ``/v1/internal/ui/nodes`` by itself."""
        times = []
        for _ in range(5):
            started = time.perf_counter()
            urllib.request.urlopen(f"http://{self.addr}/v1/internal/ui/nodes", timeout=60).read()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    def counter(self) -> ConsulProxy | None:
        return self.proxy

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.agent is not None:
            self.agent.stop()
        if self.double is not None:
            self.double.terminate()
            self.double.wait(15)


def main() -> None:
    """Run each size and print the Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=3,
                        help="daemon starts timed to the first complete render (median)")
    parser.add_argument("--order", choices=("stable", "shuffled"), default="stable",
                        help="the double's /v1/internal/ui/nodes order: an agent's (sorted, "
                        "so an unchanged node's bytes repeat), or new at random every answer")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    report([run(ConsulBackend(args.order), n, args.changes, args.burst, args.starts)
            for n in args.services])


if __name__ == "__main__":
    main()
