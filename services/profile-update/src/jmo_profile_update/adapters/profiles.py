"""Where the participant-profile read model lives: one document per participant, by ``_id``.

At rest a document keeps in clear only what is not personal data (``profile.NOT_PERSONAL``: ids,
status, timestamps, which fields changed, the message ids folded). Every personal field is in one
sealed value, ``personal``, under the participant's own data key — the codec and key ring of the
service's event log (subject ``participant-<id>``), so erasing the participant's key erases their
profile together with their events::

    {"_id": "<pid>", "participant_id": "<pid>", "status": "ACTIVE", "profile_version": 1, ...,
     "applied": ["<message id>", ...], "personal": {"_enc": "<base64 nonce + AES-GCM ciphertext>"}}

After an erasure (the key replaced by a tombstone in every service's key ring, ``jmo privacy erase``):

* :meth:`ProfileStore.get` returns None: an erased participant is not known here any more, so no
  pengkinian-data session can start for them (``UNKNOWN_PARTICIPANT``) and nothing personal is shown.
* The document stays with its clear part: later events still fold their status and bookkeeping
  (a redelivery is still recognised as applied), but the personal values they carry are dropped
  and ``personal`` becomes ``"[erased]"``. The tombstone keeps any key from being made anew; and a
  key is only ever created here for a profile that never had sealed personal data, so no
  redelivered or replayed event brings personal data back into an erased profile. A person who comes back registers again, under a new participant id.
* A profile folded from a log that could no longer decrypt its NIK (the codec reads ``"[erased]"``)
  is stored erased in the same way: that is how a rebuild, or an event relayed after the erasure,
  sees an erased participant. Erasing a participant means deleting their key in every service's ring.

Folding is read, fold, write, under a per-participant lock — except for an event that starts a
profile (``profile.STARTS``: ``ParticipantRegistered``). The lock serialises one process only; the
write is conditional, so that two instances folding into one profile at once (two sessions of one
participant confirmed on two instances, a redelivery after a rebalance) lose neither event: it
replaces the document only while its ``applied`` list is the one read (every fold adds its message
id, so the list changes with every write), matched by ``_id`` — one document looked up by its index,
atomic on MongoDB and FerretDB alike. A write that finds the document changed reads, folds and
writes again. That one is folded into no profile and the
result *inserted* (one store command instead of a read and a write); only when the insert meets a
stored document (a redelivery, another instance, a replay, an erased profile…) is it read, folded
and written as any other event. The insert keeps every promise above:

* idempotency: it never overwrites, so an event already folded is still recognised by ``applied``
  on the read that follows the collision, and a profile is never folded from scratch twice;
* erasure: it seals only under a key the participant has already (``create=False``), so it never
  makes a key; a participant without one (erased: a tombstone, or no key at all) takes the read
  path, which decides from the stored profile whether a key may be made. In a deployment the key
  exists by then: the gateway made it to seal the registration on Kafka, and opening the received
  event loaded it into the ring's cache, so the insert path costs no key-ring command either.

A ``ParticipantRegistered`` arrives from Kafka with its personal fields sealed as registration's
log stores them, and the service's consumer keeps them so (``keeps_sealed``): a new profile is
inserted with those sealed values as they came (:data:`AS_SENT`), so beginning a profile needs no
key look-up at all. They are opened with the participant's key when the profile is read, and sealed
into ``personal`` at its next write (the next event folded). Erasing the key makes them unreadable
like ``personal``: the profile then reads as erased. Any other event, or a ``ParticipantRegistered``
meeting a stored profile, is opened before it is folded (a value that does not open is parked with
its reason, as the consumer would have).

Without ``JMO_DATA_KEY`` the codec is plain and ``personal`` holds the fields as they are, as the
log does. A document written before profiles were sealed (personal fields at the top level) reads
as it is and is sealed at its next write; ``jmo audit rebuild participant-profiles`` seals them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from enum import Enum
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from jmo_contracts import Envelope
from jmo_eventstore import ERASED, FieldEncryptionCodec, GroupedInserts, PlainCodec, ValueSealer, participant_subject
from jmo_eventstore.codec import SealedFieldUnreadable, is_sealed, personal_fields_of
from jmo_runtime import Unprocessable
from jmo_runtime.messaging import Refused
from jmo_runtime.wire import WireSealed, open_all_kept, open_envelope

from ..domain import profile as profiles

#: The collection (in the profile-update service's database) that holds the live read model.
COLLECTION = "participant_profiles"
#: The field of a stored document that holds the sealed personal part.
PERSONAL = "personal"
#: What the sealed part is, bound to it with the participant (a seal copied elsewhere does not open).
CONTEXT = "participant-profile"
#: The field of a profile begun from a ``ParticipantRegistered`` kept as it came on Kafka: its
#: personal fields, each a :class:`~jmo_runtime.wire.WireSealed`, until the profile's next write
#: seals them into :data:`PERSONAL`.
AS_SENT = "personal_as_sent"

Profile = dict[str, Any]
#: Reads, folds and writes of one event before a profile that keeps changing under it fails the message
#: (it is then redelivered): another instance would have to write the profile that often meanwhile.
FOLD_ATTEMPTS = 5


class ProfileChanged(Exception):
    """Another instance wrote the profile between this fold's read and its write."""


