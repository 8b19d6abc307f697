"""Layering: defaults < environment < config files (in order) < flags, finalized once."""

from __future__ import annotations

import logging
import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctmpl.config.dns import finalize_dns, parse_dns_url
from ctmpl.config.files import config_files, load_file, read_secret_file
from ctmpl.config.model import (
    TLS,
    CatalogConfig,
    Config,
    ConsulConfig,
    DnsConfig,
    EtcdConfig,
    ExecConfig,
    HaproxyConfig,
    NginxConfig,
    Retry,
    ShrinkGuardConfig,
    TemplateConfig,
    Wait,
)
from ctmpl.config.schema import as_bool, merge_into, parse_layer
from ctmpl.config.zk import parse_zk_url, zk_config
from ctmpl.errors import ConfigError, TemplateError
from ctmpl.sources.registrations import etcd_prefix

log = logging.getLogger(__name__)

_ENV_CONSUL = {
    "CONSUL_HTTP_ADDR": ("address",),
    "CONSUL_HTTP_TOKEN": ("token",),
    "CONSUL_HTTP_TOKEN_FILE": ("token_file",),
    "CONSUL_HTTP_SSL": ("ssl", "enabled"),
    "CONSUL_HTTP_SSL_VERIFY": ("ssl", "verify"),
    "CONSUL_CACERT": ("ssl", "ca_cert"),
    "CONSUL_CAPATH": ("ssl", "ca_path"),
    "CONSUL_CLIENT_CERT": ("ssl", "cert"),
    "CONSUL_CLIENT_KEY": ("ssl", "key"),
    "CONSUL_TLS_SERVER_NAME": ("ssl", "server_name"),
}


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``CONSUL_HTTP_*`` variables as a raw layer (checked like any other)."""
    consul: dict[str, Any] = {}
    for name, path in _ENV_CONSUL.items():
        if environ.get(name):
            target = consul
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = environ[name]
    if environ.get("CONSUL_HTTP_AUTH"):
        consul["auth"] = auth_block("CONSUL_HTTP_AUTH", environ["CONSUL_HTTP_AUTH"])
    try:
        return parse_layer({"consul": consul}) if consul else {}
    except ConfigError as exc:
        raise ConfigError(f"environment: {exc}") from None


def auth_block(what: str, value: str) -> dict[str, Any]:
    """``user:password`` as consul-template's auth block."""
    user, sep, password = value.partition(":")
    if not user:
        raise ConfigError(f"{what}: expected user[:password]")
    return {"enabled": True, "username": user, "password": password if sep else ""}


def file_layers(
    paths: Sequence[str], ignored: list[str] | None = None
) -> list[dict[str, Any]]:
    """Each config file (directories in lexical order) as a checked layer.

    Warnings for consul-template keys that ctmpl ignores go to ``ignored``, each
    naming the file and the dotted path.
    """
    layers = []
    for path in paths:
        for file in config_files(path):
            found: list[str] = []
            try:
                layer = parse_layer(load_file(file), ignored=found)
                _check_template_blocks(layer)
                layers.append(layer)
            except ConfigError as exc:
                text = str(exc)
                raise ConfigError(
                    text if text.startswith("config ") else f"config {file}: {text}"
                ) from None
            if ignored is not None:
                ignored.extend(f"config {file}: {line}" for line in found)
    return layers


def _check_template_blocks(layer: Mapping[str, Any]) -> None:
    """Check each template block where it is written, so the error can name its file."""
    for i, block in enumerate(layer.get("template", [])):
        _template_shape(f"template[{i}]", block)


