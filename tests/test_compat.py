"""consul-template configs load: comments, ignored keys (one warning each), JSON perms."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctmpl.brain import Brain
from ctmpl.config.compat import IGNORED
from ctmpl.config.files import load_file
from ctmpl.config.flags import parse_flags
from ctmpl.config.schema import TOP_SCHEMA, parse_layer
from ctmpl.errors import ConfigError, TemplateError
from tests.foundation_util import ROOT, load, run_cli, template


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.j2").write_text("x\n")
    return tmp_path


COMMENTED = """\
# a consul-template config
// with every comment style
/* a block
   comment */
consul { # after a brace
  address = "127.0.0.1:8500" // trailing
  /* inside a block */
  retry {
    # nested
    attempts = 3
  }
}
wait {
  min = "1s" # trailing
  max = "2s"
}
template {
  # first template
  source      = "in.j2"
  destination = "a.conf"
  wait {
    // inside a nested block of a list of blocks
    min = "1s"
  }
}
template {
  source      = "in.j2" /* inline */
  destination = "b.conf"
  command     = ["sh", "-c", # a comment inside a list
                 "true"]
}
"""


def test_comments_are_ignored_wherever_they_appear(src: Path) -> None:
    (src / "c.hcl").write_text(COMMENTED)
    config = load(["-config", "c.hcl"])
    assert config.catalog.consul.retry.attempts == 3
    assert [t.destination for t in config.templates] == ["a.conf", "b.conf"]
    assert config.templates[1].command == "sh -c true"
    assert config.ignored_keys == ()


def test_json_perms_number_is_the_mode_and_a_string_is_octal(src: Path) -> None:
    (src / "c.json").write_text(json.dumps({"template": [
        {"source": "in.j2", "destination": "a", "perms": 420},
        {"source": "in.j2", "destination": "b", "perms": "0644"},
        {"source": "in.j2", "destination": "c", "perms": 384},
    ]}))
    modes = [t.perms for t in load(["-config", "c.json"]).templates]
    assert modes == [0o644, 0o644, 0o600]


def test_hcl_perms_is_octal(src: Path) -> None:
    (src / "c.hcl").write_text(
        'template {\n  source = "in.j2"\n  destination = "a"\n  perms = 0640\n}\n'
        'template {\n  source = "in.j2"\n  destination = "b"\n  perms = "0600"\n}\n'
    )
    assert [t.perms for t in load(["-config", "c.hcl"]).templates] == [0o640, 0o600]


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for ``a.b``; ``template.x`` becomes a template block."""
    head, _, rest = dotted.partition(".")
    if head == "template":
        return {"template": [{"source": "in.j2", "destination": "o", **nested(rest, value)}]}
    return {head: nested(rest, value) if rest else value}


@pytest.mark.parametrize("dotted", sorted(IGNORED))
def test_every_ignored_key_loads_with_one_warning_naming_its_path(dotted: str) -> None:
    ignored: list[str] = []
    parse_layer(nested(dotted, {"anything": "x"}), ignored=ignored)
    shown = dotted.replace("template.", "template[0].")
    assert ignored == [
        f"{shown}: accepted for consul-template compatibility, ignored ({IGNORED[dotted]})"
    ]


@given(st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True))
def test_a_key_neither_knows_is_an_error(name: str) -> None:
    known = {p.split(".")[0] for p in IGNORED}
    raw = {name: "x"}
    if name in known or name in TOP_SCHEMA:  # every key ctmpl knows, catalogs added included
        return
    with pytest.raises(ConfigError, match=rf"^{name}: unknown key$"):
        parse_layer(raw, ignored=[])


def test_vault_functions_fail_the_template_clearly() -> None:
    with pytest.raises(TemplateError, match=r"secret\(\): Vault is not supported"):
        template('{{ secret("secret/db").Data.password }}').render(None, Brain())  # type: ignore[arg-type]


def test_function_denylist_is_honoured(src: Path) -> None:
    (src / "c.hcl").write_text(
        'template {\n  contents = "{{ env(\\"HOME\\") }}"\n  destination = "o"\n'
        '  function_denylist = ["env"]\n  function_blacklist = ["file"]\n}\n'
    )
    tcfg = load(["-config", "c.hcl"]).templates[0]
    assert tcfg.function_denylist == ("env", "file")
    tpl = template(tcfg.contents, function_denylist=tcfg.function_denylist)
    with pytest.raises(TemplateError, match=r"env\(\): denied by the template's function_denylist"):
        tpl.render(None, Brain())  # type: ignore[arg-type]


