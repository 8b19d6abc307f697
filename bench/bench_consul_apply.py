"""Benchmark: what ctmpl does with one Consul answer, beyond the agent's reply, in process.

    python bench/bench_consul_apply.py [--services 1000 10000] [--changes 200]
        [--order stable shuffled] [--burst 1000] [--profile N]

Where ``bench_consul_scale.py`` times a change end to end through HTTP (the agent's or the
double's answer time included), this one times only what ctmpl does after the answer's bytes
arrived, stage by stage, with CPU time beside wall time (CPU time hardly depends on what else
runs on the machine).

For each size, a separate process holds the test suite's Consul double's catalog
(``tests.consul_double.ConsulState``): N services × 3 instances on 20 nodes, half tagged
``calico``, filled and changed with the registrations ``bench_consul_scale.py`` sends (the
single-instance changes of mixed kinds of ``bench/scale.py``: registration, deregistration,
address, port, tag, check flap, node failure, maintenance, each followed by its undo). After
each change it sends this process the ``/v1/internal/ui/nodes`` answer as the double builds
it — nodes and each node's instances in a new random order every answer, as the double
serves them (``shuffled``), or in the same order every time, as an agent writes them
(``stable``; an agent sorts them).

This process holds what the daemon holds: a ``ConsulCatalog`` whose catalog-wide long-poll
gets those answers, one query watch per query of the shipped nginx template
(``templates/nginx.conf.j2``), the brain, the template and its destination file. Per answer:

- ``feed``: the long-poll hands the answer over (decoding and diffing it, the stamps of the
  names that changed), and the woken watches read their new data into the brain;
- ``render``: the template renders;
- ``install``: the destination is read and the file installed, as the pipeline does
  (``Pipeline.install_state``: temp file, fsync, rename);
- ``total``: the three, from the answer's arrival to the file written.

Each related change is checked in the file (its ``server`` lines present or gone). Reported per
size and order: p50 / p99 of CPU and wall time per stage, total by change kind, RSS after the
first render and peak RSS (this process only), and with ``--burst`` one answer carrying that
many address changes. ``--profile N`` prints cProfile's top N functions over the changes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_consul_scale import ConsulBackend, register_body  # noqa: E402
from scale import TEMPLATE, Changes, Model, Output, machine, pct  # noqa: E402

ORDERS = ("stable", "shuffled")
SPINS = 3  # event-loop turns after an answer: the woken watches run in the first two


# -- the answer maker (its own process: the catalog's memory is not ctmpl's) --------------


class StateBackend(ConsulBackend):
    """``bench_consul_scale``'s backend writing into a ``ConsulState`` in this process."""

    def __init__(self, state: Any) -> None:  # no agent, no double process
        self.state = state

    def call(self, method: str, path: str, body: Any = None) -> Any:
        if path == "/v1/catalog/register":
            self.state.catalog_register(body)
        elif path == "/v1/catalog/deregister":
            self.state.catalog_deregister(body)
        else:
            raise ValueError(f"{method} {path}")


class AnswerMaker:
    """The double's catalog and its ``/v1/internal/ui/nodes`` answer (which it rebuilds
    only for the nodes a write touched), in its random order or in an agent's."""

    def __init__(self, services: int, order: str, seed: int) -> None:
        from tests.consul_double import ConsulState

        random.seed(seed)
        self.state = ConsulState()
        self.state.ui.stable = order == "stable"
        self.model = Model(services)
        for inst in self.model.instances.values():
            self.state.catalog_register(register_body(inst))
        self.changes = Changes(self.model, StateBackend(self.state), random.Random(seed))

    def answer(self) -> tuple[int, bytes]:
        """(index, body) of ``/v1/internal/ui/nodes`` now."""
        index, body = self.state.ui_nodes()
        return index, body.build()

    def changes_forever(self) -> Iterator[Any]:
        while True:
            yield from self.changes.pair()


def serve(services: int, order: str, seed: int) -> None:
    """The maker's side: one line in (``first``, ``next`` or ``burst K``), one answer out
    (a JSON header line, then the body)."""
    maker = AnswerMaker(services, order, seed)
    changes = maker.changes_forever()
    out = sys.stdout.buffer
    for line in sys.stdin:
        words = line.split()
        head: dict[str, Any] = {"kind": words[0]}
        if words[0] == "next":
            change = next(changes)
            change.apply()
            head.update(kind=change.kind, related=change.related,
                        present=sorted(change.present), absent=sorted(change.absent))
        elif words[0] == "burst":
            for _ in range(int(words[1])):
                maker.changes.address_change().apply()
            model = maker.model
            head["lines"] = sorted(model.lines(model.instances.values()))
        index, body = maker.answer()
        head.update(index=index, size=len(body))
        out.write(json.dumps(head).encode() + b"\n" + body)
        out.flush()


