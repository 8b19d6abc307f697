"""create_dest_dirs = false: neither the check nor the install creates a missing directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ctmpl.check import check_staged
from ctmpl.errors import InstallError


def run_once(tmp_path: Path, check_mode: str) -> subprocess.CompletedProcess[str]:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("services: {}\n")
    dest = tmp_path / "missing" / "out.conf"
    config = tmp_path / "ctmpl.hcl"
    config.write_text(
        f'catalog = "file://{catalog}"\n'
        "template {\n"
        '  contents = "hello"\n'
        f'  destination = "{dest}"\n'
        '  check = "true {{staged}}"\n'
        f'  check_mode = "{check_mode}"\n'
        "  create_dest_dirs = false\n"
        "}\n"
    )
    return subprocess.run([sys.executable, "-m", "ctmpl", "-config", str(config), "-once"],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("check_mode", ["staged", "installed"])
def test_check_creates_no_directory(tmp_path: Path, check_mode: str) -> None:
    proc = run_once(tmp_path, check_mode)
    assert proc.returncode == 6, proc.stderr
    assert f"{tmp_path / 'missing'}" in proc.stderr
    assert not (tmp_path / "missing").exists()


async def test_staged_check_names_the_missing_directory(tmp_path: Path) -> None:
    dest = tmp_path / "missing" / "out.conf"
    with pytest.raises(InstallError, match=r"^install .*out.conf: cannot stage in .*missing"):
        await check_staged("true", dest, b"x\n", create_dirs=False)
    assert not dest.parent.exists()
