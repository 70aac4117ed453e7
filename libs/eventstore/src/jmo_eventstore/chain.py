"""The per-stream hash chain: each commit's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def commit_hash(
    *,
    stream_id: str,
    from_version: int,
    to_version: int,
    cause_id: str,
    recorded_at: str,
    events: list[dict[str, Any]],
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON of a commit (events in their stored form)."""
    body = {
        "stream_id": stream_id,
        "from_version": from_version,
        "to_version": to_version,
        "cause_id": cause_id,
        "recorded_at": recorded_at,
        "events": events,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
