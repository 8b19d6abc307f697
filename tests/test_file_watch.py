"""``file()`` is a watched dependency: editing the file re-renders, in place or by rename;
a missing file is an error until it appears. KV keys deleted while rendered follow
consul-template: ``keyOrDefault`` falls back at once, ``key`` holds the file."""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemon import render_daemons, wait_for, write_atomic, write_catalog
from tests.fixtures_etcd import EtcdServer

FILE_TEMPLATE = "included: {{ file(path) }}"


def test_file_change_rerenders(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {})
    included = tmp_path / "conf" / "snippet.txt"
    included.parent.mkdir()
    included.write_text("one")
    args = ["-catalog", f"file://{catalog}", "-var", f"path={included}"]
    with render_daemons(tmp_path, FILE_TEMPLATE, args) as start:
        proc = start()
        proc.wait_for("included: one\n")
        write_atomic(included, "two")  # an editor's save: temp file, rename
        proc.wait_for("included: two\n")
        with included.open("w") as handle:  # an in-place rewrite
            handle.write("three")
        proc.wait_for("included: three\n")
        # A ConfigMap-style update: the file is a symlink whose target is swapped.
        target = included.with_name("..v4")
        target.write_text("four")
        link = included.with_name(".link.tmp")
        link.symlink_to(target.name)
        os.replace(link, included)
        proc.wait_for("included: four\n")


def test_removed_file_keeps_the_last_render_until_it_returns(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {})
    included = tmp_path / "snippet.txt"
    included.write_text("one")
    args = ["-catalog", f"file://{catalog}", "-var", f"path={included}"]
    with render_daemons(tmp_path, FILE_TEMPLATE, args) as start:
        proc = start()
        proc.wait_for("included: one\n")
        included.unlink()
        proc.wait_log("cannot read")
        assert proc.read() == "included: one\n"
        included.write_text("back")
        proc.wait_for("included: back\n")


KEY_TEMPLATE = 'size={{ key("app/size") }} color={{ keyOrDefault("app/color", "none") }}\n'


def test_file_catalog_key_deleted(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {}, kv={"app/color": "blue", "app/size": "L"})
    with render_daemons(tmp_path, KEY_TEMPLATE, ["-catalog", f"file://{catalog}"]) as start:
        proc = start()
        proc.wait_for("size=L color=blue\n")
        write_catalog(catalog, {}, kv={"app/size": "L"})
        proc.wait_for("size=L color=none\n")  # keyOrDefault: the default at once
        held = proc.text().count("waiting for file.key(app/size)")
        write_catalog(catalog, {}, kv={"app/color": "red"})
        wait_for(lambda: proc.text().count("waiting for file.key(app/size)") > held,
                 what="the render to wait for app/size")
        assert proc.read() == "size=L color=none\n"  # key(): the file is held
        write_catalog(catalog, {}, kv={"app/color": "red", "app/size": "M"})
        proc.wait_for("size=M color=red\n")


def test_etcd_key_deleted(tmp_path: Path, etcd: EtcdServer) -> None:
    etcd.put("app/color", "blue")
    etcd.put("app/size", "L")
    args = ["-catalog", f"etcd://{etcd.endpoint}/services"]
    with render_daemons(tmp_path, KEY_TEMPLATE, args) as start:
        proc = start()
        proc.wait_for("size=L color=blue\n")
        etcd.delete("app/color")
        proc.wait_for("size=L color=none\n")
        held = proc.text().count("waiting for etcd.key(app/size)")
        etcd.delete("app/size")
        wait_for(lambda: proc.text().count("waiting for etcd.key(app/size)") > held,
                 what="the render to wait for app/size")
        assert proc.read() == "size=L color=none\n"
        etcd.put("app/size", "M")
        proc.wait_for("size=M color=none\n")
