"""With -proxy nginx, nothing but the destination appears where nginx's include globs look.

nginx configs say ``include conf.d/*;``, ``include conf.d/*.conf;`` or
``include sites-enabled/*;``: a rollback copy (``dest.bak``) in that directory is loaded as
config, duplicates every upstream and makes every later change fail ``nginx -t``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon import daemon, wait_for, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv
from tests.test_daemon_nginx import instance, seen_backends

UPSTREAM = """\
upstream backend {
{% for i in service("web") %}
    server {{ i.Address }}:{{ i.Port }};
{% endfor %}
}
"""


@pytest.mark.parametrize(
    ("directory", "pattern"),
    [("conf.d", "*"), ("conf.d", "*.conf"), ("sites-enabled", "*")],
)
def test_changes_go_live_with_an_include_glob(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend],
    directory: str, pattern: str,
) -> None:
    included = nginx_env.root / directory
    included.mkdir(exist_ok=True)
    for old in nginx_env.conf_d.iterdir():
        old.unlink()
    nginx_env.config.write_text(nginx_env.main_conf().replace(
        f"include {nginx_env.conf_d}/*.conf;", f"include {included}/{pattern};"))
    dest = included / "upstream.conf"
    dest.write_text("upstream backend { server 127.0.0.1:9 down; }\n")
    template = tmp_path / "upstream.tmpl"
    template.write_text(UPSTREAM)
    catalog = tmp_path / "catalog.yaml"
    a, b = make_backend("a"), make_backend("b")
    write_catalog(catalog, {"web": [instance(a)]})
    args = ["-catalog", f"file://{catalog}", "-template", f"{template}:{dest}",
            "-proxy", "nginx", "-nginx-conf", str(nginx_env.config),
            "-nginx-pid", str(nginx_env.pid_file), "-wait", "50ms:200ms"]
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        nginx_env.wait_body("a\n")
        write_catalog(catalog, {"web": [instance(b)]})
        wait_for(lambda: seen_backends(nginx_env) == {"b"},
                 what=f"b to take over\n{proc.text()}")
        write_catalog(catalog, {"web": [instance(a), instance(b)]})
        wait_for(lambda: seen_backends(nginx_env) == {"a", "b"},
                 what=f"a and b to serve\n{proc.text()}")
        assert "rolling back" not in proc.text()
    assert sorted(p.name for p in included.iterdir()) == ["upstream.conf"]
    on_disk = subprocess.run([nginx_env.binary, "-t", "-c", str(nginx_env.config)],
                             capture_output=True, text=True, check=False, timeout=30)
    assert on_disk.returncode == 0, on_disk.stderr
