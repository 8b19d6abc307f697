"""The ZooKeeper catalog's service index: updating per changed node equals reading it all.

No server: the index only reads a tree's ``root``, ``data`` and ``children``, which a plain
object stands in for here; ``tests/test_zk_source.py`` runs the real tree against ZooKeeper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ctmpl.sources.zk import SERVICES, ServiceIndex
from ctmpl.sources.zk_tree import child_path

PREFIX = "/reg/services"


@dataclass
class Tree:
    """What ServiceIndex reads of a ZkTree."""

    root: str = PREFIX
    data: dict[str, bytes] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)

    def put(self, path: str, value: bytes) -> set[str]:
        """Create or set ``path`` (and missing parents); the changed paths."""
        changed = {path}
        parent, _, name = path.rpartition("/")
        if parent != self.root and parent not in self.data:
            changed |= self.put(parent, b"")
        self.children.setdefault(parent, set()).add(name)
        self.data[path] = value
        return changed

    def delete(self, path: str) -> set[str]:
        """Delete ``path`` and below; the changed paths."""
        changed = {path}
        for name in self.children.pop(path, set()):
            changed |= self.delete(child_path(path, name))
        self.data.pop(path, None)
        parent, _, name = path.rpartition("/")
        self.children.get(parent, set()).discard(name)
        return changed


SERVICE = st.sampled_from(["web", "db", "services", "bad;name"])
INSTANCE = st.sampled_from(["a", "b", "10.0.0.1:80", "[fd00::1]:81", "10.0.0.2:70000"])
VALUE = st.sampled_from([b"", b"10.0.0.3:8080", b'{"Address": "10.0.0.4", "Port": 80}',
                         b'{"Tags": ["calico"]}', b'{"Address": "x;y", "Port": 1}', b"{"])
OPS = st.lists(st.tuples(st.sampled_from(["put", "put-flat", "delete", "delete-service"]),
                         SERVICE, INSTANCE, VALUE), max_size=25)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_incremental_updates_equal_a_full_read(ops: list[tuple[str, str, str, bytes]]) -> None:
    tree, index = Tree(), ServiceIndex(PREFIX)
    for op, service, instance, value in ops:
        folder = child_path(PREFIX, service)
        if op == "put":
            changed = tree.put(child_path(folder, instance), value)
        elif op == "put-flat":
            changed = tree.put(child_path(PREFIX, instance), value)
        elif op == "delete":
            changed = tree.delete(child_path(folder, instance))
        else:
            changed = tree.delete(folder)
        before = index.state
        touched = set(index.update(tree, changed))  # type: ignore[arg-type]
        fresh = ServiceIndex(PREFIX)
        fresh.update(tree, set(tree.data))  # type: ignore[arg-type]
        assert index.state == fresh.state
        # Exactly the services whose instances changed are reported (and SERVICES when the
        # list of names or tags did): a query of any other service is not woken.
        moved = {n for n in {*before[0], *index.state[0]}
                 if before[0].get(n) != index.state[0].get(n)}
        assert touched - {SERVICES} == moved
        assert (SERVICES in touched) == (before[1] != index.state[1])
