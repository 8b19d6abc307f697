"""nginx as ctmpl's exec child (``-proxy nginx -exec "nginx -g 'daemon off;'"``).

ctmpl never starts this nginx itself (the exec supervisor does, after the first complete
render), but every reload is still the controller's: ``nginx -t`` first, then SIGHUP to
the master and a wait for new workers. The master is the one the pid file names or, when
the pid file says nothing useful, the child itself if it is an nginx master.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

from ctmpl.config.model import NginxConfig
from ctmpl.proxy import nginx_procs as procs
from ctmpl.proxy.nginx import NginxController, Outcome, Reconciled

log = logging.getLogger(__name__)


class ForegroundNginx(NginxController):
    """An nginx master that runs in the foreground as the exec child."""

    def __init__(self, cfg: NginxConfig, child_pid: Callable[[], int | None]) -> None:
        super().__init__(cfg)
        self._child_pid = child_pid

    def master(self) -> psutil.Process | None:
        """The pid file's live master, else the exec child when it is a live nginx master."""
        master = super().master()
        pid = self._child_pid()
        if master is not None or pid is None:
            return master
        try:
            child = psutil.Process(pid)
        except psutil.Error:
            return None
        return child if procs.is_live_master(child) else None

    def apply(self) -> Outcome:
        """Check, then reload the running child; before it runs, checking is all there is."""
        self.test()
        master = self.master()
        if master is None:
            log.debug("nginx: no master yet; the exec child starts after the first render")
            return "checked"
        self.reload(master)
        return "reloaded"

    def reconcile(self, files: Iterable[Path]) -> Reconciled:
        """Reconcile a running child; before it runs there is nothing to do (it starts next)."""
        if self.master() is None:
            return "current"
        return super().reconcile(files)
