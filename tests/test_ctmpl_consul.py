"""A .ctmpl sees Consul data only after the source boundary filtered it, as Jinja does."""

from __future__ import annotations

from pathlib import Path

from tests.daemon import render_once
from tests.fixtures_consul import ConsulFixture


def test_hostile_catalog_data_never_reaches_a_ctmpl(tmp_path: Path, consul: ConsulFixture) -> None:
    consul.register("web-1", "web", "127.0.0.1", 8080, tags=["ok", "evil;} server 6.6.6.6"],
                    meta={"good": "yes", "bad": "x;}"})
    consul.register("bad-1", "bad;}name", "127.0.0.1", 8081, tags=["ok"])
    src, dest = tmp_path / "t.ctmpl", tmp_path / "out.conf"
    src.write_text('{{ range services }}{{ .Name }} {{ .Tags }};{{ end }}\n'
                   '{{ range service "web" }}{{ .Tags }} {{ toJSON . }}{{ end }}\n')
    done = render_once(["-consul-addr", consul.addr], src, dest)
    assert done.returncode == 0, done.stderr
    text = dest.read_text()
    assert "web [ok];" in text
    assert "[ok] {" in text
    for hostile in ("evil", "6.6.6.6", "bad;", "x;}"):
        assert hostile not in text
    assert "dropped" in done.stderr
