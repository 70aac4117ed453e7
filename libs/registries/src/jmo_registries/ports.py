"""The ports: what a service may ask the population registry (Dukcapil) and the employer registry.

Every adapter (the embedded defaults over the synthetic data set, the HTTP adapters) implements
these protocols. Two kinds of failure exist:

* :class:`RegistryUnavailable` — "try later": a timeout, a 5xx answer, a connection failure, or the
  circuit breaker being open. The caller should wait and retry (a registration waits rather than
  fails while Dukcapil is down, SPEC §3.3).
* :class:`RegistryError` — the registry refused the request as malformed (a 4xx other than "not
  found"). Retrying the same request will not help; it is a bug or a contract mismatch.

Exception messages never contain personal data (no NIK, no name).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable


class NikCheck(enum.Enum):
    """Dukcapil's answer to a verification: the submitted fields match the NIK's record or not.

    Dukcapil never says *which* field did not match. The values are the wire strings.
    """

    SESUAI = "SESUAI"
    TIDAK_SESUAI = "TIDAK SESUAI"
    NOT_FOUND = "DATA TIDAK DITEMUKAN"


@dataclass(frozen=True, slots=True)
class Membership:
    """A worker's membership in BPJS Ketenagakerjaan as enrolled by the employer (category PU)."""

    kpj_number: str  #: 11-digit participant card number
    employer_npp: str  #: the employer's registration number (NPP)
    employer_name: str
    member_since: date
    programs: tuple[str, ...]  #: e.g. ("JKK", "JKM", "JHT", "JP")
    active: bool  #: False when the employer has reported the worker as no longer employed


class RegistryUnavailable(Exception):
    """The registry cannot answer now (timeout, 5xx, connection failure, circuit open): try later."""

    #: Read by the services' consumers: a message waiting on this is redelivered until the registry
    #: is back, never parked (``jmo_runtime.messaging.is_transient``).
    transient = True


class CircuitOpen(RegistryUnavailable):
    """The circuit breaker is open: no request was sent."""


class RegistryError(Exception):
    """The registry rejected the request itself (malformed, unauthorised): retrying will not help."""


@runtime_checkable
class PopulationRegistry(Protocol):
    """The population registry (Dukcapil): verification of identity data and the KTP photo."""

    async def verify(self, nik: str, full_name: str, birth_date: date | None = None) -> NikCheck:
        """Whether ``full_name`` (and ``birth_date`` when given) match the record of ``nik``.

        Names are compared normalised (trimmed, single spaces, upper case). Returns
        :attr:`NikCheck.NOT_FOUND` for an unknown or malformed NIK.

        :raises RegistryUnavailable: the registry cannot answer now.
        """
        ...

    async def ktp_photo(self, nik: str) -> bytes | None:
        """The KTP photo (JPEG or PNG bytes) of ``nik``, or ``None`` when there is none.

        Used only as the reference face for selfie matching; never store it.

        :raises RegistryUnavailable: the registry cannot answer now.
        """
        ...


@runtime_checkable
class EmployerRegistry(Protocol):
    """The employer registry: memberships enrolled by employers (the source of a PU worker's KPJ)."""

    async def membership(self, nik: str) -> Membership | None:
        """The membership of the worker with ``nik``, or ``None`` when no employer enrolled them.

        An inactive membership is returned with ``active=False``; the caller decides.

        :raises RegistryUnavailable: the registry cannot answer now.
        """
        ...
