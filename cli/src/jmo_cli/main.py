"""``jmo``: the gateway simulator, audit and ops commands of the JMO backend.

Configuration comes from the same environment variables as the services (KAFKA_BOOTSTRAP_SERVERS,
MONGODB_URI, JMO_TOPIC_PREFIX, JMO_DATABASE_PREFIX). On a secured Kafka each command acts as the
principal whose work it does, with that principal's password from JMO_KAFKA_PASSWORD_<PRINCIPAL>:
``gateway send`` as ``gateway`` (and ``payment-channel`` for a payment confirmation), ``dlq list`` as
``ops``, ``dlq replay`` as the producer of the topic it re-publishes to.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jmo_contracts import topics
from jmo_contracts.audit import AuditRead, ParticipantDataAccessed
from jmo_runtime import ServiceSettings

from . import asof
from . import audit as audit_ops
from .biometric import app as biometric_app
from .dlq import app as dlq_app
from .privacy import app as privacy_app
from .gateway import Gateway, command_envelope, upload_selfie
from .projections import PROJECTIONS
from .stores import open_stores
from .trail import AUDIT, open_audit_log, who

app = typer.Typer(help="JMO backend: gateway simulator, audit and ops.", no_args_is_help=True, add_completion=False)
gateway_app = typer.Typer(help="Act as the mobile gateway.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and check the event logs.", no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")
app.add_typer(audit_app, name="audit")
contracts_app = typer.Typer(help="The published contracts.", no_args_is_help=True)
dev_app = typer.Typer(help="Helpers for development with the embedded stack.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(contracts_app, name="contracts")
app.add_typer(biometric_app, name="biometric")
app.add_typer(dlq_app, name="dlq")
app.add_typer(privacy_app, name="privacy")
err = Console(stderr=True)
_PARTICIPANT = re.compile(r"[0-9a-f]{32}")

#: Events after which a journey waits for the participant (or is over).
PAUSES = {
    "CommandRejected", "OtpIssued", "OtpRejected", "ContributionAssessed", "ContributionPaymentRejected",
    "AccountActivated", "RegistrationRejected", "RegistrationExpired", "EmployerMembershipNotFound",
    # a matched selfie counts once the session recorded it (SelfieVerificationRecorded), not before
    "SelfieRejected", "SelfieVerificationRecorded", "ProfileUpdateStarted", "ParticipationDataConfirmed", "ContactDataSubmitted",
    "ContactChangeVerified", "PopulationDataSubmitted", "AdditionalDataSubmitted", "ProfileUpdated", "ProfileUpdateExpired", "ProfileUpdateCancelled",
}


def _print(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@gateway_app.command("send")
def gateway_send(
    command_type: Annotated[str, typer.Argument(help="e.g. RegisterParticipant")],
    data: Annotated[str, typer.Option("--data", help="The payload as JSON.")],
    correlation_id: Annotated[str | None, typer.Option(help="Continue a journey (32 hex).")] = None,
    stream: Annotated[str | None, typer.Option("--stream-id", help="Target stream, e.g. registration-<32 hex>; new if omitted.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to follow the journey's events.")] = 15.0,
    until: Annotated[list[str] | None, typer.Option("--until", help="Also stop at this event type (repeatable).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="SubmitSelfie: upload this JPEG/PNG to GridFS first and fill in blob_id, sha256, content_type, size_bytes.", exists=True, dir_okay=False)] = None,
) -> None:
    """Publish a command as the gateway would, then print (one JSON per line) every event with its
    correlation id until the journey pauses for input or WAIT seconds pass."""
    settings = ServiceSettings()
    try:
        payload = json.loads(data)
        if image is not None:
            payload |= asyncio.run(upload_selfie(settings.mongodb_uri, settings.blob_database(), image.read_bytes()))
        if command_type == "SubmitSelfie" and stream is None and "session_id" in payload:
            stream = f"biometric-{payload['session_id']}"  # the session's stream: one key, in order
        envelope = command_envelope(command_type, payload, correlation_id=correlation_id, stream=stream)
    except (ValueError, LookupError) as e:
        err.print(f"[red]cannot send {command_type}:[/red] {e}")
        raise typer.Exit(2) from None

    async def go() -> None:
        async with Gateway.from_env(settings.kafka_bootstrap_servers, topic_prefix=settings.topic_prefix) as gw:
            if image is not None:
                _print({"uploaded": str(image), **{k: payload[k] for k in ("blob_id", "sha256", "content_type", "size_bytes")}})
            await gw.send(envelope)
            _print({"sent": envelope.type, "message_id": envelope.message_id, "correlation_id": envelope.correlation_id, "stream_id": envelope.stream_id})
            async for event in gw.events(envelope.correlation_id, wait=wait):
                _print(event.model_dump(mode="json"))
                if event.type in PAUSES or event.type in (until or []):
                    return

    asyncio.run(go())


def _instant(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 instant with its UTC offset (``2026-03-03T10:00:00+07:00``, ``...Z``)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"{option}: not an ISO 8601 instant: {text!r}")
        raise typer.Exit(2) from None
    if value.tzinfo is None:
        err.print(f"{option}: give the UTC offset (…Z or …+07:00): {text!r} could be any of Indonesia's three time zones")
        raise typer.Exit(2)
    return value.astimezone(UTC)


def _readers(ref: str, events: list[tuple[str, audit_ops.RecordedEvent]]) -> list[str]:
    """The participants whose data a read of ``ref`` shows (the reference itself, or whom the stream's events name)."""
    if _PARTICIPANT.fullmatch(ref):
        return [ref]
    found = {ref.rsplit("-", 1)[1]} if ref.startswith(("registration-", "identity-")) else set()
    found |= {p for _, e in events if isinstance(p := e.envelope.payload.get("participant_id"), str) and _PARTICIPANT.fullmatch(p)}
    return sorted(found)


async def _record_reads(settings: ServiceSettings, participants: list[str], command: AuditRead, by: str | None, filters: dict[str, str]) -> None:
    """Record the read in the audit log before anything is shown (no record, no read)."""
    async with open_audit_log(settings) as log:
        for participant in participants:
            await log.record(participant, ParticipantDataAccessed(participant_id=participant, read_by=who(by), command=command, filters=filters, decrypted=settings.data_key is not None))


BY_HELP = "Who is reading, for the access trail (default: JMO_AUDITOR, else the OS user)."


@audit_app.command("history")
def audit_history(
    ref: Annotated[str, typer.Argument(help="A stream id (registration-<32 hex>) or a participant reference (32 hex).")],
    service: Annotated[str | None, typer.Option(help="Only this service's log.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="Only events that occurred at or after this ISO instant (with its UTC offset).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Only events that occurred at or before this ISO instant.")] = None,
    types: Annotated[list[str] | None, typer.Option("--type", help="Only events of this type (repeatable).")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="Also read every log whole for streams that name the participant (notifications); slow on a large log.")] = False,
    by: Annotated[str | None, typer.Option("--by", help=BY_HELP)] = None,
) -> None:
    """The ordered history, one JSON object per line. A participant's streams are found by key; the
    read is recorded in the audit log (``jmo audit access``) before anything is printed."""
    settings = ServiceSettings()
    start, end = _instant(since, "--from"), _instant(until, "--to")
    filters = {k: v for k, v in {"from": start and start.isoformat(), "to": end and end.isoformat(), "type": ",".join(types or []), "service": service, "scan": "yes" if scan else None, "ref": ref}.items() if v}

    async def go() -> list[tuple[str, audit_ops.RecordedEvent]]:
        async with open_stores(settings, service) as stores:
            events = await audit_ops.history(stores, ref, scan=scan, since=start, until=end, types=set(types or []))
        await _record_reads(settings, _readers(ref, events), AuditRead.HISTORY, by, filters)
        return events

    events = asyncio.run(go())
    for svc, e in events:
        _print(audit_ops.as_json(svc, e))
    if not events:
        err.print(f"no events for {ref}")
        raise typer.Exit(1)


@audit_app.command("state")
def audit_state(
    participant: Annotated[str, typer.Argument(help="The participant reference (32 hex).")],
    at: Annotated[str, typer.Option("--at", help="The instant, ISO 8601 with its UTC offset (2026-03-03T10:00:00+07:00).")],
    by: Annotated[str | None, typer.Option("--by", help=BY_HELP)] = None,
) -> None:
    """The participant's registration, identity, profile and pengkinian-data sessions (with their
    selfie checks) as they were at an instant, folded from their streams with the services' own
    deciders. One JSON object. The read is recorded in the audit log first."""
    if not _PARTICIPANT.fullmatch(participant):
        err.print("participant must be 32 lower-case hex digits")
        raise typer.Exit(2)
    instant = _instant(at, "--at")
    assert instant is not None
    settings = ServiceSettings()

    async def go() -> dict[str, object]:
        await _record_reads(settings, [participant], AuditRead.STATE, by, {"at": instant.isoformat()})
        async with open_stores(settings) as stores:
            return await asof.state_at(stores, participant, instant)

    state = asyncio.run(go())
    sys.stdout.write(json.dumps(state, ensure_ascii=False, indent=2) + "\n")
    if state["registration"]["events_now"] == 0:  # type: ignore[index]
        err.print(f"no registration for {participant}")
        raise typer.Exit(1)


@audit_app.command("access")
def audit_access(participant: Annotated[str, typer.Argument(help="The participant reference (32 hex).")]) -> None:
    """Every read of the participant's data through the audit tools, and their erasure, oldest first
    (one JSON object per line, from the audit log; holds no personal data, so this is not recorded)."""
    if not _PARTICIPANT.fullmatch(participant):
        err.print("participant must be 32 lower-case hex digits")
        raise typer.Exit(2)

    async def go() -> list[audit_ops.RecordedEvent]:
        async with open_audit_log(ServiceSettings()) as log:
            return await log.entries(participant)

    entries = asyncio.run(go())
    for e in entries:
        _print(audit_ops.as_json(AUDIT, e))
    if not entries:
        err.print(f"no recorded access to {participant}")
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(service: Annotated[str | None, typer.Option(help=f"Only this service's log ({AUDIT!r}: only the audit log).")] = None) -> None:
    """Check every hash chain and the global order of every service's log and of the audit log, side
    by side, with a progress bar per log (commits checked); exit 1 and name the streams if anything
    was altered."""
    settings = ServiceSettings()

    async def go() -> dict[str, list[audit_ops.IntegrityProblem]]:
        async with open_stores(settings, None if service in (None, AUDIT) else service) as stores, open_audit_log(settings) as log:
            logs: dict[str, audit_ops.MongoEventStore] = {} if service == AUDIT else dict(stores)
            if service in (None, AUDIT):
                logs[AUDIT] = log.store
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f} commits"), TimeElapsedColumn(), console=err, transient=True) as bar:
                return await audit_ops.verify(logs, bar)

    results = asyncio.run(go())
    broken = False
    for svc, problems in results.items():
        for p in problems:
            broken = True
            _print({"service": svc, "stream_id": p.stream_id, "commit": p.commit_id, "problem": p.problem})
        err.print(f"{svc}: {'[red]ALTERED[/red]' if problems else '[green]intact[/green]'}")
    if broken:
        raise typer.Exit(1)


@audit_app.command("rebuild")
def audit_rebuild(
    projection: Annotated[str, typer.Argument(help=f"One of: {', '.join(PROJECTIONS)}")],
    into: Annotated[str | None, typer.Option(help="Write this collection instead of the live read model (to compare the two).")] = None,
) -> None:
    """Drop a read model and rebuild it from the event logs, with a progress bar."""
    if projection not in PROJECTIONS:
        err.print(f"unknown projection {projection!r}; known: {', '.join(PROJECTIONS)}")
        raise typer.Exit(2)
    p = PROJECTIONS[projection]
    settings = ServiceSettings()
    if p.at_rest is not None and settings.data_key is None:  # it would fold the log's sealed fields as they are
        err.print(f"{p.name} holds personal data: set JMO_DATA_KEY as for the services to rebuild it")
        raise typer.Exit(2)

    async def go() -> int:
        async with open_stores(settings) as stores:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err) as bar:
                task = bar.add_task(f"rebuilding {p.name} from the {', '.join(p.sources)} logs", total=None)
                return await audit_ops.rebuild(stores, p, progress=lambda n: bar.advance(task, n), into=into)

    count = asyncio.run(go())
    err.print(f"{p.name}: {count} documents in {into or p.collection}")


