"""The notification service process: OTPs and notices by email and SMS, once each (SPEC §7).

Consumes the sealed OTP delivery requests and the registration and profile-update events; each
subscriber hands the message to :class:`~jmo_notification.application.delivery.Notifier`, whose
module describes the delivery steps and their guarantees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from jmo_contracts import Envelope, new_id, topics
from jmo_runtime import Service, Subscription

from ..adapters.channels import Channel, channels_from
from ..adapters.dead_letters import DeadLetters
from ..adapters.records import MemoryClaims, MemoryDirectory, MongoClaims, MongoDirectory
from ..application.delivery import Notifier
from ..domain.notices import NOTIFYING
from ..settings import NotificationSettings

NAME = "notification"


def build(
    settings: NotificationSettings,
    *,
    channels: Mapping[str, Channel] | None = None,
    clock: Callable[[], datetime] | None = None,
    **overrides: object,
) -> Service:
    """The notification service; ``channels`` replaces the SMTP / SMS adapters, ``clock`` the UTC clock (tests)."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    dead_letters = DeadLetters(service.broker, settings.topic, group_id=f"jmo-{NAME}", wire_form=service.wire_form)
    owner = new_id()  # this process, as the owner of its delivery claims
    notifier: Notifier  # built once the store is up, before any message is consumed

    async def start() -> None:
        nonlocal notifier
        database = service.database
        notifier = Notifier(
            store=service.store,
            claims=MongoClaims(database["deliveries"]) if database is not None else MemoryClaims(),
            directory=MongoDirectory(database["contacts"], settings.directory_key()) if database is not None else MemoryDirectory(),
            channels=channels or channels_from(settings),  # clients are made here, not when building
            park=dead_letters.park,
            delivery_key=settings.delivery_key(),
            delivery_key_id=settings.otp_delivery_key_id,
            owner=owner,
            lease=timedelta(seconds=settings.claim_lease_seconds),
            attempts=settings.delivery_attempts,
            backoff=settings.retry_initial_seconds,
            max_backoff=settings.retry_max_seconds,
            clock=clock,
        )

    async def close_channels() -> None:
        for channel in notifier.channels.values():
            if (close := getattr(channel, "close", None)) is not None:
                await close()

    service.resource(start, close_channels)

    def on(topic: str) -> Callable[[Envelope], Awaitable[None]]:
        async def handle(envelope: Envelope) -> None:
            await notifier.handle(envelope, topic)

        return handle

    service.consume(
        Subscription(topics.OTP_DELIVERY, on(topics.OTP_DELIVERY), "Sealed OTP codes from identity: opened only to send them by email or SMS.", acts_on=NOTIFYING),
        Subscription(topics.events("registration"), on(topics.events("registration")), "ParticipantRegistered (contacts, 'pendaftaran diterima'), RegistrationRejected and AccountActivated (KPJ number) notices.", acts_on=NOTIFYING),
        Subscription(topics.events("profile-update"), on(topics.events("profile-update")), "ProfileUpdated: the 'pengkinian data berhasil' notice and the new contacts.", acts_on=NOTIFYING),
    )
    return service
