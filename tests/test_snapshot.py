"""One render, one snapshot: every file written comes from a single catalog version."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctmpl.cli import load_config
from ctmpl.install import install
from ctmpl.runner import Runner
from tests.daemon import poll_until, write_atomic
from tests.fixtures_etcd import EtcdServer

TEMPLATE = """\
kv {{ key("version") }}
{% for i in service("web") %}
web {{ i.Meta.v }}
{% endfor %}
{% for i in service("api") %}
api {{ i.Meta.v }}
{% endfor %}
"""

# A burst: per catalog version, the pause before writing it (s) and how many instances.
BURSTS = st.lists(
    st.tuples(st.sampled_from([0, 0, 0.002, 0.01, 0.03, 0.12]), st.integers(1, 3)),
    min_size=1, max_size=12,
)


def catalog_text(version: int, count: int) -> str:
    """Version ``version`` of the catalog: the version is in KV and in every instance."""
    def instances(name: str, base: int) -> list[dict[str, object]]:
        return [{"id": f"{name}-{i}", "address": "10.0.0.1", "port": base + i,
                 "meta": {"v": str(version)}} for i in range(count)]

    return yaml.safe_dump({"services": {"web": instances("web", 8000),
                                        "api": instances("api", 9000)},
                           "kv": {"version": str(version)}})


async def run_burst(work: Path, burst: list[tuple[float, int]]) -> None:
    catalog, src, dest = work / "catalog.yaml", work / "t.j2", work / "out.conf"
    for path in (catalog, dest):
        path.unlink(missing_ok=True)
    catalog.write_text(catalog_text(0, 1))
    src.write_text(TEMPLATE)
    config = load_config(["-catalog", f"file://{catalog}", "-template", f"{src}:{dest}",
                          "-wait", "0s", "-log-level", "err"])
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        await poll_until(dest.exists)
        for version, (pause, count) in enumerate(burst, start=1):
            await asyncio.sleep(pause)
            write_atomic(catalog, catalog_text(version, count))
        last = len(burst)
        await poll_until(lambda: dest.exists() and f"kv {last}\n" in dest.read_text())
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 20)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(burst=BURSTS)
def test_every_written_file_is_one_catalog_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, burst: list[tuple[float, int]]
) -> None:
    written = record_installs(monkeypatch)
    with contextlib.suppress(FileNotFoundError):
        (tmp_path / "out.conf").unlink()
    asyncio.run(run_burst(tmp_path, burst))
    assert_one_version_each(written)
    for text in written:
        count = sum(line.startswith("web ") for line in text.splitlines())
        assert count == sum(line.startswith("api ") for line in text.splitlines())


def record_installs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file content the pipeline installs, in order."""
    written: list[str] = []

    def recording_install(path: Path, content: bytes, *args: object) -> bool:
        written.append(content.decode())
        return install(path, content, *args)  # type: ignore[arg-type]

    monkeypatch.setattr("ctmpl.pipeline.install", recording_install)
    return written


def assert_one_version_each(written: list[str]) -> None:
    assert written
    for text in written:
        versions = {line.split()[1] for line in text.splitlines()}
        assert len(versions) == 1, f"one file mixes catalog versions {sorted(versions)}:\n{text}"


ETCD_TEMPLATE = """\
{% for i in service("web") %}
web {{ i.Meta.v }}
{% endfor %}
{% for i in service("api") %}
api {{ i.Meta.v }}
{% endfor %}
"""


def test_etcd_services_of_one_render_share_a_revision(
    tmp_path: Path, etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """web and api change together in one transaction; no file may show them apart."""
    written = record_installs(monkeypatch)
    rng = random.Random(17)

    def version(v: int) -> dict[str, str]:
        return {f"/services/{name}/a": json.dumps({"Address": "10.0.0.1", "Port": port,
                                                  "Meta": {"v": str(v)}})
                for name, port in (("web", 80), ("api", 81))}

    async def main() -> None:
        etcd.put_all(version(0))
        src, dest = tmp_path / "t.j2", tmp_path / "out.conf"
        src.write_text(ETCD_TEMPLATE)
        config = load_config(["-catalog", f"etcd://{etcd.endpoint}/services",
                              "-template", f"{src}:{dest}", "-wait", "0s", "-log-level", "err"])
        runner = Runner(config)
        task = asyncio.create_task(runner.run())
        try:
            await poll_until(dest.exists)
            for v in range(1, 41):
                await asyncio.to_thread(etcd.put_all, version(v))
                await asyncio.sleep(rng.choice([0, 0, 0.01, 0.05, 0.12]))
            await poll_until(lambda: "web 40\n" in dest.read_text())
        finally:
            runner.request_stop()
            await asyncio.wait_for(task, 20)

    asyncio.run(main())
    assert_one_version_each(written)
