"""Run the commands of templates whose files changed: de-duplicated, in config order, timed.

A command runs through ``/bin/sh -c`` as in consul-template, in its own process group so
a timeout kills the whole tree. Output is logged line by line, never interpreted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ctmpl.errors import CommandFailed
from ctmpl.shell import TimedOut, run_shell

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Command:
    """A shell command with its timeout in seconds."""

    text: str
    timeout: float = 30.0


def unique_in_order(commands: Iterable[Command]) -> list[Command]:
    """Drop repeats (same text) keeping the first position, as consul-template does."""
    seen: set[str] = set()
    result = []
    for command in commands:
        if command.text and command.text not in seen:
            seen.add(command.text)
            result.append(command)
    return result


async def run_command(command: Command, env: dict[str, str] | None = None) -> None:
    """Run one command; CommandFailed on a non-zero exit, a signal or a timeout."""
    log.info("running command: %s", command.text)
    try:
        result = await run_shell(command.text, command.timeout, env)
    except TimedOut:
        raise CommandFailed(
            f"command {command.text!r}: timed out after {command.timeout:g}s (killed)"
        ) from None
    for line in result.output.splitlines():
        log.info("command %r: %s", command.text, line)
    if result.returncode != 0:
        last = result.output.splitlines()[-1] if result.output else ""
        detail = f": {last}" if last else ""
        raise CommandFailed(
            f"command {command.text!r}: exited with status {result.returncode}{detail}"
        )
    log.info("command %r: succeeded", command.text)


async def run_commands(
    commands: Iterable[Command], env: dict[str, str] | None = None
) -> list[CommandFailed]:
    """Run de-duplicated commands in order; return the failures (every command runs)."""
    failures = []
    for command in unique_in_order(commands):
        try:
            await run_command(command, env)
        except CommandFailed as exc:
            log.error("%s", exc)
            failures.append(exc)
    return failures