class ProfileStore(Protocol):
    async def get(self, participant_id: str) -> Profile | None:
        """The participant's profile in clear, or None when no event about them has been folded or
        their personal data was erased."""

    async def apply(self, envelope: Envelope) -> None:
        """Fold ``envelope`` into its participant's profile (idempotent; other events are ignored)."""


class Protection(Enum):
    """How a stored profile's personal part is protected, which decides how it may be written again."""

    NONE = "none"  # nothing sealed yet (a new profile, or one stored before sealing): a key may be created
    SEALED = "sealed"  # sealed under the participant's key: written again under that key, never a new one
    ERASED = "erased"  # the key is gone: personal values are dropped from now on


class ProfileSealing:
    """Turns a profile into its stored form and back (see the module docstring)."""

    def __init__(self, sealer: ValueSealer) -> None:
        self._sealer = sealer

    async def open(self, stored: Mapping[str, Any] | None) -> tuple[Profile | None, Protection]:
        """The profile as the fold knows it, and how it is protected. An erased profile has only its
        clear fields."""
        if stored is None:
            return None, Protection.NONE
        clear = {k: v for k, v in stored.items() if k not in (PERSONAL, AS_SENT)}
        if AS_SENT in stored:
            return await self._open_as_sent(clear, stored[AS_SENT])
        if PERSONAL not in stored:
            return clear, Protection.NONE
        personal = await self._sealer.unseal(participant_subject(stored["_id"]), stored[PERSONAL], context=CONTEXT)
        if not isinstance(personal, Mapping):  # ERASED: the key is gone, or is not the one that sealed it
            return clear, Protection.ERASED
        return clear | dict(personal), Protection.SEALED

    async def _open_as_sent(self, clear: Profile, as_sent: Mapping[str, Any]) -> tuple[Profile, Protection]:
        if not isinstance(self._sealer, FieldEncryptionCodec):
            raise TypeError("a profile kept as it came on Kafka needs the service's data key to be read")
        try:
            personal = await open_all_kept(self._sealer, [WireSealed.from_document(kept) for kept in as_sent.values()])
        except SealedFieldUnreadable:  # the key is gone (or the value was never this participant's)
            return clear, Protection.ERASED
        return clear | personal, Protection.SEALED

    @staticmethod
    def as_sent(profile: Mapping[str, Any], envelope: Envelope) -> dict[str, Any] | None:
        """``profile``, begun from ``envelope`` as it came on Kafka, as a new document is stored:
        its personal values kept sealed as they came (:data:`AS_SENT`), so no key is needed. None
        unless every personal value of the profile is such a sealed field of ``envelope``."""
        kept = {name: WireSealed.of(envelope, name) for name in profile if name not in profiles.NOT_PERSONAL}
        if not kept or any(k is None or profile[name] != envelope.payload.get(name) for name, k in kept.items()):
            return None
        return _clear_part(profile) | {AS_SENT: {name: k.to_document() for name, k in kept.items() if k is not None}}

    async def seal(self, profile: Mapping[str, Any], was: Protection) -> dict[str, Any]:
        """``profile`` as stored, replacing a document protected as ``was`` (NONE for a new one)."""
        stored = await self._stored(profile, erased=was is Protection.ERASED, create=was is Protection.NONE)
        return stored if stored is not None else self._stored_erased(profile)

    async def seal_new(self, profile: Mapping[str, Any]) -> dict[str, Any] | None:
        """``profile`` as a new document is stored, sealed only under a key the participant has
        already: None when its personal data would need a key made (none yet, or erased) — which
        only the stored profile may decide (:meth:`seal` with what :meth:`open` says of it)."""
        return await self._stored(profile, erased=False, create=False)

    async def _stored(self, profile: Mapping[str, Any], *, erased: bool, create: bool) -> dict[str, Any] | None:
        if erased or profile.get("nik") == ERASED:
            return self._stored_erased(profile)
        personal = {k: v for k, v in profile.items() if k not in profiles.NOT_PERSONAL}
        sealed = await self._sealer.seal(participant_subject(profile["_id"]), personal, context=CONTEXT, create=create)
        return None if sealed is None else _clear_part(profile) | {PERSONAL: sealed}

    @staticmethod
    def _stored_erased(profile: Mapping[str, Any]) -> dict[str, Any]:
        return _clear_part(profile) | {PERSONAL: ERASED}


