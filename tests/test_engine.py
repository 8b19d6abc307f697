"""The Jinja sandbox: errors with file and line, delimiters, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctmpl.brain import Brain
from ctmpl.config.model import TemplateConfig
from ctmpl.errors import TemplateError
from ctmpl.model import Instance
from ctmpl.template.engine import Template
from tests.test_render import FakeCatalog


def render(text: str, brain: Brain | None = None, **options: object) -> bytes:
    tpl = Template(TemplateConfig(destination="/dev/null", contents=text, **options))
    rendered = tpl.render(FakeCatalog(), brain or Brain())
    return rendered.content


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.j2"
    src.write_text("one\ntwo\n{% for x in %}\n")
    with pytest.raises(TemplateError, match=rf"^template {src}:3: "):
        Template(TemplateConfig(destination="o", source=str(src)))


def test_unknown_function_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "unk.j2"
    src.write_text("a\nb\n{{ nosuch('x') }}\n")
    tpl = Template(TemplateConfig(destination="o", source=str(src)))
    with pytest.raises(TemplateError,
                       match=rf"^template {src}:3: unknown function or variable 'nosuch'"):
        tpl.render(FakeCatalog(), Brain())


def test_unknown_filter_is_a_syntax_error() -> None:
    with pytest.raises(TemplateError, match=r":2: .*nofilter"):
        render("x\n{{ 'a' | nofilter }}")


def test_sandbox_blocks_python_internals() -> None:
    with pytest.raises(TemplateError, match=r":1: "):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}")


def test_undefined_variable_renders_empty_unless_strict() -> None:
    assert render("[{{ nope }}]") == b"[]\n"
    with pytest.raises(TemplateError, match="nope"):
        render("[{{ nope }}]", error_on_missing_key=True)


def test_custom_delimiters() -> None:
    assert render("[[ 1 + 1 ]] {{ x }}", left_delimiter="[[", right_delimiter="]]") == \
        b"2 {{ x }}\n"


def test_trailing_newline_added_once() -> None:
    assert render("x") == b"x\n"
    assert render("x\n") == b"x\n"
    assert render("") == b""


def test_block_tags_leave_no_blank_lines() -> None:
    assert render("{% for i in [1, 2] %}\n{{ i }}\n{% endfor %}\n") == b"1\n2\n"


def test_sorted_data_gives_identical_bytes() -> None:
    brain = Brain()
    insts = tuple(
        Instance(Name="web", ID=f"web-{i}", Address=f"10.0.0.{i}", Port=80, Node=f"n{i}",
                 Meta={"b": "2", "a": "1"}) for i in (1, 2)
    )
    brain.set("service(web|passing)", insts)
    text = "{% for i in service('web') %}{{ i.Address }} {{ i | toJSON }}\n{% endfor %}"
    first = render(text, brain)
    again = Brain()
    again.set("service(web|passing)", tuple(insts))
    assert render(text, again) == first
    assert first.index(b'"Meta":{"a":"1","b":"2"}') > 0


def test_a_variable_cannot_shadow_a_function() -> None:
    assert render('{{ toUpper("x") }} {{ env("NO_SUCH_VAR_X", "d") }}\n', vars={"env": "v"}) == (
        b"X d\n"
    )


def test_wrong_arguments_name_the_function_not_its_class() -> None:
    with pytest.raises(TemplateError) as info:
        render('{{ service("web", bogus=1) }}')
    assert str(info.value).endswith(":1: service() got an unexpected keyword argument 'bogus'")
