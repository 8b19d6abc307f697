"""Measurement helpers shared by the catalog-at-scale benchmarks (``bench_consul_scale.py``).

A benchmark supplies a ``Backend`` (a catalog ctmpl reads: the Consul double, a real agent,
etcd, …) and calls ``run()``, which:

- fills the backend with N services × 3 instances on 20 nodes, half the services tagged
  ``calico`` (the shipped nginx template publishes those);
- starts ``python -m ctmpl`` with ``templates/nginx.conf.j2`` and ``-wait 0s`` and times the
  first complete render;
- measures RSS and CPU over a quiet window;
- makes single-instance changes of mixed kinds (``KINDS``), each followed by its undo (a
  registration by its deregistration, a flap by its recovery, …), and times each related
  one until the file shows it; the backend's ``RequestCounter`` (when it has one) counts the
  requests ctmpl sent and the connections it held for each change, and notes when the
  answer that carried the change (the first one begun after it, with a higher index than
  ctmpl had seen) was passed on to ctmpl: the catalog's reply time, and ctmpl's own time
  beyond it until the file was written;
- applies a burst of back-to-back changes and times how long the file takes to show their
  final state (converged), with the CPU and peak RSS meanwhile.

``report()`` prints the Markdown table of the README. Every change is modelled here
(``Model``), so the expected file content of a change is computed the same way for every
backend: a backend only writes what it is told.
"""

from __future__ import annotations

import compileall
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import psutil

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "nginx.conf.j2"
NODES = 20
INSTANCES = 3
TAG = "calico"
_SERVER = re.compile(r"^\s*server (\S+) ", re.MULTILINE)
QUIET = 0.3  # no request for this long (at least): ctmpl is done with a change
KINDS = ("registration", "address", "port", "tag", "flap", "node", "maintenance")
UNDO = {"registration": "deregistration", "node": "node recovery",
        "maintenance": "maintenance off", "flap": "recovery"}


def name(n: int) -> str:
    """The name of service ``n``."""
    return f"svc-{n:05d}"


def node_of(n: int, i: int) -> str:
    return f"node-{(n * INSTANCES + i) % NODES:02d}"


def node_address(node: str) -> str:
    return f"10.250.0.{int(node.rsplit('-', 1)[1]) + 1}"


def address(n: int, i: int, gen: int = 0) -> str:
    """Instance i of service n: its first address, or the one change ``gen`` gives it."""
    if gen == 0:
        return f"10.{i + 1}.{n // 250}.{n % 250 + 1}"
    return f"172.{16 + gen // 62500}.{gen // 250 % 250}.{gen % 250 + 1}"


@dataclass(frozen=True)
class Inst:
    """One service instance as the backend holds it."""

    n: int
    i: int
    address: str
    port: int = 8080
    tags: tuple[str, ...] = ()
    status: str = "passing"
    maintenance: bool = False

    @property
    def service(self) -> str:
        return name(self.n)

    @property
    def id(self) -> str:
        return f"{name(self.n)}-{self.i}"

    @property
    def node(self) -> str:
        return node_of(self.n, self.i)

    @property
    def related(self) -> bool:
        """True for a service the template reads (tagged at first)."""
        return self.n % 2 == 0

    @property
    def line(self) -> str:
        """The ``server`` address the shipped nginx template writes for this instance."""
        return f"{self.address}:{self.port}"


def initial(n: int, i: int) -> Inst:
    tags = (TAG, "v1") if n % 2 == 0 else ("internal",)
    return Inst(n, i, address(n, i), tags=tags)


