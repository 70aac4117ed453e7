"""The outbox of sealed OTP codes (see ``application.otp_delivery``), kept beside identity's log: one
side document per code (``EventStore.append(..., beside=...)``, key ``otp~<otp_id>``, in the
commits collection as ``~beside~otp~<otp_id>``), written in the very insert of the decision whose
``OtpIssued`` issues it, so a code costs no store command of its own and is durable no later than
that decision. ``expires_at`` says until when it may still be wanted: on MongoDB the store's TTL
index removes it after that whatever happens (one a crash left behind); FerretDB v1 has no TTL
indexes, so there such a leftover stays until deleted by hand (``~beside~otp~`` ids; rare: see below).

Codes are dropped in batches, not one delete per code: :meth:`StoreSealedCodes.drop` only notes
them, and they are deleted every ``drop_interval`` seconds (``JMO_OTP_OUTBOX_DROP_INTERVAL_MS``), at
once when :data:`DROP_BATCH` wait, and on stop (:meth:`StoreSealedCodes.close`); one command per
batch, each statement by ``_id`` (``EventStore.drop_beside``, chunks below FerretDB v1's 100). A
code noted for dropping is already gone for :meth:`~StoreSealedCodes.find` in this process.

Why that is safe: a code a crash leaves in the outbox (its drop not yet written) is only published
again if the message that issued it is delivered again, and its delivery request then carries the
same message id, derived from the otp id (``delivery_request_id``), which the notification
service's delivery claim de-duplicates: the code is still sent once. Another instance handling such
a redelivery meanwhile publishes the same id, with the same effect. Past ``expires_at`` the code is
of no use to anyone (the OTP itself expired long before).

Roll-out: earlier versions kept each code in a collection of its own (``otp_outbox``, by
``otp_id``, one ``insert`` per code). A code an old instance kept there before it stopped is still
found there (``legacy``) and deleted from there once published; the collection gets a TTL index
on MongoDB so what remains expires, and may be dropped once it is empty. The reverse does not hold:
an old instance does not look beside the log, so run the old and new versions side by side only
briefly (a message one of them crashed on may then need the participant to ask for a resend).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from jmo_eventstore import EventStore, delete_by_id, ensure_ttl_index
from jmo_runtime.batching import Batched

from ..application.otp_delivery import SealedCode

#: Codes waiting to be dropped that make a batch be deleted at once.
DROP_BATCH = 64


def outbox_key(otp_id: str) -> str:
    """The key of code ``otp_id``'s side document in identity's store."""
    return f"otp~{otp_id}"


class StoreSealedCodes:
    """The outbox beside ``store``'s commits, and (during a roll-out) the codes an earlier version
    kept in the collection ``legacy``. Call :meth:`ensure_indexes` at start and :meth:`close` on
    stop, to delete what waits."""

    def __init__(self, store: EventStore, *, legacy: AsyncCollection | None = None, drop_interval: float = 0.2) -> None:
        self._store, self._legacy = store, legacy
        self._in_legacy: set[str] = set()  # codes found in the legacy collection, to be deleted from there
        self._drops: Batched[str] = Batched(self._delete, interval=drop_interval, max_pending=DROP_BATCH, name="otp-outbox-drops")

    async def ensure_indexes(self) -> bool:
        """The TTL index of the legacy collection, if an earlier version left one (the store makes
        its own; a fresh deployment gets no legacy collection); False where there is none (no
        legacy collection, or FerretDB v1)."""
        if self._legacy is None or self._legacy.name not in await self._legacy.database.list_collection_names(filter={"name": self._legacy.name}):
            return False
        return await ensure_ttl_index(self._legacy, "expires_at", name="otp_outbox_ttl")

    def beside(self, code: SealedCode, until: datetime) -> tuple[str, dict[str, Any]]:
        return outbox_key(code.otp_id), {"ciphertext": code.ciphertext, "key_id": code.key_id, "expires_at": until}

    async def find(self, otp_id: str) -> SealedCode | None:
        if self._drops.waiting(otp_id):  # published (or unused) here: dropped, even if not deleted yet
            return None
        doc = await self._store.find_beside(outbox_key(otp_id))
        if doc is None and self._legacy is not None and (doc := await self._legacy.find_one({"_id": otp_id})) is not None:
            self._in_legacy.add(otp_id)
        return None if doc is None else SealedCode(otp_id, doc["ciphertext"], doc["key_id"])

    async def drop(self, otp_ids: list[str]) -> None:
        self._drops.add(otp_ids)

    async def close(self) -> None:
        await self._drops.close()

    async def _delete(self, otp_ids: list[str]) -> None:
        await self._store.drop_beside([outbox_key(otp_id) for otp_id in otp_ids])
        if legacy := [otp_id for otp_id in otp_ids if otp_id in self._in_legacy]:
            await delete_by_id(self._legacy, legacy)  # type: ignore[arg-type]  # only found there with a legacy collection
            self._in_legacy.difference_update(legacy)
