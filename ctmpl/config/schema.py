"""The config schema: the consul-template keys ctmpl implements (plus its own), typed.

``parse_layer`` checks one raw layer (a file, the environment, the flags) against the
schema, so an unknown key or a bad value is reported with the file and the dotted path
(``config app.hcl: template[0].wait.mni: unknown key``). consul-template keys that ctmpl
does not implement come from ``ctmpl.config.compat`` and are collected as warnings.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable, Mapping
from typing import Any

from ctmpl.config.compat import ignored_reason, warning
from ctmpl.config.durations import make_wait, parse_duration, parse_wait
from ctmpl.errors import ConfigError
from ctmpl.logs import quote
from ctmpl.model import InvalidEntry, parse_port
from ctmpl.register.spec import as_address, as_check, as_status_range

Convert = Callable[[str, Any], Any]
Schema = Mapping[str, "Convert | Schema"]


def as_str(what: str, value: Any) -> str:
    """A string (numbers are accepted and turned into text)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{what}: expected a string, got {quote(value)}")
    return str(value)


def as_bool(what: str, value: Any) -> bool:
    """A boolean; ``"true"``/``"false"`` strings too, as Go's flag package accepts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "t", "false", "0", "f"):
        return value.lower() in ("true", "1", "t")
    raise ConfigError(f"{what}: expected true or false, got {quote(value)}")


def as_int(what: str, value: Any) -> int:
    """A non-negative whole number."""
    try:
        number = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise ConfigError(f"{what}: expected a whole number ≥ 0, got {quote(value)}")
    return number


def as_perms(what: str, value: Any) -> int:
    """File mode: ``"0644"`` or ``0644`` (HCL2 reads it as decimal 644: re-read as octal)."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigError(
            f"{what}: expected an octal file mode like 0644, got {quote(value)}"
        ) from None
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"{what}: file mode {quote(value)} is out of range")
    return mode


def as_str_list(what: str, value: Any) -> tuple[str, ...]:
    """A list of strings (a single string is a list of one)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{what}: expected a list of strings, got {quote(value)}")
    return tuple(as_str(f"{what}[{i}]", v) for i, v in enumerate(items))


def as_str_map(what: str, value: Any) -> dict[str, str]:
    """A map of strings (an HCL block or object)."""
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        value = {k: v for block in value for k, v in block.items()}
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a map of strings, got {quote(value)}")
    return {str(k): as_str(f"{what}.{k}", v) for k, v in value.items()}


def as_port(what: str, value: Any) -> int:
    """A TCP/UDP port, 1–65535 (``"8080"`` too)."""
    try:
        return parse_port(value)
    except InvalidEntry as exc:
        raise ConfigError(f"{what}: {exc}") from None


def as_port_map(what: str, value: Any) -> dict[str, int]:
    """A map of names to ports (an HCL block or object)."""
    return {k: as_port(f"{what}.{k}", v) for k, v in as_str_map(what, value).items()}


def as_signal(what: str, value: Any) -> str:
    """A signal name such as SIGHUP (``HUP`` accepted)."""
    name = as_str(what, value).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if not hasattr(signal.Signals, name):
        raise ConfigError(f"{what}: unknown signal {quote(value)}")
    return name


def as_command(what: str, value: Any) -> str:
    """A command: a shell string, or a list of arguments (quoted for the shell)."""
    if isinstance(value, list):
        return shlex.join(as_str_list(what, value))
    return as_str(what, value)


def as_signal_or_none(what: str, value: Any) -> str:
    """A signal name, or ``""`` for none (consul-template's nil: restart the exec child)."""
    return "" if value in ("", None) else as_signal(what, value)


def as_argv(what: str, value: Any) -> str:
    """An exec command: a list of arguments, or a string split as a shell would split it."""
    text = as_command(what, value)
    try:
        shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc} in {quote(text)}") from None
    return text


def as_env_list(what: str, value: Any) -> tuple[str, ...]:
    """``KEY=VALUE`` entries."""
    entries = as_str_list(what, value)
    for entry in entries:
        if "=" not in entry or entry.startswith("="):
            raise ConfigError(f"{what}: {quote(entry)} is not KEY=VALUE")
    return entries