class Maker:
    """This process's handle on the maker process."""

    def __init__(self, services: int, order: str, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(services), order, str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)

    def ask(self, what: str) -> tuple[dict[str, Any], bytes]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(what.encode() + b"\n")
        stdin.flush()
        head = json.loads(stdout.readline())
        return head, _read_exactly(stdout, head["size"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise SystemExit("the answer maker stopped")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- ctmpl's side ---------------------------------------------------------------------------


@dataclass
class Stages:
    """CPU and wall seconds per stage, one entry per answer."""

    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, stage: str, cpu: float, wall: float) -> None:
        self.cpu[stage].append(cpu)
        self.wall[stage].append(wall)


@dataclass
class Result:
    services: int
    order: str
    answer_bytes: int = 0
    changes: Stages = field(default_factory=Stages)
    burst: Stages = field(default_factory=Stages)
    burst_size: int = 0
    first_rss: float = 0.0
    peak_rss: float = 0.0


class Daemon:
    """The parts of the daemon a Consul answer goes through, driven one answer at a time."""

    def __init__(self, workdir: Path) -> None:
        from ctmpl import memory
        from ctmpl.brain import Brain
        from ctmpl.config.model import CatalogConfig, TemplateConfig
        from ctmpl.pipeline import Pipeline
        from ctmpl.render import TemplateState
        from ctmpl.sources.consul import ConsulCatalog
        from ctmpl.template.engine import Template
        from ctmpl.watch import Watcher, WatchPolicy

        memory.large_blocks_to_system()  # as the daemon's entry point does
        self.answers: asyncio.Queue[Any] = asyncio.Queue()
        # Watches never time out during the run; the rate limit between two reads of one
        # query is the daemon's defence against a flapping source, not part of the cost.
        self.catalog = ConsulCatalog(CatalogConfig(block_query_wait=3600.0))
        self.catalog.long_poll = self._long_poll  # type: ignore[method-assign]
        self.brain = Brain()
        self.dest = workdir / "nginx.conf"
        self.state = TemplateState(Template(TemplateConfig(str(self.dest), str(TEMPLATE))))
        self.pipeline = Pipeline(self.catalog, self.brain)
        self.emitted = False
        self.watcher = Watcher(WatchPolicy(min_interval=0.0, jitter=0.0), self._emit, self._fail)

    async def _long_poll(self, key: str, path: str, params: Any, index: int) -> Any:
        return await self.answers.get()

    def _emit(self, key: str, data: object) -> None:
        self.emitted |= self.brain.set(key, data)

    def _fail(self, key: str, exc: BaseException) -> None:
        raise SystemExit(f"{key}: {exc}")

    async def feed(self, index: int, body: bytes) -> None:
        """Hand one answer to the catalog-wide long-poll; return once the watches it woke
        have read their data."""
        from ctmpl.sources.consul_http import Answer

        self.catalog.feed("catalog")
        self.answers.put_nowait(Answer(index=index, raw=body))
        for _ in range(SPINS):
            await asyncio.sleep(0)

    def render(self) -> bytes | None:
        self.emitted = False
        content = self.state.render(self.catalog, self.brain, time.monotonic())
        for query in self.state.queries.values():
            self.watcher.add(query)
        return content

    async def install(self, content: bytes) -> None:
        from ctmpl.install import read_current
        from ctmpl.pipeline import PassResult

        current = await asyncio.to_thread(read_current, self.dest)
        await self.pipeline.install_state(self.state, content, current, PassResult())

    async def first(self, index: int, body: bytes) -> None:
        """The first answer, then renders until the template is complete and installed."""
        await self.feed(index, body)
        for _ in range(1000):
            content = self.render()
            if content is not None:
                await self.install(content)
                return
            for _ in range(SPINS):
                await asyncio.sleep(0)
        raise SystemExit("the first render never completed")

    async def apply(self, index: int, body: bytes, stages: Stages) -> float:
        """One answer through every stage; the CPU seconds it took in all."""
        c0, w0 = time.process_time(), time.perf_counter()
        await self.feed(index, body)
        c1, w1 = time.process_time(), time.perf_counter()
        content = self.render() if self.emitted else None
        c2, w2 = time.process_time(), time.perf_counter()
        if content is not None:
            await self.install(content)
        c3, w3 = time.process_time(), time.perf_counter()
        stages.add("feed", c1 - c0, w1 - w0)
        stages.add("render", c2 - c1, w2 - w1)
        stages.add("install", c3 - c2, w3 - w2)
        stages.add("total", c3 - c0, w3 - w0)
        return c3 - c0

    async def aclose(self) -> None:
        await self.watcher.aclose()
        await self.catalog.aclose()


def _rss() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


async def measure(services: int, order: str, *, changes: int, burst: int, seed: int,
                  profile: int) -> Result:
    from ctmpl import gcpolicy

    result = Result(services, order)
    maker = Maker(services, order, seed)
    workdir = Path(tempfile.mkdtemp(prefix="ctmpl-apply-"))
    daemon = Daemon(workdir)
    out = Output(daemon.dest)
    try:
        head, body = maker.ask("first")
        result.answer_bytes = len(body)
        await daemon.first(head["index"], body)
        del body
        gcpolicy.settle()  # as the daemon does after its first complete render
        result.first_rss = result.peak_rss = _rss()
        profiler = cProfile.Profile() if profile else None
        for _ in range(changes):
            head, body = maker.ask("next")
            if profiler is not None:
                profiler.enable()
            took = await daemon.apply(head["index"], body, result.changes)
            if profiler is not None:
                profiler.disable()
            del body
            result.peak_rss = max(result.peak_rss, _rss())
            if head["related"]:
                result.changes.by_kind[head["kind"]].append(took)
                lines = out.refresh()
                if not set(head["present"]) <= lines or set(head["absent"]) & lines:
                    raise SystemExit(f"{head['kind']}: the file does not show the change")
        if burst:
            head, body = maker.ask(f"burst {burst}")
            await daemon.apply(head["index"], body, result.burst)
            del body
            result.burst_size = burst
            result.peak_rss = max(result.peak_rss, _rss())
            if out.refresh() != set(head["lines"]):
                raise SystemExit("burst: the file does not show every change")
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
    finally:
        await daemon.aclose()
        maker.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.peak_rss = max(result.peak_rss, peak)
    return result


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values) * 1000:.1f} / {pct(values, 0.99) * 1000:.1f}"


