"""The Consul double's indexed tables and cached UI answer against a plain rebuild.

``/v1/internal/ui/nodes`` is served from per-node serialized JSON that only the nodes written
to are rebuilt from (``tests/consul_tables.py``). Random sequences of every kind of write
(catalog and agent registrations, check updates, maintenance, deregistration of an
instance, a check or a whole node) must leave the answer equal to one built from scratch out
of the entries' own JSON (in an agent's order, ``stable``: the very same bytes), compact
JSON; ``/v1/health/state/any``, also built from cached JSON, equal to the checks'; and the
indexes equal to full scans.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.consul_double import ApiError, ConsulState
from tests.consul_tables import dumps

NODES = ["n0", "n1", "n2"]
IDS = [f"s{i}" for i in range(5)]
STATUS = st.sampled_from(["passing", "warning", "critical"])

OP = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(NODES),
              st.sampled_from(["10.0.0.1", "10.0.0.2"]),
              st.sampled_from(IDS), st.sampled_from(["web", "Web", "api"]),
              st.integers(0, 2), st.sampled_from([None, [], ["calico"], ["calico", "v1"]]),
              st.one_of(st.none(), STATUS)),
    st.tuples(st.just("check"), st.sampled_from(NODES), st.sampled_from([*IDS, "node"]), STATUS),
    st.tuples(st.just("deregister"), st.sampled_from(NODES), st.sampled_from(IDS)),
    st.tuples(st.just("drop check"), st.sampled_from(NODES), st.sampled_from([*IDS, "node"])),
    st.tuples(st.just("drop node"), st.sampled_from(NODES)),
    st.tuples(st.just("agent"), st.sampled_from(IDS), st.sampled_from(["web", "api"]),
              st.sampled_from(["", "10.2.0.1"])),
    st.tuples(st.just("ttl"), st.sampled_from(IDS), STATUS),
    st.tuples(st.just("maintenance"), st.sampled_from(IDS), st.booleans()),
)


def apply(state: ConsulState, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "register":
        node, addr, sid, name, port, tags, status = args
        body: dict[str, Any] = {"Node": node, "Address": addr, "Service": {
            "ID": sid, "Service": name, "Address": "10.1.0.1", "Port": port, "Tags": tags}}
        if status:
            body["Check"] = {"CheckID": f"c-{sid}", "Name": "c", "Status": status,
                             "ServiceID": sid}
        state.catalog_register(body)
    elif kind == "check":
        node, owner, status = args
        check = {"CheckID": f"c-{owner}", "Name": "c", "Status": status}
        if owner != "node":
            check["ServiceID"] = owner
        state.catalog_register({"Node": node, "Address": "10.0.0.1", "Check": check})
    elif kind == "deregister":
        state.catalog_deregister({"Node": args[0], "ServiceID": args[1]})
    elif kind == "drop check":
        state.catalog_deregister({"Node": args[0], "CheckID": f"c-{args[1]}"})
    elif kind == "drop node":
        state.catalog_deregister({"Node": args[0]})
    elif kind == "agent":
        sid, name, addr = args
        state.agent_register({"ID": sid, "Name": name, "Address": addr, "Port": 1,
                              "Check": {"TTL": "10s"}})
    elif kind == "ttl":
        state.set_check(f"service:{args[0]}", args[1], "")
    else:
        state.maintenance(args[0], args[1], "")


def rebuilt(state: ConsulState) -> list[dict[str, Any]]:
    """The UI answer from scratch, nodes and instances sorted by name and ID."""
    out = []
    for name, node in sorted(state.nodes.items()):
        body = node.json()
        for drop in ("Datacenter", "CreateIndex", "ModifyIndex"):
            del body[drop]
        body["Services"] = [s.json() for (n, _), s in sorted(state.services.items()) if n == name]
        body["Checks"] = [c.json(ui=True) for (n, _), c in sorted(state.checks.items())
                          if n == name]
        out.append(body)
    return out


def sort_answer(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    nodes = sorted(body, key=lambda n: n["Node"])
    return [{**n, "Services": sorted(n["Services"], key=lambda s: s["ID"])} for n in nodes]


@settings(max_examples=100, deadline=None)
@given(st.lists(OP, max_size=40), st.sets(st.integers(0, 39)))
@example([("agent", "s0", "web", ""), ("ttl", "s0", "passing")], {0})
def test_ui_answer_equals_a_rebuild(ops: list[tuple[Any, ...]], reads: set[int]) -> None:
    state = ConsulState(node_id="id")
    for step, op in enumerate(ops):
        with contextlib.suppress(ApiError):
            apply(state, op)
        if step in reads or step == len(ops) - 1:
            index, lazy = state.ui_nodes()
            raw = lazy.build()
            assert index == state.catalog_index()
            assert json.dumps(json.loads(raw), separators=(",", ":")).encode() == raw
            assert sort_answer(json.loads(raw)) == rebuilt(state)
            state.ui.stable = True  # an agent's order: the rebuild's, byte for byte
            assert state.ui_nodes()[1].build() == dumps(rebuilt(state))
            state.ui.stable = False
            checks = json.loads(state.health_state("any")[1].build())
            assert checks == [c.json() for _, c in sorted(state.checks.items())]
    for name in ("web", "WEB", "api"):
        assert state.services.named(name) == {
            k: s for k, s in state.services.items() if s.name.lower() == name.lower()}
    for node in NODES:
        assert state.checks.on(node) == {k[1]: c for k, c in state.checks.items() if k[0] == node}
        assert state.services.on(node) == {
            k[1]: s for k, s in state.services.items() if k[0] == node}
