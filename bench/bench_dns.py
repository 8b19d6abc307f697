"""Benchmark: ctmpl with the shipped nginx template over a DNS catalog served by dnsmasq.

    python bench/bench_dns.py [--services 100 1000] [--changes 5]

For each size N, dnsmasq (on a loopback port) serves ``tasks.svc-NNNN`` with 3 A records
each, and ``python -m ctmpl -catalog dns://`` renders ``templates/nginx.conf.j2`` for the N
services named in a ``dns { }`` block. Two TTL settings are measured: answers with a TTL of
1 s (every name asked every second: the most questions ctmpl asks with the default
``ttl_min``), and Docker's embedded-DNS TTL of 600 s with ``ttl_max = "5s"``. Reported:

- first complete render after start;
- CPU share and RSS of ctmpl while idle (polling), and questions per second;
- change -> file latency (one task added to one service), median and worst of ``--changes``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import TEMPLATE, Output, cpu  # noqa: E402

from tests.daemon import Daemon  # noqa: E402
from tests.fixtures_dns import DNSMASQ_BIN, DnsServer  # noqa: E402

IDLE = 10.0


def records(services: int, extra: dict[int, int]) -> dict[str, list[str]]:
    """``tasks.svc-NNNN`` -> 3 addresses (plus ``extra[n]`` more)."""
    return {
        f"tasks.svc-{n:04d}": [f"10.{n // 250}.{n % 250}.{i + 1}"
                               for i in range(3 + extra.get(n, 0))]
        for n in range(services)
    }


def run(services: int, ttl: int, ttl_max: str, changes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = DnsServer(DNSMASQ_BIN or "dnsmasq", work, ttl=ttl)
        extra: dict[int, int] = {}
        server.set_hosts(records(services, extra), reload=False)
        server.start()
        names = ", ".join(f'"svc-{n:04d}"' for n in range(services))
        (work / "dns.hcl").write_text(
            f'dns {{\n  resolver = "{server.address}"\n  services = [{names}]\n'
            f'  tags = ["calico"]\n  port = 8080\n  ttl_max = "{ttl_max}"\n}}\n')
        dest = work / "upstreams.conf"
        args = ["-config", str(work / "dns.hcl"), "-catalog", "dns://", "-wait", "0s",
                "-template", f"{TEMPLATE}:{dest}", "-var", f"log_dir={work}"]
        output, started = Output(dest), time.monotonic()
        proc = Daemon(args, work / "ctmpl.log")
        try:
            output.wait(lambda lines: len(lines) == 3 * services)
            first = time.monotonic() - started
            ps = psutil.Process(proc.proc.pid)
            asked = server.log().count("query[")
            cpu0 = cpu(ps)
            time.sleep(IDLE)
            idle_cpu = (cpu(ps) - cpu0) / IDLE
            rate = (server.log().count("query[") - asked) / IDLE
            rss = ps.memory_info().rss
            latencies = []
            for k in range(changes):
                n = (k * 7919) % services
                extra[n] = extra.get(n, 0) + 1
                address = f"10.{n // 250}.{n % 250}.{3 + extra[n]}:8080"
                server.set_hosts(records(services, extra))
                latencies.append(output.wait(lambda lines, a=address: a in lines))
        finally:
            proc.stop()
            server.stop()
    return {
        "services": services, "ttl": ttl, "ttl_max": ttl_max, "first_render_s": round(first, 2),
        "idle_cpu_pct": round(idle_cpu * 100, 1), "questions_per_s": round(rate),
        "rss_mib": round(rss / 2**20), "change_p50_s": round(statistics.median(latencies), 2),
        "change_max_s": round(max(latencies), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--changes", type=int, default=5)
    opts = parser.parse_args()
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{psutil.cpu_count()} cores", file=sys.stderr)
    for services in opts.services:
        for ttl, ttl_max in ((1, "30s"), (600, "5s")):
            print(json.dumps(run(services, ttl, ttl_max, opts.changes)), flush=True)


if __name__ == "__main__":
    main()
