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
    "tests.fixtures_dns",
]

ROOT = Path(__file__).resolve().parent.parent

# scripts/test.sh installs every server and tool the tests start, and sets this: a test it
# runs must not skip quietly because one of them is missing after all.
REQUIRE_TOOLS = os.environ.get("CTMPL_REQUIRE_TOOLS") == "1"
MISSING_MARKERS = ("not installed", "not shipped")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Under ``CTMPL_REQUIRE_TOOLS=1``, a skip for a missing tool or shipped file fails."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_TOOLS and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        if any(marker in reason for marker in MISSING_MARKERS):
            report.outcome = "failed"
            report.longrepr = f"skipped under CTMPL_REQUIRE_TOOLS=1: {reason}"
    return None


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def ctmpl_cmd() -> list[str]:
    """How tests start the real CLI as a subprocess."""
    return [sys.executable, "-m", "ctmpl"]
