"""Property test: the shipped nginx and HAProxy templates against hostile random catalogs.

Whatever names, IDs, addresses (IPv4, IPv6, garbage), ports, tags and metadata a registry
holds, and with 0-2,000 instances in one service: ``nginx -t`` and ``haproxy -c`` accept
the output, every line has one of the shapes the template writes (nothing smuggled in),
and every valid instance is present with the metadata it asked for or the default.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctmpl.brain import Brain
from ctmpl.config.model import CatalogConfig, TemplateConfig
from ctmpl.sources.file import FileCatalog
from ctmpl.template.engine import Template
from ctmpl.template.proxy_values import host_port
from tests.foundation_util import ROOT

NGINX = shutil.which("nginx")
HAPROXY = shutil.which("haproxy")

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
NASTY = ["a;}", "1 down", "1 #", "x\ny", "a b", "{", "$v", "#", "web@1", "é", "",
         "'q'", "\\", "1;", "-1", "99999", "1.5", "10s", "500ms", "2m", "0", "7", "x" * 300,
         "\t", "a\x00b", "}include /etc/passwd;", "5 backup"]
TOKEN_TEXT = st.text(alphabet="abcXYZ019-_.", min_size=1, max_size=12)
NAMES = st.one_of(TOKEN_TEXT, st.sampled_from([*NASTY, "Web", "web", "WEB", "a..b", "-x"]))
ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
    st.sampled_from(["localhost", "::1", "[::1]", "1.2.3.4; x", "fe80::1%eth0;", "", "a b"]),
)
PORTS = st.one_of(st.integers(-2, 70_000), st.sampled_from(["80", "http", "8080 down", None]))
META = st.dictionaries(st.sampled_from(["weight", "max_fails", "fail_timeout", "other"]),
                       st.one_of(st.sampled_from(NASTY), st.integers(-3, 2000).map(str)),
                       max_size=4)
TAGS = st.lists(st.sampled_from(["calico", "calico", "v1", "a;b", "calico\n#"]), max_size=3)


@st.composite
def instances(draw: st.DrawFn, name: str) -> list[dict[str, Any]]:
    found = []
    for number in range(draw(st.integers(0, 6))):
        found.append({
            "id": draw(st.one_of(st.just(f"{name}-{number}"), NAMES)),
            "node": draw(st.sampled_from(["n1", "n2", "bad node"])),
            "address": draw(ADDRESSES), "port": draw(PORTS), "tags": draw(TAGS),
            "meta": draw(META), "status": draw(st.sampled_from(["passing"] * 4 + ["critical"])),
        })
    if found and draw(st.booleans()):  # the same registration twice, maybe elsewhere
        found.append({**draw(st.sampled_from(found)), "address": draw(ADDRESSES)})
    return found


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, max_size=6, unique=True)):
        services[name] = draw(instances(name))
    big = draw(st.sampled_from([0, 1, 70, 1000, 2000]))
    if big:
        services["big"] = [
            {"id": f"big-{i}", "node": "n1", "port": 1 + i % 65535, "tags": ["calico"],
             "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" if i % 2
             else f"2001:db8::{i:x}"}
            for i in range(big)
        ]
    return {"services": services}


def valid(name: str, entry: dict[str, Any]) -> bool:
    """What the source boundary must keep, decided independently of ctmpl's code."""
    if not SAFE_NAME.fullmatch(name) or entry.get("status", "passing") != "passing":
        return False
    # The file catalog names an instance without an id after its service, address and port.
    ident = entry["id"] or f"{name}-{entry.get('address')}-{entry.get('port')}"
    if re.search(r"[\x00-\x20\x7f;{}\"'\\`$]", ident):
        return False
    if entry.get("node") == "bad node" or "calico" not in entry.get("tags", []):
        return False
    port = entry.get("port")
    if isinstance(port, str) and not port.isdigit():
        return False
    if port is None or not 1 <= int(port) <= 65535:
        return False
    address = entry.get("address") or ""
    if "%" in address:
        return False  # an IPv6 zone: no proxy accepts one
    if address == "localhost":
        return True
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def one_per_identity(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Node + ID is an instance's identity: the first in (node, ID, address, port) order."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: (e["node"], e["id"], e["address"], int(e["port"]))):
        kept.setdefault((entry["node"], entry["id"]), entry)
    return list(kept.values())


def with_ids(name: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "id": e["id"] or f"{name}-{e['address']}-{e['port']}"} for e in entries]


def expected(catalog: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: one_per_identity(with_ids(name, kept))
            for name, entries in catalog["services"].items()
            if (kept := [e for e in entries if valid(name, e)])}


def render(tmp_path: Path, template: str, catalog: dict[str, Any], **variables: str) -> str:
    path = tmp_path / "catalog.json"  # JSON: YAML's pure-Python dumper is the slow part
    path.write_text(json.dumps(catalog))
    source = FileCatalog(CatalogConfig(kind="file", file_path=str(path)))
    tpl = Template(TemplateConfig(destination="/dev/null",
                                  source=str(ROOT / "templates" / template), vars=variables))
    brain = Brain()

    async def fill() -> bytes:
        for _ in range(5):
            rendered = tpl.render(source, brain)
            if rendered.complete:
                return rendered.content
            for key in rendered.deps.missing:
                data, _ = await rendered.deps.queries[key].fetch(0)
                brain.set(key, data)
        raise AssertionError("render never completed")

    return asyncio.run(fill()).decode()


