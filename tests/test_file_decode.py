"""Hostile catalog files: alias bombs, oversized and deeply nested files, parsing off the loop."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.config.model import CatalogConfig
from ctmpl.errors import SourceError
from ctmpl.sources import file_decode
from ctmpl.sources.base import parse_service
from ctmpl.sources.file import FileCatalog
from ctmpl.sources.file_decode import MAX_BYTES, MAX_DEPTH, decode
from ctmpl.sources.file_parse import read_catalog
from tests.daemon import render_daemons, write_atomic, write_catalog
from tests.foundation_util import run_cli


def billion_laughs() -> str:
    """The classic YAML alias bomb: nine levels of nine aliases, under 700 bytes."""
    lines = ["kv:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        refs = ",".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 700
    with pytest.raises(SourceError, match=r"^catalog .*c\.yaml:\d+:\d+: more than \d+ values"):
        read_catalog(path)


def test_ordinary_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "kv:\n"
        "  defaults: &web {node: n1, port: 80, tags: [calico]}\n"
        "services:\n"
        "  web:\n"
        "    - {<<: *web, id: web-1, address: 10.0.0.1}\n"
        "    - {<<: *web, id: web-2, address: 10.0.0.2, port: 81}\n"
    )
    snapshot = read_catalog(path)
    assert [(i.ID, i.Port, i.Tags) for i in snapshot.instances] == [
        ("web-1", 80, ("calico",)), ("web-2", 81, ("calico",))]


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(SourceError, match=r"larger than the 8 MiB limit"):
        read_catalog(path)
    assert MAX_BYTES == 8 * 1024 * 1024  # the README documents this number


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.json", '{"kv": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
        ("c.json", '{"kv": {"x": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}}"),
        ("c.yaml", "kv:\n  x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"),
        ("c.yaml", "kv:\n" + "".join(" " * (2 * i + 2) + f"k{i}:\n" for i in range(200))),
    ],
)
def test_deep_nesting_is_refused(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SourceError, match="nested deeper than"):
        read_catalog(path)


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("c.json", '{"kv": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}", "nested deeper"),
        ("c.yaml", billion_laughs(), "more than"),
        ("c.yaml", "kv: {x: 1" + "0" * 5000 + "}\n", "bad int"),
        ("c.json", '{"kv": {"x": 1' + "0" * 5000 + "}}", "c.json"),
        ("c.yaml", "1: a\nservices: {}\n", "unknown key '1'"),
    ],
)
def test_hostile_file_exits_5_with_one_line(
    tmp_path: Path, name: str, text: str, needle: str
) -> None:
    (tmp_path / name).write_text(text)
    (tmp_path / "t.j2").write_text("x\n")
    proc = run_cli(["-once", "-catalog", f"file://{name}", "-template", "t.j2:out.conf"],
                   tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ctmpl: ")]
    assert proc.returncode == 5, proc.stderr
    assert len(errors) == 1 and errors[0].startswith("ctmpl: catalog "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in errors[0]
    assert not (tmp_path / "out.conf").exists()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(JSONISH, st.booleans())
def test_decoder_agrees_with_yaml_safe_load(data: Any, flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow)
    assert decode(Path("c.yaml"), text) == yaml.safe_load(text)


def test_timestamps_stay_text() -> None:
    assert decode(Path("c.yaml"), "a: 2024-01-02\n") == {"a": "2024-01-02"}


async def test_reparse_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a re-read is parsing, the loop keeps running and closing does not wait for it."""
    path = tmp_path / "c.yaml"
    path.write_text("services: {}\n")
    catalog = FileCatalog(CatalogConfig(kind="file", file_path=str(path)))
    catalog.start()
    started, release = threading.Event(), threading.Event()
    real = file_decode.decode

    def slow_decode(where: Path, text: str) -> Any:
        started.set()
        release.wait(30)
        return real(where, text)

    monkeypatch.setattr("ctmpl.sources.file_parse.decode", slow_decode)
    path.write_text(json.dumps({"services": {"web": [{"address": "10.0.0.1", "port": 80}]}}))
    catalog.notify_threadsafe()
    for _ in range(600):  # the loop runs while the parse blocks
        if started.is_set():
            break
        await asyncio.sleep(0.05)
    assert started.is_set()
    await asyncio.wait_for(catalog.aclose(), 10)  # does not wait for the blocked parse
    release.set()


async def test_reparse_applies_the_last_edit(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("services: {}\n")
    catalog = FileCatalog(CatalogConfig(kind="file", file_path=str(path)))
    catalog.start()
    try:
        for port in range(1, 6):
            path.write_text(f"services: {{web: [{{address: 10.0.0.1, port: {port}}}]}}\n")
            catalog.notify_threadsafe()
        query = catalog.service(parse_service("web"))
        for _ in range(400):
            data, _ = await query.fetch(0)
            if data and data[0].Port == 5:  # type: ignore[index]
                break
            await asyncio.sleep(0.05)
        assert data[0].Port == 5  # type: ignore[index]
    finally:
        await catalog.aclose()


def test_daemon_keeps_last_good_file_and_stops_promptly(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": [{"id": "a", "address": "10.0.0.1", "port": 80}]})
    template = "{% for i in service('web') %}server {{ i.Address }}:{{ i.Port }};\n{% endfor %}"
    with render_daemons(tmp_path, template, ["-catalog", f"file://{catalog}"]) as start:
        proc = start()
        proc.wait_for("server 10.0.0.1:80;\n")
        write_atomic(catalog, billion_laughs())
        proc.wait_log("more than 1000000 values")
        big = tmp_path / "big.yaml"
        with big.open("wb") as handle:
            handle.truncate(50 * 1024 * 1024)
        big.replace(catalog)
        proc.wait_log("larger than the 8 MiB limit")
        assert proc.read() == "server 10.0.0.1:80;\n"
        assert proc.stop(timeout=10) == 0
