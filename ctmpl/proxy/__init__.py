"""Proxy control: validate, reload or cold-start the proxy after an install."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctmpl.proxy.base import ProxyController

if TYPE_CHECKING:
    from ctmpl.proxy.haproxy import HaproxyController
    from ctmpl.proxy.nginx import NginxController

__all__ = ["HaproxyController", "NginxController", "ProxyController"]


def __getattr__(name: str) -> Any:
    """The controllers, imported when first used: a daemon loads only its own proxy's."""
    if name == "HaproxyController":
        from ctmpl.proxy.haproxy import HaproxyController

        return HaproxyController
    if name == "NginxController":
        from ctmpl.proxy.nginx import NginxController

        return NginxController
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
