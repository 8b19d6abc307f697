"""Command-line flags, generated from one table with consul-template's names and meanings.

Every flag maps to a dotted config path, so flags form one more raw layer that is checked
by the same schema as config files. ``-flag value``, ``-flag=value`` and ``--flag`` all work.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from ctmpl import __version__
from ctmpl.config.layers import auth_block
from ctmpl.config.schema import parse_layer
from ctmpl.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

Kind = Literal["value", "bool", "template", "config", "var", "auth", "token", "list"]


@dataclass(frozen=True)
class Flag:
    """One flag: its name, the config path it sets, how it parses, and its help."""

    name: str
    path: str
    kind: Kind = "value"
    help: str = ""
    metavar: str = "VALUE"


FLAGS: tuple[Flag, ...] = (
    Flag("config", "", "config", "config file or directory (repeatable; later wins)", "PATH"),
    Flag("template", "template", "template", "template as src:dest[:command] (repeatable)", "T"),
    Flag("catalog", "catalog", help="consul (default), etcd://host:port[,…]/prefix, file://path"),
    Flag("var", "vars", "var", "template variable key=value (repeatable)", "KEY=VALUE"),
    Flag("wait", "wait", help="quiescence min[:max], e.g. 5s:30s", metavar="MIN:MAX"),
    Flag("once", "once", "bool", "render once and exit"),
    Flag("dry", "dry", "bool", "print rendered templates to stdout; write and run nothing"),
    Flag("log-level", "log_level", help="trace, debug, info, warn, err", metavar="LEVEL"),
    Flag("log-format", "log_format", help="text or json", metavar="FORMAT"),
    Flag("pid-file", "pid_file", help="write the process id here while running", metavar="PATH"),
    Flag("kill-signal", "kill_signal", help="signal that stops ctmpl (default SIGINT)"),
    Flag("reload-signal", "reload_signal", help="signal that reloads config (default SIGHUP)"),
    Flag("max-stale", "max_stale", help="allow stale Consul reads up to this age", metavar="DUR"),
    Flag("block-query-wait", "block_query_wait", help="blocking query wait time", metavar="DUR"),
    Flag("command-error-fatal", "command_error_fatal", "bool", "exit when a command fails"),
    Flag("missing-dependency-warn", "missing_dependency_warn", help="warn after", metavar="DUR"),
    Flag("proxy", "proxy", help="built-in proxy control: none or nginx", metavar="KIND"),
    Flag("nginx-bin", "nginx.binary", help="nginx binary (default nginx)", metavar="PATH"),
    Flag("nginx-conf", "nginx.config", help="nginx main config", metavar="PATH"),
    Flag("nginx-pid", "nginx.pid_file", help="nginx pid file", metavar="PATH"),
    Flag("nginx-prefix", "nginx.prefix", help="nginx -p prefix", metavar="PATH"),
    Flag("consul-addr", "consul.address", help="Consul agent address", metavar="ADDR"),
    Flag("consul-token", "consul.token", "token", "ACL token (prefer -consul-token-file)"),
    Flag("consul-token-file", "consul.token_file", help="file holding the ACL token"),
    Flag("consul-auth", "consul.auth", "auth", "HTTP basic auth user[:password]"),
    Flag("consul-ssl", "consul.ssl.enabled", "bool", "use HTTPS"),
    Flag("consul-ssl-verify", "consul.ssl.verify", "bool", "verify the server certificate"),
    Flag("consul-ssl-ca-cert", "consul.ssl.ca_cert", help="CA certificate file", metavar="PATH"),
    Flag("consul-ssl-ca-path", "consul.ssl.ca_path", help="CA certificates directory"),
    Flag("consul-ssl-cert", "consul.ssl.cert", help="client certificate file", metavar="PATH"),
    Flag("consul-ssl-key", "consul.ssl.key", help="client key file", metavar="PATH"),
    Flag("consul-ssl-server-name", "consul.ssl.server_name", help="TLS server name (SNI)"),
    Flag("consul-retry", "consul.retry.enabled", "bool", "retry failed queries"),
    Flag("consul-retry-attempts", "consul.retry.attempts", help="0 = forever", metavar="N"),
    Flag("consul-retry-backoff", "consul.retry.backoff", help="first retry delay", metavar="DUR"),
    Flag("consul-retry-max-backoff", "consul.retry.max_backoff", help="retry delay cap"),
    Flag("consul-max-connections", "consul.max_connections", help="HTTP connection budget",
         metavar="N"),
    Flag("etcd-ca-cert", "etcd.ssl.ca_cert", help="etcd CA certificate file", metavar="PATH"),
    Flag("etcd-cert", "etcd.ssl.cert", help="etcd client certificate file", metavar="PATH"),
    Flag("etcd-key", "etcd.ssl.key", help="etcd client key file", metavar="PATH"),
    Flag("etcd-username", "etcd.username", help="etcd user"),
    Flag("etcd-password", "etcd.password", "token", "etcd password"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} -help)")

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        # allow_abbrev=False covers only --long options: argparse would still expand
        # "-temp" to -template. Go's flag package (consul-template) takes exact names only.
        return []


def build_parser(
    flags: Sequence[Flag] = FLAGS, prog: str = "ctmpl"
) -> argparse.ArgumentParser:
    """The argument parser, one option per table row, single and double dash."""
    parser = _Parser(prog=prog, allow_abbrev=False, add_help=False)
    parser.add_argument("-h", "-help", "--help", action="help", help="show this help")
    parser.add_argument("-v", "-version", "--version", action="version", version=__version__)
    for flag in flags:
        names = [f"-{flag.name}", f"--{flag.name}"]
        if flag.kind == "bool":
            parser.add_argument(*names, dest=flag.name, nargs="?", const="true", metavar="BOOL",
                                help=flag.help)
        else:
            action = "append" if flag.kind in ("template", "config", "var", "list") else "store"
            parser.add_argument(*names, dest=flag.name, action=action, metavar=flag.metavar,
                                help=flag.help)
    return parser


@dataclass(frozen=True)
class FlagLayer:
    """What the flags say: config paths to read, and a checked layer to apply last."""

    config_paths: tuple[str, ...]
    layer: dict[str, Any]


def parse_flags(
    argv: Sequence[str], flags: Sequence[Flag] = FLAGS, prog: str = "ctmpl"
) -> FlagLayer:
    """Parse argv into config paths and a checked raw layer; UsageError on bad flags."""
    ns = vars(build_parser(flags, prog).parse_args(list(argv)))
    raw: dict[str, Any] = {}
    for flag in flags:
        value = ns.get(flag.name)
        if value is None or flag.kind == "config":
            continue
        _apply(raw, flag, value)
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
