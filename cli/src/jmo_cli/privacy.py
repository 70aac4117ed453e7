"""``jmo privacy erase``: a participant's personal data made unreadable everywhere (UU PDP No. 27/2022),
and the erasure itself recorded.

Every service keeps a participant's personal data sealed under one data key per participant (the
subject ``participant-<id>`` in ``data_keys`` of the key ring all services and the gateway share,
JMO_KEYRING_DATABASE): their logs' personal fields, the participant profile, biometric's NIK and
reference embedding, and every message about them on Kafka (events, commands, DLQ copies), which
carry those fields sealed under the same key. Erasing replaces that key by a tombstone, so all of
it reads as ``[erased]`` (a consumer refuses such a message as ``PARTICIPANT_ERASED``) from then
on, and nothing personal is stored about the participant again. The logs themselves stay whole (every hash chain
still verifies): the audit trail of what happened remains, without whom it happened to.

What is kept beside the logs about the participant is cleared too, found by key (no scans):

* registration: the NIK claim (``nik_index``, under the keyed hash of the NIK read from the log
  before its key goes; the person may register again, as a new participant), the KPJ reservation
  (``kpj_numbers``: the link to the stream is dropped, the number stays taken so it is never
  issued to someone else), and the expiry and retry schedules of the registration;
* profile-update: the profile's sealed part, or its personal fields kept as they came on Kafka (``participant_profiles``; its clear bookkeeping
  stays, so a redelivered event is still recognised) and the deadlines of the participant's sessions;
* biometric: the NIK and reference-face documents; notification: the contact directory entry.

Then ``ParticipantErased`` (who asked, why, who ran it, when, what was cleared; no personal data) is
appended to the audit log (``jmo audit access``). Running services notice the erasure once their
cached key expires (``MongoKeyRing``'s ``cache_seconds``, a minute). Running it again is harmless.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pymongo import AsyncMongoClient

from jmo_contracts import topics
from jmo_contracts.audit import ParticipantErased
from jmo_eventstore import ERASED, MongoEventStore, participant_subject
from jmo_eventstore.keyring import erase_key
from jmo_profile_update.adapters.profiles import COLLECTION as PROFILES, blank_personal
from jmo_registration.adapters.accounts import kpj_key, legacy_kpj_id, nik_key
from jmo_runtime import ServiceSettings
from jmo_runtime.service import personal_data_codec

from . import asof
from .trail import AuditLog, audit_store, who

app = typer.Typer(help="Personal data: erasure on request.", no_args_is_help=True)

#: Documents keyed by participant id outside the key ring, per service: deleted on erasure.
KEPT_BY_PARTICIPANT: dict[str, tuple[str, ...]] = {"notification": ("contacts",), "biometric": ("participants", "reference_faces")}


class MissingKey(RuntimeError):
    """A key the erasure needs to reach everything is not configured; nothing was erased."""


def _index_key() -> bytes | None:
    """Registration's JMO_NIK_INDEX_KEY (it keys the NIK and KPJ look-ups), if set."""
    raw = os.environ.get("JMO_NIK_INDEX_KEY")
    return base64.b64decode(raw) if raw else None


def _clear_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != ERASED else None


