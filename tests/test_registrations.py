"""The registration layouts shared by the etcd and ZooKeeper catalogs (no server needed)."""

from __future__ import annotations

import json
import logging

import pytest

from ctmpl.model import Instance
from ctmpl.sources.registrations import EntryParser


def parse(entries: dict[str, str], prefix: str = "/services", label: str = "etcd key"
          ) -> list[Instance]:
    parser = EntryParser(prefix, label)
    return parser.instances({k.encode(): v.encode() for k, v in entries.items()})


def test_empty_value_takes_the_address_from_the_name() -> None:
    [inst] = parse({"/services/web/10.0.0.7:8080": ""})
    assert (inst.Name, inst.ID, inst.Address, inst.Port) == ("web", "10.0.0.7:8080",
                                                              "10.0.0.7", 8080)
    [v6] = parse({"/services/web/[fd00::7]:81": "  "})
    assert (v6.Address, v6.Port) == ("fd00::7", 81)


def test_json_without_address_takes_it_from_the_name() -> None:
    value = json.dumps({"Tags": ["calico"], "Meta": {"zone": "a"}})
    [inst] = parse({"/services/web/10.0.0.7:80": value})
    assert (inst.Address, inst.Port, inst.Tags, dict(inst.Meta)) == (
        "10.0.0.7", 80, ("calico",), {"zone": "a"})


def test_value_wins_over_the_name() -> None:
    [inst] = parse({"/services/web/10.0.0.7:80": "10.0.0.8:81"})
    assert (inst.ID, inst.Address, inst.Port) == ("10.0.0.7:80", "10.0.0.8", 81)


def test_no_address_anywhere_is_rejected_naming_the_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse({"/services/web/a": "", "/services/web/b": '{"Port": 80}',
                      "/services/web/c;d:80": ""}, label="zk node") == []
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("zk node '/services/web/a'" in m for m in messages), messages
    assert any("zk node '/services/web/b': JSON value has no Address" in m for m in messages)
    assert any("zk node '/services/web/c;d:80'" in m for m in messages), messages


def test_curator_service_discovery_json() -> None:
    # What Spring Cloud Zookeeper (Apache Curator's ServiceDiscovery) writes.
    doc = {"name": "web", "id": "5f1c", "address": "10.0.0.7", "port": 8080, "sslPort": None,
           "payload": {"@class": "org.springframework.cloud.zookeeper.discovery."
                                 "ZookeeperInstance", "id": "web-1", "name": "web",
                       "metadata": {"zone": "a", "bad": "x;y"}},
           "registrationTimeUTC": 1700000000000, "serviceType": "DYNAMIC",
           "uriSpec": {"parts": []}}
    [inst] = parse({"/services/web/5f1c": json.dumps(doc)})
    assert (inst.ID, inst.Address, inst.Port, dict(inst.Meta)) == ("5f1c", "10.0.0.7", 8080,
                                                                  {"zone": "a"})
    tls = {**doc, "port": None, "sslPort": 8443, "payload": None}
    [inst] = parse({"/services/web/5f1c": json.dumps(tls)})
    assert (inst.Port, dict(inst.Meta)) == (8443, {})
