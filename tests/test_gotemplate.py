"""Go text/template semantics of the .ctmpl engine, beyond the recorded corpus."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctmpl.brain import Brain
from ctmpl.config.model import CatalogConfig, TemplateConfig
from ctmpl.errors import EXIT_GO_TEMPLATE, GoTemplateError
from ctmpl.gotemplate.fmtfloat import go_float
from ctmpl.gotemplate.gofmt import sprintf
from ctmpl.gotemplate.template import GoTemplate
from ctmpl.sources.file import FileCatalog

_CATALOG = Path(tempfile.mkdtemp(prefix="ctmpl-go-")) / "catalog.yaml"
_CATALOG.write_text("services: {}\nkv:\n  y/a: '1'\n")


def render(text: str, **options: object) -> str:
    config = TemplateConfig(destination="/dev/null", contents=text, syntax="go",
                            **options)  # type: ignore[arg-type]
    catalog = FileCatalog(CatalogConfig(kind="file", file_path=str(_CATALOG)))
    content, _ = GoTemplate(config, text).render(catalog, Brain())
    return content.decode("utf-8")


def error(text: str) -> str:
    with pytest.raises(GoTemplateError) as info:
        render(text)
    assert info.value.exit_code == EXIT_GO_TEMPLATE
    return str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ $x := 1 }}{{ $x = add $x 2 }}{{ $x }}", "3"),
    ('{{ range $i, $v := split "," "a,b" }}{{ $i }}={{ $v }};{{ end }}', "0=a;1=b;"),
    ('{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" "x" }}{{ template "t" }}',
     "[x][<no value>]"),
    ('{{ block "b" "v" }}<{{ . }}>{{ end }}', "<v>"),
    ('{{ with $x := "a" }}{{ $x }}{{ end }}', "a"),
    ("{{ if and 1 0 }}y{{ else if or 0 \"\" }}z{{ else }}n{{ end }}", "n"),
    ("{{ and 1 2 3 }} {{ or 0 \"\" }}|", "3 |"),
    ('{{ range split "," "a,b,c,d" }}{{ if eq . "b" }}{{ continue }}{{ end }}'
     '{{ if eq . "d" }}{{ break }}{{ end }}{{ . }}{{ end }}', "ac"),
    ("{{ 1e6 }} {{ 2.0 }} {{ 0.000001 }} {{ 1.5 }} {{ 123456789.0 }}",
     "1e+06 2 1e-06 1.5 1.23456789e+08"),
    ('{{ printf "%5.2f|%-4d|%04d|%x|%X|%o|%q|%v|%t" 3.14159 7 -7 255 255 8 "a\\"b" nil true }}',
     ' 3.14|7   |-007|ff|FF|10|"a\\"b"|<nil>|true'),
    ('{{ printf "%s %d" "x" }}|{{ printf "%d" "x" }}|{{ printf "%s" "a" "b" }}',
     "x %!d(MISSING)|%!d(string=x)|a%!(EXTRA string=b)"),
    ("{{ print 1 2 \"a\" 3 }}|{{ println 1 \"a\" }}", "1 2a3|1 a\n"),
    ("{{ len \"héllo\" }} {{ index \"abc\" 1 }} {{ slice \"abcdef\" 1 3 }}", "6 98 bc"),
    ('{{ index (parseJSON `{"a":{"b":[1,2]}}`) "a" "b" 1 }}', "2"),
    ("{{ eq 1 2 3 1 }} {{ ne \"a\" \"b\" }} {{ lt 1.5 2.5 }} {{ ge \"b\" \"a\" }}",
     "true true true true"),
    ("{{ 'a' }} {{ 0x1F }} {{ 0o17 }} {{ 1_000 }} {{ -3 }}", "97 31 15 1000 -3"),
    ("{{ html \"<a&b>\" }} {{ js \"a'b<\" }} {{ urlquery \"a b/c\" }}",
     "&lt;a&amp;b&gt; a\\'b\\u003C a+b%2Fc"),
    ('{{ toJSON (parseJSON `{"b":1,"a":[true,null,"<"]}`) }}',
     '{"a":[true,null,"\\u003c"],"b":1}'),
    ('{{ toTOML (parseJSON `{"name":"x","port":8080,"srv":{"tls":false}}`) }}',
     'name = "x"\nport = 8080.0\n\n[srv]\n  tls = false'),
    ('{{ toYAML (parseJSON `{"b":[1,2],"a":{"c":1.5}}`) }}', "a:\n  c: 1.5\nb:\n- 1\n- 2"),
    ("{{ 7 | subtract 2 }} {{ divide 2 7 }} {{ modulo 3 -7 }} {{ multiply 1.5 2 }}",
     "5 3 -1 3"),
    ('{{ scratch.Set "a" 1 }}{{ scratch.Get "a" }} {{ scratch.Key "b" }}'
     '{{ scratch.MapSet "m" "y" 2 }}{{ scratch.MapSet "m" "x" 1 }}{{ scratch.MapValues "m" }}',
     "1 false[1 2]"),
    ('{{ range $k, $v := explode (tree "x") }}{{ $k }}{{ end }}[{{ byKey (ls "y") }}]',
     "[map[]]"),
    ('{{ containsAll (parseJSON `["a","b"]`) (split "," "a,b,c") }}', "true"),
    ('{{ range ls "y" }}{{ . }} {{ printf "%v" . }}{{ end }}',
     "{y/a a 1 0 0 0 0 } &{y/a a 1 0 0 0 0 }"),
    ('{{ toTitle "hello wörld-foo bar_baz" }} {{ toUpper "straße" }}',
     "Hello Wörld-Foo Bar_baz STRAßE"),
    ('{{ indent 2 "a\\n\\nb" }}|{{ trimSpace "  x \\n" }}|{{ replaceAll "" "-" "ab" }}',
     "  a\n\n  b|x|-a-b-"),
    ('{{ regexReplaceAll "(?P<first>\\\\w+) (\\\\w+)" "${2}-$first-$$" "hello world" }}',
     "world-hello-$"),
])
def test_semantics(text: str, expected: str) -> None:
    assert render(text) == expected


def test_denied_function_fails_the_render() -> None:
    with pytest.raises(GoTemplateError, match="error calling env: function is disabled"):
        render('{{ env "HOME" }}', function_denylist=("env",))


def test_delimiters_and_missing_key_error() -> None:
    assert render("[[ 1 ]] {{ x }}", left_delimiter="[[", right_delimiter="]]") == "1 {{ x }}"
    with pytest.raises(GoTemplateError, match='map has no entry for key "nope"'):
        render('{{ (parseJSON `{"a":1}`).nope }}', error_on_missing_key=True)


@pytest.mark.parametrize(("text", "message"), [
    ("{{ if 1 }}x", "template: :1: unexpected EOF"),
    ("{{ end }}", "template: :1: unexpected {{end}}"),
    ("{{ break }}", "template: :1: {{break}} outside {{range}}"),
    ("{{ nope 1 }}", 'template: :1: function "nope" not defined'),
    ("\n{{ $x }}", 'template: :2: undefined variable "$x"'),
    ("{{ 1 | 2 }}", "template: :1: non executable command in pipeline stage 2"),
    ('{{ "a }}', "template: :1: unterminated quoted string"),
    ("{{ (1 }}", "template: :1: unclosed left paren"),
])
def test_parse_errors(text: str, message: str) -> None:
    assert f"parse: {message}" in error(text)


@pytest.mark.parametrize(("text", "message"), [
    ("x\n  {{ index (split \",\" \"\") 0 }}",
     'template: :2:5: executing "" at <index (split "," "")'),
    ("{{ loop (len \"ab\") }}", "wrong type for value; expected int64; got int"),
    ("{{ parseInt \"x\" }}", 'error calling parseInt: parseInt: strconv.ParseInt: parsing "x"'),
    ("{{ .Foo.Bar }}", ""),
    ("{{ range 3 }}{{ end }}", "range can't iterate over 3"),
    ('{{ eq 1 "a" }}', "error calling eq: incompatible types for comparison"),
    ('{{ template "nope" }}', 'template "nope" not defined'),
    ("{{ divide 0 1 }}", "integer divide by zero"),
    ('{{ service "a b" }}', 'health.service: invalid format: "a b"'),
])
def test_execute_errors(text: str, message: str) -> None:
    if not message:
        assert render(text) == "<no value>"
        return
    assert message in error(text)


@given(st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)),
               max_size=40))
def test_text_without_actions_is_kept_verbatim(text: str) -> None:
    assert render(text) == text


@given(st.text(alphabet=" \t\na", max_size=8), st.text(alphabet=" \t\nb", max_size=8))
def test_trim_markers_eat_all_adjacent_space(before: str, after: str) -> None:
    text = f"{before}{{{{- 1 -}}}}{after}"
    assert render(text) == before.rstrip(" \t\n") + "1" + after.lstrip(" \t\n")


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_integers_print_in_decimal(number: int) -> None:
    assert render(f"{{{{ {number} }}}}") == str(number)
    assert sprintf("%d|%x", [number, number]) == f"{number}|{number:x}"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_v_round_trips_like_go(number: float) -> None:
    text = go_float(number)
    assert float(text) == number
    exponent = f"{abs(number):e}".split("e")[1] if number else "+00"
    if number and not -4 <= int(exponent) < 6:
        assert "e" in text
    else:
        assert "e" not in text


def test_bench_templates_render_the_same_bytes(tmp_path: Path) -> None:
    """bench/bench_ctmpl.py compares like with like: both templates give the same file."""
    from tests.daemon import render_once, write_catalog

    root = Path(__file__).resolve().parent.parent / "bench" / "templates"
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {
        f"svc-{n}": [{"id": f"svc-{n}-{i}", "address": f"10.0.{n}.{i + 1}", "port": 8000 + i,
                      "tags": ["calico"] if n != 2 else ["other"]} for i in range(2)]
        for n in range(4)
    })
    outputs = []
    for name in ("upstreams.ctmpl", "upstreams.j2"):
        dest = tmp_path / f"{name}.out"
        done = render_once(["-catalog", f"file://{catalog}"], root / name, dest)
        assert done.returncode == 0, done.stderr
        outputs.append(dest.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b"upstream svc-") == 3
