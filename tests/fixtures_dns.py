"""pytest plugin: a real DNS server (dnsmasq) on a random loopback port, stopped after each test.

``dns_server`` yields a ``DnsServer`` listening on 127.0.0.1 and ::1. It answers only
from its own files: A/AAAA records from a hosts file (``set_hosts`` rewrites it and
sends SIGHUP, which makes dnsmasq re-read it) and SRV records from its config file
(``set_srv`` rewrites it and restarts dnsmasq on the same port: SIGHUP does not re-read
``srv-host`` lines). Every other name is NXDOMAIN (``--local=/#/``), or REFUSED after
``refuse(True)``; answers carry a TTL of 1 s (``ttl``). ``pause()``/``resume()``
(SIGSTOP/SIGCONT) make it stop answering, and its log (``--log-queries``) lets a test count
the questions.
The test is skipped when dnsmasq (Debian package dnsmasq-base) is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from tests.fixtures_etcd import kill_server

START_TIMEOUT = 20.0
DNSMASQ_BIN = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")


def free_udp_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 and ::1 right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        try:
            for family, host, kind in ((socket.AF_INET, "127.0.0.1", socket.SOCK_STREAM),
                                       (socket.AF_INET6, "::1", socket.SOCK_DGRAM),
                                       (socket.AF_INET6, "::1", socket.SOCK_STREAM)):
                with socket.socket(family, kind) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port


class DnsServer:
    """One dnsmasq process serving the records a test writes."""

    def __init__(self, binary: str, directory: Path, ttl: int = 1) -> None:
        self.binary = binary
        self.ttl = ttl  # the TTL of every answer
        self.port = free_udp_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"dns://{self.address}"
        self.hosts = directory / "dns-hosts"
        self.conf = directory / "dnsmasq.conf"
        self.log_path = directory / "dnsmasq.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.refusing = False  # answer REFUSED, not NXDOMAIN, for names it does not know
        self.hosts.write_text("")
        self.conf.write_text("")

    @property
    def running(self) -> bool:
        """True while dnsmasq runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start dnsmasq (same port every time) and wait until it answers."""
        assert not self.running, "dnsmasq is already running"
        args = [
            self.binary, "--keep-in-foreground", f"--port={self.port}",
            "--listen-address=127.0.0.1,::1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            f"--addn-hosts={self.hosts}", f"--conf-file={self.conf}",
            *([] if self.refusing else ["--local=/#/"]), f"--local-ttl={self.ttl}",
            "--user=root", "--group=root", "--pid-file=",
            "--log-facility=-", "--log-queries",
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if not self.running or time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop dnsmasq (SIGKILL: paused or not)."""
        proc, self._proc = self._proc, None
        kill_server(proc)

    def pause(self) -> None:
        """Stop answering (SIGSTOP): questions time out, as with a hung server."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Answer again (SIGCONT)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def set_hosts(self, records: Mapping[str, Sequence[str]], *, reload: bool = True) -> None:
        """Serve ``{name: [address, …]}`` as A/AAAA records; reload at once unless told not to."""
        lines = [f"{address} {name}" for name, addresses in records.items()
                 for address in addresses]
        tmp = self.hosts.with_name(f".{self.hosts.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        os.replace(tmp, self.hosts)
        if reload:
            self.reload()

    def reload(self) -> None:
        """SIGHUP, and wait until dnsmasq has read the hosts file again."""
        assert self._proc is not None
        reads = self.log().count(f"read {self.hosts}")
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while self.log().count(f"read {self.hosts}") <= reads:
            if time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not re-read its hosts:\n{self.log()[-2000:]}")
            time.sleep(0.02)

    def set_srv(self, records: Sequence[tuple[str, str, int]]) -> None:
        """Serve ``(name, target, port)`` SRV records; restarts dnsmasq when it runs."""
        self.conf.write_text("".join(f"srv-host={n},{t},{p}\n" for n, t, p in records))
        if self.running:
            self.stop()
            self.start()

    def refuse(self, refusing: bool) -> None:
        """Restart, answering unknown names REFUSED (a server without the zone) or NXDOMAIN."""
        self.refusing = refusing
        self.stop()
        self.start()

    def queries(self, name: str, kind: str = "A") -> int:
        """How many ``kind`` questions for ``name`` dnsmasq has logged."""
        return self.log().count(f"query[{kind}] {name} from")

    def log(self) -> str:
        """dnsmasq's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _answers(self) -> bool:
        query = dns.message.make_query("ready.check", "A")
        try:
            dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
        except (OSError, dns.exception.DNSException):
            return False
        return True


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[DnsServer]:
    """A running dnsmasq with no records yet; always stopped after the test."""
    if DNSMASQ_BIN is None:
        pytest.skip("dnsmasq not installed (Debian package dnsmasq-base)")
    server = DnsServer(DNSMASQ_BIN, tmp_path)
    try:
        server.start()
        yield server
    finally:
        if server.running:
            server.resume()
        server.stop()
