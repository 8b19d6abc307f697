"""Benchmark: ctmpl with the shipped nginx template over 1,000 to 10,000 etcd services.

    python bench/bench_etcd_scale.py [--services 1000 3000 10000] [--changes 200] [--burst 1000]

For each size it starts a real etcd (Debian's etcd-server; ``CTMPL_ETCD_BIN`` names another
binary) on loopback ports, writes N services × 3 instances as JSON registrations
(``/services/<service>/<id>`` = ``{"Address", "Port", "Tags", "Status"}``, half the
services tagged ``calico``), runs ``python -m ctmpl -catalog etcd://…/services`` with
``templates/nginx.conf.j2`` and ``-wait 0s``, and reports what ``bench/scale.py`` measures:
first complete render, RSS and CPU idle, change → file p50/p99 over ``--changes``
single-instance changes of mixed kinds (registration, deregistration, address, port, tag,
check flap, maintenance — etcd has no nodes), CPU and peak RSS while ``--burst`` changes
are applied back to back, and the time until the file shows all of them.

Requests and connections are counted on etcd's side: the gRPC calls ctmpl starts (etcd's
``grpc_server_started_total`` for ``Range`` and ``Watch``, read from its ``/metrics``; the
benchmark's own writes are ``Put``/``DeleteRange``/``Txn`` calls and are not counted) and
the TCP connections other processes than the benchmark hold to etcd — the daemon's (psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import Inst, report, run  # noqa: E402

from tests.fixtures_etcd import EtcdServer  # noqa: E402

PREFIX = "/services"
_STARTED = re.compile(
    r'^grpc_server_started_total\{grpc_method="(Range|Watch)",[^}]*\} (\d+)', re.MULTILINE)


def etcd_binary() -> str:
    binary = os.environ.get("CTMPL_ETCD_BIN") or shutil.which("etcd")
    if not binary:
        raise SystemExit("etcd not found: apt-get install etcd-server (or set CTMPL_ETCD_BIN)")
    return binary


def key(inst: Inst) -> str:
    return f"{PREFIX}/{inst.service}/{inst.id}"


def value(inst: Inst) -> str:
    status = "maintenance" if inst.maintenance else inst.status
    return json.dumps({"Address": inst.address, "Port": inst.port, "Tags": list(inst.tags),
                       "Status": status})


class EtcdCounter:
    """ctmpl's gRPC calls to etcd (from etcd's metrics) and its TCP connections to etcd."""

    def __init__(self, server: EtcdServer) -> None:
        self._server = server
        self._port = server.client_port
        self._max = 0

    def _calls(self) -> int:
        with urllib.request.urlopen(f"http://{self._server.endpoint}/metrics", timeout=30) as r:
            text = r.read().decode()
        return sum(int(count) for _, count in _STARTED.findall(text))

    @property
    def open_connections(self) -> int:
        """Established connections to etcd from processes other than this one and etcd (whose
        JSON gateway connects to its own gRPC port)."""
        etcd = self._server._proc.pid if self._server._proc else None
        return sum(1 for c in psutil.net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == self._port and c.status == "ESTABLISHED"
                   and c.pid not in (None, os.getpid(), etcd))

    @property
    def max_connections(self) -> int:
        return max(self._max, self.open_connections)

    @max_connections.setter
    def max_connections(self, value: int) -> None:
        self._max = value

    def mark(self) -> int:
        return self._calls()

    def since(self, mark: int) -> list[str]:
        return ["call"] * (self._calls() - mark)

    def quiet(self, for_seconds: float = 0.5, timeout: float = 20.0) -> None:
        """Wait until ctmpl starts no call for ``for_seconds``."""
        deadline = time.monotonic() + timeout
        last = self._calls()
        while time.monotonic() < deadline:
            time.sleep(for_seconds)
            self._max = max(self._max, self.open_connections)
            now = self._calls()
            if now == last:
                return
            last = now


class EtcdBackend:
    """A real etcd member on loopback ports, written to over its JSON gateway."""

    kinds = ("registration", "address", "port", "tag", "flap", "maintenance")

    def __init__(self) -> None:
        binary = etcd_binary()
        version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[2]
        self.label = f"etcd {version}"
        self.server = EtcdServer(binary, Path(tempfile.mkdtemp(prefix="ctmpl-bench-")) / "etcd")
        self.server.start()
        self.count = EtcdCounter(self.server)

    def daemon_args(self) -> list[str]:
        return ["-catalog", f"etcd://{self.server.endpoint}{PREFIX}"]

    def load(self, instances: Iterable[Inst]) -> None:
        pairs = [(key(i), value(i)) for i in instances]
        for start in range(0, len(pairs), 128):  # etcd's default limit of operations per txn
            self.server.put_all(dict(pairs[start:start + 128]))

    def put(self, old: Inst | None, new: Inst) -> None:
        self.server.put(key(new), value(new))

    def remove(self, inst: Inst) -> None:
        self.server.delete(key(inst))

    def node_health(self, node: str, passing: bool) -> None:
        raise NotImplementedError("etcd registrations have no nodes")

    def reply_time(self) -> float | None:
        return None  # ctmpl reads the whole prefix once, then only the watch's events

    def counter(self) -> EtcdCounter:
        return self.count

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.server.data_dir.parent, ignore_errors=True)


def main() -> None:
    """Run each size and print the Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    report([run(EtcdBackend(), n, args.changes, args.burst) for n in args.services])


if __name__ == "__main__":
    main()
