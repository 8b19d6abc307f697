"""Benchmark: a consul-template (.ctmpl) template against the equivalent Jinja template.

Both render upstream and server blocks for every service tagged ``calico`` from the same file
catalog (3 instances per service): ``bench/templates/upstreams.ctmpl`` and
``bench/templates/upstreams.j2`` produce the same upstreams. Reports the in-process re-render
(the cost of a change in daemon mode) and the whole ``ctmpl -once`` run, and the ratio.

    python bench/bench_ctmpl.py [--sizes 1000] [--instances 3] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_render import ROOT, make_catalog, prepare  # noqa: E402

TEMPLATES = {"Go (.ctmpl)": HERE / "templates/upstreams.ctmpl",
             "Jinja": HERE / "templates/upstreams.j2"}


def once(catalog: Path, source: Path, out: Path) -> float:
    """Seconds of one ``ctmpl -once`` subprocess."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ctmpl", "-once", "-catalog", f"file://{catalog}",
         "-template", f"{source}:{out}", "-log-level", "err"],
        check=True, cwd=ROOT,
    )
    return time.perf_counter() - start


def interleaved(catalog: Path, repeat: int) -> tuple[dict[str, float], float]:
    """Median render time per template, renders alternating so both see the same load;
    and the median of the per-pair time ratios (Go / Jinja)."""
    renders = {label: asyncio.run(prepare(catalog, source)) for label, source in TEMPLATES.items()}
    times: dict[str, list[float]] = {label: [] for label in renders}
    ratios = []
    for _ in range(repeat):
        pair = []
        for label, render in renders.items():
            start = time.perf_counter()
            render()
            pair.append(time.perf_counter() - start)
            times[label].append(pair[-1])
        ratios.append(pair[0] / pair[1])
    return {k: statistics.median(v) for k, v in times.items()}, statistics.median(ratios)


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print("| services | template | re-render (daemon) | `-once` wall time | output |")
    print("|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            catalog = Path(tmp) / f"c{size}.yaml"
            make_catalog(catalog, size, args.instances)
            renders, ratio = interleaved(catalog, args.repeat)
            walls = {}
            for label, source in TEMPLATES.items():
                out = Path(tmp) / f"o{size}{source.suffix}"
                walls[label] = once(catalog, source, out)
                kib = out.stat().st_size / 1024
                print(f"| {size} | {label} | {renders[label] * 1000:.0f} ms "
                      f"| {walls[label]:.2f} s | {kib:.0f} KiB |")
            wall_ratio = walls["Go (.ctmpl)"] / walls["Jinja"]
            print(f"| {size} | ratio Go/Jinja | {ratio:.2f}× | {wall_ratio:.2f}× | |")


if __name__ == "__main__":
    main()
