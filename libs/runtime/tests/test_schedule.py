"""A service's schedule: what is due comes back, earliest first, in memory and on the store alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jmo_contracts import new_id
from jmo_runtime.schedule import Due, ServiceSchedule

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


async def _planned_cleared_and_due(schedule: ServiceSchedule) -> None:
    await schedule.set(Due("registration-b", T0 + timedelta(minutes=2), {"attempt": "1"}))
    await schedule.set(Due("registration-a", T0 + timedelta(minutes=1)))
    await schedule.set(Due("registration-c", T0 + timedelta(minutes=9)))
    await schedule.set(Due("registration-d", T0))
    await schedule.clear("registration-d")
    due = await schedule.due(T0 + timedelta(minutes=5))
    assert [(d.key, d.at, dict(d.data)) for d in due] == [
        ("registration-a", T0 + timedelta(minutes=1), {}),
        ("registration-b", T0 + timedelta(minutes=2), {"attempt": "1"}),
    ]


@pytest.mark.unit
async def test_a_schedule_is_usable_only_once_its_service_started_and_then_answers_what_is_due() -> None:
    schedule = ServiceSchedule(lambda: None, "open_registrations_by_time")
    with pytest.raises(RuntimeError):
        await schedule.due(T0)
    await schedule.start()
    await _planned_cleared_and_due(schedule)


@pytest.mark.integration
async def test_a_schedule_in_the_service_s_database_answers_the_same(mongo_client: Any, run_id: str) -> None:
    database = mongo_client[f"{run_id}_schedule"]
    schedule = ServiceSchedule(lambda: database, f"s{new_id()[:8]}")
    await schedule.start()
    await _planned_cleared_and_due(schedule)
