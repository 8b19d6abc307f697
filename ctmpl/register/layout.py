"""Where and how a registration is written in etcd and ZooKeeper: the layouts their
catalogs read (``ctmpl.sources.registrations``), so the two halves agree by construction.

``<prefix>/<service>/<id>`` or the flat ``<prefix>/<host>:<port>``, valued ``host:port`` or a
JSON object with Address, Port, Tags and Meta.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ctmpl.register.spec import join_host_port


def registration_key(prefix: str, service: str, id: str, host: str, port: int) -> str:
    """``<prefix>/<service>/<id>`` with a service, else the flat ``<prefix>/<host>:<port>``."""
    rest = f"{service}/{id}" if service else join_host_port(host, port)
    return f"{prefix.rstrip('/')}/{rest}" if prefix else rest


def registration_value(
    host: str, port: int, tags: tuple[str, ...], meta: Mapping[str, str], as_json: bool
) -> str:
    """``host:port``, or the JSON object the catalog reads when tags or meta must travel."""
    if not as_json:
        return join_host_port(host, port)
    doc: dict[str, Any] = {"Address": host, "Port": port, "Tags": list(tags), "Meta": dict(meta)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
