"""scripts/nginx.sh as a template command: a rendered file nginx rejects is put back.

ctmpl hands the command the previous bytes of every file it installed in the pass
(``CTMPL_ROLLBACK`` names a manifest in a private state directory, never beside the files);
the script restores them when ``nginx -t`` fails, as the built-in controller does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.daemon import daemon, wait_for, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv
from tests.test_nginx_sh import SCRIPT, run_script

UPSTREAM = """\
upstream backend {
{% for i in service("web") %}
    server {{ i.Address }}:{{ i.Port }}{{ " " ~ i.Meta.extra if i.Meta.extra }};
{% endfor %}
}
"""


def test_rejected_render_is_restored_and_nginx_keeps_serving(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a, b = make_backend("a"), make_backend("b")
    dest = nginx_env.conf_d / "upstream.conf"
    template = tmp_path / "upstream.tmpl"
    template.write_text(UPSTREAM)
    catalog = tmp_path / "catalog.yaml"
    entry = {"id": "a", "address": "127.0.0.1", "port": a.port}
    write_catalog(catalog, {"web": [entry]})
    command = (f"NGINX_CONF={nginx_env.config} NGINX_PID={nginx_env.pid_file} "
               f"NGINX_BIN={nginx_env.binary} sh {SCRIPT}")
    args = ["-catalog", f"file://{catalog}", "-template", f"{template}:{dest}:{command}",
            "-wait", "50ms:200ms", "-log-level", "debug"]
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        nginx_env.wait_body("a\n")
        good = dest.read_text()
        bad_entry = {"id": "b", "address": "127.0.0.1", "port": b.port,
                     "meta": {"extra": "bogus_parameter"}}
        write_catalog(catalog, {"web": [entry, bad_entry]})
        proc.wait_log("is invalid")
        wait_for(lambda: "restored" in proc.text(), what=f"restore\n{proc.text()}")
        assert dest.read_text() == good
        assert nginx_env.fetch() == (200, "a\n")
        state = [line for line in proc.text().splitlines() if "restored" in line]
        assert str(dest) in state[0]
    leftovers = [p.name for p in nginx_env.conf_d.iterdir()]
    assert leftovers == ["upstream.conf"]


def test_new_file_rejected_is_removed(nginx_env: NginxEnv, tmp_path: Path) -> None:
    nginx_env.set_backends()
    bad = nginx_env.write_conf_d("new.conf", "bogus_directive;\n")
    manifest = tmp_path / "rollback"
    manifest.write_text(f"{bad}\t\n")
    res = run_script(nginx_env, CTMPL_ROLLBACK=str(manifest))
    assert res.code == 1, res
    assert not bad.exists()
    assert f"removed {bad}" in res.err


def test_restore_keeps_mode(nginx_env: NginxEnv, tmp_path: Path) -> None:
    live = nginx_env.conf_d / "upstream.conf"
    good = live.read_text()
    copy = tmp_path / "copy"
    copy.write_text(good)
    live.write_text("upstream backend { bogus; }\n")
    os.chmod(live, 0o640)
    manifest = tmp_path / "rollback"
    manifest.write_text(f"{live}\t{copy}\n")
    res = run_script(nginx_env, CTMPL_ROLLBACK=str(manifest))
    assert res.code == 1, res
    assert live.read_text() == good
    assert live.stat().st_mode & 0o777 == 0o640
    assert f"restored {live}" in res.err
    assert sorted(p.name for p in nginx_env.conf_d.iterdir()) == ["upstream.conf"]
