"""The identity service process: wiring and subscribers. The use cases are in
``application.verification`` (and code delivery in ``application.otp_delivery``), the rules in
``domain``; each subscriber parses and makes one call.

An OTP's plain code exists only in memory, between drawing it and sealing it for the notification
service (``application.otp_delivery``): the log keeps its keyed hash, an outbox beside the log keeps it sealed
(written with the decision that issues it) until its delivery request is published, and Kafka carries it only sealed, on the short-retention
delivery topic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from jmo_contracts import Envelope, topics
from jmo_registries import PopulationRegistry, close_registry, population_registry
from jmo_runtime import Service, Subscription

from ..adapters.contact_changes import InMemoryContactChanges, MongoContactChanges
from ..adapters.outbox import StoreSealedCodes
from ..application.otp_delivery import OtpCodes
from ..application.verification import ContactChangeSessions, NikChecks, OtpRequests
from ..domain.identity import identity
from ..settings import IdentitySettings

NAME = "identity"


def build(settings: IdentitySettings, *, registry: PopulationRegistry | None = None, clock: Callable[[], datetime] | None = None, **overrides: object) -> Service:
    """The identity service: reacts to ParticipantRegistered, takes RequestOtp / SubmitOtp.
    ``registry`` replaces the Dukcapil client built from ``settings``; ``clock`` (UTC now by
    default) dates decisions, quotas and the outbox."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    service.document_publishing(topics.OTP_DELIVERY, "OTP codes sealed for the notification service (AES-256-GCM); short retention.")
    now = clock or (lambda: datetime.now(UTC))
    dukcapil = registry or population_registry(settings.dukcapil_url, timeout=settings.dukcapil_timeout_seconds, breaker_cooldown=settings.dukcapil_breaker_cooldown_seconds)
    policy = settings.policy()
    hmac_key, delivery_key = settings.hmac_key(), settings.delivery_key()
    per_destination = service.quota("otp_destination_quota", settings.otp_codes_per_destination_per_hour, timedelta(hours=1))
    started = SimpleNamespace()  # what needs the store and the database, built once the service has started

    async def start() -> None:
        database = service.database
        decisions = service.commands(identity, clock=now)
        # beside the log; "otp_outbox" holds what an earlier version kept there (roll-out)
        started.outbox = StoreSealedCodes(
            service.store, legacy=database["otp_outbox"] if database is not None else None, drop_interval=settings.otp_outbox_drop_interval_ms / 1000
        )
        await started.outbox.ensure_indexes()
        codes = OtpCodes(
            code_length=policy.code_length, hmac_key=hmac_key, hmac_key_id=settings.otp_hmac_key_id, delivery_key=delivery_key,
            delivery_key_id=settings.otp_delivery_key_id, outbox=started.outbox, publish=lambda e: service.publish(topics.OTP_DELIVERY, e), clock=now,
        )
        started.sessions = ContactChangeSessions(
            changes=MongoContactChanges(database["contact_change_sessions"]) if database is not None else InMemoryContactChanges(),
            hmac_key=hmac_key, wait_seconds=settings.contact_change_wait_seconds,
        )
        started.nik_checks = NikChecks(decisions=decisions, registry=dukcapil, codes=codes, policy=policy, retry_in=timedelta(seconds=settings.dukcapil_retry_seconds))
        started.otp_requests = OtpRequests(decisions=decisions, codes=codes, policy=policy, hmac_key=hmac_key, per_destination=per_destination, sessions=started.sessions, clock=now)

    async def stop() -> None:
        outbox = getattr(started, "outbox", None)  # None when the service stops before it started
        if outbox is not None:
            await outbox.close()  # the codes published last are deleted, not left to a redelivery
        if registry is None:  # the one built here (a given one is its owner's to close)
            await close_registry(dukcapil)

    service.resource(start, stop)

    async def on_registration_event(envelope: Envelope) -> None:
        await started.nik_checks.check(envelope)

    async def on_command(envelope: Envelope) -> None:
        await started.otp_requests.handle(envelope)

    async def on_profile_update_event(envelope: Envelope) -> None:
        await started.sessions.follow(envelope)

    service.consume(
        Subscription(topics.events("registration"), on_registration_event, "ParticipantRegistered starts the NIK check with Dukcapil and the first OTP.", acts_on=NikChecks.STARTED_BY),
        Subscription(topics.commands(NAME), on_command, "RequestOtp (resend) and SubmitOtp from the mobile gateway."),
        Subscription(topics.events("profile-update"), on_profile_update_event, "ContactDataSubmitted opens a session's contact change (its codes go only to the contacts submitted there); ProfileUpdated / Cancelled / Expired close it.", acts_on=ContactChangeSessions.FOLLOWS),
    )
    return service
