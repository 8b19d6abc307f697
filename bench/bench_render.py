"""Benchmark: render the shipped nginx template for thousands of services.

Measures, for each catalog size, (1) the whole ``ctmpl -once`` run as a subprocess (start,
parse catalog, dependency discovery, render, install) with its peak memory, and (2) one
in-process re-render with all data present, the work a change costs in daemon mode.

    python bench/bench_render.py [--sizes 100,1000,5000] [--instances 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctmpl.brain import Brain  # noqa: E402
from ctmpl.config.model import CatalogConfig, TemplateConfig  # noqa: E402
from ctmpl.sources.file import FileCatalog  # noqa: E402
from ctmpl.template.engine import Template  # noqa: E402


def make_catalog(path: Path, services: int, instances: int) -> None:
    """A catalog of ``services`` services tagged calico with ``instances`` instances each."""
    data = {
        f"svc-{s:05d}": [
            {"id": f"svc-{s:05d}-{i}", "node": f"node-{i}",
             "address": f"10.{s // 250}.{s % 250}.{i + 1}",
             "port": 8000 + i, "tags": ["calico", "v1"]}
            for i in range(instances)
        ]
        for s in range(services)
    }
    path.write_text(yaml.safe_dump({"services": data}, default_flow_style=True))


def run_once(catalog: Path, out: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one ``ctmpl -once`` subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ctmpl", "-once", "-catalog", f"file://{catalog}",
         "-template", f"{ROOT / 'templates/nginx.conf.j2'}:{out}", "-log-level", "err"],
        check=True, cwd=ROOT,
    )
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


async def prepare(catalog: Path, source: Path) -> Callable[[], object]:
    """A render of ``source`` over ``catalog`` with every query answered, ready to repeat."""
    cat = FileCatalog(CatalogConfig(kind="file", file_path=str(catalog)))
    tmpl = Template(TemplateConfig(destination="x", source=str(source)))
    brain = Brain()
    while True:
        result = tmpl.render(cat, brain)
        if result.complete:
            break
        for key, query in result.deps.queries.items():
            if not brain.has(key):
                data, _ = await query.fetch(0)
                brain.set(key, data)
    return lambda: tmpl.render(cat, brain)


async def rerender(catalog: Path, repeat: int,
                   source: Path = ROOT / "templates/nginx.conf.j2") -> float:
    """Median seconds of an in-process render of ``source`` with every query answered."""
    render = await prepare(catalog, source)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        render()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    import asyncio

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| services | instances | `-once` wall time | peak RSS | re-render (daemon) | output |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            catalog, out = Path(tmp) / f"c{size}.yaml", Path(tmp) / f"o{size}.conf"
            make_catalog(catalog, size, args.instances)
            elapsed, rss = run_once(catalog, out)
            render = asyncio.run(rerender(catalog, args.repeat))
            kib = out.stat().st_size / 1024
            print(f"| {size} | {size * args.instances} | {elapsed:.2f} s | {rss:.0f} MiB "
                  f"| {render * 1000:.0f} ms | {kib:.0f} KiB |")


if __name__ == "__main__":
    main()
