"""Service registrations as people already write them into etcd and ZooKeeper, validated.

Layouts under the catalog prefix ``P`` (etcd keys, ZooKeeper nodes):

- ``P/<service>/<id>`` = ``ip:port``, ``[v6]:port`` (registrator, docker-register) or a
  JSON object with ``Address``, ``Port``, optional ``Tags``, ``Meta``, ``Status``; when the
  value is empty, or a JSON object without ``Address``, the ``<id>`` itself is the
  ``ip:port`` (``P/web/10.0.0.7:8080``, Docker Swarm's ZooKeeper layout); Apache Curator's
  service-discovery JSON (``address``, ``port`` or ``sslPort``, ``payload.metadata``: what
  Spring Cloud Zookeeper writes) is read too;
- ``P/<ip>:<port>`` (dockreg's flat layout, refreshed with a TTL by a health-checking
  sidekick): one instance of the service named after the last segment of ``P``; a JSON
  object value may add ``Tags``, ``Meta`` and ``Status``.

Each bad entry is skipped with one warning naming its key, once per distinct key and value.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ctmpl.model import Instance, InvalidEntry, make_instance, warn_once

log = logging.getLogger("ctmpl.sources.etcd")


def split_host_port(where: str, text: str) -> tuple[str, str]:
    """``host:port`` or ``[v6]:port`` → (host, port text); InvalidEntry otherwise."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if sep and rest.startswith(":"):
            return host, rest[1:]
    else:
        host, sep, port = text.rpartition(":")
        if sep and ":" not in host:
            return host, port
    raise InvalidEntry(f"{where}: {text[:80]!r} is neither ip:port, [ipv6]:port nor JSON")


def _json_fields(where: str, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidEntry(f"{where}: JSON value must be an object")
    tags, meta, status = doc.get("Tags") or [], doc.get("Meta") or {}, doc.get("Status")
    if not isinstance(tags, list):
        raise InvalidEntry(f"{where}: Tags must be a list")
    if not isinstance(meta, dict):
        raise InvalidEntry(f"{where}: Meta must be an object")
    if status is not None and not isinstance(status, str):
        raise InvalidEntry(f"{where}: Status must be a string")
    return {"tags": tags, "meta": meta, "status": status or "passing"}


def _load_json(where: str, text: str) -> Any:
    try:
        doc = json.loads(text)
    except ValueError:
        raise InvalidEntry(f"{where}: value is not valid JSON") from None
    curator = isinstance(doc, dict) and "address" in doc and "Address" not in doc
    return _from_curator(doc) if curator else doc


def _from_curator(doc: dict[str, Any]) -> dict[str, Any]:
    """Curator's ``ServiceInstance`` JSON in the catalog's own field names."""
    port = doc.get("port") if doc.get("port") is not None else doc.get("sslPort")
    payload = doc.get("payload")
    meta = payload.get("metadata") if isinstance(payload, dict) else None
    return {"Address": doc["address"], "Port": port,
            "Meta": meta if isinstance(meta, dict) else {}}


def parse_nested(where: str, name: str, id: str, text: str) -> Instance:
    """An instance from ``P/<name>/<id>`` = ``ip:port``, a JSON object, or empty (the id
    is then ``ip:port``)."""
    if text.startswith("{"):
        doc = _load_json(where, text)
        fields = _json_fields(where, doc)
        if "Address" in doc:
            address, port = doc["Address"], doc.get("Port")
        elif ":" in id:
            address, port = split_host_port(where, id)
        else:
            raise InvalidEntry(f"{where}: JSON value has no Address")
        return make_instance(where, name=name, id=id, address=address, port=port, **fields)
    host, port = split_host_port(where, text or id)
    return make_instance(where, name=name, id=id, address=host, port=port)


def parse_flat(where: str, name: str, segment: str, text: str) -> Instance:
    """An instance from the flat ``P/<ip>:<port>`` layout; the value may add tags and meta."""
    host, port = split_host_port(where, segment)
    fields = _json_fields(where, _load_json(where, text)) if text.startswith("{") else {}
    return make_instance(where, name=name, id=segment, address=host, port=port, **fields)


def etcd_prefix(text: str) -> str:
    """An etcd key prefix as written, without trailing slashes; a leading ``/`` is kept.

    etcd keys are plain bytes: ``/services/web/a`` and ``services/web/a`` are different
    keys, and registration tools write both kinds. ``"/"`` stays ``"/"`` (keys that start
    with a slash); ``""`` is the whole keyspace.
    """
    trimmed = text.rstrip("/")
    return trimmed or ("/" if text.startswith("/") else "")


def key_base(prefix: str) -> str:
    """What every key below ``prefix`` starts with: ``/services`` → ``/services/``, ``/`` → ``/``.

    ``""`` (the whole keyspace) stays ``""``.
    """
    return prefix if not prefix or prefix.endswith("/") else f"{prefix}/"


class EntryParser:
    """Turns the raw keys under a prefix into instances, parsing each key+value once.

    ``label`` names an entry in warnings: ``etcd key '/services/web/a'``.
    """

    def __init__(self, prefix: str, label: str = "etcd key") -> None:
        prefix = etcd_prefix(prefix)
        self._label = label
        self._base = key_base(prefix).encode()
        self._flat_name = prefix.rsplit("/", 1)[-1]
        self._memo: dict[bytes, tuple[bytes, Instance | None]] = {}

    def instances(self, values: Mapping[bytes, bytes]) -> list[Instance]:
        """Valid instances among ``values`` (full etcd key → raw value)."""
        memo: dict[bytes, tuple[bytes, Instance | None]] = {}
        for key, value in values.items():
            hit = self._memo.get(key)
            result = hit[1] if hit and hit[0] == value else self.parse(key, value)
            memo[key] = (value, result)
        self._memo = memo
        return [inst for _, inst in memo.values() if inst is not None]

    def parse(self, key: bytes, value: bytes) -> Instance | None:
        """The instance one entry registers; None (with one warning) when it is invalid."""
        path = key.decode("utf-8", "replace")
        where = f"{self._label} {path!r}"
        parts = path[len(self._base):].split("/")
        text = value.decode("utf-8", "replace").strip()
        try:
            if len(parts) == 2:
                return parse_nested(where, parts[0], parts[1], text)
            if len(parts) == 1 and self._flat_name:
                return parse_flat(where, self._flat_name, parts[0], text)
        except InvalidEntry as exc:
            warn_once(f"{exc} (entry skipped)")
            return None
        log.debug("%s: not a service registration; ignored", where)
        return None
