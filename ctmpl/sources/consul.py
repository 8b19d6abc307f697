"""Consul as a service catalog: health-checked services, catalog services and nodes, and KV.

``ConsulCatalog(config)`` reads ``config.consul`` (address, token, basic auth, TLS) and the
shared ``max_stale`` / ``block_query_wait``. Each query is a Consul blocking query: index 0
answers at once, otherwise ``index=<n>&wait=<block_query_wait>s``. With ``max_stale > 0``
reads are ``stale``; an answer whose ``X-Consul-LastContact`` exceeds ``max_stale`` is asked
again without ``stale``, as consul-template does. Retry and backoff live in ``ctmpl.watch``.

The HTTP client is aiohttp, used directly rather than through py-consul's ``consul.aio``:
ctmpl needs response headers the client does not expose (``X-Consul-LastContact`` for the
``max_stale`` rule), a timeout per request derived from that request's ``wait``, TLS
``server_name`` / ``ca_path``, one bounded connection pool, and its own error messages.

Connection budget. The agent serves at most 200 concurrent HTTP connections per client IP
(``limits.http_max_conns_per_client``) and answers the 201st with ``429`` at once, so one
long-poll per watched service stops working past ~200 services (consul-template's failure).
ctmpl never opens more than ``max_connections`` (default 64, well under the limit, leaving
room for other clients on the same host):

- up to ``max_connections - quick - 4`` real long-polls, one per query while slots are free;
- ``quick`` slots (a quarter) for non-blocking reads, which never wait behind long-polls;
- 4 connections for *pulses*: catalog-wide long-polls on ``/v1/catalog/services``,
  ``/v1/catalog/nodes``, ``/v1/health/state/any`` and ``/v1/kv/?keys&separator=/``.

A blocking fetch that finds no free long-poll slot does not queue: it reads at once through a
quick slot and, while its index has not moved, sleeps until a pulse reports a change of the
matching kind (catalog or KV), then reads again. Thousands of watches therefore cost a bounded
number of connections, and a change still reaches every watch within one round trip. Queries
for another datacenter have no pulse and re-read every ``_OTHER_DC_POLL`` seconds instead.
A ``429`` is a retryable SourceError like any other.

Lost connections. Every transport failure bumps ``epoch``: in-flight long-polls are cut short
and every query re-reads without an index before blocking again, with short waits for
``_RECOVERY_WINDOW`` seconds, because a restarted agent's indexes start over and one equal
to an old index would otherwise hold a watch for a whole ``wait``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from ctmpl.config.model import TLS, CatalogConfig
from ctmpl.errors import ConfigError, SourceError
from ctmpl.model import (
    Instance,
    InvalidEntry,
    KVPair,
    Node,
    ServiceSummary,
    clean_meta,
    clean_tags,
    is_safe_name,
    is_valid_address,
    make_instance,
    sort_instances,
)
from ctmpl.sources.base import Query, ServiceSpec, kv_path, relative_pairs

log = logging.getLogger(__name__)

TRACE = 5
DEFAULT_MAX_CONNECTIONS = 64
PULSE_CONNECTIONS = 4
_READ_TIMEOUT = 15.0  # a non-blocking read
_TIMEOUT_MARGIN = 5.0  # on top of wait + wait/16 for a blocking read
_OTHER_DC_POLL = 5.0
# After a lost connection, long-polls use a short wait for a while: an agent that restarted
# (a dev agent starts again from index ~10) may by chance be at the very index a watch
# holds from before, and a full-length poll would then hide the new data for a whole wait.
_RECOVERY_WINDOW = 10.0
_RECOVERY_WAIT = 1.0
_NODE_MAINT = "_node_maintenance"
_SERVICE_MAINT = "_service_maintenance:"

Kind = Literal["catalog", "kv"]
Mode = Literal["quick", "long", "pulse"]  # which connection budget a request uses
T = TypeVar("T")
Params = tuple[tuple[str, str], ...]


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


def aggregated_status(checks: Iterable[Mapping[str, Any]]) -> str:
    """consul-template's HealthChecks.AggregatedStatus: maintenance > critical > warning."""
    seen: set[str] = set()
    for check in checks:
        check_id = str(check.get("CheckID", ""))
        if check_id == _NODE_MAINT or check_id.startswith(_SERVICE_MAINT):
            seen.add("maintenance")
        else:
            status = check.get("Status")
            seen.add(status if status in ("passing", "warning") else "critical")
    for status in ("maintenance", "critical", "warning"):
        if status in seen:
            return status
    return "passing"


