"""The UI catalog, updated answer by answer, names exactly the services that changed.

Each random sequence of answers is applied to one ``UICatalog``; after each, the names it
reports must be exactly those whose decoded instances differ between the previous and the
new answer (computed from the raw answers, independently of the catalog), and its entries
must be those of the new answer. An answer after a restart repeats old indexes for new data:
applied untrusted, it is compared by content.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.sources import consul_decode as decode
from ctmpl.sources.consul import _instances
from ctmpl.sources.consul_ui_answer import Answers, Split, first_look
from ctmpl.sources.consul_ui_catalog import SnapshotError, UICatalog
from ctmpl.sources.consul_ui_catalog import decode as decode_answer

NAMES = ["web", "api", "db", "cache", "Web"]


def svc(sid: str, name: str, address: str, modify: int, tags: list[str]) -> dict[str, Any]:
    return {"ID": sid, "Service": name, "Tags": tags, "Address": address, "Port": 80,
            "Meta": None, "Weights": {"Passing": 1}, "ModifyIndex": modify}


def check(cid: str, sid: str, status: str, modify: int) -> dict[str, Any]:
    return {"CheckID": cid, "ServiceID": sid, "ServiceName": "", "Status": status,
            "Definition": {}, "ModifyIndex": modify}


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
        nodes.append({"ID": f"id-{n}", "Node": node, "Address": f"10.9.0.{n}",
                      "TaggedAddresses": None, "Meta": {}, "Services": services,
                      "Checks": checks})
    return nodes


@st.composite
def changed(draw: st.DrawFn, old: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """Random changes; each moves the ModifyIndex of what it touches to ``index`` (as
    Consul does: the index of the write)."""
    new = copy.deepcopy(old)
    for step in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["address", "tags", "flap", "node", "remove", "add",
                                     "node-check", "add-check", "drop-check", "add-node",
                                     "drop-node", "same"]))
        if kind == "add-node":
            new.append({"ID": f"id-x{index}-{step}", "Node": f"node-x{index}-{step}",
                        "Address": "10.8.0.1", "TaggedAddresses": None, "Meta": {},
                        "Checks": [], "Services": [svc(f"x{index}-{step}",
                                                       draw(st.sampled_from(NAMES)), "",
                                                       index, [])]})
            continue
        if not new:
            continue
        node = draw(st.sampled_from(new))
        services, checks = node["Services"], node["Checks"]
        if kind == "drop-node":
            new.remove(node)
        elif kind in ("address", "tags", "remove", "same") and services:
            s = draw(st.sampled_from(services))
            if kind == "remove":
                services.remove(s)
                node["Checks"] = [c for c in checks if c["ServiceID"] != s["ID"]]
                continue
            if kind != "same":  # a write that changes nothing still moves the index
                s["Address" if kind == "address" else "Tags"] = (
                    "10.7.7.7" if kind == "address" else ["z"])
            s["ModifyIndex"] = index
        elif kind == "flap" and len(checks) > 1:
            c = draw(st.sampled_from(checks[1:]))
            c["Status"], c["ModifyIndex"] = "critical", index
        elif kind == "node-check" and checks:
            checks[0]["Status"], checks[0]["ModifyIndex"] = "critical", index
        elif kind == "add-check" and services:
            s = draw(st.sampled_from(services))
            checks.append(check(f"m-{s['ID']}-{index}-{step}", s["ID"], "critical", index))
        elif kind == "drop-check" and checks:
            checks.remove(draw(st.sampled_from(checks)))
        elif kind == "node":
            node["Address"] = "10.6.6.6"
        elif kind == "add":
            services.append(svc(f"{node['Node']}-new{index}-{step}",
                                draw(st.sampled_from(NAMES)), "10.5.5.5", index, []))
    return new


def wire(body: Any) -> Any:
    """``body`` sent as JSON, decoded by the module."""
    return decode_answer(json.dumps(body).encode())


# How an answer may be written: as an agent does (compact), or with other spacing.
STYLES: list[dict[str, Any]] = [{"separators": (",", ":")}, {}, {"indent": 1}]


def restarted(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same catalog as an agent that started again would index it: from 1 again."""
    new = copy.deepcopy(body)
    for node in new:
        for item in (*node["Services"], *node["Checks"]):
            item["ModifyIndex"] = 1
    return new


