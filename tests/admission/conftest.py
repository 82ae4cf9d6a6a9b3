"""Fixtures of the admission tests."""

from __future__ import annotations

from typing import Any

import pytest
from admission_helpers import HeldQuery


@pytest.fixture
def held() -> Any:
    """Factory of :class:`HeldQuery`; every held query is closed after the test."""
    opened: list[HeldQuery] = []

    def make(*args: Any, **kwargs: Any) -> HeldQuery:
        q = HeldQuery(*args, **kwargs)
        opened.append(q)
        return q

    yield make
    for q in opened:
        q.close()
