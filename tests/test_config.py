"""Config layering (env < files < flags), HCL/JSON files and their errors."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from ctmpl.config.layers import env_layer
from ctmpl.config.model import Wait
from ctmpl.errors import ConfigError, TemplateError, UsageError
from tests.foundation_util import load


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.j2").write_text("x\n")
    return tmp_path


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    config = load([])
    assert config.wait == Wait()
    assert config.catalog.kind == "consul"
    assert config.catalog.consul.address == "127.0.0.1:8500"
    assert config.log_level == "info"
    assert not config.once


def test_env_then_files_then_flags(src: Path) -> None:
    env = {"CONSUL_HTTP_ADDR": "env:1", "CONSUL_HTTP_TOKEN": "envtok"}
    assert load([], env).catalog.consul.address == "env:1"
    conf = write(src / "a.hcl", 'consul {\n  address = "file:2"\n}\n')
    config = load(["-config", conf], env)
    assert config.catalog.consul.address == "file:2"
    assert config.catalog.consul.token == "envtok"  # untouched by the file: env stays
    config = load(["-config", conf, "-consul-addr", "flag:3"], env)
    assert config.catalog.consul.address == "flag:3"


def test_config_directory_lexical_order_later_wins(src: Path) -> None:
    confdir = src / "conf.d"
    confdir.mkdir()
    write(confdir / "20-b.hcl", 'log_level = "err"\nmax_stale = "5s"\n')
    write(confdir / "10-a.hcl", 'log_level = "debug"\npid_file = "/a.pid"\n')
    write(confdir / ".hidden.hcl", "this is not hcl {{{")
    config = load(["-config", str(confdir)])
    assert config.log_level == "err"
    assert config.pid_file == "/a.pid"
    assert config.catalog.max_stale == 5.0


def test_repeated_config_flags_later_wins(src: Path) -> None:
    a = write(src / "a.hcl", 'log_level = "debug"\n')
    b = write(src / "b.hcl", 'log_level = "warn"\n')
    assert load(["-config", a, "-config", b]).log_level == "warn"
    assert load(["-config", b, "-config", a]).log_level == "debug"


def test_template_blocks_from_files_and_flags_are_all_kept(src: Path) -> None:
    conf = write(src / "a.hcl", """
template {
  source      = "in.j2"
  destination = "one"
}
template {
  contents    = "inline"
  destination = "two"
  command     = "echo two"
}
""")
    config = load(["-config", conf, "-template", "in.j2:three"])
    assert [t.destination for t in config.templates] == ["one", "two", "three"]
    assert config.templates[1].contents == "inline"
    assert config.templates[1].command == "echo two"


def test_a_template_without_its_own_wait_gets_the_global_one_at_load(src: Path) -> None:
    conf = write(src / "a.hcl", """
wait = "3s:9s"
template {
  source      = "in.j2"
  destination = "out"
}
template {
  source      = "in.j2"
  destination = "out2"
  wait        = "1s:2s"
}
""")
    first, second = load(["-config", conf]).templates
    assert (first.wait, second.wait) == (Wait(3.0, 9.0), Wait(1.0, 2.0))
    assert load(["-template", "in.j2:out", "-wait", "2s:5s"]).templates[0].wait == Wait(2.0, 5.0)


def test_template_block_fields(src: Path) -> None:
    conf = write(src / "a.hcl", """
wait {
  min = "2s"
  max = "8s"
}
template {
  source          = "in.j2"
  destination     = "out"
  perms           = 0644
  backup          = true
  command         = ["nginx", "-s", "reload"]
  command_timeout = "5s"
  check           = "nginx -t -c {{staged}}"
  check_mode      = "installed"
  wait            = "1s:3s"
  error_on_missing_key = true
  sandbox_path    = "/srv"
}
template {
  source      = "in.j2"
  destination = "out2"
  perms       = "0600"
  wait {
    min = "4s"
  }
}
""")
    config = load(["-config", conf])
    first, second = config.templates
    assert config.wait == Wait(2.0, 8.0)
    assert first.perms == 0o644
    assert first.backup is True
    assert first.command == "nginx -s reload"
    assert first.command_timeout == 5.0
    assert first.check == "nginx -t -c {{staged}}"
    assert first.check_mode == "installed"
    assert first.wait == Wait(1.0, 3.0)
    assert first.error_on_missing_key
    assert first.sandbox_path == "/srv"
    assert second.perms == 0o600
    assert second.wait == Wait(4.0, 16.0)
    assert second.perms != 644


def test_heredoc_contents(src: Path) -> None:
    conf = write(src / "a.hcl", """
