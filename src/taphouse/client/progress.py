"""The progress display of a waiting job: a tqdm bar (terminal or notebook widget via
``tqdm.auto``) showing phase and elapsed time, and/or a user callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Progress:
    """Shows a job's phase while it runs.

    Parameters
    ----------
    job
        The job being waited for.
    how
        True: a tqdm bar; False: nothing; a callable: ``how(job, phase, elapsed)`` after
        every poll (it may raise, e.g. KeyboardInterrupt, to stop waiting).
    """

    def __init__(self, job: Any, how: bool | Callable[[Any, str, float], Any]) -> None:
        self.job = job
        self.callback = how if callable(how) else None
        self.bar: Any = None
        if how is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=None, desc=f"job {job.id}: starting",
                            bar_format="{desc} [{elapsed}]", leave=False)

    def update(self, phase: str, elapsed: float) -> None:
        if self.bar is not None:
            self.bar.set_description_str(f"job {self.job.id}: {phase}", refresh=True)
        if self.callback is not None:
            self.callback(self.job, phase, elapsed)

    def close(self, note: str | None = None) -> None:
        if self.bar is not None:
            if note:
                self.bar.set_description_str(note, refresh=True)
            self.bar.close()
            self.bar = None


__all__ = ["Progress"]
