"""Benchmark: the ZooKeeper catalog at scale, against a real ZooKeeper server.

Registers ``--services`` services with ``--instances`` instances each (nodes
``/bench/services/<service>/<ip>:<port>``, Docker Swarm's layout), starts the real ``ctmpl``
daemon with a template that ranges over every service, and reports: the time to the first
complete render, the latency of ``--changes`` changes one after another (a new instance of
one service until the destination shows it), and the daemon's peak RSS.

    python bench/bench_zk.py [--services 1000] [--instances 5] [--changes 20]

Needs Debian's ``zookeeper`` package (the tests' ``scripts/test.sh`` installs it).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_latency import wait_text  # noqa: E402

from tests.fixtures_zk import JAR, ZkServer  # noqa: E402

TEMPLATE = """{% for s in services() %}upstream {{ s.Name }} {
{% for i in service(s.Name) %}  server {{ i.Address }}:{{ i.Port }};
{% endfor %}}
{% endfor %}"""
PREFIX = "/bench/services"


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """Register, start ctmpl, measure, print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # the writer's reconnect chatter
    if not JAR.is_file():
        sys.exit(f"{JAR} missing: apt-get install zookeeper")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ZkServer("java", work / "zk")
        server.start()
        writer = server.client()
        try:
            for s in range(args.services):
                writer.ensure_path(f"{PREFIX}/svc{s}")
                for i in range(args.instances):
                    writer.create_async(f"{PREFIX}/svc{s}/10.{s // 250}.{s % 250}.{i + 1}:80")
            writer.sync(PREFIX)
            src, out = work / "t.j2", work / "out.conf"
            src.write_text(TEMPLATE)
            last = f"10.{(args.services - 1) // 250}.{(args.services - 1) % 250}.{args.instances}"
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "ctmpl", "-catalog", f"zk://{server.hosts}{PREFIX}",
                 "-template", f"{src}:{out}", "-wait", "0s", "-log-level", "err"], cwd=ROOT)
            try:
                wait_text(out, f"server {last}:80;", timeout=120.0)
                first = time.perf_counter() - started
                times = []
                for n in range(args.changes):
                    time.sleep(0.3)  # apart: back to back would measure the watch rate limit
                    s = n % args.services
                    began = time.perf_counter()
                    writer.create(f"{PREFIX}/svc{s}/10.{s // 250}.{s % 250}.{200 + n}:81")
                    wait_text(out, f"10.{s // 250}.{s % 250}.{200 + n}:81;", timeout=120.0)
                    times.append(time.perf_counter() - began)
                rss = peak_rss_mib(proc.pid)
            finally:
                proc.terminate()
                proc.wait(10)
        finally:
            writer.stop()
            writer.close()
            server.stop()
    times.sort()
    total = args.services * args.instances
    print("| services × instances | first complete render | change latency median | p95 "
          "| peak RSS |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {args.services} × {args.instances} ({total}) | {first:.2f} s "
          f"| {statistics.median(times) * 1000:.0f} ms "
          f"| {times[max(0, int(len(times) * 0.95) - 1)] * 1000:.0f} ms | {rss:.0f} MiB |")


if __name__ == "__main__":
    main()
