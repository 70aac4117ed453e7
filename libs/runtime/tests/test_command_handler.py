"""The generic command handler over the in-memory store, given / when / then."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from jmo_contracts import Command, Envelope, Event, Message, new_id, stream_id
from jmo_contracts.registration import ParticipantRegistered, RegisterParticipant
from jmo_eventstore import InMemoryEventStore
from jmo_runtime import CommandHandler, Context, Decider, Rejection

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Count:
    registered: int = 0


def decide(command: Command, state: Count, context: Context) -> Sequence[Event]:
    assert isinstance(command, RegisterParticipant)
    if command.full_name == "REFUSE":
        raise Rejection("TEST_REFUSAL", "refused on purpose")
    return [ParticipantRegistered(participant_id="ab" * 16, category=command.category, nik=command.nik, full_name=f"{command.full_name} #{state.registered + 1}", email=command.email, phone=command.phone, otp_channel=command.otp_channel, birth_date="1990-08-05", gender="F")]


def evolve(state: Count, event: Message) -> Count:
    return Count(state.registered + 1) if isinstance(event, ParticipantRegistered) else state


counter = Decider(initial_state=Count(), decide=decide, evolve=evolve)


def a_command(stream: str, name: str = "SITI") -> Envelope:
    body = RegisterParticipant(category="BPU", nik="3201014508900001", full_name=name, email="s@example.com", phone="081234567890", otp_channel="email")
    return Envelope.wrap(body, stream_id=stream, correlation_id=new_id())


def handler(store: InMemoryEventStore) -> CommandHandler:
    return CommandHandler("test", store, counter, clock=lambda: NOW)


async def test_the_events_of_a_decision_carry_the_commands_correlation_and_causation() -> None:
    store = InMemoryEventStore()
    command = a_command(stream_id("test"))
    handled = await handler(store).handle(command)
    [event] = handled.events
    assert (event.correlation_id, event.causation_id, event.stream_id, event.occurred_at) == (command.correlation_id, command.message_id, command.stream_id, NOW)
    assert [e.envelope for e in await store.read_stream(command.stream_id)] == [event]


async def test_a_decision_sees_the_state_folded_from_the_stream() -> None:
    store = InMemoryEventStore()
    s = stream_id("test")
    await handler(store).handle(a_command(s))
    handled = await handler(store).handle(a_command(s))
    assert handled.events[0].payload["full_name"] == "SITI #2"


async def test_a_refusal_becomes_a_command_rejected_event_in_the_log() -> None:
    store = InMemoryEventStore()
    command = a_command(stream_id("test"), name="REFUSE")
    handled = await handler(store).handle(command)
    assert handled.rejected
    [stored] = await store.read_stream(command.stream_id)
    assert stored.envelope.type == "CommandRejected"
    assert (stored.envelope.payload["reason_code"], stored.envelope.payload["command_id"]) == ("TEST_REFUSAL", command.message_id)


async def test_a_redelivered_command_returns_the_earlier_events_and_appends_nothing() -> None:
    store = InMemoryEventStore()
    command = a_command(stream_id("test"))
    first = await handler(store).handle(command)
    again = await handler(store).handle(command)
    assert again.duplicate and again.events == first.events
    assert len(await store.read_stream(command.stream_id)) == 1


class RacingStore(InMemoryEventStore):
    """Lets a rival decision land between this handler's read and its append, once."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    async def append(self, stream_id, expected_version, events, *, cause_id, cause_digest=None, beside=None):  # noqa: ANN001, ANN201
        if not self.raced:
            self.raced = True
            await handler(self).handle(a_command(stream_id, name="RIVAL"))
        return await super().append(stream_id, expected_version, events, cause_id=cause_id, cause_digest=cause_digest, beside=beside)


async def test_a_concurrent_decision_makes_the_handler_reload_and_decide_again() -> None:
    store = RacingStore()
    s = stream_id("test")
    handled = await handler(store).handle(a_command(s))
    assert [e.envelope.payload["full_name"] for e in await store.read_stream(s)] == ["RIVAL #1", "SITI #2"]
    assert handled.events[0].payload["full_name"] == "SITI #2"


async def test_facts_can_be_looked_up_from_the_state_the_decision_is_taken_on() -> None:
    seen: list[int] = []

    def decide_with_facts(command: Command, state: Count, context: Context) -> Sequence[Event]:
        seen.append(context.facts["registered_before"])
        return decide(command, state, context)

    async def look_up(state: Count, message: Message) -> dict[str, int]:
        assert isinstance(message, RegisterParticipant)
        return {"registered_before": state.registered}

    store = InMemoryEventStore()
    handler_with_facts = CommandHandler("test", store, Decider(Count(), decide_with_facts, evolve), clock=lambda: NOW)
    s = stream_id("test")
    await handler_with_facts.handle(a_command(s), facts=look_up)
    await handler_with_facts.handle(a_command(s), facts=look_up)
    assert seen == [0, 1]


