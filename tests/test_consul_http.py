"""The agent's HTTP client: a request the agent drops is a failure, never sent again."""

from __future__ import annotations

import asyncio

import pytest

from ctmpl.config.model import ConsulConfig
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import AgentHTTP

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
