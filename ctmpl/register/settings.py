"""``ctmpl register`` settings: flags, ``register { … }`` HCL block and environment, finalized.

The same layers as the daemon (defaults < environment < config files < flags), checked by the
same schema: the registry is the daemon's ``catalog`` (``consul``, ``etcd://…/prefix`` or
``zk://…/prefix``) with its ``consul { }`` / ``etcd { }`` / ``zk { }`` blocks and
``-consul-*`` / ``-etcd-*`` flags, so one config file can serve both halves and the prefix is
parsed by the same function.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ctmpl.config.flags import FLAGS, Flag, parse_flags, parse_var
from ctmpl.config.layers import _catalog, env_layer, file_layers, merge
from ctmpl.config.load import flag_behind
from ctmpl.config.model import CatalogConfig, LogFormat, LogLevel
from ctmpl.config.schema import parse_layer
from ctmpl.errors import ConfigError, UsageError
from ctmpl.model import is_safe_id, is_safe_meta, is_safe_name, is_safe_tag
from ctmpl.register.spec import CheckSpec, join_host_port, parse_check, parse_status_range
from ctmpl.register.spec import split_address as split

_SHARED = {"config", "catalog", "log-level", "log-format", "pid-file"}

REGISTER_FLAGS: tuple[Flag, ...] = (
    *(f for f in FLAGS if f.name in _SHARED or (f.name.startswith(("consul-", "etcd-"))
      and not f.name.startswith(("consul-retry", "consul-max")))),
    Flag("service", "register.service", help="service name (etcd, ZooKeeper: the "
         "<prefix>/<service>/<id> layout; without it, the flat <prefix>/<ip>:<port>)",
         metavar="NAME"),
    Flag("id", "register.id", help="instance id (default ip:port; Consul: service-ip:port)"),
    Flag("address", "register.address", help="the instance's ip:port (required)",
         metavar="HOST:PORT"),
    Flag("tag", "register.tags", "list", "tag (repeatable)", "TAG"),
    Flag("meta", "register.meta", "var", "metadata key=value (repeatable)", "KEY=VALUE"),
    Flag("check", "register.check", help="tcp (default), tcp://h:p, http, http:/path, "
         "http[s]://url, cmd:COMMAND", metavar="SPEC"),
    Flag("check-status", "register.check_status", help="accepted HTTP statuses (default "
         "200-399)", metavar="RANGE"),
    Flag("interval", "register.interval", help="time between checks (default 5s)", metavar="DUR"),
    Flag("timeout", "register.timeout", help="check timeout (default 3s)", metavar="DUR"),
    Flag("rise", "register.rise", help="passing checks to become healthy (default 2)",
         metavar="N"),
    Flag("fall", "register.fall", help="failing checks to become unhealthy (default 2)",
         metavar="N"),
    Flag("ttl", "register.ttl", help="etcd lease / Consul check TTL / ZooKeeper session "
         "timeout (default 3×interval)",
         metavar="DUR"),
    Flag("format", "register.format", help="etcd or ZooKeeper value: auto, addr (ip:port) or "
         "json",
         metavar="FORMAT"),
    Flag("once", "register.once", "bool", "check once, register or deregister, exit"),
)

Format = Literal["addr", "json"]


@dataclass(frozen=True)
class RegisterConfig:
    """Everything ``ctmpl register`` needs, with no ``None`` left."""

    catalog: CatalogConfig
    service: str
    id: str
    host: str
    port: int
    check: CheckSpec
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    interval: float = 5.0
    timeout: float = 3.0
    rise: int = 2
    fall: int = 2
    ttl: float = 15.0
    format: Format = "addr"
    once: bool = False
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    pid_file: str = ""

    @property
    def address(self) -> str:
        """``host:port`` as registered."""
        return join_host_port(self.host, self.port)


def env_register_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """``CTMPL_REGISTER_<FLAG>`` for each register flag (``-check-status`` →
    ``CTMPL_REGISTER_CHECK_STATUS``); tags and meta as comma-separated lists."""
    raw: dict[str, Any] = {}
    for flag in REGISTER_FLAGS:
        if not flag.path.startswith("register."):
            continue
        name = "CTMPL_REGISTER_" + flag.name.upper().replace("-", "_")
        text = environ.get(name if flag.name != "tag" else "CTMPL_REGISTER_TAGS", "")
        if not text:
            continue
        value: Any = text
        if flag.kind == "list":
            value = [t.strip() for t in text.split(",") if t.strip()]
        elif flag.kind == "var":
            value = dict(parse_var(p.strip(), name) for p in text.split(",") if p.strip())
        raw[flag.path.split(".", 1)[1]] = value
    try:
        return parse_layer({"register": raw}) if raw else {}
    except (ConfigError, UsageError) as exc:
        raise ConfigError(f"environment: {exc}") from None


def load_register_config(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> RegisterConfig:
    """Defaults < environment < config files < flags, finalized once."""
    env = os.environ if environ is None else environ
    flags = parse_flags(argv, REGISTER_FLAGS, prog="ctmpl register")
    for path in flags.config_paths:
        if not Path(path).exists():
            raise UsageError(f"-config {path}: no such file or directory")
    layers = [env_layer(env), env_register_layer(env), *file_layers(flags.config_paths),
              flags.layer]
    try:
        return finalize_register(merge(layers))
    except ConfigError as exc:  # a value from a flag is a usage error naming the flag
        flag = flag_behind(str(exc), flags.layer, REGISTER_FLAGS)
        if flag is None:
            raise
        raise UsageError(f"flag {flag}: {exc}") from None


def finalize_register(raw: Mapping[str, Any]) -> RegisterConfig:
    """The frozen RegisterConfig; ConfigError naming the ``register.*`` key that is wrong."""
    reg = dict(raw.get("register", {}))
    catalog = _catalog(raw)
    if catalog.kind not in ("consul", "etcd", "zk"):
        what = {"file": "a file"}.get(catalog.kind, f"{catalog.kind}://…")
        raise ConfigError("catalog: ctmpl register writes to consul, etcd://… or zk://…, "
                          f"not {what}")
    if not reg.get("address"):
        raise ConfigError("register.address: required (the instance's ip:port, e.g. -address "
                          "10.0.0.7:8080)")
    host, port = split("register.address", reg["address"])
    service = reg.get("service", "")
    if catalog.kind == "consul" and not service:
        raise ConfigError("register.service: required with Consul")
    prefix = {"etcd": catalog.etcd.prefix, "zk": catalog.zk.prefix}.get(catalog.kind, "x")
    if not service and not prefix.strip("/"):
        raise ConfigError(f"register.service: required when the {catalog.kind} prefix is empty "
                          "(the flat <prefix>/<ip>:<port> layout names the service after the "
                          "prefix)")
    if catalog.kind == "zk" and reg.get("once", False):
        raise ConfigError("register.once: a ZooKeeper registration is an ephemeral node that "
                          "ends with the sidekick's session; run the sidekick instead")
    default_id = f"{service}-{join_host_port(host, port)}" if catalog.kind == "consul" else ""
    instance_id = reg.get("id") or default_id or join_host_port(host, port)
    _check_identity(service, instance_id, reg)
    interval = _positive("register.interval", reg.get("interval", 5.0))
    timeout = _positive("register.timeout", min(reg.get("timeout", 3.0), interval))
    ttl = reg.get("ttl", 3 * interval)
    if ttl <= interval:
        raise ConfigError(f"register.ttl: {ttl:g}s must be longer than the interval "
                          f"({interval:g}s), or the registration expires between checks")
    status = parse_status_range("register.check_status", reg.get("check_status", "200-399"))
    fmt = reg.get("format", "auto")
    if fmt == "auto":
        fmt = "json" if reg.get("tags") or reg.get("meta") else "addr"
    elif fmt == "addr" and (reg.get("tags") or reg.get("meta")):
        raise ConfigError("register.format: addr (ip:port) cannot carry tags or meta; use json")
    return RegisterConfig(
        catalog=catalog, service=service, id=instance_id, host=host, port=port,
        check=parse_check("register.check", reg.get("check", "tcp"), host, port, status),
        tags=tuple(reg.get("tags", ())), meta=dict(reg.get("meta", {})),
        interval=interval, timeout=timeout,
        rise=_count("register.rise", reg.get("rise", 2)),
        fall=_count("register.fall", reg.get("fall", 2)),
        ttl=float(math.ceil(ttl)) if catalog.kind == "etcd" else ttl,
        format=fmt, once=reg.get("once", False),
        log_level=raw.get("log_level", "info"), log_format=raw.get("log_format", "text"),
        pid_file=raw.get("pid_file", ""),
    )


def _check_identity(service: str, instance_id: str, reg: Mapping[str, Any]) -> None:
    """Refuse what the catalog would drop: it must read back exactly what is registered."""
    if service and not is_safe_name(service):
        raise ConfigError(f"register.service: {service!r} is not a safe name "
                          "([A-Za-z0-9][A-Za-z0-9_.-]*)")
    if not is_safe_id(instance_id) or "/" in instance_id:
        raise ConfigError(f"register.id: {instance_id!r} has spaces, quotes, '/' or other "
                          "characters the catalog drops")
    for tag in reg.get("tags", ()):
        if not is_safe_tag(tag):
            raise ConfigError(f"register.tags: {tag!r} has characters the catalog drops")
    for key, value in reg.get("meta", {}).items():
        if not is_safe_meta(key, value):
            raise ConfigError(f"register.meta: {key}={value!r} has characters the catalog drops")


def _positive(what: str, value: float) -> float:
    if value <= 0:
        raise ConfigError(f"{what}: must be more than 0s")
    return float(value)


def _count(what: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"{what}: must be at least 1")
    return int(value)