def merge(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge checked layers in order; later wins."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merge_into(merged, layer)
    return merged


def finalize(
    raw: Mapping[str, Any], config_paths: Sequence[str] = (), ignored: Sequence[str] = ()
) -> Config:
    """Build the frozen Config from merged layers, reading token files and checking templates."""
    wait = raw.get("wait", Wait())
    vars_ = dict(raw.get("vars", {}))
    delims = raw.get("default_delimiters", {})
    syntax = raw.get("template_syntax", "")
    templates = tuple(
        _template(f"template[{i}]", {"syntax": syntax, **t} if syntax else t, delims, vars_,
                  wait)
        for i, t in enumerate(raw.get("template", []))
    )
    return Config(
        templates=templates,
        catalog=_catalog(raw),
        wait=wait,
        once=raw.get("once", False),
        dry=raw.get("dry", False),
        log_level=raw.get("log_level", "info"),
        log_format=raw.get("log_format", "text"),
        pid_file=raw.get("pid_file", ""),
        kill_signal=signal.Signals[raw.get("kill_signal", "SIGINT")],
        reload_signal=signal.Signals[raw.get("reload_signal", "SIGHUP")],
        command_error_fatal=raw.get("command_error_fatal", False),
        missing_dependency_warn=raw.get("missing_dependency_warn", 30.0),
        proxy=raw.get("proxy", "none"),
        nginx=NginxConfig(**raw.get("nginx", {})),
        haproxy=_haproxy(raw.get("haproxy", {})),
        exec=_exec(raw.get("exec", {})),
        status_addr=raw.get("status_addr", ""),
        shrink_guard=ShrinkGuardConfig(**raw.get("shrink_guard", {})),
        vars=vars_,
        config_paths=tuple(config_paths),
        ignored_keys=tuple(ignored),
        template_syntax=syntax,
    )


def _template(
    where: str,
    raw: Mapping[str, Any],
    delims: Mapping[str, str],
    vars_: Mapping[str, str],
    wait: Wait,
) -> TemplateConfig:
    fields = dict(raw)
    fields.setdefault("wait", wait)  # a block without its own wait uses the global one
    _template_shape(where, fields)
    source = fields.get("source", "")
    if source and not Path(source).is_file():
        raise TemplateError(f"template {source}: no such file")
    if source and not os.access(source, os.R_OK):
        raise TemplateError(f"template {source}: not readable")
    fields.setdefault("left_delimiter", delims.get("left", ""))
    fields.setdefault("right_delimiter", delims.get("right", ""))
    fields["vars"] = {**vars_, **fields.get("vars", {})}
    denied = (*fields.get("function_denylist", ()), *fields.pop("function_blacklist", ()))
    fields["function_denylist"] = tuple(dict.fromkeys(denied))
    return TemplateConfig(**fields)


def _template_shape(where: str, fields: Mapping[str, Any]) -> None:
    if not fields.get("destination"):
        raise ConfigError(f"{where}.destination: required")
    if bool(fields.get("source", "")) == bool(fields.get("contents", "")):
        raise ConfigError(f"{where}: set exactly one of source or contents")


def _catalog(raw: Mapping[str, Any]) -> CatalogConfig:
    url = raw.get("catalog", "consul")
    consul = _consul(raw.get("consul", {}))
    etcd_raw = dict(raw.get("etcd", {}))
    kind, file_path, zk_raw = "consul", "", raw.get("zk", {})
    dns_raw = dict(raw.get("dns", {}))
    if url.startswith("file://"):
        kind, file_path = "file", url.removeprefix("file://")
        if not file_path:
            raise ConfigError(f"catalog {url!r}: expected file://path/catalog.yaml")
    elif url.startswith("etcd://"):
        kind = "etcd"
        etcd_raw = {**parse_etcd_url(url), **etcd_raw}
    elif url.startswith("zk://"):
        kind, zk_raw = "zk", {**parse_zk_url(url), **raw.get("zk", {})}
    elif url.startswith("dns://"):
        kind, dns_raw = "dns", {**dns_raw, **parse_dns_url(url)}  # the URL's parameters win
    elif url != "consul":
        raise ConfigError(f"catalog {url!r}: expected consul, etcd://host:port/prefix, "
                          "zk://host:port/prefix, dns://resolver or file://path")
    return CatalogConfig(
        kind=kind,  # type: ignore[arg-type]
        file_path=file_path,
        consul=consul,
        etcd=_etcd(etcd_raw),
        zk=zk_config(zk_raw),
        dns=_dns(dns_raw),
        max_stale=raw.get("max_stale", 2.0),
        block_query_wait=raw.get("block_query_wait", 60.0),
    )


def parse_etcd_url(url: str) -> dict[str, Any]:
    """``etcd://h1:2379,h2:2379/prefix`` as endpoints and prefix."""
    rest = url.removeprefix("etcd://")
    hosts, _, prefix = rest.partition("/")
    endpoints = tuple(h.strip() for h in hosts.split(",") if h.strip())
    for endpoint in endpoints:
        host, sep, port = endpoint.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"catalog {url!r}: endpoint {endpoint!r} is not host:port")
    if not endpoints:
        raise ConfigError(f"catalog {url!r}: expected etcd://host:port[,host:port]/prefix")
    # The URL's path is the key prefix exactly: etcd://h:2379/services reads /services/….
    return {"endpoints": endpoints, "prefix": etcd_prefix(f"/{prefix}" if prefix else "")}