@app.command("topics")
def list_topics() -> None:
    """Every topic of the system (with the configured prefix), one per line."""
    settings = ServiceSettings()
    for spec in topics.all_topics(settings.topic_prefix):
        typer.echo(spec.name)


@contracts_app.command("asyncapi")
def contracts_asyncapi(check: Annotated[bool, typer.Option("--check", help="Exit 1 if the committed document differs.")] = False) -> None:
    """Write (or check) contracts/asyncapi/jmo.asyncapi.json from the services' faststream apps."""
    from .asyncapi import DOCUMENT, render

    text = render()
    if check:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            err.print(f"[red]{DOCUMENT} is out of date[/red]: run `jmo contracts asyncapi`")
            raise typer.Exit(1)
        err.print(f"{DOCUMENT} is up to date")
        return
    DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
    DOCUMENT.write_text(text)
    err.print(f"wrote {DOCUMENT}")


@dev_app.command("identities")
def dev_identities(
    category: Annotated[str | None, typer.Option(help="PU lists only citizens an employer has enrolled.")] = None,
    count: Annotated[int, typer.Option(min=1, max=1000)] = 5,
) -> None:
    """Synthetic citizens of the embedded population registry, usable for registration (JSON array).

    Each has nik, full_name, birth_date, employer_registered (and kpj_number), photo (the path of
    the KTP photo, the reference face of the selfie check, for the few that have one; else null) and
    has_ktp_photo. Citizens with a photo come first. Synthetic data only.
    """
    from jmo_registries import identities

    if category is not None and category not in {"PU", "BPU", "PMI"}:
        err.print("category must be PU, BPU or PMI")
        raise typer.Exit(2)
    typer.echo(json.dumps(identities(category, count), ensure_ascii=False, indent=2, default=str))


