"""Go-style durations and consul-template's ``min:max`` wait."""

from __future__ import annotations

import pytest

from ctmpl.config.durations import parse_duration, parse_wait
from ctmpl.config.model import Wait
from ctmpl.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("1h", 3600.0), ("1.5s", 1.5),
     ("0", 0.0), ("10", 10.0), (7, 7.0), (0.5, 0.5), ("2us", 2e-6), ("3ns", 3e-9)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration("x", text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "5x", "5s5", "1h-5m", "s", True, None, [1]])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^x: .*not a duration"):
        parse_duration("x", bad)


@pytest.mark.parametrize("bad", ["-5s", "-1", -3])
def test_negative_duration_is_an_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="must not be negative"):
        parse_duration("wait", bad)


def test_wait_min_only_means_max_four_times_min() -> None:
    assert parse_wait("wait", "5s") == Wait(min=5.0, max=20.0)


def test_wait_min_max() -> None:
    assert parse_wait("wait", "2s:30s") == Wait(min=2.0, max=30.0)
    assert parse_wait("wait", "0s") == Wait(0.0, 0.0)
    assert not parse_wait("wait", "0s").enabled
    assert parse_wait("wait", "1s").enabled


def test_wait_max_less_than_min_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^wait: max \(1s\) must not be less than min \(5s\)"):
        parse_wait("wait", "5s:1s")


@pytest.mark.parametrize("bad", ["-5s", "-5s:10s", "5s:-1s"])
def test_wait_negative_is_an_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="negative"):
        parse_wait("wait", bad)


@pytest.mark.parametrize("bad", ["5s:", ":5s", ":", "a:b"])
def test_wait_malformed(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^wait: "):
        parse_wait("wait", bad)