template {
  destination = "out"
  contents = <<EOT
upstream a {
    server 1.2.3.4:80;
}
EOT
}
template {
  destination = "out2"
  contents = <<-EOT
    line one
      indented
    EOT
}
""")
    first, second = load(["-config", conf]).templates
    assert first.contents == "upstream a {\n    server 1.2.3.4:80;\n}\n"
    assert second.contents == "line one\n  indented\n"


def test_json_config(src: Path) -> None:
    conf = write(src / "a.json", json.dumps({
        "log_level": "debug",
        "wait": {"min": "1s", "max": "2s"},
        "consul": {"address": "j:1", "retry": {"attempts": 2}},
        "template": [{"source": "in.j2", "destination": "out",
                      "command": "echo \"quoted\"", "contents": ""},
                     {"contents": "\"x\"", "destination": "out2"}],
    }))
    config = load(["-config", conf])
    assert config.log_level == "debug"
    assert config.wait == Wait(1.0, 2.0)
    assert config.catalog.consul.address == "j:1"
    assert config.catalog.consul.retry.attempts == 2
    assert config.templates[0].command == 'echo "quoted"'
    assert config.templates[1].contents == '"x"'


def test_json_single_template_object(src: Path) -> None:
    conf = write(src / "a.json", json.dumps({"template": {"source": "in.j2", "destination": "o"}}))
    assert load(["-config", conf]).templates[0].destination == "o"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('template {\n  source = "in.j2"\n  destination = "o"\n  wait {\n    mni = "1s"\n  }\n}\n',
         r"template\[0\]\.wait\.mni: unknown key"),
        ('template {\n  source = "in.j2"\n  destination = "o"\n}\ntemplate {\n'
         '  source = "in.j2"\n  destination = "p"\n  destinaton = "x"\n}\n',
         r"template\[1\]\.destinaton: unknown key"),
        ('consul {\n  retry {\n    atempts = 1\n  }\n}\n', r"consul\.retry\.atempts: unknown key"),
        ('logg_level = "info"\n', r"logg_level: unknown key"),
        ('once = "yes"\n', r"once: expected true or false, got 'yes'"),
        ('max_stale = "soon"\n', r"max_stale: 'soon' is not a duration"),
        ('consul {\n  retry {\n    attempts = "many"\n  }\n}\n',
         r"consul\.retry\.attempts: expected"),
        ('template {\n  source = "in.j2"\n  destination = "o"\n  perms = "rwx"\n}\n',
         r"template\[0\]\.perms: expected an octal file mode"),
        ('template {\n  source = "in.j2"\n  destination = "o"\n  check_mode = "later"\n}\n',
         r"template\[0\]\.check_mode: 'later' is not one of staged, installed"),
        ('wait = "5s:1s"\n', r"wait: max \(1s\) must not be less than min \(5s\)"),
        ('vault {\n  address = "https://vault:8200"\n}\nvalut {\n}\n', r"valut: unknown key"),
        ('consul {\n  transport {\n  }\n  namespce = "x"\n}\n', r"consul\.namespce: unknown key"),
        ('template = "x"\n', r"template\[0\]: expected a block"),
        ('exec {\n  kill_signal = "SIGNOPE"\n}\n', r"exec\.kill_signal: unknown signal"),
        ('exec {\n  comand = "x"\n}\n', r"exec\.comand: unknown key"),
        ('exec {\n  command = "nginx -g \'daemon off;"\n}\n', r"exec\.command: No closing"),
        ('exec {\n  env {\n    custom = ["NOEQUALS"]\n  }\n}\n',
         r"exec\.env\.custom: 'NOEQUALS' is not KEY=VALUE"),
        ('status_addr = "9080"\n', r"status_addr: '9080' is not host:port"),
        ('log_level = \n', r"invalid HCL"),
    ],
)
def test_config_errors_name_file_and_dotted_path(src: Path, text: str, message: str) -> None:
    conf = write(src / "bad.hcl", text)
    with pytest.raises(ConfigError, match=rf"^config .*bad\.hcl.*: .*{message}"):
        load(["-config", conf])


def test_invalid_json_names_line_and_column(src: Path) -> None:
    conf = write(src / "bad.json", '{\n  "log_level": "info",\n  oops\n}\n')
    with pytest.raises(ConfigError, match=r"^config .*bad\.json:3:3: invalid JSON"):
        load(["-config", conf])


def test_missing_config_path_is_a_bad_flag_value(src: Path) -> None:
    with pytest.raises(UsageError, match=r"^-config .*nope\.hcl: no such file or directory"):
        load(["-config", str(src / "nope.hcl")])


def test_template_needs_exactly_one_of_source_and_contents(src: Path) -> None:
    conf = write(src / "a.hcl", 'template {\n  destination = "o"\n}\n')
    with pytest.raises(ConfigError, match=r"template\[0\]: set exactly one of source or contents"):
        load(["-config", conf])
    conf = write(src / "b.hcl", 'template {\n  source = "in.j2"\n}\n')
    with pytest.raises(ConfigError, match=r"template\[0\]\.destination: required"):
        load(["-config", conf])


def test_missing_template_file(src: Path) -> None:
    with pytest.raises(TemplateError, match=r"template nope\.j2: no such file"):
        load(["-template", "nope.j2:out"])


def test_consul_env_vars(tmp_path: Path) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("filetok\n")
    env = {
        "CONSUL_HTTP_ADDR": "10.0.0.1:8501",
        "CONSUL_HTTP_TOKEN_FILE": str(token_file),
        "CONSUL_HTTP_AUTH": "alice:pw",
        "CONSUL_HTTP_SSL": "true",
        "CONSUL_HTTP_SSL_VERIFY": "false",
        "CONSUL_CACERT": "/ca",
        "CONSUL_CAPATH": "/capath",
        "CONSUL_CLIENT_CERT": "/cert",
        "CONSUL_CLIENT_KEY": "/key",
        "CONSUL_TLS_SERVER_NAME": "sni",
        "UNRELATED": "x",
    }
    consul = load([], env).catalog.consul
    assert consul.address == "10.0.0.1:8501"
    assert consul.token == "filetok"
    assert (consul.auth_username, consul.auth_password) == ("alice", "pw")
    assert consul.ssl.enabled and not consul.ssl.verify
    assert (consul.ssl.ca_cert, consul.ssl.ca_path, consul.ssl.cert, consul.ssl.key,
            consul.ssl.server_name) == ("/ca", "/capath", "/cert", "/key", "sni")


def test_bad_env_var_names_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"^environment: consul\.ssl\.enabled: expected true"):
        env_layer({"CONSUL_HTTP_SSL": "maybe"})


def test_token_file_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(UsageError, match=r"^flag -consul-token-file: consul.token_file: cannot"):
        load(["-consul-token-file", str(missing)])
    conf = write(tmp_path / "a.hcl", f'consul {{\n  token_file = "{missing}"\n}}\n')
    with pytest.raises(ConfigError, match=r"consul.token_file: cannot read"):
        load(["-config", conf])


def test_header_values_with_control_characters_are_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("sekrit\nX-Injected: 1\n")  # a trailing newline alone is stripped
    with pytest.raises(ConfigError, match=r"consul.token: contains a control character") as info:
        load(["-consul-token-file", str(token)])
    assert "sekrit" not in str(info.value)
    conf = write(tmp_path / "a.hcl", 'consul {\n  auth {\n    username = "a\\rb"\n  }\n}\n')
    with pytest.raises(ConfigError, match=r"consul.auth.username: contains a control"):
        load(["-config", conf])
    conf = write(tmp_path / "b.hcl", 'consul {\n  auth {\n    username = "u"\n'
                                     '    password = "\u20ac"\n  }\n}\n')
    with pytest.raises(ConfigError, match=r"consul.auth.password: basic auth takes Latin-1"):
        load(["-config", conf])


def test_consul_token_never_in_config_errors(src: Path) -> None:
    conf = write(src / "a.hcl", 'consul {\n  token = "sekrit-tok"\n  tokn = "x"\n}\n')
    with pytest.raises(ConfigError) as info:
        load(["-config", conf])
    assert "sekrit-tok" not in str(info.value)
    assert "consul.tokn: unknown key" in str(info.value)


def test_catalog_urls() -> None:
    etcd = load(["-catalog", "etcd://h1:2379,h2:2380/services/"]).catalog
    assert etcd.kind == "etcd"
    assert etcd.etcd.endpoints == ("h1:2379", "h2:2380")
    assert etcd.etcd.prefix == "/services"  # the URL path exactly
    with pytest.raises(UsageError, match=r"^flag -catalog: catalog 'redis://x'"):
        load(["-catalog", "redis://x"])
    with pytest.raises(UsageError, match="not host:port"):
        load(["-catalog", "etcd://h1/x"])


def test_zk_catalog_url_and_block(src: Path) -> None:
    zk = load(["-catalog", "zk://h1:2181,h2,[fd00::1]/services/"]).catalog
    assert zk.kind == "zk"
    assert zk.zk.hosts == ("h1:2181", "h2:2181", "[fd00::1]:2181")
    assert zk.zk.prefix == "/services"
    assert load(["-catalog", "zk://h1"]).catalog.zk.prefix == "/"
    conf = write(src / "zk.hcl", 'zk {\n  session_timeout = "4s"\n  username = "u"\n'
                 '  password = "p"\n}\n')
    block = load(["-config", conf, "-catalog", "zk://h1/s"]).catalog.zk
    assert (block.session_timeout, block.username, block.password) == (4.0, "u", "p")
    for bad, why in (("zk://h1/a//b", "not a ZooKeeper path"), ("zk://h1:99999/s", "host"),
                     ("zk:///s", "expected zk://")):
        with pytest.raises(UsageError, match=why):
            load(["-catalog", bad])


def test_vars_merge_global_then_template(src: Path) -> None:
    conf = write(src / "a.hcl", """