def decide_once(command: Command, state: Count, context: Context) -> Sequence[Event]:
    return [] if state.registered else decide(command, state, context)  # a second time there is nothing left to do


async def test_a_redelivered_command_that_now_decides_nothing_answers_with_what_it_caused_before() -> None:
    store = InMemoryEventStore()
    once = CommandHandler("test", store, Decider(initial_state=Count(), decide=decide_once, evolve=evolve), clock=lambda: NOW)
    command = a_command(stream_id("test"))
    first = await once.handle(command)
    again = await once.handle(command)
    assert (again.events, again.duplicate) == (first.events, True)
    other = await once.handle(a_command(command.stream_id))  # another command deciding nothing caused nothing
    assert (other.events, other.duplicate) == ((), False)


async def test_a_message_id_reused_for_another_command_is_refused_not_silently_dropped() -> None:
    store = InMemoryEventStore()
    s = stream_id("test")
    first = await handler(store).handle(a_command(s, "SITI"))
    original = first.events[0].causation_id
    again = await handler(store).handle(a_command(s, "SITI").model_copy(update={"message_id": original}))  # a redelivery of the same
    assert again.duplicate and again.events == first.events
    reused = a_command(s, "BUDI").model_copy(update={"message_id": original})  # another message, the same id
    refused = await handler(store).handle(reused)
    [answer] = refused.events
    assert (answer.type, answer.payload["reason_code"], answer.payload["command_id"], answer.correlation_id) == ("CommandRejected", "MESSAGE_ID_REUSED", original, reused.correlation_id)
    assert refused.stream_id.startswith("refusal-") and len(await store.read_stream(s)) == 1  # nothing applied to the stream


async def test_a_command_for_an_erased_participant_is_refused_and_their_stream_still_folds() -> None:
    from jmo_contracts.registration import AccountActivated
    from jmo_eventstore import FieldEncryptionCodec, InMemoryKeyRing, participant_subject

    keys = InMemoryKeyRing()
    store = InMemoryEventStore(codec=FieldEncryptionCodec(keys))
    s = stream_id("test")
    await handler(store).handle(a_command(s))
    await keys.erase(participant_subject("ab" * 16))
    [registered] = [e.open() for e in await store.read_stream(s)]
    assert isinstance(registered, ParticipantRegistered) and (registered.birth_date, registered.nik, registered.category) == ("[erased]", "[erased]", "BPU")

    refused = await handler(store).handle(a_command(s, "SITI LAGI"))
    [event] = refused.events
    assert event.type == "CommandRejected" and event.payload["reason_code"] == "PARTICIPANT_ERASED" and refused.participant_erased
    assert [e.envelope.type for e in await store.read_stream(s)] == ["ParticipantRegistered", "CommandRejected"]
    # another service's event about them is not acted on: nothing is decided on erased data
    activated = AccountActivated(participant_id="ab" * 16, category="BPU", kpj_number="26112100042", digital_card_id=new_id(), programs=["JKK", "JKM"],
                                 full_name="SITI", email="s@example.com", phone="+6281234567890", notification_channel="email")
    reaction = await handler(store).handle(Envelope.wrap(activated, stream_id=stream_id("other"), correlation_id=new_id()), stream_id=s)
    assert reaction.events == () and not reaction.participant_erased
    assert len(await store.read_stream(s)) == 2


async def test_a_participant_whose_key_is_there_is_decided_for_as_usual() -> None:
    from jmo_eventstore import FieldEncryptionCodec, InMemoryKeyRing

    store = InMemoryEventStore(codec=FieldEncryptionCodec(InMemoryKeyRing()))
    s = stream_id("test")
    await handler(store).handle(a_command(s))
    handled = await handler(store).handle(a_command(s, "SITI LAGI"))
    assert [e.type for e in handled.events] == ["ParticipantRegistered"] and not handled.participant_erased


async def test_what_goes_beside_a_decision_is_asked_of_the_events_decided_and_kept_only_with_a_new_decision() -> None:
    store = InMemoryEventStore()
    asked: list[list[str]] = []

    def beside(decided: Sequence[Message]) -> dict[str, dict[str, str]]:
        asked.append([type(m).__name__ for m in decided])
        return {f"name~{len(asked)}": {"name": m.full_name} for m in decided if isinstance(m, ParticipantRegistered)}

    command = a_command(stream_id("test"))
    await handler(store).handle(command, beside=beside)
    assert asked == [["ParticipantRegistered"]] and await store.find_beside("name~1") == {"name": "SITI #1"}
    again = await handler(store).handle(command, beside=beside)  # a redelivery: decided again, not written
    assert again.duplicate and await store.find_beside("name~2") is None
    await handler(store).handle(a_command(stream_id("test"), name="REFUSE"), beside=beside)
    assert asked[-1] == ["CommandRejected"] and await store.find_beside("name~3") is None