@dev_app.command("inbox")
def dev_inbox(
    to: Annotated[str | None, typer.Option("--to", help="Only messages to this email address or phone number (E.164, e.g. +6281234567890).")] = None,
    last: Annotated[bool, typer.Option("--last", help="Only the most recent message.")] = False,
) -> None:
    """What the notification service delivered to the local sinks of ``make up`` (JSON, oldest first).

    Each message has to, channel (email / sms), subject (email only), body and received_at. This is
    the participant's own inbox of the embedded stack, so nothing is masked. Reads the file the sinks
    keep (``.local/state/inbox/messages.jsonl``, moved by JMO_DEVSTACK_HOME).
    """
    from jmo_devstack.paths import StackPaths
    from jmo_devstack.sinks import read_inbox

    path = StackPaths.discover().state / "inbox" / "messages.jsonl"
    messages = [{k: m.get(k) for k in ("to", "channel", "subject", "body", "received_at")} for m in read_inbox(path, to=to)]
    if last:
        if not messages:
            err.print(f"no message{' to ' + to if to else ''} in {path}")
            raise typer.Exit(1)
        typer.echo(json.dumps(messages[-1], ensure_ascii=False, indent=2))
        return
    typer.echo(json.dumps(messages, ensure_ascii=False, indent=2))
