"""Contracts of the biometric service: selfie-vs-reference face verification (SPEC §5.3, §6).

The gateway uploads the selfie to blob storage next to the event store (claim check) and sends only
its id and SHA-256 in ``SubmitSelfie``; raw images never travel through Kafka. The reference face is
the KTP photo from Dukcapil. Streams are ``biometric-<session_id>``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from .messages import Command, Event, message

HEX32 = r"^[0-9a-f]{32}$"

EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
EXAMPLE_SESSION_ID = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"

#: Claim check: the database (after ``JMO_DATABASE_PREFIX``) and GridFS bucket where the gateway puts a
#: selfie before sending ``SubmitSelfie``; the file's ``_id`` is the ``blob_id`` (an ObjectId's hex string).
BLOB_DATABASE = "jmo_blobs"
SELFIE_BUCKET = "selfies"


def _participant_id() -> Any:
    return Field(pattern=HEX32, description="Participant reference (from ParticipantRegistered). Not personal data.", examples=[EXAMPLE_PARTICIPANT_ID])


def _session_id() -> Any:
    return Field(pattern=HEX32, description="Profile-update (pengkinian data) session the selfie belongs to.", examples=[EXAMPLE_SESSION_ID])


def _attempt() -> Any:
    return Field(ge=1, description="Number of this selfie attempt within the session.", examples=[1])


class SelfieContentType(StrEnum):
    """Accepted image formats."""

    JPEG = "image/jpeg"
    PNG = "image/png"


class SelfieRejectionReason(StrEnum):
    """Why a selfie was not accepted; each quality check has its own code (seed guidance in brackets)."""

    INVALID_IMAGE = "INVALID_IMAGE"  # not a decodable JPEG / PNG, or bounds on size / dimensions exceeded
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"  # blob content does not match sha256 (or blob missing)
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"  # exactly one face
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    FACE_CUT_OFF = "FACE_CUT_OFF"  # whole face visible
    NOT_FRONTAL = "NOT_FRONTAL"  # facing the camera
    FACE_OBSTRUCTED = "FACE_OBSTRUCTED"  # no hat / glasses / mask
    BACKGROUND_NOT_PLAIN = "BACKGROUND_NOT_PLAIN"  # plain background
    TOO_DARK = "TOO_DARK"  # enough light
    TOO_BRIGHT = "TOO_BRIGHT"
    BLURRY = "BLURRY"  # held still
    NOT_MATCHING = "NOT_MATCHING"  # distance to the reference face above the threshold
    REFERENCE_UNAVAILABLE = "REFERENCE_UNAVAILABLE"  # no usable KTP photo from Dukcapil
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"  # the session's attempts are used up


@message("SubmitSelfie")
class SubmitSelfie(Command):
    """Verify a selfie already uploaded to blob storage against the participant's KTP photo."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    blob_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Id of the uploaded image in blob storage (e.g. a GridFS ObjectId); deleted after processing.", examples=["6741f0c2a9e3b15d7c8e4f21"])
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the image bytes, lower-case hex; checked before use.", examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    content_type: SelfieContentType = Field(description="image/jpeg or image/png.", examples=["image/jpeg"])
    size_bytes: int = Field(ge=1, description="Size of the image in bytes, as uploaded.", examples=[184320])


@message("SelfieMatched")
class SelfieMatched(Event):
    """The selfie passed the quality checks and matches the reference face (distance at most the threshold)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    attempt: int = _attempt()
    distance: float = Field(ge=0, description="Distance between selfie and reference embeddings (lower is more similar).", examples=[0.41])
    threshold: float = Field(gt=0, description="Decision threshold in force (configuration, tuned on labelled pairs).", examples=[0.6])
    engine: str = Field(description="Face engine that computed the embeddings.", examples=["face_recognition"])
    model_version: str = Field(description="Version of the engine's model, so an auditor can reproduce the decision.", examples=["dlib_face_recognition_resnet_model_v1"])
    reference_source: str = Field(description="Where the reference face came from.", examples=["DUKCAPIL"])


@message("SelfieRejected")
class SelfieRejected(Event):
    """The selfie was not accepted. Distance and threshold are present when a comparison was made (NOT_MATCHING)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    attempt: int = _attempt()
    reason_code: SelfieRejectionReason = Field(description="Which check failed.", examples=["TOO_DARK"])
    reason: str = Field(description="Guidance for the participant, in Bahasa Indonesia (no personal data).", examples=["Foto terlalu gelap, cari tempat dengan cahaya cukup"])
    attempts_left: int = Field(ge=0, description="Attempts still allowed in this session.", examples=[2])
    distance: float | None = Field(default=None, ge=0, description="Embedding distance, when a comparison was made.", examples=[0.72])
    threshold: float | None = Field(default=None, gt=0, description="Decision threshold in force, when a comparison was made.", examples=[0.6])
    engine: str | None = Field(default=None, description="Face engine used, when one ran.", examples=["face_recognition"])
    model_version: str | None = Field(default=None, description="Version of the engine's model, when one ran.", examples=["dlib_face_recognition_resnet_model_v1"])
