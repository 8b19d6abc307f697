"""Finalized configuration: frozen records with no ``None`` left to check.

Every layer (defaults, config files, environment, flags) is merged first and finalized
once by ``ctmpl.config.layers.finalize``; the rest of the program only reads these.

The records are msgspec ``Struct`` classes rather than dataclasses: the same frozen, typed
fields with equality and ``repr``, but their classes are built in C when this module is
imported, where a dataclass compiles half a dozen methods from source each (these fourteen
classes cost about 20 ms of every start as dataclasses, 2 ms as structs). A changed copy
is made with ``msgspec.structs.replace``.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Literal

import msgspec
from msgspec import field

LogFormat = Literal["text", "json"]
LogLevel = Literal["trace", "debug", "info", "warn", "warning", "err", "error"]
CatalogKind = Literal["file", "consul", "etcd", "zk", "dns"]
DnsMode = Literal["swarm", "consul"]
ProxyKind = Literal["none", "nginx", "haproxy"]


class Wait(msgspec.Struct, frozen=True):
    """Quiescence: wait ``min`` seconds of calm, never more than ``max`` after a change."""

    min: float = 0.0
    max: float = 0.0

    @property
    def enabled(self) -> bool:
        """False for ``0s``: render as soon as data changes."""
        return self.min > 0


class Retry(msgspec.Struct, frozen=True):
    """Backoff for a failing source: ``backoff`` doubling up to ``max_backoff``."""

    enabled: bool = True
    attempts: int = 0  # 0 = retry forever (consul-template's default is 12)
    backoff: float = 0.25
    max_backoff: float = 60.0


class TLS(msgspec.Struct, frozen=True):
    """Client TLS settings for a catalog connection."""

    enabled: bool = False
    verify: bool = True
    ca_cert: str = ""
    ca_path: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""


class ConsulConfig(msgspec.Struct, frozen=True):
    """How to reach Consul (the ``consul { … }`` block and ``-consul-*`` flags)."""

    address: str = "127.0.0.1:8500"
    token: str = ""
    auth_username: str = ""
    auth_password: str = ""
    ssl: TLS = TLS()
    retry: Retry = Retry()
    max_connections: int = 5  # HTTP connections to the agent, well under its 200 per client


class EtcdConfig(msgspec.Struct, frozen=True):
    """How to reach etcd: endpoints ``host:port``, a key prefix, TLS and credentials."""

    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    prefix: str = ""
    tls: TLS = TLS()
    username: str = ""
    password: str = ""
    retry: Retry = Retry()


class ZkConfig(msgspec.Struct, frozen=True):
    """How to reach ZooKeeper: ensemble ``host:port`` list, the node prefix, session, auth."""

    hosts: tuple[str, ...] = ("127.0.0.1:2181",)
    prefix: str = "/"
    session_timeout: float = 10.0  # the server removes a silent session's watches after this
    username: str = ""  # digest authentication (username:password)
    password: str = ""


class DnsConfig(msgspec.Struct, frozen=True):
    """How to read a DNS catalog (``dns://`` URL and ``dns { }``): resolver, names, timing."""

    resolver: str = ""  # an IP address; "" = the system resolver (/etc/resolv.conf)
    resolver_port: int = 53
    mode: DnsMode = "swarm"  # swarm: A/AAAA of tasks.<service>; consul: SRV, tags asked
    name: str = "tasks.{service}"  # the name asked for a service; {service} is replaced
    srv: bool = False  # ask SRV first (ports from the records); A/AAAA when it has none
    port: int = 80  # the port of an instance found by A/AAAA alone
    ports: Mapping[str, int] = field(default_factory=dict)  # per-service port overrides
    tags: tuple[str, ...] = ()  # tags every DNS instance carries (DNS has none)
    services: tuple[str, ...] = ()  # what services() lists (DNS cannot list services)
    ttl_min: float = 1.0  # never ask a name again sooner than this…
    ttl_max: float = 30.0  # …nor later than this, whatever its TTL
    timeout: float = 5.0  # one lookup, retries over the resolver's servers included
    retry: Retry = Retry(max_backoff=30.0)


class CatalogConfig(msgspec.Struct, frozen=True):
    """Which catalog to read and the blocking-query settings shared by all backends."""

    kind: CatalogKind = "consul"
    file_path: str = ""
    consul: ConsulConfig = ConsulConfig()
    etcd: EtcdConfig = EtcdConfig()
    zk: ZkConfig = ZkConfig()
    dns: DnsConfig = DnsConfig()
    max_stale: float = 2.0
    block_query_wait: float = 60.0


class TemplateConfig(msgspec.Struct, frozen=True):
    """One ``template { … }`` block or ``-template src:dest:command`` flag."""

    destination: str
    source: str = ""
    contents: str = ""
    command: str = ""
    command_timeout: float = 30.0
    check: str = ""
    check_mode: Literal["staged", "installed"] = "staged"
    perms: int | Literal[-1] = -1  # -1: keep the old file's mode, else 0644
    backup: bool = False
    create_dest_dirs: bool = True
    wait: Wait = Wait()  # the global wait unless the block sets its own (resolved at load)
    error_on_missing_key: bool = False
    left_delimiter: str = ""
    right_delimiter: str = ""
    sandbox_path: str = ""
    function_denylist: tuple[str, ...] = ()  # functions this template may not call
    vars: Mapping[str, str] = field(default_factory=dict)
    syntax: Literal["", "go", "jinja"] = ""  # "": Go for a .ctmpl source, else Jinja

    @property
    def is_go(self) -> bool:
        """True when the template is Go text/template (consul-template's ``.ctmpl``)."""
        if self.syntax:
            return self.syntax == "go"
        return self.source.endswith(".ctmpl")

    @property
    def name(self) -> str:
        """How logs name this template: its source file, or the destination for inline ones."""
        return self.source or f"(contents of {self.destination})"


class NginxConfig(msgspec.Struct, frozen=True):
    """Built-in nginx control: binary, main config and pid file."""

    binary: str = "nginx"
    config: str = "/etc/nginx/nginx.conf"
    pid_file: str = "/run/nginx.pid"
    reload_timeout: float = 10.0
    prefix: str = ""  # nginx -p: base of relative paths in the config; "" = nginx's built-in prefix
    globals: str = ""  # nginx -g: extra main-context directives, e.g. "worker_processes 2;"
    error_log: str = ""  # where to read [emerg]/[alert] lines; "" = the config's own error_log


class HaproxyConfig(msgspec.Struct, frozen=True):
    """Built-in HAProxy control: binary, config files, master CLI and runtime API sockets."""

    binary: str = "haproxy"
    config: tuple[str, ...] = ("/etc/haproxy/haproxy.cfg",)  # every -f, in order
    master_socket: str = "/run/haproxy-master.sock"  # -S: reload and show proc go here
    admin_socket: str = ""  # stats socket (level admin); "" = the runtime API via the master CLI
    pid_file: str = "/run/haproxy.pid"
    reload_timeout: float = 10.0
    runtime_api: bool = True  # apply server-only changes without a reload


class ExecConfig(msgspec.Struct, frozen=True):
    """Exec mode: one child process started after the first complete render."""

    command: tuple[str, ...] = ()  # argv, not a shell line (as consul-template)
    reload_signal: signal.Signals | None = None  # None: restart the child on a change
    kill_signal: signal.Signals = signal.SIGTERM
    kill_timeout: float = 30.0  # then SIGKILL
    splay: float = 0.0  # random delay up to this before a reload signal or restart
    env_pristine: bool = False  # start from an empty environment
    env_custom: tuple[str, ...] = ()  # extra KEY=VALUE entries
    env_allow: tuple[str, ...] = ()  # glob patterns of variables passed on ((): all)
    env_deny: tuple[str, ...] = ()  # glob patterns of variables withheld (wins over allow)

    @property
    def enabled(self) -> bool:
        """True when a child command is configured."""
        return bool(self.command)


class ShrinkGuardConfig(msgspec.Struct, frozen=True):
    """Hold renders that would drop most instances at once (see ``ctmpl.shrink``)."""

    enabled: bool = True
    max_drop: float = 1.0  # share of instances a render may drop at once; 1.0: all but one
    grace: float = 120.0  # a drop that persists this long goes live
    settle: float = 10.0  # after a registry restart, quiet time before drops are trusted


class Config(msgspec.Struct, frozen=True):
    """The whole finalized configuration."""

    templates: tuple[TemplateConfig, ...] = ()
    catalog: CatalogConfig = CatalogConfig()
    wait: Wait = Wait()
    once: bool = False
    dry: bool = False
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    pid_file: str = ""
    kill_signal: signal.Signals = signal.SIGINT  # stops ctmpl, besides SIGTERM and SIGINT
    reload_signal: signal.Signals = signal.SIGHUP
    command_error_fatal: bool = False
    missing_dependency_warn: float = 30.0
    proxy: ProxyKind = "none"
    nginx: NginxConfig = NginxConfig()
    haproxy: HaproxyConfig = HaproxyConfig()
    exec: ExecConfig = ExecConfig()
    status_addr: str = ""  # host:port of /health and /metrics; "" = off
    shrink_guard: ShrinkGuardConfig = ShrinkGuardConfig()
    vars: Mapping[str, str] = field(default_factory=dict)
    config_paths: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()  # warnings for consul-template keys ctmpl ignores
    template_syntax: Literal["", "go", "jinja"] = ""  # default syntax of every template
