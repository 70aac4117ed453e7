"""The profile-update service process: subscribers and wiring; the rules live in ``domain``.

It keeps the participant-profile read model (registration's events and its own ``ProfileUpdated``;
personal fields sealed under the participants' keys, see ``adapters.profiles``),
decides pengkinian-data sessions with the profile as a fact, and moves a session on when the
biometric service matched its selfie or identity verified a changed contact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from jmo_contracts import Envelope, derived_id, topics
from jmo_contracts.biometric import SelfieMatched, SelfieRejected
from jmo_contracts.identity import OtpVerified
from jmo_contracts.profile_update import ExpireProfileUpdate
from jmo_runtime import Handled, Service
from jmo_runtime.schedule import Due, InMemorySchedule, MongoSchedule, Schedule

from ..adapters.profiles import COLLECTION, InMemoryProfileStore, MongoProfileStore, ProfileStore
from ..domain.session import CLOSED, session
from ..settings import ProfileUpdateSettings

NAME = "profile-update"
FINISHED = {"ProfileUpdated", "ProfileUpdateCancelled", "ProfileUpdateExpired"}
log = structlog.get_logger(__name__)


def session_stream(session_id: str) -> str:
    return f"profile-update-{session_id}"


def deadline(stream_id: str, participant_id: str, session_id: str, expires_at: datetime, correlation_id: str) -> Due:
    """When an open session expires, with what the expiry command needs."""
    return Due(stream_id, expires_at, {"participant_id": participant_id, "session_id": session_id, "correlation_id": correlation_id})


def build(settings: ProfileUpdateSettings, *, profiles: ProfileStore | None = None, deadlines: Schedule | None = None, **overrides: object) -> Service:
    """The profile-update service: sessions from the gateway; registration, identity and biometric events."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    ports: dict[str, Any] = {}
    timeout = settings.session_timeout()

    def stores() -> tuple[ProfileStore, Schedule]:
        if not ports:  # the database exists only once the service has started
            # the read model is sealed with the event store's codec: the same per-participant keys
            if service.database is None:
                ports["profiles"], ports["deadlines"] = profiles or InMemoryProfileStore(service.store.codec), deadlines or InMemorySchedule()
            else:
                ports["profiles"] = profiles or MongoProfileStore(service.database[COLLECTION], service.store.codec)
                ports["deadlines"] = deadlines or MongoSchedule(service.database["session_deadlines"])
        return ports["profiles"], ports["deadlines"]

    def facts_for(envelope: Envelope) -> Any:
        async def look_up(state: Any, message: Any) -> dict[str, Any]:
            participant = getattr(message, "participant_id", None)
            profile = await stores()[0].get(participant) if participant else None
            return {"profile": profile, "session_timeout": timeout}

        return look_up

    async def follow_up(handled: Handled) -> None:
        """Keep the deadlines and the read model in step with what was decided (also on redelivery,
        so a crash between the append and these writes is repaired by the next delivery)."""
        profile_store, session_deadlines = stores()
        for event in handled.events:
            if event.type == "ProfileUpdated":
                await profile_store.apply(event)
        if handled.participant_erased or any(e.type in FINISHED for e in handled.events):
            await session_deadlines.clear(handled.stream_id)
        elif deadlines_set := [e for e in handled.events if e.payload.get("expires_at")]:
            last = deadlines_set[-1]
            p = last.payload
            await session_deadlines.set(deadline(handled.stream_id, p["participant_id"], p["session_id"], datetime.fromisoformat(p["expires_at"]), last.correlation_id))

    async def apply(envelope: Envelope, stream_id: str) -> None:
        await follow_up(await service.commands(session).handle(envelope, stream_id=stream_id, facts=facts_for(envelope)))

    async def on_command(envelope: Envelope) -> None:
        command = envelope.open()
        stream_id = session_stream(command.session_id) if hasattr(command, "session_id") else envelope.stream_id
        await apply(envelope, stream_id)

    async def on_registration_event(envelope: Envelope) -> None:
        await stores()[0].apply(envelope)

    async def on_identity_event(envelope: Envelope) -> None:
        event = envelope.open()
        if isinstance(event, OtpVerified) and event.profile_update_session_id:
            await apply(envelope, session_stream(event.profile_update_session_id))

    async def on_biometric_event(envelope: Envelope) -> None:
        event = envelope.open()
        if isinstance(event, SelfieMatched | SelfieRejected):
            await apply(envelope, session_stream(event.session_id))

    async def expire_inactive() -> None:
        _, session_deadlines = stores()
        for due in await session_deadlines.due(datetime.now(UTC)):
            # one message id per deadline: every instance and every sweep asks once for the same expiry
            message_id = derived_id("expire", due.key, due.at.isoformat())
            command = ExpireProfileUpdate(participant_id=due.data["participant_id"], session_id=due.data["session_id"])
            expire = Envelope.wrap(command, stream_id=due.key, correlation_id=due.data["correlation_id"], message_id=message_id)
            handled = await service.commands(session).handle(expire, facts={"session_timeout": timeout})
            await follow_up(handled)
            if not handled.events:  # finished meanwhile, or its deadline moved and the record missed it
                state = session.fold(e.open() for e in await service.store.read_stream(due.key))
                if state.step in CLOSED or state.expires_at is None:
                    await session_deadlines.clear(due.key)
                elif state.expires_at != due.at:
                    await session_deadlines.set(Due(due.key, state.expires_at, due.data))

    service.every(settings.profile_sweep_seconds, expire_inactive, name="expiry")
    service.consume(topics.commands(NAME), on_command, "The seven pengkinian-data steps from the gateway (StartProfileUpdate … ConfirmProfileUpdate).")
    service.consume(topics.events("registration"), on_registration_event, "ParticipantRegistered / AccountActivated / RegistrationRejected / RegistrationExpired feed the participant-profile read model.")
    service.consume(topics.events("identity"), on_identity_event, "OtpVerified (CONTACT_CHANGE) verifies a changed phone or email of a session.")
    service.consume(topics.events("biometric"), on_biometric_event, "SelfieMatched opens the data steps of a session; the last SelfieRejected ends it.")
    return service
