"""Network adapters for the registries: JSON over HTTP with httpx.

The API (served for development and tests by :mod:`jmo_registries.server`). Every lookup is a
``POST`` with the NIK in the JSON body, so a NIK never appears in a URL, an access log or a proxy
log::

    POST /v1/nik/verify    {"nik": "...", "nama_lgkp": "...", "tgl_lhr": "YYYY-MM-DD" | null}
        200 {"hasil": "SESUAI" | "TIDAK SESUAI" | "DATA TIDAK DITEMUKAN"}
    POST /v1/nik/foto      {"nik": "..."}
        200 image/jpeg or image/png bytes | 404 {"hasil": "DATA TIDAK DITEMUKAN"}
    POST /v1/peserta/cari  {"nik": "..."}
        200 {"kpj_number", "employer_npp", "employer_name", "member_since": "YYYY-MM-DD",
             "programs": [...], "status": "ACTIVE" | "INACTIVE"} | 404 {"hasil": "DATA TIDAK DITEMUKAN"}
    GET  /health           200 {"status": "ok"}

Failure handling, per call:

* each attempt has a timeout (``timeout`` seconds, connect/read/write/pool);
* an attempt that times out, cannot connect, or gets a 5xx is retried, up to ``attempts`` attempts
  in total, waiting an exponentially growing, jittered delay (tenacity) in between;
* every attempt passes through a :class:`~jmo_registries.breaker.CircuitBreaker`: after N
  consecutive failed attempts the circuit opens and calls fail at once with
  :class:`~jmo_registries.ports.CircuitOpen` (a :class:`RegistryUnavailable`) without sending;
* when the attempts are used up: :class:`~jmo_registries.ports.RegistryUnavailable`;
* 401 and 403 (our credentials refused), 408, 425 and 429 are "try later" like a 5xx: they say
  nothing about the request, and a rotated key or a rate limit affects every registration alike;
  waiting (and opening the circuit) is right, failing each registration is not;
* any other 4xx (other than 404 where it means "not found"), or an answer that does not follow
  the API: :class:`~jmo_registries.ports.RegistryError`, not retried, not a breaker failure.

Logs and exception messages carry no personal data; NIKs in logs are masked (``3201********0001``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .breaker import CircuitBreaker
from .dataset import membership_from_json
from .nik import mask_nik
from .ports import Membership, NikCheck, RegistryError, RegistryUnavailable

log = logging.getLogger(__name__)

NOT_FOUND_BODY = {"hasil": NikCheck.NOT_FOUND.value}

#: Client-error statuses that say "not now" rather than "not this request".
TRY_LATER = frozenset({401, 403, 408, 425, 429})


class _AttemptFailed(RegistryUnavailable):
    """One attempt failed in a way worth retrying (internal; counted by the breaker)."""


class _JsonRegistryClient:
    """Timeouts, retries with backoff and jitter, and the circuit breaker around JSON POSTs."""

    system = "registry"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        breaker: CircuitBreaker | None = None,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.attempts = attempts
        self.breaker = breaker or CircuitBreaker(self.system)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout), headers=dict(headers or {})
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self):  # noqa: ANN204 - returns the subclass
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _attempt(self, path: str, body: dict[str, Any]) -> httpx.Response:
        async with self.breaker.guard():
            try:
                response = await self._client.post(path, json=body)
            except httpx.TimeoutException:
                raise _AttemptFailed("timeout") from None
            except httpx.TransportError as exc:
                raise _AttemptFailed(f"transport error ({type(exc).__name__})") from None
            if response.status_code >= 500 or response.status_code in TRY_LATER:
                raise _AttemptFailed(f"HTTP {response.status_code}")
            return response

    async def _post(self, operation: str, path: str, body: dict[str, Any]) -> httpx.Response:
        masked = mask_nik(body.get("nik", ""))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s %s nik=%s attempt %d/%d failed (%s); retrying in %.2fs",
                self.system, operation, masked, state.attempt_number, self.attempts, exc,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=self._backoff, max=self._max_backoff, jitter=self._backoff),
            retry=retry_if_exception_type(_AttemptFailed),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            response = await retrying(self._attempt, path, body)
        except _AttemptFailed as exc:
            log.warning("%s %s nik=%s unavailable after %d attempts (%s)",
                        self.system, operation, masked, self.attempts, exc)
            raise RegistryUnavailable(f"{self.system} {operation}: {exc} after {self.attempts} attempts") from None
        if response.status_code >= 400 and response.status_code != 404:
            raise RegistryError(f"{self.system} {operation}: rejected with HTTP {response.status_code}")
        return response

    def _json(self, operation: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise RegistryError(f"{self.system} {operation}: answer is not JSON") from None


class HttpPopulationRegistry(_JsonRegistryClient):
    """:class:`~jmo_registries.ports.PopulationRegistry` over a Dukcapil-like HTTP/JSON API.

    ``HttpPopulationRegistry(base_url, *, timeout=5.0, attempts=3, breaker=None, backoff=0.2,
    max_backoff=2.0, headers=None, client=None, max_photo_bytes=5 MiB)``; ``headers`` carries the
    institution's credentials (e.g. ``Authorization``). Close with :meth:`aclose` or ``async with``.
    """

    system = "dukcapil"

    def __init__(self, base_url: str, *, max_photo_bytes: int = 5 * 1024 * 1024, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.max_photo_bytes = max_photo_bytes

    async def verify(self, nik: str, full_name: str, birth_date: date | None = None) -> NikCheck:
        body = {"nik": nik, "nama_lgkp": full_name, "tgl_lhr": birth_date.isoformat() if birth_date else None}
        response = await self._post("verify", "/v1/nik/verify", body)
        if response.status_code == 404:
            return NikCheck.NOT_FOUND
        data = self._json("verify", response)
        try:
            return NikCheck(data["hasil"])
        except (TypeError, KeyError, ValueError):
            raise RegistryError("dukcapil verify: answer without a known 'hasil'") from None

    async def ktp_photo(self, nik: str) -> bytes | None:
        response = await self._post("photo", "/v1/nik/foto", {"nik": nik})
        if response.status_code == 404:
            return None
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("image/jpeg", "image/png"):
            raise RegistryError(f"dukcapil photo: unexpected content type {content_type or 'none'}")
        if len(response.content) > self.max_photo_bytes:
            raise RegistryError("dukcapil photo: image larger than allowed")
        return response.content


class HttpEmployerRegistry(_JsonRegistryClient):
    """:class:`~jmo_registries.ports.EmployerRegistry` over the employer registry's HTTP/JSON API.

    Same keyword arguments and failure handling as :class:`HttpPopulationRegistry`.
    """

    system = "employer-registry"

    async def membership(self, nik: str) -> Membership | None:
        response = await self._post("membership", "/v1/peserta/cari", {"nik": nik})
        if response.status_code == 404:
            return None
        data = self._json("membership", response)
        try:
            return membership_from_json(data)
        except (TypeError, KeyError, ValueError):
            raise RegistryError("employer-registry membership: answer does not follow the API") from None
