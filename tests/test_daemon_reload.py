"""The daemon's config side: exit codes before the first render, SIGHUP re-applying
everything, startup and recovery logs. Real ``python -m ctmpl`` processes, file catalogs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.daemon import Daemon, daemon, wait_for, write_atomic
from tests.fixtures_consul import ConsulFixture

DIVIDE = '{{ 1000 // (key("n") | int) }}\n'


def setup(tmp_path: Path, template: str, kv: dict[str, str], extra: str = "") -> list[str]:
    """A config file + file catalog + template; returns the daemon's args."""
    (tmp_path / "in.tpl").write_text(template)
    write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": kv}))
    (tmp_path / "ct.hcl").write_text(
        f'catalog = "file://{tmp_path / "catalog.yaml"}"\nwait = "0s"\n{extra}'
        f'template {{\n  source = "{tmp_path / "in.tpl"}"\n'
        f'  destination = "{tmp_path / "out"}"\n}}\n'
    )
    return ["-config", str(tmp_path / "ct.hcl")]


def out(tmp_path: Path) -> str:
    path = tmp_path / "out"
    return path.read_text() if path.exists() else ""


def test_unknown_function_exits_4_in_daemon_mode_as_in_once(tmp_path: Path) -> None:
    proc = Daemon(setup(tmp_path, "{{ servicez('web') }}\n", {}), tmp_path / "log")
    try:
        assert proc.exit_code() == 4
    finally:
        proc.stop()
    assert "unknown function or variable 'servicez'" in proc.text()
    assert not (tmp_path / "out").exists()


def test_data_error_before_the_first_render_exits_4(tmp_path: Path) -> None:
    proc = Daemon(setup(tmp_path, DIVIDE, {"n": "0"}), tmp_path / "log")
    try:
        assert proc.exit_code() == 4
    finally:
        proc.stop()
    assert "before the first complete render" in proc.text()


def test_after_the_first_render_a_broken_template_keeps_the_file_and_runs(tmp_path: Path) -> None:
    args = setup(tmp_path, DIVIDE, {"n": "4"})
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "250\n", what="first render")
        write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": {"n": "0"}}))
        proc.wait_log("ZeroDivisionError")
        write_atomic(tmp_path / "in.tpl", "{{ servicez() }}\n")
        proc.signal(signal.SIGHUP)
        proc.wait_log("unknown function or variable 'servicez'")
        assert proc.alive() and out(tmp_path) == "250\n"


def test_template_failing_on_data_after_sighup_renders_once_the_data_is_fixed(
    tmp_path: Path,
) -> None:
    args = setup(tmp_path, DIVIDE, {"n": "4"})
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "250\n", what="first render")
        write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": {"n": "0"}}))
        proc.wait_log("ZeroDivisionError")
        write_atomic(tmp_path / "in.tpl", "v " + DIVIDE)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: proc.text().count("ZeroDivisionError") >= 2, what="render after HUP")
        write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": {"n": "5"}}))
        wait_for(lambda: out(tmp_path) == "v 200\n", what=f"re-render\n{proc.text()}")


def test_sighup_reapplies_log_level_and_catalog_and_reports_ignored_keys(tmp_path: Path) -> None:
    args = setup(tmp_path, '{{ key("n") }}\n', {"n": "1"})
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "1\n", what="first render")
        assert "[DEBUG]" not in proc.text()
        other = tmp_path / "other.yaml"
        write_atomic(other, json.dumps({"kv": {"n": "2"}}))
        config = (tmp_path / "ct.hcl").read_text().replace(
            str(tmp_path / "catalog.yaml"), str(other))
        write_atomic(tmp_path / "ct.hcl", 'log_level = "debug"\nsyslog {\n}\n' + config)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: out(tmp_path) == "2\n", what=f"the new catalog\n{proc.text()}")
        proc.wait_log("[DEBUG]")
        proc.wait_log(f"reloaded configuration: catalog file {other}")
        assert proc.text().count("syslog: accepted for consul-template compatibility") == 1


