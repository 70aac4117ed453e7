"""Registration's configuration, from the environment."""

from __future__ import annotations

from pydantic import Field, SecretStr

from jmo_runtime import ServiceSettings


class RegistrationSettings(ServiceSettings):
    """``JMO_NIK_INDEX_KEY`` (base64, 32 bytes) keys the hash under which NIKs with an account are
    indexed (``make up`` generates it into ``.local/state/secrets.json``)."""

    nik_index_key: SecretStr = Field(description="Key of the NIK index (base64, 32 bytes).")
    employer_registry_url: str | None = Field(default=None, description="Employer registry HTTP API; the embedded synthetic one when empty.")
    employer_registry_timeout_seconds: float = Field(default=5.0, gt=0)
    employer_registry_breaker_cooldown_seconds: float = Field(default=30.0, gt=0, description="After repeated failures, the employer registry is not called for this long.")
    registrations_per_nik_per_hour: int = Field(
        default=10, ge=1,
        description="JMO_REGISTRATIONS_PER_NIK_PER_HOUR: RegisterParticipant commands for one NIK (or one OTP destination); more are refused TOO_MANY_ATTEMPTS, so answers such as ALREADY_REGISTERED cannot be mined.",
    )
    registration_timeout_seconds: int = Field(default=86_400, ge=1, description="An unfinished registration expires after this long.")
    registration_sweep_seconds: float = Field(default=60.0, gt=0, description="How often unfinished registrations are checked for expiry.")
    employer_retry_step_seconds: float = Field(default=60.0, gt=0, description="PU: the n-th deferred employer-registry check is retried n times this later (capped at 15 minutes).")
    employer_retry_sweep_seconds: float = Field(default=5.0, gt=0, description="How often deferred employer-registry checks are looked at.")

    def nik_key(self) -> bytes:
        import base64

        key = base64.b64decode(self.nik_index_key.get_secret_value())
        if len(key) != 32:
            raise ValueError("JMO_NIK_INDEX_KEY must be 32 bytes in base64")
        return key
