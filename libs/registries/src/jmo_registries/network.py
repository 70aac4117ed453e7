"""Network adapters for the registries: JSON over HTTP with aiohttp.

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

* each attempt has a timeout (``timeout`` seconds to get a connection, and at most ``timeout``
  seconds between two reads of the answer);
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

The :class:`aiohttp.ClientSession` is made on first use, inside the running event loop (aiohttp
needs one; services build their adapters before theirs runs), and closed by ``aclose``. Cookies a
registry sets are not kept, and proxy settings in the environment are not read.

Logs and exception messages carry no personal data; NIKs in logs are masked (``3201********0001``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp
from jmo_runtime.http_client import SessionOnFirstUse, attempt_timeout
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


@dataclass(frozen=True)
class _Answer:
    """What an attempt got: the status, the ``Content-Type`` header as sent, and the body (or its
    first bytes, when the call set a limit)."""

    status: int
    content_type: str
    body: bytes


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The first ``limit`` bytes of a body (all of it when shorter): never more, however much is sent."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := await stream.read(limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


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
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.attempts = attempts
        self.breaker = breaker or CircuitBreaker(self.system)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._base_url = base_url.rstrip("/")
        self._headers = dict(headers or {})  # sent with every request, on our session or a given one
        self._timeout = attempt_timeout(timeout)
        self._session = SessionOnFirstUse(session)

    async def aclose(self) -> None:
        """Close the session this adapter made (a given one is its owner's to close)."""
        await self._session.close()

    async def __aenter__(self):  # noqa: ANN204 - returns the subclass
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _attempt(self, path: str, body: dict[str, Any], limit: int | None) -> _Answer:
        async with self.breaker.guard():
            try:
                async with self._session().post(self._base_url + path, json=body, headers=self._headers, timeout=self._timeout) as response:
                    if response.status >= 500 or response.status in TRY_LATER:
                        raise _AttemptFailed(f"HTTP {response.status}")
                    content = await (response.read() if limit is None else _read_at_most(response.content, limit))
                    return _Answer(response.status, response.headers.get("Content-Type", ""), content)
            except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
                raise _AttemptFailed("timeout") from None
            except aiohttp.ClientError as exc:
                raise _AttemptFailed(f"transport error ({type(exc).__name__})") from None

    async def _post(self, operation: str, path: str, body: dict[str, Any], *, limit: int | None = None) -> _Answer:
        """POST ``body`` with retries; the answer (4xx other than 404 raise). ``limit``: read at most
        that many bytes of the body."""
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
            answer = await retrying(self._attempt, path, body, limit)
        except _AttemptFailed as exc:
            log.warning("%s %s nik=%s unavailable after %d attempts (%s)",
                        self.system, operation, masked, self.attempts, exc)
            raise RegistryUnavailable(f"{self.system} {operation}: {exc} after {self.attempts} attempts") from None
        if answer.status >= 400 and answer.status != 404:
            raise RegistryError(f"{self.system} {operation}: rejected with HTTP {answer.status}")
        return answer

    def _json(self, operation: str, answer: _Answer) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError:
            raise RegistryError(f"{self.system} {operation}: answer is not JSON") from None


class HttpPopulationRegistry(_JsonRegistryClient):
    """:class:`~jmo_registries.ports.PopulationRegistry` over a Dukcapil-like HTTP/JSON API.

    ``HttpPopulationRegistry(base_url, *, timeout=5.0, attempts=3, breaker=None, backoff=0.2,
    max_backoff=2.0, headers=None, session=None, max_photo_bytes=5 MiB)``; ``headers`` carries the
    institution's credentials (e.g. ``Authorization``) on every request; ``session`` an
    :class:`aiohttp.ClientSession` to use instead of one of its own (made on first use). A KTP photo
    is read up to ``max_photo_bytes``: a larger one is a :class:`RegistryError`, and what is sent
    beyond is never read. Close with :meth:`aclose` or ``async with``.
    """

    system = "dukcapil"

    def __init__(self, base_url: str, *, max_photo_bytes: int = 5 * 1024 * 1024, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.max_photo_bytes = max_photo_bytes

    async def verify(self, nik: str, full_name: str, birth_date: date | None = None) -> NikCheck:
        body = {"nik": nik, "nama_lgkp": full_name, "tgl_lhr": birth_date.isoformat() if birth_date else None}
        answer = await self._post("verify", "/v1/nik/verify", body)
        if answer.status == 404:
            return NikCheck.NOT_FOUND
        data = self._json("verify", answer)
        try:
            return NikCheck(data["hasil"])
        except (TypeError, KeyError, ValueError):
            raise RegistryError("dukcapil verify: answer without a known 'hasil'") from None

    async def ktp_photo(self, nik: str) -> bytes | None:
        answer = await self._post("photo", "/v1/nik/foto", {"nik": nik}, limit=self.max_photo_bytes + 1)
        if answer.status == 404:
            return None
        content_type = answer.content_type.split(";")[0].strip().lower()
        if content_type not in ("image/jpeg", "image/png"):
            raise RegistryError(f"dukcapil photo: unexpected content type {content_type or 'none'}")
        if len(answer.body) > self.max_photo_bytes:
            raise RegistryError("dukcapil photo: image larger than allowed")
        return answer.body


class HttpEmployerRegistry(_JsonRegistryClient):
    """:class:`~jmo_registries.ports.EmployerRegistry` over the employer registry's HTTP/JSON API.

    Same keyword arguments and failure handling as :class:`HttpPopulationRegistry`.
    """

    system = "employer-registry"

    async def membership(self, nik: str) -> Membership | None:
        answer = await self._post("membership", "/v1/peserta/cari", {"nik": nik})
        if answer.status == 404:
            return None
        data = self._json("membership", answer)
        try:
            return membership_from_json(data)
        except (TypeError, KeyError, ValueError):
            raise RegistryError("employer-registry membership: answer does not follow the API") from None
