"""Parse a file catalog (YAML or JSON) into validated, sorted data.

Format::

    services:
      web-app:
        - {id: web-app-1, node: node-1, address: 10.0.0.1, port: 8080,
           tags: [calico], meta: {version: "1"}, status: passing}
    nodes:
      - {node: node-1, address: 10.0.0.1}
    kv:
      app/config/greeting: hello
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctmpl.errors import SourceError
from ctmpl.model import (
    Instance,
    InvalidEntry,
    Node,
    ServiceSummary,
    is_safe_name,
    is_valid_address,
    make_instance,
    sort_instances,
    summarize,
    warn_once,
)
from ctmpl.sources.file_decode import decode, read_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Everything one version of the catalog file says."""

    instances: tuple[Instance, ...] = ()
    nodes: tuple[Node, ...] = ()
    kv: Mapping[str, str] | None = None

    @functools.cached_property
    def by_name(self) -> dict[str, tuple[Instance, ...]]:
        """Instances grouped by service name, so one service() query costs O(its instances)."""
        groups: dict[str, list[Instance]] = {}
        for inst in self.instances:
            groups.setdefault(inst.Name, []).append(inst)
        return {name: tuple(items) for name, items in groups.items()}

    @functools.cached_property
    def summaries(self) -> dict[str, ServiceSummary]:
        """``services()`` entries by name, filled as they are asked for (see ``services``)."""
        return {}

    def services(self) -> tuple[ServiceSummary, ...]:
        """Every service with the union of its tags, sorted by name."""
        known = self.summaries
        for name in self.by_name.keys() - known.keys():
            known[name] = summarize(self.by_name[name])[0]
        return tuple(known[name] for name in sorted(self.by_name))


def read_catalog(path: Path) -> Snapshot:
    """Read and validate ``path``; SourceError with file:line:column when malformed.

    Invalid entries are dropped with one warning each (``model.warn_once``), so an
    unchanged bad entry is not reported again on every reload.
    """
    text = read_text(path)
    if not text.strip():
        # An editor that truncates before writing shows an empty file for a moment:
        # never read that as "every service is gone".
        raise SourceError(f"catalog {path}: file is empty (write `services: {{}}` for none)")
    data = _document(path, decode(path, text))
    nodes = _nodes(path, data.get("nodes", []))
    addresses = {n.Node: n.Address for n in nodes}
    return Snapshot(
        instances=_instances(path, data.get("services", {}), addresses),
        nodes=nodes,
        kv=_kv(path, data.get("kv", {})),
    )


def _document(path: Path, data: Any) -> dict[str, Any]:
    """The top-level mapping; anything that is not a catalog document is an error.

    An emptied file (comments only, ``---``, ``null``) or ``services:`` with no value is
    what a half-finished edit or a broken generator leaves: reading it as "no services"
    would remove every upstream. Only an explicit ``services: {}`` (or ``[]``) means none.
    """
    hint = "write `services: {}` for a catalog with no services"
    if data is None:
        raise SourceError(f"catalog {path}: holds no catalog document "
                          f"(comments only, `---` or `null`); {hint}")
    if not isinstance(data, dict):
        raise SourceError(f"catalog {path}: top level must be a mapping")
    unknown = sorted(str(k) for k in set(data) - {"services", "nodes", "kv"})
    if unknown:
        raise SourceError(f"catalog {path}: unknown key {unknown[0]!r} (use services, nodes, kv)")
    if not data:
        raise SourceError(f"catalog {path}: no services key; {hint}")
    for key in ("services", "nodes", "kv"):
        if key in data and data[key] is None:
            raise SourceError(f"catalog {path}: {key} has no value; {hint}")
    return data


def _skipped(message: str) -> None:
    warn_once(f"{message}; entry skipped")


def _instances(path: Path, services: Any, addresses: Mapping[str, str]) -> tuple[Instance, ...]:
    if services == []:
        return ()  # `services: []`, the other spelling of "no services"
    if not isinstance(services, dict):
        raise SourceError(f"catalog {path}: services must map names to lists of instances")
    found: list[Instance] = []
    for name, entries in services.items():
        if not isinstance(entries, list):
            _skipped(f"catalog {path}: services.{name} is not a list of instances")
            continue
        for i, entry in enumerate(entries):
            where = f"catalog {path}: services.{name}[{i}]"
            try:
                found.append(_instance(where, str(name), entry, addresses))
            except InvalidEntry as exc:
                _skipped(str(exc))
    return sort_instances(found)


def _instance(where: str, name: str, entry: Any, addresses: Mapping[str, str]) -> Instance:
    if not isinstance(entry, dict):
        raise InvalidEntry(f"{where}: expected a mapping with address and port")
    tags = entry.get("tags") or []
    node = str(entry.get("node") or "")
    # As in Consul's health API: an instance without its own address uses its node's.
    address = entry.get("address") or addresses.get(node)
    return make_instance(
        where,
        name=name,
        id=str(entry.get("id") or f"{name}-{address}-{entry.get('port')}"),
        address=address,
        port=entry.get("port"),
        tags=tags if isinstance(tags, list) else [tags],
        meta=entry.get("meta") if isinstance(entry.get("meta"), dict) else None,
        node=node,
        node_address=addresses.get(node, ""),
        status=str(entry.get("status") or "passing"),
    )


def _nodes(path: Path, nodes: Any) -> tuple[Node, ...]:
    if not isinstance(nodes, list):
        raise SourceError(f"catalog {path}: nodes must be a list")
    found = []
    for i, entry in enumerate(nodes):
        node = entry.get("node") if isinstance(entry, dict) else None
        address = entry.get("address") if isinstance(entry, dict) else None
        if not (isinstance(node, str) and is_safe_name(node)):
            _skipped(f"catalog {path}: nodes[{i}]: node {node!r} is not a safe name")
        elif not (isinstance(address, str) and is_valid_address(address)):
            _skipped(f"catalog {path}: nodes[{i}]: address {address!r} is invalid")
        else:
            found.append(Node(Node=node, Address=address, Datacenter="dc1"))
    return tuple(sorted(found, key=lambda n: n.Node))


def _kv(path: Path, kv: Any) -> dict[str, str]:
    if not isinstance(kv, dict):
        raise SourceError(f"catalog {path}: kv must map keys to values")
    result: dict[str, str] = {}
    for key, value in kv.items():
        text = value if isinstance(value, str) else json.dumps(value)
        result[str(key).strip("/")] = text
    return dict(sorted(result.items()))
