"""Which queued job runs next: round-robin across owners, with a per-owner cap.

The owner served least recently goes first (owners never served go first of all, in
queue order), and an owner already running ``max_per_owner`` jobs is skipped, so one
user's hundred queued jobs do not delay another user's single job by more than one
turn. The anonymous callers share one owner slot (they cannot be told apart).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class FairScheduler:
    """Bookkeeping of running jobs per owner and of whose turn it is.

    Not thread-safe: the job service calls it under its own lock.
    """

    def __init__(self, max_per_owner: int) -> None:
        self.max_per_owner = max(1, int(max_per_owner))
        self.running: Counter[str] = Counter()
        self._served: dict[str, int] = {}
        self._tick = 0

    def choose(self, queued: Iterable[tuple[str, str | None]]) -> tuple[str, str | None] | None:
        """The (job id, owner) to start next among ``queued`` (in queue order), or None
        when every owner with queued jobs is at the cap."""
        best: tuple[str, str | None] | None = None
        best_rank = 0
        seen: set[str] = set()
        for job_id, owner in queued:
            key = _key(owner)
            if key in seen:
                continue
            seen.add(key)
            if self.running[key] >= self.max_per_owner:
                continue
            rank = self._served.get(key, -1)
            if best is None or rank < best_rank:
                best, best_rank = (job_id, owner), rank
        return best

    def started(self, owner: str | None) -> None:
        key = _key(owner)
        self.running[key] += 1
        self._tick += 1
        self._served[key] = self._tick

    def finished(self, owner: str | None) -> None:
        key = _key(owner)
        self.running[key] -= 1
        if self.running[key] <= 0:
            del self.running[key]


def _key(owner: str | None) -> str:
    # "" cannot be a username, so it cannot collide with a real owner.
    return "" if owner is None else owner