def reference(body: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each name's decoded instances, straight from an answer (checks sorted by ID, node
    checks first, as ``/v1/health/service`` lists them)."""
    out: dict[str, list[Any]] = {}
    for node in body:
        fields = {k: v for k, v in node.items() if k not in ("Services", "Checks")}
        node_checks = sorted((c for c in node["Checks"] if not c["ServiceID"]),
                             key=lambda c: c["CheckID"])
        for s in node["Services"]:
            own = sorted((c for c in node["Checks"] if c["ServiceID"] == s["ID"]),
                         key=lambda c: c["CheckID"])
            entry = {"Node": fields, "Service": s, "Checks": [*node_checks, *own]}
            out.setdefault(s["Service"].lower(), []).append(decode.instance("t", entry))
    return {n: sorted(v, key=lambda i: (i.Node, i.ID)) for n, v in out.items()}


def held(catalog: UICatalog) -> dict[str, list[Any]]:
    names = {n.lower() for n in catalog.names()}
    return {n: sorted((decode.instance("t", e) for e in catalog.entries(n)),
                      key=lambda i: (i.Node, i.ID)) for n in names}


def tag_view(body: list[dict[str, Any]]) -> dict[str, set[str]]:
    tags: dict[str, set[str]] = {}
    for node in body:
        for s in node["Services"]:
            tags.setdefault(s["Service"], set()).update(s["Tags"] or ())
    return tags


def node_view(body: list[dict[str, Any]]) -> dict[str, Any]:
    return {n["Node"]: (n["ID"], n["Address"], n["Meta"]) for n in body}


def reordered(body: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The same catalog in another order (the endpoint promises none): nodes, and each
    node's instances and checks, so that an unchanged node's bytes differ."""
    new = copy.deepcopy(body)
    rng.shuffle(new)
    for node in new:
        rng.shuffle(node["Services"])
        rng.shuffle(node["Checks"])
    return new


def answers(data: st.DataObject) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """A first answer, then changed ones: some after a restart, some in another order."""
    body = data.draw(catalogs())
    yield body, True
    for index in range(2, data.draw(st.integers(2, 7))):
        if data.draw(st.integers(0, 5)) == 0:
            body = restarted(data.draw(changed(body, index)))
            yield body, False
        else:
            body = data.draw(changed(body, index))
            if data.draw(st.booleans()):
                body = reordered(body, data.draw(st.randoms(use_true_random=False)))
            yield body, True


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_each_answer_names_exactly_the_services_that_changed(data: st.DataObject) -> None:
    catalog = UICatalog()
    before: list[dict[str, Any]] = []
    style = data.draw(st.sampled_from(STYLES))
    built: dict[str, Any] = {}  # what queries keep from one answer to the next
    for index, (body, trusted) in enumerate(answers(data), 1):
        # The bytes as the feed hands them over: most nodes the same as in the last answer.
        diff = catalog.apply(json.dumps(body, **style).encode(), index, trusted=trusted)
        old, new = reference(before), reference(body)
        assert {n.lower() for n in diff.names} == {
            n for n in old.keys() | new.keys() if old.get(n) != new.get(n)}, trusted
        assert held(catalog) == new
        # Rebuilt as the queries do: unchanged instances kept, new checks decoded alone.
        rebuilt = {n: sorted(_instances("t", n, built, catalog), key=lambda i: (i.Node, i.ID))
                   for n in sorted({n.lower() for n in catalog.names()})}
        assert rebuilt == new
        assert diff.services == (tag_view(before) != tag_view(body))
        assert diff.nodes == (node_view(before) != node_view(body))
        assert {n: set(catalog.tags(n)) for n in catalog.names()} == tag_view(body)
        before = body
    # Answer by answer (most nodes skipped by their bytes or indexes) as decoded at once.
    fresh = UICatalog()
    fresh.update(wire(before), 1)
    assert held(catalog) == held(fresh)
    assert {n: fresh.tags(n) for n in fresh.names()} == {n: catalog.tags(n)
                                                         for n in catalog.names()}


