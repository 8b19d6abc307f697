"""Decide how a new HAProxy config reaches the running process: runtime API or reload.

The config is cut into sections (``global``, ``defaults``, ``backend web`` …). Everything but
the ``server`` lines of backends and listen sections must be identical for the runtime path;
then each server is compared by name:

- a removed server is put in maintenance and deleted (``del server``);
- an added one is registered (``add server``), made ready and health-checked;
- a changed one gets ``set server … addr … port …``, ``… weight …`` and ``… state
  ready|maint`` (the ``disabled`` keyword is maintenance).

Anything else — a section added, removed or edited, another server keyword changed, a host
name instead of an IP address, ``default-server`` settings that a dynamic server would not
inherit — needs a reload, and the plan says why.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

SECTIONS = frozenset({
    "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
    "mailers", "program", "http-errors", "ring", "cache", "fcgi-app",
})
SERVER_SECTIONS = frozenset({"backend", "listen"})
_SAFE_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable, no space; quotes are excluded below


@dataclass(frozen=True)
class Server:
    """One ``server`` line: what the runtime API can change, and the rest verbatim."""

    name: str
    address: str
    port: int | None
    weight: int | None
    disabled: bool
    rest: tuple[str, ...]
    raw: str
    opaque: bool = False  # a line the runtime path does not try to understand

    @property
    def ip(self) -> bool:
        """True when the address is an IP literal (the runtime API takes no host names)."""
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class Section:
    """A section header and its lines; servers apart, in config order."""

    header: str
    lines: tuple[str, ...]
    servers: dict[str, Server] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``backend``, ``frontend``, ``global`` …"""
        return self.header.split()[0] if self.header else ""


@dataclass(frozen=True)
class Change:
    """One server change: where, what (for the log), and the runtime commands doing it."""

    backend: str
    server: str
    what: str
    commands: tuple[str, ...]
    expect: Server | None  # the server as it must look afterwards; None when removed


@dataclass(frozen=True)
class Plan:
    """Runtime changes, or the reason a reload is needed (``reload_reason`` not empty)."""

    changes: tuple[Change, ...] = ()
    reload_reason: str = ""


def parse(text: str) -> tuple[Section, ...]:
    """Cut a config into sections; blank and comment lines are dropped."""
    sections: list[Section] = []
    header = ""
    lines: list[str] = []
    servers: dict[str, Server] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)[0]
        if word in SECTIONS:
            sections.append(Section(header, tuple(lines), servers))
            header, lines, servers = " ".join(line.split()), [], {}
        elif word == "server" and header.split()[0:1] and header.split()[0] in SERVER_SECTIONS:
            server = parse_server(line)
            if server.name in servers:
                lines.append(line)  # a duplicate name: haproxy -c refuses it anyway
            else:
                servers[server.name] = server
        else:
            lines.append(line)
    sections.append(Section(header, tuple(lines), servers))
    return tuple(s for s in sections if s.header or s.lines)


def parse_server(line: str) -> Server:
    """``server <name> <address>:<port> [params…]``; opaque when it is anything fancier."""
    tokens = line.split()
    for i, token in enumerate(tokens):
        if token.startswith("#"):
            tokens = tokens[:i]
            break
    name = tokens[1] if len(tokens) > 1 else ""
    opaque = Server(name, "", None, None, False, tuple(tokens[2:]), line, opaque=True)
    if len(tokens) < 3 or any(c in line for c in "\"'\\"):
        return opaque
    address, port = split_address(tokens[2])
    if address is None:
        return opaque
    weight, disabled, rest = None, False, []
    params = iter(tokens[3:])
    for token in params:
        if token == "disabled":
            disabled = True
        elif token == "weight":
            value = next(params, "")
            if not value.isdigit():
                return opaque
            weight = int(value)
        else:
            rest.append(token)
    return Server(name, address, port, weight, disabled, tuple(rest), line)