def _haproxy(raw: Mapping[str, Any]) -> HaproxyConfig:
    cfg = HaproxyConfig(**raw)
    if not cfg.config:
        raise ConfigError("haproxy.config: at least one config file is required")
    if not cfg.master_socket:
        raise ConfigError("haproxy.master_socket: required (ctmpl reloads through the master CLI)")
    return cfg


def _tls(raw: Mapping[str, Any]) -> TLS:
    return TLS(**raw)


def _retry(where: str, raw: Mapping[str, Any]) -> Retry:
    retry = Retry(**raw)
    if retry.max_backoff < retry.backoff:
        raise ConfigError(f"{where}: max_backoff must not be less than backoff")
    return retry


def _consul(raw: Mapping[str, Any]) -> ConsulConfig:
    token = raw.get("token", "")
    if raw.get("token_file"):
        token = read_secret_file("consul.token_file", raw["token_file"])
    auth = raw.get("auth", {})
    enabled = as_bool("consul.auth.enabled", auth.get("enabled", bool(auth.get("username"))))
    username = auth.get("username", "") if enabled else ""
    password = auth.get("password", "") if enabled else ""
    _header_safe("consul.token", token)
    _header_safe("consul.auth.username", username, latin1=True)
    _header_safe("consul.auth.password", password, latin1=True)
    return ConsulConfig(
        address=raw.get("address", "127.0.0.1:8500"),
        token=token,
        auth_username=username,
        auth_password=password,
        ssl=_tls(raw.get("ssl", {})),
        retry=_retry("consul.retry", raw.get("retry", {})),
        max_connections=_connections(raw.get("max_connections", 5)),
    )


def _header_safe(what: str, value: str, latin1: bool = False) -> None:
    """A value sent in an HTTP header: no control character (a newline would end the
    header), and for basic auth only characters its Latin-1 encoding has."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(f"{what}: contains a control character (a newline?)")
    if latin1:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(f"{what}: basic auth takes Latin-1 characters only") from None


def _connections(value: int) -> int:
    if not 5 <= value <= 190:
        raise ConfigError(
            f"consul.max_connections: {value} is outside 5-190 (the agent allows 200 per client)"
        )
    return value


def _etcd(raw: Mapping[str, Any]) -> EtcdConfig:
    fields = dict(raw)
    fields["tls"] = _tls(fields.pop("ssl", {}))
    fields["retry"] = _retry("etcd.retry", fields.pop("retry", {}))
    if "prefix" in fields:
        fields["prefix"] = etcd_prefix(fields["prefix"])
    return EtcdConfig(**fields)


def _dns(raw: Mapping[str, Any]) -> DnsConfig:
    # A failing name is asked again at least as often as ttl_max's default asks a good one.
    retry = _retry("dns.retry", {"max_backoff": 30.0, **raw.get("retry", {})})
    return finalize_dns(raw, retry)


def _exec(raw: Mapping[str, Any]) -> ExecConfig:
    """The ``exec { }`` block: the command split like a shell would, never run by one."""
    command = tuple(shlex.split(raw.get("command", "")))  # checked by the schema
    if raw.get("enabled") is False:
        command = ()
    env = raw.get("env", {})
    return ExecConfig(
        command=command,
        reload_signal=signal.Signals[raw["reload_signal"]] if raw.get("reload_signal") else None,
        kill_signal=signal.Signals[raw.get("kill_signal", "SIGTERM")],
        kill_timeout=raw.get("kill_timeout", 30.0),
        splay=raw.get("splay", 0.0),
        env_pristine=env.get("pristine", False),
        env_custom=env.get("custom", ()),
        env_allow=(*env.get("allowlist", ()), *env.get("whitelist", ())),
        env_deny=(*env.get("denylist", ()), *env.get("blacklist", ())),
    )
