"""The outbox of sealed OTP codes in the store (see ``application.otp_delivery``): one document per
code, by ``_id`` = otp_id; ``expires_at`` lets a TTL index remove what a crash left behind."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from ..application.otp_delivery import SealedCode


class MongoSealedCodes:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def keep(self, code: SealedCode, until: datetime) -> None:
        await self._c.insert_one({"_id": code.otp_id, "ciphertext": code.ciphertext, "key_id": code.key_id, "expires_at": until})

    async def find(self, otp_id: str) -> SealedCode | None:
        doc = await self._c.find_one({"_id": otp_id})
        return None if doc is None else SealedCode(otp_id, doc["ciphertext"], doc["key_id"])

    async def drop(self, otp_ids: list[str]) -> None:
        for otp_id in otp_ids:  # by _id, one each: FerretDB v1 serves no other filter from an index
            await self._c.delete_one({"_id": otp_id})
