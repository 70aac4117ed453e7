"""The outbox of sealed OTP codes in the store (see ``application.otp_delivery``): one document per
code, by ``_id`` = otp_id; ``expires_at`` says until when it may still be wanted.

Codes are dropped in batches, not one delete per code: :meth:`MongoSealedCodes.drop` only notes
them, and they are deleted every ``drop_interval`` seconds (``JMO_OTP_OUTBOX_DROP_INTERVAL_MS``), at
once when :data:`DROP_BATCH` wait, and on stop (:meth:`MongoSealedCodes.close`); one command per
batch, each statement by ``_id`` (:func:`jmo_eventstore.delete_by_id`, chunks below FerretDB v1's
100). A code noted for dropping is already gone for :meth:`~MongoSealedCodes.find` in this process.

Why that is safe: a code a crash leaves in the outbox (its drop not yet written) is only published
again if the message that issued it is delivered again, and its delivery request then carries the
same message id, derived from the otp id (``delivery_request_id``), which the notification
service's delivery claim de-duplicates: the code is still sent once. Another instance handling such
a redelivery meanwhile publishes the same id, with the same effect. Past ``expires_at`` the code is
of no use to anyone (the OTP itself expired long before).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from jmo_eventstore import delete_by_id
from jmo_runtime.batching import Batched

from ..application.otp_delivery import SealedCode

#: Codes waiting to be dropped that make a batch be deleted at once.
DROP_BATCH = 64


class MongoSealedCodes:
    """The outbox in ``collection``. Call :meth:`close` on stop, to delete what waits."""

    def __init__(self, collection: AsyncCollection, *, drop_interval: float = 0.2) -> None:
        self._c = collection
        self._drops: Batched[str] = Batched(self._delete, interval=drop_interval, max_pending=DROP_BATCH, name="otp-outbox-drops")

    async def keep(self, code: SealedCode, until: datetime) -> None:
        await self._c.insert_one({"_id": code.otp_id, "ciphertext": code.ciphertext, "key_id": code.key_id, "expires_at": until})

    async def find(self, otp_id: str) -> SealedCode | None:
        if self._drops.waiting(otp_id):  # published (or unused) here: dropped, even if not deleted yet
            return None
        doc = await self._c.find_one({"_id": otp_id})
        return None if doc is None else SealedCode(otp_id, doc["ciphertext"], doc["key_id"])

    async def drop(self, otp_ids: list[str]) -> None:
        self._drops.add(otp_ids)

    async def close(self) -> None:
        await self._drops.close()

    async def _delete(self, otp_ids: list[str]) -> None:
        await delete_by_id(self._c, otp_ids)
