"""The agent's HTTP client: a request the agent drops is a failure, never sent again."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from ctmpl.config.model import ConsulConfig
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import AgentHTTP, is_loopback

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


async def test_a_dropped_request_on_a_kept_alive_connection_fails() -> None:
    """An agent that closes a kept-alive connection mid-request (it is stopping) may be a
    new agent a moment later: a long-poll sent again silently would carry the old index to
    it and block for a whole wait. The request fails instead (the poll asks again)."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while await reader.readuntil(b"\r\n\r\n"):
            requests += 1
            if requests > 1:  # the second request on this connection: drop it
                break
            writer.write(_OK)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = AgentHTTP(ConsulConfig(address=f"127.0.0.1:{port}"), 1)
    try:
        assert (await http.get("q", "/v1/x", [], 5.0)).body == []
        with pytest.raises(SourceError):
            await http.get("q", "/v1/x", [], 5.0)
        assert requests == 2
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()


async def _serve_once(answer: bytes, seen: list[bytes]) -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_local_agent_is_asked_for_uncompressed_answers() -> None:
    """An agent compresses every answer a client accepts compressed (gzip): a local one
    is asked not to, which costs both sides less than copying the bytes."""
    seen: list[bytes] = []
    server, port = await _serve_once(_OK, seen)
    http = AgentHTTP(ConsulConfig(address=f"127.0.0.1:{port}"), 1)
    try:
        assert (await http.get("q", "/v1/x", [], 5.0)).body == []
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()
    assert b"\r\naccept-encoding: identity\r\n" in seen[0].lower()


async def test_a_compressed_answer_is_still_read() -> None:
    body = gzip.compress(b'[{"Node": "n1"}]')
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body)) + body
    server, port = await _serve_once(answer, [])
    http = AgentHTTP(ConsulConfig(address=f"127.0.0.1:{port}"), 1)
    try:
        assert (await http.get("q", "/v1/x", [], 5.0)).body == [{"Node": "n1"}]
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("hostport", "local"), [
    ("127.0.0.1:8500", True), ("127.1.2.3:8500", True), ("[::1]:8500", True),
    ("localhost:8500", True), ("LOCALHOST:8501", True), ("10.0.0.5:8500", False),
    ("[fe80::1]:8500", False), ("consul.service.consul:8500", False),
    ("localhost.example.com:8500", False),
])
def test_which_agents_are_local(hostport: str, local: bool) -> None:
    assert is_loopback(hostport) is local
