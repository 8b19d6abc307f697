"""Benchmark: a consul-template (.ctmpl) template against the equivalent Jinja template.

Both render upstream and server blocks for every service tagged ``calico`` from the same file
catalog (3 instances per service): ``bench/templates/upstreams.ctmpl`` and
``bench/templates/upstreams.j2`` produce the same upstreams (``upstreams_reuse.j2`` is the
Jinja one with a ``{% reuse %}`` block per service; Go templates keep unchanged range
iterations without markup). Reports, in CPU time (median), a render with nothing kept (a
daemon's first render), the re-render after one instance changed in the catalog (the cost of
a change in daemon mode, the file already parsed), and the whole ``ctmpl -once`` run.

    python bench/bench_ctmpl.py [--sizes 1000] [--instances 3] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_render import ROOT, after_changes, make_catalog  # noqa: E402

TEMPLATES = {"Go (`.ctmpl`)": HERE / "templates/upstreams.ctmpl",
             "Jinja": HERE / "templates/upstreams.j2",
             "Jinja with `{% reuse %}`": HERE / "templates/upstreams_reuse.j2"}


def once(catalog: Path, source: Path, out: Path) -> float:
    """Seconds of one ``ctmpl -once`` subprocess."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ctmpl", "-once", "-catalog", f"file://{catalog}",
         "-template", f"{source}:{out}", "-log-level", "err"],
        check=True, cwd=ROOT,
    )
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| services | template | render, nothing kept | re-render after one change "
          "| `-once` wall time | output |")
    print("|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            catalog = Path(tmp) / f"c{size}.yaml"
            make_catalog(catalog, size, args.instances)
            for label, source in TEMPLATES.items():
                fresh, changed = asyncio.run(after_changes(
                    Path(tmp) / f"c{size}.json", size, args.instances, args.repeat, source))
                out = Path(tmp) / f"o{size}{source.suffix}"
                wall = once(catalog, source, out)
                kib = out.stat().st_size / 1024
                print(f"| {size} | {label} | {fresh * 1000:.0f} ms | {changed * 1000:.1f} ms "
                      f"| {wall:.2f} s | {kib:.0f} KiB |")


if __name__ == "__main__":
    main()
