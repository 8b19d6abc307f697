"""One pass of the pipeline for a reload group: render → check → install → reload/commands.

Each stage is its own module (``render``, ``check``, ``install``, the proxy controller,
``commands``); this one only sequences them and decides what a failure
means: in ``-once`` mode the first failure becomes the exit code, in daemon mode it is
logged and the last good files stay live.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ctmpl import telemetry
from ctmpl.brain import Brain
from ctmpl.check import check_staged, install_checked, rollback
from ctmpl.commands import Command, run_commands
from ctmpl.errors import CheckFailed, CtmplError, ProxyError
from ctmpl.install import (
    InstallOptions,
    Unread,
    backup_path,
    install,
    read_current,
    read_small,
    undo_backup,
)
from ctmpl.proxy.base import ProxyController
from ctmpl.render import TemplateState
from ctmpl.rollback import rollback_env
from ctmpl.shrink import ShrinkGuard
from ctmpl.sources.base import Catalog

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    """What one pass did: installed states, and the errors it met (in order)."""

    installed: list[TemplateState] = field(default_factory=list)
    errors: list[CtmplError] = field(default_factory=list)
    proxy_applied: bool = False  # the proxy was reloaded or started with what was installed
    proxy_failed: bool = False  # a reload or start failed: the proxy may run an older config
    backups: dict[Path, bytes | None] = field(default_factory=dict)  # dest.bak before the pass


class Pipeline:
    """Sequences the stages for the templates of one reload group."""

    def __init__(
        self,
        catalog: Catalog,
        brain: Brain,
        *,
        dry: bool = False,
        proxy: ProxyController | None = None,
        shrink: ShrinkGuard | None = None,
    ) -> None:
        self.catalog = catalog
        self.brain = brain
        self.dry = dry
        self.proxy = proxy
        self.shrink = shrink

    def admitted(
        self, state: TemplateState, content: bytes, current: bytes | None, now: float
    ) -> bool:
        """False when the shrink guard holds this render back (the live file stays)."""
        if self.shrink is None or self.dry or state.instances is None:
            return True  # a template without service() calls drops no instances
        name, dest = state.template.name, state.destination
        if content == current:
            self.shrink.accept(name, dest, state.instances)
            return True
        return self.shrink.admit(name, dest, state.instances, now, has_file=bool(current))

    async def install_state(
        self, state: TemplateState, content: bytes, current: bytes | None, result: PassResult
    ) -> None:
        """Check and install one rendered template over ``current`` (the live bytes)."""
        cfg = state.template.config
        dest = state.destination
        if self.dry:
            if content != state.last_dry:
                state.last_dry = content
                sys.stdout.write(f"> {dest}\n{content.decode('utf-8')}")
                sys.stdout.flush()
            return
        if current == content or (current is None and not content
                                   and state.template.empty_is_absent):
            log.debug("%s: %s unchanged", state.template.name, dest)
            telemetry.installed(state.template.name, str(dest))
            return
        # Rollback copies stay in memory (``previous``); a dest.bak is written only on request.
        options = InstallOptions(
            perms=cfg.perms, backup=cfg.backup, create_dirs=cfg.create_dest_dirs
        )
        try:
            if cfg.check and cfg.check_mode == "installed":
                changed = await install_checked(cfg.check, dest, content, options)
            else:
                if cfg.check:
                    await check_staged(cfg.check, dest, content, options.create_dirs)
                changed = await asyncio.to_thread(install, dest, content, options, current)
        except CtmplError as exc:
            log.error("%s: %s; the last good %s stays live", state.template.name, exc, dest)
            _failed(state, exc)
            result.errors.append(exc)
            return
        if cfg.check:
            telemetry.check_ok()
        telemetry.installed(state.template.name, str(dest))
        if changed:
            log.info("rendered %s → %s", state.template.name, dest)
            result.installed.append(state)

    async def finish(self, result: PassResult, previous: dict[Path, bytes | None]) -> None:
        """After installs: nginx check + reload (rolling back on a failed check), then commands."""
        if not result.installed:
            return
        if self.proxy is not None and not await self._apply_proxy(result, previous):
            return
        commands = [
            Command(s.template.config.command, s.template.config.command_timeout)
            for s in result.installed
        ]
        if not any(c.text for c in commands):
            return
        installed = {s.destination: previous.get(s.destination) for s in result.installed}
        with rollback_env(installed) as env:
            result.errors.extend(await run_commands(commands, env))

    async def _apply_proxy(self, result: PassResult, previous: dict[Path, bytes | None]) -> bool:
        assert self.proxy is not None
        try:
            outcome = await asyncio.to_thread(self.proxy.apply)
        except CheckFailed as exc:
            log.error("%s; rolling back %d file(s)", exc, len(result.installed))
            telemetry.reloaded("rejected")
            for state in result.installed:
                dest = state.destination
                await asyncio.to_thread(rollback, dest, previous.get(dest))
                if state.destination in result.backups:
                    await asyncio.to_thread(
                        undo_backup, state.destination, result.backups[state.destination]
                    )
                _failed(state, exc)
            result.installed.clear()
            result.errors.append(exc)
            return False
        except ProxyError as exc:
            log.error("%s", exc)
            telemetry.reloaded("failed")
            result.errors.append(exc)
            result.proxy_failed = True
            return True
        telemetry.check_ok()
        telemetry.reloaded(outcome)
        log.info("%s %s", self.proxy.name, outcome)
        result.proxy_applied = True
        return True

    async def _check_proxy(self, pending: list[tuple[TemplateState, bytes, bytes | None]],
                           result: PassResult) -> bool:
        """Let the proxy judge every changed file together before any is installed."""
        changes = {s.destination: c for s, c, current in pending if c != current}
        if self.proxy is None or self.dry or not changes:
            return True
        try:
            await asyncio.to_thread(self.proxy.check_staged, changes)
        except CtmplError as exc:
            log.error("%s; the last good config stays live", exc)
            if isinstance(exc, CheckFailed):
                telemetry.check_failed(str(exc))
            result.errors.append(exc)
            return False
        return True

    async def run_pass(self, states: list[TemplateState], now: float) -> PassResult:
        """Render every dirty state, install what changed, then reload/run commands once."""
        result = PassResult()
        previous: dict[Path, bytes | None] = {}
        pending: list[tuple[TemplateState, bytes, bytes | None]] = []
        for state in states:
            if not state.dirty or state.awaiting(self.brain):
                continue
            try:
                content = state.render(self.catalog, self.brain, now)
            except CtmplError as exc:
                log.error("%s; the last good file stays live", exc)
                _failed(state, exc)
                result.errors.append(exc)
                continue
            if content is None:
                continue
            current = read_small(state.destination)
            if isinstance(current, Unread):
                current = await asyncio.to_thread(read_current, state.destination)
            if not self.admitted(state, content, current, now):
                continue
            previous[state.destination] = current
            if state.template.config.backup:
                result.backups[state.destination] = await asyncio.to_thread(
                    read_current, backup_path(state.destination)
                )
            pending.append((state, content, current))
        if not await self._check_proxy(pending, result):
            return result
        for state, content, current in pending:
            await self.install_state(state, content, current, result)
        await self.finish(result, previous)
        return result


def _failed(state: TemplateState, exc: CtmplError) -> None:
    """Record a failed render, check or install of ``state``."""
    if isinstance(exc, CheckFailed):
        telemetry.check_failed(str(exc))
    telemetry.render_failed(state.template.name, str(state.destination), str(exc))
