"""consul-template's functions in a .ctmpl on the etcd and file catalogs (not only Consul)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon import render_once, write_catalog
from tests.fixtures_etcd import EtcdServer

TEMPLATE = """\
{{ range services }}{{ .Name }}{{ .Tags }} {{ end }}|
{{ range service "calico.web" }}{{ .ID }}={{ .Address }}:{{ .Port }} {{ .Status }} {{ .Tags }}
{{ end }}{{ range ls "app" }}{{ .Key }}={{ .Value }};{{ end }} {{ keyOrDefault "app/none" "d" }}
{{ with $c := key "app/conf" | parseJSON }}{{ $c.replicas | multiply 2 }}{{ end }}
"""
EXPECTED = """\
db[] web[calico] |
web-a=10.0.0.1:80 passing [calico]
web-b=10.0.0.2:8080 passing [calico]
conf={"replicas":2};mode=blue; d
4
"""


def test_ctmpl_on_etcd(tmp_path: Path, etcd: EtcdServer) -> None:
    etcd.put("/services/web/web-a", json.dumps({"Address": "10.0.0.1", "Port": 80,
                                               "Tags": ["calico"]}))
    etcd.put("/services/web/web-b", json.dumps({"Address": "10.0.0.2", "Port": 8080,
                                               "Tags": ["calico"]}))
    etcd.put("/services/db/db-1", "10.0.1.1:5432")
    etcd.put("app/mode", "blue")
    etcd.put("app/conf", '{"replicas":2}')
    src, dest = tmp_path / "t.ctmpl", tmp_path / "out.conf"
    src.write_text(TEMPLATE)
    done = render_once(["-catalog", f"etcd://{etcd.endpoint}/services"], src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == EXPECTED


def test_ctmpl_on_the_file_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {
        "web": [{"id": "web-a", "address": "10.0.0.1", "port": 80, "tags": ["calico"]},
                {"id": "web-b", "address": "10.0.0.2", "port": 8080, "tags": ["calico"]}],
        "db": [{"id": "db-1", "address": "10.0.1.1", "port": 5432}],
    }, kv={"app/mode": "blue", "app/conf": '{"replicas":2}'})
    src, dest = tmp_path / "t.ctmpl", tmp_path / "out.conf"
    src.write_text(TEMPLATE)
    done = render_once(["-catalog", f"file://{catalog}"], src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == EXPECTED
    src.write_text('{{ range node "x" }}{{ end }}')
    done = render_once(["-catalog", f"file://{catalog}"], src, dest)
    assert done.returncode == 14
    assert "catalog.node: not available with the file catalog" in done.stderr