def _has_sealed(envelope: Envelope) -> bool:
    """Whether a personal field of ``envelope`` came sealed (kept as it came, to be opened here)."""
    return any(is_sealed(envelope.payload.get(name)) for name in personal_fields_of(envelope.type))


def _clear_part(profile: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k in profiles.NOT_PERSONAL}


async def blank_personal(collection: AsyncCollection, participant_id: str) -> int:
    """Replace the personal part of a participant's stored profile by ``[erased]`` (sealed, or kept
    as it came on Kafka), keeping its clear bookkeeping: what ``jmo privacy erase`` does here.
    How many documents it changed (0: none stored, or blanked already)."""
    stored = await collection.find_one({"_id": participant_id}, {PERSONAL: 1, AS_SENT: 1})
    if stored is None or (stored.get(PERSONAL) in (None, ERASED) and AS_SENT not in stored):
        return 0
    return (await collection.update_one({"_id": participant_id}, {"$set": {PERSONAL: ERASED}, "$unset": {AS_SENT: ""}})).modified_count


async def stored_form(sealer: ValueSealer, profile: Mapping[str, Any]) -> dict[str, Any]:
    """``profile`` as a new document is stored: what ``jmo audit rebuild participant-profiles`` writes,
    with the owning service's codec — under the same keys as the live read model, creating a
    participant's key as the live store would at its first write unless the log shows them erased."""
    return await ProfileSealing(sealer).seal(profile, Protection.NONE)


