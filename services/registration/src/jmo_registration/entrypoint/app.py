"""The registration service process: subscribers and wiring; the rules live in ``domain``."""

from __future__ import annotations

from jmo_contracts import Envelope, topics
from jmo_runtime import Service, ServiceSettings

from ..domain.registration import registration

NAME = "registration"


def build(settings: ServiceSettings, **overrides: object) -> Service:
    """The registration service: consumes its commands topic, publishes its events topic."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]

    async def on_command(envelope: Envelope) -> None:
        await service.commands(registration).handle(envelope)

    service.consume(topics.commands(NAME), on_command, "Commands from the mobile gateway: RegisterParticipant, ...")
    return service
