"""Which SubmitSelfie messages were already decided, looked up by ``_id`` (the one index FerretDB v1 uses).

Only a shortcut: a redelivered command found here is answered from the log without fetching its blob.
The command handler's unique cause index remains what guarantees a single outcome, so a marker lost
between the append and its write costs a wasted look at the picture, never a second decision.
"""

from __future__ import annotations

from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class DecidedCommands(Protocol):
    async def seen(self, message_id: str) -> bool: ...

    async def mark(self, message_id: str) -> None: ...


class MongoDecidedCommands:
    def __init__(self, database: AsyncDatabase) -> None:
        self._collection = database["decided_selfies"]

    async def seen(self, message_id: str) -> bool:
        return await self._collection.find_one({"_id": message_id}) is not None

    async def mark(self, message_id: str) -> None:
        try:
            await self._collection.insert_one({"_id": message_id})
        except DuplicateKeyError:
            pass


class InMemoryDecidedCommands:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def seen(self, message_id: str) -> bool:
        return message_id in self.ids

    async def mark(self, message_id: str) -> None:
        self.ids.add(message_id)
