"""The registration service process: subscribers and wiring; the rules live in ``domain``.

Before each pure decision the application looks up what it needs (is the NIK already an active
account, the employer registry's answer, a reserved KPJ number) and hands it over as facts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from jmo_contracts import Envelope, derived_id, topics
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import NikRejected, NikVerified, OtpVerified
from jmo_contracts.registration import ExpireRegistration, ProvideEmploymentDetails, RecordContributionPayment, RegisterParticipant, RetryEmployerMembershipCheck
from jmo_registries import CircuitBreaker, EmbeddedEmployerRegistry, EmployerRegistry, HttpEmployerRegistry, RegistryError, RegistryUnavailable
from jmo_runtime import Handled, Service, Unprocessable
from jmo_runtime.quota import quota_key
from jmo_runtime.schedule import Due, InMemorySchedule, MongoSchedule, Schedule

from ..adapters.accounts import InMemoryKpjReservations, InMemoryNikIndex, KpjReservations, MongoKpjReservations, MongoNikIndex, NikIndex
from ..domain.registration import CLOSED, Status, registration
from ..settings import RegistrationSettings

NAME = "registration"
#: After these a registration is no longer open (nothing left to expire).
FINISHED = {"AccountActivated", "RegistrationRejected", "RegistrationExpired"}
#: Stages at which the next decision may activate the account: only then is the NIK claimed (a late
#: payment to a closed registration must not take a NIK that nothing will ever give back).
ACTIVATING = frozenset({Status.PAYMENT, Status.EMPLOYMENT_DETAILS, Status.EMPLOYER_MEMBERSHIP})
#: After these the employer registry has answered (or the registration ended): no retry is planned.
MEMBERSHIP_SETTLED = FINISHED | {"EmployerMembershipFound", "EmployerMembershipNotFound"}
log = structlog.get_logger(__name__)


def build(
    settings: RegistrationSettings,
    *,
    employers: EmployerRegistry | None = None,
    nik_index: NikIndex | None = None,
    kpj: KpjReservations | None = None,
    **overrides: object,
) -> Service:
    """The registration service: commands from the gateway and the payment channel, and identity's outcomes."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    registry = employers or (HttpEmployerRegistry(
        settings.employer_registry_url, timeout=settings.employer_registry_timeout_seconds,
        breaker=CircuitBreaker("employer-registry", cooldown=settings.employer_registry_breaker_cooldown_seconds),
    ) if settings.employer_registry_url else EmbeddedEmployerRegistry())
    ports: dict[str, Any] = {}
    attempts = service.quota("registration_attempts", settings.registrations_per_nik_per_hour, timedelta(hours=1))
    timeout = timedelta(seconds=settings.registration_timeout_seconds)
    retry_step = timedelta(seconds=settings.employer_retry_step_seconds)

    def accounts() -> tuple[NikIndex, KpjReservations, Schedule]:
        if not ports:  # the store (and its database) exists only once the service has started
            if service.database is None:
                ports["nik"], ports["kpj"], ports["open"] = nik_index or InMemoryNikIndex(), kpj or InMemoryKpjReservations(), InMemorySchedule()
                ports["retries"] = InMemorySchedule()
            else:
                ports["nik"] = nik_index or MongoNikIndex(service.database["nik_index"], settings.nik_key())
                ports["kpj"] = kpj or MongoKpjReservations(service.database["kpj_numbers"], settings.nik_key())
                ports["open"] = MongoSchedule(service.database["open_registrations_by_time"])  # open ones, by registration time
                ports["retries"] = MongoSchedule(service.database["membership_retries"])
        return ports["nik"], ports["kpj"], ports["open"]

    def retries() -> Schedule:
        accounts()
        return ports["retries"]

    def envelope_stream(state: Any) -> str:
        return f"registration-{state.participant_id}"

    def facts_for(envelope: Envelope) -> Any:
        async def look_up(state: Any, message: Any) -> dict[str, Any]:
            nik_index, kpj_numbers, _ = accounts()
            if isinstance(message, RegisterParticipant):
                now, secret = datetime.now(UTC), settings.nik_key()
                destination = message.email.strip().lower() if message.otp_channel is OtpChannel.EMAIL else "".join(ch for ch in message.phone if ch.isdigit())[-10:]
                allowed = await attempts.take(quota_key(secret, "register-nik", message.nik), now) and await attempts.take(quota_key(secret, "register-destination", destination), now)
                return {"nik_has_active_account": await nik_index.has_active_account(message.nik), "too_many_attempts": not allowed}
            if isinstance(message, ProvideEmploymentDetails | RetryEmployerMembershipCheck) and state.participant is not None and state.participant.category is Category.PU:
                claimed = state.status not in ACTIVATING or await nik_index.claim(state.participant.nik, envelope_stream(state))
                try:
                    membership: Any = await registry.membership(state.participant.nik)
                except RegistryUnavailable:
                    membership = "UNAVAILABLE"
                except RegistryError as refused:  # this very request is refused: asking again cannot help
                    raise Unprocessable("REGISTRY_REFUSED", str(refused)) from None
                return {"employer_membership": membership, "membership_retry_step": retry_step, "nik_claimed_elsewhere": not claimed}
            if isinstance(message, RecordContributionPayment):
                stream = envelope.stream_id
                claimed = state.participant is None or state.status not in ACTIVATING or await nik_index.claim(state.participant.nik, stream)
                return {"kpj_number": await kpj_numbers.reserve(stream.removeprefix("registration-"), stream), "nik_claimed_elsewhere": not claimed}
            return {}

        return look_up

    async def apply(envelope: Envelope, stream_id: str, facts: Any) -> Handled:
        handled = await service.commands(registration).handle(envelope, stream_id=stream_id, facts=facts)
        _, _, open_registrations = accounts()
        if handled.participant_erased:  # nothing more is decided about them: stop watching the stream
            await open_registrations.clear(stream_id)
            await retries().clear(stream_id)
        for event in handled.events:
            if event.type == "ParticipantRegistered":
                await open_registrations.set(Due(stream_id, event.occurred_at, {"correlation_id": event.correlation_id}))
            elif event.type in FINISHED:
                await settle_finished(stream_id)
            if event.type == "EmployerMembershipCheckDeferred":
                planned = datetime.fromisoformat(event.payload["retry_at"])
                await retries().set(Due(stream_id, planned, {"attempt": str(event.payload["attempt"]), "correlation_id": event.correlation_id}))
            elif event.type in MEMBERSHIP_SETTLED:
                await retries().clear(stream_id)
        return handled

    async def settle_finished(stream_id: str) -> None:
        """A registration has ended: give up a NIK claim it made at the activating step unless it
        was activated, then stop watching it for expiry. In that order: a crash in between leaves it
        watched, and the next sweep settles it again (releasing is idempotent)."""
        nik_index, _, open_registrations = accounts()
        state = registration.fold(e.open() for e in await service.store.read_stream(stream_id))
        if state.status in CLOSED and state.participant is not None:
            await nik_index.release(state.participant.nik, stream_id)
        await open_registrations.clear(stream_id)

    async def expire_unfinished() -> None:
        _, _, open_registrations = accounts()
        for due in await open_registrations.due(datetime.now(UTC) - timeout):
            stream_id, registered_at, correlation_id = due.key, due.at, due.data["correlation_id"]
            # the same message id from every instance and every sweep: expiring twice is one decision
            expire = Envelope.wrap(
                ExpireRegistration(registered_at=registered_at), stream_id=stream_id, correlation_id=correlation_id,
                message_id=derived_id("expire", stream_id),
            )
            handled = await apply(expire, stream_id, {"registration_timeout": timeout})
            if not handled.events:  # it had ended already, and settling it was cut short
                await settle_finished(stream_id)

    async def retry_membership_checks() -> None:
        for due in await retries().due(datetime.now(UTC)):
            attempt = int(due.data["attempt"])
            # the same message id from every instance and every sweep: one retry per deferral
            retry = Envelope.wrap(
                RetryEmployerMembershipCheck(attempt=attempt), stream_id=due.key, correlation_id=due.data["correlation_id"],
                message_id=derived_id("retry", due.key, str(attempt)),
            )
            try:
                handled = await apply(retry, due.key, facts_for(retry))
            except Unprocessable as refused:  # no DLQ for a message nobody sent: stop retrying; the registration expires
                log.error("employer registry refuses the membership check; retries stopped", stream_id=due.key, reason=refused.reason, error=refused.detail)
                await retries().clear(due.key)
                continue
            if not handled.events:  # a stale retry (the registration moved on): nothing left to plan
                await retries().clear(due.key)

    async def on_command(envelope: Envelope) -> None:
        await apply(envelope, envelope.stream_id, facts_for(envelope))

    async def on_identity_event(envelope: Envelope) -> None:
        event = envelope.open()
        if isinstance(event, NikVerified | NikRejected | OtpVerified):
            await apply(envelope, f"registration-{event.participant_id}", {})

    service.every(settings.registration_sweep_seconds, expire_unfinished, name="expiry")
    service.every(settings.employer_retry_sweep_seconds, retry_membership_checks, name="employer-retry")
    service.consume(topics.commands(NAME), on_command, "RegisterParticipant and ProvideEmploymentDetails from the gateway.")
    service.consume(topics.PAYMENTS, on_command, "RecordContributionPayment from the payment channel (its own topic: the gateway cannot confirm a payment).")
    service.consume(topics.events("identity"), on_identity_event, "NikVerified / NikRejected and OtpVerified move a registration on (or stop it).")
    return service

