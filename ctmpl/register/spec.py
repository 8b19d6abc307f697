"""What ``ctmpl register`` is told to check and register, parsed and validated.

Pure parsing (no I/O), used by the config schema so that a bad ``-address`` or ``-check``
is reported with the flag or the config file that said it.

Check specs:

- ``tcp`` (the default): connect to the registered address; ``tcp://host:port``: elsewhere;
- ``http`` / ``https``: GET ``/`` on the registered address; ``http:/health``: GET that path
  on it; ``http://host:port/path`` (or https): any URL;
- ``cmd:COMMAND``: run ``COMMAND`` with /bin/sh; exit status 0 is healthy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ctmpl.errors import ConfigError
from ctmpl.model import InvalidEntry, is_valid_address, parse_port

CheckKind = Literal["tcp", "http", "cmd"]
CHECK_FORMS = "tcp, tcp://host:port, http, http:/path, http[s]://host[:port]/path or cmd:COMMAND"
_STATUS_RANGE = re.compile(r"(\d{3})(?:-(\d{3}))?")


@dataclass(frozen=True)
class CheckSpec:
    """One health check: a TCP target, an HTTP URL with accepted statuses, or a command."""

    kind: CheckKind
    host: str = ""  # tcp
    port: int = 0  # tcp
    url: str = ""  # http
    command: str = ""  # cmd
    status_low: int = 200  # http: accepted status range, inclusive
    status_high: int = 399

    def describe(self) -> str:
        """How logs name the check, e.g. ``tcp 10.0.0.7:8080``."""
        if self.kind == "tcp":
            return f"tcp {join_host_port(self.host, self.port)}"
        if self.kind == "http":
            return f"http {self.url}"
        return f"command {self.command!r}"


def split_address(what: str, text: Any) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port), validated as the catalogs validate it."""
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected host:port, got {text!r}")
    host, port = "", ""
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if sep and rest.startswith(":"):
            host, port = inner, rest[1:]
    else:
        head, sep, tail = text.rpartition(":")
        if sep and ":" not in head:
            host, port = head, tail
    if not host or not is_valid_address(host):
        raise ConfigError(f"{what}: {text!r} is not ip:port, hostname:port or [ipv6]:port")
    try:
        return host, parse_port(port)
    except InvalidEntry as exc:
        raise ConfigError(f"{what}: {text!r}: {exc}") from None


def join_host_port(host: str, port: int) -> str:
    """The inverse of ``split_address``: brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def as_address(what: str, value: Any) -> str:
    """Schema converter: a valid ``host:port``, kept as text."""
    split_address(what, value)
    return str(value)


def parse_status_range(what: str, value: Any) -> tuple[int, int]:
    """``200-399`` or ``200`` → inclusive range of HTTP statuses (100-599)."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    match = _STATUS_RANGE.fullmatch(text)
    low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
    if not (100 <= low <= high <= 599):
        raise ConfigError(f"{what}: {value!r} is not a status or range like 200-399")
    return low, high


def as_status_range(what: str, value: Any) -> str:
    """Schema converter: a valid status range, kept as text."""
    parse_status_range(what, value)
    return str(value).strip()


def as_check(what: str, value: Any) -> str:
    """Schema converter: a check spec of a known form, kept as text."""
    parse_check(what, value, "127.0.0.1", 1)
    return str(value).strip()


def parse_check(
    what: str, value: Any, host: str, port: int, status: tuple[int, int] = (200, 399)
) -> CheckSpec:
    """A CheckSpec from its text; ``host``/``port`` are the registered address."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith("cmd:"):
        command = text[4:].strip()
        if not command:
            raise ConfigError(f"{what}: cmd: needs a command, e.g. cmd:curl -fs localhost/health")
        return CheckSpec("cmd", command=command)
    if text in ("", "tcp"):
        return CheckSpec("tcp", host=host, port=port)
    if text.startswith("tcp://"):
        target_host, target_port = split_address(what, text[6:].rstrip("/"))
        return CheckSpec("tcp", host=target_host, port=target_port)
    url = _http_url(what, text, join_host_port(host, port))
    return CheckSpec("http", url=url, status_low=status[0], status_high=status[1])


def _http_url(what: str, text: str, address: str) -> str:
    scheme, _, rest = text.partition(":")
    if scheme not in ("http", "https"):
        raise ConfigError(f"{what}: {text!r} is not a check; use {CHECK_FORMS}")
    if not rest:
        return f"{scheme}://{address}/"
    if rest.startswith("/") and not rest.startswith("//"):
        return f"{scheme}://{address}{rest}"
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname or ""
    if not host or not is_valid_address(host) or port in (-1, 0):
        raise ConfigError(f"{what}: {text!r} is not a valid http(s) URL with a host")
    return text
