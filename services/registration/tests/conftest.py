"""What registration's tests share: a clock the test moves on instead of waiting for time to pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


class Clock:
    """The service's clock (pass it as ``build(..., clock=clock)``), moved on by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()
