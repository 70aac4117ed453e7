"""Which handler failures wait for their cause to pass, and which are counted against a budget."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from jmo_contracts import Envelope, topics
from jmo_eventstore import InMemoryEventStore
from jmo_registries import RegistryError, RegistryUnavailable
from jmo_runtime.messaging import is_transient
from jmo_runtime.service import Service, Subscription
from jmo_runtime.settings import ServiceSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "transient"),
    [(AutoReconnect("x"), True), (ConnectionRefusedError(), True), (TimeoutError(), True), (ValueError("x"), False), (FileNotFoundError("model.dat"), False)],
)
def test_only_failures_that_pass_by_themselves_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
    assert is_transient(RegistryUnavailable("down")) and not is_transient(RegistryError("HTTP 400"))


@pytest.mark.parametrize(
    "payload",
    [{"participant_id": 12, "otp_id": None}, {"channel": ["sms"]}, {}, {"destination": {"nested": [1, 2]}}],
)
def test_an_old_version_the_upcaster_cannot_read_is_refused_not_raised(payload: dict[str, object]) -> None:
    import json

    from jmo_runtime.messaging import Refused, admit

    raw = json.dumps({"message_id": "a" * 32, "type": "OtpIssued", "schema_version": 1, "occurred_at": "2026-11-21T08:30:00Z",
                      "correlation_id": "b" * 32, "stream_id": "identity-" + "c" * 32, "payload": payload}).encode()
    refused = admit(raw, {})
    assert isinstance(refused, Refused) and refused.reason in ("UPCAST_FAILED", "INVALID_PAYLOAD")


@pytest.mark.parametrize("wait_ms", [500, 2000])
def test_a_services_consumers_long_poll_as_long_as_its_settings_say(wait_ms: int) -> None:
    service = Service("identity", ServiceSettings(consumer_fetch_max_wait_ms=wait_ms), store=InMemoryEventStore())

    async def handler(_envelope: Envelope) -> None:
        pass

    service.consume(Subscription(topics.commands("identity"), handler, "commands"))
    (subscriber,) = service.broker.subscribers
    assert subscriber._connection_args["fetch_max_wait_ms"] == wait_ms  # noqa: SLF001 - what each of its consumers is built with


def test_a_service_reads_all_its_topics_with_one_consumer_and_documents_each_topic_on_its_own() -> None:
    service = Service("identity", ServiceSettings(), store=InMemoryEventStore())

    async def handler(_envelope: Envelope) -> None:
        pass

    service.consume(
        Subscription(topics.commands("identity"), handler, "commands"),
        Subscription(topics.events("registration"), handler, "registrations", acts_on=["ParticipantRegistered"]),
    )
    (consumer,) = service.broker.subscribers
    assert set(consumer.topic_names_for_subscribe) == {topics.commands("identity"), topics.events("registration")}
    documented = {s.topic_names_for_subscribe[0]: s for s in service.documentation.subscribers}
    assert set(documented) == {topics.commands("identity"), topics.events("registration")}
    assert all(len(s.topic_names_for_subscribe) == 1 for s in service.documentation.subscribers)
    channels = service.specification().to_specification().to_jsonable()["channels"]
    assert {c["address"] for c in channels.values() if "Acted on: ParticipantRegistered" in c.get("description", "")} == {topics.events("registration")}


class _QuietConsumer:
    """A consumer with nothing to fetch: records the polls it is asked for."""

    def __init__(self) -> None:
        self.polls: list[dict[str, object]] = []

    async def getmany(self, **kwargs: object) -> dict[object, list[object]]:
        self.polls.append(kwargs)
        return {}


@pytest.mark.parametrize("wait_ms", [500, 3000])
async def test_a_consumer_that_finds_nothing_asks_again_at_once_instead_of_resting(wait_ms: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import faststream.kafka.subscriber.usecase as faststream_subscriber

    from jmo_runtime.messaging import PromptBatchSubscriber

    async def no_rest(_seconds: float) -> None:
        raise AssertionError("rested after an empty poll: a record arriving meanwhile would wait")

    monkeypatch.setattr(faststream_subscriber.anyio, "sleep", no_rest)  # what faststream's own batch loop rests with
    service = Service("identity", ServiceSettings(consumer_batch_wait_ms=wait_ms, consumer_batch_records=64), store=InMemoryEventStore())

    async def handler(_envelope: Envelope) -> None:
        pass

    service.consume(Subscription(topics.commands("identity"), handler, "commands"))
    (subscriber,) = service.broker.subscribers
    assert isinstance(subscriber, PromptBatchSubscriber)
    consumer = _QuietConsumer()
    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == ()
    assert consumer.polls == [{"timeout_ms": wait_ms, "max_records": 64}] * 2  # the poll itself waits, as long as the settings say
