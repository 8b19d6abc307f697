"""Proxy control: validate, reload or cold-start the proxy after an install."""

from __future__ import annotations

from ctmpl.proxy.base import ProxyController
from ctmpl.proxy.haproxy import HaproxyController
from ctmpl.proxy.nginx import NginxController

__all__ = ["HaproxyController", "NginxController", "ProxyController"]
