"""The .ctmpl engine against Go 1.19's own text/template (the one consul-template 0.19.4 uses).

``tests/go_text_template`` is a tiny Go program that executes a template with Go's
text/template (missingkey=zero, no data, and the consul-template helpers parseJSON, split,
join, toLower, loop); every generated template must give the same bytes, or the same error
text, from both. Skipped when Go 1.19 is not installed (scripts/test.sh installs it).
``GOTMPL_SEEDS=N`` runs N seeds of generated cases instead of 4.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ctmpl.brain import Brain
from ctmpl.config.model import CatalogConfig, TemplateConfig
from ctmpl.errors import GoTemplateError
from ctmpl.gotemplate.template import GoTemplate
from ctmpl.sources.file import FileCatalog

GO = shutil.which("go", path="/usr/lib/go-1.19/bin") or ""
HARNESS = Path(__file__).resolve().parent / "go_text_template"

VALUES = ['1', '-7', '0', '3.0', '1e6', '2.5', '0.000012345', '123456789.0', '"x"', '"héllo"',
          '""', 'true', 'false', 'nil', '(parseJSON `[1,"a",null]`)',
          '(parseJSON `{"b":1,"a":[2]}`)', '(split "," "a,b")', "'c'", '0x1F',
          '(parseJSON `null`)', '(parseJSON `1e21`)', '(parseJSON `-0.0`)',
          '18446744073709551615', '-9223372036854775808']
VERBS = ['%v', '%d', '%s', '%q', '%x', '%X', '%o', '%b', '%e', '%E', '%f', '%g', '%G', '%t',
         '%c', '%U', '%T', '%5d', '%-5s|', '%05.1f', '%+d', '% d', '%#v', '%+v', '%.3s',
         '%8.3e', '%#x', '%#o', '%10.4g', '%%', '%!', '%*d', '%.*f', '%-08d', '%08.3f', '%+q',
         '%#q', '%[1]v', '%[2]*d']
BUILTINS = ["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "index", "print", "println",
            "html", "js", "urlquery", "slice"]
EXPRS = ['1', '0', '"s"', '""', '(parseJSON `[1,"a",null,{"k":2}]`)',
         '(parseJSON `{"b":[1],"a":{"c":"d"},"n":null}`)', '(split "," "x,y")', '.', '$', 'nil',
         '(len "abc")', '(index (parseJSON `{"a":1}`) "a")', '(printf "%d" 3)',
         '(parseJSON `{"a":1}`).a', '(parseJSON `{"a":1}`).zz', '(and 1 "")', '(or 0 "z")',
         '(not 1)', '(slice "abc" 1)']


@pytest.fixture(scope="module")
def go_render(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Render with Go's text/template (the compiled harness)."""
    if not GO:
        pytest.skip("Go 1.19 is not installed (Debian: golang-1.19-go)")
    work = tmp_path_factory.mktemp("go")
    env = {**os.environ, "GOCACHE": str(work / "cache"), "GOPATH": str(work / "gopath"),
           "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    binary = work / "gotmpl"
    subprocess.run([GO, "build", "-o", str(binary), "."], cwd=HARNESS, env=env, check=True,
                   capture_output=True, timeout=300)

    def render(text: str) -> str:
        done = subprocess.run([str(binary)], input=text.encode(), capture_output=True,
                              timeout=30, check=True)
        return done.stdout.decode("utf-8", "surrogateescape")

    yield render


@pytest.fixture(scope="module")
def py_render(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Render with ctmpl's engine, errors as the harness prints them."""
    catalog = tmp_path_factory.mktemp("cat") / "catalog.yaml"
    catalog.write_text("services: {}\n")
    source = FileCatalog(CatalogConfig(kind="file", file_path=str(catalog)))

    def render(text: str) -> str:
        try:
            template = GoTemplate(TemplateConfig(destination="x", contents=text, syntax="go"),
                                  text)
            return template.render(source, Brain())[0].decode("utf-8", "surrogateescape")
        except GoTemplateError as exc:
            return "ERR " + str(exc).split(": ", 1)[1]

    return render


def _printf_cases(rnd: random.Random) -> Iterator[str]:
    for _ in range(150):
        k = rnd.randint(1, 3)
        fmt = " ".join(rnd.choice(VERBS) for _ in range(k))
        args = " ".join(rnd.choice(VALUES) for _ in range(rnd.randint(0, k + 1)))
        yield f'{{{{ printf "{fmt}" {args} }}}}'
    for _ in range(100):
        op, a, b = rnd.choice(BUILTINS), rnd.choice(VALUES), rnd.choice(VALUES)
        yield f"{{{{ {op} {a} {b} }}}}"
    for v in VALUES:
        yield (f"{{{{ {v} }}}}|{{{{ len {v} }}}}|{{{{ not {v} }}}}|{{{{ with {v} }}}}w"
               f"{{{{ else }}}}e{{{{ end }}}}|{{{{ range $i, $x := {v} }}}}{{{{ $i }}}}="
               f"{{{{ $x }}}};{{{{ end }}}}")


def _block(rnd: random.Random, depth: int) -> str:
    def pick(*options: str) -> str:
        return rnd.choice(options)

    out = []
    for _ in range(rnd.randint(1, 4)):
        out.append(pick("a", " ", "\n", "\t", "x y", "", "  \n  "))
        o, c, e = pick("{{ ", "{{- ", "{{"), pick(" }}", " -}}", "}}"), rnd.choice(EXPRS)
        r = rnd.random()
        if r < 0.3 or depth > 2:
            out.append(f"{o}{e}{c}")
        elif r < 0.4:
            out.append(f"{o}/* c */{c}")
        elif r < 0.55:
            out.append(f"{o}if {e}{c}{_block(rnd, depth + 1)}{o}else{c}{_block(rnd, depth + 1)}"
                       f"{o}end{c}")
        elif r < 0.7:
            out.append(f"{o}range $i, $e := {e}{c}{{{{ $i }}}}={{{{ $e }}}}"
                       f"{_block(rnd, depth + 1)}{o}else{c}E{o}end{c}")
        elif r < 0.85:
            out.append(f"{o}with {e}{c}{{{{ . }}}}{_block(rnd, depth + 1)}{o}end{c}")
        else:
            out.append(f"{o}$v := {e}{c}{{{{ $v }}}}")
    return "".join(out)


@pytest.mark.parametrize("seed", range(int(os.environ.get("GOTMPL_SEEDS", "4"))))
def test_same_output_as_go(go_render: Callable[[str], str], py_render: Callable[[str], str],
                           seed: int) -> None:
    rnd = random.Random(seed)
    cases = [*_printf_cases(rnd), *(_block(rnd, 0) for _ in range(100))]
    different = [(c, py_render(c), go_render(c)) for c in cases]
    different = [d for d in different if d[1] != d[2]]
    assert not different, "\n".join(f"{c!r}\n  ctmpl: {m!r}\n  go:    {g!r}"
                                     for c, m, g in different[:5])
