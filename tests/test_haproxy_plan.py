"""The runtime-or-reload decision on config text: examples, then a property over server sets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.proxy.haproxy_plan import Plan, parse, parse_server, plan, split_address

HEAD = """\
global
    stats socket /run/haproxy/admin.sock level admin
defaults
    mode http
frontend fe
    bind :80
    default_backend web
"""


def config(*servers: str, extra: str = "") -> str:
    return HEAD + "backend web\n    balance roundrobin\n" + "".join(
        f"    server {s}\n" for s in servers) + extra


def decide(old: str, new: str) -> Plan:
    return plan(parse(old), parse(new))


@pytest.mark.parametrize(("text", "want"), [
    ("10.0.0.1:80", ("10.0.0.1", 80)), ("[::1]:8080", ("::1", 8080)),
    ("host.example:80", ("host.example", 80)), ("::1:80", (None, None)),
    ("10.0.0.1", (None, None)), ("10.0.0.1:0", (None, None)), ("10.0.0.1:+1", (None, None)),
])
def test_split_address(text: str, want: tuple[str | None, int | None]) -> None:
    assert split_address(text) == want


def test_server_line_fields() -> None:
    server = parse_server("server a 10.0.0.1:80 check weight 5 disabled inter 2s # note")
    assert (server.address, server.port, server.weight, server.disabled) == ("10.0.0.1", 80, 5,
                                                                              True)
    assert server.rest == ("check", "inter", "2s") and not server.opaque
    assert parse_server('server a 10.0.0.1:80 cookie "x y"').opaque


def test_server_changes_become_commands() -> None:
    old = config("a 10.0.0.1:80", "b 10.0.0.2:80", "c 10.0.0.3:80 weight 2")
    new = config("a 10.0.0.9:81 weight 3", "c 10.0.0.3:80 weight 2 disabled",
                 "d [::1]:82 check")
    result = decide(old, new)
    assert result.reload_reason == ""
    commands = [c for change in result.changes for c in change.commands]
    assert commands == [
        "set server web/b state maint", "del server web/b",
        "set server web/a addr 10.0.0.9 port 81", "set server web/a weight 3",
        "set server web/c state maint",
        "add server web/d [::1]:82 check", "enable health web/d", "set server web/d state ready",
    ]


def test_comments_blank_lines_and_order_need_nothing() -> None:
    old = config("a 10.0.0.1:80", "b 10.0.0.2:80")
    new = config("b 10.0.0.2:80 # moved", "a 10.0.0.1:80").replace("global", "# hi\nglobal")
    assert decide(old, new) == Plan()


@pytest.mark.parametrize(("new", "reason"), [
    (config("a 10.0.0.1:80", extra="backend api\n    server x 10.0.0.5:80\n"),
     "section added: backend api"),
    (config("a 10.0.0.1:80").replace("mode http", "mode tcp"), "defaults: settings changed"),
    (config("a 10.0.0.1:80", extra="    timeout server 5s\n"), "backend web: settings changed"),
    (config("a 10.0.0.1:80 check"), "server web/a: parameters other than"),
    (config("a db.internal:80"), "server web/a: new address db.internal is not an IP"),
    (config("a 10.0.0.1:80", "b db.internal:80"), "server web/b: added with an address"),
    (config("a 10.0.0.1:80", "b 10.0.0.2:80", extra="    default-server inter 3s\n"),
     "backend web: settings changed"),
])
def test_structural_changes_need_a_reload(new: str, reason: str) -> None:
    result = decide(config("a 10.0.0.1:80"), new)
    assert result.reload_reason.startswith(reason) and not result.changes


def test_added_server_ignores_default_server_so_reloads() -> None:
    old = config("a 10.0.0.1:80").replace("mode http", "mode http\n    default-server inter 3s")
    new = old + "    server b 10.0.0.2:80\n"
    assert "default-server" in decide(old, new).reload_reason


def test_add_server_with_a_semicolon_is_not_sent() -> None:
    result = decide(config("a 10.0.0.1:80"), config("a 10.0.0.1:80", "b 10.0.0.2:80 id 7;x"))
    assert "cannot take" in result.reload_reason


# -- property: applying the commands to the old servers gives the new ones -----------------

NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
SERVER = st.tuples(
    st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "fd00::5"]),
    st.integers(1, 65535), st.one_of(st.none(), st.integers(0, 256)), st.booleans(),
)
SERVERS = st.dictionaries(NAMES, SERVER, max_size=5)
Model = dict[str, tuple[str, int, int, bool]]


def line(name: str, server: tuple[str, int, int | None, bool]) -> str:
    address, port, weight, disabled = server
    host = f"[{address}]" if ":" in address else address
    text = f"{name} {host}:{port}"
    text += f" weight {weight}" if weight is not None else ""
    return text + (" disabled" if disabled else "")


def model(servers: dict[str, tuple[str, int, int | None, bool]]) -> Model:
    return {n: (a, p, 1 if w is None else w, d) for n, (a, p, w, d) in servers.items()}


def run(commands: list[str], state: Model) -> Model:
    state = dict(state)
    for cmd in commands:
        if m := re.fullmatch(r"add server web/(\w+) \[?([^\]\s]+?)\]?:(\d+)(?: weight (\d+))?",
                             cmd):
            state[m[1]] = (m[2], int(m[3]), int(m[4] or 1), True)  # added servers start in maint
        elif m := re.fullmatch(r"del server web/(\w+)", cmd):
            assert state[m[1]][3], "only a server in maintenance can be deleted"
            del state[m[1]]
        elif m := re.fullmatch(r"set server web/(\w+) addr (\S+) port (\d+)", cmd):
            state[m[1]] = (m[2], int(m[3]), *state[m[1]][2:])
        elif m := re.fullmatch(r"set server web/(\w+) weight (\d+)", cmd):
            a, p, _, d = state[m[1]]
            state[m[1]] = (a, p, int(m[2]), d)
        elif m := re.fullmatch(r"set server web/(\w+) state (maint|ready)", cmd):
            a, p, w, _ = state[m[1]]
            state[m[1]] = (a, p, w, m[2] == "maint")
        else:
            raise AssertionError(f"unexpected command {cmd!r}")
    return state


@settings(max_examples=300, deadline=None)
@given(SERVERS, SERVERS)
def test_runtime_commands_reach_the_new_config(old: dict[str, tuple[str, int, int | None, bool]],
                                               new: dict[str, tuple[str, int, int | None, bool]]
                                               ) -> None:
    result = decide(config(*(line(n, s) for n, s in old.items())),
                    config(*(line(n, s) for n, s in new.items())))
    assert result.reload_reason == ""
    commands = [c for change in result.changes for c in change.commands]
    assert run(commands, model(old)) == model(new)
