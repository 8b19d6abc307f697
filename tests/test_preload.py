"""What a daemon start loads, and when: nothing it does not use, aiohttp off the start.

A Consul daemon with a Jinja template and no proxy must not import the libraries of other
features (Prometheus metrics without ``-status-addr``, YAML of the file catalog, the file
watcher of ``file()``, the HAProxy and nginx controllers, the orphan reaper): each costs
start-up time. The Consul client's aiohttp is imported after the first complete render when
the agent is reached over plain http (the requests before it need no aiohttp), and in the
background as soon as the configuration is known over https. Checked in a fresh
interpreter, as ``python -m ctmpl`` starts.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ctmpl import preload as preload_module
from ctmpl.config.model import CatalogConfig, ConsulConfig
from ctmpl.sources.consul_http import AgentHTTP
from tests.fixtures_consul import ConsulFixture

ROOT = Path(__file__).resolve().parent.parent

# Starts the daemon's parts the way the entry point does, without a catalog to talk to:
# configuration, the background import, the runner's modules, the catalog, the groups.
SCRIPT = """
import json, sys
from ctmpl.cli import load_config
from ctmpl.preload import preload
before = set(sys.modules)
config = load_config(sys.argv[1:])
thread = preload(config.catalog)
from ctmpl import telemetry
from ctmpl.groups import build_groups
from ctmpl.runner import Runner
from ctmpl.sources import open_catalog
if thread is not None:
    thread.join(30)
open_catalog(config.catalog)
build_groups(config)
telemetry.reset("consul", metrics=False)
print(json.dumps({"before": sorted(before), "after": sorted(sys.modules)}))
"""


def _modules(tmp_path: Path, *flags: str) -> tuple[set[str], set[str]]:
    template = tmp_path / "t.j2"
    template.write_text("{% for s in services() %}{{ s.Name }}{% endfor %}\n")
    args = ["-template", f"{template}:{tmp_path / 'out'}", *flags]
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    seen = json.loads(out)
    return set(seen["before"]), set(seen["after"])


def test_consul_start_loads_only_what_it_uses(tmp_path: Path) -> None:
    _, after = _modules(tmp_path, "-consul-addr", "127.0.0.1:1")
    unused = {"aiohttp", "yarl", "prometheus_client", "yaml", "watchdog",
              "ctmpl.proxy.haproxy", "ctmpl.sources.file", "ctmpl.template.file_watch",
              "ctmpl.status_server", "psutil", "ctypes"}
    assert unused & after == set()


def test_https_consul_preloads_aiohttp(tmp_path: Path) -> None:
    before, after = _modules(tmp_path, "-consul-addr", "https://127.0.0.1:1")
    assert "aiohttp" not in before and "aiohttp" in after


def test_other_catalogs_do_not_preload_aiohttp(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("services: {}\n")
    _, after = _modules(tmp_path, "-catalog", f"file://{catalog}")
    assert "aiohttp" not in after


def test_preload_thread_skips_the_system_certificates_other_threads_keep_them() -> None:
    """aiohttp's default TLS contexts, built while the preload thread imports it, load no CA
    bundle; a context the main thread builds meanwhile does, and so does every one after."""
    system = ssl.create_default_context().cert_store_stats()
    seen: dict[str, dict[str, int]] = {}

    def other() -> None:
        seen["other"] = ssl.create_default_context().cert_store_stats()

    with preload_module.without_default_certificates():
        seen["inside"] = ssl.create_default_context().cert_store_stats()
        plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        plain.set_default_verify_paths()
        seen["plain"] = plain.cert_store_stats()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert seen["inside"]["x509_ca"] == 0 and seen["plain"]["x509_ca"] == 0
    assert seen["other"] == system
    assert "set_default_verify_paths" not in vars(ssl.SSLContext)
    assert ssl.create_default_context().cert_store_stats() == system


def test_https_consul_uses_its_own_context_with_the_system_certificates() -> None:
    """What the skipped certificates rely on: over https the Consul client never falls back
    to aiohttp's default context; without ``ca_cert`` its own one trusts the system's CAs."""
    http = AgentHTTP(ConsulConfig(address="https://127.0.0.1:8501"), 1)
    assert isinstance(http._tls, ssl.SSLContext)
    assert http._tls.cert_store_stats() == ssl.create_default_context().cert_store_stats()
    assert http._tls.verify_mode == ssl.CERT_REQUIRED and http._tls.check_hostname


DAEMON = """
import asyncio, os, signal, sys
from ctmpl import daemon_services, preload
first_render = daemon_services.DaemonServices.first_render

async def noted(self):
    print("rendered with aiohttp:", "aiohttp" in sys.modules, flush=True)
    await first_render(self)
    while preload.put_off("aiohttp"):
        await asyncio.sleep(0.05)
    print("then aiohttp:", "aiohttp" in sys.modules, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

daemon_services.DaemonServices.first_render = noted
from ctmpl.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_plain_http_daemon_renders_before_importing_aiohttp(
    consul: ConsulFixture, tmp_path: Path,
) -> None:
    consul.register("w1", "web", "10.0.0.1", 80)
    template = tmp_path / "t.j2"
    template.write_text("{% for i in service('web') %}{{ i.Address }}{% endfor %}\n")
    out = tmp_path / "out"
    args = ["-consul-addr", consul.addr, "-template", f"{template}:{out}"]
    done = subprocess.run([sys.executable, "-c", DAEMON, *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[:2] == ["rendered with aiohttp: False",
                                            "then aiohttp: True"], done.stderr
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "10.0.0.1\n"


def test_nothing_is_put_off_once_aiohttp_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a process that imported aiohttp already (this one: the Consul double), a plain
    http configuration leaves the client on aiohttp."""
    monkeypatch.setattr(preload_module, "_put_off", {})
    assert "aiohttp" in sys.modules
    assert preload_module.preload(CatalogConfig(kind="consul")) is None
    assert not preload_module.put_off("aiohttp")
