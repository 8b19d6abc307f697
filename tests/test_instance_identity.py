"""One instance per identity (service + node + ID; for etcd the key), one server line;
an instance without its own address uses its node's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ctmpl.model import Instance, sort_instances
from ctmpl.sources.base import parse_service
from tests.fixtures_consul import ConsulFixture
from tests.test_consul import make
from tests.test_shipped_templates import NGINX, nginx_check
from tests.test_shipped_templates_property import render


def inst(ident: str, node: str = "n1", address: str = "10.0.0.1", name: str = "web") -> Instance:
    return Instance(Name=name, ID=ident, Address=address, Port=80, Node=node)


def test_same_identity_is_one_instance(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    found = sort_instances([inst("a", address="10.0.0.2"), inst("a"), inst("a", node="n2"),
                            inst("a", name="api"), inst("b")])
    assert [(i.Name, i.Node, i.ID, i.Address) for i in found] == [
        ("web", "n1", "a", "10.0.0.1"), ("api", "n1", "a", "10.0.0.1"),
        ("web", "n1", "b", "10.0.0.1"), ("web", "n2", "a", "10.0.0.1")]
    sort_instances([inst("a", address="10.0.0.2"), inst("a")])  # again: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["service web: node n1 instance a is listed more than once; "
                        "keeping 10.0.0.1:80"]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_duplicate_registration_renders_one_server_line(tmp_path: Path) -> None:
    entry = {"id": "web-1", "node": "n1", "address": "10.0.0.1", "port": 80, "tags": ["calico"]}
    services = {"web": [entry, dict(entry), {**entry, "node": "n2"}]}
    (tmp_path / "logs").mkdir()
    text = render(tmp_path, "nginx.conf.j2", {"services": services},
                  listen="127.0.0.1:1", log_dir=str(tmp_path / "logs"))
    assert text.count("server 10.0.0.1:80 ") == 2  # n1/web-1 once, n2/web-1 once
    out = tmp_path / "out.conf"
    out.write_text(text)
    proc = nginx_check(tmp_path, str(out))
    assert proc.returncode == 0, proc.stderr


async def test_consul_same_id_on_two_nodes_and_node_address(consul: ConsulFixture) -> None:
    consul.register_external("node-a", "10.1.0.1", "web-1", "web", address="", port=81)
    consul.register_external("node-b", "10.1.0.2", "web-1", "web", address="10.2.0.2", port=82)
    catalog = make(consul.addr)
    try:
        data, _ = await catalog.service(parse_service("web")).fetch(0)
    finally:
        await catalog.aclose()
    assert isinstance(data, tuple)
    found = {(i.Node, i.ID): (i.Address, i.Port) for i in data if i.Node in ("node-a", "node-b")}
    assert found == {("node-a", "web-1"): ("10.1.0.1", 81), ("node-b", "web-1"): ("10.2.0.2", 82)}
