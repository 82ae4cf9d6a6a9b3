"""Which queued job runs next: round-robin across budget keys, with caps.

Jobs are budgeted under a key: ``user:<name>`` for a logged-in owner, ``addr:<address>``
for an anonymous job (one key per client address, IPv6 per /64; see
:mod:`taphouse.admission.addresses`). The key served least recently goes first (keys
never served go first of all, in queue order); a key already running ``max_per_owner``
jobs is skipped, and so are anonymous keys once anonymous jobs together hold
``anonymous_total`` workers (one address at most ``max_per_anonymous``, so another
address still gets a turn). With ``max_per_owner`` below the number of workers, one
owner's hundred queued jobs never hold every worker: another owner's job starts as soon
as a worker is free, and one is always free for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

ANONYMOUS_PREFIX = "addr:"


class FairScheduler:
    """Bookkeeping of running jobs per key and of whose turn it is.

    Not thread-safe: the job service calls it under its own lock.
    """

    def __init__(self, max_per_owner: int, anonymous_total: int | None = None,
                 max_per_anonymous: int | None = None) -> None:
        self.max_per_owner = max(1, int(max_per_owner))
        self.anonymous_total = None if anonymous_total is None else max(1, anonymous_total)
        self.max_per_anonymous = self.max_per_owner if max_per_anonymous is None else \
            max(1, int(max_per_anonymous))
        self.running: Counter[str] = Counter()
        self._served: dict[str, int] = {}
        self._tick = 0

    def _anonymous_running(self) -> int:
        return sum(n for k, n in self.running.items() if _anonymous(k))

    def choose(self, queued: Iterable[tuple[str, str | None]]) -> tuple[str, str | None] | None:
        """The (job id, key) to start next among ``queued`` (in queue order), or None
        when every key with queued jobs is at its cap."""
        best: tuple[str, str | None] | None = None
        best_rank = 0
        seen: set[str] = set()
        anonymous_full = (self.anonymous_total is not None
                          and self._anonymous_running() >= self.anonymous_total)
        for job_id, owner in queued:
            key = _key(owner)
            if key in seen:
                continue
            seen.add(key)
            anonymous = _anonymous(key)
            cap = self.max_per_anonymous if anonymous else self.max_per_owner
            if self.running[key] >= cap or (anonymous and anonymous_full):
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
        if len(self._served) > 10_000:  # forget keys served long ago (bounded memory)
            for k in sorted(self._served, key=self._served.__getitem__)[:5_000]:
                if k not in self.running:
                    del self._served[k]

    def finished(self, owner: str | None) -> None:
        key = _key(owner)
        self.running[key] -= 1
        if self.running[key] <= 0:
            del self.running[key]


def _anonymous(key: str) -> bool:
    return key == "" or key.startswith(ANONYMOUS_PREFIX)


def _key(owner: str | None) -> str:
    # "" cannot be a username, so it cannot collide with a real owner.
    return "" if owner is None else owner
