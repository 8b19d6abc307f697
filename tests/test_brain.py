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