vars = { a = "file", b = "file" }
template {
  source = "in.j2"
  destination = "o"
  vars = { b = "tpl" }
}
""")
    config = load(["-config", conf, "-var", "a=flag"])
    assert dict(config.templates[0].vars) == {"a": "flag", "b": "tpl"}


def test_flag_value_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        load(["-log-format", "xml"])


def test_consul_connection_budget_stays_under_the_agents_limit(src: Path) -> None:
    assert load([]).catalog.consul.max_connections == 5
    conf = write(src / "c.hcl", "consul {\n  max_connections = 250\n}\n")
    with pytest.raises(ConfigError, match=r"consul.max_connections: 250 is outside 5-190"):
        load(["-config", conf])


def test_haproxy_block(src: Path) -> None:
    conf = write(src / "a.hcl", """
proxy = "haproxy"
haproxy {
  binary         = "/usr/sbin/haproxy"
  config         = ["/etc/haproxy/base.cfg", "/etc/haproxy/conf.d"]
  master_socket  = "/run/haproxy-master.sock"
  admin_socket   = "/run/haproxy/admin.sock"
  pid_file       = "/run/haproxy.pid"
  reload_timeout = "20s"
  runtime_api    = false
}
""")
    config = load(["-config", conf])
    assert config.proxy == "haproxy"
    assert config.haproxy.config == ("/etc/haproxy/base.cfg", "/etc/haproxy/conf.d")
    assert config.haproxy.admin_socket == "/run/haproxy/admin.sock"
    assert config.haproxy.reload_timeout == 20.0
    assert config.haproxy.runtime_api is False


@pytest.mark.parametrize(("body", "message"), [
    ('haproxy { config = [] }', "haproxy.config: at least one config file"),
    ('haproxy { master_socket = "" }', "haproxy.master_socket: required"),
    ('haproxy { sockets = "x" }', "haproxy.sockets: unknown key"),
])
def test_haproxy_block_errors(src: Path, body: str, message: str) -> None:
    conf = write(src / "a.hcl", body + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(["-config", conf])


def test_exec_block_as_consul_template_writes_it(src: Path) -> None:
    conf = write(src / "exec.hcl", """
exec {
  command = ["nginx", "-g", "daemon off;"]
  reload_signal = "SIGHUP"
  kill_signal = "SIGQUIT"
  kill_timeout = "5s"
  splay = "1s"
  env {
    pristine = false
    custom = ["A=1"]
    whitelist = ["PATH"]
    denylist = ["CONSUL_*"]
  }
}
status_addr = "[::1]:9080"
""")
    config = load(["-config", conf])
    assert config.exec.command == ("nginx", "-g", "daemon off;")
    assert (config.exec.reload_signal, config.exec.kill_signal) == (signal.SIGHUP, signal.SIGQUIT)
    assert (config.exec.kill_timeout, config.exec.splay) == (5.0, 1.0)
    assert config.exec.env_custom == ("A=1",)
    assert (config.exec.env_allow, config.exec.env_deny) == (("PATH",), ("CONSUL_*",))
    assert config.status_addr == "[::1]:9080"
    off = write(src / "off.hcl", 'exec {\n  command = "x"\n  enabled = false\n}\n')
    assert not load(["-config", off]).exec.enabled
    assert load([]).exec.reload_signal is None and not load([]).exec.enabled
