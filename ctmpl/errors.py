"""One small error hierarchy; each error carries the exit code it maps to.

Messages start with what failed, e.g. ``wait: min must be less than max`` or
``kv(app/config): connection refused``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_TEMPLATE = 4
EXIT_SOURCE = 5
EXIT_INSTALL = 6
EXIT_COMMAND = 7
EXIT_CHECK = 8
EXIT_PROXY = 9
EXIT_UNHEALTHY = 10  # ctmpl register -once: the check failed; the instance was deregistered
EXIT_GO_TEMPLATE = 14  # consul-template's code for any template error, kept for .ctmpl files
EXIT_INTERRUPTED = 130


class CtmplError(Exception):
    """Base class: a failure with a one-line message and an exit code."""

    exit_code = EXIT_INTERNAL


class UsageError(CtmplError):
    """A bad command-line flag or flag value."""

    exit_code = EXIT_USAGE


class ConfigError(CtmplError):
    """A bad config file, unknown key or invalid value."""

    exit_code = EXIT_CONFIG


class TemplateError(CtmplError):
    """A template that cannot be read, parsed or rendered."""

    exit_code = EXIT_TEMPLATE


class GoTemplateError(TemplateError):
    """A Go (``.ctmpl``) template that cannot be parsed or executed: consul-template's 14."""

    exit_code = EXIT_GO_TEMPLATE


class SourceError(CtmplError):
    """A catalog that cannot be read or answered with an error."""

    exit_code = EXIT_SOURCE


class QueryError(SourceError):
    """A malformed query argument such as ``service("")``."""


class InstallError(CtmplError):
    """A destination file that cannot be written."""

    exit_code = EXIT_INSTALL


class CommandFailed(CtmplError):
    """A command run after install exited non-zero or timed out."""

    exit_code = EXIT_COMMAND


class CheckFailed(CtmplError):
    """A check command rejected the staged configuration."""

    exit_code = EXIT_CHECK


class ProxyError(CtmplError):
    """The proxy could not be reloaded or started."""

    exit_code = EXIT_PROXY
