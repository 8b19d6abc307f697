"""The daemon's garbage-collector rules (``ctmpl.gcpolicy``) and the lazily decoded answer
they are applied to."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ctmpl import gcpolicy
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import Answer


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_paused_pauses_and_restores_even_on_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gcpolicy.paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    with gcpolicy.paused():
        pass
    assert not gc.isenabled(), "a collector disabled by someone else stays disabled"


def test_settle_freezes_what_is_alive() -> None:
    gcpolicy.settle()
    assert gc.get_freeze_count() > 0


def test_answer_decodes_when_read_and_names_the_query_when_invalid() -> None:
    assert Answer(index=3, raw=b'[{"a": 1}]').body == [{"a": 1}]
    assert Answer(index=3, raw=b"").body is None
    bad = Answer(index=3, raw=b"[{", invalid="catalog.feed(ui/nodes): invalid JSON in the "
                                           "answer from 127.0.0.1:8500")
    with pytest.raises(SourceError, match=r"^catalog\.feed\(ui/nodes\): invalid JSON"):
        _ = bad.body
    answer = Answer(index=3, raw=b"[1]")
    assert answer.decode_with(lambda raw: raw) == b"[1]"
    answer.release()
    assert answer.body is None and answer.index == 3
