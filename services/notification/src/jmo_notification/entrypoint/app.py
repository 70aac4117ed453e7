"""The notification service process: OTPs and notices by email and SMS, once each (SPEC §7).

Consumes the sealed OTP delivery requests and the registration and profile-update events; the
delivery steps and their guarantees are in :mod:`jmo_notification.application.delivery`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.notification import NotificationFailed
from jmo_runtime import Service
from jmo_runtime.messaging import dlq_headers

from ..adapters.channels import Channel, HttpSmsChannel, SmtpChannel
from ..adapters.records import MemoryClaims, MemoryDirectory, MongoClaims, MongoDirectory
from ..application.delivery import Notifier
from ..settings import NotificationSettings

NAME = "notification"


def channels_from(settings: NotificationSettings) -> dict[str, Channel]:
    """The SMTP and SMS adapters the settings describe (nothing connects until a send)."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    api_key = settings.sms_api_key.get_secret_value() if settings.sms_api_key else None
    return {
        "email": SmtpChannel(settings.smtp_host, settings.smtp_port, sender=settings.smtp_sender, tls=settings.smtp_tls, username=settings.smtp_username,
                             password=password, timeout=settings.provider_timeout_seconds, message_id_domain=settings.smtp_message_id_domain),
        "sms": HttpSmsChannel(settings.sms_url, sender=settings.sms_sender, api_key=api_key, timeout=settings.provider_timeout_seconds),
    }


def build(
    settings: NotificationSettings,
    *,
    channels: Mapping[str, Channel] | None = None,
    clock: Callable[[], datetime] | None = None,
    **overrides: object,
) -> Service:
    """The notification service; ``channels`` replaces the SMTP / SMS adapters (tests)."""
    service = Service(NAME, settings, **overrides)  # type: ignore[arg-type]
    group = f"jmo-{NAME}"
    owner = new_id()  # this process, as the owner of its delivery claims
    built: list[Notifier] = []

    async def park(source: Envelope, topic: str, failed: NotificationFailed) -> None:
        headers = dlq_headers(
            source.kafka_headers(), reason="NOTIFICATION_FAILED", detail=f"{failed.reason_code}: {failed.reason}", source=settings.topic(topic), group_id=group,
        ) | {"jmo-notification-id": failed.notification_id}
        parked = await service.wire_form(source)  # the handler holds it opened: its DLQ copy is sealed again
        await service.broker.publish(parked.to_json(), topic=settings.topic(topics.dlq(topic)), key=source.stream_id.encode(), headers=headers)

    def notifier() -> Notifier:
        if not built:
            database = service.database
            built.append(Notifier(
                store=service.store,
                claims=MongoClaims(database["deliveries"]) if database is not None else MemoryClaims(),
                directory=MongoDirectory(database["contacts"], settings.directory_key()) if database is not None else MemoryDirectory(),
                channels=channels or channels_from(settings),
                park=park,
                delivery_key=settings.delivery_key(),
                delivery_key_id=settings.otp_delivery_key_id,
                owner=owner,
                lease=timedelta(seconds=settings.claim_lease_seconds),
                attempts=settings.delivery_attempts,
                backoff=settings.retry_initial_seconds,
                max_backoff=settings.retry_max_seconds,
                clock=clock,
            ))
        return built[0]

    async def open_notifier() -> None:
        notifier()  # built once the store is up, before any message is consumed

    async def close_channels() -> None:
        for channel in (built[0].channels.values() if built else ()):
            if (close := getattr(channel, "close", None)) is not None:
                await close()

    service.resource(open_notifier, close_channels)

    def on(topic: str) -> Callable[[Envelope], object]:
        async def handle(envelope: Envelope) -> None:
            await notifier().handle(envelope, topic)

        return handle

    service.consume(topics.OTP_DELIVERY, on(topics.OTP_DELIVERY), "Sealed OTP codes from identity: opened only to send them by email or SMS.")
    service.consume(topics.events("registration"), on(topics.events("registration")),
                    "ParticipantRegistered (contacts, 'pendaftaran diterima'), RegistrationRejected and AccountActivated (KPJ number) notices.")
    service.consume(topics.events("profile-update"), on(topics.events("profile-update")), "ProfileUpdated: the 'pengkinian data berhasil' notice and the new contacts.")
    return service
