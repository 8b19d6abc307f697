"""Reused blocks (``{% reuse %}``): unchanged services' output is kept, and a render that
reuses it gives the bytes and dependencies a render from scratch gives."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.brain import Brain
from ctmpl.config.model import CatalogConfig, TemplateConfig
from ctmpl.errors import TemplateError
from ctmpl.model import Instance, KVPair, ServiceSummary, sort_instances, summarize
from ctmpl.sources.base import parse_service
from ctmpl.sources.file import FileCatalog
from ctmpl.template.engine import Rendered, Template
from tests.foundation_util import ROOT
from tests.test_render import FakeCatalog

NGINX = ROOT / "templates" / "nginx.conf.j2"
HAPROXY = ROOT / "templates" / "haproxy.cfg.j2"
# Queries inside the block: a reused block's calls must be checked and recorded again.
CALLS = ("{% for s in services() %}{% reuse s.Name %}"
         "{% for i in service(s.Name, tag='calico') %}{{ s.Name }} {{ i | hostPort }} "
         "{{ i.Meta | toJSON }}\n{% endfor %}{% endreuse %}{% endfor %}")

Catalog = dict[str, list[Instance]]


def fill(brain: Brain, catalog: Catalog, fresh: bool = False, gone: Iterable[str] = ()) -> None:
    """Put what a source answers for ``catalog`` into the brain (FakeCatalog's keys);
    forget the services ``gone`` from it.

    ``fresh``: replace every answer by a new, equal object, as a source that decodes
    everything again does; a brain otherwise keeps the object it has for equal data.
    """
    everything = [i for instances in catalog.values() for i in instances]
    answers: dict[str, object] = {"services": summarize(everything)}
    for name, instances in catalog.items():
        answers[f"service(calico.{name}|passing)"] = sort_instances(
            i for i in instances if "calico" in i.Tags and i.Status == "passing")
    brain.forget(f"service(calico.{name}|passing)" for name in gone)
    for key, data in answers.items():
        if fresh:
            brain.forget([key])
        brain.set(key, copy.deepcopy(data) if fresh else data)


def inst(name: str, n: int, **fields: Any) -> Instance:
    base: dict[str, Any] = {"Name": name, "ID": f"{name}-{n}", "Address": f"10.0.{n}.1",
                            "Port": 8000 + n, "Tags": ("calico",), "Node": f"node-{n}"}
    return Instance(**{**base, **fields})


def catalog_of(count: int) -> Catalog:
    return {f"svc-{s:03d}": [inst(f"svc-{s:03d}", n) for n in range(3)] for s in range(count)}


def template(path: Path | str = NGINX, text: str = "") -> Template:
    if isinstance(path, str):
        text = path
    if text:
        return Template(TemplateConfig(destination="/dev/null", contents=text))
    return Template(TemplateConfig(destination="/dev/null", source=str(path)))


def from_scratch(brain: Brain, path: Path | str = NGINX, text: str = "") -> Rendered:
    return template(path, text).render(FakeCatalog(), brain)


def same_render(reused: Rendered, fresh: Rendered) -> None:
    assert reused.content == fresh.content
    assert set(reused.deps.queries) == set(fresh.deps.queries)
    assert reused.deps.missing == fresh.deps.missing
    assert reused.deps.instances == fresh.deps.instances


def test_only_the_changed_service_renders_again() -> None:
    catalog, brain = catalog_of(20), Brain()
    fill(brain, catalog)
    tpl = template()
    first = tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 20)
    again = tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (20, 0)
    same_render(again, first)

    catalog["svc-007"][1] = inst("svc-007", 1, Address="10.9.9.9")
    fill(brain, catalog)
    changed = tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (19, 1)
    assert b"10.9.9.9:8001" in changed.content and b"10.0.1.1:8001" in first.content
    same_render(changed, from_scratch(brain))


def test_equal_data_in_new_objects_is_still_reused() -> None:
    catalog, brain = catalog_of(5), Brain()
    fill(brain, catalog)
    tpl = template(HAPROXY)
    tpl.render(FakeCatalog(), brain)
    fill(brain, catalog, fresh=True)  # a source that decoded everything again
    rendered = tpl.render(FakeCatalog(), brain)
    assert tpl.reuse_stats.reused == 10  # 5 services in the frontend and backend loops
    same_render(rendered, from_scratch(brain, HAPROXY))


def test_a_file_catalog_edit_renders_only_what_changed(tmp_path: Path) -> None:
    def write(port: int) -> None:
        services = {f"svc-{s}": [{"id": f"svc-{s}-{n}", "address": f"10.0.{s}.{n + 1}",
                                  "port": port if (s, n) == (3, 0) else 8000 + n,
                                  "tags": ["calico"]} for n in range(2)] for s in range(8)}
        path.write_text(json.dumps({"services": services}))

    path = tmp_path / "catalog.json"
    write(8000)
    catalog = FileCatalog(CatalogConfig(kind="file", file_path=str(path)))
    tpl = template()
    assert tpl.render(catalog, Brain()).complete
    kept, edited = (catalog.service(parse_service(f"calico.svc-{s}")) for s in (2, 3))
    before = [catalog.view(q) for q in (kept, edited)]
    write(9999)
    assert asyncio.run(catalog.reload())
    # An unchanged service's data stays the same object: comparing it costs nothing.
    assert catalog.view(kept) is before[0]
    assert catalog.view(edited) != before[1]
    rendered = tpl.render(catalog, Brain())
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (7, 1)
    assert b"10.0.3.1:9999" in rendered.content
    assert rendered.content == template().render(catalog, Brain()).content


def test_a_variable_the_block_reads_is_compared_by_type() -> None:
    text = ("{% set v = key('x') | parseJSON %}"
            "{% for s in services() %}{% reuse s.Name %}{{ s.Name }}={{ v }}\n"
            "{% endreuse %}{% endfor %}")
    brain = Brain()
    brain.set("services", (ServiceSummary(Name="a"), ServiceSummary(Name="b")))
    brain.set("key(x)", KVPair(Key="x", Path="x", Value="1"))
    tpl = template(text=text)
    assert tpl.render(FakeCatalog(), brain).content == b"a=1\nb=1\n"
    brain.set("key(x)", KVPair(Key="x", Path="x", Value="1.0"))  # 1 == 1.0, but prints apart
    assert tpl.render(FakeCatalog(), brain).content == b"a=1.0\nb=1.0\n"
    assert tpl.reuse_stats.reused == 0


def test_an_incomplete_render_keeps_the_last_complete_blocks() -> None:
    catalog, brain = catalog_of(4), Brain()
    fill(brain, catalog)
    tpl = template()
    tpl.render(FakeCatalog(), brain)
    catalog["svc-new"] = [inst("svc-new", 0)]
    fill(brain, catalog)
    brain.forget(["service(calico.svc-new|passing)"])  # not answered yet
    assert not tpl.render(FakeCatalog(), brain).complete
    fill(brain, catalog)
    rendered = tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (4, 1)
    same_render(rendered, from_scratch(brain))


@pytest.mark.parametrize("body", [
    "{{ env('HOME') }}",  # not a watched query
    "{{ ns.n }}",  # a namespace can change in place
    "{{ loop.index }}",
    "{{ [1, 2] | random }}",
    "{{ m() }}",  # a macro is a new object in every render
])
def test_a_block_reading_untracked_state_renders_every_time(body: str) -> None:
    text = ("{% set ns = namespace(n=1) %}{% macro m() %}m{% endmacro %}"
            f"{{% for s in services() %}}{{% reuse s.Name %}}{body}{{% endreuse %}}"
            "{% endfor %}")
    brain = Brain()
    brain.set("services", (ServiceSummary(Name="a"),))
    tpl = template(text=text)
    tpl.render(FakeCatalog(), brain)
    tpl.render(FakeCatalog(), brain)
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (0, 1)


@pytest.mark.parametrize("body", ["{% set ns.n = 2 %}", "{{ seen.append(1) }}",
                                  "{% set _ = seen.update({'a': 1}) %}"])
def test_a_block_with_side_effects_is_refused(body: str) -> None:
    with pytest.raises(TemplateError, match=r":2: reuse: a reused block must not"):
        template(text=f"{{% set ns = namespace(n=1) %}}\n{{% reuse 1 %}}{body}{{% endreuse %}}")


def test_the_internal_filters_are_not_for_templates() -> None:
    with pytest.raises(TemplateError, match="internal to"):
        from_scratch(Brain(), text="{{ 'x' | reuse_enter(1, 1, False, ()) }}")


def test_nested_blocks_replay_their_calls_into_the_outer_one() -> None:
    text = ("{% reuse 'all' %}{% for s in services() %}{% reuse s.Name %}"
            "{{ service(s.Name, tag='calico') | length }}{% endreuse %}{% endfor %}"
            "{% endreuse %}")
    catalog, brain = catalog_of(3), Brain()
    fill(brain, catalog)
    tpl = template(text=text)
    tpl.render(FakeCatalog(), brain)
    catalog["svc-001"].append(inst("svc-001", 7))
    fill(brain, catalog)
    rendered = tpl.render(FakeCatalog(), brain)
    assert rendered.content == b"343\n"
    assert (tpl.reuse_stats.reused, tpl.reuse_stats.rendered) == (2, 2)
    same_render(tpl.render(FakeCatalog(), brain), from_scratch(brain, text=text))
    assert tpl.reuse_stats.reused == 1  # the outer block, nothing changed since


NAMES = st.sampled_from(["web", "Web", "api", "db", "a.b", "cache", "x-1"])
CHANGES = st.sampled_from(["address", "port", "tags", "meta", "status", "add", "remove",
                           "new service", "drop service"])
META = st.sampled_from([{}, {"weight": "5"}, {"weight": "x"}, {"max_fails": "0"},
                        {"fail_timeout": "10s"}, {"admin_state": "drain"},
                        {"admin_state": "maint"}])


def mutate(catalog: Catalog, change: str, name: str, n: int, meta: dict[str, str]) -> None:
    instances = catalog.setdefault(name, [])
    if change == "drop service":
        del catalog[name]
        return
    if change in ("add", "new service") or not instances:
        instances.append(inst(name, n, Meta=meta))
        return
    i = n % len(instances)
    old = instances[i]
    if change == "remove":
        del instances[i]
    elif change == "address":
        instances[i] = Instance(**{**vars(old), "Address": f"10.1.{n}.{len(instances)}"})
    elif change == "port":
        instances[i] = Instance(**{**vars(old), "Port": old.Port % 60000 + 1})
    elif change == "tags":
        tags = ("v2",) if "calico" in old.Tags else ("calico", "v2")
        instances[i] = Instance(**{**vars(old), "Tags": tags})
    elif change == "meta":
        instances[i] = Instance(**{**vars(old), "Meta": meta})
    else:
        status = "critical" if old.Status == "passing" else "passing"
        instances[i] = Instance(**{**vars(old), "Status": status})


@settings(max_examples=60, deadline=None, derandomize=True)
@given(steps=st.lists(st.tuples(CHANGES, NAMES, st.integers(0, 5), META, st.booleans()),
                      min_size=1, max_size=12),
       path=st.sampled_from([NGINX, HAPROXY, CALLS]))
def test_reusing_renders_exactly_what_a_fresh_render_does(
        steps: list[tuple[str, str, int, dict[str, str], bool]], path: Path | str) -> None:
    catalog, brain = catalog_of(3), Brain()
    fill(brain, catalog)
    tpl = template(path)
    tpl.render(FakeCatalog(), brain)
    for change, name, n, meta, fresh in steps:
        before = set(catalog)
        mutate(catalog, change, name, n, meta)
        fill(brain, catalog, fresh=fresh, gone=before - set(catalog))
        same_render(tpl.render(FakeCatalog(), brain), from_scratch(brain, path))
