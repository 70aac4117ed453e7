"""Selfie quality rules (seed 003 step 6) and the verification verdict: pure functions over measures.

The engine (``jmo_biometric.adapters.engine``) measures; this module decides. ``jmo biometric compare`` and the
service call the same :func:`verdict`, so the command line shows exactly what the service would decide.

Measures and their rules, each with its own reason code:

* exactly one face: none → ``NO_FACE`` (or ``TOO_DARK`` when the whole picture is too dark to find one),
  more → ``MULTIPLE_FACES``;
* the whole face in the frame: the detected box or a landmark outside the picture → ``FACE_CUT_OFF``;
* big enough: the face narrower than ``min_face_px`` (in the picture as uploaded, after EXIF
  orientation) or than ``min_face_fraction`` of the picture's short side → ``FACE_TOO_SMALL``;
* facing the camera: the nose's horizontal offset from the middle of the eyes, as a fraction of the
  distance between the eyes (0 when frontal, about ±0.5 when turned far) → ``NOT_FRONTAL``;
* enough light: mean luminance (0-255) of the face → ``TOO_DARK`` / ``TOO_BRIGHT``;
* held still: variance of the Laplacian of the face scaled to a fixed size → ``BLURRY``;
* the same person: embedding distance above the threshold → ``NOT_MATCHING``.

Plain background and no hat / glasses / mask are not measured (the engine has no reliable signal for
them); their codes exist in the contract for an engine that can.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jmo_contracts.biometric import SelfieRejectionReason as Reason

#: Guidance for the participant, in Bahasa Indonesia, one per reason (no personal data).
GUIDANCE: dict[Reason, str] = {
    Reason.INVALID_IMAGE: "Foto tidak dapat dibaca; kirim foto JPEG atau PNG dengan ukuran yang wajar",
    Reason.CHECKSUM_MISMATCH: "Foto tidak diterima dengan utuh; silakan ambil dan kirim ulang",
    Reason.NO_FACE: "Wajah tidak terdeteksi; pastikan seluruh wajah terlihat jelas dan menghadap ke kamera",
    Reason.MULTIPLE_FACES: "Terdeteksi lebih dari satu wajah; pastikan hanya wajah Anda yang ada di foto",
    Reason.FACE_TOO_SMALL: "Wajah terlalu kecil; dekatkan kamera ke wajah",
    Reason.FACE_CUT_OFF: "Wajah terpotong; pastikan seluruh wajah berada di dalam bingkai",
    Reason.NOT_FRONTAL: "Wajah tidak menghadap ke kamera; hadapkan wajah lurus ke kamera",
    Reason.FACE_OBSTRUCTED: "Wajah tertutup; lepaskan topi, kacamata, dan masker",
    Reason.BACKGROUND_NOT_PLAIN: "Gunakan latar belakang berwarna polos",
    Reason.TOO_DARK: "Foto terlalu gelap, cari tempat dengan cahaya cukup",
    Reason.TOO_BRIGHT: "Foto terlalu terang; hindari cahaya langsung ke wajah",
    Reason.BLURRY: "Foto buram; tahan ponsel dengan diam saat mengambil foto",
    Reason.NOT_MATCHING: "Wajah tidak sesuai dengan foto KTP",
    Reason.REFERENCE_UNAVAILABLE: "Foto KTP tidak tersedia untuk verifikasi; silakan hubungi kantor cabang",
    Reason.TOO_MANY_ATTEMPTS: "Batas percobaan verifikasi wajah telah habis; silakan mulai ulang pengkinian data",
}


@dataclass(frozen=True)
class QualityLimits:
    """The numbers of the quality rules (configuration; defaults chosen on the test images, see the README)."""

    min_face_px: int = 80
    min_face_fraction: float = 0.15
    max_nose_offset: float = 0.30
    min_brightness: float = 60.0
    max_brightness: float = 210.0
    min_sharpness: float = 30.0
    min_scene_brightness: float = 45.0


@dataclass(frozen=True)
class FaceMeasures:
    """What the engine measured on one detected face (coordinates in the oriented, uploaded picture)."""

    width_px: float
    width_fraction: float  #: face width / the picture's short side
    in_frame: bool
    nose_offset: float
    brightness: float
    sharpness: float


@dataclass(frozen=True)
class ImageMeasures:
    """What the engine measured on a picture: every face found, and the brightness of the whole scene."""

    faces: tuple[FaceMeasures, ...]
    scene_brightness: float


@dataclass(frozen=True)
class Verdict:
    """A decision on one selfie: ``match`` only when ``reasons`` is empty."""

    match: bool
    reasons: tuple[Reason, ...]
    distance: float | None = None
    threshold: float | None = None
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> Reason | None:
        """The reason shown to the participant: the first one found, in the order of the checks."""
        return self.reasons[0] if self.reasons else None


def quality_reasons(image: ImageMeasures, limits: QualityLimits) -> list[Reason]:
    """Every failed quality check of a picture, in the order a participant should fix them."""
    if not image.faces:
        return [Reason.TOO_DARK if image.scene_brightness < limits.min_scene_brightness else Reason.NO_FACE]
    if len(image.faces) > 1:
        return [Reason.MULTIPLE_FACES]
    face = image.faces[0]
    reasons: list[Reason] = []
    if not face.in_frame:
        reasons.append(Reason.FACE_CUT_OFF)
    if face.width_px < limits.min_face_px or face.width_fraction < limits.min_face_fraction:
        reasons.append(Reason.FACE_TOO_SMALL)
    if abs(face.nose_offset) > limits.max_nose_offset:
        reasons.append(Reason.NOT_FRONTAL)
    if face.brightness < limits.min_brightness:
        reasons.append(Reason.TOO_DARK)
    elif face.brightness > limits.max_brightness:
        reasons.append(Reason.TOO_BRIGHT)
    if face.sharpness < limits.min_sharpness:
        reasons.append(Reason.BLURRY)
    return reasons


def verdict(image: ImageMeasures, distance: float | None, threshold: float, limits: QualityLimits) -> Verdict:
    """The decision on a selfie from its measures and, when quality passed, its distance to the reference."""
    measures: dict[str, float] = {"faces": float(len(image.faces)), "scene_brightness": round(image.scene_brightness, 1)}
    if len(image.faces) == 1:
        f = image.faces[0]
        measures |= {"face_width_px": round(f.width_px, 1), "face_width_fraction": round(f.width_fraction, 3), "nose_offset": round(f.nose_offset, 3), "brightness": round(f.brightness, 1), "sharpness": round(f.sharpness, 1)}
    reasons = quality_reasons(image, limits)
    if reasons:
        return Verdict(False, tuple(reasons), measures=measures)
    if distance is None:
        raise ValueError("a picture that passed the quality checks needs a distance")
    if distance > threshold:
        return Verdict(False, (Reason.NOT_MATCHING,), distance, threshold, measures)
    return Verdict(True, (), distance, threshold, measures)
