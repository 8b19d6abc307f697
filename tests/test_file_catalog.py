"""The YAML/JSON file catalog: parsing, positions of errors, dropped entries."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from ctmpl.config.model import CatalogConfig
from ctmpl.errors import SourceError
from ctmpl.sources.base import parse_service
from ctmpl.sources.file import FileCatalog
from ctmpl.sources.file_parse import read_catalog
from tests.daemon import render_once, write_catalog

GOOD = """
services:
  web:
    - {id: web-2, node: n2, address: 10.0.0.2, port: 80, tags: [b, a, a]}
    - {id: web-1, node: n1, address: 10.0.0.1, port: "81", meta: {v: "1"}, status: warning}
nodes:
  - {node: n1, address: 10.0.1.1}
kv:
  /app/x/: 1
  app/y: {a: 1}
"""


def catalog_at(path: Path) -> FileCatalog:
    return FileCatalog(CatalogConfig(kind="file", file_path=str(path)))


async def fetch(catalog: FileCatalog, query_name: str, *args: object) -> object:
    data, index = await getattr(catalog, query_name)(*args).fetch(0)
    assert index == 1
    return data


async def test_yaml_catalog(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    catalog = catalog_at(path)
    insts = await fetch(catalog, "service", parse_service("web|any"))
    assert [(i.ID, i.Port, i.Tags, i.Status) for i in insts] == [  # type: ignore[attr-defined]
        ("web-1", 81, (), "warning"), ("web-2", 80, ("a", "b"), "passing")]
    assert [i.ID for i in await fetch(catalog, "service", parse_service("web"))] == ["web-2"]  # type: ignore[attr-defined]
    services = await fetch(catalog, "services")
    assert [(s.Name, s.Tags) for s in services] == [("web", ("a", "b"))]  # type: ignore[attr-defined]
    assert [n.Node for n in await fetch(catalog, "nodes")] == ["n1"]  # type: ignore[attr-defined]
    assert (await fetch(catalog, "key", "app/x")).Value == "1"  # type: ignore[attr-defined]
    assert await fetch(catalog, "key", "app/z") is None
    tree = await fetch(catalog, "tree", "app")
    assert [(p.Key, p.Value) for p in tree] == [("x", "1"), ("y", '{"a": 1}')]  # type: ignore[attr-defined]


async def test_json_catalog(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"services": {"api": [{"address": "api.local", "port": 9000}]}}))
    insts = await fetch(catalog_at(path), "service", parse_service("api"))
    assert [(i.ID, i.Address) for i in insts] == [("api-api.local-9000", "api.local")]  # type: ignore[attr-defined]


def test_malformed_yaml_names_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("services:\n  web:\n    - {id: a, port: 1\n  db: [\n")
    with pytest.raises(SourceError, match=rf"^catalog {path}:\d+:\d+: ") as info:
        catalog_at(path)
    assert info.value.exit_code == 5


def test_malformed_json_names_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "services": {\n    "web": [,]\n  }\n}\n')
    with pytest.raises(SourceError, match=rf"^catalog {path}:3:13: "):
        catalog_at(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "top level must be a mapping"), ("servics: {}", "unknown key 'servics'"),
     ("services: [1]", "services must map names"), ("nodes: {a: 1}", "nodes must be a list"),
     ("kv: [1]", "kv must map keys")],
)
def test_wrong_shapes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SourceError, match=message):
        read_catalog(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        catalog_at(tmp_path / "nope.yaml")


def test_empty_file_is_an_error_but_empty_services_are_not(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    with pytest.raises(SourceError, match="empty"):
        read_catalog(path)
    path.write_text("services: {}\n")
    assert read_catalog(path).instances == ()


BAD_ENTRIES = """
services:
  web:
    - {id: ok-1, address: 10.0.0.1, port: 80, tags: [good, "bad tag", "x;}", "nl\\n"],
       meta: {fine: "1", "bad key": "v", inj: "a;b", nl: "x\\ny"}}
    - {id: inj, address: "1.2.3.4;}", port: 80}
    - {id: zero, address: 10.0.0.2, port: 0}
    - {id: big, address: 10.0.0.3, port: 70000}
    - {id: word, address: 10.0.0.4, port: http}
    - {id: status, address: 10.0.0.5, port: 80, status: sick}
    - {id: "id;}", address: 10.0.0.6, port: 80}
    - {id: ok-2, address: web2.internal, port: 8080}
    - "not a mapping"
  "bad name": [{id: s1, address: 10.0.0.7, port: 80}]
  "evil}": [{id: s2, address: 10.0.0.8, port: 80}]
  "nl\\n": [{id: s3, address: 10.0.0.9, port: 80}]
  notalist: 5
