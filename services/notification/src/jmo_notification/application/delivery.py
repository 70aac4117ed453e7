"""Delivering notices exactly once as the participant sees it.

For each notice a message calls for (see :func:`jmo_notification.domain.notices.plan`):

1. **claim** ``notification_id`` in the store (insert of ``_id``): the first claimant sends; a
   notification whose outcome is recorded is never sent again (a redelivered message, a restart,
   a second instance); a claim held by another instance waits for its lease, then is taken over;
2. **send**, retrying transient provider failures with exponential backoff and full jitter; an OTP
   is opened (decrypted) only here, immediately before rendering, and checked for expiry first;
3. **record** ``NotificationSent`` or ``NotificationFailed`` in the event log (stream
   ``notification-<id>``, store cause = ``notification_id``, envelope causation = source message);
   a failure also parks the source message in its topic's DLQ;
4. **settle** the claim; only then does the caller acknowledge the Kafka message.

A crash between 2 and 3 leaves a claim without outcome: the redelivered message takes it over and
sends again with the same provider idempotency key (SMTP ``Message-ID``, SMS ``Idempotency-Key``),
which the provider (and the local sinks) use to keep one message. A crash between 3 and 4 leaves a
claim whose outcome is in the log: whoever takes it over finds the outcome there, settles the claim
and sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from jmo_contracts import Envelope, reply
from jmo_contracts.notification import NotificationFailed, NotificationFailure, NotificationSent
from jmo_eventstore import ConcurrencyConflict, EventStore
from jmo_runtime.privacy import mask
from jmo_runtime.sealing import SealedCodeError, open_code

from ..adapters.channels import Channel, Outgoing, PermanentDeliveryError, TransientDeliveryError
from ..adapters.records import Claim, Claims, Directory
from ..domain.notices import Notice, contact_from, plan, valid_recipient
from ..adapters.rendering import TemplateError, local_time, render

log = structlog.get_logger(__name__)

#: Parks a source message whose notification failed: (source envelope, topic it came from, the failure).
Parker = Callable[[Envelope, str, NotificationFailed], Awaitable[None]]


class _Failed(Exception):
    def __init__(self, code: NotificationFailure, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Notifier:
    """Turns consumed messages into delivered notices (see the module docstring for the steps)."""

    def __init__(
        self,
        *,
        store: EventStore,
        claims: Claims,
        directory: Directory,
        channels: Mapping[str, Channel],
        park: Parker,
        delivery_key: bytes,
        delivery_key_id: str,
        owner: str,
        lease: timedelta = timedelta(seconds=60),
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store, self.claims, self.directory, self.channels, self.park = store, claims, directory, channels, park
        self._key, self._key_id, self.owner, self.lease = delivery_key, delivery_key_id, owner, lease
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep

    async def handle(self, source: Envelope, topic: str) -> None:
        """Learn contacts from ``source``, then deliver every notice it calls for."""
        message = source.open()
        if (contact := contact_from(message)) is not None:
            await self.directory.remember(contact, self.clock())
        for notice in plan(message, source.message_id):
            await self.deliver(source, topic, notice)

    async def deliver(self, source: Envelope, topic: str, notice: Notice) -> None:
        nid = notice.notification_id
        channel, recipient = notice.channel, notice.recipient
        if recipient is None:
            contact = await self.directory.find(notice.participant_id)
            if contact is None:
                # Registration events of one participant share a partition, so ParticipantRegistered
                # has been seen before a later notice unless it predates this service's data.
                log.warning("no contact known for the participant; notice not sent", template=notice.template, notification_id=nid, participant_id=notice.participant_id)
                return
            channel = channel or contact.channel
            recipient = contact.address(channel)
        assert channel is not None
        if not await self._claim(nid):
            log.info("notification already delivered; duplicate suppressed", notification_id=nid, template=notice.template, source_message_id=source.message_id)
            return
        attempts = 0

        async def attempt() -> str | None:
            nonlocal attempts
            attempts += 1
            return await self._send_once(notice, channel, recipient or "")

        try:
            if not recipient or not valid_recipient(channel, recipient):
                raise _Failed(NotificationFailure.INVALID_RECIPIENT, f"no valid {channel} recipient")
            provider_id = await self._with_retries(attempt, notice.template)
        except _Failed as failed:
            event = NotificationFailed(
                notification_id=nid, participant_id=notice.participant_id, channel=channel, recipient_masked=mask(recipient or ""),
                template=notice.template, source_message_id=source.message_id, source_type=source.type,
                reason_code=failed.code, reason=failed.reason, attempts=max(attempts, 1),
            )
            await self._record(source, nid, event)
            await self.park(source, topic, event)
            await self.claims.settle(nid, "failed", self.clock())
            log.warning("notification failed", notification_id=nid, template=notice.template, channel=channel, recipient_masked=event.recipient_masked, reason_code=str(failed.code), attempts=event.attempts)
            return
        sent = NotificationSent(
            notification_id=nid, participant_id=notice.participant_id, channel=channel, recipient_masked=mask(recipient),
            template=notice.template, source_message_id=source.message_id, source_type=source.type, provider_message_id=provider_id, attempts=attempts,
        )
        await self._record(source, nid, sent)
        await self.claims.settle(nid, "sent", self.clock())
        log.info("notification sent", notification_id=nid, template=notice.template, channel=channel, recipient_masked=sent.recipient_masked, attempts=attempts)

    async def _claim(self, nid: str) -> bool:
        """True when this instance is to send ``nid``; False when its outcome is already recorded."""
        while True:
            result = await self.claims.claim(nid, self.owner, self.clock(), self.lease)
            if result.claim is Claim.DONE:
                return False
            if result.claim is not Claim.BUSY:
                if result.claim is Claim.TAKEN_OVER:
                    if (outcome := await self._recorded_outcome(nid)) is not None:
                        # the last owner recorded the outcome and died before settling: settle it now, send nothing
                        await self.claims.settle(nid, outcome, self.clock())
                        log.info("delivery claim taken over; its outcome was recorded already, nothing sent", notification_id=nid)
                        return False
                    log.info("delivery claim taken over; resending with the same idempotency key", notification_id=nid)
                return True
            assert result.retry_at is not None
            await self.sleep(max(0.05, min(1.0, (result.retry_at - self.clock()).total_seconds())))

    async def _with_retries(self, attempt: Callable[[], Awaitable[str | None]], template: str) -> str | None:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("delivery attempt failed; retrying", template=template, attempt=state.attempt_number, reason=getattr(error, "reason", "?"))

        try:
            async for trial in AsyncRetrying(
                retry=retry_if_exception_type(TransientDeliveryError),
                stop=stop_after_attempt(self.attempts),
                wait=wait_random_exponential(multiplier=self.backoff, max=self.max_backoff),
                sleep=self.sleep,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with trial:
                    return await attempt()
        except TransientDeliveryError as e:
            raise _Failed(NotificationFailure.PROVIDER_UNAVAILABLE, f"{e.reason}; {self.attempts} attempts") from None
        except PermanentDeliveryError as e:
            raise _Failed(NotificationFailure.PROVIDER_REJECTED, e.reason) from None
        raise AssertionError("unreachable")

    async def _send_once(self, notice: Notice, channel: str, recipient: str) -> str | None:
        context = dict(notice.context)
        if notice.otp is not None:
            now = self.clock()
            if notice.otp.expires_at <= now:
                raise _Failed(NotificationFailure.CODE_EXPIRED, "the code expired before it could be sent")
            if notice.otp.key_id != self._key_id:
                raise _Failed(NotificationFailure.DECRYPTION_FAILED, f"code sealed under unknown key id {notice.otp.key_id!r}")
            try:
                context["code"] = open_code(self._key, notice.otp.otp_id, notice.otp.ciphertext)  # opened only now
            except SealedCodeError:
                raise _Failed(NotificationFailure.DECRYPTION_FAILED, "sealed code could not be opened") from None
            context["expires_at_local"] = local_time(notice.otp.expires_at)
        try:
            text = render(notice.template, channel, context)
        except TemplateError as e:
            raise _Failed(NotificationFailure.TEMPLATE_ERROR, str(e)) from None
        finally:
            context.pop("code", None)
        return await self.channels[channel].send(Outgoing(notice.notification_id, recipient, text.subject, text.body))

    async def _recorded_outcome(self, nid: str) -> str | None:
        """``"sent"`` or ``"failed"`` when the log holds the outcome of ``nid`` (one read by primary key)."""
        recorded = await self.store.read_stream(f"notification-{nid}")
        if not recorded:
            return None
        return "sent" if recorded[0].envelope.type == "NotificationSent" else "failed"

    async def _record(self, source: Envelope, nid: str, event: NotificationSent | NotificationFailed) -> None:
        stream = f"notification-{nid}"
        envelope = reply(source, event, stream_id=stream, occurred_at=self.clock())
        try:
            await self.store.append(stream, 0, [envelope], cause_id=nid)
        except ConcurrencyConflict:
            pass  # an outcome of this notification is already in the log
