"""One pass of the pipeline: what it reads of the live file, and what it installs."""

from __future__ import annotations

import os
from pathlib import Path

from ctmpl.brain import Brain
from ctmpl.model import KVPair
from ctmpl.pipeline import Pipeline
from ctmpl.render import TemplateState
from tests.test_render import FakeCatalog, tpl

TEXT = "value {{ key('k') }}\n"


def _state(dest: Path) -> tuple[Brain, TemplateState]:
    brain = Brain()
    brain.set("key(k)", KVPair(Key="k", Path="k", Value="one"))
    return brain, TemplateState(tpl(TEXT, str(dest)))


async def test_an_edit_of_the_live_file_is_noticed_by_the_next_pass(tmp_path: Path) -> None:
    dest = tmp_path / "out.conf"
    brain, state = _state(dest)
    pipeline = Pipeline(FakeCatalog(), brain)
    assert (await pipeline.run_pass([state], now=0.0)).installed == [state]
    assert dest.read_bytes() == b"value one\n"
    # Edited in place, same length, same inode: the render did not change, the file did.
    with open(dest, "r+b") as handle:
        handle.write(b"VALUE")
    state.dirty = True
    result = await pipeline.run_pass([state], now=1.0)
    assert result.installed == [state]
    assert dest.read_bytes() == b"value one\n"


async def test_a_live_file_already_as_rendered_is_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "out.conf"
    brain, state = _state(dest)
    dest.write_bytes(b"value one\n")
    inode = os.stat(dest).st_ino
    result = await Pipeline(FakeCatalog(), brain).run_pass([state], now=0.0)
    assert not result.installed and not result.errors
    assert os.stat(dest).st_ino == inode


async def test_previous_holds_the_live_bytes_from_before_the_pass(tmp_path: Path) -> None:
    dest = tmp_path / "out.conf"
    brain, state = _state(dest)
    dest.write_bytes(b"before\n")
    pipeline = Pipeline(FakeCatalog(), brain)
    seen: dict[Path, bytes | None] = {}

    async def finish(result: object, previous: dict[Path, bytes | None]) -> None:
        seen.update(previous)

    pipeline.finish = finish  # type: ignore[method-assign]
    await pipeline.run_pass([state], now=0.0)
    assert seen == {dest: b"before\n"}
    assert dest.read_bytes() == b"value one\n"

