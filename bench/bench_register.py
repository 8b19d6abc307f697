"""Benchmark: what one ``ctmpl register`` sidekick costs, and how fast it reacts.

Starts a real etcd (the tests' fixture class), a loopback TCP/HTTP backend and the sidekick
with a 1 s interval; reports CPU share and RSS over ``--seconds``, then the time from
stopping the backend to the key's removal (expected: about ``fall`` intervals).

    python bench/bench_register.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures_etcd import EtcdServer  # noqa: E402


class Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def run(etcd: EtcdServer, check: str, seconds: float) -> None:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    Thread(target=backend.serve_forever, args=(0.05,), daemon=True).start()
    port = int(backend.server_address[1])
    key = f"services/web/127.0.0.1:{port}"
    args = [sys.executable, "-m", "ctmpl", "register", "-catalog",
            f"etcd://{etcd.endpoint}/services", "-service", "web", "-address",
            f"127.0.0.1:{port}", "-check", check, "-interval", "1s", "-log-level", "err"]
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT)
    try:
        while etcd.get(key) is None and etcd.get(f"/{key}") is None:
            time.sleep(0.01)
        registered = time.perf_counter() - started
        sidekick = psutil.Process(proc.pid)
        time.sleep(2)
        cpu0 = sum(sidekick.cpu_times()[:2])
        time.sleep(seconds)
        cpu = (sum(sidekick.cpu_times()[:2]) - cpu0) / seconds * 100
        rss = sidekick.memory_info().rss / 2**20
        backend.shutdown()
        backend.server_close()
        stopped = time.perf_counter()
        while etcd.get(key) is not None or etcd.get(f"/{key}") is not None:
            time.sleep(0.01)
        removed = time.perf_counter() - stopped
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"| {check} | {registered:.2f} s | {cpu:.2f}% | {rss:.0f} MiB | {removed:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        etcd = EtcdServer("etcd", Path(tmp) / "etcd-data")
        etcd.start()
        try:
            print("| check | start → registered | CPU (one core) | RSS "
                  "| backend stopped → key gone |")
            print("|---|---:|---:|---:|---:|")
            for check in ("tcp", "http:/"):
                run(etcd, check, opts.seconds)
        finally:
            etcd.stop()


if __name__ == "__main__":
    main()
