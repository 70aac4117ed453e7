"""Delivery once per notification: claims, retries, outcomes in the log, the DLQ (in memory, fake providers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from jmo_contracts import Envelope
from jmo_contracts.notification import NotificationFailed
from jmo_eventstore import InMemoryEventStore
from jmo_notification.adapters.channels import Outgoing, PermanentDeliveryError, TransientDeliveryError
from jmo_notification.adapters.records import MemoryClaims, MemoryDirectory
from jmo_notification.application.delivery import Notifier
from jmo_notification.domain.notices import plan

from .fixtures import EMAIL, KEY, KEY_ID, PHONE, activated, otp_request, registered, rejected

pytestmark = pytest.mark.component

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


class FakeChannel:
    """A provider that records what it was given and fails as told (a list of exceptions, then success)."""

    def __init__(self, name: str, failures: list[Exception] | None = None) -> None:
        self.name = name
        self.failures = list(failures or [])
        self.sent: list[Outgoing] = []
        self.calls = 0

    async def send(self, message: Outgoing) -> str | None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return f"id-{len(self.sent)}"


class World:
    def __init__(self, *, email: FakeChannel | None = None, sms: FakeChannel | None = None, owner: str = "instance-a", claims: MemoryClaims | None = None,
                 store: InMemoryEventStore | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store or InMemoryEventStore()
        self.claims = claims or MemoryClaims()
        self.directory = MemoryDirectory()
        self.email, self.sms = email or FakeChannel("email"), sms or FakeChannel("sms")
        self.parked: list[tuple[Envelope, str, NotificationFailed]] = []
        self.slept: list[float] = []
        self.now = NOW

        async def park(source: Envelope, topic: str, failed: NotificationFailed) -> None:
            self.parked.append((source, topic, failed))

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            self.now += timedelta(seconds=seconds)

        self.notifier = Notifier(
            store=self.store, claims=self.claims, directory=self.directory, channels={"email": self.email, "sms": self.sms}, park=park,
            delivery_key=KEY, delivery_key_id=KEY_ID, owner=owner, lease=timedelta(seconds=30), attempts=4, backoff=0.5, max_backoff=4,
            clock=clock or (lambda: self.now), sleep=sleep,
        )

    async def events(self) -> list[Envelope]:
        await self.store.sequence()
        return [r.envelope for r in await self.store.read_all()]


async def test_an_otp_is_opened_only_to_be_sent_and_the_log_records_a_masked_recipient() -> None:
    world = World()
    source = otp_request("048213", now=NOW)
    await world.notifier.handle(source, "jmo.identity.otp-delivery")
    [sent] = world.email.sent
    assert sent.to == EMAIL and "048213" in sent.body and sent.subject
    [event] = await world.events()
    assert event.type == "NotificationSent" and event.causation_id == source.message_id
    assert event.payload["recipient_masked"] != EMAIL and EMAIL not in event.to_json().decode() and "048213" not in event.to_json().decode()
    assert event.stream_id == f"notification-{sent.notification_id}"


async def test_a_redelivered_message_is_not_sent_again() -> None:
    world = World()
    source = otp_request(now=NOW)
    for _ in range(3):
        await world.notifier.handle(source, "t")
    assert len(world.email.sent) == 1 and len(await world.events()) == 1


async def test_a_second_instance_sharing_the_store_does_not_send_what_the_first_sent() -> None:
    first = World(owner="a")
    second = World(owner="b", claims=first.claims, store=first.store)
    source = otp_request(now=NOW)
    await first.notifier.handle(source, "t")
    await second.notifier.handle(source, "t")
    assert len(first.email.sent) + len(second.email.sent) == 1


async def test_a_claim_left_by_a_crashed_instance_is_taken_over_after_its_lease_with_the_same_idempotency_key() -> None:
    world = World(owner="restarted")
    source = otp_request(now=NOW)
    [notice_id] = [n.notification_id for n in plan(source.open(), source.message_id)]
    await world.claims.claim(notice_id, "crashed", NOW, timedelta(seconds=30))  # claimed, maybe sent, never recorded
    await world.notifier.handle(source, "t")
    assert sum(world.slept) >= 30  # waited for the other lease
    [sent] = world.email.sent
    assert sent.notification_id == notice_id


async def test_transient_failures_are_retried_with_growing_jittered_waits_then_succeed() -> None:
    world = World(sms=FakeChannel("sms", [TransientDeliveryError("HTTP 500")] * 2))
    await world.notifier.handle(otp_request(channel="sms", now=NOW), "t")
    assert world.sms.calls == 3 and len(world.sms.sent) == 1
    assert len(world.slept) == 2 and all(0 <= s <= 4 for s in world.slept)
    [event] = await world.events()
    assert (event.type, event.payload["attempts"]) == ("NotificationSent", 3)


async def test_retries_exhausted_end_in_notification_failed_and_the_dlq() -> None:
    world = World(sms=FakeChannel("sms", [TransientDeliveryError("HTTP 503")] * 10))
    source = otp_request(channel="sms", now=NOW)
    await world.notifier.handle(source, "jmo.identity.otp-delivery")
    [event] = await world.events()
    assert (event.type, event.payload["reason_code"], event.payload["attempts"]) == ("NotificationFailed", "PROVIDER_UNAVAILABLE", 4)
    [(parked, topic, failed)] = world.parked
    assert parked.message_id == source.message_id and topic == "jmo.identity.otp-delivery" and failed.reason_code == "PROVIDER_UNAVAILABLE"
    await world.notifier.handle(source, "jmo.identity.otp-delivery")  # redelivered: the outcome stands
    assert world.sms.calls == 4 and len(world.parked) == 1


async def test_a_permanent_refusal_is_not_retried() -> None:
    world = World(email=FakeChannel("email", [PermanentDeliveryError("SMTP server answered 550")]))
    await world.notifier.handle(otp_request(now=NOW), "t")
    [event] = await world.events()
    assert (event.payload["reason_code"], event.payload["attempts"], world.email.calls) == ("PROVIDER_REJECTED", 1, 1)


async def test_an_expired_code_is_not_sent() -> None:
    world = World()
    await world.notifier.handle(otp_request(now=NOW, expires_in=-1), "t")
    [event] = await world.events()
    assert event.payload["reason_code"] == "CODE_EXPIRED" and world.email.calls == 0 and len(world.parked) == 1


async def test_a_code_that_does_not_open_is_not_sent() -> None:
    world = World()
    await world.notifier.handle(otp_request(now=NOW, key=bytes(32)), "t")
    [event] = await world.events()
    assert event.payload["reason_code"] == "DECRYPTION_FAILED" and world.email.calls == 0


async def test_a_rejection_notice_goes_where_the_registration_said() -> None:
    world = World()
    await world.notifier.handle(registered("sms"), "registration-events")
    await world.notifier.handle(rejected(), "registration-events")
    assert [m.to for m in world.sms.sent] == [PHONE, PHONE]
    assert "tidak dapat dilanjutkan" in world.sms.sent[1].body


async def test_a_rejection_for_a_participant_the_directory_does_not_know_is_skipped() -> None:
    world = World()
    await world.notifier.handle(rejected(), "t")
    assert world.email.calls == world.sms.calls == 0 and await world.events() == []


async def test_the_activation_notice_tells_the_kpj_number() -> None:
    world = World()
    await world.notifier.handle(activated("sms"), "t")
    [sms] = world.sms.sent
    assert "26112100042" in sms.body


class CrashOnFirstSettle(MemoryClaims):
    """Claims whose first settle dies, as the process would in a crash right there."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False

    async def settle(self, notification_id: str, outcome: str, now: datetime) -> None:
        if not self.crashed:
            self.crashed = True
            raise ConnectionResetError("the process died here")
        await super().settle(notification_id, outcome, now)


async def test_a_crash_after_recording_the_outcome_and_before_settling_the_claim_sends_nothing_again() -> None:
    claims = CrashOnFirstSettle()
    crashed = World(owner="crashed", claims=claims)
    source = otp_request(now=NOW)
    with pytest.raises(ConnectionResetError):
        await crashed.notifier.handle(source, "t")  # sent and recorded; the claim never settled
    restarted = World(owner="restarted", claims=claims, store=crashed.store)
    await restarted.notifier.handle(source, "t")  # the redelivered message, after the crashed owner's lease
    assert len(crashed.email.sent) == 1 and restarted.email.sent == [] and restarted.email.calls == 0
    assert sum(restarted.slept) >= 30 and len(await restarted.events()) == 1
    await restarted.notifier.handle(source, "t")  # and the claim is settled now: nothing waits any more
    assert restarted.email.calls == 0
