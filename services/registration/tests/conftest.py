"""What registration's tests share: a clock the test moves on instead of waiting for time to pass."""

from __future__ import annotations

import pytest

from jmo_runtime.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """The service's clock (pass it as ``build(..., clock=clock)``), moved on by the test."""
    return FakeClock()
