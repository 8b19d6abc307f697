"""etcd key prefixes are taken exactly as written, leading slash included, from the URL and
from HCL; an empty prefix with keys under its slash/no-slash twin is reported once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ctmpl.register.layout import registration_key
from ctmpl.sources.base import parse_service
from ctmpl.sources.etcd import slash_variant
from ctmpl.sources.registrations import etcd_prefix
from tests.daemon import render_once
from tests.fixtures_etcd import EtcdServer
from tests.foundation_util import load
from tests.test_etcd import make_catalog

TEMPLATE = """{% for s in service("web") %}{{ s.ID }} {{ s | hostPort }}
{% endfor %}"""


@pytest.mark.parametrize(("text", "want"), [
    ("/services", "/services"), ("/services/", "/services"), ("services", "services"),
    ("services/", "services"), ("/", "/"), ("", ""), ("//x//", "//x"),
])
def test_prefix_kept_as_written(text: str, want: str) -> None:
    assert etcd_prefix(text) == want


def test_url_path_is_the_prefix() -> None:
    assert load(["-catalog", "etcd://h:2379/services"]).catalog.etcd.prefix == "/services"
    assert load(["-catalog", "etcd://h:2379/service/"]).catalog.etcd.prefix == "/service"
    assert load(["-catalog", "etcd://h:2379"]).catalog.etcd.prefix == ""


def test_hcl_prefix_is_the_same(tmp_path: Path) -> None:
    for written, want in (("/services", "/services"), ("services/", "services")):
        config = tmp_path / "c.hcl"
        config.write_text(f'catalog = "etcd://h:2379"\netcd {{ prefix = "{written}" }}\n')
        assert load(["-config", str(config)]).catalog.etcd.prefix == want


def test_slash_variant_and_registration_keys() -> None:
    assert slash_variant("/services") == "services"
    assert slash_variant("services") == "/services"
    assert slash_variant("/") == "" and slash_variant("") == ""
    assert registration_key("/services", "web", "a", "h", 1) == "/services/web/a"
    assert registration_key("/", "web", "a", "h", 1) == "/web/a"


def test_leading_slash_keys_are_found_end_to_end(tmp_path: Path, etcd: EtcdServer) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")  # etcdctl put /services/web/a …
    etcd.put("/services/web/b", '{"Address": "::1", "Port": 81}')
    etcd.put("services/web/c", "10.0.0.3:80")  # a different key: not under /services
    etcd.put("/service/10.0.0.9:90", "10.0.0.9:90")  # dockreg's flat /service/<ip>:<port>
    src, dest = tmp_path / "t.j2", tmp_path / "out"
    src.write_text(TEMPLATE)
    done = render_once(["-catalog", f"etcd://{etcd.endpoint}/services"], src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "a 10.0.0.1:80\nb [::1]:81\n"
    flat = tmp_path / "flat.j2"
    flat.write_text(TEMPLATE.replace('"web"', '"service"'))
    done = render_once(["-catalog", f"etcd://{etcd.endpoint}/service"], flat, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "10.0.0.9:90 10.0.0.9:90\n"


@pytest.mark.parametrize(("keys", "prefix", "other"), [
    ("services/web/a", "/services", "services/"),
    ("/services/web/a", "services", "/services/"),
])
async def test_empty_prefix_with_keys_next_door_warns_once(
    etcd: EtcdServer, caplog: pytest.LogCaptureFixture, keys: str, prefix: str, other: str
) -> None:
    caplog.set_level(logging.WARNING)
    etcd.put(keys, "10.0.0.1:80")
    catalog = make_catalog(etcd.endpoint, prefix=prefix)
    try:
        for _ in range(3):
            data, _ = await catalog.service(parse_service("web")).fetch(0)
            assert data == ()
        for _ in range(300):
            if any("holds no keys" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    finally:
        await catalog.aclose()
    warnings = [r.getMessage() for r in caplog.records if "holds no keys" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"prefix {prefix!r} holds no keys, but {other!r} holds 1" in warnings[0]


async def test_no_warning_when_nothing_is_next_door(
    etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = make_catalog(etcd.endpoint, prefix="/nothing-here")
    try:
        data, _ = await catalog.services().fetch(0)
        assert data == ()
        check = catalog._variant_check
        assert check is not None
        await check  # the look next door has finished
    finally:
        await catalog.aclose()
    assert not [r for r in caplog.records if "holds no keys" in r.getMessage()]
