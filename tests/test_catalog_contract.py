"""The contract every catalog keeps: the template functions answer alike over file, etcd,
ZooKeeper and Consul (the double, or a real agent), with ``-once`` and as a daemon following
changes.

The adapters and the list of catalogs are in ``tests/catalog_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalog_contract import CATALOGS, SeededCatalog, require
from tests.daemon import daemon, render_once, wait_for


@pytest.fixture(params=sorted(CATALOGS))
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> SeededCatalog:
    """The same registrations and keys in each catalog in turn."""
    catalog = CATALOGS[request.param](request, tmp_path)
    catalog.register("web-a", "web", "10.0.0.1", 80, tags=("calico",))
    catalog.register("web-b", "web", "10.0.0.2", 8080, tags=("calico", "v2"))
    catalog.register("web-c", "web", "10.0.0.3", 8081, tags=("v2",))
    catalog.register("web-d", "web", "10.0.0.4", 8082, tags=("calico",), status="critical")
    catalog.register("db-1", "db", "10.0.1.1", 5432)
    catalog.put("app/mode", "blue")
    catalog.put("app/conf", '{"replicas":2}')
    catalog.put("app/sub/x", "1")
    return catalog


# The catalog's own services (Consul lists itself as "consul") are left out.
GO = """\
{{ range services }}{{ if ne .Name "consul" }}{{ .Name }}{{ .Tags }} {{ end }}{{ end }}
{{ range service "web" }}{{ .ID }}={{ .Address }}:{{ .Port }} {{ end }}
{{ range service "calico.web" }}{{ .ID }} {{ end }}
{{ range service "web|any" }}{{ .ID }}:{{ .Status }} {{ end }}
{{ range ls "app" }}{{ .Key }}={{ .Value }} {{ end }}
{{ range tree "app" }}{{ .Key }}={{ .Value }} {{ end }}
{{ key "app/mode" }} {{ keyOrDefault "app/none" "default" }}
{{ with $c := key "app/conf" | parseJSON }}{{ $c.replicas }}{{ end }}
"""
JINJA = """\
{% for s in services() if s.Name != "consul" %}{{ s.Name }}{{ s.Tags | list }} {% endfor %}
{% for i in service("web") %}{{ i.ID }}={{ i.Address }}:{{ i.Port }} {% endfor %}
{% for i in service("web", tag="calico") %}{{ i.ID }} {% endfor %}
{% for i in service("web", "any") %}{{ i.ID }}:{{ i.Status }} {% endfor %}
{% for p in ls("app") %}{{ p.Key }}={{ p.Value }} {% endfor %}
{% for p in tree("app") %}{{ p.Key }}={{ p.Value }} {% endfor %}
{{ key("app/mode") }} {{ keyOrDefault("app/none", "default") }}
"""
EXPECTED_LINES = [
    "web-a=10.0.0.1:80 web-b=10.0.0.2:8080 web-c=10.0.0.3:8081 ",
    "web-a web-b ",
    "web-a:passing web-b:passing web-c:passing web-d:critical ",
    'conf={"replicas":2} mode=blue ',
    'conf={"replicas":2} mode=blue sub/x=1 ',
    "blue default",
]


# Jinja drops the newline after a block tag: its lines run together.
RENDERINGS = {
    "t.ctmpl": (GO, "\n".join(["db[] web[calico v2] ", *EXPECTED_LINES, "2"]) + "\n"),
    "t.j2": (JINJA, "".join(["db[] web['calico', 'v2'] ", *EXPECTED_LINES]) + "\n"),
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_template_functions(seeded: SeededCatalog, tmp_path: Path, name: str) -> None:
    require(seeded, "services", "service", "key", "keyOrDefault", "ls", "tree")
    text, expected = RENDERINGS[name]
    src, dest = tmp_path / name, tmp_path / "out.conf"
    src.write_text(text)
    done = render_once(seeded.args(), src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == expected


def test_a_daemon_follows_registrations_and_keys(seeded: SeededCatalog, tmp_path: Path) -> None:
    require(seeded, "service", "key")
    src, dest = tmp_path / "t.ctmpl", tmp_path / "out.conf"
    src.write_text('{{ range service "calico.web" }}{{ .ID }}={{ .Address }} {{ end }}'
                   '{{ key "app/mode" }}\n')
    with daemon([*seeded.args(), "-template", f"{src}:{dest}", "-wait", "0s"],
                tmp_path / "ctmpl.log") as proc:
        wait_for(lambda: dest.exists() and dest.read_text() == (
            "web-a=10.0.0.1 web-b=10.0.0.2 blue\n"), what=f"first render\n{proc.text()}")
        seeded.register("web-e", "web", "10.0.0.5", 80, tags=("calico",))
        seeded.register("web-a", "web", "10.0.0.11", 80, tags=("calico",))
        seeded.put("app/mode", "green")
        want = "web-a=10.0.0.11 web-b=10.0.0.2 web-e=10.0.0.5 green\n"
        wait_for(lambda: dest.read_text() == want, what=f"the changes\n{proc.text()}")
        seeded.register("web-b", "web", "10.0.0.2", 8080, tags=("calico",), status="critical")
        want = "web-a=10.0.0.11 web-e=10.0.0.5 green\n"
        wait_for(lambda: dest.read_text() == want, what=f"a failing check\n{proc.text()}")
