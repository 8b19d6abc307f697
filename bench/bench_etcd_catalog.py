"""Benchmark: CPU the etcd catalog spends on one change, at 1,000 and 3,000 services.

    python bench/bench_etcd_catalog.py [--services 1000 3000] [--changes 100]

Builds N services × 3 instances (half tagged ``calico``) in a real etcd (the test suite's
fixture: Debian's etcd-server), watches them in this process as the shipped nginx template
does — ``services()`` and ``service(name, tag="calico")`` for every tagged service, through
``ctmpl.watch`` — and makes single-instance changes of mixed kinds (address, port, check
flap, new instance, removal) from a separate writer process. For each change it reports
the CPU this process used from the write until it is quiet again (the catalog's decoding,
indexing and every woken query; no rendering), and the time until the changed service's
query emitted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctmpl.config.model import CatalogConfig, EtcdConfig  # noqa: E402
from ctmpl.sources.base import service_by_name  # noqa: E402
from ctmpl.sources.etcd import EtcdCatalog  # noqa: E402
from ctmpl.watch import Watcher, WatchPolicy  # noqa: E402
from tests.fixtures_etcd import EtcdServer  # noqa: E402

INSTANCES = 3
WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.fixtures_etcd import EtcdServer
server = EtcdServer.__new__(EtcdServer)
server.endpoint, server._scheme, server._context, server._token = sys.argv[2], "http", None, ""
for line in sys.stdin:
    op, key, value = line.rstrip("\\n").split("\\t")
    rev = server.put(key, value) if op == "put" else server.delete(key)
    print(rev, flush=True)
"""


def name(n: int) -> str:
    return f"svc-{n:05d}"


def value(n: int, i: int, *, address: str = "", port: int = 8080, status: str = "passing") -> str:
    tags = ["calico", "v1"] if n % 2 == 0 else ["internal"]
    return json.dumps({"Address": address or f"10.{i + 1}.{n // 250}.{n % 250 + 1}",
                       "Port": port, "Tags": tags, "Status": status})


def load(etcd: EtcdServer, services: int) -> None:
    pairs = [(f"/services/{name(n)}/{i}", value(n, i))
             for n in range(services) for i in range(INSTANCES)]
    for start in range(0, len(pairs), 128):  # etcd's default limit of operations per txn
        etcd.put_all(dict(pairs[start:start + 128]))


async def quiet(period: float = 0.05, threshold: float = 0.002) -> None:
    """Return once this process used less than ``threshold`` CPU seconds in ``period``."""
    while True:
        before = time.process_time()
        await asyncio.sleep(period)
        if time.process_time() - before < threshold:
            return


class Writer:
    """A separate process that writes to etcd, so its CPU is not counted as ours."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls, endpoint: str) -> Writer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(ROOT), endpoint,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def send(self, op: str, key: str, text: str = "") -> int:
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(f"{op}\t{key}\t{text}\n".encode())
        await self._proc.stdin.drain()
        return int(await self._proc.stdout.readline())

    async def close(self) -> None:
        assert self._proc.stdin
        self._proc.stdin.close()
        await self._proc.wait()


async def measure(etcd: EtcdServer, services: int, changes: int) -> dict[str, list[float]]:
    config = CatalogConfig(kind="etcd", block_query_wait=300.0,
                           etcd=EtcdConfig(endpoints=(etcd.endpoint,), prefix="/services"))
    catalog = EtcdCatalog(config)
    emitted: dict[str, int] = {}

    def emit(key: str, data: object) -> None:
        emitted[key] = emitted.get(key, 0) + 1

    def fail(key: str, exc: BaseException) -> None:
        raise SystemExit(f"{key}: {exc}")

    watcher = Watcher(WatchPolicy(), emit, fail)
    keys = {}
    started = time.perf_counter()
    cpu0 = time.process_time()
    watcher.add(catalog.services())
    for n in range(0, services, 2):
        query = catalog.service(service_by_name(name(n), "calico"))
        keys[n] = query.key
        watcher.add(query)
    while len(emitted) < len(keys) + 1:  # noqa: ASYNC110 - counts emits, nothing to await
        await asyncio.sleep(0.01)
    first = (time.perf_counter() - started, time.process_time() - cpu0)
    await quiet()
    writer = await Writer.start(etcd.endpoint)
    rng = random.Random(1)
    cpu: list[float] = []
    latency: list[float] = []
    for k in range(changes):
        n, i = rng.randrange(0, services, 2), rng.randrange(INSTANCES)
        kind = rng.choice(["address", "port", "flap", "add", "remove"])
        key = f"/services/{name(n)}/{i}"
        op, text = "put", value(n, i)
        if kind == "address":
            text = value(n, i, address=f"172.16.{k // 250}.{k % 250 + 1}")
        elif kind == "port":
            text = value(n, i, port=9000 + k)
        elif kind == "flap":
            text = value(n, i, status="critical")
        elif kind == "add":
            key = f"/services/{name(n)}/extra-{k}"
        else:
            op = "delete"
        seen = emitted.get(keys[n], 0)
        before, cpu_before = time.perf_counter(), time.process_time()
        await writer.send(op, key, text)
        while emitted.get(keys[n], 0) == seen:  # noqa: ASYNC110 - as above
            await asyncio.sleep(0.0005)
        latency.append(time.perf_counter() - before)
        await quiet()
        cpu.append(time.process_time() - cpu_before)
        await writer.send("put", f"/services/{name(n)}/{i}", value(n, i))  # undo
        await quiet()
    await writer.close()
    await watcher.aclose()
    await catalog.aclose()
    return {"first": list(first), "cpu": cpu, "latency": latency}


def run(services: int, changes: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="ctmpl-bench-etcd-") as tmp:
        binary = EtcdServer.binary() if hasattr(EtcdServer, "binary") else "etcd"
        etcd = EtcdServer(binary, Path(tmp) / "data")
        etcd.start()
        try:
            load(etcd, services)
            return asyncio.run(measure(etcd, services, changes))
        finally:
            etcd.stop()


def main() -> None:
    """Run each size and print one line per size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    for services in args.services:
        r = run(services, args.changes)
        cpu, lat = sorted(r["cpu"]), sorted(r["latency"])
        print(f"{services} services: first answers {r['first'][0]:.2f} s "
              f"({r['first'][1]:.2f} s CPU); CPU per change median "
              f"{statistics.median(cpu) * 1000:.1f} ms, max {cpu[-1] * 1000:.1f} ms; "
              f"change -> query emitted median {statistics.median(lat) * 1000:.1f} ms, "
              f"max {lat[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
