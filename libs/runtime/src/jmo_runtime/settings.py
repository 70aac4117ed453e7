"""Service configuration from the environment (pydantic-settings). Secrets never live in the repo."""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .kafka_security import KafkaCredentials

DEFAULT_HEALTH_PORTS = {"registration": 8081, "identity": 8082, "biometric": 8083, "profile-update": 8084, "notification": 8085}


class ServiceSettings(BaseSettings):
    """What every service reads at start-up. ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI`` are the
    conventional names; everything else is prefixed ``JMO_``."""

    model_config = SettingsConfigDict(env_prefix="JMO_", extra="ignore")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "JMO_KAFKA_BOOTSTRAP_SERVERS"))
    kafka_username: str | None = Field(default=None, description="JMO_KAFKA_USERNAME: this process's Kafka principal (SASL/SCRAM); unset = PLAINTEXT.")
    kafka_password: SecretStr | None = Field(default=None, description="JMO_KAFKA_PASSWORD: its password (from the secret store, never the repo).")
    kafka_sasl_mechanism: str = Field(default="SCRAM-SHA-512", pattern="^SCRAM-SHA-(256|512)$")
    kafka_security_protocol: str = Field(default="SASL_PLAINTEXT", pattern="^SASL_(PLAINTEXT|SSL)$", description="Used only with credentials.")
    mongodb_uri: str = Field(default="mongodb://127.0.0.1:27017/", validation_alias=AliasChoices("MONGODB_URI", "JMO_MONGODB_URI"))
    topic_prefix: str = Field(default="", description="Put in front of every topic name (test runs, shared clusters).")
    database_prefix: str = Field(default="", description="Put in front of every database name.")
    health_host: str = "127.0.0.1"
    health_port: int | None = Field(default=None, description="Defaults to the service's well-known port (8081-8085).")
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    log_level: str = "INFO"
    relay_batch_size: int = Field(default=500, ge=1)
    relay_idle_seconds: float = Field(default=0.05, gt=0)
    relay_recover_after_seconds: float = Field(default=10.0, gt=0, description="A commit still pending after this long is published by any instance's relay (its writer died).")
    relay_recover_every_seconds: float = Field(default=5.0, gt=0, description="How often the relay looks for such commits (one small query of the outbox).")
    relay_settle_seconds: float = Field(default=1.0, gt=0, description="How long published commits wait to have their outbox records deleted together.")
    store_timeout_ms: int = Field(default=10_000, ge=100)
    handler_attempts: int = Field(
        default=5, ge=1,
        description="JMO_HANDLER_ATTEMPTS: how often a message may fail with a non-transient error before it is parked in its DLQ as HANDLER_FAILED.",
    )
    stall_seconds: float = Field(
        default=120.0, gt=0,
        description="JMO_STALL_SECONDS: /health reports a partition whose message has been in hand (failing, or waiting for a registry) for longer, and a relay whose rounds have been failing for longer.",
    )
    consumer_batch_records: int = Field(
        default=256, ge=1, le=10_000,
        description="JMO_CONSUMER_BATCH_RECORDS: most records one fetch hands a process's consumer (one for all its topics); a batch's "
        "messages of different streams are handled side by side, those of one stream in order.",
    )
    consumer_batch_wait_ms: int = Field(
        default=500, ge=1, le=30_000,
        description="JMO_CONSUMER_BATCH_WAIT_MS: how long a consumer's poll waits for records before it asks again. A poll returns as soon as "
        "a record is there and the consumer does not rest between polls, so this adds no latency: it only sets how often an idle consumer "
        "wakes. (Before, faststream's loop rested this long after an empty poll, 20 ms, up to that much per hop.)",
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=500, ge=1, le=30_000,
        description="JMO_CONSUMER_FETCH_MAX_WAIT_MS: how long the broker holds a consumer's fetch when nothing is there to return (a long poll: "
        "a record that arrives meanwhile is returned at once). Every consumer of every process asks this often while idle: with 500 "
        "(aiokafka's default) the idle stack spent 180-270 ms of CPU per second, with 2000 100-130; but 2000 also made restarts and "
        "redeliveries slower (the restart and outage e2e tests took 3-6 s longer each), so 500 stays the default.",
    )
    commit_interval_ms: int = Field(
        default=1000, ge=1, le=60_000,
        description="JMO_COMMIT_INTERVAL_MS: how often a consumer commits the offsets of the messages it finished (one OffsetCommit per consumer "
        "for all its partitions, instead of one per message); a crash delivers at most that interval's messages again, to idempotent handlers "
        "(a rebalance or a clean stop commits first). 1000 rather than 200: at 100 registrations/s offered, 1.4-1.7 ms less CPU per "
        "registration and 5-9/s more sustained in three back-to-back pairs (the broker's group coordinator was 12 % of its CPU).",
    )
    max_message_bytes: int = Field(default=128 * 1024, ge=1024, le=900 * 1024, description="JMO_MAX_MESSAGE_BYTES: larger messages are parked as TOO_LARGE.")
    data_key: SecretStr | None = Field(
        default=None,
        description="JMO_DATA_KEY: master key (base64, 32 bytes) wrapping the per-participant keys that encrypt personal fields in the event log. "
        "Without it the log stores payloads as they are (tests of the store only).",
    )

    keyring_database: str = Field(
        default="jmo_keys",
        description="JMO_KEYRING_DATABASE: the database (after JMO_DATABASE_PREFIX) whose ``data_keys`` hold the per-participant keys "
        "every service and the gateway share: one key per participant seals their data at rest and on Kafka, and erasing it erases both.",
    )

    def master_data_key(self) -> bytes | None:
        if self.data_key is None:
            return None
        key = base64.b64decode(self.data_key.get_secret_value())
        if len(key) != 32:
            raise ValueError("JMO_DATA_KEY must be 32 bytes in base64")
        return key

    def kafka_credentials(self) -> KafkaCredentials | None:
        """The SASL identity of this process, or ``None`` (PLAINTEXT) when no username is set."""
        if not self.kafka_username:
            return None
        if self.kafka_password is None:
            raise ValueError("JMO_KAFKA_USERNAME is set but JMO_KAFKA_PASSWORD is not")
        return KafkaCredentials(self.kafka_username, self.kafka_password.get_secret_value(), self.kafka_sasl_mechanism, self.kafka_security_protocol)

    def health_port_for(self, service: str) -> int:
        return self.health_port or DEFAULT_HEALTH_PORTS[service]

    def database_for(self, service: str) -> str:
        return f"{self.database_prefix}jmo_{service.replace('-', '_')}"

    def keyring_database_name(self) -> str:
        """The shared key ring's database (see ``keyring_database``)."""
        return f"{self.database_prefix}{self.keyring_database}"

    def blob_database(self) -> str:
        """Where claim-checked blobs (selfies) wait next to the event store, shared by gateway and services."""
        from jmo_contracts.biometric import BLOB_DATABASE

        return f"{self.database_prefix}{BLOB_DATABASE}"

    def topic(self, name: str) -> str:
        return self.topic_prefix + name
