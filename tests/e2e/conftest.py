"""The end-to-end run as a whole: no personal data the gateway sent may appear in clear in any
service log written during it (SPEC §9).

Every command the tests send through :class:`Gateway` is remembered with the values of its
personal fields (the contracts name them); when the session ends, every service log of the run is
searched for each of them, as sent and in the forms the services normalise to.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from jmo_cli.gateway import Gateway
from jmo_contracts import Envelope
from jmo_devstack.services import mentions
from jmo_runtime import Rejection, ServiceSettings
from jmo_runtime.rules import to_e164

#: Shorter values (enum-like words, single letters) are not identifying and occur in logs by chance.
MIN_LENGTH = 6
SENT_PERSONAL: set[str] = set()


def personal_values(envelope: Envelope) -> set[str]:
    """The personal values of a command, in the forms they may take in a service."""
    message = envelope.open()
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, BaseModel):
            for inner in value.model_dump().values():
                add(inner)
        elif isinstance(value, str) and not isinstance(value, Enum) and len(value.strip()) >= MIN_LENGTH:
            text = value.strip()
            found.update({text, text.upper(), text.lower(), " ".join(text.split()).upper()})
            try:
                found.add(to_e164(text))
            except Rejection:
                pass

    for name in getattr(type(message), "PERSONAL_FIELDS", ()):
        add(getattr(message, name, None))
    return found


@pytest.fixture(scope="session", autouse=True)
def gateways_seal(infra: Any, database_prefix: str, service_keys: dict[str, str]) -> Iterator[ServiceSettings]:
    """Every :class:`Gateway` of the run seals the personal fields of its commands (and opens its
    events) with the services' shared key ring, as the gateway is deployed: the services refuse
    personal data in clear on Kafka. Returns the settings it seals with."""
    sealing = ServiceSettings(**{"MONGODB_URI": infra.mongodb_uri}, database_prefix=database_prefix, data_key=service_keys["JMO_DATA_KEY"])
    original = Gateway.__aenter__

    async def sealing_enter(self: Gateway) -> Gateway:
        if self.sealing is None:
            self.sealing = sealing
        return await original(self)

    Gateway.__aenter__ = sealing_enter  # type: ignore[method-assign]
    try:
        yield sealing
    finally:
        Gateway.__aenter__ = original  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def no_personal_data_in_service_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    original = Gateway.send

    async def remembering_send(self: Gateway, envelope: Envelope, *args: Any, **kwargs: Any) -> Any:
        SENT_PERSONAL.update(personal_values(envelope))
        return await original(self, envelope, *args, **kwargs)

    Gateway.send = remembering_send  # type: ignore[method-assign]
    try:
        yield
    finally:
        Gateway.send = original  # type: ignore[method-assign]
    logs = sorted(Path(tmp_path_factory.getbasetemp()).glob("**/services/*.log"))
    leaks = {}
    for log in logs:
        text = log.read_text(encoding="utf-8", errors="replace")
        hits = sorted(v for v in SENT_PERSONAL if mentions(v, text))
        if hits:
            leaks[str(log)] = len(hits)  # how many, never which: the report itself must not leak
    assert not leaks, f"personal data in clear in service logs: {leaks}"
