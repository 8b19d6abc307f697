"""The consul-template conformance corpus: where it is, and loading its state into Consul.

``load_state`` writes ``state.json`` through Consul's HTTP API only (catalog register per
node and per service, KV puts with flags), so it works on the API double and on a real
``consul agent -dev`` started with the corpus's node name and ID.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.fixtures_consul import ConsulFixture

CORPUS = Path(os.environ.get("CTMPL_CORPUS", Path(__file__).resolve().parents[2] / "shared"
                             / "ctmpl-corpus"))


def read_state() -> dict[str, Any]:
    """``state.json`` as data."""
    return dict(json.loads((CORPUS / "state.json").read_text(encoding="utf-8")))


def _checks(raw: list[dict[str, Any]], service_id: str = "") -> list[dict[str, Any]]:
    checks = []
    for check in raw:
        body = {k: check[k] for k in ("CheckID", "Name", "Status", "Output", "Notes")
                if k in check}
        if service_id:
            body["ServiceID"] = service_id
        checks.append(body)
    return checks


def load_state(consul: ConsulFixture, state: dict[str, Any]) -> None:
    """Register the corpus's catalog nodes, services, checks and KV pairs."""
    for node in state["nodes"]:
        base = {"Node": node["Node"], "ID": node["ID"], "Address": node["Address"],
                "TaggedAddresses": node["TaggedAddresses"], "NodeMeta": node["Meta"]}
        consul.call("PUT", "/v1/catalog/register",
                    {**base, "Checks": _checks(node.get("Checks") or [])})
        for svc in node["Services"]:
            service = {k: svc[k] for k in ("ID", "Service", "Address", "Port", "Tags", "Meta")}
            consul.call("PUT", "/v1/catalog/register", {
                **base, "SkipNodeUpdate": True, "Service": service,
                "Checks": _checks(svc.get("Checks") or [], svc["ID"]),
            })
    for pair in state["kv"]:
        path = f"/v1/kv/{urllib.parse.quote(pair['Key'])}?flags={pair['Flags']}"
        consul.call("PUT", path, pair["Value"].encode("utf-8"))
    _wait_for_agent_node(consul, state["agent"]["Node"])


def _wait_for_agent_node(consul: ConsulFixture, name: str, timeout: float = 30.0) -> None:
    """A real agent fills its own node's Meta and TaggedAddresses by anti-entropy: wait."""
    deadline = time.monotonic() + timeout
    while True:
        node = (consul.call("GET", f"/v1/catalog/node/{name}") or {}).get("Node") or {}
        if node.get("Meta") and node.get("TaggedAddresses"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"consul: node {name} has no Meta/TaggedAddresses after "
                                 f"{timeout:g}s")
        time.sleep(0.1)
