"""consul-template config keys that ctmpl accepts but does not implement: one table.

A consul-template config must load unchanged, so every key consul-template documents
(0.19 up to the current release) is either in ctmpl's schema (``ctmpl.config.schema``) or
here. A key found here is accepted with its whole block and reported once, at WARNING,
with its dotted path; a key in neither place is an error. ``template[2].user`` is looked
up as ``template.user``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# dotted path (template indexes removed) -> why ctmpl ignores it
IGNORED: Mapping[str, str] = {
    # top level
    "vault": "Vault is not supported; a template that calls secret() fails on its own",
    "nomad": "Nomad is not supported",
    "telemetry": "no OpenTelemetry export",
    "syslog": "logs go to stderr, where journald or the container runtime collects them",
    "log_file": "logs go to stderr, where journald or the container runtime collects them",
    "deduplicate": "de-duplication mode is not supported",
    "dedup": "de-duplication mode is not supported",
    "err_on_failed_lookup": "a failed lookup keeps the last good file instead",
    "dump_signal": "no core-dump signal",
    # consul { }
    "consul.namespace": "Consul Enterprise namespaces are not supported",
    "consul.partition": "Consul Enterprise admin partitions are not supported",
    "consul.transport": "connection tuning is ctmpl's own: consul.max_connections",
    "consul.rate_limit": "the watch rate limit is built in: 100 ms plus jitter per query",
    # template { }
    "template.user": "the destination keeps its current owner",
    "template.group": "the destination keeps its current group",
    "template.uid": "the destination keeps its current owner",
    "template.gid": "the destination keeps its current group",
    "template.error_fatal": "a failing template never stops the daemon after the first render",
    "template.exec": "use command: a string or a list",
}

_VAULT = "Vault is not supported; a template that calls secret() fails on its own"
_TRANSPORT = "connection tuning is ctmpl's own: -consul-max-connections"
_LOG = "logs go to stderr, where journald or the container runtime collects them"

# consul-template flag -> (takes a value, why ctmpl ignores it). Flags that would change
# what ctmpl does if ignored (-parse-only) are not here: they stay errors.
IGNORED_FLAGS: Mapping[str, tuple[bool, str]] = {
    "syslog": (False, _LOG),
    "syslog-facility": (True, _LOG),
    "syslog-name": (True, _LOG),
    "log-file": (True, _LOG),
    "log-rotate-bytes": (True, _LOG),
    "log-rotate-duration": (True, _LOG),
    "log-rotate-max-files": (True, _LOG),
    "dedup": (False, "de-duplication mode is not supported"),
    "consul-transport-dial-keep-alive": (True, _TRANSPORT),
    "consul-transport-dial-timeout": (True, _TRANSPORT),
    "consul-transport-disable-keep-alives": (False, _TRANSPORT),
    "consul-transport-max-idle-conns-per-host": (True, _TRANSPORT),
    "consul-transport-tls-handshake-timeout": (True, _TRANSPORT),
    **{
        f"vault-{name}": (takes_value, _VAULT)
        for name, takes_value in {
            "addr": True, "token": True, "agent-token-file": True, "namespace": True,
            "renew-token": False, "unwrap-token": False, "default-lease-duration": True,
            "lease-renewal-threshold": True, "retry": False, "retry-attempts": True,
            "retry-backoff": True, "retry-max-backoff": True, "ssl": False,
            "ssl-verify": False, "ssl-ca-cert": True, "ssl-ca-path": True, "ssl-cert": True,
            "ssl-key": True, "ssl-server-name": True, "transport-dial-keep-alive": True,
            "transport-dial-timeout": True, "transport-disable-keep-alives": False,
            "transport-max-idle-conns-per-host": True, "transport-tls-handshake-timeout": True,
        }.items()
    },
}

_INDEX = re.compile(r"\[\d+\]")


def ignored_reason(dotted: str) -> str | None:
    """Why ctmpl ignores the consul-template key at ``dotted``; None when it is not known."""
    return IGNORED.get(_INDEX.sub("", dotted))


def warning(dotted: str, reason: str) -> str:
    """The one WARNING line for an ignored key."""
    return f"{dotted}: accepted for consul-template compatibility, ignored ({reason})"
