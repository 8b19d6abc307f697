"""A consul-template (``.ctmpl``) template: parsed once, executed against the brain.

Each render runs Go's text/template semantics with consul-template's functions. The first
render happens before any data has arrived and sees empty values, as in consul-template; an
error on any pass is reported as ``NAME: parse|execute: template: :LINE[:COL]: …`` with
exit code 14.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctmpl.brain import Brain
from ctmpl.config.model import TemplateConfig
from ctmpl.errors import GoTemplateError
from ctmpl.gotemplate.builtins import BUILTINS
from ctmpl.gotemplate.calls import ExecError, GoError, GoFunc
from ctmpl.gotemplate.execute import State
from ctmpl.gotemplate.functions import DATA_NAMES, CatalogFunctions, ViewCache
from ctmpl.gotemplate.helpers import HELPERS
from ctmpl.gotemplate.parse_pipeline import ParseError
from ctmpl.gotemplate.parser import parse
from ctmpl.gotemplate.reuse import Planner
from ctmpl.gotemplate.structs import Scratch
from ctmpl.gotemplate.values import MISSING, NIL
from ctmpl.sources.base import Catalog
from ctmpl.template.data import DataFunctions, Dependencies, QueryMemo
from ctmpl.template.reuse import BlockCache, ReuseStats, Session

FUNCTION_NAMES = frozenset((*BUILTINS, *HELPERS, *DATA_NAMES))


class GoTemplate:
    """One parsed Go template bound to its config."""

    def __init__(self, config: TemplateConfig, text: str) -> None:
        self.config = config
        self.name = config.name
        self.text = text
        self.last_deps = Dependencies()  # what the last render used, also when it failed
        try:
            self.trees = parse("", text, FUNCTION_NAMES, config.left_delimiter or "{{",
                               config.right_delimiter or "}}")
        except ParseError as exc:
            raise GoTemplateError(f"{self.name}: parse: {exc}") from None
        self._views = ViewCache()
        self._memo = QueryMemo()
        self._planner = Planner(self.trees)
        self._kept = BlockCache()
        self.reuse_stats = ReuseStats()  # the last render's reused and rendered iterations

    def render(self, catalog: Catalog, brain: Brain) -> tuple[bytes, Dependencies]:
        """Execute once; GoTemplateError names the template, line and column."""
        data = DataFunctions(catalog, brain, self.config.sandbox_path, self._memo)
        self.last_deps = data.deps
        funcs: dict[str, GoFunc] = {**BUILTINS, **HELPERS}
        funcs.update(CatalogFunctions(data, consul_environment(catalog), self._views).table())
        for name in self.config.function_denylist:
            funcs[name] = GoFunc(_denied, ("any",), variadic=True)
        scratch = Scratch()
        funcs["scratch"] = GoFunc(lambda: scratch)
        session = Session(self._kept, data, frozenset())
        state = State(self.text, "", self.trees, funcs, self.config.error_on_missing_key,
                      reuse=(self._planner, session))
        funcs["executeTemplate"] = GoFunc(_execute_template(state), ("string", "any"),
                                          variadic=True)
        complete = False
        try:
            text = state.execute("", MISSING)
            complete = data.deps.complete
        except ExecError as exc:
            raise GoTemplateError(f"{self.name}: execute: {exc}") from None
        except RecursionError:
            raise GoTemplateError(f"{self.name}: execute: template nesting too deep") from None
        finally:
            self._views.rotate()
            self._kept.end(complete)
            self.reuse_stats = session.stats
        return text.encode("utf-8", "surrogateescape"), data.deps


def _denied(*_: Any) -> str:
    raise GoError("function is disabled")


def _execute_template(state: State) -> Any:
    def run(name: str, *data: Any) -> str:
        if len(data) > 1:
            raise GoError("executeTemplate: wrong number of arguments, expected 1 or 2, but "
                          f"got {len(data) + 1}")
        dot = data[0] if data else MISSING
        try:
            return state.execute(name, MISSING if dot is NIL else dot)
        except ExecError as exc:
            raise GoError(str(exc)) from None

    return run


def consul_environment(catalog: Catalog) -> Mapping[str, str]:
    """What consul-template adds to ``env``: the Consul address and its TLS switches."""
    if catalog.name != "consul":
        return {}  # and no import of the Consul client for file and etcd catalogs
    from ctmpl.sources.consul import ConsulCatalog

    if not isinstance(catalog, ConsulCatalog):
        return {}
    consul = catalog.settings.consul
    return {
        "CONSUL_HTTP_ADDR": consul.address,
        "CONSUL_HTTP_SSL": "true" if consul.ssl.enabled else "false",
        "CONSUL_HTTP_SSL_VERIFY": "true" if consul.ssl.verify else "false",
    }
