"""The Consul API double against responses recorded from a real Consul 1.10 agent.

The recordings live in ``../shared/consul-api-samples/`` beside the repository
(``CTMPL_CONSUL_SAMPLES`` overrides the directory); when they are missing every test here
fails. Each test builds the recording's setup through the HTTP API and compares status codes,
``X-Consul-*`` headers, field names and types, ordering and blocking behaviour (which endpoint
wakes on which change) with the sample files; ``test_every_sample_is_covered`` fails for a
recording no test compares. They use only the HTTP API, so they also pass against a real dev
agent (``CTMPL_CONSUL_BIN``, see tests/README.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fixtures_consul import ConsulFixture

SAMPLES = Path(
    os.environ.get("CTMPL_CONSUL_SAMPLES")
    or Path(__file__).resolve().parents[2] / "shared" / "consul-api-samples"
)
STATIC = [
    "catalog_nodes", "catalog_service", "catalog_service_tag", "catalog_services",
    "health_service_any", "health_service_passing", "health_service_stale",
    "health_service_tag_passing", "health_service_unknown", "health_state_any",
    "kv_get", "kv_get_missing", "kv_get_raw", "kv_keys_separator", "kv_recurse",
    "kv_recurse_missing",
]
BLOCKING = [
    "blocking_catalog_services_after_changes", "blocking_change_after_1s",
    "blocking_check_failed", "blocking_kv_change", "blocking_stale_index_returns_at_once",
    "blocking_timeout_no_change",
]
# Recordings of which endpoint wakes on which change (the table in the samples' README).
WAKES = [
    "blocking_health_service_unrelated_change", "blocking_catalog_services_address_change",
    "blocking_catalog_services_check_flap", "blocking_health_state_any_address_change_no_checks",
    "blocking_health_state_any_address_change_with_check",
    "blocking_internal_ui_nodes_address_change",
]
OTHERS = [
    "conn_limit_250_concurrent", "health_service_filter_tag", "health_service_index_per_service",
    "health_service_wait_tiny_unchanged", "internal_ui_nodes", "internal_ui_services",
]
# Fields whose values depend on the node, time or raft history, not on the API's behaviour.
VOLATILE = {"ID", "Node", "CreateIndex", "ModifyIndex", "Address", "TaggedAddresses", "Meta",
            "NodeMeta"}


def sample(name: str) -> dict[str, Any]:
    path = SAMPLES / f"{name}.json"
    assert path.is_file(), f"recording {path} is missing (CTMPL_CONSUL_SAMPLES overrides)"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_samples_present() -> None:
    assert SAMPLES.is_dir(), f"no recordings in {SAMPLES} (CTMPL_CONSUL_SAMPLES overrides)"
    assert (SAMPLES / "README.md").is_file()


def test_every_sample_is_covered() -> None:
    names = {p.stem for p in SAMPLES.glob("*.json")}
    covered = {*STATIC, *BLOCKING, *WAKES, *OTHERS}
    assert names - covered == set(), "recordings no test compares"
    assert covered - names == set(), "tests of recordings that are gone"


def setup_recording(consul: ConsulFixture) -> None:
    """The state the samples were recorded in (README of the samples)."""
    consul.register("web-app-1", "web-app", "10.0.0.11", 8080, tags=["calico", "v1"])
    consul.register("web-app-2", "web-app", "10.0.0.12", 8080, tags=["calico", "v1"])
    consul.register("api-svc-1", "api-svc", "10.0.0.21", 9090, tags=["calico"])
    consul.register("db-1", "db", "10.0.0.31", 5432, tags=["postgres"])
    consul.register("web-app-meta", "web-app", "10.0.0.14", 8081, tags=["calico", "v2"],
                    meta={"version": "2"}, status="warning")
    consul.register_external("ext-node-1", "10.5.0.1", "ext", "ext", address="10.5.0.2", port=80,
                            tags=["calico"])
    consul.put("app/config/greeting", "hello")
    consul.put("app/config/color", "blue")
    consul.put("app/config/nested/deep", "x")
    consul.put("app/empty", "")


@pytest.fixture
def recorded(consul: ConsulFixture) -> ConsulFixture:
    setup_recording(consul)
    return consul


def get(consul: ConsulFixture, request: str) -> tuple[int, dict[str, str], bytes, float]:
    """Run a sample's ``GET /path?query`` line; (status, headers, body, elapsed seconds)."""
    import urllib.error
    import urllib.request

    method, target = request.split(" ", 1)
    req = urllib.request.Request(f"http://{consul.addr}{target}", method=method)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, headers, body = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, body = err.code, dict(err.headers), err.read()
    return status, {k.lower(): v for k, v in headers.items()}, body, time.monotonic() - started


