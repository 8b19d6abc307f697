"""A removed server with a request in flight: maintenance at once, deleted once it is done."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ctmpl.proxy import HaproxyController
from tests.fixtures_haproxy import HaproxyEnv
from tests.fixtures_nginx import Backend, wait_until

MakeBackend = Callable[[str], Backend]


class SlowBackend:
    """Answers ``slow`` to each request once ``release`` is set."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.arrived.set()
                outer.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"slow\n")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow() -> Iterator[SlowBackend]:
    backend = SlowBackend()
    yield backend
    backend.stop()


def test_removed_server_finishes_its_request_then_goes(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend, slow: SlowBackend,
        caplog: pytest.LogCaptureFixture) -> None:
    haproxy_env.set_backends({"web": [f"s 127.0.0.1:{slow.port}"]})
    ctl = HaproxyController(haproxy_env.cfg)
    assert ctl.apply() == "started"
    first = haproxy_env.wait_proc()
    answer: list[tuple[int, str]] = []

    def long_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", haproxy_env.port, timeout=30)
        conn.request("GET", "/", headers={"Host": "web"})
        resp = conn.getresponse()
        answer.append((resp.status, resp.read().decode()))
        conn.close()

    thread = threading.Thread(target=long_request)
    thread.start()
    try:
        assert slow.arrived.wait(15)
        c = make_backend("c")
        haproxy_env.set_backends({"web": [f"c 127.0.0.1:{c.port}"]})
        assert "runtime API" in ctl.apply()
        assert haproxy_env.bodies() == {"c"}  # new requests never reach the removed server
        assert haproxy_env.servers()["s"].in_maintenance  # still there: a request is running
        assert "deleting it once its connections end" in caplog.text
    finally:
        slow.release.set()
        thread.join(30)
    assert answer == [(200, "slow\n")]  # the request in flight completed
    d = make_backend("d")
    haproxy_env.set_backends({"web": [f"c 127.0.0.1:{c.port}", f"d 127.0.0.1:{d.port}"]})
    wait_until(lambda: "runtime API" in ctl.apply() and "s" not in haproxy_env.servers(),
               what="the removed server to be deleted")
    assert haproxy_env.wait_proc().reloads == first.reloads
    assert "deleted server web/s (its connections ended)" in caplog.text
