"""``jmo audit verify``'s check of several logs side by side, each with its task on the progress bar."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from jmo_contracts import new_id, stream_id
from jmo_eventstore import InMemoryEventStore
from jmo_eventstore.testing import an_event
from jmo_cli import audit

pytestmark = pytest.mark.unit


async def a_log(commits: int) -> InMemoryEventStore:
    store = InMemoryEventStore()
    s = stream_id("test")
    for v in range(commits):
        await store.append(s, v, [an_event(s, v)], cause_id=new_id())
    return store


async def test_every_log_is_checked_with_its_own_task_counting_its_commits() -> None:
    logs = {"registration": await a_log(3), "audit": await a_log(2)}
    altered = next(iter(logs["audit"].commits.values()))
    altered["events"][0]["payload"]["reason"] = "changed behind the log's back"
    with Progress(console=Console(file=io.StringIO())) as bar:
        results = await audit.verify(logs, bar)  # type: ignore[arg-type]
        tasks = {t.description: (t.completed, t.finished) for t in bar.tasks}
    assert results["registration"] == [] and [p.commit_id for p in results["audit"]] == [altered["_id"]]
    assert tasks == {"the registration log: intact": (3, True), "the audit log: ALTERED": (2, True)}
    assert await audit.verify(logs) == results  # without a bar
