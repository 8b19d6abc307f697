"""Reconcile: after a failed reload the proxy is brought to the installed config once more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path

from ctmpl.cli import load_config
from ctmpl.errors import ProxyError
from ctmpl.runner import Runner
from tests.daemon import poll_until, write_atomic


class FakeProxy:
    """Records what the pipeline asks; the reloads listed in ``fail`` raise ProxyError."""

    name = "fake"

    def __init__(self, fail: set[int]) -> None:
        self.calls: list[str] = []
        self._fail = fail

    def check_staged(self, changes: Mapping[Path, bytes]) -> None:
        pass

    def apply(self) -> str:
        self.calls.append("apply")
        if self.calls.count("apply") in self._fail:
            raise ProxyError("fake: reload did not take effect")
        return "reloaded"

    def reconcile(self, files: Iterable[Path]) -> str:
        self.calls.append("reconcile")
        return "reloaded"


async def test_failed_reload_is_reconciled_once(tmp_path: Path) -> None:
    catalog, src, dest = tmp_path / "catalog.yaml", tmp_path / "t.j2", tmp_path / "out.conf"
    catalog.write_text("kv: {v: '1'}\n")
    src.write_text("{{ key('v') }}\n")
    config = load_config(["-catalog", f"file://{catalog}", "-template", f"{src}:{dest}",
                          "-wait", "0s", "-proxy", "nginx", "-log-level", "err"])
    runner = Runner(config)
    proxy = FakeProxy(fail={2})
    runner.ops.nginx = lambda cfg: proxy  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run())
    try:
        await poll_until(lambda: proxy.calls == ["apply"])  # first render: applied, no reconcile
        expected = ["apply"]
        for version, then in (("2", ["apply", "reconcile"]), ("3", ["apply"]), ("4", ["apply"])):
            write_atomic(catalog, f"kv: {{v: '{version}'}}\n")
            expected += then
            # A reconcile runs in the same turn as the reload before it: when the next
            # change's reload is seen, every earlier reconcile has been recorded.
            want = len(expected)
            await poll_until(lambda: len(proxy.calls) >= want)  # noqa: B023
        assert proxy.calls == expected
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 20)
