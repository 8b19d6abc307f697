"""The ZooKeeper catalog's settings: ``zk://h1:2181,h2:2181/prefix`` and the ``zk { }`` block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctmpl.config.model import ZkConfig
from ctmpl.errors import ConfigError

DEFAULT_PORT = 2181


def zk_path(what: str, text: str) -> str:
    """A ZooKeeper node path: absolute, no empty, ``.`` or ``..`` segment, no control chars.

    Trailing slashes are ignored; ``""`` and ``"/"`` are the root.
    """
    segments = text.strip("/").split("/") if text.strip("/") else []
    for segment in segments:
        if segment in ("", ".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in segment):
            raise ConfigError(f"{what}: {text!r} is not a ZooKeeper path (/a/b)")
    return "/" + "/".join(segments)


def _host(url: str, entry: str) -> str:
    host, sep, port = entry.rpartition(":")
    if not sep or host.endswith(":") or (entry.startswith("[") and not host.endswith("]")):
        host, port = entry, str(DEFAULT_PORT)  # no port: "zk1" or "[fd00::1]"
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"catalog {url!r}: host {entry!r} is not host[:port]")
    return f"{host}:{port}"


def parse_zk_url(url: str) -> dict[str, Any]:
    """``zk://h1:2181,h2:2181/services`` as hosts (port 2181 when left out) and prefix."""
    hosts, _, prefix = url.removeprefix("zk://").partition("/")
    entries = [h.strip() for h in hosts.split(",") if h.strip()]
    if not entries:
        raise ConfigError(f"catalog {url!r}: expected zk://host:port[,host:port]/prefix")
    hosts_ = tuple(_host(url, e) for e in entries)
    return {"hosts": hosts_, "prefix": zk_path(f"catalog {url!r}", f"/{prefix}")}


def zk_config(raw: Mapping[str, Any]) -> ZkConfig:
    """The finalized ``zk`` settings; ConfigError naming the key that is wrong."""
    fields = dict(raw)
    fields["prefix"] = zk_path("zk.prefix", fields.get("prefix", "/"))
    hosts = tuple(fields.get("hosts", ZkConfig().hosts))
    if not hosts:
        raise ConfigError("zk.hosts: at least one host:port is required")
    fields["hosts"] = tuple(_host("zk.hosts", h) for h in hosts)
    if not 1.0 <= fields.get("session_timeout", 10.0) <= 600.0:
        raise ConfigError("zk.session_timeout: must be between 1s and 10m")
    if bool(fields.get("username")) != bool(fields.get("password")):
        raise ConfigError("zk: set both username and password (digest authentication)")
    return ZkConfig(**fields)
