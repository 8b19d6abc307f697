"""Every flag of the table maps to its config field; spellings and bool forms."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctmpl.config.flags import FLAGS, parse_flags, parse_template_flag, parse_var
from ctmpl.config.model import Config, TemplateConfig, Wait
from ctmpl.errors import UsageError
from tests.foundation_util import ROOT, load

Get = Callable[[Config], Any]

# flag name -> (value given, accessor, expected value)
CASES: dict[str, tuple[str, Get, Any]] = {
    "template": ("in.j2:out.conf:echo hi", lambda c: c.templates[0],
                 TemplateConfig(destination="out.conf", source="in.j2", command="echo hi")),
    "catalog": ("file://cat.yaml", lambda c: (c.catalog.kind, c.catalog.file_path),
                ("file", "cat.yaml")),
    "var": ("color=blue", lambda c: dict(c.vars), {"color": "blue"}),
    "template-syntax": ("go", lambda c: c.template_syntax, "go"),
    "default-left-delimiter": ("[[", lambda c: c.templates[0].left_delimiter, "[["),
    "default-right-delimiter": ("]]", lambda c: c.templates[0].right_delimiter, "]]"),
    "wait": ("2s:9s", lambda c: c.wait, Wait(2.0, 9.0)),
    "once": ("true", lambda c: c.once, True),
    "dry": ("true", lambda c: c.dry, True),
    "log-level": ("debug", lambda c: c.log_level, "debug"),
    "log-format": ("json", lambda c: c.log_format, "json"),
    "pid-file": ("/run/x.pid", lambda c: c.pid_file, "/run/x.pid"),
    "kill-signal": ("SIGTERM", lambda c: c.kill_signal, signal.SIGTERM),
    "reload-signal": ("USR1", lambda c: c.reload_signal, signal.SIGUSR1),
    "max-stale": ("10s", lambda c: c.catalog.max_stale, 10.0),
    "block-query-wait": ("1m", lambda c: c.catalog.block_query_wait, 60.0),
    "command-error-fatal": ("true", lambda c: c.command_error_fatal, True),
    "missing-dependency-warn": ("5s", lambda c: c.missing_dependency_warn, 5.0),
    "proxy": ("nginx", lambda c: c.proxy, "nginx"),
    "nginx-bin": ("/opt/nginx", lambda c: c.nginx.binary, "/opt/nginx"),
    "nginx-conf": ("/etc/n.conf", lambda c: c.nginx.config, "/etc/n.conf"),
    "nginx-pid": ("/run/n.pid", lambda c: c.nginx.pid_file, "/run/n.pid"),
    "nginx-prefix": ("/srv/n", lambda c: c.nginx.prefix, "/srv/n"),
    "haproxy-bin": ("/opt/haproxy", lambda c: c.haproxy.binary, "/opt/haproxy"),
    "haproxy-conf": ("/etc/h.cfg", lambda c: c.haproxy.config, ("/etc/h.cfg",)),
    "haproxy-master-socket": ("/run/m.sock", lambda c: c.haproxy.master_socket, "/run/m.sock"),
    "haproxy-admin-socket": ("/run/a.sock", lambda c: c.haproxy.admin_socket, "/run/a.sock"),
    "haproxy-pid": ("/run/h.pid", lambda c: c.haproxy.pid_file, "/run/h.pid"),
    "exec": ("nginx -g 'daemon off;'", lambda c: c.exec.command,
             ("nginx", "-g", "daemon off;")),
    "exec-reload-signal": ("HUP", lambda c: c.exec.reload_signal, signal.SIGHUP),
    "exec-kill-signal": ("SIGQUIT", lambda c: c.exec.kill_signal, signal.SIGQUIT),
    "exec-kill-timeout": ("5s", lambda c: c.exec.kill_timeout, 5.0),
    "exec-splay": ("250ms", lambda c: c.exec.splay, 0.25),
    "exec-env-pristine": ("true", lambda c: c.exec.env_pristine, True),
    "exec-env-custom": ("A=1", lambda c: c.exec.env_custom, ("A=1",)),
    "exec-env-allowlist": ("PATH", lambda c: c.exec.env_allow, ("PATH",)),
    "exec-env-denylist": ("CONSUL_*", lambda c: c.exec.env_deny, ("CONSUL_*",)),
    "status-addr": ("127.0.0.1:9080", lambda c: c.status_addr, "127.0.0.1:9080"),
    "shrink-guard": ("false", lambda c: c.shrink_guard.enabled, False),
    "shrink-guard-max-drop": ("50%", lambda c: c.shrink_guard.max_drop, 0.5),
    "shrink-guard-grace": ("30s", lambda c: c.shrink_guard.grace, 30.0),
    "consul-addr": ("10.1.1.1:8500", lambda c: c.catalog.consul.address, "10.1.1.1:8500"),
    "consul-token": ("s3cret", lambda c: c.catalog.consul.token, "s3cret"),
    "consul-token-file": ("TOKENFILE", lambda c: c.catalog.consul.token, "from-file"),
    "consul-auth": ("user:pw", lambda c: (c.catalog.consul.auth_username,
                                          c.catalog.consul.auth_password), ("user", "pw")),
    "consul-ssl": ("true", lambda c: c.catalog.consul.ssl.enabled, True),
    "consul-ssl-verify": ("false", lambda c: c.catalog.consul.ssl.verify, False),
    "consul-ssl-ca-cert": ("/ca.pem", lambda c: c.catalog.consul.ssl.ca_cert, "/ca.pem"),
    "consul-ssl-ca-path": ("/cas", lambda c: c.catalog.consul.ssl.ca_path, "/cas"),
    "consul-ssl-cert": ("/c.pem", lambda c: c.catalog.consul.ssl.cert, "/c.pem"),
    "consul-ssl-key": ("/k.pem", lambda c: c.catalog.consul.ssl.key, "/k.pem"),
    "consul-ssl-server-name": ("consul.local",
                               lambda c: c.catalog.consul.ssl.server_name, "consul.local"),
    "consul-retry": ("false", lambda c: c.catalog.consul.retry.enabled, False),
    "consul-retry-attempts": ("4", lambda c: c.catalog.consul.retry.attempts, 4),
    "consul-retry-backoff": ("2s", lambda c: c.catalog.consul.retry.backoff, 2.0),
    "consul-retry-max-backoff": ("90s", lambda c: c.catalog.consul.retry.max_backoff, 90.0),
    "consul-max-connections": ("32", lambda c: c.catalog.consul.max_connections, 32),
    "etcd-ca-cert": ("/eca.pem", lambda c: c.catalog.etcd.tls.ca_cert, "/eca.pem"),
    "etcd-cert": ("/ec.pem", lambda c: c.catalog.etcd.tls.cert, "/ec.pem"),
    "etcd-key": ("/ek.pem", lambda c: c.catalog.etcd.tls.key, "/ek.pem"),
    "etcd-username": ("root", lambda c: c.catalog.etcd.username, "root"),
    "etcd-password": ("pw", lambda c: c.catalog.etcd.password, "pw"),
}


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.j2").write_text("x\n")
    (tmp_path / "TOKENFILE").write_text("from-file\n")
    return tmp_path


def test_every_flag_is_covered() -> None:
    assert {f.name for f in FLAGS} - {"config"} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("style", ["space", "equals", "double"])
def test_flag_maps_to_config_field(src: Path, name: str, style: str) -> None:
    value, get, expected = CASES[name]
    argv = {"space": [f"-{name}", value], "equals": [f"-{name}={value}"],
            "double": [f"--{name}", value]}[style]
    if name.startswith("default-"):  # delimiters show on templates
        argv += ["-template", "in.j2:out.conf"]
    config = load(argv)
    assert get(config) == expected


def test_config_flag(tmp_path: Path) -> None:
    conf = tmp_path / "a.hcl"
    conf.write_text('log_level = "warn"\n')
    assert load(["-config", str(conf)]).log_level == "warn"
    assert load([f"--config={conf}"]).config_paths == (str(conf),)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], False), (["-once"], True), (["-once=false"], False), (["-once=true"], True),
     (["--once"], True), (["-once=0"], False), (["-once=false", "-once"], True)],
)
def test_bool_flag_forms(argv: list[str], expected: bool) -> None:
    assert load(argv).once is expected


def test_bool_flag_rejects_garbage() -> None:
    with pytest.raises(UsageError, match="-once"):
        parse_flags(["-once=maybe"])


def test_unknown_flag() -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: -bogus"):
        parse_flags(["-bogus"])


def test_abbreviations_are_not_accepted() -> None:
    with pytest.raises(UsageError):
        parse_flags(["-temp", "a:b"])


def test_repeated_templates_and_vars_keep_order(src: Path) -> None:
    config = load(["-template", "in.j2:a", "-template", "in.j2:b:cmd b",
                   "-var", "x=1", "-var", "y=a=b"])
    assert [t.destination for t in config.templates] == ["a", "b"]
    assert config.templates[1].command == "cmd b"
    assert dict(config.vars) == {"x": "1", "y": "a=b"}
    assert dict(config.templates[0].vars) == {"x": "1", "y": "a=b"}


def test_template_command_keeps_colons() -> None:
    assert parse_template_flag("in:out:sh -c 'a:b'") == {
        "source": "in", "destination": "out", "command": "sh -c 'a:b'"}


@pytest.mark.parametrize("bad", ["nocolon", ":out", "in:", ""])
def test_malformed_template_flag(bad: str) -> None:
    with pytest.raises(UsageError, match=r"^-template .*expected src:dest\[:command\]"):
        parse_template_flag(bad)


@pytest.mark.parametrize("bad", ["novalue", "=x"])
def test_malformed_var(bad: str) -> None:
    with pytest.raises(UsageError, match=r"^-var "):
        parse_var(bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["-wait=-5s"], "negative"), (["-wait", "5s:1s"], "max"), (["-wait", "abc"], "duration"),
     (["-log-level", "loud"], "log_level"), (["-proxy", "apache"], "proxy"),
     (["-kill-signal", "SIGNOPE"], "signal"), (["-consul-retry-attempts=-1"], "whole number"),
     (["-max-stale", "soon"], "duration")],
)
def test_bad_flag_values_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_flags(argv)


def test_wait_error_names_the_flag() -> None:
    with pytest.raises(UsageError, match=r"^flag -wait: wait: max"):
        parse_flags(["-wait", "5s:1s"])


def test_consul_token_flag_warns_without_logging_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        config = load(["-consul-token", "tok-SECRET-123"])
    assert config.catalog.consul.token == "tok-SECRET-123"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("-consul-token" in w and "ps" in w for w in warnings)
    assert all("tok-SECRET-123" not in r.getMessage() for r in caplog.records)


def readme_flags() -> dict[str, tuple[str, str]]:
    """The README's flag table: flag -> (metavar, meaning without backticks)."""
    text = (ROOT / "README.md").read_text().split("### Flags")[1].split("### ")[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = re.match(r"^\| `(-[^`]+)`(?:, `(-[^`]+)`)? \| [^|]* \| (.*) \|$", line)
        if match:
            for cell in filter(None, match.groups()[:2]):
                name, _, metavar = cell.partition(" ")
                rows[name] = (metavar, match[3].replace("`", ""))
    return rows


def test_help_lists_exactly_the_readme_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_flags(["-help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    listed = {m[1] for m in re.finditer(r"^  (-[a-z-]+)", out, re.MULTILINE)}
    documented = readme_flags()
    assert listed == set(documented)
    for flag in FLAGS:
        metavar, meaning = documented[f"-{flag.name}"]
        assert (flag.metavar, flag.help) == (metavar, meaning), flag.name
        assert re.search(rf"^  -{flag.name} {re.escape(metavar)} +{re.escape(meaning)}$".replace(
            "  +", " +"), out, re.MULTILINE), flag.name


@pytest.mark.parametrize(
    "argv",
    [["-bogus"], ["-template", "x"], ["-var", "x"], ["-wait", "soon"], ["-catalog", "bogus"],
     ["-catalog", "etcd://nohost/x"], ["-catalog", "file://"], ["-consul-max-connections", "4"],
     ["-consul-max-connections", "many"], ["-consul-token-file", "/nonexistent/token"],
     ["-consul-retry-backoff", "2m"], ["-log-level", "loud"], ["-config", "/nonexistent.hcl"],
     ["-consul-auth", ":pw"], ["-once=maybe"], ["-consul-ssl-verify=perhaps"]],
)
def test_every_bad_flag_value_is_the_usage_exit_code(src: Path, argv: list[str]) -> None:
    with pytest.raises(UsageError):
        load([*argv, "-template", "in.j2:out"])


def test_consul_template_flags_ctmpl_ignores_are_accepted_with_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ctmpl.config.compat import IGNORED_FLAGS

    argv = [f"-{name}=x" if takes else f"-{name}" for name, (takes, _) in IGNORED_FLAGS.items()]
    with caplog.at_level(logging.WARNING):
        parse_flags(argv)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in IGNORED_FLAGS:
        assert sum(w.startswith(f"-{name}: accepted for consul-template") for w in warned) == 1


@pytest.mark.parametrize("argv", [["-parse-only"]])
def test_flags_whose_ignoring_would_change_the_outcome_stay_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError, match="unrecognized arguments"):
        parse_flags(argv)