class Backend(Protocol):
    """A catalog filled and changed by the benchmark; ctmpl reads it."""

    label: str  # e.g. "Consul API double", "consul 1.10.12", "etcd 3.4"
    kinds: tuple[str, ...]  # the change kinds of KINDS it supports

    def daemon_args(self) -> list[str]:
        """ctmpl flags that point it at this catalog."""
        ...

    def load(self, instances: Iterable[Inst]) -> None:
        """Fill the empty catalog."""
        ...

    def put(self, old: Inst | None, new: Inst) -> None:
        """Register ``new`` (``old``: the same instance as it was, None if new)."""
        ...

    def remove(self, inst: Inst) -> None:
        """Deregister an instance."""
        ...

    def node_health(self, node: str, passing: bool) -> None:
        """Fail or recover a node (every instance on it turns critical)."""
        ...

    def reply_time(self) -> float | None:
        """Seconds the catalog itself takes to answer ctmpl's catalog-wide read."""
        ...

    def counter(self) -> RequestCounter | None:
        """What counts ctmpl's requests and connections, if anything."""
        ...

    def stop(self) -> None: ...


class Answer(Protocol):
    """One answer the catalog gave ctmpl (``tests.consul_proxy.Answer``)."""

    @property
    def index(self) -> int: ...  # the catalog's index (X-Consul-Index)

    @property
    def began(self) -> float: ...  # time.time() of its first byte

    @property
    def ended(self) -> float: ...  # time.time() when its last byte reached ctmpl


class RequestCounter(Protocol):
    """Requests sent and connections held, as ``tests.consul_proxy.ConsulProxy`` counts,
    and the answers passed on to ctmpl (in the order they ended)."""

    max_connections: int
    open_connections: int

    @property
    def answers(self) -> Sequence[Answer]: ...

    def mark(self) -> int: ...

    def since(self, mark: int) -> list[str]: ...

    def quiet(self, for_seconds: float = 0.5, timeout: float = 20.0) -> None: ...


class Model:
    """What the catalog holds, and so what the rendered file must show."""

    def __init__(self, services: int) -> None:
        self.services = services
        self.instances = {(n, i): initial(n, i) for n in range(services) for i in range(INSTANCES)}
        self.down: set[str] = set()
        self.gen = 0

    def visible(self, inst: Inst, down: set[str] | None = None) -> bool:
        return (inst.related and TAG in inst.tags and inst.status == "passing"
                and not inst.maintenance and inst.node not in (self.down if down is None
                                                               else down))

    def lines(self, insts: Iterable[Inst], down: set[str] | None = None) -> set[str]:
        return {i.line for i in insts if self.visible(i, down)}

    def new_address(self) -> str:
        self.gen += 1
        return address(0, 0, self.gen)


@dataclass
class Change:
    """One change: ``apply()`` writes it; the file must then show ``present`` lines and none
    of ``absent`` (both empty for a change the template does not read)."""

    kind: str
    related: bool
    apply: Callable[[], None]
    present: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)

    def shows(self, lines: set[str]) -> bool:
        return self.present <= lines and not self.absent & lines


