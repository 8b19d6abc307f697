"""An emptied catalog file is an error that keeps the last good files; only an explicit
``services: {}`` / ``services: []`` means "no services"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ctmpl.errors import SourceError
from ctmpl.sources.file_parse import read_catalog
from tests.daemon import write_atomic, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv
from tests.test_daemon_nginx import instance, serving_a

NOT_A_CATALOG = [
    ("# every service went away\n# (comments only)\n", "no catalog document"),
    ("---\n", "no catalog document"),
    ("null\n", "no catalog document"),
    ("~\n", "no catalog document"),
    ("services:\n", "services has no value"),
    ("services: null\nkv: {a: b}\n", "services has no value"),
    ("{}\n", "no services key"),
    ("nodes:\n", "nodes has no value"),
    ("kv:\n", "kv has no value"),
]


@pytest.mark.parametrize(("text", "message"), NOT_A_CATALOG)
def test_not_a_catalog_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SourceError, match=rf"^catalog {path}: .*{message}.*services: {{}}"):
        read_catalog(path)


@pytest.mark.parametrize("text", ["services: {}\n", "services: []\n", '{"services": {}}'])
def test_explicit_empty_catalog_means_no_services(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json" if text.startswith("{") else tmp_path / "c.yaml"
    path.write_text(text)
    assert read_catalog(path).instances == ()


def test_kv_only_catalog_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kv: {app/x: y}\n")
    snapshot = read_catalog(path)
    assert snapshot.instances == ()
    assert snapshot.kv == {"app/x": "y"}


def test_non_empty_list_of_services_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("services: [web]\n")
    with pytest.raises(SourceError, match="services must map names"):
        read_catalog(path)


@pytest.mark.parametrize("text", ["# emptied by an editor\n", "services:\n", "---\n"])
def test_emptied_catalog_keeps_nginx_serving(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend], text: str
) -> None:
    with serving_a(tmp_path, nginx_env, make_backend) as (proc, catalog, a, b):
        live = (nginx_env.conf_d / "upstream.conf").read_text()
        write_atomic(catalog, text)
        proc.wait_log("keeping the last good catalog")
        write_catalog(catalog, {"web": [instance(a), instance(b)]})
        proc.wait_log("nginx reloaded")
        assert (nginx_env.conf_d / "upstream.conf").read_text() != live
        assert "127.0.0.1:9 down" not in proc.text()
    first = proc.text().split("keeping the last good catalog")[0]
    assert first.count("rendered") == 1, first


def test_instance_without_address_uses_its_nodes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "services:\n"
        "  web:\n"
        "    - {id: w1, node: n1, port: 80}\n"
        "    - {id: w2, node: n2, address: '', port: 80}\n"
        "    - {id: w3, node: n1, address: 10.0.0.9, port: 80}\n"
        "    - {id: w4, node: ghost, port: 80}\n"
        "nodes:\n"
        "  - {node: n1, address: 10.0.1.1}\n"
        "  - {node: n2, address: '::1'}\n"
    )
    found = {i.ID: (i.Address, i.NodeAddress) for i in read_catalog(path).instances}
    assert found == {"w1": ("10.0.1.1", "10.0.1.1"), "w2": ("::1", "::1"),
                     "w3": ("10.0.0.9", "10.0.1.1")}
