"""Data keys kept in the store itself, each wrapped (AES-256-GCM) under a master key that only the
environment knows: a copy of the database alone reveals no personal data, and deleting one
subject's key document erases that subject's personal fields everywhere (crypto-shredding).

Erasing leaves a tombstone in place of the key (``{_id, erased_at}``): no key is ever created again
for that subject, so what a late event or a rebuild writes about an erased participant is stored as
``[erased]``, and their old ciphertexts stay unreadable for good.

A subject not in the cache is, when a key may be created, first tried as new (one insert; a
collision means it has a key or a tombstone, which is then read). Key documents are read and
written by ``_id`` (the subject) only — the one filter FerretDB v1
answers from an index. Unwrapped keys are cached in memory (bounded, least recently used) for
``cache_seconds``, so an erasure made by another process (``jmo privacy erase``) takes effect in a
running service within that time.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from .grouped import GroupedLookups


#: Cached in place of a key for an erased subject.
_ERASED = b""


async def erase_key(collection: AsyncCollection, subject: str) -> None:
    """Replace ``subject``'s key in ``collection`` by a tombstone (no master key needed)."""
    await collection.replace_one({"_id": subject}, {"_id": subject, "erased_at": datetime.now(UTC)}, upsert=True)


class MongoKeyRing:
    """A :class:`~jmo_eventstore.codec.KeyRing` whose data keys live in ``collection``, wrapped under ``master_key``."""

    def __init__(self, collection: AsyncCollection, master_key: bytes, *, key_id: str = "data-v1", cache_size: int = 20_000, cache_seconds: float = 60.0) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (AES-256)")
        self._c = collection
        self._lookups = GroupedLookups(collection)  # handlers opening different participants' data at once share a find
        self._master = AESGCM(master_key)
        self._key_id = key_id
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds

    async def load(self, subjects: Iterable[str], *, create: bool) -> None:
        now = time.monotonic()
        for subject in subjects:
            cached = self._cache.get(subject)
            if cached is not None and now - cached[1] < self._cache_seconds:
                self._cache.move_to_end(subject)
                continue
            if create and cached is None:
                # a subject this instance has not seen is usually new: try to create its key
                # first (one insert), and read the existing one only when that collides
                key = AESGCM.generate_key(bit_length=256)
                try:
                    await self._c.insert_one({"_id": subject, "key_id": self._key_id, "wrapped": self._wrap(subject, key)})
                except DuplicateKeyError:  # it has a key already (or was erased): use that
                    pass
                else:
                    self._remember(subject, key)
                    continue
            doc = await self._lookups.find_one(subject)
            if doc is None and create:
                key = AESGCM.generate_key(bit_length=256)
                try:
                    await self._c.insert_one({"_id": subject, "key_id": self._key_id, "wrapped": self._wrap(subject, key)})
                except DuplicateKeyError:  # another writer created it first (or erased it): use theirs
                    doc = await self._lookups.find_one(subject)
                else:
                    self._remember(subject, key)
                    continue
            if doc is None:
                self.forget(subject)
            else:
                self._remember(subject, self._unwrap(subject, doc["wrapped"]) if "wrapped" in doc else _ERASED)

    def key_for(self, subject: str, *, create: bool) -> bytes | None:
        cached = self._cache.get(subject)
        if cached is None:
            if create:
                raise LookupError(f"no key loaded for {subject!r}: the store must prepare the codec before encoding")
            return None
        key, _ = cached
        return None if key is _ERASED else key

    def forget(self, subject: str) -> None:
        """Drop the cached key (``erase`` also deletes it from the store)."""
        self._cache.pop(subject, None)

    async def erase(self, subject: str) -> None:
        """Delete the subject's key for good (a tombstone): its personal fields read as ``[erased]`` from now on."""
        await erase_key(self._c, subject)
        self._remember(subject, _ERASED)

    def _remember(self, subject: str, key: bytes) -> None:
        self._cache[subject] = (key, time.monotonic())
        self._cache.move_to_end(subject)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _wrap(self, subject: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._master.encrypt(nonce, key, subject.encode())

    def _unwrap(self, subject: str, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:12], wrapped[12:], subject.encode())
