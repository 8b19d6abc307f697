"""The reused loop (``{% reuse for … %}``): only changed iterations run, and the output and
dependencies are exactly those of the plain ``{% for %}`` loop it stands for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.brain import Brain
from ctmpl.errors import TemplateError
from ctmpl.model import ServiceSummary
from ctmpl.template.engine import Rendered
from tests.test_render import FakeCatalog
from tests.test_template_reuse import (
    CHANGES,
    HAPROXY,
    META,
    NAMES,
    NGINX,
    catalog_of,
    fill,
    inst,
    mutate,
    same_render,
    template,
)

# The test calls a data function; the body calls one and nests a plain reused block.
TESTED = ("{% reuse for s in services() if service(s.Name, tag='calico') | length > 1 %}"
          "{{ s.Name }}:{% for i in service(s.Name, tag='calico') %} {{ i | hostPort }}"
          "{% endfor %}\n{% endreuse %}")
# A new list of tuples every render (items compared by value), unpacked into two names.
PAIRS = ("{% reuse for tag, group in services() | byTag | dictsort %}{{ tag }}="
         "{% for s in group %}{{ s.Name }}{{ service(s.Name, tag='calico') | length }} "
         "{% endfor %}\n{% endreuse %}")
NESTED = ("{% reuse for s in services() %}{% reuse s.Name %}{{ s.Name }}="
          "{{ service(s.Name, tag='calico') | length }}{% endreuse %}\n{% endreuse %}")


def plain(path: Path | str) -> str:
    """The same template with every reused loop written as a plain for loop."""
    text = path.read_text() if isinstance(path, Path) else path
    out, loops = [], []
    for part in re.split(r"({% reuse for |{% reuse |{% endreuse %})", text):
        written = part
        if part == "{% reuse for ":
            loops.append(True)
            written = "{% for "
        elif part == "{% reuse ":
            loops.append(False)
        elif part == "{% endreuse %}" and loops.pop():
            written = "{% endfor %}"
        out.append(written)
    return "".join(out)


def reference(brain: Brain, path: Path | str) -> Rendered:
    return template(plain(path)).render(FakeCatalog(), brain)


class ForgetfulBrain(Brain):
    """A brain that no longer knows what changed: every kept call is compared by value."""

    forgetful = False

    def changed_since(self, version: int) -> frozenset[str] | None:
        return None if self.forgetful else super().changed_since(version)


def test_plain_turns_the_loop_into_a_for_loop() -> None:
    text = plain(NGINX)
    assert "{% reuse" not in text and "{% for svc in services() if" in text
    assert text.count("{% endfor %}") == 2
    assert plain(NESTED).count("{% reuse s.Name %}") == 1
    assert plain(NESTED).endswith("{% endreuse %}\n{% endfor %}")


def test_only_the_changed_services_iteration_runs() -> None:
    catalog, brain = catalog_of(20), Brain()
    fill(brain, catalog)
    tpl = template(NGINX)
    first = tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 20)
    same_render(tpl.render(FakeCatalog(), brain), first)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (20, 0)

    catalog["svc-007"][1] = inst("svc-007", 1, Address="10.9.9.9")
    fill(brain, catalog)
    changed = tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (19, 1)
    assert b"10.9.9.9:8001" in changed.content
    same_render(changed, reference(brain, NGINX))


def test_a_changed_outer_variable_runs_every_iteration() -> None:
    text = ("{% set d = key('domain') %}{% reuse for s in services() %}{{ s.Name }}.{{ d }}\n"
            "{% endreuse %}")
    brain = Brain()
    brain.set("services", (ServiceSummary(Name="a"), ServiceSummary(Name="b")))
    brain.set("key(domain)", None)
    tpl = template(text)
    tpl.render(FakeCatalog(), brain)
    from ctmpl.model import KVPair

    brain.set("key(domain)", KVPair(Key="domain", Path="domain", Value="example.org"))
    assert tpl.render(FakeCatalog(), brain).content == b"a.example.org\nb.example.org\n"
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 2)


def test_case_twins_publish_the_first_with_instances() -> None:
    catalog, brain = catalog_of(2), Brain()
    catalog["Web"] = [inst("Web", 0, Status="critical")]
    catalog["web"] = [inst("web", 0)]
    fill(brain, catalog)
    tpl = template(NGINX)
    text = tpl.render(FakeCatalog(), brain).content.decode()
    assert "upstream web {" in text and "upstream Web {" not in text
    catalog["Web"] = [inst("Web", 0)]  # now healthy: it comes first in sorted order
    fill(brain, catalog)
    rendered = tpl.render(FakeCatalog(), brain)
    text = rendered.content.decode()
    assert "upstream Web {" in text and "upstream web {" not in text
    same_render(rendered, reference(brain, NGINX))


@pytest.mark.parametrize("body", ["{{ loop.index }}", "{% if loop.first %}x{% endif %}"])
def test_the_body_must_not_use_loop(body: str) -> None:
    with pytest.raises(TemplateError, match=r":2: reuse for: the body must not use loop"):
        template(f"\n{{% reuse for s in services() %}}{body}{{% endreuse %}}")


def test_an_inner_loops_own_loop_variable_is_fine() -> None:
    brain = Brain()
    brain.set("services", (ServiceSummary(Name="a", Tags=("x", "y")),))
    tpl = template("{% reuse for s in services() %}{% for t in s.Tags %}{{ loop.index }}{{ t }}"
                   "{% endfor %}{% endreuse %}")
    assert tpl.render(FakeCatalog(), brain).content == b"1x2y\n"


@pytest.mark.parametrize("text", [
    "{% set seen = [] %}\n{% reuse for s in services() %}{{ seen.append(s) }}{% endreuse %}",
    "{% set seen = [] %}\n{% reuse for s in services() if seen.append(s) %}x{% endreuse %}",
])
def test_side_effects_are_refused(text: str) -> None:
    with pytest.raises(TemplateError, match=r":2: reuse: a reused block must not call"):
        template(text)


def test_a_random_body_runs_every_time() -> None:
    brain = Brain()
    brain.set("services", (ServiceSummary(Name="a"),))
    tpl = template("{% reuse for s in services() %}{{ [s.Name] | random }}{% endreuse %}")
    tpl.render(FakeCatalog(), brain)
    tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 1)


def test_the_loop_filters_are_not_for_templates() -> None:
    with pytest.raises(TemplateError, match="internal to"):
        template("{{ [1] | reuse_loop(1, (1, False, False), ()) }}").render(FakeCatalog(),
                                                                           Brain())


def test_an_iteration_that_fails_keeps_the_last_complete_render() -> None:
    text = ("{% reuse for s in services() %}{{ s.Name }}{{ 1 // (service(s.Name, tag='calico')"
            " | length) }}\n{% endreuse %}")
    catalog, brain = catalog_of(3), Brain()
    fill(brain, catalog)
    tpl = template(text)
    tpl.render(FakeCatalog(), brain)
    catalog["svc-001"] = [inst("svc-001", 0, Status="critical")]  # listed, no instances
    fill(brain, catalog)
    with pytest.raises(TemplateError, match="division"):
        tpl.render(FakeCatalog(), brain)
    catalog["svc-001"] = [inst("svc-001", 0)]
    fill(brain, catalog)
    same_render(tpl.render(FakeCatalog(), brain), reference(brain, text))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(steps=st.lists(st.tuples(CHANGES, NAMES, st.integers(0, 5), META, st.booleans(),
                                st.booleans()), min_size=1, max_size=12),
       path=st.sampled_from([NGINX, HAPROXY, TESTED, PAIRS, NESTED]))
def test_the_reused_loop_renders_what_the_plain_loop_does(
        steps: list[tuple[str, str, int, dict[str, str], bool, bool]], path: Path | str) -> None:
    catalog, brain = catalog_of(3), ForgetfulBrain()
    fill(brain, catalog)
    tpl = template(path)
    same_render(tpl.render(FakeCatalog(), brain), reference(brain, path))
    for change, name, n, meta, fresh, forgetful in steps:
        before = set(catalog)
        mutate(catalog, change, name, n, meta)
        fill(brain, catalog, fresh=fresh, gone=before - set(catalog))
        brain.forgetful = forgetful
        same_render(tpl.render(FakeCatalog(), brain), reference(brain, path))