CT_019 = """\
# consul-template 0.19 style, as found in the wild
consul {
  address = "127.0.0.1:8500"
  token   = ""
  retry { enabled = true  attempts = 12  backoff = "250ms"  max_backoff = "1m" }
  ssl { enabled = false  verify = true }
  transport { dial_keep_alive = "10s"  max_idle_conns_per_host = 5 }
}
syslog { enabled = true  facility = "LOCAL5" }
vault {
  address = "https://vault.service.consul:8200"
  renew_token = false
  ssl { enabled = true }
}
dedup { enabled = false  prefix = "consul-template/dedup/" }
log_level = "info"
wait { min = "0s" }
template {
  source          = "in.tpl"
  destination     = "out.conf"
  command         = "true"
  command_timeout = "60s"
  perms           = 0600
  backup          = true
  left_delimiter  = "[["
  right_delimiter = "]]"
  error_fatal     = false
  user            = "nginx"
  wait { min = "0s" }
}
"""


def test_consul_template_019_config_loads_warns_once_per_key_and_renders(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text("kv:\n  app/greeting: hello\n")
    (tmp_path / "in.tpl").write_text('greeting [[ key("app/greeting") ]]\n')
    (tmp_path / "ct.hcl").write_text(CT_019)
    proc = run_cli(["-config", "ct.hcl", "-catalog", "file://catalog.yaml", "-once"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.conf").read_text() == "greeting hello\n"
    assert (tmp_path / "out.conf").stat().st_mode & 0o777 == 0o600
    warned = [line for line in proc.stderr.splitlines() if "[WARNING]" in line]
    paths = ["consul.transport", "syslog", "vault", "dedup", "template[0].error_fatal",
             "template[0].user"]
    assert len(warned) == len(paths), proc.stderr
    for path in paths:
        assert sum(f"ct.hcl: {path}: accepted for consul-template compatibility" in w
                   for w in warned) == 1, path


def test_shipped_hcl_and_json_examples_load() -> None:
    examples = sorted((ROOT / "examples").rglob("*.hcl")) + sorted(
        (ROOT / "examples").rglob("*.json")
    )
    assert examples, "no shipped example configs found"
    for path in examples:
        layer = parse_layer(load_file(path), ignored=[])
        for block in layer.get("template", []):
            assert block.get("destination"), path


def test_shipped_example_config_finalizes(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "ctmpl.hcl").read_text()
    text = text.replace("/etc/ctmpl/nginx.conf.j2", str(ROOT / "templates" / "nginx.conf.j2"))
    (tmp_path / "ctmpl.hcl").write_text(text)
    config = load(["-config", str(tmp_path / "ctmpl.hcl")])
    assert config.templates and config.ignored_keys == ()


def test_systemd_unit_command_line_parses() -> None:
    unit = (ROOT / "contrib" / "systemd" / "ctmpl.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = exec_start.removeprefix("ExecStart=").split()[1:]
    flags = parse_flags(argv)
    assert flags.config_paths == ("/etc/ctmpl/",)


def test_readme_migration_section_lists_every_ignored_key_and_flag() -> None:
    from ctmpl.config.compat import IGNORED_FLAGS

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Migrating from consul-template")[1].split("\n## ")[0]
    for dotted in IGNORED:
        assert f"`{dotted}`" in section, dotted
    for name in IGNORED_FLAGS:
        assert f"`-{name}`" in section, name
    for key in ("-exec", "-parse-only"):
        assert f"`{key}`" in section


def test_shipped_container_entrypoint_command_line_parses() -> None:
    script = (ROOT / "contrib" / "docker" / "ctmpl-entrypoint.sh").read_text()
    script = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", script)  # ${VAR:-default} -> default
    lines = script.replace("\\\n", " ").splitlines()
    exec_line = next(line.strip() for line in lines if line.strip().startswith('exec "$ctmpl"'))
    argv = shlex.split(exec_line.replace('"$@"', ""))[2:]
    assert argv and parse_flags(argv).layer.get("proxy") == "nginx"
    for line in lines:  # the flags it prepends with `set --` (values it knows)
        args = shlex.split(line.strip())[2:] if line.strip().startswith("set -- -") else []
        args = [a for a in args if a != "$@"]
        if args and not any("$" in a for a in args):
            parse_flags(args)


def test_no_ignored_key_is_one_ctmpl_implements() -> None:
    from ctmpl.config.schema import TOP_SCHEMA

    for dotted in IGNORED:
        node: Any = TOP_SCHEMA
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        assert not (isinstance(node, dict) and parts[-1] in node), dotted
