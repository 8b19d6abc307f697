"""The catalog snapshot's diff: exactly the names whose health entries differ."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.sources.consul_snapshot import (
    CatalogSnapshot,
    SnapshotError,
    changed_names,
    nodes_changed,
)

NAMES = ["web", "api", "db", "cache"]


def svc(sid: str, name: str, address: str, modify: int, tags: list[str]) -> dict[str, Any]:
    return {"ID": sid, "Service": name, "Tags": tags, "Address": address, "Port": 80,
            "Meta": None, "ModifyIndex": modify}


def check(cid: str, sid: str, status: str, modify: int) -> dict[str, Any]:
    return {"CheckID": cid, "ServiceID": sid, "ServiceName": "", "Status": status,
            "ModifyIndex": modify}


@st.composite
def catalogs(draw: st.DrawFn) -> list[dict[str, Any]]:
    nodes = []
    for n in range(draw(st.integers(1, 3))):
        node = f"node-{n}"
        services, checks = [], [check("serfHealth", "", "passing", 1)]
        for i in range(draw(st.integers(0, 4))):
            sid = f"{node}-s{i}"
            services.append(svc(sid, draw(st.sampled_from(NAMES)), f"10.0.{n}.{i}", 1,
                                draw(st.lists(st.sampled_from(["a", "b"]), max_size=2))))
            if draw(st.booleans()):
                checks.append(check(f"c-{sid}", sid, "passing", 1))
        nodes.append({"Node": node, "Address": f"10.9.0.{n}", "TaggedAddresses": None,
                      "Meta": {}, "Services": services, "Checks": checks})
    return nodes


@st.composite
def changed(draw: st.DrawFn, old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Random changes; every change moves the ModifyIndex of what it touches (as Consul)."""
    new = copy.deepcopy(old)
    for step in range(draw(st.integers(0, 4))):
        node = draw(st.sampled_from(new))
        kind = draw(st.sampled_from(["address", "tags", "flap", "node", "remove", "add",
                                     "node-check"]))
        services, checks = node["Services"], node["Checks"]
        if kind in ("address", "tags", "remove") and services:
            s = draw(st.sampled_from(services))
            if kind == "remove":
                services.remove(s)
                node["Checks"] = [c for c in checks if c["ServiceID"] != s["ID"]]
            else:
                s["Address" if kind == "address" else "Tags"] = (
                    "10.7.7.7" if kind == "address" else ["z"])
                s["ModifyIndex"] += 1
        elif kind == "flap" and len(checks) > 1:
            c = draw(st.sampled_from(checks[1:]))
            c["Status"], c["ModifyIndex"] = "critical", c["ModifyIndex"] + 1
        elif kind == "node-check":
            checks[0]["Status"], checks[0]["ModifyIndex"] = "critical", checks[0]["ModifyIndex"] + 1
        elif kind == "node":
            node["Address"] = "10.6.6.6"
        elif kind == "add":
            services.append(svc(f"{node['Node']}-new{step}",
                                draw(st.sampled_from(NAMES)), "10.5.5.5", 9, []))
    return new


def differing(old: CatalogSnapshot, new: CatalogSnapshot) -> set[str]:
    names = set(old.names()) | set(new.names())
    return {n for n in names
            if json.dumps(old.entries(n), sort_keys=True) != json.dumps(new.entries(n),
                                                                        sort_keys=True)}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_changed_names_are_exactly_the_names_that_differ(data: st.DataObject) -> None:
    before = data.draw(catalogs())
    after = data.draw(changed(before))
    old, new = CatalogSnapshot.parse(before, 10), CatalogSnapshot.parse(after, 11)
    assert changed_names(old, new) == differing(old, new)
    assert nodes_changed(old, new) == any(
        (a["Node"], a["Address"]) != (b["Node"], b["Address"]) for a, b in zip(
            before, after, strict=True))


def test_entries_match_health_service_shape() -> None:
    body = [{"Node": "n1", "Address": "10.0.0.1", "Meta": {}, "TaggedAddresses": None,
             "Services": [svc("w-1", "web", "", 5, ["calico"])],
             "Checks": [check("serfHealth", "", "passing", 1),
                        check("c-w-1", "w-1", "warning", 5)]}]
    snap = CatalogSnapshot.parse(body, 5)
    (entry,) = snap.entries("web")
    assert entry["Node"]["Node"] == "n1" and entry["Service"]["ID"] == "w-1"
    assert [c["CheckID"] for c in entry["Checks"]] == ["serfHealth", "c-w-1"]
    assert snap.tags("web") == {"calico"} and list(snap.names()) == ["web"]
    assert snap.entries("nope") == []


@pytest.mark.parametrize("body", [None, {}, [{"Node": "n"}], [{"Node": 1, "Services": [],
                                                                 "Checks": []}],
                                  [{"Node": "n", "Services": [{"ID": "x"}], "Checks": []}]])
def test_unknown_shapes_are_refused(body: Any) -> None:
    with pytest.raises(SnapshotError):
        CatalogSnapshot.parse(body, 1)
