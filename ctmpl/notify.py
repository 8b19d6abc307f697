"""systemd's readiness protocol (``Type=notify``), in the few lines sd_notify(3) documents.

systemd passes a datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace); each message is newline-separated ``KEY=VALUE`` lines such as
``READY=1``, ``RELOADING=1``, ``STOPPING=1`` and ``STATUS=…``. Without the variable every
call is a no-op, so the daemon calls these unconditionally. A lost message is logged at
DEBUG and never stops the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes:
    # "@name" names a socket in the abstract namespace: a leading NUL byte.
    return b"\0" + value[1:].encode() if value.startswith("@") else value


def notify(*lines: str) -> bool:
    """Send ``lines`` to ``$NOTIFY_SOCKET``; False when unset or the send failed."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target or not lines:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(target))
            sock.sendall("\n".join(lines).encode("utf-8", "replace"))
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", target, exc)
        return False
    return True


def status(text: str) -> bool:
    """``STATUS=`` line shown by ``systemctl status`` (one line, no newlines)."""
    return notify("STATUS=" + " ".join(text.split()))


def ready(text: str) -> bool:
    """The service is up: first complete render done and the proxy started."""
    return notify("READY=1", "STATUS=" + " ".join(text.split()))


def reloading() -> bool:
    """A reload (SIGHUP) began; systemd waits for the next ``READY=1``."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")


def stopping() -> bool:
    """The daemon is shutting down."""
    return notify("STOPPING=1", "STATUS=stopping")
