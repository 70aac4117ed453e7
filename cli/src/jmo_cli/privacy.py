"""``jmo privacy erase``: a participant's personal data made unreadable everywhere (UU PDP No. 27/2022).

Every service keeps a participant's personal data sealed under one data key per participant (the
subject ``participant-<id>`` in the service's ``data_keys``): their log's personal fields, the
participant profile, biometric's NIK and reference embedding. Erasing replaces that key by a
tombstone in every service's ring, so all of it reads as ``[erased]`` from then on, and nothing
personal is stored about the participant again. The logs themselves stay whole (the hash chain still
verifies): the audit trail of what happened remains, without whom it happened to.

What is kept apart from the key ring is deleted outright: notification's contact directory entry
and biometric's look-up documents. Running services notice the erasure once their cached key
expires (``MongoKeyRing``'s ``cache_seconds``, a minute).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any

import typer
from pymongo import AsyncMongoClient

from jmo_contracts import topics
from jmo_eventstore import participant_subject
from jmo_eventstore.keyring import erase_key
from jmo_runtime import ServiceSettings

app = typer.Typer(help="Personal data: erasure on request.", no_args_is_help=True)

#: Documents keyed by participant id outside the key ring, per service: deleted on erasure.
KEPT_BY_PARTICIPANT: dict[str, tuple[str, ...]] = {"notification": ("contacts",), "biometric": ("participants", "reference_faces")}


async def erase(settings: ServiceSettings, participant_id: str) -> dict[str, Any]:
    """Erase ``participant_id`` in every service's database; returns what was done, per service."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=settings.store_timeout_ms, appname="jmo-cli")
    done: dict[str, Any] = {}
    try:
        for service in topics.SERVICES:
            db = client[settings.database_for(service)]
            await erase_key(db["data_keys"], participant_subject(participant_id))
            deleted = {name: (await db[name].delete_one({"_id": participant_id})).deleted_count for name in KEPT_BY_PARTICIPANT.get(service, ())}
            done[service] = {"key": "erased", **({"deleted": deleted} if deleted else {})}
    finally:
        await client.close()
    return done


@app.command("erase")
def erase_participant(
    participant_id: Annotated[str, typer.Argument(help="The participant reference (32 hex).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it: erasure cannot be undone.")] = False,
) -> None:
    """Erase a participant's personal data in every service, for good; the audit trail stays."""
    if not re.fullmatch(r"[0-9a-f]{32}", participant_id):
        typer.echo("participant_id must be 32 lower-case hex digits", err=True)
        raise typer.Exit(2)
    if not yes:
        typer.echo("erasure cannot be undone: add --yes", err=True)
        raise typer.Exit(2)
    done = asyncio.run(erase(ServiceSettings(), participant_id))
    typer.echo(json.dumps({"participant_id": participant_id, "erased": done}))
