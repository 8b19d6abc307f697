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
    "syslog": "logs go to stderr (journald or the container runtime collects them)",
    "log_file": "logs go to stderr",
    "deduplicate": "de-duplication mode is not supported",
    "dedup": "de-duplication mode is not supported",
    "exec": "exec mode is not supported; run the proxy under its own supervisor",
    "err_on_failed_lookup": "a failed lookup keeps the last good file instead",
    "dump_signal": "no core-dump signal",
    # consul { }
    "consul.namespace": "Consul Enterprise namespaces are not supported",
    "consul.partition": "Consul Enterprise admin partitions are not supported",
    "consul.transport": "connection tuning is ctmpl's own (consul.max_connections)",
    "consul.rate_limit": "the watch rate limit is built in (100 ms plus jitter per query)",
    # template { }
    "template.user": "the destination keeps its current owner",
    "template.group": "the destination keeps its current group",
    "template.uid": "the destination keeps its current owner",
    "template.gid": "the destination keeps its current group",
    "template.error_fatal": "a failing template never stops the daemon after the first render",
    "template.exec": "use command (a string or a list)",
}

_INDEX = re.compile(r"\[\d+\]")


def ignored_reason(dotted: str) -> str | None:
    """Why ctmpl ignores the consul-template key at ``dotted``; None when it is not known."""
    return IGNORED.get(_INDEX.sub("", dotted))


def warning(dotted: str, reason: str) -> str:
    """The one WARNING line for an ignored key."""
    return f"{dotted}: accepted for consul-template compatibility, ignored ({reason})"
