"""Benchmark: how long from a catalog change to the rewritten file, for each catalog.

Runs the real ``ctmpl`` daemon (``-wait 0s``) against the file catalog, the Consul API
double used by the tests, and a real etcd when the ``etcd`` binary is installed; makes
``--changes`` changes one after another and times each until the destination shows it.

    python bench/bench_latency.py [--changes 30]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.consul_double import ConsulDouble  # noqa: E402

TEMPLATE = '{% for i in service("web") %}{{ i.ID }} {{ i.Port }}\n{% endfor %}'


def wait_text(path: Path, needle: str, timeout: float = 20.0) -> float:
    """Seconds until ``path`` contains ``needle``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if needle in path.read_text():
                return time.perf_counter() - start
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"{path} never showed {needle!r}")


def measure(args: list[str], out: Path, change: Callable[[int], None], n: int) -> list[float]:
    """Start ctmpl, then time ``n`` changes (change i makes port 10000+i appear)."""
    change(0)
    proc = subprocess.Popen([sys.executable, "-m", "ctmpl", *args, "-wait", "0s",
                             "-log-level", "err"], cwd=ROOT)
    try:
        wait_text(out, " 10000\n")
        times = []
        for i in range(1, n + 1):
            # Space changes out: back to back, they would measure the watch's rate limit
            # (100 ms + jitter between two queries of one watch), not the latency.
            time.sleep(0.3)
            started = time.perf_counter()
            change(i)
            wait_text(out, f" {10000 + i}\n")
            times.append(time.perf_counter() - started)
        return times
    finally:
        proc.terminate()
        proc.wait(10)


def file_catalog(tmp: Path, n: int) -> list[float]:
    """Changes written atomically to a YAML catalog file."""
    catalog, out = tmp / "catalog.json", tmp / "file.out"

    def change(i: int) -> None:
        data = {"services": {"web": [{"id": "w", "address": "127.0.0.1", "port": 10000 + i}]}}
        (tmp / "c.tmp").write_text(json.dumps(data))
        os.replace(tmp / "c.tmp", catalog)

    src = tmp / "t.j2"
    src.write_text(TEMPLATE)
    return measure(["-catalog", f"file://{catalog}", "-template", f"{src}:{out}"], out, change, n)


def consul_double(tmp: Path, n: int) -> list[float]:
    """Re-registrations through the Consul agent API of the test double."""
    consul = ConsulDouble()
    consul.start()
    out = tmp / "consul.out"

    def change(i: int) -> None:
        body = json.dumps({"ID": "w", "Name": "web", "Address": "127.0.0.1", "Port": 10000 + i})
        req = urllib.request.Request(f"http://{consul.addr}/v1/agent/service/register",
                                     data=body.encode(), method="PUT")
        urllib.request.urlopen(req, timeout=5).read()

    src = tmp / "t.j2"
    src.write_text(TEMPLATE)
    try:
        return measure(["-consul-addr", consul.addr, "-template", f"{src}:{out}"], out, change, n)
    finally:
        consul.stop()


def b64(text: str) -> str:
    """Base64 of UTF-8 text, as etcd's JSON gateway wants keys and values."""
    return base64.b64encode(text.encode()).decode()


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def etcd(tmp: Path, n: int) -> list[float] | None:
    """Puts to a real etcd (None when etcd is not installed)."""
    binary = shutil.which("etcd") or shutil.which("etcd", path="/usr/bin:/usr/sbin")
    if binary is None:
        return None
    client, peer = free_port(), free_port()
    proc = subprocess.Popen(
        [binary, "--data-dir", str(tmp / "etcd"), "--listen-client-urls",
         f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
         f"http://127.0.0.1:{peer}", "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp / "etcd.out"

    def change(i: int) -> None:  # etcd's v3 JSON gateway: no etcdctl needed
        body = {"key": b64("services/web/w"), "value": b64(f"127.0.0.1:{10000 + i}")}
        req = urllib.request.Request(f"http://127.0.0.1:{client}/v3/kv/put",
                                     data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    src = tmp / "t.j2"
    src.write_text(TEMPLATE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                change(0)
                break
            except OSError:
                time.sleep(0.2)
        return measure(["-catalog", f"etcd://127.0.0.1:{client}/services",
                        "-template", f"{src}:{out}"], out, change, n)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    """Run every catalog and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    print("| catalog | changes | median | p95 | max |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("file", file_catalog), ("Consul (API double)", consul_double),
                          ("etcd 3.4", etcd)):
            work = Path(tmp) / name.split()[0]
            work.mkdir()
            times = run(work, args.changes)
            if times is None:
                print(f"| {name} | — | not installed | | |")
                continue
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(f"| {name} | {len(times)} | {statistics.median(times) * 1000:.0f} ms "
                  f"| {p95 * 1000:.0f} ms | {times[-1] * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
