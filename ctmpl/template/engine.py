"""Load and render one template in a Jinja2 sandbox, mapping errors to ``file:line``."""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import BuiltinMethodType, TracebackType
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ctmpl.brain import Brain
from ctmpl.config.model import TemplateConfig
from ctmpl.errors import CtmplError, TemplateError
from ctmpl.logs import shorten
from ctmpl.model import Check, Instance, KVPair, Node, NodeService, NodeServices, ServiceSummary
from ctmpl.sources.base import Catalog
from ctmpl.template.data import DataFunctions, Dependencies, QueryMemo
from ctmpl.template.helpers import FILTERS, GLOBALS
from ctmpl.template.proxy_values import HELPERS as PROXY_HELPERS
from ctmpl.template.reuse import ReuseExtension, ReuseStats, Session

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # imported when a .ctmpl template is loaded: Jinja-only runs start faster
    from ctmpl.gotemplate.template import GoTemplate


@dataclass(frozen=True)
class Rendered:
    """The bytes of one render and what it depended on."""

    content: bytes
    deps: Dependencies

    @property
    def complete(self) -> bool:
        """False when data was missing: such a render must not be written."""
        return self.deps.complete


class Template:
    """A compiled template bound to its config; render it as often as data changes."""

    def __init__(self, config: TemplateConfig) -> None:
        self.config = config
        self.name = config.name
        self._env = _environment(config)
        self._denied = {name: _denied(name) for name in config.function_denylist}
        # What the last render used, also when it raised: the runner keeps watching those
        # queries, so a template that failed on its data renders again when it changes.
        self.last_deps = Dependencies()
        self.reuse_stats = ReuseStats()  # the last render's reused and rendered blocks
        self._memo = QueryMemo()
        self._reuse: ReuseExtension = self._env.extensions[ReuseExtension.identifier]  # type: ignore[assignment]
        # Functions that are the same object in every render (a block naming one is reusable).
        self._stable = frozenset(map(id, [*self._env.globals.values(), *self._denied.values()]))
        self._go: GoTemplate | None = None
        if config.is_go:
            from ctmpl.gotemplate.template import GoTemplate

            self._go = GoTemplate(config, self._read())
        else:
            self._template = self._compile()

    @property
    def empty_is_absent(self) -> bool:
        """True when an empty render must not create the file (consul-template's rule)."""
        return self._go is not None

    def _read(self) -> str:
        if not self.config.source:
            return self.config.contents
        try:
            return Path(self.config.source).read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"template {self.name}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TemplateError(f"template {self.name}: not UTF-8 text") from None

    def _compile(self) -> jinja2.Template:
        source = self._read()
        try:
            return self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {self.name}:{exc.lineno}: {exc.message}") from None

    def render(self, catalog: Catalog, brain: Brain) -> Rendered:
        """Render against the brain's current data; TemplateError names file and line."""
        if self._go is not None:
            try:
                content, deps = self._go.render(catalog, brain)
            finally:
                self.last_deps = self._go.last_deps
                self._note_reuse(self._go.reuse_stats)
            return Rendered(content=content, deps=deps)
        data = DataFunctions(catalog, brain, self.config.sandbox_path, self._memo)
        self.last_deps = data.deps
        # Functions win over variables of the same name: `-var service=x` must not
        # silently replace service().
        variables: dict[str, Any] = {**self.config.vars, **data.globals()}
        variables["vars"] = dict(self.config.vars)
        variables.update(self._denied)
        session = self._reuse.session = Session(self._reuse.cache, data, self._stable)
        complete = False
        try:
            text = self._render_text(variables)
            complete = data.deps.complete
        except TemplateError:
            if data.deps.missing:
                # Placeholders for data not yet received can trip later expressions
                # (`service("x")[0].Port + 1`): the render is only incomplete; a real
                # error shows again once the data is there.
                return Rendered(content=b"", deps=data.deps)
            raise
        finally:
            self._reuse.session = None
            self._reuse.cache.end(complete)
            self._note_reuse(session.stats)
        if not text.endswith("\n") and text:
            text += "\n"
        return Rendered(content=text.encode("utf-8"), deps=data.deps)

    def _note_reuse(self, stats: ReuseStats) -> None:
        self.reuse_stats = stats
        if stats.reused or stats.rendered:
            log.debug("%s: reused %d of %d blocks", self.name, stats.reused,
                      stats.reused + stats.rendered)

    def _render_text(self, variables: dict[str, Any]) -> str:
        try:
            return self._template.render(variables)
        except CtmplError as exc:
            raise self._error(exc, str(exc)) from None
        except jinja2.UndefinedError as exc:
            raise self._error(exc, _undefined_message(str(exc.message))) from None
        except jinja2.TemplateError as exc:
            raise self._error(exc, str(exc)) from None
        except TypeError as exc:
            # A call with wrong arguments: name the function as the template wrote it.
            raise self._error(exc, re.sub(r"^\w+\.(?=\w+\(\))", "", str(exc))) from None
        except Exception as exc:
            raise self._error(exc, repr(exc)) from None

    def _error(self, exc: BaseException, message: str) -> TemplateError:
        # The message may quote catalog data (int() of a 25 MB KV value): keep it short.
        return TemplateError(f"template {self.name}:{_line(exc)}: {shorten(message, 300)}")


