"""Every template function and filter, against a file catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ctmpl.config.model import CatalogConfig
from ctmpl.errors import QueryError, TemplateError
from ctmpl.sources.file import FileCatalog
from tests.foundation_util import render_all, template

CATALOG = {
    "services": {
        "web": [
            {"id": "web-2", "node": "n2", "address": "10.0.0.2", "port": 80,
             "tags": ["prod", "blue"]},
            {"id": "web-1", "node": "n1", "address": "10.0.0.1", "port": 80,
             "tags": ["prod"], "meta": {"version": "1"}},
            {"id": "web-3", "node": "n3", "address": "10.0.0.3", "port": 80,
             "tags": ["canary"], "status": "warning"},
            {"id": "web-4", "node": "n4", "address": "10.0.0.4", "port": 80,
             "tags": ["prod"], "status": "critical"},
        ],
        "db": [{"id": "db-1", "node": "n1", "address": "db.local", "port": 5432}],
    },
    "nodes": [{"node": "n2", "address": "10.0.1.2"}, {"node": "n1", "address": "10.0.1.1"}],
    "kv": {
        "app/name": "shop",
        "app/config/color": "blue",
        "app/config/size": "L",
        "app/json": '{"b": [1, 2], "a": "x"}',
    },
}


@pytest.fixture
def catalog(tmp_path: Path) -> FileCatalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(CATALOG))
    return FileCatalog(CatalogConfig(kind="file", file_path=str(path)))


async def render(catalog: FileCatalog, text: str, **options: object) -> str:
    rendered = await render_all(template(text, **options), catalog)
    assert rendered.complete, rendered.deps.missing
    return rendered.content.decode()


async def test_services(catalog: FileCatalog) -> None:
    out = await render(catalog, "{% for s in services() %}{{ s.Name }}={{ s.Tags|join(',') }} "
                                "{% endfor %}")
    assert out == "db= web=blue,canary,prod \n"


async def test_service_default_is_passing_only_sorted_by_node(catalog: FileCatalog) -> None:
    out = await render(catalog, "{% for i in service('web') %}{{ i.ID }}@{{ i.Node }} "
                                "{% endfor %}")
    assert out == "web-1@n1 web-2@n2 \n"


@pytest.mark.parametrize(
    ("query", "ids"),
    [("web|passing,warning", "web-1 web-2 web-3"), ("web|any", "web-1 web-2 web-3 web-4"),
     ("web|critical", "web-4"), ("prod.web", "web-1 web-2"), ("prod.web|any", "web-1 web-2 web-4"),
     ("canary.web", ""), ("canary.web|warning", "web-3"), ("nosuch", "")],
)
async def test_service_filters(catalog: FileCatalog, query: str, ids: str) -> None:
    out = await render(catalog, f"{{{{ service('{query}') | map(attribute='ID') | join(' ') }}}}")
    assert out == (ids + "\n" if ids else "")


async def test_service_status_as_second_argument(catalog: FileCatalog) -> None:
    out = await render(catalog, "{{ service('web', 'any') | length }}")
    assert out == "4\n"


async def test_service_fields(catalog: FileCatalog) -> None:
    out = await render(catalog, "{% for i in service('prod.web') %}{{ i.Name }} {{ i.Address }}:"
                                "{{ i.Port }} {{ i.Tags|join(',') }} {{ i.Status }} "
                                "{{ i.Meta.version|default('-') }} {{ i.ServiceMeta|length }}\n"
                                "{% endfor %}")
    assert out == "web 10.0.0.1:80 prod passing 1 1\nweb 10.0.0.2:80 blue,prod passing - 0\n"


@pytest.mark.parametrize("bad", ["", "web|sick", "bad name!", "web|passing|x"])
async def test_service_bad_argument(catalog: FileCatalog, bad: str) -> None:
    with pytest.raises(TemplateError, match=r"template .*:1: service\("):
        await render(catalog, f"{{{{ service({bad!r}) }}}}")


async def test_nodes(catalog: FileCatalog) -> None:
    out = await render(catalog, "{% for n in nodes() %}{{ n.Node }}={{ n.Address }} {% endfor %}")
    assert out == "n1=10.0.1.1 n2=10.0.1.2 \n"


async def test_key(catalog: FileCatalog) -> None:
    assert await render(catalog, "{{ key('app/name') }}") == "shop\n"
    assert await render(catalog, "{{ key('/app/name/') }}") == "shop\n"


async def test_missing_key_keeps_render_incomplete(catalog: FileCatalog) -> None:
    rendered = await render_all(template("{{ key('app/nope') }}"), catalog)
    assert not rendered.complete
    assert rendered.deps.missing == {"file.key(app/nope)"}


async def test_empty_key_name_is_an_error(catalog: FileCatalog) -> None:
    with pytest.raises(TemplateError, match=r"key\(''\): key is empty"):
        await render(catalog, "{{ key('') }}")


async def test_key_or_default(catalog: FileCatalog) -> None:
    out = await render(catalog, "{{ keyOrDefault('app/nope', 'dflt') }} "
                                "{{ keyOrDefault('app/name', 'dflt') }}")
    assert out == "dflt shop\n"


async def test_ls_direct_children_only(catalog: FileCatalog) -> None:
    out = await render(catalog, "{% for p in ls('app') %}{{ p.Key }}={{ p.Value }} {% endfor %}")
    assert out.startswith("json=") and "name=shop" in out
    assert "config" not in out
    assert await render(catalog, "{{ ls('app/config') | map(attribute='Key') | join(',') }}") \
        == "color,size\n"


async def test_tree(catalog: FileCatalog) -> None:
    out = await render(catalog, "{% for p in tree('app/') %}{{ p.Key }}|{{ p.Path }} {% endfor %}")
    assert out == "config/color|app/config/color config/size|app/config/size json|app/json " \
                  "name|app/name \n"


@pytest.mark.parametrize("func", ["safeLs", "safeTree"])
async def test_safe_functions(catalog: FileCatalog, func: str) -> None:
    text = f"{{{{ {func}('app/config') | map(attribute='Key') | join(',') }}}}"
    out = await render(catalog, text)
    assert out == "color,size\n"
    rendered = await render_all(template(f"{{{{ {func}('nothing/here') | length }}}}"), catalog)
    assert not rendered.complete
    plain = await render_all(template(f"{{{{ {func[4:].lower()}('nothing/here') | length }}}}"),
                             catalog)
    assert plain.complete and plain.content == b"0\n"


async def test_env(catalog: FileCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTMPL_TEST_VAR", "hello")
    monkeypatch.delenv("CTMPL_TEST_UNSET", raising=False)
    out = await render(catalog, "{{ env('CTMPL_TEST_VAR') }} [{{ env('CTMPL_TEST_UNSET') }}] "
                                "{{ env('CTMPL_TEST_UNSET', 'd') }}")
    assert out == "hello [] d\n"


async def test_file_confined_to_sandbox(catalog: FileCatalog, tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    (box / "inc.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    (box / "link").symlink_to(tmp_path / "secret.txt")
    opts = {"sandbox_path": str(box)}
    assert await render(catalog, f"{{{{ file('{box}/inc.txt') }}}}", **opts) == "inside\n"
    for path in (tmp_path / "secret.txt", box / ".." / "secret.txt", box / "link"):
        with pytest.raises(TemplateError, match=r":1: file\(.*outside the sandbox"):
            await render(catalog, f"{{{{ file('{path}') }}}}", **opts)
    with pytest.raises(TemplateError, match="cannot read"):
        await render(catalog, f"{{{{ file('{box}/missing') }}}}", **opts)
    assert await render(catalog, f"{{{{ file('{tmp_path}/secret.txt') }}}}") == "outside\n"


async def test_by_tag(catalog: FileCatalog) -> None:
    text = ("{% for tag, insts in byTag(service('web|any')) | items %}"
            "{{ tag }}:{{ insts | map(attribute='ID') | join(',') }} {% endfor %}|"
            "{{ (service('web') | byTag).keys() | join(',') }}")
    assert await render(catalog, text) == \
        "blue:web-2 canary:web-3 prod:web-1,web-2,web-4 |blue,prod\n"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("toLower('AbC')", "abc"), ("'AbC' | toLower", "abc"),
        ("toUpper('AbC')", "ABC"), ("'AbC' | toUpper", "ABC"),
        ("split(',', 'a,b,c') | join('-')", "a-b-c"), ("'a,b' | split(',') | join('-')", "a-b"),
        ("split(',', '') | length", "0"),
        ("join('+', ['a', 'b'])", "a+b"), ("['a', 'b'] | join('+')", "a+b"),
        ("trimSpace('  x y \\n')", "x y"), ("'  x ' | trimSpace", "x"),
        ("replaceAll('.', '-', 'a.b.c')", "a-b-c"), ("'a.b.c' | replaceAll('.', '_')", "a_b_c"),
        ("regexMatch('^web-[0-9]+$', 'web-12')", "True"), ("'web-x' | regexMatch('^web-[0-9]+$')",
                                                           "False"),
        ("regexReplaceAll('(\\\\w+)@(\\\\w+)', '$2 at $1', 'bob@host')", "host at bob"),
        ("'v1.2' | regexReplaceAll('v(\\\\d+)\\\\.(\\\\d+)', '${1}_$2')", "1_2"),
        ("parseJSON('{\"a\": [1, 2]}').a[1]", "2"), ("'[3]' | parseJSON | first", "3"),
        ("toJSON({'b': 1, 'a': [1, 'x']})", '{"a":[1,"x"],"b":1}'),
        ("{'b': 1, 'a': 2} | toJSON", '{"a":2,"b":1}'),
        ("contains('b', ['a', 'b'])", "True"), ("['a'] | contains('b')", "False"),
        ("contains('ell', 'hello')", "True"), ("contains(1, None)", "False"),
    ],
)
async def test_helpers(catalog: FileCatalog, expr: str, expected: str) -> None:
    assert await render(catalog, f"{{{{ {expr} }}}}") == expected + "\n"


async def test_parse_json_of_a_key(catalog: FileCatalog) -> None:
    out = await render(catalog, "{{ (key('app/json') | parseJSON).b | join(',') }}")
    assert out == "1,2\n"


async def test_parse_json_error(catalog: FileCatalog) -> None:
    with pytest.raises(TemplateError, match=r":2: parseJSON: invalid JSON"):
        await render(catalog, "ok\n{{ parseJSON('{nope') }}")


async def test_to_json_of_instances_is_deterministic(catalog: FileCatalog) -> None:
    text = "{{ service('web') | toJSON }}"
    first = await render(catalog, text)
    assert first == await render(catalog, text)
    assert '"Address":"10.0.0.1"' in first and '"Meta":{"version":"1"}' in first


async def test_vars(catalog: FileCatalog) -> None:
    out = await render(catalog, "{{ color }} {{ vars.color }}", vars={"color": "red"})
    assert out == "red red\n"


async def test_query_errors_are_query_errors() -> None:
    from ctmpl.sources.base import parse_service
    with pytest.raises(QueryError):
        parse_service("web|bogus")
