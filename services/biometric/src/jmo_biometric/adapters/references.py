"""What the service keeps about participants, protected: the NIK (to ask Dukcapil for the KTP photo)
and the reference embedding computed from that photo. Never an image.

Documents are keyed ``_id = participant_id`` (the only look-up FerretDB v1 answers by index) and the
personal values are sealed with AES-256-GCM under the participant's data key (:mod:`.protection`),
so erasing the participant erases them; the embedding cache also records the model version, so a
new model recomputes instead of comparing across models.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jmo_eventstore import GroupedInserts
from jmo_runtime.wire import WireSealed

from .protection import ParticipantSealer

_NIK = "nik"
#: The field of a participant's document that holds the NIK as it came on Kafka (a :class:`WireSealed`).
_NIK_AS_SENT = "nik_as_sent"
_EMBEDDING = "reference-embedding"


def _embedding_purpose(model_version: str) -> str:
    return f"{_EMBEDDING}\x00{model_version}"


class ParticipantFaces(Protocol):
    """The participant → NIK look-up and the reference embedding cache."""

    async def remember_nik(self, participant_id: str, nik: str | WireSealed) -> None:
        """Keep the participant's NIK: sealed as it came on Kafka (kept as it is: its first copy
        stays, a redelivery carries the same), or in clear (sealed here; nothing kept once erased)."""

    async def nik(self, participant_id: str) -> str | None: ...

    async def reference(self, participant_id: str, model_version: str) -> tuple[float, ...] | None: ...

    async def keep_reference(self, participant_id: str, model_version: str, embedding: tuple[float, ...]) -> None: ...


def _pack(embedding: tuple[float, ...]) -> bytes:
    return np.asarray(embedding, dtype="<f8").tobytes()


def _unpack(data: bytes) -> tuple[float, ...]:
    return tuple(float(x) for x in np.frombuffer(data, dtype="<f8"))


class MongoParticipantFaces:
    """:class:`ParticipantFaces` in the service's database (collections ``participants``, ``reference_faces``)."""

    def __init__(self, database: AsyncDatabase, sealer: ParticipantSealer) -> None:
        self._participants = database["participants"]
        self._first_copies = GroupedInserts(self._participants)  # arrivals at once share an insert
        self._references = database["reference_faces"]
        self._sealer = sealer

    async def remember_nik(self, participant_id: str, nik: str | WireSealed) -> None:
        if isinstance(nik, WireSealed):  # one insert, no key look-up
            try:
                await self._first_copies.insert_one({"_id": participant_id, _NIK_AS_SENT: nik.to_document()})
            except DuplicateKeyError:
                pass
            return
        sealed = await self._sealer.seal(nik.encode(), _NIK, participant_id)
        if sealed is None:  # an erased participant
            return
        await self._participants.replace_one({"_id": participant_id}, {"_id": participant_id, "nik": sealed}, upsert=True)

    async def nik(self, participant_id: str) -> str | None:
        doc = await self._participants.find_one({"_id": participant_id})
        if doc is not None and _NIK_AS_SENT in doc:
            return await self._sealer.open_as_sent(WireSealed.from_document(doc[_NIK_AS_SENT]), participant_id)
        plain = None if doc is None else await self._sealer.open(doc["nik"], _NIK, participant_id)
        return None if plain is None else plain.decode()

    async def reference(self, participant_id: str, model_version: str) -> tuple[float, ...] | None:
        doc = await self._references.find_one({"_id": participant_id})
        if doc is None or doc.get("model_version") != model_version:
            return None
        plain = await self._sealer.open(doc["embedding"], _embedding_purpose(model_version), participant_id)
        return None if plain is None else _unpack(plain)

    async def keep_reference(self, participant_id: str, model_version: str, embedding: tuple[float, ...]) -> None:
        sealed = await self._sealer.seal(_pack(embedding), _embedding_purpose(model_version), participant_id)
        if sealed is None:  # an erased participant
            return
        await self._references.replace_one({"_id": participant_id}, {"_id": participant_id, "model_version": model_version, "embedding": sealed}, upsert=True)


class InMemoryParticipantFaces:
    """:class:`ParticipantFaces` in dicts (sealed all the same), for tests."""

    def __init__(self, sealer: ParticipantSealer) -> None:
        self._sealer = sealer
        self.niks: dict[str, bytes | WireSealed] = {}
        self.references: dict[str, tuple[str, bytes]] = {}

    async def remember_nik(self, participant_id: str, nik: str | WireSealed) -> None:
        if isinstance(nik, WireSealed):
            self.niks.setdefault(participant_id, nik)
        elif (sealed := await self._sealer.seal(nik.encode(), _NIK, participant_id)) is not None:
            self.niks[participant_id] = sealed

    async def nik(self, participant_id: str) -> str | None:
        sealed = self.niks.get(participant_id)
        if isinstance(sealed, WireSealed):
            return await self._sealer.open_as_sent(sealed, participant_id)
        plain = None if sealed is None else await self._sealer.open(sealed, _NIK, participant_id)
        return None if plain is None else plain.decode()

    async def reference(self, participant_id: str, model_version: str) -> tuple[float, ...] | None:
        version, sealed = self.references.get(participant_id, ("", b""))
        if version != model_version:
            return None
        plain = await self._sealer.open(sealed, _embedding_purpose(model_version), participant_id)
        return None if plain is None else _unpack(plain)

    async def keep_reference(self, participant_id: str, model_version: str, embedding: tuple[float, ...]) -> None:
        if (sealed := await self._sealer.seal(_pack(embedding), _embedding_purpose(model_version), participant_id)) is not None:
            self.references[participant_id] = (model_version, sealed)