def report(results: list[Result]) -> None:
    """Print one Markdown table: a column per size and order."""
    print(f"machine: {machine()}")
    print("| ms, p50 / p99 | " + " | ".join(
        f"{r.services:,}, {r.order}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    print("| answer size | " + " | ".join(
        f"{r.answer_bytes / 2**20:.1f} MiB" for r in results) + " |")
    for stage in ("feed", "render", "install", "total"):
        for clock in ("cpu", "wall"):
            print(f"| {stage}, {clock} | " + " | ".join(
                _ms(getattr(r.changes, clock)[stage]) for r in results) + " |")
    kinds = sorted({k for r in results for k in r.changes.by_kind})
    for kind in kinds:
        print(f"| total CPU: {kind} | " + " | ".join(
            _ms(r.changes.by_kind.get(kind, [])) for r in results) + " |")
    if any(r.burst_size for r in results):
        for stage in ("feed", "render", "install", "total"):
            print(f"| one answer with the burst: {stage}, CPU / wall | " + " | ".join(
                f"{r.burst.cpu[stage][0] * 1000:.0f} / {r.burst.wall[stage][0] * 1000:.0f}"
                if r.burst_size else "—" for r in results) + " |")
    print("| RSS after the first render / peak | " + " | ".join(
        f"{r.first_rss:.0f} / {r.peak_rss:.0f} MiB" for r in results) + " |")


def main() -> None:
    """Run every size and order; print the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--order", nargs="+", choices=ORDERS, default=list(ORDERS))
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if len(args.services) == 1 and len(args.order) == 1:
        result = asyncio.run(measure(args.services[0], args.order[0], changes=args.changes,
                                     burst=args.burst, seed=args.seed, profile=args.profile))
        if args.json:
            sys.stdout.write(RESULT + msgspec.json.encode(result).decode() + "\n")
        else:
            report([result])
        return
    # Each size and order in a fresh process: peak RSS is per process.
    report([_child(n, order, args) for n in args.services for order in args.order])


RESULT = "\nresult: "


def _child(services: int, order: str, args: argparse.Namespace) -> Result:
    """One size and order measured in a fresh process (its result comes back as JSON)."""
    cmd = [sys.executable, __file__, "--services", str(services), "--order", order,
           "--changes", str(args.changes), "--burst", str(args.burst), "--seed",
           str(args.seed), "--profile", str(args.profile), "--json"]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{services} services, {order}: failed (exit {done.returncode})")
    text, _, result = done.stdout.rpartition(RESULT)
    sys.stdout.write(text)
    return msgspec.json.decode(result, type=Result)


if __name__ == "__main__":
    main()
