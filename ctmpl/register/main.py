"""``ctmpl register …``: settings → checker + registry → sidekick loop → exit code."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from ctmpl import logs
from ctmpl.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_UNHEALTHY,
    EXIT_USAGE,
    CtmplError,
)
from ctmpl.lifecycle import pid_file
from ctmpl.register.base import Registry
from ctmpl.register.checks import Checker
from ctmpl.register.settings import RegisterConfig, load_register_config
from ctmpl.register.sidekick import Sidekick

log = logging.getLogger("ctmpl.register")


def make_registry(config: RegisterConfig, op_timeout: float) -> Registry:
    """The etcd, ZooKeeper or Consul registration ``config`` asks for (importing only its
    client)."""
    if config.catalog.kind in ("etcd", "zk"):
        from ctmpl.register.layout import registration_key, registration_value

        value = registration_value(config.host, config.port, config.tags, config.meta,
                                   config.format == "json")
        if config.catalog.kind == "zk":
            from ctmpl.register.zk_registry import ZkRegistry

            zk = config.catalog.zk
            path = registration_key(zk.prefix or "/", config.service, config.id, config.host,
                                    config.port)
            return ZkRegistry(zk, path, value, config.ttl, op_timeout)
        from ctmpl.register.etcd_registry import EtcdRegistry

        key = registration_key(config.catalog.etcd.prefix, config.service, config.id,
                               config.host, config.port)
        return EtcdRegistry(config.catalog.etcd, key, value, int(config.ttl), op_timeout)
    from ctmpl.register.consul_registry import ConsulRegistry

    return ConsulRegistry(
        config.catalog.consul, service=config.service, id=config.id, host=config.host,
        port=config.port, tags=config.tags, meta=config.meta, ttl=config.ttl,
        check_name=f"ctmpl register: {config.check.describe()}", timeout=op_timeout,
    )


def make_sidekick(config: RegisterConfig) -> Sidekick:
    """The sidekick for ``config``; registry calls get a third of the TTL, 1-5 s."""
    op_timeout = min(5.0, max(1.0, config.ttl / 3))
    return Sidekick(
        Checker(config.check, config.timeout), make_registry(config, op_timeout),
        interval=config.interval, rise=config.rise, fall=config.fall, op_timeout=op_timeout,
    )


async def _serve(config: RegisterConfig) -> int:
    sidekick = make_sidekick(config)
    log.info("%s: checking %s every %gs (rise %d, fall %d, ttl %gs)", sidekick.registry.what,
             config.check.describe(), config.interval, config.rise, config.fall, config.ttl)
    if config.once:
        return 0 if await sidekick.once() else EXIT_UNHEALTHY
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sidekick.request_stop)
    with pid_file(config.pid_file):
        return await sidekick.run()


def main(argv: Sequence[str]) -> int:
    """Run ``ctmpl register``; returns the documented exit code."""
    logs.setup()
    try:
        config = load_register_config(argv)
        logs.setup(config.log_level, config.log_format)
        return asyncio.run(_serve(config))
    except CtmplError as exc:
        print(f"ctmpl register: {logs.shorten(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # -help / -version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        log.exception("internal error: %r", exc)
        return EXIT_INTERNAL
