"""consul-template's data functions over ctmpl's catalogs, for one render.

Each call records its query through the shared dependency layer
(:class:`ctmpl.template.data.DataFunctions`), so Go and Jinja templates share watches and see
the same validated catalog data. Query arguments follow consul-template's grammar and error
texts (``health.service: invalid filter: "x" in "web|x"``). Until a query has answered, the
function returns consul-template's empty value (``[]``, ``""``, a nil node): the first pass
runs without data, as consul-template's does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from ctmpl.errors import CtmplError
from ctmpl.gotemplate import structs
from ctmpl.gotemplate.calls import GoError, GoFunc
from ctmpl.gotemplate.fmtvalue import quote
from ctmpl.gotemplate.values import GoList, NilPtr, str_list
from ctmpl.model import STATUSES
from ctmpl.sources.base import ServiceSpec
from ctmpl.template.data import DataFunctions

_W = r"[0-9A-Za-z_]"
_SERVICE_RE = re.compile(
    rf"\A(?:(?P<tag>(?:{_W}|[=:.\-])+)\.)?(?P<name>(?:{_W}|-)+)"
    rf"(?:@(?P<dc>(?:{_W}|[.\-])+))?(?:~(?P<near>(?:{_W}|[.\-])+))?"
    rf"(?:\|(?P<filter>(?:{_W}|,)+))?\Z"
)
_NODE_RE = re.compile(rf"\A(?P<name>(?:{_W}|[.\-])+)(?:@(?P<dc>(?:{_W}|[.\-])+))?\Z")
_HEALTH = (*STATUSES, "any")


@lru_cache(maxsize=4096)
def service_spec(text: str) -> ServiceSpec:
    """Parse ``[tag.]name[@dc][~near][|filter,…]`` as consul-template's health.service."""
    match = _SERVICE_RE.match(text)
    if not match:
        raise GoError(f"health.service: invalid format: {quote(text)}")
    filters: list[str] = []
    if match["filter"]:
        for raw in match["filter"].split(","):
            item = raw.strip()
            if item in _HEALTH:
                filters.append(item)
            elif item:
                raise GoError(f"health.service: invalid filter: {quote(item)} in {quote(text)}")
        filters.sort()
    else:
        filters = ["passing"]
    statuses = ("any",) if "any" in filters else tuple(sorted(set(filters), key=_HEALTH.index))
    return ServiceSpec(name=match["name"], tag=match["tag"] or "", dc=match["dc"] or "",
                       near=match["near"] or "", statuses=statuses)


class ViewCache:
    """Go views of catalog data, reused while the brain still holds the same data object.

    Views are immutable (templates cannot change them), so a re-render after one service
    changed converts only that service's data. Entries not used by a render are dropped.
    """

    def __init__(self) -> None:
        self._old: dict[tuple[int, str], tuple[Any, GoList]] = {}
        self._new: dict[tuple[int, str], tuple[Any, GoList]] = {}

    def get(self, kind: str, data: Any, build: Callable[[Any], GoList]) -> GoList:
        """The view of ``data`` built by ``build`` (cached by identity)."""
        key = (id(data), kind)
        hit = self._new.get(key) or self._old.get(key)
        if hit is None or hit[0] is not data:
            hit = (data, build(data))
        self._new[key] = hit
        return hit[1]

    def rotate(self) -> None:
        """End of a render: keep only what it used."""
        self._old, self._new = self._new, {}


