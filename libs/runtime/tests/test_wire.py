"""Personal data on the wire: the relay publishes the sealed stored form, a consumer opens it with
the shared key ring, refuses it in clear, and cannot open it once the participant is erased."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from jmo_contracts import Envelope, new_id
from jmo_contracts.export import example_envelope
from jmo_contracts.messages import registered
from jmo_eventstore import FieldEncryptionCodec, InMemoryEventStore, InMemoryKeyRing, participant_subject
from jmo_runtime.messaging import Refused, admit, check
from jmo_runtime.relay import OutgoingRecord, Relay
from jmo_eventstore.codec import SealedFieldUnreadable
from jmo_runtime.wire import PARTICIPANT_ERASED, PERSONAL_DATA_IN_CLEAR, SEALED_VALUE_INVALID, WITHHELD, WireSealed, kept_sealed, open_all_kept, open_envelope, open_kept, seal_envelope

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.records: list[OutgoingRecord] = []

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        self.records.extend(records)


def example(type_name: str, stream: str, **payload: object) -> Envelope:
    envelope = example_envelope(registered()[type_name])
    return envelope.model_copy(update={"stream_id": stream, "message_id": new_id(), "payload": envelope.payload | payload})


def registered_event(pid: str) -> Envelope:
    return example("ParticipantRegistered", f"registration-{pid}", participant_id=pid, nik="3201014508900001", full_name="SITI NURHALIZA", email="siti.uji@example.com")


def clear_values(envelope: Envelope) -> list[str]:
    return [envelope.payload[f] for f in ("nik", "full_name", "email")]


async def test_the_relay_publishes_personal_fields_as_the_log_stores_them_and_a_consumer_with_the_key_opens_them() -> None:
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    store, out, pid = InMemoryEventStore(codec), Recorder(), new_id()
    event = registered_event(pid)
    await store.append(event.stream_id, 0, [event], cause_id=new_id())
    relay = Relay("test", store, out, lambda _t: "jmo.registration.events", recover_every=0, recover_after=0)
    await relay.run_once()
    [record] = out.records
    assert not [v for v in clear_values(event) if v.encode() in record.value]
    on_wire = Envelope.from_json(record.value)
    assert all(set(on_wire.payload[f]) == {"_enc"} for f in ("nik", "full_name", "email"))
    assert on_wire.payload == store.commits[f"{event.stream_id}@0"]["events"][0]["payload"]  # the stored form, not sealed again
    opened = await open_envelope(FieldEncryptionCodec(keys), on_wire)
    assert isinstance(opened, Envelope) and opened.payload == event.payload

    # what recovery publishes (read back from the log) is sealed the same way
    [pending] = await store.pending_commits(older_than=0, limit=10)
    assert pending.events[0].wire_envelope.payload == on_wire.payload


async def test_personal_fields_in_clear_are_refused_and_the_dlq_copy_withholds_them() -> None:
    event = registered_event(new_id())
    refused = await open_envelope(FieldEncryptionCodec(InMemoryKeyRing()), event)
    assert isinstance(refused, Refused) and refused.reason == PERSONAL_DATA_IN_CLEAR
    assert refused.parked_as is not None and not [v for v in clear_values(event) if v.encode() in refused.parked_as]
    assert json.loads(refused.parked_as)["payload"]["nik"] == WITHHELD and "nik" in refused.detail


async def test_a_command_sealed_by_the_gateway_opens_for_the_service_and_not_once_the_participant_is_erased() -> None:
    keys = InMemoryKeyRing()
    pid = new_id()
    command = example("RegisterParticipant", f"registration-{pid}", nik="3201014508900002", full_name="BUDI UJI", email="budi.uji@example.com")
    sealed = await seal_envelope(FieldEncryptionCodec(keys), command)  # no participant_id: the stream names the participant
    assert not [v for v in clear_values(command) if v.encode() in sealed.to_json()]
    service = FieldEncryptionCodec(keys)
    opened = await open_envelope(service, sealed)
    assert isinstance(opened, Envelope) and opened.payload == command.payload
    assert admit(opened.to_json(), {}) == opened  # the opened payload validates against its contract

    await keys.erase(participant_subject(pid))
    after = await open_envelope(service, sealed)
    assert isinstance(after, Refused) and after.reason == PARTICIPANT_ERASED and after.envelope is not None


async def test_a_sealed_value_moved_to_another_participants_message_does_not_open() -> None:
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    mine, theirs = await seal_envelope(codec, registered_event(new_id())), await seal_envelope(codec, registered_event(new_id()))
    forged = theirs.model_copy(update={"payload": theirs.payload | {"nik": mine.payload["nik"]}})
    refused = await open_envelope(codec, forged)
    assert isinstance(refused, Refused) and refused.reason == SEALED_VALUE_INVALID and "nik" in refused.detail
    garbage = theirs.model_copy(update={"payload": theirs.payload | {"email": {"_enc": "not base64!"}}})
    assert (await open_envelope(codec, garbage)).reason == SEALED_VALUE_INVALID  # type: ignore[union-attr]


async def test_the_erased_marker_a_gateway_sends_for_an_erased_participant_is_refused_as_erased_and_for_anyone_else_as_clear() -> None:
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    erased_pid, live_pid = new_id(), new_id()
    await seal_envelope(codec, registered_event(erased_pid))  # their key exists, then is erased
    await keys.erase(participant_subject(erased_pid))
    late = await seal_envelope(codec, example("ProvideEmploymentDetails", f"registration-{erased_pid}", occupation="Pedagang", work_location="Bogor"))
    assert late.payload["occupation"] == "[erased]"  # what the gateway can still send
    refused = await open_envelope(codec, late)
    assert isinstance(refused, Refused) and refused.reason == PARTICIPANT_ERASED and refused.envelope is not None

    await seal_envelope(codec, registered_event(live_pid))
    sealed = await seal_envelope(codec, example("ProvideEmploymentDetails", f"registration-{live_pid}", occupation="Pedagang", work_location="Bogor"))
    posing = sealed.model_copy(update={"payload": sealed.payload | {"occupation": "[erased]"}})
    refused = await open_envelope(codec, posing)  # a live participant's value that only looks erased is a value in clear
    assert isinstance(refused, Refused) and refused.reason == PERSONAL_DATA_IN_CLEAR and "occupation" in refused.detail


async def a_sealed_registration() -> tuple[InMemoryKeyRing, FieldEncryptionCodec, str, Envelope, Envelope]:
    """A key ring, its codec, a participant, their ParticipantRegistered in clear and as it travels (sealed)."""
    keys = InMemoryKeyRing()
    codec = FieldEncryptionCodec(keys)
    pid = new_id()
    event = registered_event(pid)
    return keys, codec, pid, event, await seal_envelope(codec, event)

async def test_a_consumer_that_keeps_fields_sealed_gets_them_unopened_validated_around_them_and_opens_them_later_with_the_key() -> None:
    keys, codec, pid, event, sealed = await a_sealed_registration()
    keeping = FieldEncryptionCodec(CountingKeyRing(keys))
    kept = await kept_sealed(sealed)
    assert kept == sealed  # as it came: nothing opened, no key looked up
    assert check(sealed, {}, sealed_ok=True) == sealed  # every other field validated, the sealed ones stand
    assert check(sealed, {}).reason == "INVALID_PAYLOAD"  # type: ignore[union-attr]  # a consumer that opens must have opened them
    bad_category = sealed.model_copy(update={"payload": sealed.payload | {"category": "NOT-A-CATEGORY"}})
    assert check(bad_category, {}, sealed_ok=True).reason == "INVALID_PAYLOAD"  # type: ignore[union-attr]

    nik = WireSealed.of(sealed, "nik")
    assert nik is not None and WireSealed.from_document(nik.to_document()) == nik and event.payload["nik"] not in json.dumps(nik.to_document())
    assert WireSealed.of(event, "nik") is None  # in clear (a service without a data key): nothing sealed to keep
    assert keeping.keys.loads == 0
    assert await open_kept(keeping, nik) == event.payload["nik"]
    assert keeping.keys.loads == 1  # the key is looked up when the value is needed, not when it arrived

    moved = WireSealed(pid, f"registration-{new_id()}", nik.type, nik.field, nik.sealed)  # bound to its stream, type and field
    with pytest.raises(SealedFieldUnreadable) as unreadable:
        await open_kept(codec, moved)
    assert unreadable.value.reason == SEALED_VALUE_INVALID
    with pytest.raises(SealedFieldUnreadable):
        await open_kept(codec, WireSealed(pid, nik.stream_id, nik.type, "category", nik.sealed))  # not a personal field of the type

    await keys.erase(participant_subject(pid))
    with pytest.raises(SealedFieldUnreadable) as erased:
        await open_kept(codec, nik)
    assert erased.value.reason == PARTICIPANT_ERASED


async def test_a_consumer_that_keeps_fields_sealed_still_refuses_them_in_clear_or_marked_erased() -> None:
    event = registered_event(new_id())
    refused = await kept_sealed(event)
    assert isinstance(refused, Refused) and refused.reason == PERSONAL_DATA_IN_CLEAR
    assert refused.parked_as is not None and event.payload["nik"].encode() not in refused.parked_as
    sealed = await seal_envelope(FieldEncryptionCodec(InMemoryKeyRing()), event)
    marked = sealed.model_copy(update={"payload": sealed.payload | {"nik": "[erased]"}})
    refused = await kept_sealed(marked)
    assert isinstance(refused, Refused) and refused.reason == PARTICIPANT_ERASED
    for bad in ({"_enc": 12345}, {"_enc": sealed.payload["nik"]["_enc"], "extra": {"a": [1, 2]}}, {"_enc": "A" * 100_000}):
        refused = await kept_sealed(sealed.model_copy(update={"payload": sealed.payload | {"nik": bad}}))  # kept as it is: nothing but a sealed value
        assert isinstance(refused, Refused) and refused.reason == SEALED_VALUE_INVALID


async def test_several_kept_fields_open_with_one_key_look_up_and_the_first_that_does_not_open_stops_them_all() -> None:
    keys, codec, pid, event, sealed = await a_sealed_registration()
    names = ["nik", "full_name", "email"]
    kept = [k for name in names if (k := WireSealed.of(sealed, name)) is not None]
    assert [k.field for k in kept] == names
    keeping = FieldEncryptionCodec(CountingKeyRing(keys))
    assert await open_all_kept(keeping, kept) == {name: event.payload[name] for name in names}
    assert keeping.keys.loads == 1  # one look-up for all three, not one each

    moved = WireSealed(pid, kept[1].stream_id, kept[1].type, "email", kept[1].sealed)  # full_name's value presented as the email
    with pytest.raises(SealedFieldUnreadable) as unreadable:
        await open_all_kept(codec, [kept[0], moved])
    assert unreadable.value.reason == SEALED_VALUE_INVALID and unreadable.value.field_name == "email"
    await keys.erase(participant_subject(pid))
    with pytest.raises(SealedFieldUnreadable) as erased:
        await open_all_kept(codec, kept)
    assert erased.value.reason == PARTICIPANT_ERASED

class CountingKeyRing:
    """A key ring that counts how often keys are loaded."""

    def __init__(self, inner: InMemoryKeyRing) -> None:
        self.inner, self.loads = inner, 0

    async def load(self, subjects: Sequence[str], *, create: bool) -> None:
        self.loads += 1
        await self.inner.load(subjects, create=create)

    def key_for(self, subject: str, *, create: bool) -> bytes | None:
        return self.inner.key_for(subject, create=create)

    def forget(self, subject: str) -> None:
        self.inner.forget(subject)