class Changes:
    """Mixed single-instance changes on ``backend``, each followed by its undo."""

    def __init__(self, model: Model, backend: Backend, rng: random.Random) -> None:
        self.model = model
        self.backend = backend
        self.rng = rng
        self.kinds = [k for k in KINDS if k in backend.kinds]

    def pair(self) -> Iterator[Change]:
        """A random change, then (once it is applied) its undo."""
        kind = self.rng.choice(self.kinds)
        n, i = self.rng.randrange(self.model.services), self.rng.randrange(INSTANCES)
        if kind == "node":
            yield self._node(node_of(n, i), True)
            yield self._node(node_of(n, i), False)
            return
        if kind == "registration":
            inst = replace(initial(n, INSTANCES), address=self.model.new_address())
            yield self._put(kind, None, inst)
            yield self._remove(inst)
            return
        old = self.model.instances[(n, i)]
        new = {
            "address": lambda: replace(old, address=self.model.new_address()),
            "port": lambda: replace(old, port=old.port + 1),
            "tag": lambda: replace(old, tags=tuple(t for t in old.tags if t != TAG)
                                   if TAG in old.tags else (*old.tags, "v2")),
            "flap": lambda: replace(old, status="critical"),
            "maintenance": lambda: replace(old, maintenance=True),
        }[kind]()
        yield self._put(kind, old, new)
        yield self._put(UNDO.get(kind, kind), new, old)

    def address_change(self) -> Change:
        """A new address for a random instance of a service the template reads."""
        n = self.rng.randrange(0, self.model.services, 2)
        old = self.model.instances[(n, self.rng.randrange(INSTANCES))]
        return self._put("address", old, replace(old, address=self.model.new_address()))

    def _diff(self, before: set[str], after: set[str], change: Change) -> Change:
        change.present, change.absent = after, before - after
        change.related = bool(before or after)
        return change

    def _put(self, kind: str, old: Inst | None, new: Inst) -> Change:
        model = self.model
        before = model.lines([old] if old else [])

        def apply() -> None:
            model.instances[(new.n, new.i)] = new
            self.backend.put(old, new)

        return self._diff(before, model.lines([new]), Change(kind, False, apply))

    def _remove(self, inst: Inst) -> Change:
        model = self.model

        def apply() -> None:
            del model.instances[(inst.n, inst.i)]
            self.backend.remove(inst)

        return self._diff(model.lines([inst]), set(), Change("deregistration", False, apply))

    def _node(self, node: str, fail: bool) -> Change:
        model = self.model
        on = [i for i in model.instances.values() if i.node == node]
        before = model.lines(on)
        after = model.lines(on, model.down | {node} if fail else model.down - {node})

        def apply() -> None:
            (model.down.add if fail else model.down.discard)(node)
            self.backend.node_health(node, not fail)

        return self._diff(before, after, Change("node" if fail else UNDO["node"], False, apply))


class Output:
    """The ``server`` addresses of the rendered file, read again only when it changes.

    Times are taken from the file's modification time (when ctmpl wrote it), not from when
    this process noticed: reading and scanning a 7 MB file is not ctmpl's latency."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = 0
        self.lines: set[str] = set()

    def refresh(self) -> set[str]:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return set()
        if stamp != self._stamp:
            text = self.path.read_text()
            self._stamp = stamp
            self.lines = set(_SERVER.findall(text))
        return self.lines

    def wait(self, cond: Callable[[set[str]], bool], since: float,
             timeout: float = 120.0) -> float:
        """Seconds from ``since`` (``time.time()``) until the file that first satisfied
        ``cond(lines)`` was written (polled every millisecond)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if cond(self.refresh()):
                return max(0.0, self._stamp / 1e9 - since)
            time.sleep(0.001)
        raise TimeoutError(f"{self.path} never reached the expected state")


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


@dataclass
class Result:
    """Every measurement of one catalog size on one backend."""

    label: str
    services: int
    first_render: float = 0.0  # median over the starts
    first_renders: list[tuple[float, float]] = field(default_factory=list)  # (wall, CPU)
    reply: float | None = None
    idle_rss: float = 0.0
    idle_cpu: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    replies: list[float] = field(default_factory=list)  # change → its answer reached ctmpl
    beyond: list[float] = field(default_factory=list)  # that answer → the file written
    change_cpu: list[float] = field(default_factory=list)  # ctmpl's CPU seconds per change
    related: list[tuple[int, int]] = field(default_factory=list)  # (requests, connections)
    unrelated: list[tuple[int, int]] = field(default_factory=list)
    burst: int = 0
    burst_cpu: float = 0.0
    burst_rss: float = 0.0
    converge: float = 0.0

    @property
    def all_latencies(self) -> list[float]:
        return [t for times in self.latencies.values() for t in times]