class CatalogFunctions:
    """The data functions of one render, bound to its dependency recorder."""

    def __init__(self, data: DataFunctions, env: Mapping[str, str],
                 views: ViewCache | None = None) -> None:
        self.data = data
        self.catalog = data.catalog
        self.env_overrides = env
        self.views = views or ViewCache()

    def _consul(self, func: str) -> Any:
        if self.catalog.name != "consul":
            raise GoError(f"{func}: not available with the {self.catalog.name} catalog")
        return self.catalog

    def _guard(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except GoError:
            raise
        except CtmplError as exc:
            raise GoError(str(exc)) from None

    # -- catalog ---------------------------------------------------------------------

    def service(self, *args: str) -> GoList:
        if not args or args[0] == "":
            return structs.health_list(())
        spec = service_spec("|".join(args))
        query = self.data.query(spec, lambda: self._guard(self.catalog.service, spec))
        return self.views.get("service", self.data.use_instances(query), structs.health_list)

    def services(self, *args: str) -> GoList:
        if "".join(args):
            raise GoError("catalog.services: datacenter and near arguments are not supported")
        data = self.data.use(self.catalog.services(), ())
        return self.views.get("services", data, structs.services_list)

    def nodes(self, *args: str) -> GoList:
        if "".join(args):
            raise GoError("catalog.nodes: datacenter and near arguments are not supported")
        return self.views.get("nodes", self.data.use(self.catalog.nodes(), ()), structs.nodes_list)

    def node(self, *args: str) -> Any:
        from ctmpl.sources.consul_nodes import LocalNodeQuery, node_query

        text = "".join(args)
        catalog = self._consul("catalog.node")
        if not text:
            query: Any = LocalNodeQuery(catalog)
        else:
            match = _NODE_RE.match(text)
            if not match or match["dc"]:
                raise GoError(f"catalog.node: invalid format: {quote(text)}")
            query = node_query(catalog, match["name"])
        data = self.data.use(query, None)
        if data is None:
            return NilPtr("*dependency.CatalogNode")
        return structs.CatalogNode(data)

    def datacenters(self, *ignore_failing: bool) -> GoList:
        from ctmpl.sources.consul_nodes import datacenters_query

        catalog = self._consul("catalog.datacenters")
        return str_list(self.data.use(datacenters_query(catalog), ()))

    # -- KV --------------------------------------------------------------------------

    def _key_query(self, func: str, text: str) -> Any:
        path = text[1:] if text.startswith("/") else text
        if "@" in path:
            raise GoError(f"{func}: datacenter arguments are not supported: {quote(text)}")
        if path.endswith("/"):
            from ctmpl.sources.consul_nodes import raw_key_query

            return raw_key_query(self._consul(func), path)
        return self._guard(self.catalog.key, path)

    def key(self, text: str) -> str:
        if not text:
            return ""
        query = self._key_query("kv.get", text)
        pair = self.data.use(query, None)
        if pair is None:
            # Like consul-template, wait for the key to exist: the render stays incomplete.
            self.data.deps.missing.add(query.key)
            return ""
        return str(pair.Value)

    def key_exists(self, text: str) -> bool:
        if not text:
            return False
        return self.data.use(self._key_query("kv.exists", text), None) is not None

    def key_or_default(self, text: str, default: str) -> str:
        if not text:
            return default
        pair = self.data.use(self._key_query("kv.get", text), None)
        return default if pair is None or pair.Value == "" else str(pair.Value)

    def _pairs(self, func: str, text: str) -> Any:
        prefix = text[1:] if text.startswith("/") else text
        if "@" in prefix:
            raise GoError(f"{func}: datacenter arguments are not supported: {quote(text)}")
        return self.data.use(self._guard(self.catalog.tree, prefix.strip("/")), ())

    def ls(self, text: str) -> GoList:
        if not text:
            return structs.pairs_list(())
        return self.views.get("ls", self._pairs("kv.list", text), _direct_children)

    def tree(self, text: str) -> GoList:
        if not text:
            return structs.pairs_list(())
        return self.views.get("tree", self._pairs("kv.list", text), _all_keys)

    # -- process ---------------------------------------------------------------------

    def env(self, name: str) -> str:
        if name in self.env_overrides:
            return self.env_overrides[name]
        return os.environ.get(name, "")

    def file(self, path: str) -> str:
        if not path:
            return ""
        return str(self._guard(self.data.file, path))

    def table(self) -> dict[str, GoFunc]:
        """The functions under consul-template's names."""
        return {
            "service": GoFunc(self.service, ("string",), variadic=True),
            "services": GoFunc(self.services, ("string",), variadic=True),
            "node": GoFunc(self.node, ("string",), variadic=True),
            "nodes": GoFunc(self.nodes, ("string",), variadic=True),
            "datacenters": GoFunc(self.datacenters, ("bool",), variadic=True),
            "key": GoFunc(self.key, ("string",)),
            "keyExists": GoFunc(self.key_exists, ("string",)),
            "keyOrDefault": GoFunc(self.key_or_default, ("string", "string")),
            "ls": GoFunc(self.ls, ("string",)),
            "tree": GoFunc(self.tree, ("string",)),
            "env": GoFunc(self.env, ("string",)),
            "file": GoFunc(self.file, ("string",)),
            "byTag": GoFunc(structs.by_tag, ("any",)),
            "byKey": GoFunc(structs.by_key, ("[]*dependency.KeyPair",)),
            "explode": GoFunc(structs.explode, ("[]*dependency.KeyPair",)),
        }


def _direct_children(pairs: Any) -> GoList:
    return structs.pairs_list(p for p in pairs if p.Key and "/" not in p.Key)


def _all_keys(pairs: Any) -> GoList:
    return structs.pairs_list(p for p in pairs if p.Key and not p.Key.endswith("/"))


# Names the parser must accept (the data functions are bound per render).
DATA_NAMES = ("service", "services", "node", "nodes", "datacenters", "key", "keyExists",
              "keyOrDefault", "ls", "tree", "env", "file", "byTag", "byKey", "explode",
              "scratch", "executeTemplate")
