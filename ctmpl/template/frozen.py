"""Values a reused block read, kept so that a later render can compare them.

``frozen(value)`` is an immutable copy (or the value itself when it cannot change);
``same(a, b)`` says whether two such values render alike.
"""

from __future__ import annotations

from typing import Any

from jinja2.runtime import Undefined
from markupsafe import Markup

# Types whose values cannot change: scalars, and frozen dataclasses once seen.
_IMMUTABLE: set[type] = {str, int, float, bool, type(None), bytes, Markup}
UNDEFINED = object()  # what an undefined variable counts as (StrictUndefined cannot compare)


def same(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` render alike: the same object, or equal and of one type."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(map(same, a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


def frozen(value: Any) -> Any:
    """An immutable copy of ``value`` to compare with later; None when there is none."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is tuple and all(type(v) in _IMMUTABLE for v in value):
        return value  # the usual case: a service's instances
    if isinstance(value, Undefined):
        return UNDEFINED
    if kind is tuple or kind is list:
        items = tuple(frozen(v) for v in value)
        if any(f is None and v is not None for f, v in zip(items, value, strict=True)):
            return None
        return items if kind is tuple else (list, items)
    if kind is dict:
        pairs = frozen(tuple(value.items()))
        return None if pairs is None else (dict, pairs)
    params = getattr(kind, "__dataclass_params__", None)
    if params is not None and params.frozen:  # catalog data: Instance, ServiceSummary, …
        _IMMUTABLE.add(kind)
        return value
    return None