async def erase(settings: ServiceSettings, participant_id: str, *, reason: str, requested_by: str, erased_by: str) -> dict[str, Any]:
    """Erase ``participant_id`` in every service's database, clear what is kept beside the logs and
    record it in the audit log; returns what was done."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=settings.store_timeout_ms, appname="jmo-cli")
    db = {service: client[settings.database_for(service)] for service in topics.SERVICES}
    cleared: dict[str, int] = {}
    try:
        stores = {s: MongoEventStore(d, name="events", codec=personal_data_codec(d, settings)) for s, d in db.items()}
        # what the look-ups are keyed by, read while the keys still open the log
        registration_stream = f"registration-{participant_id}"
        registered = await stores["registration"].read_stream(registration_stream)
        nik = next((_clear_text(e.envelope.payload.get("nik")) for e in registered if e.envelope.type == "ParticipantRegistered"), None)
        kpj = next((_clear_text(e.envelope.payload.get("kpj_number")) for e in registered if e.envelope.type == "AccountActivated"), None)
        if any(isinstance(e.envelope.payload.get(f), dict) for e in registered for f in ("nik", "kpj_number")):
            raise MissingKey("the log is sealed: set JMO_DATA_KEY (as for the services) to read the NIK and KPJ number the look-ups are keyed by")
        key = _index_key()
        if (nik or kpj) and key is None:
            raise MissingKey("set JMO_NIK_INDEX_KEY (registration's): the NIK claim and the KPJ reservation are found by a hash under it")
        identity_events = await stores["identity"].read_stream(f"identity-{participant_id}")
        sessions = await asof.known_sessions(stores, participant_id, identity_events)

        # the one key ring every service and the gateway share: at rest, in read models and on Kafka
        await erase_key(client[settings.keyring_database_name()]["data_keys"], participant_subject(participant_id))
        for service, names in KEPT_BY_PARTICIPANT.items():
            for name in names:
                cleared[f"{service}/{name}"] = (await db[service][name].delete_one({"_id": participant_id})).deleted_count

        reg = db["registration"]
        for schedule in ("open_registrations_by_time", "membership_retries"):
            cleared[f"registration/{schedule}"] = (await reg[schedule].delete_one({"_id": registration_stream})).deleted_count
        # every look-up by _id alone: the one filter FerretDB v1 answers from an index
        if nik and key is not None:
            claim = await reg["nik_index"].find_one({"_id": nik_key(key, nik)})
            held = claim is not None and claim.get("stream_id") == registration_stream
            cleared["registration/nik_index"] = (await reg["nik_index"].delete_one({"_id": claim["_id"]})).deleted_count if held else 0
        if kpj:
            unlinked = 0
            for doc_id in ([kpj_key(key, kpj)] if key is not None else []) + [legacy_kpj_id(kpj)]:
                reservation = await reg["kpj_numbers"].find_one({"_id": doc_id})
                if reservation is not None and reservation.get("stream_id") == registration_stream:
                    unlinked += (await reg["kpj_numbers"].replace_one({"_id": doc_id}, {"erased_at": datetime.now(UTC)})).modified_count
            cleared["registration/kpj_numbers"] = unlinked

        pu = db["profile-update"]
        cleared[f"profile-update/{PROFILES}"] = await blank_personal(pu[PROFILES], participant_id)
        deadlines = 0
        for session in sessions:
            deadlines += (await pu["session_deadlines"].delete_one({"_id": f"profile-update-{session}"})).deleted_count
        cleared["profile-update/session_deadlines"] = deadlines

        fact = ParticipantErased(
            participant_id=participant_id, requested_by=requested_by, reason=reason, erased_by=erased_by, erased_at=datetime.now(UTC),
            services=list(topics.SERVICES), cleared=cleared,
        )
        recorded = await AuditLog(audit_store(client, settings)).record(participant_id, fact)
    finally:
        await client.close()
    return {"participant_id": participant_id, "erased": {s: {"key": "erased"} for s in topics.SERVICES}, "cleared": cleared, "recorded": recorded.envelope.message_id}


@app.command("erase")
def erase_participant(
    participant_id: Annotated[str, typer.Argument(help="The participant reference (32 hex).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (the request or legal ground); recorded, no personal data.")] = None,
    requested_by: Annotated[str | None, typer.Option("--requested-by", help="Who asked (a DPO, a ticket reference); recorded, no personal data.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Accepted for older scripts; --reason and --requested-by are what make it deliberate.")] = False,
) -> None:
    """Erase a participant's personal data in every service, for good, and record who asked and why
    in the audit log (``jmo audit access``); the audit trail stays verifiable."""
    if not re.fullmatch(r"[0-9a-f]{32}", participant_id):
        typer.echo("participant_id must be 32 lower-case hex digits", err=True)
        raise typer.Exit(2)
    if not (reason and reason.strip()) or not (requested_by and requested_by.strip()):
        typer.echo("erasure cannot be undone and is recorded: give --reason and --requested-by", err=True)
        raise typer.Exit(2)
    try:
        fact_check = ParticipantErased(
            participant_id=participant_id, requested_by=requested_by.strip(), reason=reason.strip(), erased_by=who(), erased_at=datetime.now(UTC), services=list(topics.SERVICES),
        )
    except ValueError as e:  # too long, control characters: refused before anything is erased
        typer.echo(f"cannot record this erasure: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        done = asyncio.run(erase(ServiceSettings(), participant_id, reason=fact_check.reason, requested_by=fact_check.requested_by, erased_by=fact_check.erased_by))
    except MissingKey as e:  # refused before anything was erased: once the key is gone, the look-ups cannot be found
        typer.echo(f"nothing erased: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(done))
