"""The profile-update service process: subscribers and wiring. The rules live in ``domain``, the use
cases in :mod:`jmo_profile_update.application.sessions`.

It keeps the participant-profile read model (registration's events and its own ``ProfileUpdated``;
personal fields sealed under the participants' keys, see ``adapters.profiles``),
decides pengkinian-data sessions with the profile as a fact, and moves a session on when the
biometric service matched its selfie or identity verified a changed contact.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from jmo_contracts import Envelope, topics
from jmo_runtime import Service, Subscription
from jmo_runtime.schedule import Schedule

from ..adapters.profiles import COLLECTION, InMemoryProfileStore, MongoProfileStore, ProfileStore
from ..application.sessions import Sessions
from ..domain import profile
from ..domain.session import session
from ..settings import ProfileUpdateSettings

NAME = "profile-update"


def build(
    settings: ProfileUpdateSettings, *, profiles: ProfileStore | None = None, deadlines: Schedule | None = None,
    clock: Callable[[], datetime] | None = None, **overrides: object,
) -> Service:
    """The profile-update service: sessions from the gateway; registration, identity and biometric events.
    ``profiles``, ``deadlines`` and ``clock`` replace the read model, the deadline schedule and the UTC clock (tests)."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    session_deadlines = deadlines or service.schedule("session_deadlines")
    sessions: Sessions  # built once the store is up, before any message is consumed

    async def start() -> None:
        nonlocal sessions
        database = service.database
        # the read model is sealed with the event store's codec: the same per-participant keys
        read_model = profiles or (MongoProfileStore(database[COLLECTION], service.store.codec) if database is not None else InMemoryProfileStore(service.store.codec))
        sessions = Sessions(
            commands=service.commands(session, clock=clock), profiles=read_model, deadlines=session_deadlines,
            session_timeout=settings.session_timeout(), clock=clock,
        )

    service.resource(start)

    async def expire_inactive() -> None:
        await sessions.expire_inactive()

    async def on_command(envelope: Envelope) -> None:
        await sessions.take_step(envelope)

    async def on_registration_event(envelope: Envelope) -> None:
        await sessions.learn(envelope)

    async def on_identity_event(envelope: Envelope) -> None:
        await sessions.contact_verified(envelope)

    async def on_biometric_event(envelope: Envelope) -> None:
        await sessions.selfie_decided(envelope)

    service.every(settings.profile_sweep_seconds, expire_inactive, name="expiry")
    service.consume(
        Subscription(topics.commands(NAME), on_command, "The seven pengkinian-data steps from the gateway (StartProfileUpdate … ConfirmProfileUpdate)."),
        Subscription(
            topics.events("registration"), on_registration_event,
            "ParticipantRegistered / AccountActivated / RegistrationRejected / RegistrationExpired feed the participant-profile read model; "
            "a new profile keeps a ParticipantRegistered's personal fields sealed as they came (not opened).",
            acts_on=profile.SOURCES["registration"], keeps_sealed=True,
        ),
        Subscription(topics.events("identity"), on_identity_event, "OtpVerified (CONTACT_CHANGE) verifies a changed phone or email of a session.", acts_on=Sessions.VERIFICATIONS),
        Subscription(topics.events("biometric"), on_biometric_event, "SelfieMatched opens the data steps of a session; the last SelfieRejected ends it.", acts_on=Sessions.VERDICTS),
    )
    return service
