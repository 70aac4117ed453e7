"""The registration service process: wiring and subscribers. The use cases are in
``application.registrations``, the rules in ``domain``; each subscriber parses and makes one call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from jmo_contracts import Envelope, topics
from jmo_registries import EmployerRegistry, close_registry, employer_registry
from jmo_runtime import Service, Subscription

from ..adapters.accounts import InMemoryKpjReservations, InMemoryNikIndex, KpjReservations, MongoKpjReservations, MongoNikIndex, NikIndex
from ..application.registrations import Policy, Registrations
from ..domain.contributions import RateTables
from ..domain.registration import registration
from ..settings import RegistrationSettings

NAME = "registration"


def build(
    settings: RegistrationSettings,
    *,
    employers: EmployerRegistry | None = None,
    nik_index: NikIndex | None = None,
    kpj: KpjReservations | None = None,
    clock: Callable[[], datetime] | None = None,
    **overrides: object,
) -> Service:
    """The registration service: commands from the gateway and the payment channel, and identity's
    outcomes. ``employers``, ``nik_index`` and ``kpj`` replace the adapters built from ``settings``;
    ``clock`` (UTC now by default) dates decisions and drives expiry and retries."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    now = clock or (lambda: datetime.now(UTC))
    registry = employers or employer_registry(
        settings.employer_registry_url, timeout=settings.employer_registry_timeout_seconds, breaker_cooldown=settings.employer_registry_breaker_cooldown_seconds,
    )
    attempts = service.quota("registration_attempts", settings.registrations_per_nik_per_hour, timedelta(hours=1))
    open_registrations = service.schedule("open_registrations_by_time")  # open ones, by registration time
    retries = service.schedule("membership_retries")
    policy = Policy(
        nik_key=settings.nik_key(), timeout=timedelta(seconds=settings.registration_timeout_seconds),
        retry_step=timedelta(seconds=settings.employer_retry_step_seconds), rate_tables=RateTables.packaged(),
    )
    started = SimpleNamespace()  # what needs the store and the database, built once the service has started

    async def start() -> None:
        database = service.database
        started.registrations = Registrations(
            decisions=service.commands(registration, clock=now), store=service.store,
            nik_index=nik_index or (MongoNikIndex(database["nik_index"], policy.nik_key) if database is not None else InMemoryNikIndex()),
            kpj_numbers=kpj or (MongoKpjReservations(database["kpj_numbers"], policy.nik_key) if database is not None else InMemoryKpjReservations()),
            employers=registry, attempts=attempts, open_registrations=open_registrations, retries=retries, policy=policy, clock=now,
        )

    async def stop() -> None:
        if employers is None:  # the one built here (a given one is its owner's to close)
            await close_registry(registry)

    service.resource(start, stop)

    async def expire_unfinished() -> None:
        await started.registrations.expire_unfinished()

    async def retry_membership_checks() -> None:
        await started.registrations.retry_membership_checks()

    async def on_command(envelope: Envelope) -> None:
        await started.registrations.decide(envelope)

    async def on_identity_event(envelope: Envelope) -> None:
        await started.registrations.follow(envelope)

    service.every(settings.registration_sweep_seconds, expire_unfinished, name="expiry")
    service.every(settings.employer_retry_sweep_seconds, retry_membership_checks, name="employer-retry")
    service.consume(
        Subscription(topics.commands(NAME), on_command, "RegisterParticipant and ProvideEmploymentDetails from the gateway."),
        Subscription(topics.PAYMENTS, on_command, "RecordContributionPayment from the payment channel (its own topic: the gateway cannot confirm a payment)."),
        Subscription(topics.events("identity"), on_identity_event, "NikVerified / NikRejected and OtpVerified move a registration on (or stop it).", acts_on=Registrations.FOLLOWS),
    )
    return service
