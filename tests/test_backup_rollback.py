"""A rejected pass also undoes the ``dest.bak`` it wrote (``backup = true``).

With ``include conf.d/*;`` nginx loads ``upstream.conf.bak`` as config: the backup written
during a pass that fails its check must not stay behind, or the config on disk stays
invalid (the next nginx start fails) after the destination itself was rolled back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ctmpl.check import install_checked
from ctmpl.errors import CheckFailed
from ctmpl.install import InstallOptions
from tests.daemon import render_once
from tests.fixtures_nginx import NginxEnv

# Fails when a backup sits beside the file, as `nginx -t` does with `include conf.d/*;`.
NO_BAK = "test ! -e {{staged}}.bak"


async def test_installed_check_removes_a_backup_it_created(tmp_path: Path) -> None:
    dest = tmp_path / "snippet.conf"
    dest.write_bytes(b"old\n")
    with pytest.raises(CheckFailed):
        await install_checked(NO_BAK, dest, b"new\n", InstallOptions(backup=True))
    assert dest.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snippet.conf"]


async def test_installed_check_restores_an_older_backup(tmp_path: Path) -> None:
    dest = tmp_path / "snippet.conf"
    dest.write_bytes(b"old\n")
    (tmp_path / "snippet.conf.bak").write_bytes(b"older\n")
    with pytest.raises(CheckFailed):
        await install_checked("exit 1", dest, b"new\n", InstallOptions(backup=True))
    assert dest.read_bytes() == b"old\n"
    assert (tmp_path / "snippet.conf.bak").read_bytes() == b"older\n"


def test_nginx_include_star_backup_is_undone(tmp_path: Path, nginx_env: NginxEnv) -> None:
    nginx_env.config.write_text(nginx_env.main_conf().replace("/*.conf;", "/*;"))
    dest = nginx_env.conf_d / "upstream.conf"
    before = dest.read_bytes()
    template = tmp_path / "upstream.j2"
    template.write_text("upstream backend {\n    server 127.0.0.1:9 down;\n    # new\n}\n")
    hcl = tmp_path / "ctmpl.hcl"
    hcl.write_text(f'template {{\n  source = "{template}"\n  destination = "{dest}"\n'
                   "  backup = true\n}\n")
    args = ["-config", str(hcl), "-catalog", f"file://{tmp_path / 'catalog.yaml'}",
            "-proxy", "nginx", "-nginx-conf", str(nginx_env.config),
            "-nginx-pid", str(nginx_env.pid_file)]
    (tmp_path / "catalog.yaml").write_text("services: {}\n")
    done = render_once(args, template, tmp_path / "other.conf")
    assert done.returncode == 8, done.stderr
    assert "upstream.conf.bak" in done.stderr
    assert dest.read_bytes() == before
    assert sorted(p.name for p in nginx_env.conf_d.iterdir()) == ["upstream.conf"]
    test = subprocess.run([nginx_env.binary, "-t", "-c", str(nginx_env.config)],
                          capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stderr