def as_host_port(what: str, value: Any) -> str:
    """``host:port`` (``[::1]:9080`` for IPv6); "" = off."""
    text = as_str(what, value)
    host, sep, port = text.rpartition(":")
    if text and (not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535):
        raise ConfigError(f"{what}: {quote(text)} is not host:port (e.g. 127.0.0.1:9080)")
    return text


def one_of(*choices: str) -> Convert:
    """A string restricted to ``choices``."""

    def convert(what: str, value: Any) -> str:
        text = as_str(what, value).lower()
        if text not in choices:
            raise ConfigError(f"{what}: {quote(value)} is not one of {', '.join(choices)}")
        return text

    return convert


def as_wait(what: str, value: Any) -> Any:
    """``"5s:10s"`` / ``"5s"``, or a block ``{ min = "5s" max = "10s" }``."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"min", "max", "enabled"})
        if unknown:
            raise ConfigError(f"{what}.{unknown[0]}: unknown key")
        if value.get("enabled") is False:
            return parse_wait(what, 0)
        if "min" not in value:
            raise ConfigError(f"{what}.min: required")
        low = parse_duration(f"{what}.min", value["min"])
        high = parse_duration(f"{what}.max", value["max"]) if "max" in value else None
        return make_wait(what, low, high)
    return parse_wait(what, value)


def duration(what: str, value: Any) -> float:
    """A duration in seconds."""
    return parse_duration(what, value)


TLS_SCHEMA: Schema = {
    "enabled": as_bool,
    "verify": as_bool,
    "ca_cert": as_str,
    "ca_path": as_str,
    "cert": as_str,
    "key": as_str,
    "server_name": as_str,
}
RETRY_SCHEMA: Schema = {
    "enabled": as_bool,
    "attempts": as_int,
    "backoff": duration,
    "max_backoff": duration,
}
CONSUL_SCHEMA: Schema = {
    "address": as_str,
    "token": as_str,
    "token_file": as_str,
    "auth": {"enabled": as_bool, "username": as_str, "password": as_str},
    "ssl": TLS_SCHEMA,
    "retry": RETRY_SCHEMA,
    "max_connections": as_int,
}
ETCD_SCHEMA: Schema = {
    "endpoints": as_str_list,
    "prefix": as_str,
    "ssl": TLS_SCHEMA,
    "username": as_str,
    "password": as_str,
    "retry": RETRY_SCHEMA,
}
ZK_SCHEMA: Schema = {
    "hosts": as_str_list,
    "prefix": as_str,
    "session_timeout": duration,
    "username": as_str,
    "password": as_str,
}
DNS_SCHEMA: Schema = {  # ctmpl.config.dns
    "resolver": as_str,
    "mode": one_of("swarm", "consul"),
    "name": as_str,
    "srv": as_bool,
    "port": as_port,
    "ports": as_port_map,
    "tags": as_str_list,
    "services": as_str_list,
    "ttl_min": duration,
    "ttl_max": duration,
    "timeout": duration,
    "retry": RETRY_SCHEMA,
}
TEMPLATE_SCHEMA: Schema = {
    "source": as_str,
    "destination": as_str,
    "contents": as_str,
    "command": as_command,
    "command_timeout": duration,
    "check": as_command,
    "check_mode": one_of("staged", "installed"),
    "perms": as_perms,
    "backup": as_bool,
    "create_dest_dirs": as_bool,
    "wait": as_wait,
    "error_on_missing_key": as_bool,
    "left_delimiter": as_str,
    "right_delimiter": as_str,
    "sandbox_path": as_str,
    "function_denylist": as_str_list,
    "function_blacklist": as_str_list,  # consul-template's name before 0.26
    "vars": as_str_map,
    "syntax": one_of("go", "jinja"),
}


def as_share(what: str, value: Any) -> float:
    """A share of a whole: ``"50%"``, or a number between 0 and 1."""
    text = as_str(what, value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise ConfigError(f"{what}: expected a share like 50% (or 0.5), above 0 and at most "
                          f"100%, got {value!r}")
    return share


SHRINK_GUARD_SCHEMA: Schema = {
    "enabled": as_bool,
    "max_drop": as_share,
    "grace": duration,
    "settle": duration,
}
NGINX_SCHEMA: Schema = {
    "binary": as_str,
    "config": as_str,
    "pid_file": as_str,
    "reload_timeout": duration,
    "prefix": as_str,
    "globals": as_str,
    "error_log": as_str,
}
REGISTER_SCHEMA: Schema = {  # ``ctmpl register`` (ctmpl.register.settings)
    "service": as_str,
    "id": as_str,
    "address": as_address,
    "tags": as_str_list,
    "meta": as_str_map,
    "check": as_check,
    "check_status": as_status_range,
    "interval": duration,
    "timeout": duration,
    "rise": as_int,
    "fall": as_int,
    "ttl": duration,
    "format": one_of("auto", "addr", "json"),
    "once": as_bool,
}
HAPROXY_SCHEMA: Schema = {
    "binary": as_str,
    "config": as_str_list,
    "master_socket": as_str,
    "admin_socket": as_str,
    "pid_file": as_str,
    "reload_timeout": duration,
    "runtime_api": as_bool,
}
EXEC_ENV_SCHEMA: Schema = {
    "pristine": as_bool,
    "custom": as_env_list,
    "allowlist": as_str_list,
    "denylist": as_str_list,
    "whitelist": as_str_list,
    "blacklist": as_str_list,
}
EXEC_SCHEMA: Schema = {
    "command": as_argv,
    "enabled": as_bool,
    "reload_signal": as_signal_or_none,
    "kill_signal": as_signal,
    "kill_timeout": duration,
    "splay": duration,
    "env": EXEC_ENV_SCHEMA,
}
TOP_SCHEMA: Schema = {
    "consul": CONSUL_SCHEMA,
    "etcd": ETCD_SCHEMA,
    "zk": ZK_SCHEMA,
    "dns": DNS_SCHEMA,
    "catalog": as_str,
    "template": TEMPLATE_SCHEMA,
    "wait": as_wait,
    "log_level": one_of("trace", "debug", "info", "warn", "warning", "err", "error"),
    "log_format": one_of("text", "json"),
    "pid_file": as_str,
    "kill_signal": as_signal,
    "reload_signal": as_signal,
    "max_stale": duration,
    "block_query_wait": duration,
    "command_error_fatal": as_bool,
    "missing_dependency_warn": duration,
    "proxy": one_of("none", "nginx", "haproxy"),
    "nginx": NGINX_SCHEMA,
    "haproxy": HAPROXY_SCHEMA,
    "exec": EXEC_SCHEMA,
    "status_addr": as_host_port,
    "shrink_guard": SHRINK_GUARD_SCHEMA,
    "vars": as_str_map,
    "default_delimiters": {"left": as_str, "right": as_str},
    "once": as_bool,
    "dry": as_bool,
    "register": REGISTER_SCHEMA,
    "template_syntax": one_of("go", "jinja"),
}
REPEATED = {"template"}


def parse_layer(
    raw: Mapping[str, Any],
    schema: Schema = TOP_SCHEMA,
    path: str = "",
    ignored: list[str] | None = None,
) -> dict[str, Any]:
    """Check and convert one raw layer; raise ConfigError naming the dotted path.

    consul-template keys that ctmpl ignores are left out; their warnings are appended to
    ``ignored`` (an error when no list is given: flags and the environment have none).
    """
    result: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}{key}"
        if key not in schema:
            reason = ignored_reason(where)
            if reason is None or ignored is None:
                raise ConfigError(f"{where}: unknown key")
            ignored.append(warning(where, reason))
            continue
        spec = schema[key]
        if not path and key in REPEATED:
            blocks = value if isinstance(value, list) else [value]
            result[key] = [
                _block(f"{where}[{i}]", b, spec, ignored) for i, b in enumerate(blocks)
            ]
        elif isinstance(spec, Mapping):
            result[key] = _merged_blocks(where, value, spec, ignored)
        else:
            result[key] = spec(where, value)
    return result


def _block(where: str, value: Any, spec: Any, ignored: list[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a block, got {quote(value)}")
    return parse_layer(value, spec, f"{where}.", ignored)


def _merged_blocks(
    where: str, value: Any, spec: Schema, ignored: list[str] | None
) -> dict[str, Any]:
    blocks = value if isinstance(value, list) else [value]
    merged: dict[str, Any] = {}
    for block in blocks:
        merge_into(merged, _block(where, block, spec, ignored))
    return merged


def merge_into(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a parsed layer into ``base``: later wins, blocks merge, templates append."""
    for key, value in layer.items():
        if key in REPEATED and isinstance(value, list):
            base.setdefault(key, []).extend(value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict) and key != "vars":
            merge_into(base[key], value)
        elif key == "vars" and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base
