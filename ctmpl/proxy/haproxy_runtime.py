"""The runtime API: apply a plan's server changes, confirm them, and save server state.

Commands go to the admin socket (``stats socket … level admin``), or through the master
CLI to the current worker (``@1 …``) when no admin socket is configured. Every answer is
compared with the one HAProxy gives on success; anything else is a refusal, and after the
commands ``show servers state`` must show each touched server as the config describes it.
A refusal or a mismatch raises :class:`RuntimeRefused`: the controller then reloads.

A removed server is put in maintenance at once; ``del server`` waits while it still has
connections (HAProxy refuses until they end) and is retried at the next update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ctmpl.errors import CtmplError, ProxyError
from ctmpl.install import InstallOptions, install
from ctmpl.proxy.haproxy_cli import CliError, ServerState, command, parse_servers_state
from ctmpl.proxy.haproxy_files import state_file
from ctmpl.proxy.haproxy_plan import Change, Plan, Section, Server

log = logging.getLogger(__name__)

_STILL_IN_USE = ("connections attached", "still has", "in use")


class RuntimeRefused(ProxyError):
    """HAProxy refused a runtime command, or the result differs from the config."""


def _accepted(cmd: str, answer: str) -> bool:
    text = answer.strip()
    if cmd.startswith("add server"):
        return text.startswith("New server registered")
    if cmd.startswith("del server"):
        return text.startswith("Server deleted")
    if " addr " in cmd:
        return text.startswith(("IP changed", "no need to change", "port changed"))
    return text == ""


class RuntimeApi:
    """One HAProxy's runtime API, reached through the admin socket or the master CLI."""

    def __init__(self, admin_socket: str, master_socket: str) -> None:
        self.admin_socket = admin_socket
        self.master_socket = master_socket
        self.pending_deletions: set[tuple[str, str]] = set()

    def send(self, cmd: str) -> str:
        """One runtime command; its answer."""
        if self.admin_socket:
            return command(self.admin_socket, cmd)
        return command(self.master_socket, f"@1 {cmd}")

    def apply(self, plan: Plan) -> int:
        """Run every change of ``plan``, then confirm it; the number of servers changed."""
        for change in plan.changes:
            log.info("haproxy: runtime API (no reload): server %s/%s %s",
                     change.backend, change.server, change.what)
            for cmd in change.commands:
                self._run(cmd, change)
        self._confirm(plan.changes)
        return len(plan.changes)

    def _run(self, cmd: str, change: Change) -> None:
        try:
            answer = self.send(cmd)
        except CliError as exc:
            raise RuntimeRefused(f"haproxy: runtime API unreachable for {cmd!r}: {exc}") from exc
        if _accepted(cmd, answer):
            self.pending_deletions.discard((change.backend, change.server))
            return
        if cmd.startswith("del server") and any(s in answer for s in _STILL_IN_USE):
            log.info("haproxy: server %s/%s is in maintenance; deleting it once its "
                     "connections end", change.backend, change.server)
            self.pending_deletions.add((change.backend, change.server))
            return
        first = answer.strip().splitlines()[0] if answer.strip() else "(no answer)"
        raise RuntimeRefused(f"haproxy: runtime API refused {cmd!r}: {first}")

    def _confirm(self, changes: Sequence[Change]) -> None:
        states: dict[str, dict[tuple[str, str], ServerState]] = {}
        for change in changes:
            if change.backend not in states:
                states[change.backend] = self.servers_state(change.backend)
            now = states[change.backend].get((change.backend, change.server))
            problem = _mismatch(change, now, (change.backend, change.server)
                                in self.pending_deletions)
            if problem:
                raise RuntimeRefused(f"haproxy: server {change.backend}/{change.server} "
                                     f"{problem} after the runtime update")

    def servers_state(self, backend: str = "") -> dict[tuple[str, str], ServerState]:
        """``show servers state [backend]``, parsed."""
        try:
            return parse_servers_state(self.send(f"show servers state {backend}".rstrip()))
        except CliError as exc:
            raise RuntimeRefused(f"haproxy: cannot read server state: {exc}") from exc

    def retry_deletions(self, new: Sequence[Section]) -> None:
        """Try again to delete removed servers whose connections may have ended."""
        wanted = {(s.header.split()[1], n) for s in new if len(s.header.split()) > 1
                  for n in s.servers}
        for backend, server in sorted(self.pending_deletions):
            if (backend, server) in wanted:
                self.pending_deletions.discard((backend, server))
                continue
            try:
                answer = self.send(f"del server {backend}/{server}")
            except CliError:
                return
            if _accepted("del server", answer):
                log.info("haproxy: deleted server %s/%s (its connections ended)",
                         backend, server)
                self.pending_deletions.discard((backend, server))

    def forget_deletions(self) -> None:
        """A reload or start loaded the config without the removed servers."""
        self.pending_deletions.clear()

    def save_state(self, new: Sequence[Section], loaded: Sequence[Section] | None) -> None:
        """Write ``show servers state`` to the config's ``server-state-file`` before a reload.

        Lines of servers whose config line changes with this reload are left out, so the
        new config wins for them; every other server keeps its runtime state (maintenance
        set by an operator, health, weight).
        """
        path = state_file(new)
        if path is None:
            log.debug("haproxy: no server-state-file in the global section; state not kept")
            return
        try:
            text = self.send("show servers state")
        except CliError as exc:
            log.warning("haproxy: cannot save server state to %s: %s", path, exc)
            return
        servers = _servers(new)
        changed = _changed_servers(servers, loaded)
        lines = [line for line in text.splitlines(keepends=True)
                 if not _outdated(line, servers, changed, loaded is None)]
        try:
            install(path, "".join(lines).encode("utf-8"), InstallOptions(perms=0o600))
        except CtmplError as exc:
            log.warning("haproxy: cannot save server state to %s: %s", path, exc)
            return
        log.debug("haproxy: server state saved to %s", path)