def test_entries_match_health_service_shape() -> None:
    body = [{"Node": "n1", "Address": "10.0.0.1", "Meta": {}, "TaggedAddresses": None,
             "Services": [svc("w-1", "web", "", 5, ["calico"])],
             "Checks": [check("c-w-1", "w-1", "warning", 5),
                        check("serfHealth", "", "passing", 1)]}]
    catalog = UICatalog()
    diff = catalog.update(wire(body), 5)
    assert diff.names == {"web"} and diff.services and diff.nodes
    (entry,) = catalog.entries("WEB")
    assert entry["Node"]["Node"] == "n1" and entry["Service"]["ID"] == "w-1"
    assert "Weights" not in entry["Service"] and "Definition" not in entry["Checks"][0]
    assert entry["Service"]["Tags"] == ["calico"] and entry["Service"]["Port"] == 80
    assert [c["CheckID"] for c in entry["Checks"]] == ["serfHealth", "c-w-1"]
    assert catalog.tags("web") == {"calico"} and list(catalog.names()) == ["web"]
    assert catalog.entries("nope") == []
    assert catalog.update(wire(body), 6) == type(diff)(frozenset(), False, False)


@pytest.mark.parametrize("body", [None, {}, [{"Node": "n"}], [{"Node": 1, "Services": [],
                                                                 "Checks": []}],
                                  [{"Node": "n", "Services": [{"ID": "x"}], "Checks": []}],
                                  [{"Node": "n", "Services": [{"ID": "x", "ModifyIndex": 1,
                                                               "Service": 7}], "Checks": []}],
                                  [{"Node": "n", "Services": "x", "Checks": []}]])
def test_unknown_shapes_are_refused(body: Any) -> None:
    with pytest.raises(SnapshotError):
        UICatalog().update(wire(body), 1)


def test_only_the_nodes_whose_bytes_differ_are_decoded() -> None:
    def node(n: int, address: str = "10.0.0.1") -> dict[str, Any]:
        return {"Node": f"n{n}", "Address": address, "Services": [svc(f"s{n}", "web", "", 1, [])],
                "Checks": []}

    def names(split: Split) -> tuple[list[str], list[str]]:
        return [first_look(n).Node for n in split.nodes], split.kept

    answers = Answers()
    first = [node(0), node(1), node(2)]
    assert names(answers.split(json.dumps(first).encode())) == (["n0", "n1", "n2"], [])
    answers.keep(["n0", "n1", "n2"])
    cases = [
        ([node(0), node(1, "10.0.0.9"), node(2)], (["n1"], ["n0", "n2"])),
        ([node(0), node(1, "10.0.0.9"), node(2)], ([], ["n0", "n1", "n2"])),
        # The last node removed: the one before it lost its comma.
        ([node(0), node(1, "10.0.0.9")], (["n1"], ["n0"])),
        ([node(0), node(1, "10.0.0.9"), node(3)], (["n1", "n3"], ["n0"])),
        ([node(1, "10.0.0.9"), node(3)], ([], ["n1", "n3"])),  # the first node removed
        ([node(1, "10.0.0.9"), node(4), node(3)], (["n4"], ["n1", "n3"])),
    ]
    for body, expected in cases:
        split = answers.split(json.dumps(body).encode())
        assert names(split) == expected, body
        answers.keep(names(split)[0])
    # Not JSON where the last answer's nodes meet the new bytes: decoded whole, refused.
    last = json.dumps([node(1, "10.0.0.9"), node(4), node(3)])
    doubled = last.replace('}, {"Node": "n4"', '},, {"Node": "n4"')
    for broken in (last[:-1] + ", ]", last + "]", doubled):
        with pytest.raises(msgspec.DecodeError):
            answers.split(broken.encode())
    # Another order: every node decoded.
    shuffled = [node(3), node(1, "10.0.0.9"), node(4)]
    assert names(answers.split(json.dumps(shuffled).encode())) == (["n3", "n1", "n4"], [])
