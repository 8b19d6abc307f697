"""Consul at scale: connections held and requests sent per change, counted by a proxy.

The daemon renders every service tagged ``calico`` from a catalog of 1,000 services (half of
them tagged) through ``ConsulProxy``, which counts what it sends. The bounds asserted are the
README's: at most 5 connections; an unrelated change (a service no template reads, a flap
of an instance no template includes) costs at most 2 requests; a change to a watched service
costs a bounded number, here 1 (the catalog-wide long-poll that carries it). They hold
against a real agent too (the proxy counts in front of either).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consul_proxy import ConsulProxy
from tests.daemon import RenderDaemon, render_daemons, wait_for
from tests.fixtures_consul import ConsulFixture

SERVICES = 1000
NODES = 10
MAX_CONNECTIONS = 5
UNRELATED_BOUND = 2
RELATED_BOUND = 1

TEMPLATE = """\
{% for s in services() if "calico" in s.Tags %}{% for i in service(s.Name) %}\
{{ i.Name }} {{ i.ID }} {{ i.Address }}:{{ i.Port }}
{% endfor %}{% endfor %}"""


def name(n: int) -> str:
    return f"svc-{n:04d}"


def register(consul: ConsulFixture, n: int, address: str = "", status: str = "passing",
             tags: list[str] | None = None) -> None:
    """One instance of service n on node n % NODES through the catalog API, with a check."""
    node = f"node-{n % NODES}"
    sid = f"{name(n)}-1"
    consul.call("PUT", "/v1/catalog/register", {
        "Node": node, "Address": f"10.1.0.{n % NODES + 1}",
        "Service": {"ID": sid, "Service": name(n), "Address": address or ip(n), "Port": 8000,
                    "Tags": tags if tags is not None else (["calico"] if n % 2 == 0 else [])},
        "Check": {"CheckID": f"chk-{sid}", "Name": "check", "Status": status, "ServiceID": sid},
    })


def ip(n: int) -> str:
    return f"10.2.{n // 250}.{n % 250 + 1}"


def line(n: int, address: str = "") -> str:
    return f"{name(n)} {name(n)}-1 {address or ip(n)}:8000"


def expected(overrides: dict[int, str | None]) -> str:
    out = []
    for n in range(0, SERVICES, 2):
        if n in overrides and overrides[n] is None:
            continue
        out.append(line(n, overrides.get(n) or "") + "\n")
    return "".join(out)


@pytest.fixture
def proxied(consul: ConsulFixture) -> Iterator[ConsulProxy]:
    for n in range(SERVICES):
        register(consul, n)
    proxy = ConsulProxy(consul.addr)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_requests_per_change_at_1000_services(
    tmp_path: Path, consul: ConsulFixture, proxied: ConsulProxy
) -> None:
    proxy = proxied
    with render_daemons(tmp_path, TEMPLATE, ["-consul-addr", proxy.addr]) as start:
        daemon: RenderDaemon = start()
        daemon.wait_for(expected({}), timeout=60)
        proxy.quiet()
        counts: dict[str, list[str]] = {}

        def change(kind: str, action: object, want: str | None = None) -> None:
            mark, answered = proxy.mark(), len(proxy.answers)
            seen = max(a.index for a in proxy.answers)
            action()  # type: ignore[operator]
            if want is not None:
                daemon.wait_for(want, timeout=30)
            # The long-poll that carries the change is asked again once its answer is
            # handled; on a loaded machine that can take longer than the quiet window.
            wait_for(lambda: proxy.since(mark), timeout=30, what=f"a request after {kind}")
            proxy.quiet()
            counts[kind] = proxy.since(mark)
            # The proxy noted the answer that carried the change (the benchmark times it).
            assert any(a.index > seen and a.request.startswith("GET /v1/internal/ui/nodes")
                       for a in proxy.answers[answered:]), (kind, proxy.answers[answered:])

        change("unrelated address", lambda: register(consul, 1, "10.3.0.1"))
        change("unrelated flap", lambda: register(consul, 3, status="critical"))
        change("unrelated registration", lambda: register(consul, SERVICES + 1))
        change("related address", lambda: register(consul, 4, "10.3.0.4"),
               expected({4: "10.3.0.4"}))
        change("related flap", lambda: register(consul, 6, status="critical"),
               expected({4: "10.3.0.4", 6: None}))
        change("related tag", lambda: register(consul, 8, tags=["other"]),
               expected({4: "10.3.0.4", 6: None, 8: None}))
    for kind, sent in counts.items():
        bound = UNRELATED_BOUND if kind.startswith("unrelated") else RELATED_BOUND
        assert 1 <= len(sent) <= bound, (kind, sent)
    assert proxy.max_connections <= MAX_CONNECTIONS