def _mismatch(change: Change, now: ServerState | None, pending: bool) -> str:
    want = change.expect
    if want is None:
        if now is None or (pending and now.in_maintenance):
            return ""
        return "is still present"
    if now is None:
        return "is missing"
    if (now.address, now.port) != (want.address, want.port):
        return f"has address {now.address}:{now.port}, not {want.address}:{want.port}"
    weight = 1 if want.weight is None else want.weight
    if now.weight != weight:
        return f"has weight {now.weight}, not {weight}"
    if now.in_maintenance != want.disabled:
        return "is in maintenance" if now.in_maintenance else "is not in maintenance"
    return ""


def _servers(sections: Sequence[Section]) -> dict[tuple[str, str], Server]:
    return {(s.header.split()[1], name): server for s in sections if len(s.header.split()) > 1
            for name, server in s.servers.items()}


def _changed_servers(now: dict[tuple[str, str], Server],
                     loaded: Sequence[Section] | None) -> set[tuple[str, str]]:
    """Servers whose line differs from what the workers run (none known when unknown)."""
    if loaded is None:
        return set()
    before = _servers(loaded)
    return {key for key, server in now.items()
            if key not in before or before[key].raw != server.raw}


def _outdated(line: str, servers: dict[tuple[str, str], Server],
              changed: set[tuple[str, str]], unknown: bool) -> bool:
    """True for a state line the new config must override.

    When ctmpl does not know what the workers run, a line whose address or port differs
    from the config is outdated (HAProxy would keep the old port from the file).
    """
    parts = line.split()
    if len(parts) < 19 or not parts[0].isdigit():
        return False
    key = (parts[1], parts[3])
    if key in changed:
        return True
    server = servers.get(key)
    return unknown and server is not None and (server.address, str(server.port)) != (
        parts[4], parts[18])
