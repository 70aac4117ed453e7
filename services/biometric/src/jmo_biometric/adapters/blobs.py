"""Claim check: selfies wait in GridFS next to the event store, from the gateway's upload until decided.

The file's ``_id`` is the ``blob_id`` of ``SubmitSelfie``, the hex string of a new ObjectId: a string
``_id`` is what FerretDB v1 looks up by index (GridFS's chunk look-ups by ``files_id`` scan, so the
bucket is kept small by deleting every blob once its selfie is decided). Database and bucket names
come from one place (:meth:`jmo_runtime.ServiceSettings.blob_database`, ``SELFIE_BUCKET``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Protocol

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from jmo_contracts.biometric import SELFIE_BUCKET


class BlobTooLarge(Exception):
    """The stored blob is larger than the caller accepts; it was not read."""


class SelfieBlobs(Protocol):
    """Where uploaded selfies wait for their decision."""

    async def put(self, data: bytes, *, content_type: str) -> str:
        """Store ``data`` and return its new blob id."""
        ...

    async def get(self, blob_id: str, *, max_bytes: int) -> bytes | None:
        """The blob's bytes, ``None`` if there is none; :class:`BlobTooLarge` (unread) above ``max_bytes``."""
        ...

    async def delete(self, blob_id: str) -> None:
        """Remove the blob; nothing happens if it is already gone."""
        ...

    async def delete_uploaded_before(self, cutoff: datetime, *, limit: int = 50) -> int:
        """Remove up to ``limit`` blobs uploaded before ``cutoff`` (abandoned uploads); how many were removed."""
        ...


class GridFsSelfieBlobs:
    """:class:`SelfieBlobs` in a GridFS bucket (``AsyncGridFSBucket``)."""

    def __init__(self, database: AsyncDatabase, bucket: str = SELFIE_BUCKET) -> None:
        self._bucket = AsyncGridFSBucket(database, bucket_name=bucket)
        self._files = database[f"{bucket}.files"]
        self._indexed = False

    async def put(self, data: bytes, *, content_type: str) -> str:
        blob_id = str(ObjectId())
        await self._bucket.upload_from_stream_with_id(blob_id, "selfie", data, metadata={"content_type": content_type, "sha256": hashlib.sha256(data).hexdigest()})
        return blob_id

    async def get(self, blob_id: str, *, max_bytes: int) -> bytes | None:
        try:
            stream = await self._bucket.open_download_stream(blob_id)
        except NoFile:
            return None
        try:
            if stream.length > max_bytes:
                raise BlobTooLarge(f"{stream.length} bytes")
            return await stream.read()  # reads every chunk: the cursor is exhausted
        finally:
            await stream.close()

    async def delete(self, blob_id: str) -> None:
        try:
            await self._bucket.delete(blob_id)
        except NoFile:
            pass

    async def delete_uploaded_before(self, cutoff: datetime, *, limit: int = 50) -> int:
        # on MongoDB the index on uploadDate serves it (GridFS's own {filename, uploadDate} does not);
        # a scan of the files collection on FerretDB, which stays small; the cursor is read to its end
        if not self._indexed:
            await self._files.create_index("uploadDate", name="uploaded_at")
            self._indexed = True
        old = [f._id async for f in self._bucket.find({"uploadDate": {"$lt": cutoff}}, limit=limit)]
        for blob_id in old:
            await self.delete(blob_id)
        return len(old)


class InMemorySelfieBlobs:
    """:class:`SelfieBlobs` in a dict, for tests."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.uploaded: dict[str, datetime] = {}

    async def put(self, data: bytes, *, content_type: str) -> str:
        blob_id = str(ObjectId())
        self.blobs[blob_id] = data
        self.uploaded[blob_id] = datetime.now(UTC)
        return blob_id

    async def get(self, blob_id: str, *, max_bytes: int) -> bytes | None:
        data = self.blobs.get(blob_id)
        if data is not None and len(data) > max_bytes:
            raise BlobTooLarge(f"{len(data)} bytes")
        return data

    async def delete(self, blob_id: str) -> None:
        self.blobs.pop(blob_id, None)
        self.uploaded.pop(blob_id, None)

    async def delete_uploaded_before(self, cutoff: datetime, *, limit: int = 50) -> int:
        old = [b for b, at in self.uploaded.items() if at < cutoff][:limit]
        for blob_id in old:
            await self.delete(blob_id)
        return len(old)
