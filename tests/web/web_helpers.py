"""Helpers of the web page's tests (import as ``from web_helpers import report``)."""

from __future__ import annotations

#: Lines printed in the summary after the run (the targets the browser tests measure).
REPORT: list[str] = []


def report(line: str) -> None:
    """A line for the summary printed after the run (targets, artefacts)."""
    REPORT.append(line)
    print(line)
