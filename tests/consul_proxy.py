"""A TCP proxy in front of a Consul agent (the double or a real one) for request-count tests.

It counts the HTTP requests ctmpl sends and the connections it holds (now and at most),
notes every answer it forwards (``answers``: its request, status, ``X-Consul-Index``, when
its first byte came from the agent and when its last byte was passed on to ctmpl: a
benchmark's "the agent's reply time"), and injects transport faults into chosen requests: a
reset connection, a ``500``, a ``429``, or a request that is never answered (a timeout on
the client's side). It works the same in front of the API double and of a real ``consul
agent -dev``, so request counts can be asserted against both. ctmpl sends only ``GET``
requests without bodies, so a request is one header block ending in an empty line; an
answer is framed by its ``Content-Length``, its chunks (a real agent's large answers), or
the end of the connection.

The proxy runs on its own event loop in a background thread, like the double.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Fault = Literal["reset", "500", "429", "timeout"]
_ANSWERS = {
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\n"
           b"Connection: close\r\n\r\nboom!\n",
    "429": b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
}


@dataclass(frozen=True)
class Answer:
    """One answer the agent gave ctmpl, as forwarded (times from ``time.time()``)."""

    request: str  # "GET /path?query"
    status: int
    index: int  # X-Consul-Index, 0 without one
    began: float  # its first byte arrived from the agent
    ended: float  # its last byte was written to ctmpl


@dataclass
class _Injection:
    match: Callable[[str], bool]
    fault: Fault
    count: int


@dataclass
class ConsulProxy:
    """``start()`` listens on a free loopback port and forwards to ``upstream`` (host:port)."""

    upstream: str
    requests: list[str] = field(default_factory=list)  # "GET /path?query", in order
    open_connections: int = 0
    max_connections: int = 0
    faults: list[tuple[str, Fault]] = field(default_factory=list)  # injected so far
    answers: list[Answer] = field(default_factory=list)  # forwarded, in order of their end
    _injections: list[_Injection] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    port: int = 0

    @property
    def addr(self) -> str:
        """``127.0.0.1:PORT`` to give ctmpl as the agent's address."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen in a background thread."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="consul-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def inject(self, fault: Fault, match: Callable[[str], bool], count: int = 1) -> None:
        """Apply ``fault`` to the next ``count`` requests whose "GET /path?query" matches."""
        self._injections.append(_Injection(match, fault, count))

    def mark(self) -> int:
        """The number of requests so far (count the ones after a change from here)."""
        return len(self.requests)

    def since(self, mark: int) -> list[str]:
        """Requests sent after ``mark``."""
        return self.requests[mark:]

    def quiet(self, for_seconds: float = 0.5, timeout: float = 20.0) -> None:
        """Wait until no request has been sent for ``for_seconds``."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.requests), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.requests) != seen:
                seen, since = len(self.requests), time.monotonic()
            elif time.monotonic() - since >= for_seconds:
                return
        raise AssertionError(f"requests never stopped: {self.requests[-10:]}")

    # -- the proxy -------------------------------------------------------------------------

    def _fault_for(self, request: str) -> Fault | None:
        for inj in self._injections:
            if inj.count > 0 and inj.match(request):
                inj.count -= 1
                self.faults.append((request, inj.fault))
                return inj.fault
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, port = self.upstream.rpartition(":")
        self.open_connections += 1
        self.max_connections = max(self.max_connections, self.open_connections)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            self.open_connections -= 1
            writer.close()
            return
        sent: deque[str] = deque()  # forwarded requests not answered yet, in order
        pump = asyncio.create_task(self._answers(up_reader, writer, sent))
        try:
            await self._requests(reader, writer, up_writer, sent)
        finally:
            self.open_connections -= 1
            pump.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        up_writer: asyncio.StreamWriter, sent: deque[str],
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            request = " ".join(line.split(" ")[:2])
            self.requests.append(request)
            fault = self._fault_for(request)
            if fault == "reset":
                writer.transport.abort()
                return
            if fault in _ANSWERS:
                writer.write(_ANSWERS[fault])
                await writer.drain()
                return
            if fault == "timeout":  # hold it, unanswered, until the client gives up
                with contextlib.suppress(ConnectionError):
                    await reader.read()
                return
            sent.append(request)
            up_writer.write(head)
            await up_writer.drain()

    async def _answers(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, sent: deque[str]
    ) -> None:
        """Pass the agent's answers on, one at a time, noting each (``answers``)."""
        with contextlib.suppress(ConnectionError, asyncio.CancelledError,
                                 asyncio.IncompleteReadError):
            while True:
                head = await src.readuntil(b"\r\n\r\n")
                began = time.time()
                dst.write(head)
                status, headers = _parse_head(head)
                await _forward_body(src, dst, status, headers)
                await dst.drain()
                self.answers.append(Answer(
                    sent.popleft() if sent else "?", status,
                    int(headers.get("x-consul-index", "0") or 0), began, time.time()))
        with contextlib.suppress(Exception):
            dst.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the (lower-cased) headers of an answer's header block."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _forward_body(src: asyncio.StreamReader, dst: asyncio.StreamWriter, status: int,
                        headers: dict[str, str]) -> None:
    """Copy one answer's body, framed by Content-Length, chunks, or the end of the stream."""
    if status in (204, 304) or 100 <= status < 200:
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await src.readuntil(b"\r\n")
            dst.write(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (trailer := await src.readuntil(b"\r\n")) != b"\r\n":
                    dst.write(trailer)
                dst.write(trailer)
                return
            dst.write(await src.readexactly(size + 2))
            await dst.drain()
    length = headers.get("content-length")
    remaining = int(length) if length is not None else -1
    while remaining != 0:
        data = await src.read(262144 if remaining < 0 else min(remaining, 262144))
        if not data:
            return
        dst.write(data)
        await dst.drain()
        if remaining > 0:
            remaining -= len(data)
