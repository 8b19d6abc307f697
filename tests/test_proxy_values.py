"""Template helpers for proxy directives: hostPort, typed metadata, server names, zone size."""

from __future__ import annotations

import logging

import pytest

from ctmpl.errors import QueryError, TemplateError
from ctmpl.model import Instance
from ctmpl.sources.base import parse_service, service_by_name
from ctmpl.template.proxy_values import (
    dns_name,
    host_port,
    meta_duration,
    meta_int,
    meta_token,
    server_names,
    zone_size,
)
from tests.test_engine import render


def inst(ident: str = "i1", address: str = "10.0.0.1", node: str = "n1", **meta: str) -> Instance:
    return Instance(Name="web", ID=ident, Address=address, Port=80, Meta=meta, Node=node)


@pytest.mark.parametrize(("address", "port", "want"), [
    ("10.0.0.1", 80, "10.0.0.1:80"), ("::1", 8080, "[::1]:8080"),
    ("[::1]", 8080, "[::1]:8080"), ("2001:db8::1", "443", "[2001:db8::1]:443"),
    ("db.internal", 5432, "db.internal:5432"), ("::ffff:10.0.0.1", 1, "[::ffff:10.0.0.1]:1"),
])
def test_host_port(address: str, port: object, want: str) -> None:
    assert host_port(address, port) == want


def test_host_port_of_an_instance_and_in_templates() -> None:
    assert host_port(inst(address="::1")) == "[::1]:80"
    assert render("{{ hostPort('::1', 80) }} {{ '::2' | hostPort(81) }}") == b"[::1]:80 [::2]:81\n"
    with pytest.raises(TemplateError, match="no port"):
        host_port("::1")


@pytest.mark.parametrize(("value", "want"), [
    (None, 1), ("", 1), ("5", 5), ("100", 100), ("0", 1), ("101", 1), ("1 down", 1),
    ("1 #", 1), ("1.5", 1), ("-1", 1), (" 7", 7),
])
def test_meta_int(value: str | None, want: int) -> None:
    item = inst(**({} if value is None else {"weight": value}))
    assert meta_int(item, "weight", 1, 1, 100) == want


def test_meta_int_warns_once_naming_the_instance(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        assert meta_int(inst("once-1", weight="9 backup"), "weight", 2, 1, 10) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["service web instance once-1: meta weight='9 backup' is not an "
                        "integer in 1-10; using 2"]


@pytest.mark.parametrize(("value", "finest", "want"), [
    ("30", "ms", "30"), ("500ms", "ms", "500ms"), ("10s", "s", "10s"), ("2m", "s", "2m"),
    ("1h", "s", "1h"), ("500ms", "s", "60"), ("10 s", "ms", "60"), ("10s;", "ms", "60"),
    ("1234567s", "ms", "60"), ("", "ms", "60"), ("-1", "ms", "60"),
])
def test_meta_duration(value: str, finest: str, want: str) -> None:
    assert meta_duration(inst(t=value), "t", "60", finest) == want


def test_meta_duration_rejects_an_unknown_unit() -> None:
    with pytest.raises(TemplateError, match="finest unit"):
        meta_duration(inst(), "t", "1s", "us")


@pytest.mark.parametrize(("value", "want"), [
    ("v1", "v1"), ("a.b:c-d_e", "a.b:c-d_e"), ("a b", "dflt"), ("a#", "dflt"),
    ("é", "dflt"), ("x" * 129, "dflt"),
])
def test_meta_token(value: str, want: str) -> None:
    assert meta_token(inst(k=value), "k", "dflt") == want


def test_server_names_unique_stable_and_safe() -> None:
    items = [inst("web", node="n1"), inst("web", node="n2"), inst("a@b"), inst("ok")]
    names = [name for name, _ in server_names(items)]
    assert names[0] == "web" and names[3] == "ok"
    assert names[1].startswith("web-") and names[2].startswith("srv-")
    assert len(set(names)) == 4
    assert [name for name, _ in server_names(items)] == names


def test_dns_name_and_zone_size() -> None:
    assert dns_name("Web.App") == "web.app"
    assert dns_name("a..b.") == "a.b"
    assert zone_size(0) == "64k" and zone_size(5000) == "10064k"


def test_service_by_name_keeps_dots_and_has_its_own_key() -> None:
    dotted = service_by_name("a.b", "calico")
    assert (dotted.name, dotted.tag) == ("a.b", "calico")
    assert dotted.key != parse_service("calico.a.b").key
    assert service_by_name("web", "calico").key == parse_service("calico.web").key
    with pytest.raises(QueryError):
        service_by_name("bad name", "calico")
    with pytest.raises(QueryError):
        service_by_name("web", "")
