"""What a Kafka UI shows (issue 14): no personal value of a participant's journey in clear, anywhere on Kafka.

No Kafka UI runs on these machines, so the test renders what one would show for every record of
every topic of the run (commands, events, the OTP delivery and payment topics, every DLQ): the
key, the headers and the value as pretty JSON. One participant registers (to ``AccountActivated``)
and then updates the profile with a new phone and a bank account through the real services; the
personal values of that journey (the contracts' ``PERSONAL_FIELDS``, in the forms the services
normalise them to) must not appear in any rendering. A finding names the topic, partition, offset
and field path, never the value. Then ``jmo privacy erase``: a consumer (a fresh key-ring cache)
can no longer open any of the participant's messages still on Kafka.

Left out of the search, on purpose: enumerations and short words (gender, marital status, religion,
blood type, education, relationship, occupation, programs), which are not identifying on their
own and occur in any message by chance; and amounts (numbers such as 25000, which match unrelated
numbers). They are sealed like every personal field, which the check of sealed fields below covers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from jmo_cli.gateway import Gateway, command_envelope
from jmo_contracts import Envelope
from jmo_devstack.services import mentions
from jmo_eventstore import FieldEncryptionCodec, MongoKeyRing
from jmo_eventstore.codec import is_sealed, personal_fields_of
from jmo_runtime.messaging import Refused
from jmo_runtime.rules import to_e164
from jmo_runtime.wire import PARTICIPANT_ERASED, open_envelope

from .test_biometric_flow import citizen_with_photo
from .test_profile_update_journey import ADDITIONAL, ADDRESS, POPULATION, _gender, jmo, session_started, until_type

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("topics")]
NEW_PHONE, BANK_ACCOUNT, NPWP = "0813-8880-0057", "7712345678", "09.254.294.3-407.000"
#: KTP photo and selfie of the citizen whose journey is shown (rose: no later test of the session registers her, and this one ends with her erased)
PHOTO, SELFIE = "rose_leslie1.jpg", "rose_leslie2.jpg"


@pytest.fixture
def stack(service_runner: Any, sinks: Any) -> dict[str, Any]:
    started = {name: service_runner(name) for name in ("registration", "identity", "biometric", "profile-update")}
    return started | {"notification": service_runner("notification", sinks.env)}


@dataclass(frozen=True)
class Shown:
    """One record as a Kafka UI shows it."""

    topic: str
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: Any  # parsed JSON, else the text

    def rendered(self) -> str:
        value = json.dumps(self.value, indent=2, ensure_ascii=False) if not isinstance(self.value, str) else self.value
        return f"{self.topic} [{self.partition}] @{self.offset}\nkey: {self.key}\nheaders: {json.dumps(self.headers, ensure_ascii=False)}\n{value}"

    @property
    def envelope(self) -> Envelope | None:
        try:
            return Envelope.model_validate(self.value) if isinstance(self.value, dict) else None
        except ValueError:
            return None


def render(topic: str, partition: int, offset: int, key: bytes | None, headers: Any, value: bytes | None) -> Shown:
    text = (value or b"").decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse (the hostile-input tests leave such records): shown as text, as a Kafka UI does
        parsed = text
    return Shown(topic, partition, offset, (key or b"").decode("utf-8", errors="replace"), {k: (v or b"").decode("utf-8", errors="replace") for k, v in headers or ()}, parsed)


async def every_record(infra: Any, topic_prefix: str) -> list[Shown]:
    """Every record of every topic of this run, from the beginning, as the ``ops`` principal reads them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap, **infra.admin_options())
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(topic_prefix))
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=None, enable_auto_commit=False, **infra.kafka_options("ops"))
    await consumer.start()
    shown: list[Shown] = []
    try:
        parts = [TopicPartition(name, p) for name in names for p in sorted(consumer.partitions_for_topic(name) or await _partitions(consumer, name))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        left = {tp for tp in parts if ends[tp] > 0}
        for _ in range(600):
            if not left:
                break
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                shown += [render(tp.topic, tp.partition, r.offset, r.key, r.headers, r.value) for r in records]
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        assert not left, f"could not read to the end of {sorted(f'{tp.topic}/{tp.partition}' for tp in left)}"
    finally:
        await consumer.stop()
    assert {s.topic.removeprefix(topic_prefix) for s in shown} >= {"jmo.registration.commands", "jmo.registration.events", "jmo.identity.commands", "jmo.identity.events", "jmo.profile-update.commands", "jmo.profile-update.events"}
    return shown


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 (no public refresh in aiokafka)
    return consumer.partitions_for_topic(topic) or set()


def forms(value: str) -> set[str]:
    """A personal value in the forms a service may hold it: as sent, upper and lower case, E.164."""
    out = {value, value.upper(), value.lower(), " ".join(value.split()).upper()}
    try:
        out.add(to_e164(value))
    except Exception:  # noqa: BLE001 (not a phone number)
        pass
    return {v for v in out if len(v) >= 6}


def paths(value: Any, needle: str, at: str = "value") -> Iterator[str]:
    """Where in a rendered JSON value ``needle`` stands (field paths, never the value)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, needle, f"{at}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, needle, f"{at}[{i}]")
    elif mentions(needle, str(value)):
        yield at


def findings(shown: list[Shown], secrets: dict[str, set[str]]) -> list[str]:
    """``topic/partition@offset: field path (what)`` for every personal value in clear."""
    out = []
    for s in shown:
        text = s.rendered()
        for what, values in secrets.items():
            for v in values:
                if not mentions(v, text):
                    continue
                where = [p for p in paths(s.value, v)] + (["key"] if mentions(v, s.key) else []) + [f"header {k}" for k, h in s.headers.items() if mentions(v, h)]
                out.append(f"{s.topic}/{s.partition}@{s.offset}: {', '.join(where) or 'rendered record'} ({what})")
    return sorted(set(out))


async def test_a_kafka_ui_shows_no_personal_value_of_a_registration_and_a_profile_update(
    infra: Any, topic_prefix: str, database_prefix: str, service_keys: dict[str, str], stack: dict[str, Any], gateways_seal: Any
) -> None:
    async with Gateway(infra.kafka_bootstrap, topic_prefix=topic_prefix, kafka_options=infra.kafka_options) as gateway:
        # a citizen no later test of the session registers: this one ends erased
        pid, data, s = await session_started(gateway, 23, PHOTO, infra, topic_prefix, database_prefix, service_keys)
        assert (await s.send("ConfirmParticipationData", confirmed=True)).type == "ParticipationDataConfirmed"
        assert (await s.selfie(infra, database_prefix, SELFIE)).type == "SelfieMatched"
        await until_type(gateway, s, "SelfieVerificationRecorded")
        contact = await s.send("SubmitContactData", phone=NEW_PHONE, email=data["email"], npwp=NPWP, bank_name="BNI", bank_account_number=BANK_ACCOUNT)
        assert contact.type == "ContactDataSubmitted", contact.payload
        await s.verify_new_phone(infra, topic_prefix, service_keys, NEW_PHONE)
        assert (await s.send("SubmitPopulationData", gender=_gender(data["nik"]), **POPULATION)).type == "PopulationDataSubmitted"
        assert (await s.send("SubmitAdditionalData", **ADDITIONAL)).type == "AdditionalDataSubmitted"
        assert (await s.send("ConfirmProfileUpdate", terms_accepted=True)).type == "ProfileUpdated"

    shown = await every_record(infra, topic_prefix)
    journey = [s for s in shown if (e := s.envelope) is not None and (e.stream_id.endswith(pid) or e.payload.get("participant_id") == pid)]
    activated = next(e for s in journey if (e := s.envelope) is not None and e.type == "AccountActivated")
    # the KPJ number is issued by the service: the gateway (with the key) reads it from the event
    kpj = (await _opened(infra, database_prefix, service_keys, activated)).payload["kpj_number"]
    secrets = {
        "NIK": forms(data["nik"]), "full name": forms(data["full_name"]), "email": forms(data["email"]), "registered phone": forms(data["phone"]),
        "new phone": forms(NEW_PHONE), "bank account": forms(BANK_ACCOUNT), "NPWP": forms(NPWP) | {"092542943407000"}, "KPJ number": forms(kpj),
        "mother's name": forms(POPULATION["mother_maiden_name"]), "street": forms(ADDRESS["street"]),
        "emergency contact": forms(ADDITIONAL["emergency_contact_name"]) | forms(ADDITIONAL["emergency_contact_phone"]),
        "birth date": {str(citizen_with_photo(PHOTO)["birth_date"])},
    }

    # the check can fail: the same journey in clear (as it was before sealing) is found
    clear = command_envelope("RegisterParticipant", {k: data[k] for k in ("category", "nik", "full_name", "email", "phone", "otp_channel")})
    assert findings([render("clear", 0, 0, clear.stream_id.encode(), [], clear.to_json())], secrets), "the search finds nothing even in clear"

    leaks = findings(shown, secrets)
    assert leaks == [], "personal values in clear on Kafka:\n" + "\n".join(leaks)

    # what the journey put on Kafka carries its personal fields sealed, commands and events alike
    sealed = [s for s in journey if (e := s.envelope) is not None and any(is_sealed(e.payload.get(f)) for f in personal_fields_of(e.type))]
    sealed_types = {s.envelope.type for s in sealed if s.envelope is not None}
    assert {"RegisterParticipant", "ParticipantRegistered", "AccountActivated", "SubmitContactData", "ContactDataSubmitted", "RequestOtp", "OtpIssued", "ProfileUpdated"} <= sealed_types, sealed_types
    opened = await _opened(infra, database_prefix, service_keys, next(e for s in sealed if (e := s.envelope) is not None and e.type == "ParticipantRegistered"))
    assert opened.payload["nik"] == data["nik"]  # a consumer with the key reads it

    # erased: no consumer can open any of the participant's messages still on Kafka
    erased = jmo("privacy", "erase", pid, "--reason", "permintaan peserta", "--requested-by", "DPO-TEST-14", infra=infra, topic_prefix=topic_prefix, database_prefix=database_prefix, keys=service_keys)
    assert erased.returncode == 0, erased.stderr
    after = [await _open(infra, database_prefix, service_keys, s.envelope) for s in sealed if s.envelope is not None]
    assert after and all(isinstance(a, Refused) and a.reason == PARTICIPANT_ERASED for a in after), [getattr(a, "reason", "opened") for a in after]


async def _open(infra: Any, database_prefix: str, keys: dict[str, str], envelope: Envelope) -> Envelope | Refused:
    """Open ``envelope`` as a consumer that has just started would (nothing cached): the shared key ring."""
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri)
    try:
        ring = MongoKeyRing(client[f"{database_prefix}jmo_keys"]["data_keys"], base64.b64decode(keys["JMO_DATA_KEY"]))
        return await open_envelope(FieldEncryptionCodec(ring), envelope)
    finally:
        await client.close()


async def _opened(infra: Any, database_prefix: str, keys: dict[str, str], envelope: Envelope) -> Envelope:
    opened = await _open(infra, database_prefix, keys, envelope)
    assert isinstance(opened, Envelope), opened
    return opened
