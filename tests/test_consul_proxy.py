"""The counting proxy notes each answer it forwards, whatever frames it.

A real agent sends large answers in chunks, the double with a ``Content-Length``; the proxy
must find where each answer ends (the benchmark's "the agent's reply" ends there) and pass
every byte on unchanged, several answers on one kept-alive connection.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.consul_proxy import ConsulProxy
from tests.daemon import wait_for


class _Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        index = self.path.rsplit("=", 1)[-1]
        self.send_response(200)
        self.send_header("X-Consul-Index", index)
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'[{"a":', b"1}", b",2]"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = b'{"plain":true}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ConsulProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = ConsulProxy(f"127.0.0.1:{server.server_address[1]}")
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
        server.shutdown()
        server.server_close()


def test_answers_are_noted_and_passed_on_unchanged(proxy: ConsulProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    bodies = []
    for path in ("/chunked?index=7", "/plain?index=8", "/chunked?index=9"):
        conn.request("GET", path)
        bodies.append(conn.getresponse().read())
    conn.close()
    assert bodies == [b'[{"a":1},2]', b'{"plain":true}', b'[{"a":1},2]']
    assert proxy.max_connections == 1
    # The proxy notes an answer once its last byte is passed on: maybe just after the
    # client read it.
    wait_for(lambda: len(proxy.answers) == 3, timeout=10, what="three answers noted")
    assert [(a.request, a.status, a.index) for a in proxy.answers] == [
        ("GET /chunked?index=7", 200, 7), ("GET /plain?index=8", 200, 8),
        ("GET /chunked?index=9", 200, 9)]
    assert all(a.began <= a.ended for a in proxy.answers)
