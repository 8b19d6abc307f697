"""GET requests to a Consul agent over plain http with asyncio alone, for the daemon's start.

aiohttp, the Consul client's HTTP library, takes about 0.1 s of CPU to import: a fifth of a
daemon's start at 1,000 services, and all of it before the first request could go out. A
daemon talking plain http to its agent puts that import off until every template has
rendered once (``ctmpl.preload``); until then ``AgentHTTP`` sends its GET requests through
``get()`` here: one HTTP/1.0 request per connection, which the agent closes after its answer
(a blocking query waits on it as on any other). The answer's status, reason, headers and
body go back to ``AgentHTTP``, which turns them into an ``Answer`` or a ``SourceError``
exactly as it does aiohttp's; a transport failure raises ``OSError`` (``AnswerCut`` when the
agent closed the connection before a whole answer), or ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import NamedTuple

_HEAD_END = b"\r\n\r\n"


class AnswerCut(ConnectionError):
    """The agent closed the connection before a whole answer."""


class Headers(dict[str, str]):
    """Response headers by lower-case name; ``get`` takes any case, as HTTP's names do."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


class PlainAnswer(NamedTuple):
    """One HTTP answer."""

    status: int
    reason: str
    headers: Headers
    body: bytes


async def get(host: str, port: int, target: str, headers: Mapping[str, str],
              timeout: float) -> PlainAnswer:
    """``GET target`` (path and query, already encoded) from ``host:port``."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            lines = [f"GET {target} HTTP/1.0", f"Host: {authority}",
                     *(f"{name}: {value}" for name, value in headers.items()), "", ""]
            writer.write("\r\n".join(lines).encode("latin-1"))
            try:
                status, reason, fields = _head(await reader.readuntil(_HEAD_END))
                try:
                    body = await _body(reader, fields)
                except (asyncio.IncompleteReadError, ConnectionResetError):
                    if status == 200:
                        raise
                    # An error status says enough: an agent over its connection limit
                    # answers 429 as the connection opens, then closes it.
                    body = b""
            except (asyncio.IncompleteReadError, ConnectionResetError):
                raise AnswerCut("connection closed by the agent") from None
            except (asyncio.LimitOverrunError, ValueError):
                raise AnswerCut("not a valid HTTP answer") from None
            return PlainAnswer(status, reason, fields, body)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _head(raw: bytes) -> tuple[int, str, Headers]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not (code.isdigit() and len(code) == 3):
        raise AnswerCut("not a valid HTTP answer")
    fields = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(code), reason.strip(), fields


async def _body(reader: asyncio.StreamReader, fields: Headers) -> bytes:
    length = fields.get("content-length")
    if length is not None and length.isdigit():
        return await reader.readexactly(int(length))
    if "chunked" in (fields.get("transfer-encoding") or "").lower():
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return b"".join(parts)
    return await reader.read()  # until the agent closes the connection
