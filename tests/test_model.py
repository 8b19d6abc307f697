"""Validation at the source boundary: names, addresses, ports, tags, meta."""

from __future__ import annotations

import pytest

from ctmpl.model import (
    Instance,
    InvalidEntry,
    clean_meta,
    clean_tags,
    is_safe_name,
    is_valid_address,
    make_instance,
    parse_port,
    sort_instances,
    summarize,
)


@pytest.mark.parametrize("name", ["web", "web-app", "a.b_c", "A1", "x" * 255])
def test_safe_names(name: str) -> None:
    assert is_safe_name(name)


@pytest.mark.parametrize("name", ["", "evil;}", "a b", "web\n", "-x", ".x", "a}", "ü", "x" * 256,
                                  "a'b", "a\"b"])
def test_unsafe_names(name: str) -> None:
    assert not is_safe_name(name)


@pytest.mark.parametrize("addr", ["10.0.0.1", "::1", "db.internal", "a",
                                  "host-1.example.com."])
def test_valid_addresses(addr: str) -> None:
    assert is_valid_address(addr)


@pytest.mark.parametrize("addr", ["", "1.2.3.4;}", "1.1.1.1; include /etc/passwd", "a b",
                                  "host\n", "1.1.1.1\n", "-bad.com", "fe80::1%x;}", "fe80::1%a\n",
                                  "fe80::1%eth0",
                                  "x" * 254, "a..b", "host:80"])
def test_invalid_addresses(addr: str) -> None:
    assert not is_valid_address(addr)


@pytest.mark.parametrize(("value", "port"), [(1, 1), ("80", 80), (65535, 65535)])
def test_ports(value: object, port: int) -> None:
    assert parse_port(value) == port


@pytest.mark.parametrize("value", [0, 70000, -1, "http", None, True, 65536])
def test_bad_ports(value: object) -> None:
    with pytest.raises(InvalidEntry):
        parse_port(value)


def test_clean_tags_drops_unsafe() -> None:
    tags = ["b", "a", "b", "x;}", "line\nbreak", "trail\n", "", 5, "k=v", "with space"]
    assert clean_tags("w", tags) == ("a", "b", "k=v")


def test_clean_meta_drops_unsafe() -> None:
    meta = {"ok": "1", "q": 'a"b', "semi": "a;b", "nl": "a\nb", "bad key": "x", "k\n": "v",
            "num": 5, "brace": "}"}
    assert clean_meta("w", meta) == {"ok": "1"}


def make(**overrides: object) -> Instance:
    fields: dict[str, object] = {"name": "web", "id": "w1", "address": "10.0.0.1", "port": 80}
    fields.update(overrides)
    return make_instance("test", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("name", "evil;}", "service name"), ("id", "a b", "instance id"), ("id", "", "instance id"),
     ("address", "1.2.3.4;}", "address"), ("address", None, "address"), ("port", 0, "port"),
     ("status", "sick", "status"), ("node", "n;1", "node")],
)
def test_make_instance_rejects(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidEntry, match=rf"^test: {message}"):
        make(**{field: value})


def test_make_instance_drops_bad_node_address() -> None:
    assert make(node_address="x;y").NodeAddress == ""
    assert make(node_address="10.1.1.1").NodeAddress == "10.1.1.1"


def test_sorting_and_summary() -> None:
    insts = [make(id="b", node="n2", tags=["x"]), make(id="a", node="n2"),
             make(id="z", node="n1", tags=["y", "x"]), make(name="db", id="d", node="n0")]
    assert [i.ID for i in sort_instances(insts)] == ["d", "z", "a", "b"]
    assert [(s.Name, s.Tags) for s in summarize(insts)] == [("db", ()), ("web", ("x", "y"))]


def test_a_dropped_tag_is_warned_once_across_polls(caplog: pytest.LogCaptureFixture) -> None:
    from ctmpl.model import clean_tags

    for _ in range(3):
        assert clean_tags("svc(x) i-1", ["ok", "bad;tag"]) == ("ok",)
    assert caplog.text.count("dropped unsafe tag 'bad;tag'") == 1
