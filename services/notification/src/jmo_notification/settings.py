"""The notification service's configuration: providers, retries and keys, from the environment.

The defaults deliver to the local sinks ``make up`` starts (``jmo_devstack.sinks``): SMTP on
127.0.0.1:2525 without TLS and the SMS endpoint on http://127.0.0.1:8086/messages. A real
deployment sets the JMO_SMTP_* and JMO_SMS_* variables to its providers.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from jmo_runtime import ServiceSettings
from jmo_runtime.sealing import decode_key


class NotificationSettings(ServiceSettings):
    """``JMO_OTP_DELIVERY_KEY`` (the key identity seals OTP codes with) and ``JMO_NOTIFICATION_DATA_KEY``
    (protects the contact directory at rest) are 32 random bytes in base64 each."""

    otp_delivery_key: SecretStr = Field(description="Key OTP codes are sealed with by identity (base64, 32 bytes).")
    otp_delivery_key_id: str = Field(default="otp-delivery-1", description="Id of that key; a request sealed under another id is not opened.")
    notification_data_key: SecretStr = Field(description="Key of the contact directory's encryption at rest (base64, 32 bytes).")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_tls: str = Field(default="none", pattern="^(none|starttls|tls)$", description="none, starttls (upgrade on the plain port) or tls (implicit, port 465).")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = Field(default="BPJS Ketenagakerjaan <no-reply@jmo.local>", description="From: of every email.")
    smtp_message_id_domain: str = Field(default="jmo.local", description="Domain of the deterministic Message-ID (<notification_id@domain>).")
    smtp_connections: int = Field(
        default=16, ge=1, le=256,
        description="JMO_SMTP_CONNECTIONS: SMTP connections kept open and reused, one message on each at a time; more emails at once wait for "
        "one. An instance sends at most this many emails per time one takes (~4 round trips to the provider: 16 at 50 ms is ~80/s).",
    )

    sms_url: str = Field(default="http://127.0.0.1:8086/messages", description="Provider endpoint: POST JSON {to, body, sender}; any 2xx is success.")
    sms_api_key: SecretStr | None = Field(default=None, description="Sent as 'Authorization: Bearer <key>' when set.")
    sms_sender: str = Field(default="BPJSTK", description="Sender id shown on the phone.")

    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    delivery_attempts: int = Field(default=5, ge=1, description="Attempts per message before PROVIDER_UNAVAILABLE.")
    retry_initial_seconds: float = Field(default=0.5, gt=0, description="Backoff: exponential with full jitter from this, capped by retry_max_seconds.")
    retry_max_seconds: float = Field(default=8.0, gt=0)
    claim_lease_seconds: float = Field(default=60.0, gt=0, description="A delivery claimed longer ago than this without an outcome may be taken over.")

    def delivery_key(self) -> bytes:
        return decode_key(self.otp_delivery_key.get_secret_value())

    def directory_key(self) -> bytes:
        return decode_key(self.notification_data_key.get_secret_value())