class Session:
    """One ctmpl daemon over one filled backend."""

    def __init__(self, backend: Backend, services: int, extra_args: list[str] | None = None,
                 seed: int = 1) -> None:
        self.backend = backend
        self.model = Model(services)
        backend.load(self.model.instances.values())
        self.changes = Changes(self.model, backend, random.Random(seed))
        self.count = backend.counter()
        self.extra_args = extra_args or []
        self.quiet = QUIET
        self.start()

    def start(self) -> None:
        """Start the daemon (again) on an empty destination."""
        self.out = Output(Path(tempfile.mkdtemp(prefix="ctmpl-bench-")) / "nginx.conf")
        self.started = time.time()
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "ctmpl", *self.backend.daemon_args(), "-template",
             f"{TEMPLATE}:{self.out.path}", "-wait", "0s", "-log-level", "err",
             *self.extra_args], cwd=ROOT)
        self.proc = psutil.Process(self.daemon.pid)

    def first_render(self) -> tuple[float, float]:
        """Seconds from the daemon's start until the file shows every published service,
        and the CPU seconds the daemon had used by then (noticed within a millisecond)."""
        lines = self.model.lines(self.model.instances.values())
        took = self.out.wait(lambda seen: seen == lines, self.started)
        return took, cpu(self.proc)

    def settle(self) -> None:
        """Wait until ctmpl sends nothing more (or a fixed pause without a counter)."""
        if self.count is not None:
            self.count.quiet(self.quiet)
        else:
            time.sleep(self.quiet)

    def idle(self) -> tuple[float, float]:
        """(CPU share, RSS in MiB) over 3 quiet seconds."""
        time.sleep(1.0)
        self.settle()
        c0 = cpu(self.proc)
        time.sleep(3.0)
        return (cpu(self.proc) - c0) / 3.0, self.proc.memory_info().rss / 2**20

    def measure(self, change: Change, result: Result) -> None:
        """Apply one change; record its latency (split at the answer that carried it),
        requests, connections and ctmpl's CPU."""
        mark = answered = 0
        seen = 0
        if self.count is not None:
            mark, answered = self.count.mark(), len(self.count.answers)
            seen = max((a.index for a in self.count.answers), default=0)
            self.count.max_connections = self.count.open_connections
        c0 = cpu(self.proc)
        started = time.time()
        change.apply()
        if change.related:
            took = self.out.wait(change.shows, started)
            result.latencies.setdefault(change.kind, []).append(took)
            answer = self._carrier(answered, seen, started)
            if answer is not None:
                written = started + took
                result.replies.append(max(0.0, answer.ended - started))
                result.beyond.append(max(0.0, written - answer.ended))
        self.settle()
        result.change_cpu.append(cpu(self.proc) - c0)
        if self.count is not None:
            counts = (len(self.count.since(mark)), self.count.max_connections)
            (result.related if change.related else result.unrelated).append(counts)

    def _carrier(self, answered: int, seen: int, started: float) -> Answer | None:
        """The answer that carried a change made at ``started``: the first one begun after
        it with an index above every one ctmpl had seen (an index only grows)."""
        assert self.count is not None
        found = [a for a in self.count.answers[answered:] if a.began >= started
                 and a.index > seen]
        return min(found, key=lambda a: a.ended) if found else None

    def burst(self, count: int, result: Result) -> None:
        """``count`` address changes back to back; then wait until the file shows them."""
        c0, peak = cpu(self.proc), self.proc.memory_info().rss
        for k in range(count):
            self.changes.address_change().apply()
            if k % 50 == 0:
                peak = max(peak, self.proc.memory_info().rss)
        wants = self.model.lines(self.model.instances.values())
        result.converge = self.out.wait(lambda seen: seen == wants, time.time(), timeout=300)
        result.burst = count
        result.burst_cpu = cpu(self.proc) - c0
        result.burst_rss = max(peak, self.proc.memory_info().rss) / 2**20

    def close(self) -> None:
        self.daemon.terminate()
        try:
            self.daemon.wait(15)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(5)