# Catalog data (frozen dataclasses whose public attributes are all fields), dicts and lists:
# the sandbox refuses none of their attributes that do not start with "_".
_PLAIN = frozenset({Instance, ServiceSummary, Node, NodeService, NodeServices, KVPair, Check,
                    dict, list})


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with short paths where its general checks cannot fail.

    A template over thousands of services reads ``svc.Name`` and calls ``service()`` tens
    of thousands of times per render; the general checks cost more than the work. Fields
    of catalog data, public methods of plain dicts and lists, builtin methods and the data
    functions pass those checks anyway: for them the answer is the same, only sooner.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute`` as the sandbox allows it."""
        if type(obj) in _PLAIN and type(attribute) is str and attribute[:1] != "_":
            try:
                return getattr(obj, attribute)
            except AttributeError:
                pass
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``__obj``; builtins and data functions without the checks they always pass."""
        kind = type(__obj)
        if kind is BuiltinMethodType or type(getattr(__obj, "__self__", None)) is DataFunctions:
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            try:
                return __obj(*args, **kwargs)
            except StopIteration:
                return __self.undefined("value was undefined because a callable raised a "
                                        "StopIteration exception")
        return super().call(__context, __obj, *args, **kwargs)


def _environment(config: TemplateConfig) -> SandboxedEnvironment:
    options: dict[str, Any] = {
        "keep_trailing_newline": True,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "autoescape": False,
    }
    if config.left_delimiter:
        options["variable_start_string"] = config.left_delimiter
    if config.right_delimiter:
        options["variable_end_string"] = config.right_delimiter
    if config.error_on_missing_key:
        options["undefined"] = jinja2.StrictUndefined
    env = _Sandbox(extensions=[ReuseExtension], **options)
    env.globals.update(GLOBALS)
    env.filters.update(FILTERS)
    env.globals.update(PROXY_HELPERS)
    env.filters.update(PROXY_HELPERS)
    for name in config.function_denylist:
        env.globals[name] = env.filters[name] = _denied(name)
    return env


def _denied(name: str) -> Any:
    def call(*_args: Any, **_kwargs: Any) -> Any:
        raise TemplateError(f"{name}(): denied by the template's function_denylist")

    return call


def _undefined_message(message: str) -> str:
    if message.endswith("is undefined") and message.startswith("'"):
        name = message.split("'")[1]
        return f"unknown function or variable {name!r}"
    return message


def _line(exc: BaseException) -> str:
    """The template line an error was raised on ('?' when unknown)."""
    tb: TracebackType | None = exc.__traceback__
    line = "?"
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == "<template>":
            line = str(lineno)
    return line
