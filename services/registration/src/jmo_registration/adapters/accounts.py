"""Cross-registration facts kept beside the log: which NIKs have an active account, which KPJ
numbers are taken. Both are insert-only documents with a unique ``_id``, so concurrent
registrations cannot both win; the NIK and the KPJ number are stored only as keyed hashes (the
events seal them; a clear copy here would link them to the stream)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jmo_eventstore import GroupedLookups

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


def kpj_key(key: bytes, number: str) -> str:
    """The ``_id`` under which a KPJ number is reserved: a keyed hash, never the number."""
    return "kpj-h:" + hmac.new(key, b"jmo-kpj-numbers-v1\0" + number.encode(), hashlib.sha256).hexdigest()


def legacy_kpj_id(number: str) -> str:
    """How a reservation was keyed before the number was hashed (``kpj:<number>``): still honoured."""
    return f"kpj:{number}"


class MongoNikIndex:
    def __init__(self, collection: AsyncCollection, key: bytes) -> None:
        self._c, self._key = collection, key
        self._lookups = GroupedLookups(collection)  # registrations decided at once share one find

    async def has_active_account(self, nik: str) -> bool:
        return await self._lookups.find_one(nik_key(self._key, nik)) is not None

    async def claim(self, nik: str, stream_id: str) -> bool:
        key = nik_key(self._key, nik)
        try:
            await self._c.insert_one({"_id": key, "stream_id": stream_id})
            return True
        except DuplicateKeyError:
            holder = await self._lookups.find_one(key)
            return holder is not None and holder["stream_id"] == stream_id

    async def release(self, nik: str, stream_id: str) -> None:
        key = nik_key(self._key, nik)
        holder = await self._lookups.find_one(key)
        if holder is not None and holder["stream_id"] == stream_id:
            await self._c.delete_one({"_id": key})


class MongoKpjReservations:
    """``{_id: kpj_key(number), stream_id}``; without ``key`` (older wiring) ``{_id: "kpj:<number>"}``.
    A number reserved under the older form stays taken."""

    def __init__(self, collection: AsyncCollection, key: bytes | None = None) -> None:
        self._c, self._key = collection, key

    async def reserve(self, participant_id: str, stream_id: str) -> str:
        for number in kpj_candidates(participant_id):
            if self._key is not None:
                legacy = await self._c.find_one({"_id": legacy_kpj_id(number)})
                if legacy is not None:
                    if legacy.get("stream_id") == stream_id:
                        return number
                    continue
            doc_id = kpj_key(self._key, number) if self._key is not None else legacy_kpj_id(number)
            try:
                await self._c.insert_one({"_id": doc_id, "stream_id": stream_id})
                return number
            except DuplicateKeyError:
                holder = await self._c.find_one({"_id": doc_id})
                if holder is not None and holder.get("stream_id") == stream_id:
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
