"""Reused range iterations in Go templates: an unchanged service's output is kept, and a
render that reuses it gives the bytes and dependencies a render from scratch gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.brain import Brain
from ctmpl.config.model import TemplateConfig
from ctmpl.model import KVPair
from ctmpl.template.engine import Rendered, Template
from tests.test_render import FakeCatalog
from tests.test_template_reuse import (
    CHANGES,
    META,
    Catalog,
    catalog_of,
    fill,
    inst,
    mutate,
    same_render,
)

# consul-template's classic nginx template.
CLASSIC = ('{{ range services }}{{ if .Tags | contains "calico" }}upstream {{ .Name }} {\n'
           '{{ range service (printf "calico.%s" .Name) }}  server {{ .Address }}:{{ .Port }};\n'
           "{{ end }}}\n{{ end }}{{ end }}")
# Outer variables, the range's own variables, nested with/range and helpers.
VARIABLES = ('{{ $d := keyOrDefault "domain" "example.com" }}{{ range $i, $s := services }}'
             "{{ $i }} {{ $s.Name }}.{{ $d }}"
             '{{ range service (printf "calico.%s" .Name) }} {{ .Address }}:{{ .Port }}'
             '{{ with .Checks }}/{{ len . }}{{ end }} {{ .Tags | join "," }}'
             "{{ range $k, $v := .Tags }}{{ $k }}={{ $v }}{{ end }}{{ end }}\n{{ end }}")
# A defined template run from the body, and a map ranged over inside it.
TEMPLATE_CALL = ('{{ define "up" }}{{ range $t, $l := service (printf "calico.%s" .) | byTag }}'
                 "{{ $t }}:{{ len $l }};{{ end }}{{ end }}"
                 '{{ range services }}{{ .Name }} {{ template "up" .Name }}\n{{ end }}')
TEMPLATES = [CLASSIC, VARIABLES, TEMPLATE_CALL]
NAMES = st.sampled_from(["svc-000", "svc-001", "web", "a.b"])  # the first two exist


def go(text: str) -> Template:
    return Template(TemplateConfig(destination="/dev/null", contents=text, syntax="go"))


def fill_all(brain: Brain, catalog: Catalog, domain: str | None = None, **kw: object) -> None:
    fill(brain, catalog, **kw)  # type: ignore[arg-type]
    brain.forget(["key(domain)"])
    brain.set("key(domain)", None if domain is None else KVPair("domain", "domain", domain))


def render(tpl: Template, brain: Brain) -> Rendered:
    rendered = tpl.render(FakeCatalog(), brain)
    assert rendered.complete, rendered.deps.missing
    return rendered


def test_only_the_changed_service_renders_again() -> None:
    catalog, brain = catalog_of(20), Brain()
    fill_all(brain, catalog)
    tpl = go(CLASSIC)
    first = render(tpl, brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 20)
    again = render(tpl, brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (20, 0)
    same_render(again, first)

    catalog["svc-007"][1] = inst("svc-007", 1, Address="10.9.9.9")
    fill_all(brain, catalog)
    changed = render(tpl, brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (19, 1)
    assert b"server 10.9.9.9:8001;" in changed.content
    assert b"server 10.0.1.1:8001;" in first.content
    same_render(changed, render(go(CLASSIC), brain))


def test_an_outer_variable_that_changes_renders_every_iteration() -> None:
    catalog, brain = catalog_of(4), Brain()
    fill_all(brain, catalog, domain="a.org")
    tpl = go(VARIABLES)
    render(tpl, brain)
    fill_all(brain, catalog, domain="b.org")
    rendered = render(tpl, brain)
    # Every service again; inside them, the 12 instances' own (nested) ranges are kept.
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (12, 4)
    assert rendered.content.count(b".b.org ") == 4
    render(tpl, brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (4, 0)


def test_a_new_service_list_with_equal_entries_is_still_reused() -> None:
    catalog, brain = catalog_of(5), Brain()
    fill_all(brain, catalog)
    tpl = go(CLASSIC)
    render(tpl, brain)
    fill_all(brain, catalog, fresh=True)  # a source that decoded everything again
    rendered = render(tpl, brain)
    assert tpl.reuse_stats.reused == 5
    same_render(rendered, render(go(CLASSIC), brain))


def test_a_changed_instance_in_a_kept_service_range_renders_again() -> None:
    catalog, brain = catalog_of(2), Brain()
    fill_all(brain, catalog)
    tpl = go(VARIABLES)  # its instance range ranges again: each instance is kept too
    render(tpl, brain)
    catalog["svc-001"][1] = inst("svc-001", 1, Address="10.9.9.9")
    fill_all(brain, catalog)
    rendered = render(tpl, brain)
    assert b" 10.9.9.9:8001 " in rendered.content
    # svc-000 and svc-001's other two instances kept; svc-001 and its changed instance not.
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (3, 2)
    same_render(rendered, render(go(VARIABLES), brain))


@pytest.mark.parametrize("body", [
    '{{ scratch.Set "last" .Name }}',  # an effect outside the iteration
    '{{ env "HOME" }}',  # untracked input
    "{{ timestamp }}",
    '{{ $n = "x" }}',  # assigns a variable declared outside
    '{{ executeTemplate "t" }}',
])
def test_a_body_with_effects_or_untracked_inputs_renders_every_time(body: str) -> None:
    text = ('{{ define "t" }}t{{ end }}{{ $n := "" }}{{ range services }}' + body +
            '{{ range service (printf "calico.%s" .Name) }}{{ .Port }}{{ end }}{{ end }}')
    catalog, brain = catalog_of(3), Brain()
    fill_all(brain, catalog)
    tpl = go(text)
    render(tpl, brain)
    render(tpl, brain)
    assert tpl.reuse_stats.reused == 0


def test_a_body_that_asks_nothing_is_not_kept() -> None:
    tpl = go("{{ range services }}{{ .Name }}{{ end }}")
    catalog, brain = catalog_of(3), Brain()
    fill_all(brain, catalog)
    render(tpl, brain)
    render(tpl, brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 0)


def test_the_shrink_guard_still_counts_reused_instances() -> None:
    catalog, brain = catalog_of(6), Brain()
    fill_all(brain, catalog)
    tpl = go(CLASSIC)
    first = render(tpl, brain)
    again = render(tpl, brain)
    assert tpl.reuse_stats.reused == 6
    assert again.deps.instances == first.deps.instances == 18
    assert set(again.deps.queries) == set(first.deps.queries)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(steps=st.lists(st.tuples(CHANGES, NAMES, st.integers(0, 5), META, st.booleans(),
                                st.sampled_from([None, "a.org", "b.org"])),
                      min_size=1, max_size=12),
       text=st.sampled_from(TEMPLATES))
def test_reusing_renders_exactly_what_a_fresh_render_does(
        steps: list[tuple[str, str, int, dict[str, str], bool, str | None]], text: str) -> None:
    catalog, brain = catalog_of(3), Brain()
    fill_all(brain, catalog)
    tpl = go(text)
    render(tpl, brain)
    for change, name, n, meta, fresh, domain in steps:
        before = set(catalog)
        mutate(catalog, change, name, n, meta)
        fill_all(brain, catalog, domain, fresh=fresh, gone=before - set(catalog))
        same_render(render(tpl, brain), render(go(text), brain))
