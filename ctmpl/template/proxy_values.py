"""Template helpers for values pasted into proxy directives: addresses and typed metadata.

Catalog metadata passes the source boundary as long as it cannot break out of a quoted
string, but a template that pastes ``weight={{ i.Meta.weight }}`` into an nginx ``server``
line still turns ``"1 down"`` or ``"1 #"`` into an injected parameter. These helpers check
a value at the point of use, for the type the directive expects; a value that does not fit
is replaced by the template's default with one warning naming the service, instance and
key. ``hostPort`` formats an address for both families (``10.0.0.1:80``, ``[::1]:80``).

Each helper is a global (``metaInt(inst, "weight", 1, 1, 100)``) and a filter with the
instance first (``inst | metaInt("weight", 1, 1, 100)``).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from ctmpl.errors import TemplateError
from ctmpl.model import warn_once

# nginx and HAProxy both read these: a number with an optional unit. Directives counted in
# seconds (nginx's fail_timeout) refuse "ms".
_DURATION = {"ms": re.compile(r"^[0-9]{1,6}(ms|s|m|h|d)?$"),
             "s": re.compile(r"^[0-9]{1,6}(s|m|h|d)?$")}
# What HAProxy accepts in a server or backend name, and nginx in a parameter value.
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_INT = re.compile(r"^-?[0-9]{1,18}$")


def host_port(address: Any, port: Any = None) -> str:
    """``host:port`` for IPv4 and host names, ``[v6]:port`` for IPv6.

    ``address`` is an instance (its ``Address`` and ``Port``) or an address text with
    ``port``. An IPv6 address that already carries brackets is not bracketed twice.
    """
    if port is None and hasattr(address, "Address"):
        address, port = address.Address, address.Port
    text = str(address)
    if port is None or port == "":
        raise TemplateError(f"hostPort({text!r}): no port given")
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    return f"[{host}]:{port}" if _is_ipv6(host) else f"{host}:{port}"


@functools.lru_cache(maxsize=65536)
def _is_ipv6(host: str) -> bool:
    """Cached: a re-render asks again for every unchanged instance."""
    if ":" not in host:
        return False
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _where(inst: Any, key: str) -> str:
    return f"service {getattr(inst, 'Name', '?')} instance {getattr(inst, 'ID', '?')}: meta {key}"


def _meta(inst: Any, key: str) -> str | None:
    meta = getattr(inst, "Meta", None)
    if meta is None and isinstance(inst, dict):
        meta = inst
    value = (meta or {}).get(key)
    return None if value is None or value == "" else str(value)


def meta_int(inst: Any, key: str, default: int, low: int, high: int) -> int:
    """The metadata value ``key`` as an integer in ``low..high``, else ``default``."""
    value = _meta(inst, key)
    if value is None:
        return default
    if _INT.fullmatch(value.strip()) and low <= int(value) <= high:
        return int(value)
    warn_once(f"{_where(inst, key)}={value!r} is not an integer in {low}-{high}; "
              f"using {default}")
    return default


def meta_duration(inst: Any, key: str, default: str, finest: str = "ms") -> str:
    """The metadata value ``key`` as a duration (``30``, ``500ms``, ``10s``, ``2m``, ``1h``).

    ``finest="s"`` refuses milliseconds, for directives counted in seconds.
    """
    if finest not in _DURATION:
        raise TemplateError(f"metaDuration: finest unit must be 'ms' or 's', not {finest!r}")
    value = _meta(inst, key)
    if value is None:
        return default
    if _DURATION[finest].fullmatch(value):
        return value
    example = "10s or 2m" if finest == "s" else "10s or 500ms"
    warn_once(f"{_where(inst, key)}={value!r} is not a duration (like {example}); "
              f"using {default}")
    return default


def meta_token(inst: Any, key: str, default: str) -> str:
    """The metadata value ``key`` when it is one word of ``[A-Za-z0-9_.:-]``, else default."""
    value = _meta(inst, key)
    if value is None:
        return default
    if _TOKEN.fullmatch(value):
        return value
    warn_once(f"{_where(inst, key)}={value!r} is not a single word of letters, digits, "
              f"'_.:-'; using {default!r}")
    return default


def is_token(value: Any) -> bool:
    """True when ``value`` is one word of ``[A-Za-z0-9_.:-]`` (a safe proxy identifier)."""
    return isinstance(value, str) and bool(_TOKEN.fullmatch(value))


def server_names(instances: Iterable[Any]) -> list[tuple[str, Any]]:
    """(name, instance) pairs with names unique in the list and safe as HAProxy server names.

    The name is the instance ID when it is a token and not taken yet; otherwise a stable
    name derived from the node and ID, so the same instance keeps its name across renders.
    """
    pairs: list[tuple[str, Any]] = []
    used: set[str] = set()
    for inst in instances:
        ident = str(getattr(inst, "ID", ""))
        name = ident if is_token(ident) else ""
        if not name or name in used:
            digest = hashlib.sha1(f"{inst.Node}\0{ident}".encode()).hexdigest()[:10]
            base = ident if is_token(ident) else "srv"
            name = f"{base[:100]}-{digest}"
        pairs.append((name, inst))
        used.add(name)
    return pairs


def dns_name(name: Any) -> str:
    """A service name as a host-name part: lower case, ``-`` and ``_`` kept, no empty label.

    ``web-app`` stays ``web-app``; ``a..b`` and ``x.`` (valid service names) become ``a.b``
    and ``x``, which nginx accepts in ``server_name`` (it refuses ``x..example.com``).
    """
    labels = [label for label in str(name).lower().split(".") if label]
    return ".".join(labels)


def zone_size(count: int) -> str:
    """An nginx upstream ``zone`` size that fits ``count`` servers (64k + 2k per server).

    Measured on nginx 1.22: a server takes about 0.8 KiB of the zone with a long IPv6
    address; 64k fails at about 70 servers (``ngx_slab_alloc() failed``).
    """
    return f"{64 + 2 * max(0, int(count))}k"


def case_twins(services: Any, tag: Any = "") -> dict[str, tuple[str, ...]]:
    """For services carrying ``tag`` (every service when ``tag`` is empty) whose names differ
    only in case: name -> the names before it in sorted order. An nginx upstream name
    ignores case, so only one of them can be published (see ``anyInstances``).

    The answer for the same ``services`` tuple (an unchanged catalog answer) is kept, so a
    re-render over thousands of services does not walk them again.
    """
    memo = _TWINS
    if memo and memo[0][0] is services and memo[0][1] == tag:
        return dict(memo[0][2])
    by_fold: dict[str, list[str]] = {}
    for name in sorted(str(s.Name) for s in services if not tag or tag in s.Tags):
        by_fold.setdefault(name.lower(), []).append(name)
    answer = tuple((name, tuple(names[:k])) for names in by_fold.values() if len(names) > 1
                   for k, name in enumerate(names) if k)
    if type(services) is tuple:
        memo[:] = [(services, tag, answer)]
    return dict(answer)


_TWINS: list[tuple[Any, Any, tuple[tuple[str, tuple[str, ...]], ...]]] = []  # case_twins' last


@pass_context
def any_instances(context: Context, names: Any, tag: Any = None) -> bool:
    """True when any of the services ``names`` has instances: ``service(name, tag=tag)``
    (a watched call, as in the template)."""
    service = context.resolve("service")
    return any(service(str(name), tag=tag) for name in names)


HELPERS: dict[str, Callable[..., Any]] = {
    "caseTwins": case_twins,
    "anyInstances": any_instances,
    "hostPort": host_port,
    "metaInt": meta_int,
    "metaDuration": meta_duration,
    "metaToken": meta_token,
    "isToken": is_token,
    "serverNames": server_names,
    "zoneSize": zone_size,
    "dnsName": dns_name,
}
