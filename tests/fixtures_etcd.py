"""pytest plugin: a real etcd server on random loopback ports, stopped after each test.

``etcd`` yields an ``EtcdServer`` with ``.endpoint`` ("127.0.0.1:PORT"), KV helpers
that talk to etcd's JSON gateway (so sync and async tests can both use them), and
``stop()``/``start()`` that keep the ports and data dir. The test is skipped when the
``etcd`` binary (Debian package etcd-server) is not installed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT = 30.0


def kill_server(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a server process still running (as a crash or a lost host would) and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TLSFiles:
    """A throwaway CA with a server and a client certificate for 127.0.0.1 (needs openssl)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca, self.ca_key = directory / "ca.crt", directory / "ca.key"
        ext = directory / "ext.cnf"
        ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl("req", "-x509", *newkey, "-keyout", self.ca_key, "-out", self.ca,
                 "-days", "1", "-subj", "/CN=ctmpl-test-ca")
        self.server_cert, self.server_key = self._issue(directory, "server", newkey, ext)
        self.client_cert, self.client_key = self._issue(directory, "client", newkey, ext)

    def _issue(self, directory: Path, name: str, newkey: list[str], ext: Path) -> tuple[Path, Path]:
        key, csr, cert = (directory / f"{name}.{e}" for e in ("key", "csr", "crt"))
        _openssl("req", *newkey, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext)
        return cert, key


def _openssl(*args: str | Path) -> None:
    binary = shutil.which("openssl")
    if not binary:
        pytest.skip("openssl not installed (needed to make test certificates)")
    subprocess.run([binary, *map(str, args)], check=True, capture_output=True)


class EtcdServer:
    """One etcd member: process control plus KV, lease and compaction helpers."""

    def __init__(self, binary: str, data_dir: Path, tls: TLSFiles | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.tls = tls
        self.client_port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = False  # once started, restarts keep the ports
        self._scheme = "https" if tls else "http"
        self._context: ssl.SSLContext | None = None
        self._token = ""
        if tls:
            self._context = ssl.create_default_context(cafile=str(tls.ca))
            self._context.load_cert_chain(str(tls.client_cert), str(tls.client_key))

    @property
    def running(self) -> bool:
        """True while the etcd process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start etcd (same ports and data dir every time) and wait until it is healthy.

        A free port can be taken between picking it and etcd binding it (another client's
        ephemeral port): the first start then tries new ports, a restart cannot."""
        for attempt in range(3):
            try:
                self._start()
                self._started = True
                return
            except RuntimeError:
                if self._started or attempt == 2 or "address already in use" not in \
                        self._log_tail():
                    raise
            self.client_port, self.peer_port = free_port(), free_port()
            self.endpoint = f"127.0.0.1:{self.client_port}"
            shutil.rmtree(self.data_dir, ignore_errors=True)  # bootstrapped for the old ports
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def _start(self) -> None:
        assert not self.running, "etcd is already running"
        client = f"{self._scheme}://{self.endpoint}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.binary, "--name", "ctmpl-test", "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"ctmpl-test={peer}", "--log-level", "error",
        ]
        if self.tls:
            args += [
                "--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key),
                "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth",
            ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def stop(self) -> None:
        """Stop etcd abruptly (SIGKILL), as a crash or a lost host would."""
        proc, self._proc = self._proc, None
        kill_server(proc)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"etcd exited at start:\n{self._log_tail()}")
            try:
                with self._open(f"{self._scheme}://{self.endpoint}/health") as reply:
                    if json.load(reply).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"etcd not healthy after {START_TIMEOUT}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def _open(self, request: str | urllib.request.Request) -> Any:
        return urllib.request.urlopen(request, timeout=10, context=self._context)

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self._scheme}://{self.endpoint}{path}", data=json.dumps(body).encode(),
            method="POST",
        )
        if self._token:
            request.add_header("Authorization", self._token)
        with self._open(request) as reply:
            result: dict[str, Any] = json.load(reply)
        return result

    def put(self, key: str, value: str, lease: int = 0) -> int:
        """Put ``key`` (optionally bound to ``lease``); return the new revision."""
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._call("/v3/kv/put", body)["header"]["revision"])

    def put_all(self, items: dict[str, str]) -> int:
        """Put every key in one transaction (one revision); return that revision."""
        ops = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in items.items()]
        return int(self._call("/v3/kv/txn", {"success": ops})["header"]["revision"])

    def delete(self, key: str) -> int:
        """Delete ``key``; return the revision after the delete."""
        return int(self._call("/v3/kv/deleterange", {"key": _b64(key)})["header"]["revision"])

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with ``prefix`` (every key for ""); the revision."""
        start = end = b"\0"
        if prefix:  # text keys: the last byte is below 0xFF
            start = prefix.encode()
            end = start[:-1] + bytes([start[-1] + 1])
        body = {"key": base64.b64encode(start).decode(),
                "range_end": base64.b64encode(end).decode()}
        return int(self._call("/v3/kv/deleterange", body)["header"]["revision"])

    def get(self, key: str) -> str | None:
        """The value of ``key`` or None."""
        kvs = self._call("/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None

    def revision(self) -> int:
        """The store's current revision."""
        return int(self._call("/v3/kv/range", {"key": _b64("\0")})["header"]["revision"])

    def grant(self, ttl: int) -> int:
        """A new lease with ``ttl`` seconds; return its id."""
        return int(self._call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def lease_put(self, key: str, value: str, ttl: int) -> int:
        """Put ``key`` bound to a fresh lease of ``ttl`` seconds; return the lease id."""
        lease = self.grant(ttl)
        self.put(key, value, lease=lease)
        return lease

    def revoke(self, lease: int) -> None:
        """Revoke ``lease``, deleting its keys at once."""
        self._call("/v3/lease/revoke", {"ID": str(lease)})

    def enable_auth(self, user: str, password: str) -> None:
        """Create ``root`` (and ``user`` with read access) and turn authentication on.

        Later helper calls authenticate as root.
        """
        for name, secret in (("root", password), (user, password)):
            self._call("/v3/auth/user/add", {"name": name, "password": secret})
        self._call("/v3/auth/role/add", {"name": "root"})
        self._call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        self._call("/v3/auth/role/add", {"name": "reader"})
        self._call("/v3/auth/role/grant", {"name": "reader", "perm": {
            "permType": "READ", "key": _b64("\0"), "range_end": _b64("\0"),
        }})
        self._call("/v3/auth/user/grant", {"user": user, "role": "reader"})
        self._call("/v3/auth/enable", {})
        reply = self._call("/v3/auth/authenticate", {"name": "root", "password": password})
        self._token = str(reply["token"])

    def compact(self, revision: int = 0) -> int:
        """Compact history up to ``revision`` (default: the current one); return it."""
        revision = revision or self.revision()
        self._call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision


def _etcd_binary() -> str:
    binary = os.environ.get("CTMPL_ETCD_BIN") or shutil.which("etcd")
    if not binary:
        pytest.skip("etcd binary not installed (apt-get install etcd-server)")
    return binary


def _serve(server: EtcdServer) -> Iterator[EtcdServer]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A running etcd server on loopback; always killed after the test."""
    yield from _serve(EtcdServer(_etcd_binary(), tmp_path / "etcd-data"))


@pytest.fixture
def etcd_tls(tmp_path: Path) -> Iterator[EtcdServer]:
    """Like ``etcd``, but serving TLS only and requiring a client certificate (``.tls``)."""
    binary = _etcd_binary()
    tls = TLSFiles(tmp_path / "etcd-tls")
    yield from _serve(EtcdServer(binary, tmp_path / "etcd-data", tls=tls))
