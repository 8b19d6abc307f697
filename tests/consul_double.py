"""A Consul HTTP API double for tests, matching responses recorded from Consul 1.10.

It keeps the parts of Consul that ctmpl depends on: per-endpoint ``X-Consul-Index`` values
(catalog services, nodes, one index per service, KV key / prefix indexes with a graveyard),
blocking queries (``index`` below the current one answers at once; otherwise wait for a
change or ``wait``), ``stale`` / ``consistent`` reads, agent and catalog registration with
TTL checks, KV with ``recurse`` / ``keys`` / ``separator`` / ``raw``, server-side
``filter=`` (``tests.consul_filter``), the UI's ``/v1/internal/ui/nodes`` and
``/v1/internal/ui/services``, an optional ACL token, and the agent's limit of concurrent
connections per client IP (``limits.http_max_conns_per_client``, 200): a connection past the
limit gets ``429 Too Many Requests`` as soon as it is accepted.

Which endpoint wakes on which change follows the table in the recordings' README: writes move
only the tables they touch (an address change moves ``services`` but not ``checks``; a check
flap moves ``checks`` but not ``services``), and every service has its own index.

Where the agent is not deterministic the double randomizes within what Consul does, so no
client comes to rely on an accident: streaming answers (``/v1/health/service`` with an
``index``) come in random order and return after exactly ``wait``; blocking-query answers
are sorted and add up to ``wait/16`` of jitter; the merged tag lists of
``/v1/catalog/services`` come in random order; and so do the nodes and each node's instances
in ``/v1/internal/ui/nodes``, an undocumented endpoint that promises no order. An agent
writes the latter sorted (nodes by name, instances by ID), so an unchanged node has the same
bytes in every answer; ``stable_order`` (``--order stable``) serves that order, for
benchmarks of a client that makes use of it.

The tables are indexed by node and service name, and the UI answer is kept as serialized
JSON per node, rebuilt only for the nodes a write touched (``tests.consul_tables``): at
10,000 services × 3 instances it answers in tens of milliseconds, so a benchmark measures
its client rather than the double.

As a ``consul agent -dev`` does, the test fixture's double indents its JSON (``dev_mode``;
any agent does so for ``?pretty``); the standalone double (``python -m tests.consul_double``)
writes it compact, as an agent outside dev mode does, unless given ``--dev``.

The server runs on its own event loop in a background thread, so tests drive it with
plain blocking HTTP calls or from any event loop. ``stop()`` then ``start()`` reopens the
same port with a fresh state, like restarting a ``consul agent -dev``. TTLs never expire.

Run standalone: ``python -m tests.consul_double [--port N]``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ctmpl.change_signal import ANY, ChangeSignal, wait_changed
from tests.consul_filter import FilterError, compile_filter
from tests.consul_tables import Lazy, Nodes, Services, Table, UiNodes, dumps, shuffled

DATACENTER = "dc1"
CONN_LIMIT = 200
DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
NODE_MAINT = "_node_maintenance"
SERVICE_MAINT = "_service_maintenance:"

Body = Any
Read = Callable[[], tuple[int, Body]]
Filter = Callable[[Any], bool]


@dataclass
class _Node:
    name: str
    address: str
    id: str = ""
    tagged: dict[str, str] | None = None
    meta: dict[str, str] | None = None
    create: int = 0
    modify: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Node": self.name,
            "Address": self.address,
            "Datacenter": DATACENTER,
            "TaggedAddresses": self.tagged,
            "Meta": self.meta,
            "CreateIndex": self.create,
            "ModifyIndex": self.modify,
        }

    def ui_head(self) -> bytes:
        """The node in ``/v1/internal/ui/nodes``, up to (without) its instances."""
        body = self.json()
        for drop in ("Datacenter", "CreateIndex", "ModifyIndex"):
            del body[drop]
        return dumps(body)[:-1]


# Instances and checks are never changed in place once stored (a write stores a new object):
# the UI answer caches each one's JSON on it (``ui_json``).


@dataclass
class _Service:
    node: str
    id: str
    name: str
    tags: list[str] | None
    address: str
    port: int
    meta: dict[str, str] | None
    tagged: dict[str, Any] | None = None
    create: int = 0
    modify: int = 0
    _ui: bytes = field(default=b"", init=False, repr=False, compare=False)

    def ui_json(self) -> bytes:
        if not self._ui:
            self._ui = dumps(self.json())
        return self._ui

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ID": self.id, "Service": self.name, "Tags": self.tags}
        body["Address"] = self.address
        if self.tagged:
            body["TaggedAddresses"] = self.tagged
        body.update(
            Meta=self.meta,
            Port=self.port,
            Weights={"Passing": 1, "Warning": 1},
            EnableTagOverride=False,
            Proxy={"Mode": "", "MeshGateway": {}, "Expose": {}},
            Connect={},
            CreateIndex=self.create,
            ModifyIndex=self.modify,
        )
        return body

    def catalog_json(self, node: _Node) -> dict[str, Any]:
        return {
            "ID": node.id,
            "Node": node.name,
            "Address": node.address,
            "Datacenter": DATACENTER,
            "TaggedAddresses": node.tagged,
            "NodeMeta": node.meta,
            "ServiceKind": "",
            "ServiceID": self.id,
            "ServiceName": self.name,
            "ServiceTags": self.tags or [],
            "ServiceAddress": self.address,
            "ServiceTaggedAddresses": self.tagged,
            "ServiceWeights": {"Passing": 1, "Warning": 1},
            "ServiceMeta": self.meta or {},
            "ServicePort": self.port,
            "ServiceSocketPath": "",
            "ServiceEnableTagOverride": False,
            "ServiceProxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "ServiceConnect": {},
            "CreateIndex": self.create,
            "ModifyIndex": self.modify,
        }


@dataclass
class _Check:
    node: str
    check_id: str
    name: str
    status: str = "critical"
    output: str = ""
    notes: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: list[str] = field(default_factory=list)
    type: str = ""
    create: int = 0
    modify: int = 0
    explicit: bool = False  # the registration gave a Status (else an update keeps the old)
    _ui: bytes = field(default=b"", init=False, repr=False, compare=False)
    _api: bytes = field(default=b"", init=False, repr=False, compare=False)

    def ui_json(self) -> bytes:
        if not self._ui:
            self._ui = dumps(self.json(ui=True))
        return self._ui

    def api_json(self) -> bytes:
        """The check as ``/v1/health/state`` shows it (cached, as ``ui_json``)."""
        if not self._api:
            self._api = dumps(self.json())
        return self._api

    def json(self, ui: bool = False) -> dict[str, Any]:
        """The check as the health endpoints show it (``ui``: as ``/v1/internal/ui/nodes``
        does, where a node check's ``ServiceTags`` is null)."""
        return {
            "Node": self.node,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": self.status,
            "Notes": self.notes,
            "Output": self.output,
            "ServiceID": self.service_id,
            "ServiceName": self.service_name,
            "ServiceTags": self.service_tags or (None if ui else []),
            "Type": self.type,
            "Interval": "",
            "Timeout": "",
            "ExposedPort": 0,
            "Definition": {},
            "CreateIndex": self.create,
            "ModifyIndex": self.modify,
        }


@dataclass
class _KV:
    key: str
    value: bytes
    flags: int = 0
    create: int = 0
    modify: int = 0

    def json(self) -> dict[str, Any]:
        encoded = base64.b64encode(self.value).decode() if self.value else None
        return {
            "LockIndex": 0,
            "Key": self.key,
            "Flags": self.flags,
            "Value": encoded,
            "CreateIndex": self.create,
            "ModifyIndex": self.modify,
        }


class ApiError(Exception):
    """An error answer: status code and plain-text body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class ConsulState:
    """The catalog, health checks and KV store with Consul's index bookkeeping."""

    def __init__(self, node_name: str = "ctmpl-double", node_id: str = "") -> None:
        self.index = 10
        self.tables: dict[str, int] = defaultdict(int)
        self.service_index: dict[str, int] = {}
        self.extinction = 0
        self.graveyard: dict[str, int] = {}
        dirty: set[str] = set()  # nodes written to since the last UI answer
        self.nodes: Nodes[_Node] = Nodes(dirty)
        self.services: Services[_Service] = Services(dirty)
        self.checks: Table[_Check] = Table(dirty)
        self.ui = UiNodes(self.nodes, self.services, self.checks, dirty)
        self.kv: dict[str, _KV] = {}
        self.agent_node = node_name
        self.changes = ChangeSignal()  # touched by every write
        idx = self._bump(("nodes", "checks"))
        self.nodes[node_name] = _Node(
            node_name,
            "127.0.0.1",
            node_id or str(uuid.uuid4()),
            {k: "127.0.0.1" for k in ("lan", "lan_ipv4", "wan", "wan_ipv4")},
            {"consul-network-segment": ""},
            idx,
            idx,
        )
        self.checks[(node_name, "serfHealth")] = _Check(
            node_name, "serfHealth", "Serf Health Status", "passing",
            "Agent alive and reachable", create=idx, modify=idx,
        )
        self._put_service(_Service(node_name, "consul", "consul", None, "", 8300, {}), ())

    # -- index bookkeeping ---------------------------------------------------------

    def _bump(self, tables: Iterable[str], services: Iterable[str] = ()) -> int:
        self.index += 1
        for table in tables:
            self.tables[table] = self.index
        for name in services:
            self.service_index[name] = self.index
        self.changes.touch(())
        return self.index

    def _services_on(self, node: str) -> set[str]:
        return {s.name for s in self.services.on(node).values()}

    def _drop_extinct(self, names: Iterable[str]) -> None:
        for name in names:
            if not self.services.alive(name) and self.service_index.pop(name, None) is not None:
                self.extinction = self.index

    def service_idx(self, name: str) -> int:
        """Consul's maxIndexForService: the service's own index, else the extinction index."""
        if name in self.service_index:
            return self.service_index[name]
        if self.extinction:
            return self.extinction
        return max(self.tables["nodes"], self.tables["services"], self.tables["checks"])

    # -- writes ----------------------------------------------------------------------

    def _put_service(self, svc: _Service, checks: Iterable[_Check]) -> None:
        """Register or update an instance; the checks table moves only for a changed check.

        Recorded: re-registering an instance with a new address leaves ``/v1/health/state/any``
        blocked (``blocking_health_state_any_address_change_with_check``) — the agent syncs a
        check to the catalog only when the check itself differs.
        """
        old = self.services.get((svc.node, svc.id))
        names = {svc.name} | ({old.name} if old else set())
        changed = []
        for check in checks:
            prev = self.checks.get((check.node, check.check_id))
            if prev is not None:  # re-registration keeps the check's state (agent snapshot)
                if not check.explicit:
                    check.status, check.output = prev.status, prev.output
                check.create, check.modify = prev.create, prev.modify
            check.service_tags = list(svc.tags or [])
            if prev is None or prev.json() != check.json():
                changed.append(check)
        idx = self._bump(("services", "checks") if changed else ("services",), names)
        svc.create, svc.modify = (old.create if old else idx), idx
        self.services[(svc.node, svc.id)] = svc
        for check in changed:
            prev = self.checks.get((check.node, check.check_id))
            check.create, check.modify = (prev.create if prev else idx), idx
        for check in checks:
            self.checks[(check.node, check.check_id)] = check
        self._drop_extinct(names - {svc.name})

    def _remove_service(self, node: str, service_id: str) -> None:
        svc = self.services.pop((node, service_id), None)
        if svc is None:
            raise ApiError(404, f'Unknown service ID "{service_id}". Ensure that the service ID is'
                           " passed, not the service name.")
        self._bump(("services", "checks"), [svc.name])
        owned = [k for k, c in self.checks.on(node).items() if c.service_id == service_id]
        for check_id in owned:
            del self.checks[(node, check_id)]
        self._drop_extinct([svc.name])

    def _make_checks(
        self, node: str, svc: _Service | None, defs: list[dict[str, Any]]
    ) -> list[_Check]:
        checks = []
        for n, d in enumerate(defs, 1):
            default_id = f"service:{svc.id}" if svc else d.get("Name", "")
            if svc and len(defs) > 1:
                default_id += f":{n}"
            status = d.get("Status") or "critical"
            if status not in ("passing", "warning", "critical"):
                raise ApiError(400, f"Invalid check status: {status!r}")
            checks.append(_Check(
                node,
                d.get("CheckID") or d.get("ID") or default_id,
                d.get("Name") or (f"Service '{svc.name}' check" if svc else "check"),
                status,
                d.get("Output", ""),
                d.get("Notes", ""),
                svc.id if svc else d.get("ServiceID", ""),
                svc.name if svc else "",
                type="ttl" if d.get("TTL") else d.get("Type", ""),
                explicit=bool(d.get("Status")),
            ))
        return checks

    def agent_register(self, body: dict[str, Any]) -> None:
        """PUT /v1/agent/service/register."""
        name = body.get("Name") or ""
        if not name:
            raise ApiError(400, "Missing service name")
        svc = _Service(
            self.agent_node, body.get("ID") or name, name, body.get("Tags"),
            body.get("Address", ""), int(body.get("Port", 0)), body.get("Meta"),
        )
        if svc.address:
            addr = {"Address": svc.address, "Port": svc.port}
            kind = "ipv6" if ":" in svc.address else "ipv4"
            svc.tagged = {f"lan_{kind}": addr, f"wan_{kind}": addr}
        defs = list(body.get("Checks") or []) + ([body["Check"]] if body.get("Check") else [])
        self._put_service(svc, self._make_checks(self.agent_node, svc, defs))

    def agent_deregister(self, service_id: str) -> None:
        """PUT /v1/agent/service/deregister/<id>."""
        self._remove_service(self.agent_node, service_id)

    def set_check(self, check_id: str, status: str, output: str) -> None:
        """PUT /v1/agent/check/{pass,warn,fail,update}/<id>."""
        check = self.checks.get((self.agent_node, check_id))
        if check is None:
            raise ApiError(500, f'Unknown check ID "{check_id}". Ensure that the check ID is'
                           " passed, not the check name.")
        if (check.status, check.output) == (status, output):
            return
        names = [check.service_name] if check.service_id else self._services_on(check.node)
        self.checks[(self.agent_node, check_id)] = replace(
            check, status=status, output=output, modify=self._bump(("checks",), names))

    def maintenance(self, service_id: str, enable: bool, reason: str) -> None:
        """PUT /v1/agent/service/maintenance/<id>?enable=…"""
        svc = self.services.get((self.agent_node, service_id))
        if svc is None:
            raise ApiError(404, f'Unknown service ID "{service_id}"')
        key = (self.agent_node, SERVICE_MAINT + service_id)
        if enable and key not in self.checks:
            idx = self._bump(("checks",), [svc.name])
            self.checks[key] = _Check(
                self.agent_node, key[1], "Service Maintenance Mode", "critical",
                notes=reason or "Maintenance mode is enabled for this service, but no reason"
                " was provided. This is a default message.",
                service_id=service_id, service_name=svc.name, service_tags=list(svc.tags or []),
                type="maintenance", create=idx, modify=idx,
            )
        elif not enable and key in self.checks:
            self._bump(("checks",), [svc.name])
            del self.checks[key]

    def catalog_register(self, body: dict[str, Any]) -> None:
        """PUT /v1/catalog/register: a node, optionally with one service and its checks."""
        name, address = body.get("Node") or "", body.get("Address") or ""
        if not name or not address:
            raise ApiError(400, "Must provide node and address")
        node = self.nodes.get(name)
        if node is None or node.address != address:
            idx = self._bump(("nodes",), self._services_on(name))
            node = _Node(name, address, body.get("ID", ""), body.get("TaggedAddresses"),
                         body.get("NodeMeta"), node.create if node else idx, idx)
            self.nodes[name] = node
        svc = None
        if body.get("Service"):
            s = body["Service"]
            svc = _Service(name, s.get("ID") or s["Service"], s["Service"], s.get("Tags"),
                           s.get("Address", ""), int(s.get("Port", 0)), s.get("Meta"))
        defs = list(body.get("Checks") or []) + ([body["Check"]] if body.get("Check") else [])
        checks = self._make_checks(name, None, defs)
        for check in checks:
            if svc and check.service_id == svc.id:
                check.service_name = svc.name
        if svc is not None:
            self._put_service(svc, checks)
        elif checks:
            for check in checks:  # a check of a service takes its name and tags (as Consul)
                if check.service_id:
                    owner = self.services.get((name, check.service_id))
                    if owner is None:
                        raise ApiError(500, "Missing service registration")
                    check.service_name, check.service_tags = owner.name, list(owner.tags or [])
            idx = self._bump(("checks",), self._services_on(name))
            for check in checks:
                prev = self.checks.get((name, check.check_id))
                check.create, check.modify = (prev.create if prev else idx), idx
                self.checks[(name, check.check_id)] = check

    def catalog_deregister(self, body: dict[str, Any]) -> None:
        """PUT /v1/catalog/deregister: a service, a check or a whole node."""
        name = body.get("Node") or ""
        if name not in self.nodes:
            return
        if body.get("ServiceID"):
            self._remove_service(name, body["ServiceID"])
        elif body.get("CheckID"):
            if self.checks.pop((name, body["CheckID"]), None) is not None:
                self._bump(("checks",), self._services_on(name))
        else:
            names = self._services_on(name)
            self._bump(("nodes", "services", "checks"), names)
            del self.nodes[name]
            self.services.drop_node(name)
            self.checks.drop_node(name)
            self._drop_extinct(names)

    def kv_put(self, key: str, value: bytes, flags: int) -> None:
        """PUT /v1/kv/<key>."""
        old = self.kv.get(key)
        idx = self._bump(("kvs",))
        self.kv[key] = _KV(key, value, flags, old.create if old else idx, idx)
        self.graveyard.pop(key, None)

    def kv_delete(self, key: str, recurse: bool) -> None:
        """DELETE /v1/kv/<key>[?recurse]."""
        doomed = [k for k in self.kv if k.startswith(key)] if recurse else [key]
        doomed = [k for k in doomed if k in self.kv]
        if not doomed:
            return
        idx = self._bump(("kvs",))
        for k in doomed:
            del self.kv[k]
            self.graveyard[k] = idx

    # -- reads: (index, body) ------------------------------------------------------------

    def catalog_services(self) -> tuple[int, Body]:
        # Consul merges the tags of a service's instances through a map: the order of the
        # merged list is not stable, so the double shuffles it.
        tags: dict[str, set[str]] = {}
        for svc in self.services.values():
            tags.setdefault(svc.name, set()).update(svc.tags or [])
        return self.tables["services"], {n: shuffled(t) for n, t in sorted(tags.items())}

    def catalog_index(self) -> int:
        """The index of reads that span nodes, services and checks (the UI endpoints)."""
        return max(self.tables["nodes"], self.tables["services"], self.tables["checks"])

    def ui_nodes(self) -> tuple[int, Body]:
        """``/v1/internal/ui/nodes``: every node with its instances and checks (serialized
        when sent, re-serializing only the nodes written to since the last answer)."""
        return self.catalog_index(), Lazy(self.ui.answer)

    def ui_services(self) -> tuple[int, Body]:
        """``/v1/internal/ui/services``: one summary row per service name."""
        rows: dict[str, dict[str, Any]] = {}
        seen: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
        owned: dict[tuple[str, str], list[tuple[str, _Check]]] = defaultdict(list)
        for (node, check_id), check in self.checks.items():  # node checks under ""
            owned[(node, check.service_id)].append((check_id, check))
        for (node, _), svc in sorted(self.services.items()):
            row = rows.setdefault(svc.name, {"tags": set(), "nodes": set(), "count": 0})
            row["tags"].update(svc.tags or [])
            row["nodes"].add(node)
            row["count"] += 1
            for check_id, check in [*owned[(node, "")], *owned[(node, svc.id)]]:
                seen[svc.name][(node, check_id)] = check.status
        out = []
        for name, row in sorted(rows.items()):
            statuses = list(seen[name].values())
            out.append({
                "Name": name, "Datacenter": DATACENTER,
                "Tags": shuffled(row["tags"]) or None, "Nodes": sorted(row["nodes"]),
                "ExternalSources": None, "InstanceCount": row["count"],
                "ChecksPassing": statuses.count("passing"),
                "ChecksWarning": statuses.count("warning"),
                "ChecksCritical": statuses.count("critical"),
                "GatewayConfig": {}, "TransparentProxy": False,
                "ConnectedWithProxy": False, "ConnectedWithGateway": False,
            })
        return self.catalog_index(), out

    def catalog_nodes(self) -> tuple[int, Body]:
        return self.tables["nodes"], [n.json() for _, n in sorted(self.nodes.items())]

    def catalog_node(self, name: str) -> tuple[int, Body]:
        """GET /v1/catalog/node/<name>: the node and its services by ID (null if unknown)."""
        index = max(self.tables["nodes"], self.tables["services"])
        node = self.nodes.get(name)
        if node is None:
            return index, None
        services = {s.id: s.json() for _, s in sorted(self.services.on(name).items())}
        return index, {"Node": node.json(), "Services": services}

    def _instances(self, name: str, tags: list[str]) -> list[_Service]:
        # Consul matches service names case-insensitively.
        found = [s for _, s in sorted(self.services.named(name).items())]
        wanted = [t.lower() for t in tags]
        return [s for s in found if all(t in [x.lower() for x in s.tags or []] for t in wanted)]

    def catalog_service(
        self, name: str, tags: list[str], where: Filter | None = None
    ) -> tuple[int, Body]:
        found = self._instances(name, tags)
        body = [s.catalog_json(self.nodes[s.node]) for s in found]
        return self.service_idx(name), [e for e in body if where is None or where(e)]

    def health_service(
        self, name: str, tags: list[str], passing: bool, where: Filter | None = None
    ) -> tuple[int, Body]:
        entries: list[dict[str, Any]] = []
        for svc in self._instances(name, tags):
            checks = [c for _, c in sorted(self.checks.on(svc.node).items())
                      if c.service_id in ("", svc.id)]
            if passing and any(c.status != "passing" for c in checks):
                continue
            entries.append({"Node": self.nodes[svc.node].json(), "Service": svc.json(),
                            "Checks": [c.json() for c in checks]})
        return self.service_idx(name), [e for e in entries if where is None or where(e)]

    def health_node(self, node: str) -> tuple[int, Body]:
        checks = [c.json() for _, c in sorted(self.checks.on(node).items())]
        return self.tables["checks"], checks

    def health_state(self, state: str) -> tuple[int, Body]:
        if state not in ("any", "passing", "warning", "critical"):
            raise ApiError(400, f"Unsupported state: {state}")
        checks = self.checks

        def build() -> bytes:  # from each check's cached JSON
            return b"[" + b",".join(c.api_json() for _, c in sorted(checks.items())
                                    if state in ("any", c.status)) + b"]"

        return self.tables["checks"], Lazy(build)

    def kv_get(self, key: str, recurse: bool, keys: bool, separator: str) -> tuple[int, Body]:
        """Entries (None when missing) with Consul's KV index rules."""
        if not (recurse or keys):
            entry = self.kv.get(key)
            if entry is None:
                return self.tables["kvs"] or 1, None
            return entry.modify, [entry]
        found = [e for k, e in sorted(self.kv.items()) if k.startswith(key)]
        idx = max([e.modify for e in found]
                  + [i for k, i in self.graveyard.items() if k.startswith(key)], default=0)
        idx = idx or self.tables["kvs"] or 1
        if not found:
            # Consul never reports the root of a key listing as missing (kvs_endpoint.go).
            return idx, ([] if keys and not key else None)
        if not keys:
            return idx, found
        names: list[str] = []
        for e in found:
            name = e.key
            if separator:
                cut = name.find(separator, len(key))
                name = name if cut < 0 else name[: cut + len(separator)]
            if not names or names[-1] != name:
                names.append(name)
        return idx, names


def parse_duration(text: str) -> float:
    """A Go duration such as ``10s``, ``1m30s``, ``250ms``; a bare number is seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ApiError(400, f"Invalid wait time: {text!r}")
    return sum(float(num) * units[unit] for num, unit in parts)


def _json(body: Body, headers: dict[str, str] | None = None) -> web.Response:
    """Compact JSON with Consul's bare ``application/json`` content type."""
    data = body.build() if isinstance(body, Lazy) else dumps(body)
    return web.Response(body=data, headers={**(headers or {}), "Content-Type": "application/json"})


def _indented(data: bytes) -> bytes:
    """JSON as an agent writes it in dev mode or for ``?pretty`` (Go's ``MarshalIndent`` with
    four spaces, then a newline): same values, other bytes."""
    return json.dumps(json.loads(data), indent=4).encode() + b"\n"


def _flag(query: Any, name: str) -> bool:
    if name not in query:
        return False
    return str(query.get(name, "")).lower() not in ("0", "false")


class _LimitedServer(web.Server):
    """Counts open connections per client IP, as the agent's connlimit listener does."""

    def __init__(self, handler: Any, double: ConsulDouble) -> None:
        super().__init__(handler, handler_cancellation=True, access_log=None)
        self._double = double
        self.per_ip: dict[str, int] = defaultdict(int)
        self._ip: dict[RequestHandler, str] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        ip = str((transport.get_extra_info("peername") or ("?",))[0])
        if self.per_ip[ip] >= self._double.conn_limit:
            # Like the agent's connlimit: answer 429 as soon as the connection is accepted,
            # before any request is read, then close it.
            transport.write(b"HTTP/1.1 429 Too Many Requests\r\n\r\n")
            transport.close()
            return
        self.per_ip[ip] += 1
        self._ip[handler] = ip

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        ip = self._ip.pop(handler, None)
        if ip is not None:
            self.per_ip[ip] -= 1
        super().connection_lost(handler, exc)


class ConsulDouble:
    """The HTTP server: start()/stop() from any thread; the same port across restarts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, acl_token: str = "",
                 node_name: str = "ctmpl-double", node_id: str = "") -> None:
        self.host = host
        self.node_name = node_name
        self.node_id = node_id
        self.port = port
        self.acl_token = acl_token
        self.conn_limit = CONN_LIMIT
        self.ui_endpoints = True  # False: /v1/internal/ui/* answer 404 (an agent without them)
        self.stable_order = False  # True: /v1/internal/ui/nodes in an agent's order (sorted)
        # True: JSON indented as a `consul agent -dev` writes it (any agent with ?pretty)
        self.dev_mode = False
        self.last_contact_ms = 0
        self.requests: list[str] = []
        self.state: ConsulState | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._server: _LimitedServer | None = None

    @property
    def addr(self) -> str:
        """``host:port`` as ctmpl's ``-consul-addr`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None

    def call(self, fn: Callable[[ConsulState], Any]) -> Any:
        """Run ``fn(state)`` on the server's loop and return its result (bulk loading)."""
        assert self._loop is not None and self.state is not None
        state = self.state

        async def run() -> Any:
            return fn(state)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(600)

    def open_connections(self, ip: str = "127.0.0.1") -> int:
        """Connections currently counted against ``ip``'s limit."""
        return self._server.per_ip.get(ip, 0) if self._server else 0

    def start(self) -> None:
        """Listen (again) on ``port`` with a fresh state, like a restarted dev agent."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="consul-double", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Close the listener and every open connection (in-flight queries are cut off)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._thread = None

    async def _serve(self) -> None:
        self.state = ConsulState(self.node_name, self.node_id)
        self.state.ui.stable = self.stable_order
        self._server = _LimitedServer(self._handle, self)
        self._runner = web.ServerRunner(self._server, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._server = None

    # -- HTTP ---------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self._server is not None and self.state is not None
        self.requests.append(f"{request.method} {request.path_qs}")
        try:
            self._check_acl(request)
            response = await self._route(request, self.state)
        except ApiError as err:
            return web.Response(status=err.status, text=err.text,
                                headers={"X-Consul-Default-Acl-Policy": self._policy})
        except (ValueError, KeyError, TypeError) as exc:
            return web.Response(status=400, text=f"Request decode failed: {exc}")
        if (self.dev_mode or "pretty" in request.query) and isinstance(response, web.Response) \
                and response.content_type == "application/json" \
                and isinstance(response.body, bytes):
            response.body = _indented(response.body)
        return response

    @property
    def _policy(self) -> str:
        return "deny" if self.acl_token else "allow"

    def _check_acl(self, request: web.BaseRequest) -> None:
        if not self.acl_token:
            return
        token = request.headers.get("X-Consul-Token") or request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:]
        if token != self.acl_token:
            raise ApiError(403, "Permission denied")

    async def _route(self, request: web.BaseRequest, st: ConsulState) -> web.StreamResponse:
        path, q, method = request.path, request.query, request.method
        match = re.fullmatch(r"/v1/([a-z]+)/(.*)", path, re.S)
        if not match:
            raise ApiError(404, "404 page not found")
        group, rest = match[1], match[2]
        if method == "GET":
            if group == "kv":
                return await self._kv_get(request, unquote(rest))
            tags = q.getall("tag", [])
            reads: dict[str, Read] = {
                "catalog/services": st.catalog_services,
                "catalog/nodes": st.catalog_nodes,
                "internal/ui/nodes": st.ui_nodes,
                "internal/ui/services": st.ui_services,
            }
            read = reads.get(path[4:])
            if group == "internal" and not self.ui_endpoints:
                raise ApiError(404, "404 page not found")
            kind = "blocking-query"
            if read is None and rest.startswith("service/") and group in ("catalog", "health"):
                name = unquote(rest[8:])
                try:
                    where = compile_filter(q["filter"]) if "filter" in q else None
                except FilterError as err:
                    raise ApiError(
                        400, f"Failed to create boolean expression evaluator: {err}"
                    ) from None
                if group == "catalog":
                    def read() -> tuple[int, Body]:
                        return st.catalog_service(name, tags, where)
                else:
                    def read() -> tuple[int, Body]:
                        return st.health_service(name, tags, _flag(q, "passing"), where)
                    if int(q.get("index", "0") or 0) > 0:
                        kind = "streaming"
            elif read is None and group == "health" and rest.startswith("state/"):
                def read() -> tuple[int, Body]:
                    return st.health_state(rest[6:])
            elif read is None and group == "health" and rest.startswith("node/"):
                def read() -> tuple[int, Body]:
                    return st.health_node(unquote(rest[5:]))
            elif read is None and group == "catalog" and rest.startswith("node/"):
                node_name = unquote(rest[5:])

                def read() -> tuple[int, Body]:
                    return st.catalog_node(node_name)
            elif path == "/v1/catalog/datacenters":
                return _json([DATACENTER])
            elif path == "/v1/agent/self":
                agent = st.nodes[st.agent_node]
                return _json({"Config": {"Datacenter": DATACENTER, "NodeName": agent.name,
                                         "NodeID": agent.id}})
            elif path == "/v1/status/leader":
                return _json(f"{self.host}:8300")
            if read is None:
                raise ApiError(404, "404 page not found")
            return await self._answer(request, read, kind)
        if method == "PUT":
            return await self._write(request, group, rest, st)
        if method == "DELETE" and group == "kv":
            st.kv_delete(unquote(rest), _flag(q, "recurse"))
            return _json(True)
        raise ApiError(405, f"method {method} not allowed")

    async def _write(
        self, request: web.BaseRequest, group: str, rest: str, st: ConsulState
    ) -> web.StreamResponse:
        q = request.query
        if group == "kv":
            st.kv_put(unquote(rest), await request.read(), int(q.get("flags", "0") or 0))
            return _json(True)
        body = await request.json() if request.can_read_body else {}
        target = unquote(rest.rpartition("/")[2])
        statuses = {"pass": "passing", "warn": "warning", "fail": "critical"}
        if group == "agent" and rest == "service/register":
            st.agent_register(body)
        elif group == "agent" and rest.startswith("service/deregister/"):
            st.agent_deregister(target)
        elif group == "agent" and rest.startswith("service/maintenance/"):
            st.maintenance(target, _flag(q, "enable"), q.get("reason", ""))
        elif group == "agent" and rest.split("/")[:2] in [["check", s] for s in statuses]:
            st.set_check(target, statuses[rest.split("/")[1]], q.get("note", ""))
        elif group == "agent" and rest.startswith("check/update/"):
            st.set_check(target, body.get("Status", ""), body.get("Output", ""))
        elif group == "catalog" and rest == "register":
            st.catalog_register(body)
            return _json(True)
        elif group == "catalog" and rest == "deregister":
            st.catalog_deregister(body)
            return _json(True)
        else:
            raise ApiError(404, "404 page not found")
        return web.Response(status=200)

    async def _block(
        self, request: web.BaseRequest, read: Read, kind: str = "blocking-query"
    ) -> tuple[int, Body]:
        """Run ``read`` now, or once its index passes the requested one, or after ``wait``.

        The blocking-query backend adds up to wait/16 of random jitter to the wait; the
        streaming backend answers after exactly ``wait`` (recorded: 2 s wait, 2002 ms).
        """
        assert self.state is not None
        q = request.query
        want = int(q.get("index", "0") or 0)
        index, body = read()
        if want <= 0 or index > want:
            return index, body
        wait = min(parse_duration(q["wait"]) if q.get("wait") else DEFAULT_WAIT, MAX_WAIT)
        loop = asyncio.get_running_loop()
        jitter = 0.0 if kind == "streaming" else random.uniform(0, wait / 16)
        deadline = loop.time() + wait + jitter
        while index <= want and (remaining := deadline - loop.time()) > 0:
            await wait_changed(self.state.changes.changed(ANY), remaining)
            index, body = read()
        return index, body

    def _headers(self, request: web.BaseRequest, index: int, kind: str, kv: bool) -> dict[str, str]:
        q = request.query
        stale, consistent = _flag(q, "stale"), _flag(q, "consistent")
        if stale and consistent:
            raise ApiError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        headers = {"X-Consul-Default-Acl-Policy": self._policy}
        if not kv and not request.path.startswith("/v1/internal/"):
            mode = "stale" if stale else "consistent" if consistent else "leader"
            headers["X-Consul-Effective-Consistency"] = mode
        headers["X-Consul-Index"] = str(max(index, 1))
        headers["X-Consul-Knownleader"] = "false" if kind == "streaming" else "true"
        headers["X-Consul-Lastcontact"] = str(self.last_contact_ms if stale else 0)
        headers["X-Consul-Query-Backend"] = kind
        return headers

    async def _answer(self, request: web.BaseRequest, read: Read, kind: str) -> web.Response:
        if request.query.get("dc", DATACENTER) != DATACENTER:
            raise ApiError(500, "No path to datacenter")
        index, body = await self._block(request, read, kind)
        if kind == "streaming":
            # A streaming answer comes from a materialized view kept in a Go map: its order
            # is not sorted (recorded: web-app-5 before web-app-2), so the double shuffles it.
            body = list(body)
            random.shuffle(body)
        return _json(body, self._headers(request, index, kind, kv=False))

    async def _kv_get(self, request: web.BaseRequest, key: str) -> web.Response:
        q = request.query
        st = self.state
        assert st is not None

        def read() -> tuple[int, Body]:
            return st.kv_get(key, _flag(q, "recurse"), "keys" in q, q.get("separator", ""))

        index, found = await self._block(request, read)
        headers = self._headers(request, index, "blocking-query", kv=True)
        if found is None:
            return web.Response(status=404, headers=headers)
        if "keys" in q:
            return _json(found, headers)
        if _flag(q, "raw") and not _flag(q, "recurse"):
            headers["Content-Type"] = "text/plain"
            return web.Response(body=found[0].value, headers=headers)
        return _json([e.json() for e in found], headers)


def main() -> None:
    """Serve until interrupted: ``python -m tests.consul_double --port 8500``."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="")
    parser.add_argument("--dev", action="store_true",
                        help="indent JSON as a `consul agent -dev` does")
    parser.add_argument("--order", choices=("shuffled", "stable"), default="shuffled",
                        help="/v1/internal/ui/nodes: a new random order per answer, or an "
                        "agent's (sorted)")
    parser.add_argument("--load", help="a JSON file: a list of /v1/catalog/register bodies "
                        "to apply before listening is announced")
    args = parser.parse_args()
    double = ConsulDouble(port=args.port, acl_token=args.token)
    double.dev_mode = args.dev
    double.stable_order = args.order == "stable"
    double.start()
    if args.load:
        with open(args.load, encoding="utf-8") as fh:
            bodies = json.load(fh)

        def fill(state: ConsulState) -> None:
            for body in bodies:
                state.catalog_register(body)
            state.ui.answer()  # serialized once now, as an agent has its state ready

        double.call(fill)
    print(double.addr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