def test_json_is_indented_as_a_dev_agent_writes_it(recorded: ConsulFixture) -> None:
    """A ``consul agent -dev`` (and any agent for ``?pretty``) writes Go's MarshalIndent
    with four spaces and a final newline; the client reads the same values either way."""
    status, _, body, _ = get(recorded, "GET /v1/internal/ui/nodes")
    assert status == 200 and body.startswith(b"[\n    {\n        ") and body.endswith(b"]\n")
    if not recorded.is_real:  # the double outside dev mode: compact unless ?pretty
        double = recorded.double("an agent outside dev mode")
        double.dev_mode = False
        try:
            compact = get(recorded, "GET /v1/internal/ui/nodes")[2]
            pretty = get(recorded, "GET /v1/catalog/services?pretty")[2]
        finally:
            double.dev_mode = True
        assert b"\n" not in compact and json.loads(compact)
        assert pretty.startswith(b"{\n    ") and pretty.endswith(b"}\n")


def shape(value: Any) -> Any:
    """Field names and JSON types, recursively (a list by the distinct shapes of its
    elements, in no order: where Consul promises no order the double shuffles)."""
    if isinstance(value, dict):
        return {k: (None if k in VOLATILE else shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return sorted({json.dumps(shape(v), sort_keys=True) for v in value})
    return type(value).__name__


def stable(value: Any) -> Any:
    """The value with node identity and raft indexes blanked out."""
    if isinstance(value, dict):
        return {k: ("*" if k in VOLATILE - {"Address", "Meta"} else stable(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def tag_sets(body: dict[str, list[str]]) -> dict[str, set[str]]:
    """``/v1/catalog/services`` as a contract: names and their tags, in no particular order
    (Consul merges each service's tags through a map)."""
    return {name: set(tags) for name, tags in body.items()}


def service_ids(body: list[dict[str, Any]]) -> list[str]:
    return [e["Service"]["ID"] if "Service" in e else e["ServiceID"] for e in body]


def assert_headers(expected: dict[str, Any], headers: dict[str, str]) -> None:
    want = {k.lower(): v for k, v in expected["headers"].items()}
    for name in want:
        if name.startswith("x-consul-"):
            assert name in headers, f"missing header {name}"
    assert headers.get("x-consul-effective-consistency") == want.get(
        "x-consul-effective-consistency")
    if "content-type" in want:  # the later recordings left it out
        assert headers.get("content-type") == want["content-type"]
    assert headers["x-consul-query-backend"] == want["x-consul-query-backend"]
    if want.get("x-consul-query-backend") == "blocking-query":
        assert headers["x-consul-knownleader"] == want["x-consul-knownleader"]
    assert int(headers["x-consul-index"]) > 0
    assert int(headers["x-consul-lastcontact"]) >= 0


@pytest.mark.parametrize("name", STATIC)
def test_static_sample(recorded: ConsulFixture, name: str) -> None:
    expected = sample(name)
    status, headers, raw, _ = get(recorded, expected["request"])
    assert status == expected["status"]
    assert_headers(expected, headers)
    if isinstance(expected["body"], str):  # 404s and ?raw
        assert raw.decode() == expected["body"]
        return
    body = json.loads(raw)
    want = expected["body"]
    assert shape(body) == shape(want)
    if name == "catalog_services":
        assert tag_sets(body) == tag_sets(want)
    elif name == "kv_keys_separator":
        assert body == want
    elif name.startswith("kv_"):
        assert stable(body) == stable(want)
    elif name == "catalog_nodes":
        names = [n["Node"] for n in body]
        assert names == sorted(names) and "ext-node-1" in names
        ext = body[names.index("ext-node-1")]
        assert stable(ext) == stable(want[0]) and ext["Address"] == want[0]["Address"]
    elif name == "health_state_any":
        assert [(c["CheckID"], c["Status"]) for c in body] == [
            (c["CheckID"], c["Status"]) for c in want]
    else:
        assert service_ids(body) == service_ids(want)
        if name.startswith("health_service") and body:
            assert [[c["CheckID"] for c in e["Checks"]] for e in body] == [
                [c["CheckID"] for c in e["Checks"]] for e in want]
            assert [e["Service"]["Meta"] for e in body] == [e["Service"]["Meta"] for e in want]


def test_index_per_endpoint(recorded: ConsulFixture) -> None:
    """Catalog, health and KV indexes move independently, as in the recording."""

    def index(path: str) -> int:
        return int(get(recorded, f"GET {path}")[1]["x-consul-index"])

    services, health = index("/v1/catalog/services"), index("/v1/health/service/web-app")
    kv, missing = index("/v1/kv/app/config/greeting"), index("/v1/kv/app/missing")
    assert health < services  # ext registered later on another service
    assert kv < missing  # a key's own ModifyIndex vs the KV table index
    recorded.put("app/other", "1")
    assert index("/v1/health/service/web-app") == health
    assert index("/v1/catalog/services") == services
    assert index("/v1/kv/app/config/greeting") == kv
    assert index("/v1/kv/app/missing") > missing
    recorded.set_status("db-1", "critical")
    assert index("/v1/health/service/web-app") == health
    assert index("/v1/health/service/db") > health


def later(delay: float, action: Any) -> threading.Thread:
    """Run ``action`` after ``delay`` seconds in a thread."""
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()), daemon=True)
    thread.start()
    return thread


def current(consul: ConsulFixture, path: str) -> int:
    return int(get(consul, f"GET {path}")[1]["x-consul-index"])


def test_blocking_timeout_no_change(recorded: ConsulFixture) -> None:
    expected = sample("blocking_timeout_no_change")
    idx = current(recorded, "/v1/health/service/web-app")
    status, headers, raw, elapsed = get(
        recorded, f"GET /v1/health/service/web-app?index={idx}&wait=2s")
    assert status == expected["status"] == 200
    assert_headers(expected, headers)
    assert int(headers["x-consul-index"]) == idx
    assert 1.9 <= elapsed <= 2 + 0.5  # the streaming backend adds no jitter
    assert sorted(service_ids(json.loads(raw))) == service_ids(expected["body"])


def test_blocking_change_after_1s(recorded: ConsulFixture) -> None:
    expected = sample("blocking_change_after_1s")
    idx = current(recorded, "/v1/health/service/web-app")
    thread = later(1.0, lambda: recorded.register("web-app-5", "web-app", "10.0.0.15", 8080,
                                                  tags=["calico"]))
    status, headers, raw, elapsed = get(
        recorded, f"GET /v1/health/service/web-app?index={idx}&wait=10s")
    thread.join()
    assert status == 200
    assert_headers(expected, headers)
    assert int(headers["x-consul-index"]) > idx
    assert 0.9 <= elapsed < 3.0
    assert sorted(service_ids(json.loads(raw))) == sorted(service_ids(expected["body"]))


def test_blocking_check_failed(recorded: ConsulFixture) -> None:
    expected = sample("blocking_check_failed")
    recorded.register("web-app-5", "web-app", "10.0.0.15", 8080, tags=["calico"])
    idx = current(recorded, "/v1/health/service/web-app?passing=1")
    thread = later(0.5, lambda: recorded.set_status("web-app-1", "critical"))
    status, headers, raw, elapsed = get(
        recorded, f"GET /v1/health/service/web-app?index={idx}&wait=10s&passing=1")
    thread.join()
    assert status == 200
    assert_headers(expected, headers)
    assert int(headers["x-consul-index"]) > idx
    assert 0.4 <= elapsed < 3.0
    assert sorted(service_ids(json.loads(raw))) == sorted(service_ids(expected["body"]))


def test_blocking_kv_change(recorded: ConsulFixture) -> None:
    expected = sample("blocking_kv_change")
    idx = current(recorded, "/v1/kv/app/?recurse")
    thread = later(0.5, lambda: recorded.put("app/config/color", "red"))
    status, headers, raw, elapsed = get(recorded, f"GET /v1/kv/app/?recurse&index={idx}&wait=10s")
    thread.join()
    assert status == 200
    assert_headers(expected, headers)
    assert int(headers["x-consul-index"]) > idx
    assert 0.4 <= elapsed < 3.0
    assert stable(json.loads(raw)) == stable(expected["body"])


def test_blocking_kv_delete_wakes_recurse(recorded: ConsulFixture) -> None:
    idx = current(recorded, "/v1/kv/app/?recurse")
    thread = later(0.3, lambda: recorded.delete("app/empty"))
    _, headers, raw, elapsed = get(recorded, f"GET /v1/kv/app/?recurse&index={idx}&wait=10s")
    thread.join()
    assert int(headers["x-consul-index"]) > idx and elapsed < 3.0
    assert "app/empty" not in [e["Key"] for e in json.loads(raw)]


def test_blocking_index_below_current_returns_at_once(recorded: ConsulFixture) -> None:
    expected = sample("blocking_stale_index_returns_at_once")
    status, headers, raw, elapsed = get(recorded, expected["request"])
    assert status == 200 and elapsed < 0.5
    assert_headers(expected, headers)
    assert sorted(service_ids(json.loads(raw))) == service_ids(sample("health_service_any")["body"])


def test_blocking_catalog_services_after_changes(recorded: ConsulFixture) -> None:
    expected = sample("blocking_catalog_services_after_changes")
    recorded.register("web-app-5", "web-app", "10.0.0.15", 8080, tags=["calico"])
    idx = current(recorded, "/v1/catalog/services")
    request = f"GET /v1/catalog/services?index={idx - 1}&wait=1s"
    status, headers, raw, elapsed = get(recorded, request)
    assert status == 200 and elapsed < 0.5
    assert_headers(expected, headers)
    assert int(headers["x-consul-index"]) == idx
    assert tag_sets(json.loads(raw)) == tag_sets(expected["body"])


def test_blocking_index_far_ahead_waits_full_wait(recorded: ConsulFixture) -> None:
    elapsed = get(recorded, "GET /v1/kv/app/?recurse&index=999999&wait=1s")[3]
    assert 0.9 <= elapsed <= 1 + 1 / 16 + 0.5


async def test_connection_limit_429(consul: ConsulFixture) -> None:
    """250 concurrent long-polls from one IP: 50 get 429 at once, 200 answer after wait."""
    expected = sample("conn_limit_250_concurrent")["result"]
    url = f"http://{consul.addr}/v1/health/service/web-app?index=999999&wait=2s"
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    started = time.monotonic()

    async def one(session: aiohttp.ClientSession) -> tuple[int, float]:
        try:
            async with session.get(url) as resp:
                await resp.read()
                return resp.status, time.monotonic() - started
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return 429, time.monotonic() - started  # closed before the 429 was read

    async with aiohttp.ClientSession(connector=connector) as session:
        results = await asyncio.gather(*(one(session) for _ in range(250)))
    rejected = [t for s, t in results if s == 429]
    answered = [t for s, t in results if s == 200]
    assert len(rejected) == expected["HTTP/1.1 429 Too Many Requests (sent at once)"] == 50
    assert len(answered) == expected["HTTP/1.1 200 OK after the 5s wait"] == 200
    assert max(rejected) < 1.5
    assert min(answered) >= 1.9


def test_stop_start_same_port(consul: ConsulFixture) -> None:
    addr = consul.addr
    consul.register("a-1", "a", "10.1.0.1", 80)
    consul.stop()
    with pytest.raises(OSError):
        get(consul, "GET /v1/catalog/services")
    consul.start()
    assert consul.addr == addr
    status, _, raw, _ = get(consul, "GET /v1/catalog/services")
    assert status == 200 and "a" not in json.loads(raw)  # a restarted dev agent forgets


def test_acl_token(consul: ConsulFixture) -> None:
    consul.require_token("s3cret")
    status, _, raw, _ = get(consul, "GET /v1/kv/app/x")
    assert status == 403 and raw == b"Permission denied"
    consul.put("app/x", "1")  # the fixture sends the token
    assert consul.call("GET", "/v1/kv/app/x")[0]["Value"] == "MQ=="


# -- the second set of recordings: node "vm" with nocheck, other and web-app ---------------


def setup_wake(consul: ConsulFixture, *, full: bool = True) -> None:
    """The state of the wake-up recordings: ``nocheck-1`` has no check; the others a TTL check
    (``full=False``: only nocheck-1 and web-app-1, as in ``internal_ui_*``)."""
    consul.register("web-app-1", "web-app", "10.0.0.11", 8080, tags=["calico"])
    consul.register("nocheck-1", "nocheck", "10.0.5.1", 7000, tags=["calico"], status=None)
    if full:
        consul.register("web-app-2", "web-app", "10.0.0.12", 8080, tags=["calico"])
        consul.register("other-1", "other", "10.0.6.1", 7100, tags=["untagged"])


# file -> (path blocked on, the change made while it blocks)
WAKE_CHANGES: dict[str, tuple[str, Callable[[ConsulFixture], None]]] = {
    "blocking_health_service_unrelated_change": (
        "/v1/health/service/web-app",
        lambda c: c.register("other-2", "other", "10.0.6.2", 7100, tags=["untagged"])),
    "blocking_catalog_services_address_change": (
        "/v1/catalog/services", lambda c: c.move("web-app-2", "10.0.0.99")),
    "blocking_catalog_services_check_flap": (
        "/v1/catalog/services", lambda c: c.set_status("web-app-1", "critical")),
    "blocking_health_state_any_address_change_no_checks": (
        "/v1/health/state/any", lambda c: c.move("nocheck-1", "10.0.5.99")),
    "blocking_health_state_any_address_change_with_check": (
        "/v1/health/state/any", lambda c: c.move("web-app-2", "10.0.0.98")),
    "blocking_internal_ui_nodes_address_change": (
        "/v1/internal/ui/nodes", lambda c: c.move("nocheck-1", "10.0.5.99")),
}
WAIT = 2.0  # the recordings wait 3 s with the change 1 s in; the same ratio, shorter


def woke(recording: dict[str, Any]) -> bool:
    """Whether the recorded query woke at the change (1 s in) rather than after its wait."""
    wait = float(re.search(r"wait=(\d+)s", recording["request"])[1])  # type: ignore[index]
    return float(recording["elapsed_ms"]) < wait * 1000 * 2 / 3


def test_wake_table_matches_the_recordings() -> None:
    """The README's table says what the recordings show, and every row has a test."""
    readme = (SAMPLES / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\|[^|]*\| (yes|no)\b", readme, re.M)
    assert {f for f, _ in rows} == set(WAKES) == set(WAKE_CHANGES)
    for name, said in rows:
        assert woke(sample(name)) == (said == "yes"), name


@pytest.mark.parametrize("name", WAKES)
def test_wakes_as_recorded(consul: ConsulFixture, name: str) -> None:
    expected = sample(name)
    path, change = WAKE_CHANGES[name]
    setup_wake(consul)
    idx = current(consul, path)
    thread = later(0.5, lambda: change(consul))
    sep = "&" if "?" in path else "?"
    status, headers, raw, elapsed = get(consul, f"GET {path}{sep}index={idx}&wait={WAIT:g}s")
    thread.join()
    assert status == expected["status"] == 200
    assert_headers(expected, headers)
    assert shape(json.loads(raw)) == shape(expected["body"])
    if woke(expected):
        assert elapsed < WAIT * 3 / 4, f"{path} did not wake on the change"
        assert int(headers["x-consul-index"]) > idx
    else:
        assert elapsed >= WAIT * 0.95, f"{path} woke on a change it must not see"
        assert int(headers["x-consul-index"]) == idx


def test_health_service_filter(consul: ConsulFixture) -> None:
    expected = sample("health_service_filter_tag")
    setup_wake(consul)
    consul.register("web-app-3", "web-app", "10.0.0.13", 8080, tags=["v1"])
    target, _, expression = expected["request"].partition("?filter=")
    status, headers, raw, _ = get(consul, f"{target}?filter={urllib.parse.quote(expression)}")
    assert status == expected["status"]
    assert_headers(expected, headers)
    body = json.loads(raw)
    assert shape(body) == shape(expected["body"])
    assert service_ids(body) == service_ids(expected["body"]) == ["web-app-1", "web-app-2"]
    status, _, raw, _ = get(consul, "GET /v1/health/service/web-app?filter=Service.Tags%20%3D%3D")
    assert status == 400 and b"Failed to create boolean expression evaluator" in raw


def test_health_service_index_per_service(consul: ConsulFixture) -> None:
    """Each service keeps its own index; a check flap moves only its service's index."""
    recorded = sample("health_service_index_per_service")["headers"]
    setup_wake(consul)
    consul.register("other-2", "other", "10.0.6.2", 7100, tags=["untagged"])
    consul.move("nocheck-1", "10.0.5.99")
    consul.move("web-app-2", "10.0.0.99")
    consul.set_status("web-app-1", "critical")
    paths = {"web-app": "/v1/health/service/web-app", "other": "/v1/health/service/other",
             "nocheck": "/v1/health/service/nocheck", "catalog/services": "/v1/catalog/services"}
    got = {name: current(consul, path) for name, path in paths.items()}
    assert sorted(got, key=got.__getitem__) == sorted(recorded, key=lambda k: int(recorded[k]))


def test_health_service_wait_tiny_unchanged(consul: ConsulFixture) -> None:
    expected = sample("health_service_wait_tiny_unchanged")
    setup_wake(consul)
    idx = current(consul, "/v1/health/service/nocheck")
    status, headers, raw, elapsed = get(
        consul, f"GET /v1/health/service/nocheck?index={idx}&wait=1ms")
    assert status == expected["status"] and elapsed < 0.5
    assert_headers(expected, headers)
    assert int(headers["x-consul-index"]) == idx
    body = json.loads(raw)
    assert shape(body) == shape(expected["body"])
    assert [c["CheckID"] for c in body[0]["Checks"]] == ["serfHealth"]


def _ui_view(body: list[dict[str, Any]]) -> list[Any]:
    """``/v1/internal/ui/nodes`` without node identity: instances and checks per node."""
    return [(sorted((s["ID"], s["Service"], sorted(s["Tags"] or []),
                     s["Port"] if s["ID"] != "consul" else 0) for s in node["Services"]),
             [(c["CheckID"], c["Status"], c["ServiceID"]) for c in node["Checks"]])
            for node in body]


def test_internal_ui_nodes(consul: ConsulFixture) -> None:
    expected = sample("internal_ui_nodes")
    setup_wake(consul, full=False)
    status, headers, raw, _ = get(consul, expected["request"])
    assert status == expected["status"]
    assert_headers(expected, headers)
    body = json.loads(raw)
    assert shape(body) == shape(expected["body"])
    assert _ui_view(body) == _ui_view(expected["body"])  # one node: only instances shuffle
    idx = int(headers["x-consul-index"])
    assert idx == max(current(consul, p) for p in (
        "/v1/catalog/services", "/v1/catalog/nodes", "/v1/health/state/any"))


def test_internal_ui_services(consul: ConsulFixture) -> None:
    expected = sample("internal_ui_services")
    setup_wake(consul, full=False)
    status, headers, raw, _ = get(consul, expected["request"])
    assert status == expected["status"]
    assert_headers(expected, headers)
    body = json.loads(raw)
    assert shape(body) == shape(expected["body"])

    def rows(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "Tags": sorted(r["Tags"] or []), "Nodes": len(r["Nodes"])} for r in body]

    assert rows(body) == rows(expected["body"])


def test_kv_root_listing_is_never_missing(consul: ConsulFixture) -> None:
    """Consul answers the root of a key listing with 200 ``[]``, never 404."""
    status, headers, raw, _ = get(consul, "GET /v1/kv/?keys&separator=/")
    assert (status, json.loads(raw)) == (200, [])
    assert int(headers["x-consul-index"]) > 0
    assert get(consul, "GET /v1/kv/app/?keys&separator=/")[0] == 404


def test_check_registered_alone_takes_its_service_name(consul: ConsulFixture) -> None:
    """A check registered through the catalog without its service is still the service's
    check: Consul fills in its ServiceName (the benchmark flaps checks this way)."""
    consul.register_external("ext-2", "10.9.0.2", "api-9", "api", tags=["calico"],
                             status="passing")
    consul.call("PUT", "/v1/catalog/register", {
        "Node": "ext-2", "Address": "10.9.0.2",
        "Check": {"CheckID": "ttl-api-9", "Name": "api-9 check", "Status": "critical",
                  "ServiceID": "api-9"}})
    (entry,) = consul.call("GET", "/v1/health/service/api")
    (check,) = [c for c in entry["Checks"] if c["CheckID"] == "ttl-api-9"]
    assert (check["Status"], check["ServiceName"]) == ("critical", "api")
