"""The identity service process: NIK checks with Dukcapil and OTPs; the rules live in ``domain``.

An OTP's plain code exists only here, in memory, between drawing it and sealing it for the
notification service (``application.otp_delivery``): the log keeps its keyed hash, an outbox keeps
it sealed until its delivery request is published, and Kafka carries it only sealed, on the
short-retention delivery topic.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import structlog

from jmo_contracts import Envelope, derived_id, topics
from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import NikDeferralReason, OtpPurpose, RequestOtp, SubmitOtp
from jmo_contracts.profile_update import ContactDataSubmitted, ProfileUpdateCancelled, ProfileUpdated, ProfileUpdateExpired
from jmo_contracts.registration import ParticipantRegistered
from jmo_registries import PopulationRegistry, RegistryError, RegistryUnavailable, population_registry
from jmo_registries.ports import CircuitOpen
from jmo_runtime import Service, Unprocessable
from jmo_runtime.quota import quota_key

from ..adapters.contact_changes import ContactChange, InMemoryContactChanges, MongoContactChanges
from ..adapters.outbox import MongoSealedCodes
from ..application.otp_delivery import Drawn, InMemorySealedCodes, OtpCodes
from ..adapters.crypto import codes_match
from ..domain.identity import UNAVAILABLE, identity, otp_destination
from ..settings import IdentitySettings

NAME = "identity"
log = structlog.get_logger(__name__)


def build(settings: IdentitySettings, *, registry: PopulationRegistry | None = None, **overrides: object) -> Service:
    """The identity service: reacts to ParticipantRegistered, takes RequestOtp / SubmitOtp."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    service.document_publishing(topics.OTP_DELIVERY, "OTP codes sealed for the notification service (AES-256-GCM); short retention.")
    dukcapil = registry or population_registry(settings.dukcapil_url, timeout=settings.dukcapil_timeout_seconds, breaker_cooldown=settings.dukcapil_breaker_cooldown_seconds)
    policy = settings.policy()
    hmac_key, delivery_key = settings.hmac_key(), settings.delivery_key()
    per_destination = service.quota("otp_destination_quota", settings.otp_codes_per_destination_per_hour, timedelta(hours=1))
    parts = SimpleNamespace()  # what needs the database, built once the service has started

    async def build_parts() -> None:
        database = service.database
        outbox = MongoSealedCodes(database["otp_outbox"]) if database is not None else InMemorySealedCodes()
        parts.codes = OtpCodes(
            code_length=policy.code_length, hmac_key=hmac_key, hmac_key_id=settings.otp_hmac_key_id, delivery_key=delivery_key,
            delivery_key_id=settings.otp_delivery_key_id, outbox=outbox, publish=lambda e: service.publish(topics.OTP_DELIVERY, e),
            clock=lambda: datetime.now(UTC),
        )
        parts.contact_changes = MongoContactChanges(database["contact_change_sessions"]) if database is not None else InMemoryContactChanges()

    async def nothing() -> None:
        return None

    service.resource(build_parts, nothing)

    async def tell_deferral(envelope: Envelope, stream_id: str, unavailable: RegistryUnavailable) -> None:
        reason = NikDeferralReason.CIRCUIT_OPEN if isinstance(unavailable, CircuitOpen) else NikDeferralReason.TIMEOUT if "timeout" in str(unavailable).lower() else NikDeferralReason.UNAVAILABLE
        cause = derived_id("nik-deferred", envelope.message_id)
        facts = {"nik_check": UNAVAILABLE, "deferral_reason": reason, "retry_in": timedelta(seconds=settings.dukcapil_retry_seconds)}
        try:
            await service.commands(identity).handle(envelope.model_copy(update={"message_id": cause}), stream_id=stream_id, facts=facts)
        except Exception:  # telling is best effort; the wait itself must not depend on it
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise
            log.exception("could not record the NIK check deferral", stream_id=stream_id)

    async def on_registration_event(envelope: Envelope) -> None:
        registered = envelope.open()
        if not isinstance(registered, ParticipantRegistered):
            return
        stream_id = f"identity-{registered.participant_id}"
        try:
            answer = await dukcapil.verify(registered.nik, registered.full_name, registered.birth_date)
        except RegistryUnavailable as unavailable:
            # the registration waits: the message is not acknowledged and comes back after a pause.
            # The wait is told once per outage, under a cause of its own (the registration's own
            # message id stays free for the real answer).
            log.warning("Dukcapil unavailable; the NIK check waits", stream_id=envelope.stream_id)
            await tell_deferral(envelope, stream_id, unavailable)
            await asyncio.sleep(settings.dukcapil_retry_seconds)
            raise
        except RegistryError as refused:
            # Dukcapil refuses this very request: asking again cannot help. Parked for an operator
            # (the registration expires meanwhile, and its participant is told so).
            raise Unprocessable("REGISTRY_REFUSED", str(refused)) from None
        drawn = Drawn()
        facts = {"nik_check": answer.name, "policy": policy, "otp": await parts.codes.draw(registered.participant_id, drawn)}
        handled = await service.commands(identity).handle(envelope, stream_id=stream_id, facts=facts)
        await parts.codes.deliver(handled.events, drawn)

    async def contact_change_allowed(participant_id: str, command: RequestOtp) -> bool:
        """The code would go to a contact this participant submitted in a live session of theirs."""
        destination = otp_destination(command, identity.initial_state)
        if destination is None or command.profile_update_session_id is None:
            return False
        waited, change = 0.0, await parts.contact_changes.find(command.profile_update_session_id)
        while change is None and waited < settings.contact_change_wait_seconds:  # its ContactDataSubmitted may still be on the way
            await asyncio.sleep(0.2)
            waited += 0.2
            change = await parts.contact_changes.find(command.profile_update_session_id)
        return change is not None and change.participant_id == participant_id and change.destinations.get(command.channel) == destination_hash(destination)

    def destination_hash(destination: str) -> str:
        return quota_key(hmac_key, "contact-change", destination)

    async def on_profile_update_event(envelope: Envelope) -> None:
        event = envelope.open()
        if isinstance(event, ContactDataSubmitted):
            new = {OtpChannel.SMS: event.phone, OtpChannel.EMAIL: event.email}
            destinations = {str(channel): destination_hash(new[channel]) for channel in event.verification_required}
            if destinations:
                await parts.contact_changes.open(ContactChange(event.session_id, event.participant_id, destinations))
        elif isinstance(event, ProfileUpdated | ProfileUpdateCancelled | ProfileUpdateExpired):
            await parts.contact_changes.close(event.session_id)

    async def on_command(envelope: Envelope) -> None:
        participant_id = envelope.stream_id.removeprefix("identity-")
        drawn = Drawn()

        async def look_up(state: Any, command: Any) -> dict[str, object]:
            facts: dict[str, object] = {"policy": policy}
            if isinstance(command, RequestOtp):
                # what refuses the request first, so a refused one neither uses up a destination's
                # quota (a forged contact change naming someone's phone) nor writes a code anywhere
                if command.purpose is OtpPurpose.CONTACT_CHANGE:
                    facts["contact_change_allowed"] = await contact_change_allowed(participant_id, command)
                destination = otp_destination(command, state)
                if destination is not None and facts.get("contact_change_allowed") is not False:
                    facts["destination_allowed"] = await per_destination.take(quota_key(hmac_key, "otp-destination", destination), datetime.now(UTC))
                if False not in (facts.get("contact_change_allowed"), facts.get("destination_allowed")):
                    facts["otp"] = await parts.codes.draw(participant_id, drawn)
            elif isinstance(command, SubmitOtp):
                target = state.codes.target(command.purpose, command.otp_id)
                facts["matches"] = target is not None and codes_match(hmac_key, participant_id, target.otp_id, command.code, target.code_hmac)
            return facts

        handled = await service.commands(identity).handle(envelope, facts=look_up)
        await parts.codes.deliver(handled.events, drawn)

    service.consume(topics.events("registration"), on_registration_event, "ParticipantRegistered starts the NIK check with Dukcapil and the first OTP.")
    service.consume(topics.commands(NAME), on_command, "RequestOtp (resend) and SubmitOtp from the mobile gateway.")
    service.consume(topics.events("profile-update"), on_profile_update_event, "ContactDataSubmitted opens a session's contact change (its codes go only to the contacts submitted there); ProfileUpdated / Cancelled / Expired close it.")
    return service