NGINX_LINES = [
    r"# Generated by ctmpl: do not edit\.",
    r"upstream [A-Za-z0-9_.-]+ \{",
    r"    zone upstream-[A-Za-z0-9_.-]+ \d+k;",
    r"    server (\S+) max_fails=\d+ fail_timeout=\d+(s|m|h|d)? weight=\d+;",
    r"\}", r"server \{", r"    listen 127\.0\.0\.1:1;", r"    charset utf-8;",
    r"    server_name [a-z0-9_.]+\.example\.com;",
    r"    access_log \S+/[A-Za-z0-9_.-]+\.access\.log;",
    r"    location / \{", r"        proxy_pass http://[A-Za-z0-9_.-]+;",
    r"        proxy_set_header \S+ \$\w+;",
    r"        proxy_(connect|send|read)_timeout \d+s;",
    r"        proxy_next_upstream error timeout invalid_header http_502 http_504 http_500;",
    r"    \}",
]


def check_lines(text: str, shapes: list[str]) -> None:
    pattern = re.compile("|".join(f"(?:{s})" for s in shapes))
    for line in text.splitlines():
        assert not line or pattern.fullmatch(line), f"unexpected line {line!r}"


def upstream_servers(text: str, keyword: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(f"{keyword} "):
            current = line.split()[1]
            found[current] = []
        elif current and line.startswith("    server "):
            found[current].append(line)
    return found


def nginx_t(tmp_path: Path, snippet: str) -> subprocess.CompletedProcess[str]:
    assert NGINX is not None
    (tmp_path / "logs").mkdir(exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
                    f"events {{}}\nhttp {{\n    include {snippet};\n}}\n")
    return subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=60, check=False)


def weight(entry: dict[str, Any], low: int, high: int) -> int:
    value = str((entry.get("meta") or {}).get("weight", ""))
    return int(value) if re.fullmatch(r"-?\d+", value) and low <= int(value) <= high else 1


SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
@SETTINGS
@given(catalog=catalogs())
def test_nginx_template_on_hostile_catalogs(tmp_path: Path, catalog: dict[str, Any]) -> None:
    text = render(tmp_path, "nginx.conf.j2", catalog, listen="127.0.0.1:1",
                  log_dir=str(tmp_path / "logs"))
    check_lines(text, NGINX_LINES)
    proc = nginx_t(tmp_path, _write(tmp_path, text))
    assert proc.returncode == 0, proc.stderr
    servers = upstream_servers(text, "upstream")
    published = {name.lower(): name for name in sorted(expected(catalog), reverse=True)}
    for name, entries in expected(catalog).items():
        if published[name.lower()] != name:
            continue  # same name in another case: the first in sorted order is published
        lines = sorted(servers[name])
        want = sorted(
            f"    server {host_port(e['address'], int(e['port']))} max_fails="
            for e in entries)
        assert [line.split("max_fails=")[0] + "max_fails=" for line in lines] == want
        weights = sorted(int(line.rsplit("weight=", 1)[1].rstrip(";")) for line in lines)
        assert weights == sorted(weight(e, 1, 1000) for e in entries)


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
@SETTINGS
@given(catalog=catalogs())
def test_haproxy_template_on_hostile_catalogs(tmp_path: Path, catalog: dict[str, Any]) -> None:
    text = render(tmp_path, "haproxy.cfg.j2", catalog, bind="127.0.0.1:1")
    check_lines(text, [
        r"# Generated by ctmpl: do not edit\.", r"global", r"    maxconn 4096", r"defaults",
        r"    stats socket /run/haproxy/admin\.sock mode 600 level admin",
        r"    server-state-file /var/lib/haproxy/server-state",
        r"    load-server-state-from-file global",
        r"    mode http", r"    timeout (connect|client|server) \d+s", r"frontend http-in",
        r"    bind 127\.0\.0\.1:1",
        r"    acl host_[A-Za-z0-9_.-]+ hdr\(host\) -i [a-z0-9_.]+\.example\.com",
        r"    use_backend [A-Za-z0-9_.-]+ if host_[A-Za-z0-9_.-]+",
        r"backend [A-Za-z0-9_.-]+", r"    balance roundrobin",
        r"    server [A-Za-z0-9_.:-]+ \S+( disabled)? check weight \d+",
    ])
    path = Path(_write(tmp_path, text))
    assert HAPROXY is not None
    proc = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    servers = upstream_servers(text, "backend")
    for name, entries in expected(catalog).items():
        got = sorted(line.split()[2] for line in servers[name])
        assert got == sorted(host_port(e["address"], int(e["port"])) for e in entries)
        weights = sorted(int(line.rsplit(" ", 1)[1]) for line in servers[name])
        assert weights == sorted(weight(e, 0, 256) for e in entries)


def _write(tmp_path: Path, text: str) -> str:
    out = tmp_path / "out.conf"
    out.write_text(text)
    return str(out)
