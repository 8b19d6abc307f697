"""Benchmark: render the shipped nginx template for thousands of services.

Measures, for each catalog size, (1) the whole ``ctmpl -once`` run as a subprocess (start,
parse catalog, dependency discovery, render, install) with its peak memory, (2) an
in-process render with nothing to reuse (the daemon's first render, or a template without
``{% reuse %}`` blocks), and (3) the in-process re-render after one instance changed in the
catalog file, the work a change costs in daemon mode once the file is parsed (CPU time,
median; the collector settled after the first render, as the daemon does).

    python bench/bench_render.py [--sizes 100,1000,5000] [--instances 3]
"""

from __future__ import annotations

import argparse
import json
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

from ctmpl import gcpolicy  # noqa: E402
from ctmpl.brain import Brain  # noqa: E402
from ctmpl.config.model import CatalogConfig, TemplateConfig  # noqa: E402
from ctmpl.sources.file import FileCatalog  # noqa: E402
from ctmpl.template.engine import Template  # noqa: E402


def make_catalog(path: Path, services: int, instances: int, change: int = -1) -> None:
    """A catalog of ``services`` services tagged calico with ``instances`` instances each;
    ``change``: the first instance of that service gets another port. JSON for ``.json``."""
    data = {
        f"svc-{s:05d}": [
            {"id": f"svc-{s:05d}-{i}", "node": f"node-{i}",
             "address": f"10.{s // 250}.{s % 250}.{i + 1}",
             "port": 9000 if (s, i) == (change, 0) else 8000 + i, "tags": ["calico", "v1"]}
            for i in range(instances)
        ]
        for s in range(services)
    }
    if path.suffix == ".json":
        path.write_text(json.dumps({"services": data}))
    else:
        path.write_text(yaml.safe_dump({"services": data}, default_flow_style=True))


def run_once(catalog: Path, out: Path, repeat: int = 3) -> tuple[float, float]:
    """Median seconds of ``repeat`` ``ctmpl -once`` subprocesses, and their peak RSS (MiB)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ctmpl", "-once", "-catalog", f"file://{catalog}",
             "-template", f"{ROOT / 'templates/nginx.conf.j2'}:{out}", "-log-level", "err"],
            check=True, cwd=ROOT,
        )
        times.append(time.perf_counter() - start)
    # ru_maxrss of children is the largest of any child so far: sizes run in growing order.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return statistics.median(times), peak / 1024


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


async def after_changes(path: Path, services: int, instances: int, repeat: int,
                        source: Path = ROOT / "templates/nginx.conf.j2") -> tuple[float, float]:
    """Median CPU seconds of (a) a render with nothing to reuse and (b) a re-render after
    one instance changed in the file (the parse, done before, not counted)."""
    make_catalog(path, services, instances)
    cat = FileCatalog(CatalogConfig(kind="file", file_path=str(path)))
    tmpl = Template(TemplateConfig(destination="x", source=str(source)))
    tmpl.render(cat, Brain())
    gcpolicy.settle()  # as the daemon does after its first complete render
    fresh, changed = [], []
    for run in range(repeat):
        started = time.process_time()
        Template(TemplateConfig(destination="x", source=str(source))).render(cat, Brain())
        fresh.append(time.process_time() - started)
        tmpl.render(cat, Brain())
        make_catalog(path, services, instances, change=run * 7919 % services)
        await cat.reload()
        started = time.process_time()
        tmpl.render(cat, Brain())
        changed.append(time.process_time() - started)
        assert tmpl.reuse_stats.rendered <= 2, tmpl.reuse_stats
    return statistics.median(fresh), statistics.median(changed)


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    import asyncio

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| services | instances | `-once` wall time | peak RSS | render, nothing reused "
          "| re-render after one change | output |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            catalog, out = Path(tmp) / f"c{size}.yaml", Path(tmp) / f"o{size}.conf"
            make_catalog(catalog, size, args.instances)
            elapsed, rss = run_once(catalog, out)
            fresh, changed = asyncio.run(after_changes(
                Path(tmp) / f"c{size}.json", size, args.instances, args.repeat))
            kib = out.stat().st_size / 1024
            print(f"| {size} | {size * args.instances} | {elapsed:.2f} s | {rss:.0f} MiB "
                  f"| {fresh * 1000:.0f} ms | {changed * 1000:.0f} ms | {kib:.0f} KiB |")


if __name__ == "__main__":
    main()
