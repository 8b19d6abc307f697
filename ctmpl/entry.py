"""The ``ctmpl`` command: ``ctmpl register …`` runs the sidekick, anything else the daemon.

Dispatching before either side is imported keeps each process light: a sidekick (one per
instance) never loads the template engines, proxy controllers and status server.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ctmpl register`` or the daemon; returns the documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["register"]:
        from ctmpl.register.main import main as register

        return register(args[1:])
    from ctmpl import gcpolicy

    gcpolicy.pause_for_start()  # until the first complete render (imports included)
    from ctmpl import memory
    from ctmpl.cli import main as daemon

    memory.large_blocks_to_system()  # the daemon frees answers and renders of many MB
    return daemon(args)
