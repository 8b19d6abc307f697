"""The brain: latest data per query key, "never received" distinct from "empty"."""

from __future__ import annotations

from ctmpl.brain import Brain


def test_equal_data_is_not_a_change() -> None:
    brain = Brain()
    assert brain.set("svc(a)", ("v1",)) is True
    assert brain.set("svc(a)", ("v1",)) is False, "equal data must not wake any group"
    assert brain.set("svc(a)", ("v2",)) is True
    assert brain.get("svc(a)") == ("v2",)


def test_empty_data_is_received_data() -> None:
    brain = Brain()
    assert not brain.has("key(k)")
    assert brain.set("key(k)", None) is True
    assert brain.has("key(k)") and brain.get("key(k)") is None


def test_forget_drops_data_of_unwatched_queries() -> None:
    brain = Brain()
    brain.set("a", 1)
    brain.set("b", 2)
    brain.forget({"a", "c"})
    assert not brain.has("a") and brain.get("b") == 2
    assert brain.set("a", 1) is True, "forgotten data arrives again as a change"


def test_changed_since_names_what_changed_after_a_version() -> None:
    brain = Brain()
    brain.set("a", 1)
    start = brain.version
    assert brain.changed_since(start) == frozenset()
    brain.set("a", 1)  # equal: not a change
    brain.set("b", 2)
    brain.forget(["a", "never"])
    assert brain.changed_since(start) == {"a", "b"}
    assert brain.changed_since(brain.version) == frozenset()


def test_changed_since_is_unknown_once_the_log_was_dropped(monkeypatch: object) -> None:
    import ctmpl.brain as module

    setattr(module, "_LOG_LIMIT", 3)  # noqa: B010 (a module constant, restored below)
    try:
        brain = Brain()
        start = brain.version
        for n in range(5):
            brain.set(f"k{n}", n)
        assert brain.changed_since(start) is None, "must not claim nothing changed"
        assert brain.changed_since(brain.version - 1) == {"k4"}
    finally:
        setattr(module, "_LOG_LIMIT", 50_000)  # noqa: B010
