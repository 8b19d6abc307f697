"""The runner driven through its public API: ``run``, ``request_reload``, ``request_stop``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from ctmpl.config.model import CatalogConfig, Config, NginxConfig, TemplateConfig
from ctmpl.runner import Runner
from tests.daemon import poll_until


async def test_a_reload_keeps_the_nginx_controller_only_when_its_settings_are_unchanged(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("services: {}\n")
    base = Config(
        templates=(TemplateConfig(destination=str(tmp_path / "out"), contents="x"),),
        catalog=CatalogConfig(kind="file", file_path=str(catalog)),
        proxy="nginx",
        dry=True,  # nothing installed, nginx never touched: only the wiring is under test
    )
    other = msgspec.structs.replace(base, nginx=NginxConfig(config=str(tmp_path / "other.conf")))
    configs = iter([base, other])
    run = Runner(base, reload_config=lambda: next(configs))
    task = asyncio.create_task(run.run())
    try:
        await poll_until(lambda: getattr(run, "pipeline", None) is not None)
        first = run.pipeline.proxy
        assert first is not None

        async def reload() -> None:
            before = run.pipeline
            run.request_reload()
            await poll_until(lambda: run.pipeline is not before)

        await reload()
        assert run.pipeline.proxy is first
        await reload()
        assert run.pipeline.proxy is not first and run.pipeline.proxy is not None
        assert run.pipeline.proxy.cfg.config == str(tmp_path / "other.conf")
        run.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
    finally:
        task.cancel()
