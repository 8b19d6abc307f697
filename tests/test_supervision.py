"""No silent death and honest logs: dying tasks stop the daemon, JSON logs keep tracebacks,
long values are cut, catalog-wide poll failures warn and recoveries are logged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from pathlib import Path

import pytest

from ctmpl import logs, tasks
from ctmpl.brain import Brain
from ctmpl.config.model import CatalogConfig, Config, Retry, TemplateConfig, Wait
from ctmpl.errors import SourceError, TemplateError
from ctmpl.model import KVPair
from ctmpl.runner import Runner
from ctmpl.sources.consul_http import Answer
from ctmpl.sources.consul_poll import Poll
from ctmpl.watch import Watcher, WatchPolicy
from tests.daemon import poll_until
from tests.foundation_util import load, template


class OneQuery:
    key = "q"

    async def fetch(self, index: int) -> tuple[object, int]:
        if index:
            await asyncio.sleep(3600)
        return "data", 1


async def test_a_watch_task_that_dies_is_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashed: list[str] = []
    group = tasks.TaskGroup(lambda name, exc: crashed.append(f"{name}: {exc}"))

    def emit(key: str, data: object) -> None:
        raise RuntimeError("a bug in a callback")

    watcher = Watcher(WatchPolicy(), emit, lambda k, e: None)
    async with tasks.running(group):
        try:
            watcher.add(OneQuery())
            await poll_until(lambda: bool(crashed))
        finally:
            await watcher.aclose()
    assert crashed == ["watch q: a bug in a callback"]
    record = next(r for r in caplog.records if "died" in r.getMessage())
    assert record.levelno == logging.ERROR and record.exc_info


async def test_the_daemon_exits_non_zero_when_an_internal_task_dies(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("kv:\n  k: v\n")

    class BrokenBrain(Brain):
        def set(self, key: str, data: object) -> bool:
            raise RuntimeError("bug")

    config = Config(
        templates=(TemplateConfig(destination=str(tmp_path / "o"), contents='{{ key("k") }}'),),
        catalog=CatalogConfig(kind="file", file_path=str(catalog)),
        wait=Wait(),
    )
    runner = Runner(config, brain=BrokenBrain())
    assert await asyncio.wait_for(runner.run(), 20) == 1


def test_json_logs_keep_the_traceback_in_a_field() -> None:
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed %s", ("a",), None)
        record.exc_info = sys.exc_info()
    data = json.loads(formatter.format(record))
    assert data["message"] == "failed a"
    assert "ValueError: boom" in data["traceback"] and "Traceback" in data["traceback"]


def test_log_messages_and_quoted_values_are_cut() -> None:
    huge = "x" * 25_000_000
    assert len(logs.quote(huge)) < 200 and "25000000 characters" in logs.quote(huge)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("ctmpl.test.cut")
    logger.addHandler(handler)
    try:
        logger.error("value %s", huge)
    finally:
        logger.removeHandler(handler)
    assert len(stream.getvalue()) < logs.MAX_MESSAGE + 200


def test_a_template_error_never_echoes_a_huge_value() -> None:
    class Catalog:
        def key(self, path: str) -> object:
            return OneQuery()

    brain = Brain()
    brain.set("q", KVPair(Key="k", Path="k", Value="x" * 200_000 + "!"))
    tpl = template('{{ service(key("k")) }}')
    with pytest.raises(TemplateError) as caught:
        tpl.render(Catalog(), brain)  # type: ignore[arg-type]
    assert "service(" in str(caught.value) and len(str(caught.value)) < 500


class FlakyRequest:
    """Refuses twice, answers once, then blocks (a long-poll with nothing new)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, key: str, path: str, params: object, index: int) -> Answer:
        self.calls += 1
        if self.calls <= 2:
            raise SourceError(f"{key}: connection refused")
        if self.calls > 3:
            await asyncio.sleep(3600)
        return Answer(body=[], index=5, last_contact=0.0)


async def test_a_failing_catalog_wide_poll_warns_once_and_logs_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    request = FlakyRequest()
    poll = Poll(request, "catalog.feed(ui/nodes)", "/v1/internal/ui/nodes", (),
                retry=Retry(backoff=0.001, max_backoff=0.01),
                on_answer=lambda answer: None, on_error=lambda error: False)
    task = asyncio.create_task(poll.run())
    try:
        for _ in range(200):
            if request.calls >= 4:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "connection refused" in warnings[0].getMessage()
    assert any("recovered after 2 failed attempt(s)" in r.getMessage()
               and r.levelno == logging.INFO for r in caplog.records)


def test_a_changed_token_file_changes_the_catalog_settings(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    first = load(["-consul-token-file", str(token)])
    token.write_text("two\n")
    second = load(["-consul-token-file", str(token)])
    assert second.catalog.consul.token == "two"
    assert first.catalog != second.catalog  # so SIGHUP reopens the catalog with the new token
