"""Identity's configuration: keys come from the environment, never from the repository."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from jmo_runtime import ServiceSettings
from jmo_runtime.sealing import decode_key

from .domain.otp import OtpPolicy


class IdentitySettings(ServiceSettings):
    """``JMO_OTP_HMAC_KEY`` and ``JMO_OTP_DELIVERY_KEY`` are 32 random bytes in base64 each
    (``make up`` generates them once into ``.local/state/secrets.env``)."""

    otp_hmac_key: SecretStr = Field(description="Key of the keyed hash of OTP codes kept in the log (base64, 32 bytes).")
    otp_hmac_key_id: str = "otp-hmac-1"
    otp_delivery_key: SecretStr = Field(description="The notification service's key that OTP codes are sealed with (base64, 32 bytes).")
    otp_delivery_key_id: str = "otp-delivery-1"
    otp_length: int = Field(default=6, ge=4, le=10)
    otp_validity_seconds: int = Field(default=300, ge=1)
    otp_max_attempts: int = Field(default=5, ge=1)
    otp_resend_cooldown_seconds: int = Field(default=60, ge=0)
    otp_codes_per_hour: int = Field(default=5, ge=1)
    otp_codes_per_destination_per_hour: int = Field(
        default=10, ge=1, description="JMO_OTP_CODES_PER_DESTINATION_PER_HOUR: codes requested for one email or phone, whichever participant asks.",
    )
    contact_change_wait_seconds: float = Field(
        default=3.0, ge=0, le=10,
        description="JMO_CONTACT_CHANGE_WAIT_SECONDS: how long a contact-change code request waits for its session's ContactDataSubmitted to arrive (the gateway may be faster than the events topic).",
    )
    otp_outbox_drop_interval_ms: int = Field(
        default=200, ge=1, le=60_000,
        description="JMO_OTP_OUTBOX_DROP_INTERVAL_MS: how often the sealed codes already published are deleted from the outbox, in one command "
        "(at once when 64 wait, and on stop); a crash leaves at most that interval's codes, published again only with the same message id.",
    )
    dukcapil_url: str | None = Field(default=None, description="Dukcapil's HTTP API; the embedded synthetic registry when empty.")
    dukcapil_timeout_seconds: float = Field(default=5.0, gt=0)
    dukcapil_breaker_cooldown_seconds: float = Field(default=30.0, gt=0, description="After repeated failures, Dukcapil is not called for this long.")
    dukcapil_retry_seconds: float = Field(default=2.0, gt=0, description="Wait before a message is redelivered while Dukcapil is unavailable.")

    def hmac_key(self) -> bytes:
        return decode_key(self.otp_hmac_key.get_secret_value())

    def delivery_key(self) -> bytes:
        return decode_key(self.otp_delivery_key.get_secret_value())

    def policy(self) -> OtpPolicy:
        return OtpPolicy(
            code_length=self.otp_length,
            validity=timedelta(seconds=self.otp_validity_seconds),
            max_attempts=self.otp_max_attempts,
            resend_cooldown=timedelta(seconds=self.otp_resend_cooldown_seconds),
            max_codes_per_window=self.otp_codes_per_hour,
        )
