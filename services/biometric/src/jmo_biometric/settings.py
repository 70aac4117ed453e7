"""The biometric service's configuration, from the environment (``JMO_BIOMETRIC_*``, ``JMO_*``)."""

from __future__ import annotations

from pydantic import Field

from jmo_runtime import ServiceSettings

from .adapters.engine import ImageLimits
from .domain.quality import QualityLimits
from .domain.selfie import DEFAULT_MAX_ENGINE_DEATHS

#: Chosen from the distance distributions of labelled pairs (services/biometric/README.md).
DEFAULT_THRESHOLD = 0.6


class BiometricSettings(ServiceSettings):
    """Everything has a default; ``JMO_DATA_KEY`` (of :class:`~jmo_runtime.ServiceSettings`) is required by
    the service: the NIK look-up and the reference embeddings are kept only under participants' data keys."""

    biometric_threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0, lt=2, description="Largest embedding distance accepted as the same person.")
    biometric_max_attempts: int = Field(default=3, ge=1, description="Counted selfie attempts per profile-update session.")
    biometric_workers: int | None = Field(default=None, ge=1, description="Engine processes; default: one per core.")
    biometric_max_engine_deaths: int = Field(
        default=DEFAULT_MAX_ENGINE_DEATHS, ge=2,
        description="Engine worker deaths on the same picture after which a selfie is refused INVALID_IMAGE (a KTP photo: no reference); one death is always retried.",
    )
    biometric_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    biometric_min_side: int = Field(default=64, ge=16)
    biometric_max_side: int = Field(default=8000, ge=64)
    biometric_max_pixels: int = Field(default=40_000_000, ge=4096)
    biometric_detect_max_side: int = Field(default=480, ge=160, description="Long side of the copy faces are detected on.")
    biometric_work_max_side: int = Field(default=1280, ge=320, description="Long side a large picture is decoded to before landmarks and encoding.")
    biometric_min_face_px: int = Field(default=QualityLimits.min_face_px, ge=1)
    biometric_min_face_fraction: float = Field(default=QualityLimits.min_face_fraction, ge=0, lt=1, description="Smallest face width as a fraction of the picture's short side.")
    biometric_max_nose_offset: float = Field(default=QualityLimits.max_nose_offset, gt=0)
    biometric_min_brightness: float = Field(default=QualityLimits.min_brightness, ge=0, le=255)
    biometric_max_brightness: float = Field(default=QualityLimits.max_brightness, ge=0, le=255)
    biometric_min_sharpness: float = Field(default=QualityLimits.min_sharpness, ge=0)
    biometric_blob_max_age_seconds: int = Field(default=3600, ge=60, description="An uploaded selfie whose SubmitSelfie never came is deleted after this long.")
    biometric_blob_sweep_seconds: float = Field(default=300.0, gt=0, description="How often abandoned uploads are looked for.")
    dukcapil_url: str | None = Field(default=None, description="Dukcapil's HTTP API; the embedded synthetic registry when empty.")
    dukcapil_timeout_seconds: float = Field(default=5.0, gt=0)
    dukcapil_breaker_cooldown_seconds: float = Field(default=30.0, gt=0, description="After repeated failures, Dukcapil is not called for this long.")
    dukcapil_retry_seconds: float = Field(default=2.0, gt=0, description="Wait before a selfie is redelivered while Dukcapil is unavailable.")

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.biometric_max_bytes, min_side=self.biometric_min_side, max_side=self.biometric_max_side, max_pixels=self.biometric_max_pixels)

    def quality_limits(self) -> QualityLimits:
        return QualityLimits(
            min_face_px=self.biometric_min_face_px, min_face_fraction=self.biometric_min_face_fraction, max_nose_offset=self.biometric_max_nose_offset, min_brightness=self.biometric_min_brightness,
            max_brightness=self.biometric_max_brightness, min_sharpness=self.biometric_min_sharpness,
        )


#: ``jmo biometric compare`` / ``calibrate`` read the same settings (they store nothing, so need no key).
DecisionSettings = BiometricSettings