nodes:
  - {node: n1, address: 10.0.1.1}
  - {node: "n;2", address: 10.0.1.2}
  - {node: n3, address: "10.0.1.3 x"}
"""


def test_invalid_entries_dropped_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BAD_ENTRIES)
    with caplog.at_level(logging.WARNING):
        snapshot = read_catalog(path)
    kept = [(i.Name, i.ID) for i in snapshot.instances]
    assert kept == [("web", "ok-1"), ("web", "ok-2")]
    ok = snapshot.instances[0]
    assert ok.Tags == ("good",)
    assert dict(ok.Meta) == {"fine": "1"}
    assert [n.Node for n in snapshot.nodes] == ["n1"]
    skipped = [r.getMessage() for r in caplog.records if "entry skipped" in r.getMessage()]
    for needle in ("1.2.3.4;}", "port 0 ", "port 70000", "'http'", "sick", "id;}",
                   "'bad name'", "'evil}'", "notalist", "n;2", "10.0.1.3 x",
                   "services.web[8]: expected a mapping"):
        assert sum(needle in m for m in skipped) == 1, (needle, skipped)
    assert all(str(path) in m for m in skipped)
    caplog.clear()
    read_catalog(path)  # an unchanged bad entry is not reported again
    assert not [r for r in caplog.records if "entry skipped" in r.getMessage()]


async def test_reload_keeps_last_good_data_on_malformed_edit(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    catalog = catalog_at(path)
    path.write_text("services: [\n")
    assert await catalog.reload() is False
    _, generation = await catalog.services().fetch(0)
    assert generation == 1
    path.write_text(GOOD.replace("10.0.0.2", "10.0.0.22"))
    assert await catalog.reload() is True
    data, generation = await catalog.service(parse_service("web")).fetch(0)
    assert generation == 2
    assert data[0].Address == "10.0.0.22"  # type: ignore[index]


def test_a_function_the_file_catalog_lacks_fails_naming_it(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": [{"id": "web-a", "address": "10.0.0.1", "port": 80}]})
    src, dest = tmp_path / "t.ctmpl", tmp_path / "out.conf"
    src.write_text('{{ range node "x" }}{{ end }}')
    done = render_once(["-catalog", f"file://{catalog}"], src, dest)
    assert done.returncode == 14
    assert "catalog.node: not available with the file catalog" in done.stderr


async def test_an_edit_wakes_only_the_changed_services_watches(tmp_path: Path) -> None:
    def write(port: int) -> None:
        path.write_text(json.dumps({"services": {
            "web": [{"id": "w", "address": "10.0.0.1", "port": port}],
            "api": [{"id": "a", "address": "10.0.0.2", "port": 90}]}}))

    path = tmp_path / "catalog.json"
    write(80)
    catalog = catalog_at(path)
    catalog.start()
    waits: list[asyncio.Task[tuple[object, int]]] = []
    try:
        web, api = (catalog.service(parse_service(n)) for n in ("web", "api"))
        api_before, index = await api.fetch(0)
        waits += [asyncio.create_task(q.fetch(index)) for q in (web, api, catalog.services())]
        await asyncio.sleep(0)  # every fetch is waiting now
        write(81)
        await catalog.reload()  # or the file watch already did: either applies the edit once
        web_data, new_index = await asyncio.wait_for(waits[0], 30)
        assert new_index > index and web_data[0].Port == 81  # type: ignore[index]
        await asyncio.wait_for(waits[2], 30)  # services() reads every service: woken too
        await asyncio.sleep(0)
        assert not waits[1].done()  # api is unchanged: its watch sleeps on
        assert catalog.view(api) is api_before  # type: ignore[arg-type]
    finally:
        for task in waits:
            task.cancel()
        await catalog.aclose()
