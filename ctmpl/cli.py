"""Command-line entry point: flags → layered config → runner → exit code.

The runner (and with it the template engine, the proxy controllers, …) is imported once
the configuration is known, which also decides when the catalog's heavy libraries load: in
the background at once, or after the first complete render (``ctmpl.preload``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from ctmpl import gcpolicy, logs, preload
from ctmpl.config.load import build_config
from ctmpl.config.model import Config
from ctmpl.errors import EXIT_INTERNAL, EXIT_USAGE, CtmplError, UsageError
from ctmpl.lifecycle import SignalHandlers, pid_file
from ctmpl.startup import announce

log = logging.getLogger("ctmpl")


def load_config(argv: Sequence[str]) -> Config:
    """Defaults < environment < config files < flags, finalized once."""
    config = build_config(argv, os.environ)
    if not config.templates:
        raise UsageError("no templates: give -template src:dest[:command] or a config file")
    return config


async def _serve(config: Config, argv: Sequence[str]) -> int:
    from ctmpl.runner import Runner

    # What the start pauses or puts off (collections: ``ctmpl.entry``; imports:
    # ``ctmpl.preload``) resumes at the first complete render, or after START_LIMIT seconds
    # without one.
    loop = asyncio.get_running_loop()
    loop.call_later(gcpolicy.START_LIMIT, gcpolicy.resume)
    loop.call_later(gcpolicy.START_LIMIT, preload.after_first_render)
    runner = Runner(config, reload_config=lambda: load_config(argv))
    if not config.once:
        signals = SignalHandlers(runner)
        signals.apply(config)

        def reapply(old: Config, new: Config) -> None:
            if (new.log_level, new.log_format) != (old.log_level, old.log_format):
                logs.setup(new.log_level, new.log_format)
            signals.apply(new)

        runner.on_reload = reapply
    with pid_file(config.pid_file):
        return await runner.run()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ctmpl; returns the documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    logs.setup()
    try:
        config = load_config(args)
        preload.preload(config.catalog)
        logs.setup(config.log_level, config.log_format)
        announce(config)
        return asyncio.run(_serve(config, args))
    except CtmplError as exc:
        print(f"ctmpl: {logs.shorten(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # argparse -help / -version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.exception("internal error: %r", exc)
        return EXIT_INTERNAL
