"""Dependency discovery: used queries recorded, a render lacking data is not written."""

from __future__ import annotations

from pathlib import Path

from ctmpl.brain import Brain
from ctmpl.config.model import TemplateConfig
from ctmpl.model import Instance, KVPair, ServiceSummary
from ctmpl.pipeline import Pipeline
from ctmpl.render import TemplateState
from ctmpl.sources.base import ServiceSpec
from ctmpl.template.engine import Template


class FakeQuery:
    """A query that only has a key: data comes from the brain the test fills."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def fetch(self, index: int) -> tuple[object, int]:
        raise AssertionError("not fetched in these tests")


class FakeCatalog:
    """Queries named after their arguments."""

    name = "fake"

    def services(self) -> FakeQuery:
        return FakeQuery("services")

    def service(self, spec: ServiceSpec) -> FakeQuery:
        return FakeQuery(f"service({spec.key})")

    def nodes(self) -> FakeQuery:
        return FakeQuery("nodes")

    def key(self, path: str) -> FakeQuery:
        return FakeQuery(f"key({path})")

    def tree(self, prefix: str) -> FakeQuery:
        return FakeQuery(f"tree({prefix})")

    async def aclose(self) -> None:
        return None


WEB = (Instance(Name="web", ID="w1", Address="10.0.0.1", Port=80),)
TEXT = ("{% for s in services() %}{% for i in service(s.Name) %}"
        "{{ s.Name }} {{ i.Address }}:{{ i.Port }}\n{% endfor %}{% endfor %}"
        "{{ keyOrDefault('cfg/x', 'd') }}\n")


def tpl(text: str = TEXT, dest: str = "/dev/null") -> Template:
    return Template(TemplateConfig(destination=dest, contents=text))


def test_queries_are_discovered_in_rounds() -> None:
    brain = Brain()
    first = tpl().render(FakeCatalog(), brain)
    assert not first.complete
    assert set(first.deps.queries) == {"services", "key(cfg/x)"}
    assert first.deps.missing == {"services", "key(cfg/x)"}
    brain.set("services", (ServiceSummary(Name="web"),))
    brain.set("key(cfg/x)", None)
    second = tpl().render(FakeCatalog(), brain)
    assert set(second.deps.queries) == {"services", "key(cfg/x)", "service(web|passing)"}
    assert second.deps.missing == {"service(web|passing)"}
    brain.set("service(web|passing)", WEB)
    third = tpl().render(FakeCatalog(), brain)
    assert third.complete
    assert third.content == b"web 10.0.0.1:80\nd\n"


def test_empty_data_is_not_missing_data() -> None:
    brain = Brain()
    brain.set("services", ())
    brain.set("key(cfg/x)", KVPair(Key="cfg/x", Path="cfg/x", Value="v"))
    rendered = tpl().render(FakeCatalog(), brain)
    assert rendered.complete
    assert rendered.content == b"v\n"


def test_missing_key_blocks_but_key_or_default_does_not() -> None:
    brain = Brain()
    brain.set("key(a)", None)
    assert not tpl("{{ key('a') }}").render(FakeCatalog(), brain).complete
    assert tpl("{{ keyOrDefault('a', 'z') }}").render(FakeCatalog(), brain).complete


def test_error_caused_by_missing_data_is_only_incomplete() -> None:
    brain = Brain()
    text = "{{ service('web')[0].Port + 1 }} {{ (key('j') | parseJSON).a }}"
    rendered = tpl(text).render(FakeCatalog(), brain)
    assert not rendered.complete
    brain.set("service(web|passing)", WEB)
    brain.set("key(j)", KVPair(Key="j", Path="j", Value='{"a": 5}'))
    assert tpl(text).render(FakeCatalog(), brain).content == b"81 5\n"


async def test_incomplete_render_is_not_written_then_new_data_completes_it(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "out.conf"
    brain = Brain()
    pipeline = Pipeline(FakeCatalog(), brain)
    state = TemplateState(tpl(TEXT, str(dest)))
    result = await pipeline.run_pass([state], now=0.0)
    assert not dest.exists()
    assert not result.installed and not result.errors
    assert set(state.queries) == {"services", "key(cfg/x)"}
    assert state.incomplete_since == 0.0
    brain.set("services", (ServiceSummary(Name="web"),))
    brain.set("key(cfg/x)", None)
    state.dirty = True
    await pipeline.run_pass([state], now=1.0)
    assert not dest.exists()
    assert "service(web|passing)" in state.queries
    brain.set("service(web|passing)", WEB)
    state.dirty = True
    result = await pipeline.run_pass([state], now=2.0)
    assert dest.read_bytes() == b"web 10.0.0.1:80\nd\n"
    assert result.installed == [state]
    assert state.complete_once and state.incomplete_since is None


async def test_queries_no_longer_used_drop_out(tmp_path: Path) -> None:
    brain = Brain()
    brain.set("key(flag)", KVPair(Key="flag", Path="flag", Value="off"))
    brain.set("key(b)", None)
    text = "{% if key('flag') == 'on' %}{{ key('a') }}{% else %}{{ keyOrDefault('b') }}{% endif %}"
    assert set(tpl(text).render(FakeCatalog(), brain).deps.queries) == {"key(flag)", "key(b)"}
    brain.set("key(flag)", KVPair(Key="flag", Path="flag", Value="on"))
    assert set(tpl(text).render(FakeCatalog(), brain).deps.queries) == {"key(flag)", "key(a)"}
