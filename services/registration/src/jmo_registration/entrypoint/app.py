"""The registration service process: subscribers and wiring; the rules live in ``domain``.

Before each pure decision the application looks up what it needs (is the NIK already an active
account, the employer registry's answer, a reserved KPJ number) and hands it over as facts.
"""

from __future__ import annotations

from typing import Any

import structlog

from jmo_contracts import Envelope, topics
from jmo_contracts.common import Category
from jmo_contracts.identity import NikRejected, NikVerified, OtpVerified
from jmo_contracts.registration import ProvideEmploymentDetails, RecordContributionPayment, RegisterParticipant
from jmo_registries import EmbeddedEmployerRegistry, EmployerRegistry, HttpEmployerRegistry, RegistryUnavailable
from jmo_runtime import Service

from ..adapters.accounts import InMemoryKpjReservations, InMemoryNikIndex, KpjReservations, MongoKpjReservations, MongoNikIndex, NikIndex
from ..domain.registration import registration
from ..settings import RegistrationSettings

NAME = "registration"
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
    registry = employers or (HttpEmployerRegistry(settings.employer_registry_url, timeout=settings.employer_registry_timeout_seconds) if settings.employer_registry_url else EmbeddedEmployerRegistry())
    ports: dict[str, Any] = {}

    def accounts() -> tuple[NikIndex, KpjReservations]:
        if not ports:  # the store (and its database) exists only once the service has started
            if service.database is None:
                ports["nik"], ports["kpj"] = nik_index or InMemoryNikIndex(), kpj or InMemoryKpjReservations()
            else:
                ports["nik"] = nik_index or MongoNikIndex(service.database["nik_index"], settings.nik_key())
                ports["kpj"] = kpj or MongoKpjReservations(service.database["kpj_numbers"])
        return ports["nik"], ports["kpj"]

    def facts_for(envelope: Envelope) -> Any:
        async def look_up(state: Any, message: Any) -> dict[str, Any]:
            nik_index, kpj_numbers = accounts()
            if isinstance(message, RegisterParticipant):
                return {"nik_has_active_account": await nik_index.has_active_account(message.nik)}
            if isinstance(message, ProvideEmploymentDetails) and state.participant is not None and state.participant.category is Category.PU:
                try:
                    return {"employer_membership": await registry.membership(state.participant.nik)}
                except RegistryUnavailable:
                    return {"employer_membership": "UNAVAILABLE"}
            if isinstance(message, RecordContributionPayment):
                return {"kpj_number": await kpj_numbers.reserve(envelope.stream_id.removeprefix("registration-"), envelope.stream_id)}
            return {}

        return look_up

    async def apply(envelope: Envelope, stream_id: str, facts: Any) -> None:
        handled = await service.commands(registration).handle(envelope, stream_id=stream_id, facts=facts)
        for event in handled.events:
            if event.type == "AccountActivated":
                nik_index, _ = accounts()
                state = registration.fold(e.envelope.open() for e in await service.store.read_stream(stream_id))
                assert state.participant is not None
                await nik_index.record_active(state.participant.nik, stream_id)

    async def on_command(envelope: Envelope) -> None:
        await apply(envelope, envelope.stream_id, facts_for(envelope))

    async def on_identity_event(envelope: Envelope) -> None:
        event = envelope.open()
        if isinstance(event, NikVerified | NikRejected | OtpVerified):
            await apply(envelope, f"registration-{event.participant_id}", {"message_id": envelope.message_id})

    service.consume(topics.commands(NAME), on_command, "RegisterParticipant and ProvideEmploymentDetails from the gateway; RecordContributionPayment from the payment channel.")
    service.consume(topics.events("identity"), on_identity_event, "NikVerified / NikRejected and OtpVerified move a registration on (or stop it).")
    return service