def test_sighup_follows_a_swapped_configmap_symlink(tmp_path: Path) -> None:
    # A Kubernetes ConfigMap volume: catalog.yaml -> ..data/catalog.yaml, ..data -> ..v1
    mount = tmp_path / "mount"
    (mount / "..v1").mkdir(parents=True)
    (mount / "..v1" / "catalog.yaml").write_text(json.dumps({"kv": {"n": "1"}}))
    os.symlink("..v1", mount / "..data")
    os.symlink("..data/catalog.yaml", mount / "catalog.yaml")
    args = setup(tmp_path, '{{ key("n") }}\n', {})
    config = (tmp_path / "ct.hcl").read_text().replace(
        str(tmp_path / "catalog.yaml"), str(mount / "catalog.yaml"))
    (tmp_path / "ct.hcl").write_text(config)
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "1\n", what="first render")
        (mount / "..v2").mkdir()
        (mount / "..v2" / "catalog.yaml").write_text(json.dumps({"kv": {"n": "2"}}))
        os.symlink("..v2", mount / "..data_tmp")
        os.replace(mount / "..data_tmp", mount / "..data")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: out(tmp_path) == "2\n", what=f"the swapped catalog\n{proc.text()}")


def test_invalid_config_on_sighup_keeps_the_running_one_with_one_line(tmp_path: Path) -> None:
    args = setup(tmp_path, '{{ key("n") }}\n', {"n": "1"})
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "1\n", what="first render")
        proc.wait_log("rendered")  # the file is written before its log line
        before = len(proc.text().splitlines())
        good = (tmp_path / "ct.hcl").read_text()
        write_atomic(tmp_path / "ct.hcl", good + "bogus_key = 1\n")
        proc.signal(signal.SIGHUP)
        proc.wait_log("keeping the running configuration")
        new = proc.text().splitlines()[before:]
        assert len(new) == 1 and "bogus_key: unknown key" in new[0], new
        write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": {"n": "3"}}))
        wait_for(lambda: out(tmp_path) == "3\n", what="still running the old config")


def test_startup_line_names_version_catalog_templates_proxy_and_wait(tmp_path: Path) -> None:
    args = setup(tmp_path, '{{ key("n") }}\n', {"n": "1"})
    with daemon(args, tmp_path / "log") as proc:
        proc.wait_log("starting")
        line = next(x for x in proc.text().splitlines() if "starting" in x)
        assert "[INFO] ctmpl " in line
        assert f"catalog file {tmp_path / 'catalog.yaml'}" in line
        assert f"{tmp_path / 'in.tpl'} → {tmp_path / 'out'}" in line
        assert "proxy none" in line and "wait off" in line
        wait_for(lambda: out(tmp_path) == "1\n", what="first render")
        proc.wait_log(f"rendered {tmp_path / 'in.tpl'} → {tmp_path / 'out'}")


def test_go_template_failing_on_data_after_sighup_renders_once_the_data_is_fixed(
    tmp_path: Path,
) -> None:
    args = setup(tmp_path, "", {"n": "4"})
    config = (tmp_path / "ct.hcl").read_text().replace("in.tpl", "in.ctmpl")
    (tmp_path / "ct.hcl").write_text(config)
    (tmp_path / "in.ctmpl").write_text('{{ key "n" | parseInt }}\n')
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "4\n", what=f"first render\n{proc.text()}")
        write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": {"n": "x"}}))
        proc.wait_log("parseInt")
        write_atomic(tmp_path / "in.ctmpl", 'v {{ key "n" | parseInt }}\n')
        proc.signal(signal.SIGHUP)
        wait_for(lambda: proc.text().count("parseInt") >= 2, what="render after HUP")
        write_atomic(tmp_path / "catalog.yaml", json.dumps({"kv": {"n": "7"}}))
        wait_for(lambda: out(tmp_path) == "v 7\n", what=f"re-render\n{proc.text()}")


def test_sighup_rereads_the_token_file_and_reconnects(
    tmp_path: Path, consul: ConsulFixture
) -> None:
    consul.require_token("tok-ONE-1")
    consul.put("app/x", "1")
    token = tmp_path / "token"
    token.write_text("tok-ONE-1\n")
    (tmp_path / "in.tpl").write_text('{{ key("app/x") }}\n')
    args = ["-consul-addr", consul.addr, "-consul-token-file", str(token), "-wait", "0s",
            "-template", f"{tmp_path / 'in.tpl'}:{tmp_path / 'out'}"]
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: out(tmp_path) == "1\n", what=f"first render\n{proc.text()}")
        consul.require_token("tok-TWO-2")  # the ACL token was rotated
        consul.put("app/x", "2")
        proc.wait_log("ACL denied")
        write_atomic(token, "tok-TWO-2\n")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: out(tmp_path) == "2\n", what=f"the new token\n{proc.text()}")
        assert "tok-" not in proc.text()
