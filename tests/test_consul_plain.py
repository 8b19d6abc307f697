"""The Consul client without aiohttp (``ctmpl.sources.consul_plain``), as a daemon talking
plain http to its agent sends its requests until its first complete render.

Every test of ``test_consul`` runs here again with aiohttp's import put off (so through
the plain client: same answers, same blocking, same error messages), then the client's own
framing cases against a scripted server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from ctmpl import model, preload
from ctmpl.config.model import ConsulConfig
from ctmpl.errors import SourceError
from ctmpl.sources import consul_http
from ctmpl.sources.consul_http import AgentHTTP
from tests.consul_proxy import ConsulProxy
from tests.daemon import poll_until
from tests.fixtures_consul import ConsulFixture
from tests.test_consul import *  # noqa: F403 (every test again, through the plain client)
from tests.test_consul import make


@pytest.fixture(autouse=True)
def aiohttp_put_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Requests go through the plain client; one through aiohttp fails the test. Warnings
    logged once per process (``ctmpl.model.warn_once``) are logged again here."""
    monkeypatch.setitem(preload._put_off, "aiohttp", threading.Event())
    monkeypatch.setattr(model, "_WARNED", set())

    def no_aiohttp(self: AgentHTTP) -> None:
        raise AssertionError("aiohttp used while its import is put off")

    aiohttp_session = consul_http.AgentHTTP._open
    monkeypatch.setattr(consul_http.AgentHTTP, "_open", lambda self: (
        aiohttp_session(self) if self._tls is not None or not preload.put_off("aiohttp")
        else no_aiohttp(self)))
    yield


Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[bytes], Awaitable[str]]]:
    """A server on a free port that answers every request with the given bytes, then
    closes the connection; returns its host:port."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes) -> str:
        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(reply, "127.0.0.1", 0)
        servers.append(server)
        return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nContent-Length: 4\r\n\r\n[1]\nextra", [1]),
    (b"HTTP/1.0 200 OK\r\nx-consul-index: 7\r\n\r\n[1, 2]", [1, 2]),
    (b"HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2\r\n[3\r\n1;ext=1\r\n]\r\n0\r\n\r\n", [3]),
])
async def test_answer_framings(scripted: Callable[[bytes], Awaitable[str]], answer: bytes,
                               body: object) -> None:
    """Content-Length, the end of the connection, or chunks (a real agent's large answers)."""
    addr = await scripted(answer)
    got = await make(addr).read("catalog.nodes", "/v1/catalog/nodes", ())
    assert (got.body, got.index) == (body, 7)


@pytest.mark.parametrize(("answer", "error"), [
    (b"", "catalog.nodes: connection closed by the agent (127.0.0.1:"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[1]",
     "catalog.nodes: connection closed by the agent (127.0.0.1:"),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "catalog.nodes: not a valid HTTP answer (127.0.0.1:"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "catalog.nodes: not a valid HTTP answer (127.0.0.1:"),
    (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nboom\n",
     "catalog.nodes: HTTP 500: boom"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[{",
     "catalog.nodes: invalid JSON in the answer from 127.0.0.1:"),
])
async def test_bad_answers_are_source_errors(
    scripted: Callable[[bytes], Awaitable[str]], answer: bytes, error: str,
) -> None:
    http = make(await scripted(answer))
    with pytest.raises(SourceError) as err:
        _ = (await http.read("catalog.nodes", "/v1/catalog/nodes", ())).body
    assert str(err.value).startswith(error)


async def test_requests_sent_before_aiohttp_keep_their_connection_slots(
    consul: ConsulFixture,
) -> None:
    """A long-poll sent without aiohttp still holds a connection after aiohttp is loaded:
    until it ends, aiohttp's requests share the max_connections slots with it."""
    consul.put("app/x", "1")
    proxy = ConsulProxy(consul.addr)
    proxy.start()
    try:
        http = AgentHTTP(ConsulConfig(address=proxy.addr), 2)
        index = (await http.get("kv", "/v1/kv/app/x", [], 10)).index
        poll = asyncio.ensure_future(http.get(
            "kv", "/v1/kv/app/x", [("index", str(index)), ("wait", "3s")], 10))
        await poll_until(lambda: proxy.open_connections == 1)
        preload._put_off["aiohttp"].set()  # loaded: later requests go through aiohttp
        proxy.max_connections = 1
        reads = [http.get("nodes", "/v1/catalog/nodes", [], 10) for _ in range(4)]
        assert all(answer.index for answer in await asyncio.gather(*reads))
        assert proxy.max_connections == 2
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
        await http.aclose()
    finally:
        proxy.stop()
