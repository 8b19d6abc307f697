"""HTTP to the Consul agent: address and TLS settings, one GET with its error messages.

The client is aiohttp, used directly rather than through py-consul's ``consul.aio``: ctmpl
needs response headers the client does not expose (``X-Consul-LastContact`` for the
``max_stale`` rule), a timeout per request derived from that request's ``wait``, TLS
``server_name`` / ``ca_path``, one bounded connection pool, and its own error messages.

Every failure becomes a ``SourceError`` that starts with the query's key and names the agent's
``host:port``, never a URL or a credential; an error status is an ``HTTPStatusError`` carrying
the status. A ``429`` is a retryable SourceError like any other. The pool holds at most
``max_connections`` connections: requests beyond it wait for a free one.

aiohttp is imported when first used. A daemon talking plain http to its agent puts that
import off until its first complete render (``ctmpl.preload``); meanwhile its GET requests
go through ``ctmpl.sources.consul_plain`` (one connection per request, at most
``max_connections`` at once, answers never compressed), with the same answers and error
messages. The *connection
generation* (``connection_generation``) moves with every transport failure: requests of a
later generation may reach an agent that restarted meanwhile, for callers that must act on
that.

An agent on the same machine (a loopback address) is asked for uncompressed answers
(``Accept-Encoding: identity``): an agent compresses every answer a client accepts
compressed, and at 1,000 services gzip costs the agent 5–10 ms per catalog-wide answer and
ctmpl 1.5–2 ms to inflate, where copying the 1.6 MB over loopback costs less than either.
Any other agent is asked for gzip, which saves the network more than it costs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import ssl
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import msgspec

from ctmpl import preload, telemetry
from ctmpl.config.model import TLS, ConsulConfig
from ctmpl.errors import ConfigError, SourceError
from ctmpl.logs import TRACE
from ctmpl.sources import consul_plain

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNREAD = object()

class HTTPStatusError(SourceError):
    """The agent answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_address(address: str, tls: TLS) -> tuple[str, str]:
    """(base URL, host:port) from ``host:port`` or an http/https URL; https implies TLS."""
    scheme = "https" if tls.enabled else "http"
    text = address.strip()
    if "://" in text:
        given, _, text = text.partition("://")
        scheme = "https" if tls.enabled else given.lower()
        if scheme not in ("http", "https"):
            raise ConfigError(f"consul.address: unsupported scheme {given!r} (use http or https)")
    hostport = text.split("/", 1)[0]
    if not hostport:
        raise ConfigError(f"consul.address: {address!r} has no host")
    if not hostport.rsplit(":", 1)[-1].isdigit() or hostport.endswith("]"):
        hostport += ":8500"
    return f"{scheme}://{hostport}", hostport


def is_loopback(hostport: str) -> bool:
    """True when ``host:port`` names this machine (``localhost`` or a loopback address)."""
    host = hostport.rsplit(":", 1)[0].strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssl_context(tls: TLS) -> ssl.SSLContext:
    """A client TLS context from consul-template's ``ssl`` block."""
    try:
        if tls.verify:
            ctx = ssl.create_default_context(cafile=tls.ca_cert or None, capath=tls.ca_path or None)
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if tls.cert:
            ctx.load_cert_chain(tls.cert, tls.key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"consul.ssl: cannot load certificates: {exc}") from None
    return ctx


def decode_value(raw: Any) -> str:
    """A KV value from its base64 JSON form as text (utf-8, undecodable bytes replaced)."""
    if not raw:
        return ""
    try:
        return base64.b64decode(raw).decode("utf-8", errors="replace")
    except (binascii.Error, TypeError, ValueError):
        return ""


class Answer:
    """One response: the JSON body with the blocking-query headers.

    The body is decoded when first read (``body``, or ``decode_with`` for a typed decoder),
    so that the caller chooses how and when: a catalog-wide answer is large, and decoding
    it while the garbage collector is paused (``ctmpl.sources.consul_poll``) saves
    collections that would scan every new object.
    """

    def __init__(self, body: Any = None, index: int = 0, last_contact: float = 0.0, *,
                 raw: bytes | None = None, invalid: str = "invalid JSON") -> None:
        self._body = body if raw is None else _UNREAD
        self._raw = raw or b"null"
        self._invalid = invalid  # the error message when ``raw`` is not JSON
        self.index = index
        self.last_contact = last_contact  # seconds

    @property
    def body(self) -> Any:
        """The parsed JSON (None for an empty body or a 404); SourceError when invalid."""
        if self._body is _UNREAD:
            self._body = self.decode_with(msgspec.json.decode)
        return self._body

    def decode_with(self, decode: Callable[[bytes], T]) -> T:
        """``decode(raw body)``; SourceError when the body is not JSON (the decoder's own
        errors, e.g. a shape it does not accept, pass through)."""
        try:
            return decode(self._raw)
        except msgspec.ValidationError:
            raise
        except msgspec.DecodeError:
            raise SourceError(self._invalid) from None

    def release(self) -> None:
        """Drop the body (the caller kept what it needs)."""
        self._body, self._raw = None, b"null"


