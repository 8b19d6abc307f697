"""Command-line flags, generated from one table with consul-template's names and meanings.

Every flag maps to a dotted config path, so flags form one more raw layer that is checked
by the same schema as config files. ``-flag value``, ``-flag=value`` and ``--flag`` all work.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

import msgspec

from ctmpl import __version__
from ctmpl.config.compat import IGNORED_FLAGS, warning
from ctmpl.config.layers import auth_block
from ctmpl.config.schema import parse_layer
from ctmpl.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

Kind = Literal["value", "bool", "template", "config", "var", "auth", "token", "list"]


class Flag(msgspec.Struct, frozen=True):
    """One flag: its name, the config path it sets, how it parses, and its help."""

    name: str
    path: str
    kind: Kind = "value"
    help: str = ""  # the README's "meaning" column, word for word (a test compares them)
    metavar: str = "VALUE"  # "" for boolean flags


FLAGS: tuple[Flag, ...] = (
    Flag("config", "", "config", "config file or directory (repeatable; later wins)", "PATH"),
    Flag("template", "template", "template", "template to render (repeatable)", "SRC:DEST[:CMD]"),
    Flag("catalog", "catalog", "value",
         "consul (default), etcd://host:port[,…]/prefix, zk://host:port[,…]/prefix, "
         "dns://[resolver[:port]], file://path",
         "URL"),
    Flag("var", "vars", "var", "template variable (repeatable)", "KEY=VALUE"),
    Flag("template-syntax", "template_syntax", "value",
         "go or jinja for every template (default: go for .ctmpl files)", "SYNTAX"),
    Flag("default-left-delimiter", "default_delimiters.left", "value",
         "left variable delimiter of every template (default {{)", "DELIM"),
    Flag("default-right-delimiter", "default_delimiters.right", "value",
         "right variable delimiter of every template (default }})", "DELIM"),
    Flag("wait", "wait", "value", "quiescence, e.g. 5s:30s; MAX defaults to 4×MIN", "MIN[:MAX]"),
    Flag("once", "once", "bool", "render once and exit", ""),
    Flag("dry", "dry", "bool", "print > dest and the content to stdout; write and run nothing", ""),
    Flag("log-level", "log_level", "value", "trace, debug, info, warn, err", "LEVEL"),
    Flag("log-format", "log_format", "value", "text or json (one object per line)", "FORMAT"),
    Flag("pid-file", "pid_file", "value",
         "write ctmpl's pid while running; removed at exit", "PATH"),
    Flag("kill-signal", "kill_signal", "value",
         "extra signal that stops ctmpl (SIGTERM and SIGINT always do)", "SIG"),
    Flag("reload-signal", "reload_signal", "value",
         "signal that reloads config and templates (default SIGHUP)", "SIG"),
    Flag("max-stale", "max_stale", "value",
         "allow stale Consul reads up to this age (default 2s)", "DUR"),
    Flag("block-query-wait", "block_query_wait", "value",
         "blocking query wait (default 60s)", "DUR"),
    Flag("command-error-fatal", "command_error_fatal", "bool",
         "exit (code 7) when a command fails, as consul-template does", ""),
    Flag("missing-dependency-warn", "missing_dependency_warn", "value",
         "warn when a render waits this long for data (default 30s)", "DUR"),
    Flag("proxy", "proxy", "value",
         "built-in proxy control: none (default), nginx or haproxy", "KIND"),
    Flag("nginx-bin", "nginx.binary", "value", "nginx binary (default nginx)", "PATH"),
    Flag("nginx-conf", "nginx.config", "value",
         "nginx main config (default /etc/nginx/nginx.conf)", "PATH"),
    Flag("nginx-pid", "nginx.pid_file", "value", "nginx pid file (default /run/nginx.pid)", "PATH"),
    Flag("nginx-prefix", "nginx.prefix", "value", "nginx -p prefix", "PATH"),
    Flag("haproxy-bin", "haproxy.binary", "value", "haproxy binary (default haproxy)", "PATH"),
    Flag("haproxy-conf", "haproxy.config", "value",
         "haproxy config file or directory, one -f (default /etc/haproxy/haproxy.cfg)", "PATH"),
    Flag("haproxy-master-socket", "haproxy.master_socket", "value",
         "master CLI socket, haproxy -S (default /run/haproxy-master.sock)", "PATH"),
    Flag("haproxy-admin-socket", "haproxy.admin_socket", "value",
         "stats socket with level admin for the runtime API (default: via the master CLI)",
         "PATH"),
    Flag("haproxy-pid", "haproxy.pid_file", "value",
         "haproxy pid file (default /run/haproxy.pid)", "PATH"),
    Flag("exec", "exec.command", "value",
         "exec mode: run this child after the first complete render", "CMD"),
    Flag("exec-reload-signal", "exec.reload_signal", "value",
         "signal for the child after a change (default: none, restart it)", "SIG"),
    Flag("exec-kill-signal", "exec.kill_signal", "value",
         "signal that stops the child (default SIGTERM)", "SIG"),
    Flag("exec-kill-timeout", "exec.kill_timeout", "value", "then SIGKILL (default 30s)", "DUR"),
    Flag("exec-splay", "exec.splay", "value",
         "random delay up to DUR before a reload signal or restart (default 0)", "DUR"),
    Flag("exec-env-pristine", "exec.env.pristine", "bool",
         "the child starts from an empty environment", ""),
    Flag("exec-env-custom", "exec.env.custom", "list",
         "KEY=VALUE for the child's environment (repeatable)", "KEY=VALUE"),
    Flag("exec-env-allowlist", "exec.env.allowlist", "list",
         "glob of variables passed to the child (repeatable)", "GLOB"),
    Flag("exec-env-denylist", "exec.env.denylist", "list",
         "glob of variables withheld from the child (repeatable; wins)", "GLOB"),
    Flag("status-addr", "status_addr", "value",
         "serve /health and /metrics (default: off)", "HOST:PORT"),
    Flag("shrink-guard", "shrink_guard.enabled", "bool",
         "hold renders that drop most instances at once (default true)", ""),
    Flag("shrink-guard-max-drop", "shrink_guard.max_drop", "value",
         "largest share of instances a render may drop at once (default 100%)", "SHARE"),
    Flag("shrink-guard-grace", "shrink_guard.grace", "value",
         "a held drop goes live after this long (default 2m)", "DUR"),
    Flag("consul-addr", "consul.address", "value",
         "Consul agent, host:port or https://host:port", "ADDR"),
    Flag("consul-token", "consul.token", "token",
         "ACL token (warns: visible in ps; prefer the file)", "TOKEN"),
    Flag("consul-token-file", "consul.token_file", "value",
         "file holding the ACL token (stripped; a token, user name or password with a control "
         "character is refused)", "PATH"),
    Flag("consul-auth", "consul.auth", "auth", "HTTP basic auth", "USER[:PASS]"),
    Flag("consul-ssl", "consul.ssl.enabled", "bool", "use HTTPS", ""),
    Flag("consul-ssl-verify", "consul.ssl.verify", "bool",
         "verify the server certificate (default true)", ""),
    Flag("consul-ssl-ca-cert", "consul.ssl.ca_cert", "value", "CA certificate file", "PATH"),
    Flag("consul-ssl-ca-path", "consul.ssl.ca_path", "value", "CA certificates directory", "DIR"),
    Flag("consul-ssl-cert", "consul.ssl.cert", "value", "client certificate", "PATH"),
    Flag("consul-ssl-key", "consul.ssl.key", "value", "client key", "PATH"),
    Flag("consul-ssl-server-name", "consul.ssl.server_name", "value",
         "TLS server name (SNI)", "NAME"),
    Flag("consul-retry", "consul.retry.enabled", "bool", "retry failed queries (default true)", ""),
    Flag("consul-retry-attempts", "consul.retry.attempts", "value",
         "0 = forever (default; with -once: 5)", "N"),
    Flag("consul-retry-backoff", "consul.retry.backoff", "value",
         "first retry delay (default 250ms)", "DUR"),
    Flag("consul-retry-max-backoff", "consul.retry.max_backoff", "value",
         "retry delay cap (default 1m)", "DUR"),
    Flag("consul-max-connections", "consul.max_connections", "value",
         "HTTP connections to the agent at most, 5–190 (default 5)", "N"),
    Flag("etcd-ca-cert", "etcd.ssl.ca_cert", "value", "etcd CA certificate", "PATH"),
    Flag("etcd-cert", "etcd.ssl.cert", "value", "etcd client certificate", "PATH"),
    Flag("etcd-key", "etcd.ssl.key", "value", "etcd client key", "PATH"),
    Flag("etcd-username", "etcd.username", "value", "etcd user", "USER"),
    Flag("etcd-password", "etcd.password", "token", "etcd password (warns: visible in ps)", "PASS"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} -help)")

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        # allow_abbrev=False covers only --long options: argparse would still expand
        # "-temp" to -template. Go's flag package (consul-template) takes exact names only.
        return []


def help_text(flags: Sequence[Flag] = FLAGS, prog: str = "ctmpl") -> str:
    """``-help``: one line per flag, the same flags, metavars and words as the README."""
    rows = [(f"-{f.name} {'' if f.kind == 'bool' else f.metavar}".rstrip(), f.help)
            for f in flags]
    rows += [("-version", "print the version and exit"), ("-help", "show this help")]
    width = max(len(left) for left, _ in rows) + 2
    lines = [f"  {left.ljust(width)}{text}" for left, text in rows]
    text = (
        f"usage: {prog} [flags]   (-flag value, -flag=value or --flag value)\n\n"
        + "\n".join(lines) + "\n"
    )
    if flags is FLAGS:
        names = textwrap.fill(", ".join(f"-{n}" for n in IGNORED_FLAGS), 92,
                              initial_indent="    ", subsequent_indent="    ",
                              break_on_hyphens=False, break_long_words=False)
        text += ("\nconsul-template flags accepted and ignored (one warning each):\n"
                 f"{names}\n")
    return text


def build_parser(
    flags: Sequence[Flag] = FLAGS, prog: str = "ctmpl"
) -> argparse.ArgumentParser:
    """The argument parser, one option per table row, single and double dash."""

    class Help(argparse.Action):
        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            print(help_text(flags, prog), end="")
            parser.exit(0)

    parser = _Parser(prog=prog, allow_abbrev=False, add_help=False)
    parser.add_argument("-h", "-help", "--help", action=Help, nargs=0)
    parser.add_argument("-v", "-version", "--version", action="version", version=__version__)
    for name, (takes_value, _) in IGNORED_FLAGS.items() if flags is FLAGS else ():
        names = [f"-{name}", f"--{name}"]
        if takes_value:
            parser.add_argument(*names, dest=f"ignored {name}")
        else:
            parser.add_argument(*names, dest=f"ignored {name}", nargs="?", const="true")
    for flag in flags:
        names = [f"-{flag.name}", f"--{flag.name}"]
        if flag.kind == "bool":
            parser.add_argument(*names, dest=flag.name, nargs="?", const="true", metavar="BOOL")
        else:
            action = "append" if flag.kind in ("template", "config", "var", "list") else "store"
            parser.add_argument(*names, dest=flag.name, action=action, metavar=flag.metavar)
    return parser


class FlagLayer(msgspec.Struct, frozen=True):
    """What the flags say: config paths to read, and a checked layer to apply last."""

    config_paths: tuple[str, ...]
    layer: dict[str, Any]


def parse_flags(
    argv: Sequence[str], flags: Sequence[Flag] = FLAGS, prog: str = "ctmpl"
) -> FlagLayer:
    """Parse argv into config paths and a checked raw layer; UsageError on bad flags."""
    ns = vars(build_parser(flags, prog).parse_args(list(argv)))
    for name, (_, reason) in IGNORED_FLAGS.items():
        if ns.get(f"ignored {name}") is not None:
            log.warning("%s", warning(f"-{name}", reason))
    raw: dict[str, Any] = {}
    for flag in flags:
        value = ns.get(flag.name)
        if value is None or flag.kind == "config":
            continue
        try:
            _apply(raw, flag, value)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    try:
        layer = parse_layer(raw)
    except ConfigError as exc:
        raise UsageError(f"flag {_flag_for(str(exc), flags)}: {exc}") from None
    return FlagLayer(config_paths=tuple(ns.get("config") or ()), layer=layer)


def _flag_for(message: str, flags: Sequence[Flag]) -> str:
    path = message.split(":", 1)[0].split("[", 1)[0]
    for flag in flags:
        if flag.path == path:
            return f"-{flag.name}"
    return "value"


def _apply(raw: dict[str, Any], flag: Flag, value: Any) -> None:
    if flag.kind == "template":
        raw["template"] = [parse_template_flag(v) for v in value]
        return
    if flag.kind == "var":
        value = dict(parse_var(v, f"-{flag.name}") for v in value)
    elif flag.kind == "auth":
        value = auth_block(f"-{flag.name}", value)
    elif flag.kind == "token":
        log.warning("-%s: a secret on the command line is visible to every user in ps; "
                    "use a file or environment variable instead", flag.name)
    target = raw
    parts = flag.path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def parse_template_flag(text: str) -> dict[str, str]:
    """``src:dest[:command]``; everything after the second colon is the command."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UsageError(f"-template {text!r}: expected src:dest[:command]")
    block = {"source": parts[0], "destination": parts[1]}
    if len(parts) == 3 and parts[2].strip():
        block["command"] = parts[2]
    return block


def parse_var(text: str, what: str = "-var") -> tuple[str, str]:
    """``key=value`` for -var (and other repeatable key=value flags)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{what} {text!r}: expected key=value")
    return key.strip(), value
