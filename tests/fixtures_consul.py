"""pytest plugin: a Consul agent on a random loopback port, stopped after each test.

``consul`` yields a ``ConsulFixture``: ``.addr`` ("127.0.0.1:PORT"), helpers that register
and change services, checks and KV through Consul's HTTP API only (so sync and async tests
can both use them, and every test runs unchanged against a real agent), and
``stop()``/``start()`` on the same port. By default it runs the API double of
``consul_double``; when ``CTMPL_CONSUL_BIN`` names a consul binary, or ``consul`` is on PATH,
it runs ``consul agent -dev`` with every port (http, dns, serf lan/wan, server, grpc) chosen
free on 127.0.0.1. ``CTMPL_CONSUL_BIN=none`` forces the double. Like a dev agent, both forget
everything when restarted.

Agent-registered services get one TTL check, ``ttl-<id>``, with a long TTL so it never
expires during a test; its status is set through the agent's check endpoints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.consul_double import ConsulDouble

SETTLE_TIMEOUT = 10.0
START_TIMEOUT = 30.0
TTL = "24h"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def consul_binary() -> str | None:
    """The consul binary to use, or None for the double."""
    env = os.environ.get("CTMPL_CONSUL_BIN", "")
    if env.lower() in ("none", "double", "0"):
        return None
    return env or shutil.which("consul")


class Server(Protocol):
    """What the fixture needs from the process behind it."""

    is_real: bool

    @property
    def addr(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class DoubleServer:
    """The in-process API double."""

    is_real = False

    def __init__(self, node_name: str = "ctmpl-double", node_id: str = "") -> None:
        self.double = ConsulDouble(node_name=node_name, node_id=node_id)
        self.double.dev_mode = True  # a `consul agent -dev` indents its JSON

    @property
    def addr(self) -> str:
        return self.double.addr

    def start(self) -> None:
        self.double.start()

    def stop(self) -> None:
        self.double.stop()


class AgentServer:
    """``consul agent -dev`` on loopback ports picked at random."""

    is_real = True

    def __init__(self, binary: str, workdir: Path, node_name: str = "ctmpl-test",
                 node_id: str = "") -> None:
        self.binary = binary
        self.workdir = workdir
        self.ports = {name: free_port() for name in
                      ("http", "dns", "serf_lan", "serf_wan", "server", "grpc")}
        version = subprocess.run(
            [binary, "version"], check=False, capture_output=True, text=True, timeout=30
        )
        found = re.search(r"v(\d+)\.(\d+)", version.stdout)
        if found and (int(found[1]), int(found[2])) >= (1, 14):
            self.ports["grpc_tls"] = free_port()
        self.config = workdir / "consul.json"
        settings: dict[str, Any] = {
            "ports": self.ports,
            "bind_addr": "127.0.0.1",
            "client_addr": "127.0.0.1",
            "node_name": node_name,
            "log_level": "warn",
        }
        if node_id:
            settings["node_id"] = node_id
        self.config.write_text(json.dumps(settings))
        self.log = workdir / "consul.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.ports['http']}"

    def start(self) -> None:
        if self.proc is not None:
            return
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "agent", "-dev", f"-config-file={self.config}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"consul agent exited: {self.log.read_text()[-2000:]}")
            try:
                leader = _call("GET", self.addr, "/v1/status/leader")
                nodes = _call("GET", self.addr, "/v1/catalog/nodes")
                if leader and nodes:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("consul agent did not become ready")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _call(method: str, addr: str, path: str, body: Any = None, token: str = "") -> Any:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    if token:
        req.add_header("X-Consul-Token", token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    if resp.headers.get("Content-Type", "").startswith("application/json") and raw:
        return json.loads(raw)
    return raw


class ConsulFixture:
    """Helpers over Consul's HTTP API; each waits until the change is visible."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.token = ""
        self._registered: dict[str, dict[str, Any]] = {}

    @property
    def addr(self) -> str:
        """``127.0.0.1:PORT`` of the HTTP API."""
        return self.server.addr

    @property
    def is_real(self) -> bool:
        """True for a real consul agent, False for the double."""
        return self.server.is_real

    def double(self, why: str) -> ConsulDouble:
        """The double itself; on a real agent the test is skipped, saying ``why`` it needs
        the double (e.g. it sets a header a dev agent cannot be made to send)."""
        if not isinstance(self.server, DoubleServer):
            pytest.skip(f"needs the Consul API double: {why}")
        return self.server.double

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One HTTP request; the parsed JSON answer (bytes for other content)."""
        return _call(method, self.addr, path, body, self.token)

    def start(self) -> None:
        """Start (again) on the same port; a restarted agent has an empty catalog."""
        self.server.start()

    def stop(self) -> None:
        """Stop the agent; clients get connection refused until start()."""
        self.server.stop()

    def require_token(self, token: str) -> None:
        """Enforce an ACL token (double only: a dev agent has ACLs disabled)."""
        self.double("a dev agent runs with ACLs disabled").acl_token = token
        self.token = token

    # -- services ---------------------------------------------------------------------

    def register(
        self,
        id: str,
        name: str,
        address: str = "127.0.0.1",
        port: int = 8080,
        *,
        tags: tuple[str, ...] | list[str] = (),
        meta: dict[str, str] | None = None,
        status: str | None = "passing",
    ) -> None:
        """Register an instance through the agent with a TTL check ``ttl-<id>`` (none when
        ``status`` is None); registering a known ``id`` again updates it in place."""
        body: dict[str, Any] = {"ID": id, "Name": name, "Address": address, "Port": port,
                                "Tags": list(tags)}
        if meta:
            body["Meta"] = meta
        if status is not None:
            body["Check"] = {"CheckID": f"ttl-{id}", "TTL": TTL, "Status": status}
        self._registered[id] = body
        self.call("PUT", "/v1/agent/service/register", body)
        self._settle(name, lambda e: _has(e, id, tags=list(tags), address=address, port=port))

    def move(self, id: str, address: str, port: int | None = None) -> None:
        """Register ``id`` again with a new address (and port); tags and check unchanged."""
        body = {**self._registered[id], "Address": address}
        if port is not None:
            body["Port"] = port
        self._registered[id] = body  # the check as last set: same ID, TTL and status
        self.call("PUT", "/v1/agent/service/register", body)
        self._settle(body["Name"], lambda e: _has(e, id, address=address, port=body["Port"]))

    def retag(self, id: str, tags: tuple[str, ...] | list[str]) -> None:
        """Register ``id`` again with new tags (its check keeps its status)."""
        body = {**self._registered[id], "Tags": list(tags)}
        self._registered[id] = body  # the check as last set: same ID, TTL and status
        self.call("PUT", "/v1/agent/service/register", body)
        self._settle(body["Name"], lambda e: _has(e, id, tags=list(tags)))

    def deregister(self, id: str) -> None:
        """Remove an agent-registered instance and its checks."""
        body = self._registered.pop(id)
        self.call("PUT", f"/v1/agent/service/deregister/{urllib.parse.quote(id)}")
        self._settle(body["Name"], lambda e: not _has(e, id))

    def set_status(self, id: str, status: str) -> None:
        """Set the TTL check of instance ``id``: passing, warning or critical."""
        verb = {"passing": "pass", "warning": "warn", "critical": "fail"}[status]
        self.call("PUT", f"/v1/agent/check/{verb}/ttl-{urllib.parse.quote(id)}")
        body = self._registered[id]
        if "Check" in body:  # registering it again (move, retag) keeps this status
            body["Check"] = {**body["Check"], "Status": status}
        name = self._registered[id]["Name"]
        self._settle(name, lambda e: _has(e, id, check=(f"ttl-{id}", status)))

    def maintenance(self, id: str, enable: bool = True) -> None:
        """Put an instance in (or out of) maintenance mode."""
        flag = "true" if enable else "false"
        self.call("PUT", f"/v1/agent/service/maintenance/{id}?enable={flag}&reason=test")
        name = self._registered[id]["Name"]
        check = f"_service_maintenance:{id}"
        self._settle(name, lambda e: enable == _has(e, id, check=(check, "critical")))

    def register_external(
        self,
        node: str,
        node_address: str,
        id: str,
        name: str,
        *,
        address: str = "",
        port: int = 8080,
        tags: tuple[str, ...] | list[str] = (),
        status: str | None = None,
    ) -> None:
        """Register an instance on another node through the catalog API."""
        body: dict[str, Any] = {
            "Node": node, "Address": node_address,
            "Service": {"ID": id, "Service": name, "Address": address, "Port": port,
                        "Tags": list(tags)},
        }
        if status:
            body["Check"] = {"CheckID": f"ttl-{id}", "Name": f"{id} check", "Status": status,
                             "ServiceID": id}
        self.call("PUT", "/v1/catalog/register", body)
        self._settle(name, lambda e: _has(e, id))

    def node_check(self, node: str, node_address: str, status: str) -> None:
        """Set the node-level check ``node-health`` of a catalog-registered node (a node
        failure when critical: every instance on the node turns critical)."""
        self.call("PUT", "/v1/catalog/register", {
            "Node": node, "Address": node_address,
            "Check": {"CheckID": "node-health", "Name": "node health", "Status": status},
        })

        def seen() -> bool:
            checks = self.call("GET", f"/v1/health/node/{urllib.parse.quote(node)}") or []
            return any((c["CheckID"], c["Status"]) == ("node-health", status) for c in checks)

        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not seen():
            if time.monotonic() > deadline:
                raise AssertionError(f"consul: node check of {node!r} not visible after 10s")
            time.sleep(0.05)

    def deregister_external(self, node: str) -> None:
        """Remove a node registered through the catalog API, with its services."""
        self.call("PUT", "/v1/catalog/deregister", {"Node": node})

    # -- KV -----------------------------------------------------------------------------

    def put(self, key: str, value: str | bytes) -> None:
        """Set a KV key."""
        data = value.encode() if isinstance(value, str) else value
        self.call("PUT", f"/v1/kv/{urllib.parse.quote(key)}", data)

    def delete(self, key: str, recurse: bool = False) -> None:
        """Delete a KV key (or every key below a prefix)."""
        suffix = "?recurse" if recurse else ""
        self.call("DELETE", f"/v1/kv/{urllib.parse.quote(key)}{suffix}")

    def _settle(self, name: str, ready: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Wait until the health endpoint shows a change (agent sync is asynchronous)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        path = f"/v1/health/service/{urllib.parse.quote(name)}"
        while not ready(self.call("GET", path) or []):
            if time.monotonic() > deadline:
                raise AssertionError(f"consul: change to {name!r} not visible after 10s")
            time.sleep(0.05)


def _has(
    entries: list[dict[str, Any]],
    id: str,
    *,
    tags: list[str] | None = None,
    check: tuple[str, str] | None = None,
    address: str | None = None,
    port: int | None = None,
) -> bool:
    for entry in entries:
        svc = entry["Service"]
        if svc["ID"] != id:
            continue
        if tags is not None and sorted(svc["Tags"] or []) != sorted(tags):
            return False
        if (address, port) != (None, None) and (svc["Address"], svc["Port"]) != (address, port):
            return False
        if check is not None:
            return any((c["CheckID"], c["Status"]) == check for c in entry["Checks"])
        return True
    return False


@pytest.fixture
def consul() -> Iterator[ConsulFixture]:
    """A running Consul (real dev agent when available, else the double); stopped afterwards."""
    binary = consul_binary()
    with tempfile.TemporaryDirectory(prefix="ctmpl-consul-") as tmp:
        server: Server = AgentServer(binary, Path(tmp)) if binary else DoubleServer()
        server.start()
        try:
            yield ConsulFixture(server)
        finally:
            server.stop()