def decode_value(raw: Any) -> str:
    """A KV value from its base64 JSON form as text (utf-8, undecodable bytes replaced)."""
    if not raw:
        return ""
    try:
        return base64.b64decode(raw).decode("utf-8", errors="replace")
    except (binascii.Error, TypeError, ValueError):
        return ""


@dataclass
class _Answer:
    body: Any  # parsed JSON, or None for a 404
    index: int
    last_contact: float  # seconds
    epoch: int  # the catalog's connection epoch when the request was sent


class _Seen(Generic[T]):
    """Results per distinct raw entry, so a bad entry is warned about once, not every poll."""

    def __init__(self) -> None:
        self._old: dict[str, T] = {}
        self._new: dict[str, T] = {}

    def get(self, raw: Any, build: Callable[[], T]) -> T:
        key = json.dumps(raw, sort_keys=True, default=str)
        if key not in self._new:
            self._new[key] = self._old[key] if key in self._old else build()
        return self._new[key]

    def done(self) -> None:
        self._old, self._new = self._new, {}


class _Pulse:
    """Catalog-wide long-polls; ``changed()`` is set after any of their indexes moves."""

    def __init__(self, catalog: ConsulCatalog, paths: Iterable[tuple[str, Params]]) -> None:
        self._event = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._follow(catalog, p, q), name=f"consul pulse {p}")
            for p, q in paths
        ]

    def changed(self) -> asyncio.Event:
        """The event the next change sets; take it before reading, await it after."""
        return self._event

    async def _follow(self, catalog: ConsulCatalog, path: str, params: Params) -> None:
        index = 0
        epoch = -1
        while True:
            if epoch != catalog.epoch:
                index = 0
            try:
                answer = await catalog.request(f"pulse({path})", path, params, index, "pulse")
            except SourceError as exc:
                log.log(TRACE, "%s", exc)
                index = 0
                await asyncio.sleep(1.0)
                continue
            if answer.index != index:
                self._event.set()
                self._event = asyncio.Event()
            index = answer.index if answer.index >= index else 0
            epoch = answer.epoch

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(eq=False)
class ConsulQuery:
    """One Consul blocking query; ``decode`` turns the JSON body (None on 404) into data."""

    catalog: ConsulCatalog
    key: str  # stable identifier naming every argument, e.g. health.service(web|passing)
    path: str
    params: Params
    decode: Callable[[Any], object]
    kind: Kind
    dc: str = ""
    epoch: int = -1  # connection epoch of the last answer (see ConsulCatalog.epoch)

    async def fetch(self, index: int) -> tuple[object, int]:
        """(data, X-Consul-Index), blocking while nothing changed past ``index``."""
        answer = await self.catalog.blocking_get(self, index)
        self.epoch = answer.epoch
        return self.decode(answer.body), answer.index


