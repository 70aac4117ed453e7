"""Cross-registration facts kept beside the log: which NIKs have an active account, which KPJ
numbers are taken. Both are insert-only documents with a unique ``_id``, so concurrent
registrations cannot both win; the NIK is stored only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ..domain.kpj import kpj_candidates


class NikIndex(Protocol):
    """NIKs that have an active JMO account, or a registration about to activate one
    (``ALREADY_REGISTERED``). A registration claims the NIK before the decision that may activate
    it; the first claim wins, so two registrations of one NIK cannot both be activated."""

    async def has_active_account(self, nik: str) -> bool:
        """The NIK is claimed (by an active account or a registration at its activating step)."""

    async def claim(self, nik: str, stream_id: str) -> bool:
        """Claim the NIK for ``stream_id``; True if it now holds the claim (also when it held it already)."""

    async def release(self, nik: str, stream_id: str) -> None:
        """Give up ``stream_id``'s claim (its registration ended without an account)."""


class KpjReservations(Protocol):
    """New 11-digit KPJ numbers, unique across all registrations."""

    async def reserve(self, participant_id: str, stream_id: str) -> str:
        """The number reserved for ``stream_id`` (the same one again on a retry)."""


def nik_key(key: bytes, nik: str) -> str:
    return hmac.new(key, b"jmo-nik-index-v1\0" + nik.encode(), hashlib.sha256).hexdigest()


class MongoNikIndex:
    def __init__(self, collection: AsyncCollection, key: bytes) -> None:
        self._c, self._key = collection, key

    async def has_active_account(self, nik: str) -> bool:
        return await self._c.find_one({"_id": nik_key(self._key, nik)}) is not None

    async def claim(self, nik: str, stream_id: str) -> bool:
        key = nik_key(self._key, nik)
        try:
            await self._c.insert_one({"_id": key, "stream_id": stream_id})
            return True
        except DuplicateKeyError:
            holder = await self._c.find_one({"_id": key})
            return holder is not None and holder["stream_id"] == stream_id

    async def release(self, nik: str, stream_id: str) -> None:
        key = nik_key(self._key, nik)
        holder = await self._c.find_one({"_id": key})
        if holder is not None and holder["stream_id"] == stream_id:
            await self._c.delete_one({"_id": key})


class MongoKpjReservations:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def reserve(self, participant_id: str, stream_id: str) -> str:
        for number in kpj_candidates(participant_id):
            try:
                await self._c.insert_one({"_id": f"kpj:{number}", "stream_id": stream_id})
                return number
            except DuplicateKeyError:
                holder = await self._c.find_one({"_id": f"kpj:{number}"})
                if holder is not None and holder["stream_id"] == stream_id:
                    return number  # reserved by an earlier attempt of this registration
        raise AssertionError("kpj_candidates is endless")


class InMemoryNikIndex:
    def __init__(self) -> None:
        self.active: dict[str, str] = {}

    async def has_active_account(self, nik: str) -> bool:
        return nik in self.active

    async def claim(self, nik: str, stream_id: str) -> bool:
        return self.active.setdefault(nik, stream_id) == stream_id

    async def release(self, nik: str, stream_id: str) -> None:
        if self.active.get(nik) == stream_id:
            del self.active[nik]


class InMemoryKpjReservations:
    def __init__(self) -> None:
        self.taken: dict[str, str] = {}

    async def reserve(self, participant_id: str, stream_id: str) -> str:
        for number in kpj_candidates(participant_id):
            if self.taken.setdefault(number, stream_id) == stream_id:
                return number
        raise AssertionError("kpj_candidates is endless")