class AgentHTTP:
    """One bounded connection pool to the agent, with token, basic auth and TLS."""

    def __init__(self, consul: ConsulConfig, max_connections: int) -> None:
        self._base, self.hostport = parse_address(consul.address, consul.ssl)
        self._tls = ssl_context(consul.ssl) if self._base.startswith("https") else None
        self._server_name = consul.ssl.server_name or None
        self._max_connections = max_connections
        self._headers = {"X-Consul-Token": consul.token} if consul.token else {}
        if is_loopback(self.hostport):
            self._headers["Accept-Encoding"] = "identity"
        self._login = (consul.auth_username, consul.auth_password)
        self._auth: aiohttp.BasicAuth | None = None  # built with the session
        self._session: aiohttp.ClientSession | None = None
        self._plain_slots = asyncio.Semaphore(max_connections)
        self._plain_in_flight = 0  # requests sent without aiohttp, not answered yet
        self.connection_generation = 0  # moves with every transport failure

    async def get(
        self, key: str, path: str, query: list[tuple[str, str]], timeout: float
    ) -> Answer:
        """GET ``path``; map every failure to a SourceError that starts with ``key``."""
        return await self.request("GET", key, path, query, timeout)

    async def request(
        self, method: str, key: str, path: str, query: list[tuple[str, str]], timeout: float,
        *, body: Any = None,
    ) -> Answer:
        """``method`` on ``path`` with an optional JSON ``body``; errors as for ``get``."""
        if self._tls is None and method == "GET" and body is None and preload.put_off("aiohttp"):
            return await self._plain_get(key, path, query, timeout)
        import aiohttp
        from yarl import URL

        session = self._open()
        url = URL(self._base + quote(path, safe="/"), encoded=True)
        log.log(TRACE, "%s: %s %s %s", key, method, url.path, query)
        telemetry.consul_request()
        # Requests sent before aiohttp was loaded may still hold connections (a long-poll):
        # until they end, aiohttp's requests take the same max_connections slots.
        shared = self._plain_in_flight > 0
        if shared:
            await self._plain_slots.acquire()
        try:
            async with session.request(
                method,
                url,
                params=query,
                json=body,
                headers=self._headers,
                auth=self._auth,
                ssl=self._tls if self._tls is not None else True,
                server_hostname=self._server_name,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                return self._answer(key, resp.status, resp.reason, resp.headers, data)
        except SourceError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            raise self._lost(key, exc, timeout) from None
        finally:
            if shared:
                self._plain_slots.release()

    async def _plain_get(
        self, key: str, path: str, query: list[tuple[str, str]], timeout: float
    ) -> Answer:
        """``get`` without aiohttp (see the module docstring)."""
        target = quote(path, safe="/") + (f"?{urlencode(query, quote_via=quote)}" if query else "")
        log.log(TRACE, "%s: GET %s (plain)", key, target)
        telemetry.consul_request()
        headers = dict(self._headers)
        if self._login[0]:
            login = ":".join(self._login).encode("latin-1")
            headers["Authorization"] = f"Basic {base64.b64encode(login).decode()}"
        address = urlsplit(self._base)
        self._plain_in_flight += 1
        try:
            async with self._plain_slots:
                got = await consul_plain.get(address.hostname or "", address.port or 8500,
                                             target, headers, timeout)
        except (TimeoutError, OSError) as exc:  # AnswerCut is an OSError
            raise self._lost(key, exc, timeout) from None
        finally:
            self._plain_in_flight -= 1
        return self._answer(key, got.status, got.reason, got.headers, got.body)

    async def aclose(self) -> None:
        """Close every connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _answer(self, key: str, status: int, reason: str | None, headers: Mapping[str, str],
                data: bytes) -> Answer:
        index = _int_header(headers, "X-Consul-Index")
        contact = _int_header(headers, "X-Consul-LastContact") / 1000.0
        if status == 404 and key.startswith("kv."):
            return Answer(None, index, contact)
        if status != 200:
            text = data.decode("utf-8", errors="replace").strip().splitlines()
            detail = text[0][:200] if text else reason or ""
            if status == 403:
                message = f"{key}: ACL denied (403: {detail})"
            elif status == 429:
                message = f"{key}: 429 too many requests ({self.hostport})"
            else:
                message = f"{key}: HTTP {status}: {detail}"
            raise HTTPStatusError(message, status)
        return Answer(index=index, last_contact=contact, raw=data,
                      invalid=f"{key}: invalid JSON in the answer from {self.hostport}")

    def _lost(self, key: str, exc: BaseException, timeout: float) -> SourceError:
        """The SourceError of a transport failure (either client's); a new connection
        generation begins."""
        self.connection_generation += 1
        if isinstance(exc, TimeoutError):
            return SourceError(f"{key}: no answer within {timeout:g}s ({self.hostport})")
        return SourceError(f"{key}: {self._describe(exc)}")

    def _describe(self, exc: BaseException) -> str:
        """A one-line reason for a transport failure, without URLs or credentials."""
        where = f"({self.hostport})"
        if isinstance(exc, consul_plain.AnswerCut):
            return f"{exc} {where}"
        cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
        aiohttp = _loaded_aiohttp()
        if isinstance(cause, ssl.SSLError) or (
                aiohttp is not None and isinstance(exc, aiohttp.ClientSSLError)):
            reason = getattr(cause, "reason", None) or getattr(cause, "strerror", None) or cause
            return f"TLS handshake failed: {reason} {where}"
        if aiohttp is not None and isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"connection closed by the agent {where}"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused {where}"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by the agent {where}"
        if isinstance(cause, OSError) and cause.strerror:
            return f"{cause.strerror.lower()} {where}"
        return f"{type(exc).__name__}: {exc} {where}"

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._auth = aiohttp.BasicAuth(*self._login) if self._login[0] else None
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)
            # aiohttp sends a GET again, silently, when the agent closed the kept-alive
            # connection it went out on. A long-poll sent again that way may reach an
            # agent that restarted meanwhile, with the old index, and block for a whole
            # wait; the failure must reach the poll, which asks again without its index.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session


def _loaded_aiohttp() -> Any:
    """The aiohttp module when something imported it already, else None."""
    return sys.modules.get("aiohttp")


def _int_header(headers: Mapping[str, str], name: str) -> int:
    try:
        return int(headers.get(name) or 0)
    except ValueError:
        return 0