class _Folding:
    """Read, fold, write — one participant at a time within this process, and a write only over the
    document that was read (another instance's write in between makes it fold again); an event that
    starts a profile is inserted without a read while none is stored (see the module docstring)."""

    def __init__(self, sealer: ValueSealer) -> None:
        self._locks = _InUseLocks()
        self._sealer = sealer
        self._sealing = ProfileSealing(sealer)

    async def _load(self, participant_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def _write(self, doc: dict[str, Any], read: Mapping[str, Any] | None) -> bool:
        """Store ``doc`` in place of ``read``, the document as it was read (None: none was stored),
        unless it has changed since (its ``applied`` is another): whether it was stored."""
        raise NotImplementedError

    async def get(self, participant_id: str) -> Profile | None:
        profile, protection = await self._sealing.open(await self._load(participant_id))
        return None if protection is Protection.ERASED else profile

    async def apply(self, envelope: Envelope) -> None:
        participant = profiles.participant_of(envelope)
        if participant is None:
            return
        async with self._locks.hold(participant):
            if envelope.type in profiles.STARTS and await self._start(envelope):
                return
            envelope = await self._opened(envelope)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(ProfileChanged), stop=stop_after_attempt(FOLD_ATTEMPTS),
                wait=wait_random_exponential(multiplier=0.01, max=0.2), reraise=True,
            ):
                with attempt:
                    await self._fold(participant, envelope)

    async def _fold(self, participant: str, envelope: Envelope) -> None:
        """Read, fold, write once; ProfileChanged when another instance wrote the profile meanwhile."""
        stored = await self._load(participant)
        if stored is not None and envelope.message_id in stored.get("applied", ()):
            return
        current, protection = await self._sealing.open(stored)
        updated = profiles.apply(current, envelope)
        if updated is not None and not await self._write(await self._sealing.seal(updated, protection), stored):
            raise ProfileChanged(participant)

    async def _start(self, envelope: Envelope) -> bool:
        """Fold ``envelope`` into no profile and insert the result: whether that made the profile
        (False: one is stored already, or sealing it needs the stored profile's say)."""
        new = profiles.apply(None, envelope)
        if new is None:
            return False
        doc = ProfileSealing.as_sent(new, envelope) or (None if _has_sealed(envelope) else await self._sealing.seal_new(new))
        return doc is not None and await self._write(doc, None)

    async def _opened(self, envelope: Envelope) -> Envelope:
        """``envelope`` with the personal fields it carries sealed (as its consumer keeps them) opened
        with the participant's key; :class:`Unprocessable` (parked, with the reason) when they do not open."""
        if not _has_sealed(envelope) or not isinstance(self._sealer, FieldEncryptionCodec):
            return envelope
        opened = await open_envelope(self._sealer, envelope)
        if isinstance(opened, Refused):
            raise Unprocessable(opened.reason, opened.detail)
        return opened


class _InUseLocks:
    """One lock per participant, kept only while someone holds or awaits it: a map of every
    participant ever folded would grow with the log."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._held.get(key, (asyncio.Lock(), 0))
        self._held[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._held)


class MongoProfileStore(_Folding):
    """The read model in MongoDB; every access is by ``_id`` (the only indexed filter on FerretDB).
    ``sealer`` is the codec of the service's event store (``service.store.codec``)."""

    def __init__(self, collection: AsyncCollection, sealer: ValueSealer) -> None:
        super().__init__(sealer)
        self._c = collection
        self._new = GroupedInserts(collection)  # profiles begun at once share an insert

    async def _load(self, participant_id: str) -> dict[str, Any] | None:
        return await self._c.find_one({"_id": participant_id})

    async def _write(self, doc: dict[str, Any], read: Mapping[str, Any] | None) -> bool:
        if read is None:
            try:
                await self._new.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        # by _id, and only while ``applied`` is still the list read (a missing one matches None)
        replaced = await self._c.replace_one({"_id": doc["_id"], "applied": read.get("applied")}, doc)
        return replaced.matched_count == 1


class InMemoryProfileStore(_Folding):
    """The read model in a dict, stored sealed all the same (``docs`` holds the stored forms)."""

    def __init__(self, sealer: ValueSealer | None = None) -> None:
        super().__init__(sealer or PlainCodec())
        self.docs: dict[str, dict[str, Any]] = {}

    async def _load(self, participant_id: str) -> dict[str, Any] | None:
        doc = self.docs.get(participant_id)
        return dict(doc) if doc is not None else None

    async def _write(self, doc: dict[str, Any], read: Mapping[str, Any] | None) -> bool:
        now = self.docs.get(doc["_id"])
        if (now is None) != (read is None) or (now is not None and read is not None and now.get("applied") != read.get("applied")):
            return False
        self.docs[doc["_id"]] = dict(doc)
        return True
