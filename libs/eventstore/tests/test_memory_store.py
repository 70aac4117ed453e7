"""The in-memory event store passes the shared contract suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jmo_eventstore import InMemoryEventStore
from jmo_eventstore.testing import EventStoreContract

pytestmark = pytest.mark.unit


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def second_store(store: InMemoryEventStore) -> InMemoryEventStore:
    return store  # one process: the same instance plays both writers


@pytest.fixture
def tamper() -> Callable[..., Any]:
    async def _tamper(store: InMemoryEventStore, commit_id: str, mutate: Callable[[dict[str, Any]], None]) -> None:
        mutate(store.commits[commit_id])

    return _tamper


@pytest.fixture
def remove() -> Callable[..., Any]:
    async def _remove(store: InMemoryEventStore, commit_id: str) -> None:
        del store.commits[commit_id]

    return _remove


class TestInMemoryEventStore(EventStoreContract):
    pass
