"""``ctmpl register`` settings: flags, HCL ``register { }``, environment, and bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctmpl.errors import ConfigError, UsageError
from ctmpl.register.layout import registration_key, registration_value
from ctmpl.register.settings import REGISTER_FLAGS, load_register_config
from ctmpl.register.spec import CheckSpec, parse_check, parse_status_range, split_address
from ctmpl.sources.registrations import EntryParser
from tests.foundation_util import load

ETCD = ["-catalog", "etcd://127.0.0.1:2379/services"]


def test_flags_with_defaults() -> None:
    config = load_register_config([*ETCD, "-service", "web", "-address", "10.0.0.7:8080"], {})
    assert (config.service, config.id, config.host, config.port) == (
        "web", "10.0.0.7:8080", "10.0.0.7", 8080)
    assert config.check == CheckSpec("tcp", host="10.0.0.7", port=8080)
    assert (config.interval, config.timeout, config.rise, config.fall, config.ttl) == (
        5.0, 3.0, 2, 2, 15.0)
    assert config.format == "addr"
    assert config.catalog.etcd.endpoints == ("127.0.0.1:2379",)


def test_every_flag() -> None:
    config = load_register_config([
        *ETCD, "-service", "web", "-id", "web-1", "-address", "[::1]:81", "-tag", "calico",
        "-tag", "v2", "-meta", "zone=a", "-check", "http:/health", "-check-status", "200-299",
        "-interval", "2s", "-timeout", "500ms", "-rise", "3", "-fall", "4", "-ttl", "9s",
        "-format", "json", "-once", "-log-level", "debug",
    ], {})
    assert (config.id, config.host, config.port) == ("web-1", "::1", 81)
    assert config.tags == ("calico", "v2") and dict(config.meta) == {"zone": "a"}
    assert config.check == CheckSpec("http", url="http://[::1]:81/health", status_low=200,
                                     status_high=299)
    assert (config.interval, config.timeout, config.rise, config.fall, config.ttl) == (
        2.0, 0.5, 3, 4, 9.0)
    assert config.format == "json" and config.once and config.log_level == "debug"


def test_hcl_block_env_and_flags_layer(tmp_path: Path) -> None:
    hcl = tmp_path / "reg.hcl"
    hcl.write_text('catalog = "etcd://127.0.0.1:2379/services"\n'
                   'register {\n  service = "web"\n  address = "10.0.0.7:80"\n'
                   '  tags = ["calico"]\n  interval = "1s"\n  check = "tcp"\n}\n')
    env = {"CTMPL_REGISTER_INTERVAL": "3s", "CTMPL_REGISTER_FALL": "5",
           "CTMPL_REGISTER_TAGS": "a,b", "CTMPL_REGISTER_META": "k=v"}
    config = load_register_config(["-config", str(hcl), "-rise", "4"], env)
    assert config.interval == 1.0, "a config file wins over the environment"
    assert (config.fall, config.rise) == (5, 4)
    assert config.tags == ("calico",) and dict(config.meta) == {"k": "v"}
    assert config.format == "json", "tags travel as JSON"


def test_consul_defaults() -> None:
    config = load_register_config(["-service", "web", "-address", "10.0.0.7:80"],
                                  {"CONSUL_HTTP_ADDR": "127.0.0.1:8501"})
    assert config.catalog.kind == "consul"
    assert config.catalog.consul.address == "127.0.0.1:8501"
    assert config.id == "web-10.0.0.7:80"


@pytest.mark.parametrize(("argv", "error", "message"), [
    (["-address", "10.0.0.7"], UsageError, "flag -address: register.address: '10.0.0.7' is not"),
    (["-address", "10.0.0.7:99999"], UsageError, "out of range"),
    (["-address", "bad host;:80"], UsageError, "is not ip:port"),
    (["-address", "1.2.3.4:80", "-check", "ping"], UsageError, "flag -check: register.check: "
     "'ping' is not a check; use tcp"),
    (["-address", "1.2.3.4:80", "-check", "cmd:"], UsageError, "needs a command"),
    (["-address", "1.2.3.4:80", "-check", "http://"], UsageError, "not a valid http(s) URL"),
    (["-address", "1.2.3.4:80", "-check-status", "2xx"], UsageError, "like 200-399"),
    (["-address", "1.2.3.4:80", "-check-status", "500-200"], UsageError, "like 200-399"),
    (["-address", "1.2.3.4:80", "-rise", "0"], UsageError, "flag -rise: register.rise: must be"),
    (["-address", "1.2.3.4:80", "-ttl", "5s"], UsageError, "longer than the interval"),
    (["-address", "1.2.3.4:80", "-tag", "a;b"], UsageError, "flag -tag: register.tags:"),
    (["-address", "1.2.3.4:80", "-id", "a/b"], UsageError, "flag -id: register.id"),
    (["-address", "1.2.3.4:80", "-service", "web app"], UsageError, "register.service"),
    (["-address", "1.2.3.4:80", "-format", "addr", "-tag", "x"], UsageError, "use json"),
    ([], ConfigError, "register.address: required"),
    (["-address", "1.2.3.4:80", "-bogus"], UsageError, "unrecognized arguments: -bogus"),
])
def test_bad_input(argv: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        load_register_config([*ETCD, "-service", "web", *argv] if "-service" not in argv
                             else [*ETCD, *argv], {})
    assert message in str(info.value)


def test_consul_needs_a_service_and_file_catalogs_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"register\.service: required with Consul"):
        load_register_config(["-address", "1.2.3.4:80"], {})
    with pytest.raises(UsageError, match=r"flag -catalog: catalog: .* not a file"):
        load_register_config(["-catalog", "file://x.yaml", "-address", "1.2.3.4:80"], {})
    with pytest.raises(UsageError, match=r"flag -catalog: catalog: .* not dns://"):
        load_register_config(["-catalog", "dns://", "-address", "1.2.3.4:80"], {})


def test_zookeeper_registrations_need_a_service_or_a_prefix_and_no_once() -> None:
    config = load_register_config(["-catalog", "zk://h/s", "-address", "1.2.3.4:80"], {})
    assert (config.catalog.zk.prefix, config.service, config.id) == ("/s", "", "1.2.3.4:80")
    with pytest.raises(ConfigError, match=r"register\.service: required when the zk prefix"):
        load_register_config(["-catalog", "zk://h", "-address", "1.2.3.4:80"], {})
    with pytest.raises(UsageError, match=r"flag -once: register\.once: a ZooKeeper"):
        load_register_config(["-catalog", "zk://h/s", "-service", "w", "-address",
                              "1.2.3.4:80", "-once"], {})


def test_bad_input_is_one_line_and_a_documented_exit_code() -> None:
    for argv, code in ((["-address", "nope"], 2), (["-check", "ping", "-address", "1.2.3.4:1"], 2),
                       (["-ttl", "1s", "-address", "1.2.3.4:1"], 2), ([], 3)):
        done = subprocess.run([sys.executable, "-m", "ctmpl", "register", *ETCD, "-service", "w",
                               *argv], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == code, done.stderr
        assert done.stderr.startswith("ctmpl register: ") and done.stderr.count("\n") == 1


@pytest.mark.parametrize(("text", "spec"), [
    ("", CheckSpec("tcp", host="h", port=1)),
    ("tcp://10.0.0.1:9", CheckSpec("tcp", host="10.0.0.1", port=9)),
    ("https", CheckSpec("http", url="https://h:1/")),
    ("http://x.example:8080/ping?q=1", CheckSpec("http", url="http://x.example:8080/ping?q=1")),
    ("cmd: test -e /tmp", CheckSpec("cmd", command="test -e /tmp")),
])
def test_check_forms(text: str, spec: CheckSpec) -> None:
    assert parse_check("check", text, "h", 1) == spec


def test_status_range() -> None:
    assert parse_status_range("s", "204") == (204, 204)
    assert parse_status_range("s", "200-299") == (200, 299)


@given(st.sampled_from(["services", "svc/prod", "/services", ""]), st.booleans(),
       st.ip_addresses().map(str), st.integers(1, 65535),
       st.lists(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,10}", fullmatch=True), max_size=3))
def test_registration_reads_back_through_the_catalog_parser(
    prefix: str, nested: bool, host: str, port: int, tags: list[str]
) -> None:
    if not prefix and not nested:
        return  # refused by the settings: the flat layout needs a prefix
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert split_address("a", address) == (host, port)
    service = "web" if nested else ""
    key = registration_key(prefix, service, address, host, port)
    value = registration_value(host, port, tuple(tags), {"k": "v"} if tags else {}, bool(tags))
    [inst] = EntryParser(prefix).instances({key.encode(): value.encode()})
    assert (inst.Address, inst.Port, inst.ID) == (host, port, address)
    assert inst.Name == ("web" if nested else prefix.rsplit("/", 1)[-1])
    assert inst.Tags == tuple(sorted(set(tags)))


def test_shipped_example_and_the_daemon_accepts_the_block(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "register.hcl"
    config = load_register_config(["-config", str(example)], {})
    assert (config.service, config.address, config.tags) == ("web", "127.0.0.1:8080", ("calico",))
    assert config.check.url == "http://127.0.0.1:8080/health" and config.format == "json"
    template = tmp_path / "t.j2"
    template.write_text("x")
    daemon = load(["-config", str(example), "-template", f"{template}:{tmp_path / 'out'}"])
    assert daemon.catalog.kind == "etcd" and daemon.catalog.etcd.prefix == "/services"


def test_the_same_value_from_a_file_is_a_config_error(tmp_path: Path) -> None:
    hcl = tmp_path / "reg.hcl"
    hcl.write_text('register {\n  address = "1.2.3.4:80"\n  service = "w"\n  ttl = "1s"\n}\n')
    with pytest.raises(ConfigError, match=r"^register\.ttl: 1s must be longer"):
        load_register_config([*ETCD, "-config", str(hcl)], {})
    with pytest.raises(UsageError, match="-config /nonexistent: no such file"):
        load_register_config([*ETCD, "-config", "/nonexistent"], {})


def test_readme_lists_every_register_flag_with_its_key_and_variable() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Registering instances", 1)[1].split("\n## ", 1)[0]
    for flag in REGISTER_FLAGS:
        if not flag.path.startswith("register."):
            continue
        key = flag.path.removeprefix("register.")
        rows = [line for line in section.splitlines() if "CTMPL_REGISTER_" in line
                and re.search(rf"`-{flag.name}[ `]", line.split("|")[1])]
        assert rows, f"-{flag.name} is missing from the README's register table"
        assert f"`{key}" in rows[0], f"{key} is missing from -{flag.name}'s row"