def split_address(text: str) -> tuple[str | None, int | None]:
    """``10.0.0.1:80`` / ``[::1]:80`` / ``host:80`` as (address, port); (None, None) if odd."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, sep, port = text.partition(":")
    else:
        return None, None
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None, None
    return host, int(port)


def plan(old: tuple[Section, ...], new: tuple[Section, ...]) -> Plan:
    """Compare two parsed configs; runtime changes when only servers differ."""
    old_headers = [s.header for s in old]
    new_headers = [s.header for s in new]
    if old_headers != new_headers:
        return Plan(reload_reason=_sections_changed(old_headers, new_headers))
    changes: list[Change] = []
    defaults_have_default_server = False
    for before, after in zip(old, new, strict=True):
        if before.lines != after.lines:
            return Plan(reload_reason=f"{before.header or 'top of file'}: settings changed")
        if before.kind == "defaults":
            defaults_have_default_server = _has_default_server(after)
        inherited = defaults_have_default_server or _has_default_server(after)
        try:
            changes += _server_changes(_name(after.header), before, after, inherited)
        except _NeedsReload as exc:
            return Plan(reload_reason=str(exc))
    return Plan(changes=tuple(changes))


class _NeedsReload(Exception):
    pass


def _name(header: str) -> str:
    parts = header.split()
    return parts[1] if len(parts) > 1 else ""


def _sections_changed(old: list[str], new: list[str]) -> str:
    added = [h for h in new if h not in old]
    removed = [h for h in old if h not in new]
    if added:
        return f"section added: {added[0]}"
    if removed:
        return f"section removed: {removed[0]}"
    return "sections reordered"


def _has_default_server(section: Section) -> bool:
    return any(line.split(None, 1)[0] == "default-server" for line in section.lines)


def _server_changes(backend: str, before: Section, after: Section,
                    inherited: bool) -> list[Change]:
    changes = []
    for name in before.servers:
        if name not in after.servers:
            commands = (f"set server {backend}/{name} state maint",
                        f"del server {backend}/{name}")
            changes.append(Change(backend, name, "removed", commands, None))
    for name, new in after.servers.items():
        old_server = before.servers.get(name)
        if old_server is None:
            changes.append(_added(backend, new, inherited))
        elif old_server.raw != new.raw and (change := _changed(backend, old_server, new)):
            changes.append(change)
    return changes


def _added(backend: str, new: Server, inherited: bool) -> Change:
    where = f"server {backend}/{new.name}"
    if new.opaque or not new.ip:
        raise _NeedsReload(f"{where}: added with an address the runtime API cannot set")
    if inherited:
        raise _NeedsReload(f"{where}: added, but dynamic servers ignore default-server")
    tokens = list(new.rest) + ([f"weight {new.weight}"] if new.weight is not None else [])
    if not all(_SAFE_TOKEN.match(t) and ";" not in t for t in " ".join(tokens).split()):
        raise _NeedsReload(f"{where}: added with parameters the runtime API cannot take")
    commands = [f"add server {backend}/{new.name} {_address(new)} {' '.join(tokens)}".rstrip()]
    if "check" in new.rest:
        commands.append(f"enable health {backend}/{new.name}")
    if "agent-check" in new.rest:
        commands.append(f"enable agent {backend}/{new.name}")
    if not new.disabled:
        commands.append(f"set server {backend}/{new.name} state ready")
    return Change(backend, new.name, f"added at {_address(new)}", tuple(commands), new)


def _changed(backend: str, old: Server, new: Server) -> Change | None:
    where = f"server {backend}/{new.name}"
    if old.opaque or new.opaque or old.rest != new.rest:
        raise _NeedsReload(f"{where}: parameters other than address, weight and state changed")
    commands, what = [], []
    if (old.address, old.port) != (new.address, new.port):
        if not new.ip:
            raise _NeedsReload(f"{where}: new address {new.address} is not an IP address")
        commands.append(f"set server {backend}/{new.name} addr {new.address} port {new.port}")
        what.append(f"address {_address(new)}")
    if old.weight != new.weight:
        weight = 1 if new.weight is None else new.weight
        commands.append(f"set server {backend}/{new.name} weight {weight}")
        what.append(f"weight {weight}")
    if old.disabled != new.disabled:
        state = "maint" if new.disabled else "ready"
        commands.append(f"set server {backend}/{new.name} state {state}")
        what.append("maintenance" if new.disabled else "ready")
    if not commands:
        return None
    return Change(backend, new.name, ", ".join(what), tuple(commands), new)


def _address(server: Server) -> str:
    host = f"[{server.address}]" if ":" in server.address else server.address
    return f"{host}:{server.port}"
