"""Shared fixtures; each real-process fixture lives in its own plugin module."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"

pytest_plugins = [
    "tests.fixtures_consul",
    "tests.fixtures_etcd",
    "tests.fixtures_zk",
    "tests.fixtures_nginx",
    "tests.fixtures_haproxy",
]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def ctmpl_cmd() -> list[str]:
    """How tests start the real CLI as a subprocess."""
    return [sys.executable, "-m", "ctmpl"]
