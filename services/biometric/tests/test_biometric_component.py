"""The biometric service wired in memory (TestKafkaBroker, in-memory store, blobs and participant data,
a scripted engine): the same subscribers, application and decider as in production."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from jmo_biometric.adapters.blobs import InMemorySelfieBlobs
from jmo_biometric.adapters.protection import ParticipantSealer
from jmo_biometric.adapters.references import InMemoryParticipantFaces
from jmo_biometric.domain.quality import FaceMeasures, ImageMeasures, QualityLimits
from jmo_biometric.adapters.engine import Analysis, ImageLimits, InvalidImage
from jmo_biometric.entrypoint.app import build
from jmo_biometric.settings import BiometricSettings
from jmo_contracts import Envelope, new_id, topics
from jmo_contracts.registration import ParticipantRegistered
from jmo_eventstore import InMemoryEventStore, InMemoryKeyRing
from jmo_registries import RegistryError, RegistryUnavailable
from jmo_runtime import Service
from jmo_runtime.relay import InMemoryCheckpoints
from jmo_runtime.testing import FakeClock, running_in_memory

pytestmark = pytest.mark.component
NIK = "3201014508900001"
JPEG_MAGIC = b"\xff\xd8\xff"
SAME = (0.1,) * 128
OTHER = (0.2,) * 128  # distance 1.13 from SAME
GOOD = FaceMeasures(width_px=300, width_fraction=0.3, in_frame=True, nose_offset=0.0, brightness=130, sharpness=300)


class ScriptedEngine:
    """Reads what to answer from the picture's bytes: JPEG magic + a word. ``deaths[word]``: how many
    more times the worker process dies on that word (``BrokenProcessPool``, as from the real pool)."""

    def __init__(self) -> None:
        self.selfies = 0
        self.references = 0
        self.deaths: dict[bytes, int] = {}

    def _may_die(self, word: bytes) -> None:
        if self.deaths.get(word, 0) > 0:
            self.deaths[word] -= 1
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    async def selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis:
        self.selfies += 1
        word = data[len(JPEG_MAGIC):]
        self._may_die(word)
        if word == b"broken":
            raise InvalidImage("undecodable image/jpeg")
        faces = () if word == b"empty" else (GOOD,)
        embedding = {b"same": SAME, b"other": OTHER}.get(word)
        return Analysis("image/jpeg", (640, 480), ImageMeasures(faces, 120), embedding)

    async def reference(self, data: bytes, limits: ImageLimits) -> Analysis:
        self.references += 1
        self._may_die(data[len(JPEG_MAGIC):])
        return Analysis("image/jpeg", (640, 480), ImageMeasures((GOOD,), 120), SAME)


@dataclass
class Dukcapil:
    down: bool = False
    refusing: bool = False
    asked: list[str] = field(default_factory=list)

    async def verify(self, nik: str, full_name: str, birth_date: date | None = None) -> object:
        raise NotImplementedError

    async def ktp_photo(self, nik: str) -> bytes | None:
        if self.down:
            raise RegistryUnavailable("down")
        if self.refusing:
            raise RegistryError("dukcapil ktp_photo: rejected with HTTP 400")
        self.asked.append(nik)
        return JPEG_MAGIC + b"ktp" if nik == NIK else None


@dataclass
class Wired:
    service: Service
    blobs: InMemorySelfieBlobs
    engine: ScriptedEngine
    dukcapil: Dukcapil
    faces: InMemoryParticipantFaces
    events: list[Envelope]
    clock: FakeClock

    async def registered(self, nik: str = NIK) -> str:
        pid = new_id()
        event = ParticipantRegistered(participant_id=pid, category="BPU", nik=nik, full_name="SITI AMINAH", email="s@example.com", phone="+6281234567890", otp_channel="email", birth_date=date(1990, 8, 5), gender="F")
        await self.service.broker.publish(Envelope.wrap(event, stream_id=f"registration-{pid}", correlation_id=new_id()).to_json(), topic=topics.events("registration"))
        return pid

    async def selfie(self, pid: str, session: str, word: bytes, **tamper: object) -> Envelope:
        data = JPEG_MAGIC + word
        blob_id = await self.blobs.put(data, content_type="image/jpeg")
        body = {"participant_id": pid, "session_id": session, "blob_id": blob_id, "sha256": hashlib.sha256(data).hexdigest(), "content_type": "image/jpeg", "size_bytes": len(data)} | tamper
        from jmo_contracts.biometric import SubmitSelfie

        return Envelope.wrap(SubmitSelfie.model_validate(body), stream_id=f"biometric-{session}", correlation_id=new_id())

    async def send(self, command: Envelope) -> list[Envelope]:
        before = len(self.events)
        await self.service.broker.publish(command.to_json(), topic=topics.commands("biometric"))
        while await self.service.relay_once():
            pass
        return self.events[before:]


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    settings = BiometricSettings(topic_prefix="", database_prefix="", dukcapil_retry_seconds=0.01)
    blobs, engine, dukcapil, faces = InMemorySelfieBlobs(), ScriptedEngine(), Dukcapil(), InMemoryParticipantFaces(ParticipantSealer(InMemoryKeyRing()))
    clock = FakeClock()
    service = build(settings, store=InMemoryEventStore(), checkpoints=InMemoryCheckpoints(), engine=engine, blobs=blobs, faces=faces, registry=dukcapil, clock=clock)  # type: ignore[arg-type]
    async with running_in_memory(service, topics.events("biometric")) as events:
        yield Wired(service, blobs, engine, dukcapil, faces, events, clock)


def outcome(events: list[Envelope]) -> tuple[str, object]:
    [e] = events
    return e.type, e.payload.get("reason_code") or e.payload.get("distance")


async def test_a_selfie_of_the_ktp_face_is_matched_its_blob_deleted_and_the_reference_kept_sealed(wired: Wired) -> None:
    pid = await wired.registered()
    command = await wired.selfie(pid, new_id(), b"same")
    assert outcome(await wired.send(command)) == ("SelfieMatched", 0.0)
    assert wired.blobs.blobs == {} and wired.dukcapil.asked == [NIK]
    assert NIK.encode() not in wired.faces.niks[pid] and pid in wired.faces.references


async def test_another_face_is_not_matching_and_the_cached_reference_spares_dukcapil(wired: Wired) -> None:
    pid = await wired.registered()
    session = new_id()
    await wired.send(await wired.selfie(pid, session, b"same"))
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"other")))[0] == "SelfieRejected"
    assert wired.dukcapil.asked == [NIK]


async def test_a_redelivered_selfie_changes_nothing_and_its_picture_is_not_looked_at_again(wired: Wired) -> None:
    pid = await wired.registered()
    command = await wired.selfie(pid, new_id(), b"empty")
    assert outcome(await wired.send(command)) == ("SelfieRejected", "NO_FACE")
    assert await wired.send(command) == [] and wired.engine.selfies == 1


async def test_used_up_attempts_refuse_without_analysing_and_still_delete_the_blob(wired: Wired) -> None:
    pid = await wired.registered()
    session = new_id()
    answers = [outcome(await wired.send(await wired.selfie(pid, session, word))) for word in (b"empty", b"broken", b"other", b"same")]
    assert answers == [("SelfieRejected", "NO_FACE"), ("SelfieRejected", "INVALID_IMAGE"), ("SelfieRejected", "NOT_MATCHING"), ("SelfieRejected", "TOO_MANY_ATTEMPTS")]
    assert wired.engine.selfies == 3 and wired.blobs.blobs == {}


async def test_a_damaged_upload_a_lying_content_type_and_an_unknown_participant_are_refused(wired: Wired) -> None:
    pid = await wired.registered()
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"same", sha256="0" * 64))) == ("SelfieRejected", "CHECKSUM_MISMATCH")
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"same", content_type="image/png"))) == ("SelfieRejected", "INVALID_IMAGE")
    assert outcome(await wired.send(await wired.selfie(new_id(), new_id(), b"same"))) == ("SelfieRejected", "REFERENCE_UNAVAILABLE")
    assert wired.engine.selfies == 1 and wired.blobs.blobs == {}


async def test_while_dukcapil_is_down_the_selfie_waits_and_keeps_its_blob(wired: Wired) -> None:
    pid = await wired.registered()
    wired.dukcapil.down = True
    command = await wired.selfie(pid, new_id(), b"same")
    with pytest.raises(RegistryUnavailable):
        await wired.send(command)
    assert len(wired.blobs.blobs) == 1
    wired.dukcapil.down = False
    assert outcome(await wired.send(command)) == ("SelfieMatched", 0.0)
    assert wired.blobs.blobs == {}


async def test_a_ktp_photo_request_dukcapil_refuses_leaves_no_reference_instead_of_waiting_forever(wired: Wired) -> None:
    pid = await wired.registered()
    wired.dukcapil.refusing = True
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"same"))) == ("SelfieRejected", "REFERENCE_UNAVAILABLE")
    assert wired.blobs.blobs == {}
    wired.dukcapil.refusing = False  # refused once is not remembered: the next selfie asks again
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"same"))) == ("SelfieMatched", 0.0)


async def test_one_worker_death_on_a_selfie_is_retried_and_the_selfie_then_decided_as_usual(wired: Wired) -> None:
    pid = await wired.registered()
    command = await wired.selfie(pid, new_id(), b"same")
    wired.engine.deaths[b"same"] = 1  # e.g. a worker killed out of memory for another reason
    with pytest.raises(BrokenProcessPool):
        await wired.send(command)
    assert len(wired.blobs.blobs) == 1
    assert outcome(await wired.send(command)) == ("SelfieMatched", 0.0)
    assert wired.blobs.blobs == {} and wired.engine.selfies == 2


async def test_a_selfie_that_kills_the_engine_every_time_is_refused_invalid_image_and_the_next_one_is_decided(wired: Wired) -> None:
    pid = await wired.registered()
    session = new_id()
    wired.engine.deaths[b"poison"] = 1_000
    poison = await wired.selfie(pid, session, b"poison")
    with pytest.raises(BrokenProcessPool):
        await wired.send(poison)
    [refused] = await wired.send(poison)  # the second death: no third try
    assert (refused.type, refused.payload["reason_code"], refused.payload["attempt"]) == ("SelfieRejected", "INVALID_IMAGE", 1)
    assert refused.payload["attempts_left"] == 2  # INVALID_IMAGE uses an attempt, whatever made the picture unreadable
    assert wired.blobs.blobs == {} and wired.engine.selfies == 2
    assert outcome(await wired.send(await wired.selfie(pid, session, b"same"))) == ("SelfieMatched", 0.0)
    # the same picture sent again (a new upload, a new command) is refused without killing a worker again
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"poison"))) == ("SelfieRejected", "INVALID_IMAGE")
    assert wired.engine.selfies == 3 and wired.blobs.blobs == {}


async def test_a_ktp_photo_that_kills_the_engine_every_time_leaves_no_reference_and_uses_no_attempt(wired: Wired) -> None:
    pid = await wired.registered()
    wired.engine.deaths[b"ktp"] = 1_000
    command = await wired.selfie(pid, new_id(), b"same")
    with pytest.raises(BrokenProcessPool):
        await wired.send(command)
    [answer] = await wired.send(command)
    assert (answer.payload["reason_code"], answer.payload["attempts_left"]) == ("REFERENCE_UNAVAILABLE", 3)
    assert wired.engine.references == 2 and wired.blobs.blobs == {}
    assert outcome(await wired.send(await wired.selfie(pid, new_id(), b"same"))) == ("SelfieRejected", "REFERENCE_UNAVAILABLE")
    assert wired.engine.references == 2


async def test_the_sweep_deletes_an_upload_whose_selfie_never_came_once_it_is_older_than_the_limit_and_keeps_a_recent_one(wired: Wired) -> None:
    old, recent = await wired.blobs.put(JPEG_MAGIC + b"same", content_type="image/jpeg"), await wired.blobs.put(JPEG_MAGIC + b"same", content_type="image/jpeg")
    wired.blobs.uploaded[old] = wired.clock.now - timedelta(seconds=3601)  # the limit: JMO_BIOMETRIC_BLOB_MAX_AGE_SECONDS, 3600
    wired.blobs.uploaded[recent] = wired.clock.now - timedelta(seconds=3599)
    [sweep] = [job for name, _, job in wired.service._periodic if name == "abandoned-uploads"]  # noqa: SLF001 - the periodic job as the service runs it
    await sweep()
    assert list(wired.blobs.blobs) == [recent]
