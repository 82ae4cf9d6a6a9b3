"""A waiting queue shared fairly between client networks.

Each waiter is filed under its address path (:func:`taphouse.admission.addresses.address_path`:
IPv6 /32 → /48 → /64, IPv4 /16 → /24 → address). Three rules keep one network from
taking the queue from everyone else:

- caps per level: at most ``caps[i]`` waiters share one network of level ``i`` (so a /56,
  256 × /64, gets the share of one /48, not 256 × the share of a /64);
- a full queue (or a network at its cap) makes room for a newcomer from a lighter
  network within it: the newest waiter of the heaviest network (heaviest at each level,
  down to an address) is pushed out, when the newcomer's network would still hold fewer
  than the victim's;
- turns go round-robin at each level (one per /32, within it one per /48, then per /64),
  so a caller's turn comes after at most one waiter of each other network, however many
  waiters those networks hold.

Not thread-safe: the caller holds its own lock around every call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

W = TypeVar("W")


class _Network(Generic[W]):
    __slots__ = ("count", "children", "waiters")

    def __init__(self) -> None:
        self.count = 0
        #: Sub-networks in round-robin order (the next turn is the first).
        self.children: dict[str, _Network[W]] = {}
        self.waiters: deque[W] = deque()  # at the last level only, oldest first


class QueueFull(Exception):
    """No place for the newcomer: ``level`` is the level whose cap is full (-1: the
    whole queue, and no network heavier than the newcomer's to push out)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.level = level


class FairQueue(Generic[W]):
    """Waiters filed by network path; see the module docstring.

    Parameters
    ----------
    total
        Waiters in all.
    caps
        Waiters per network of each level, widest first (``0``: no cap at that level);
        every path has ``len(caps)`` parts.
    """

    def __init__(self, total: int, caps: Sequence[int]) -> None:
        self.total = max(0, int(total))
        self.caps = tuple(max(0, int(c)) for c in caps)
        self._root: _Network[W] = _Network()
        self._paths: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return self._root.count

    def count(self, path: Sequence[str]) -> int:
        """Waiters filed under the network ``path`` (a prefix of a full path)."""
        node = self._root
        for part in path:
            found = node.children.get(part)
            if found is None:
                return 0
            node = found
        return node.count

    def push(self, path: Sequence[str], waiter: W) -> W | None:
        """File ``waiter`` under ``path``; returns the waiter pushed out to make room
        (already removed), or None. Raises :class:`QueueFull` when there is no place."""
        path = tuple(path)
        full, full_level = None, -1
        if self._root.count >= self.total:
            full = self._root
        node = self._root
        for level, part in enumerate(path):
            child = node.children.get(part)
            if child is None:
                break
            if self.caps[level] and child.count >= self.caps[level]:
                # the deepest full network: a waiter pushed out of it frees a place in
                # every full network around it too
                full, full_level = child, level
            node = child
        victim = None
        if full is not None:
            victim = self._victim_in(full, path[full_level + 1:])
            if victim is None:
                raise QueueFull(full_level)
            self.remove(victim)
        node = self._root
        node.count += 1
        for part in path:
            node = node.children.setdefault(part, _Network())
            node.count += 1
        node.waiters.append(waiter)
        self._paths[id(waiter)] = path
        return victim

    @staticmethod
    def _victim_in(node: _Network[W], path: tuple[str, ...]) -> W | None:
        """The waiter a newcomer filed under ``path`` within the full network ``node``
        pushes out: the newest of the heaviest sub-network at the first level where the
        newcomer's own holds fewer (by 2 or more: pushing out must not merely swap
        places), else None."""
        for part in path:
            if not node.children:
                return None
            own = node.children.get(part)
            own_count = own.count if own is not None else 0
            heavy = max(node.children.values(), key=lambda n: n.count)
            if own is not None and own_count == heavy.count:
                node = own  # the newcomer's network is one of the heaviest: look inside
                continue
            if own_count + 1 < heavy.count:
                while heavy.children:
                    heavy = max(heavy.children.values(), key=lambda n: n.count)
                return heavy.waiters[-1]
            return None
        return None  # its own address holds the most: it does not push out its own

    def pop(self) -> W | None:
        """The waiter whose turn it is (round-robin at each level), removed; None when
        empty."""
        if not self._root.count:
            return None
        node = self._root
        while node.children:
            key = next(iter(node.children))
            node = node.children[key]
        waiter = node.waiters[0]
        self._rotate(self._paths[id(waiter)])
        self.remove(waiter)
        return waiter

    def _rotate(self, path: tuple[str, ...]) -> None:
        node = self._root
        for part in path:
            child = node.children.pop(part)
            node.children[part] = child  # to the end: its next turn after the others'
            node = child

    def remove(self, waiter: W) -> bool:
        """Take ``waiter`` out of the queue (gave up, timed out); False when not in it."""
        path = self._paths.pop(id(waiter), None)
        if path is None:
            return False
        nodes = [self._root]
        for part in path:
            nodes.append(nodes[-1].children[part])
        nodes[-1].waiters.remove(waiter)
        for node in nodes:
            node.count -= 1
        for parent, part, node in zip(nodes, path, nodes[1:]):
            if not node.count:
                del parent.children[part]
                break
        return True


__all__ = ["FairQueue", "QueueFull"]