class ConsulCatalog:
    """The Consul backend of the ``Catalog`` protocol (see the module docstring)."""

    name = "consul"

    def __init__(self, config: CatalogConfig, *, max_connections: int | None = None) -> None:
        consul = config.consul
        self._config = config
        self._base, self.hostport = parse_address(consul.address, consul.ssl)
        self._tls = ssl_context(consul.ssl) if self._base.startswith("https") else None
        self._server_name = consul.ssl.server_name or None
        limit = max_connections or int(getattr(consul, "max_connections", 0) or 0)
        self.max_connections = max(limit or DEFAULT_MAX_CONNECTIONS, PULSE_CONNECTIONS + 4)
        quick = max(2, self.max_connections // 4)
        self._long_slots = self.max_connections - quick - PULSE_CONNECTIONS
        self._long_polls = 0
        self._quick = asyncio.Semaphore(quick)
        self._headers = {"X-Consul-Token": consul.token} if consul.token else {}
        self._auth = (
            aiohttp.BasicAuth(consul.auth_username, consul.auth_password)
            if consul.auth_username
            else None
        )
        self._session: aiohttp.ClientSession | None = None
        self._pulses: dict[Kind, _Pulse] = {}
        self.epoch = 0  # bumped by every transport failure: the agent may have restarted
        self._lost: asyncio.Event | None = None
        self._recovering_until = 0.0

    # -- the Catalog protocol --------------------------------------------------------

    def services(self) -> Query:
        """``/v1/catalog/services``: every service name with the union of its tags."""
        key = "catalog.services"
        seen: _Seen[ServiceSummary | None] = _Seen()

        def decode(body: Any) -> tuple[ServiceSummary, ...]:
            out = [seen.get([n, t], partial(_summary, key, n, t))
                   for n, t in sorted((body or {}).items())]
            seen.done()
            return tuple(s for s in out if s is not None)

        return ConsulQuery(self, key, "/v1/catalog/services", (), decode, "catalog")

    def service(self, spec: ServiceSpec) -> Query:
        """``/v1/health/service/<name>``: instances filtered by tag and status."""
        key = f"health.service({spec.key})"
        params: list[tuple[str, str]] = []
        if spec.tag:
            params.append(("tag", spec.tag))
        if spec.statuses == ("passing",):
            params.append(("passing", "1"))
        if spec.dc:
            params.append(("dc", spec.dc))
        if spec.near:
            params.append(("near", spec.near))
        seen: _Seen[Instance | None] = _Seen()

        def decode(body: Any) -> tuple[Instance, ...]:
            out = [seen.get(e, partial(_instance, key, e)) for e in body or []]
            seen.done()
            return sort_instances(i for i in out if i is not None and spec.accepts(i))

        path = f"/v1/health/service/{spec.name}"
        return ConsulQuery(self, key, path, tuple(params), decode, "catalog", spec.dc)

    def nodes(self) -> Query:
        """``/v1/catalog/nodes``: every node of the datacenter."""
        key = "catalog.nodes"
        seen: _Seen[Node | None] = _Seen()

        def decode(body: Any) -> tuple[Node, ...]:
            out = [seen.get(n, partial(_node, key, n)) for n in body or []]
            seen.done()
            return tuple(sorted((n for n in out if n is not None), key=lambda n: n.Node))

        return ConsulQuery(self, key, "/v1/catalog/nodes", (), decode, "catalog")

    def key(self, path: str) -> Query:
        """``/v1/kv/<path>``: one key, None while it does not exist."""
        path = kv_path("key", path)

        def decode(body: Any) -> KVPair | None:
            if not body:
                return None
            return KVPair(Key=path, Path=path, Value=decode_value(body[0].get("Value")))

        return ConsulQuery(self, f"kv.get({path})", f"/v1/kv/{path}", (), decode, "kv")

    def tree(self, prefix: str) -> Query:
        """``/v1/kv/<prefix>/?recurse``: every key below a prefix, relative to it."""
        prefix = kv_path("tree", prefix, allow_empty=True)

        def decode(body: Any) -> tuple[KVPair, ...]:
            items = ((str(e.get("Key", "")), decode_value(e.get("Value"))) for e in body or [])
            return relative_pairs(prefix, items)

        path = f"/v1/kv/{prefix}/" if prefix else "/v1/kv/"
        return ConsulQuery(self, f"kv.tree({prefix})", path, (("recurse", ""),), decode, "kv")

    async def aclose(self) -> None:
        """Stop the pulses and close every connection."""
        pulses, self._pulses = list(self._pulses.values()), {}
        for pulse in pulses:
            await pulse.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- HTTP ---------------------------------------------------------------------------

    async def blocking_get(self, query: ConsulQuery, index: int) -> _Answer:
        """One fetch: a long-poll when a slot is free, else quick reads paced by a pulse."""
        key, path, params = query.key, query.path, query.params
        if index <= 0 or query.epoch != self.epoch:
            # After a lost connection the index may come from an agent that has restarted
            # since (a dev agent starts again near 0): long-polling with it would hang.
            return await self.stale_get(key, path, params, 0, "quick")
        if self._long_polls < self._long_slots:
            self._long_polls += 1
            try:
                return await self.stale_get(key, path, params, index, "long")
            finally:
                self._long_polls -= 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.block_query_wait
        while True:
            changed = None if query.dc else self._pulse(query.kind).changed()
            answer = await self.stale_get(key, path, params, 0, "quick")
            remaining = deadline - loop.time()
            if answer.index != index or remaining <= 0:
                return answer
            with contextlib.suppress(TimeoutError):
                if changed is None:
                    await asyncio.sleep(min(remaining, _OTHER_DC_POLL))
                else:
                    async with asyncio.timeout(remaining):
                        await changed.wait()

    def _pulse(self, kind: Kind) -> _Pulse:
        if kind not in self._pulses:
            if kind == "kv":
                paths: list[tuple[str, Params]] = [("/v1/kv/", (("keys", ""), ("separator", "/")))]
            else:
                paths = [(p, ()) for p in ("/v1/catalog/services", "/v1/catalog/nodes",
                                           "/v1/health/state/any")]
            self._pulses[kind] = _Pulse(self, paths)
        return self._pulses[kind]

    async def stale_get(
        self, key: str, path: str, params: Params, index: int, mode: Mode
    ) -> _Answer:
        """A read that allows stale answers, repeated consistently when they are too old."""
        max_stale = self._config.max_stale
        if max_stale <= 0:
            return await self.request(key, path, params, index, mode)
        answer = await self.request(key, path, (*params, ("stale", "")), index, mode)
        if answer.last_contact > max_stale:
            log.log(TRACE, "%s: last contact %.3fs exceeds max_stale, asking the leader",
                    key, answer.last_contact)
            answer = await self.request(key, path, params, index, mode)
        return answer

    async def request(
        self, key: str, path: str, params: Params, index: int, mode: Mode
    ) -> _Answer:
        """GET ``path``; map every failure to a SourceError that starts with ``key``."""
        query = list(params)
        wait = 0.0
        if index > 0:
            wait = self._config.block_query_wait
            if asyncio.get_running_loop().time() < self._recovering_until:
                wait = min(wait, _RECOVERY_WAIT)
            query += [("index", str(index)), ("wait", f"{max(1, round(wait * 1000))}ms")]
        timeout = wait + wait / 16 + _TIMEOUT_MARGIN if wait else _READ_TIMEOUT
        url = URL(self._base + quote(path, safe="/"), encoded=True)
        if mode == "quick":
            async with self._quick:
                return await self._get(key, url, query, timeout)
        if index <= 0:
            return await self._get(key, url, query, timeout)
        answer = await self._unless_lost(self._get(key, url, query, timeout))
        if answer is None:
            log.log(TRACE, "%s: another request lost the agent; reading afresh", key)
            return await self._get(key, url, list(params), _READ_TIMEOUT)
        return answer

    async def _unless_lost(self, request: Awaitable[_Answer]) -> _Answer | None:
        """Run a long-poll; None when another request loses the agent meanwhile."""
        if self._lost is None:
            self._lost = asyncio.Event()
        poll = asyncio.ensure_future(request)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait((poll, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not poll.done():
                poll.cancel()
                await asyncio.wait((poll,))
        return poll.result() if not poll.cancelled() else None

    def _connection_lost(self) -> None:
        self.epoch += 1
        self._recovering_until = asyncio.get_running_loop().time() + _RECOVERY_WINDOW
        if self._lost is not None:
            self._lost.set()
            self._lost = None

    async def _get(
        self, key: str, url: URL, query: list[tuple[str, str]], timeout: float
    ) -> _Answer:
        session = self._open()
        epoch = self.epoch
        log.log(TRACE, "%s: GET %s %s", key, url.path, query)
        try:
            async with session.get(
                url,
                params=query,
                headers=self._headers,
                auth=self._auth,
                ssl=self._tls if self._tls is not None else True,
                server_hostname=self._server_name,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                return self._answer(key, resp, data, epoch)
        except SourceError:
            raise
        except TimeoutError:
            self._connection_lost()
            raise SourceError(f"{key}: no answer within {timeout:g}s ({self.hostport})") from None
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            self._connection_lost()
            raise SourceError(f"{key}: {self._describe(exc)}") from None

    def _answer(
        self, key: str, resp: aiohttp.ClientResponse, data: bytes, epoch: int
    ) -> _Answer:
        index = _int_header(resp, "X-Consul-Index")
        contact = _int_header(resp, "X-Consul-LastContact") / 1000.0
        if resp.status == 404 and key.startswith("kv."):
            return _Answer(None, index, contact, epoch)
        if resp.status != 200:
            text = data.decode("utf-8", errors="replace").strip().splitlines()
            detail = text[0][:200] if text else resp.reason or ""
            if resp.status == 403:
                raise SourceError(f"{key}: ACL denied (403: {detail})")
            if resp.status == 429:
                raise SourceError(f"{key}: 429 too many requests ({self.hostport})")
            raise SourceError(f"{key}: HTTP {resp.status}: {detail}")
        try:
            body = json.loads(data) if data else None
        except ValueError:
            raise SourceError(f"{key}: invalid JSON in the answer from {self.hostport}") from None
        return _Answer(body, index, contact, epoch)

    def _describe(self, exc: BaseException) -> str:
        """A one-line reason for a transport failure, without URLs or credentials."""
        where = f"({self.hostport})"
        cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
        if isinstance(exc, aiohttp.ClientSSLError) or isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "reason", None) or getattr(cause, "strerror", None) or cause
            return f"TLS handshake failed: {reason} {where}"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"connection closed by the agent {where}"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused {where}"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by the agent {where}"
        if isinstance(cause, OSError) and cause.strerror:
            return f"{cause.strerror.lower()} {where}"
        return f"{type(exc).__name__}: {exc} {where}"

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session


def _int_header(resp: aiohttp.ClientResponse, name: str) -> int:
    try:
        return int(resp.headers.get(name, "0"))
    except ValueError:
        return 0


def _summary(key: str, name: Any, tags: Any) -> ServiceSummary | None:
    if not isinstance(name, str) or not is_safe_name(name):
        log.warning("%s: service name %r is not a safe identifier (dropped)", key, name)
        return None
    return ServiceSummary(Name=name, Tags=clean_tags(f"{key} {name}", tags or []))


def _instance(key: str, entry: Mapping[str, Any]) -> Instance | None:
    svc = entry.get("Service") or {}
    node = entry.get("Node") or {}
    try:
        return make_instance(
            f"{key} {svc.get('ID')}",
            name=svc.get("Service", ""),
            id=svc.get("ID", ""),
            address=svc.get("Address") or node.get("Address", ""),
            port=svc.get("Port"),
            tags=svc.get("Tags") or (),
            meta=svc.get("Meta"),
            node=node.get("Node", ""),
            node_address=node.get("Address", ""),
            status=aggregated_status(entry.get("Checks") or ()),
        )
    except InvalidEntry as err:
        log.warning("%s (dropped)", err)
        return None


def _node(key: str, raw: Mapping[str, Any]) -> Node | None:
    name, address = raw.get("Node"), raw.get("Address")
    if not isinstance(name, str) or not is_safe_name(name):
        log.warning("%s: node name %r is not a safe identifier (dropped)", key, name)
        return None
    if not isinstance(address, str) or not is_valid_address(address):
        log.warning("%s %s: address %r is not an IP address or hostname (dropped)", key, name,
                    address)
        return None
    return Node(
        Node=name,
        Address=address,
        ID=str(raw.get("ID") or ""),
        Datacenter=str(raw.get("Datacenter") or ""),
        Meta=clean_meta(f"{key} {name}", raw.get("Meta")),
    )