def run(backend: Backend, services: int, changes: int, burst: int, starts: int = 3) -> Result:
    """Every measurement for one catalog size on ``backend`` (which it stops): the first
    complete render over ``starts`` starts of the daemon, then (unless ``changes`` is 0)
    the rest on the last one."""
    result = Result(backend.label, services)
    # Time the daemon as installed, with its modules compiled: where PYTHONDONTWRITEBYTECODE
    # is set, a module edited since its last compile would be compiled again at every start.
    compileall.compile_dir(ROOT / "ctmpl", quiet=1)
    session = Session(backend, services)
    try:
        for k in range(starts):
            if k:
                session.close()
                session.start()
            result.first_renders.append(session.first_render())
        result.first_render = statistics.median(w for w, _ in result.first_renders)
        if not changes:
            return result
        result.idle_cpu, result.idle_rss = session.idle()
        result.reply = backend.reply_time()
        if result.reply is not None:
            session.quiet = max(QUIET, 2 * result.reply)  # longer than one turnaround
        done = 0
        while done < changes:
            for change in session.changes.pair():
                session.measure(change, result)
                done += 1
        session.burst(burst, result)
        return result
    finally:
        session.close()
        backend.stop()


def machine() -> str:
    """The machine the numbers were taken on, with its load at the time."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, load average {load}")


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values) * 1000:.0f} / {pct(values, 0.99) * 1000:.0f} ms"


def _max(counts: list[tuple[int, int]], which: int) -> str:
    return f"{max(c[which] for c in counts)}" if counts else "—"


def _mean(counts: list[tuple[int, int]]) -> str:
    return f"{statistics.mean(c[0] for c in counts):.2f}" if counts else "—"


def _first(r: Result) -> str:
    cpus = statistics.median(c for _, c in r.first_renders) if r.first_renders else 0.0
    return f"{r.first_render:.2f} / {cpus:.2f} s ({len(r.first_renders)})"


def report(results: list[Result]) -> None:
    """Print the Markdown table of the README (one column per result)."""
    print(f"machine: {machine()}")
    print("| | " + " | ".join(f"{r.label}, {r.services:,} × 3" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("first complete render, median wall / CPU (starts)", _first),
        ("catalog's own answer to the catalog-wide read",
         lambda r: "—" if r.reply is None else f"{r.reply * 1000:.0f} ms"),
        ("changes timed (related) / made",
         lambda r: f"{len(r.all_latencies)} / {len(r.related) + len(r.unrelated)}"),
        ("change → file p50 / p99", lambda r: _ms(r.all_latencies)),
        ("of which the catalog's reply (change → its answer reached ctmpl) p50 / p99",
         lambda r: _ms(r.replies)),
        ("of which ctmpl beyond the reply (answer → file written) p50 / p99",
         lambda r: _ms(r.beyond)),
        ("ctmpl CPU per single change (mean)",
         lambda r: f"{statistics.mean(r.change_cpu) * 1000:.1f} ms" if r.change_cpu else "—"),
        ("requests per related change (mean / max)",
         lambda r: f"{_mean(r.related)} / {_max(r.related, 0)}"),
        ("requests per unrelated change (mean / max)",
         lambda r: f"{_mean(r.unrelated)} / {_max(r.unrelated, 0)}"),
        ("connections held (max)", lambda r: _max(r.related + r.unrelated, 1)),
        ("RSS idle", lambda r: f"{r.idle_rss:.0f} MiB"),
        ("CPU idle", lambda r: f"{r.idle_cpu * 100:.1f} %"),
        ("CPU while applying the burst", lambda r: f"{r.burst_cpu:.2f} s ({r.burst:,} changes)"),
        ("peak RSS during the burst", lambda r: f"{r.burst_rss:.0f} MiB"),
        ("converged after the burst", lambda r: f"{r.converge:.2f} s"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    kinds = sorted({k for r in results for k in r.latencies})
    print()
    print("| change → file p50 / p99 by kind | " + " | ".join(
        f"{r.services:,}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(_ms(r.latencies.get(kind, [])) for r in results) + " |")
