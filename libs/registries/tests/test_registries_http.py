"""The HTTP adapters against the embedded registry server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from jmo_registries import (
    CircuitOpen,
    EmbeddedEmployerRegistry,
    EmployerRegistry,
    NikCheck,
    PopulationRegistry,
    RegistryError,
    RegistryUnavailable,
    close_registry,
    default_dataset,
)
from jmo_registries.breaker import CircuitBreaker
from jmo_registries.network import HttpEmployerRegistry, HttpPopulationRegistry
from jmo_registries.server import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAST = {"timeout": 0.3, "attempts": 3, "backoff": 0.02, "max_backoff": 0.05}
UNKNOWN = "3201011205900001"


def first(pred):  # noqa: ANN001, ANN201
    return next(r for r in default_dataset() if pred(r))


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[RegistryServer]:
    async with RegistryServer() as s:
        yield s


@pytest.fixture(autouse=True)
def clean(server: RegistryServer) -> None:
    server.faults.clear()
    server.requests.clear()


@pytest.fixture
async def dukcapil(server: RegistryServer) -> AsyncIterator[HttpPopulationRegistry]:
    breaker = CircuitBreaker("dukcapil-test", failure_threshold=5, cooldown=60)
    async with HttpPopulationRegistry(server.base_url, breaker=breaker, **FAST) as registry:
        yield registry


@pytest.fixture
async def employers(server: RegistryServer) -> AsyncIterator[HttpEmployerRegistry]:
    breaker = CircuitBreaker("employers-test", failure_threshold=5, cooldown=60)
    async with HttpEmployerRegistry(server.base_url, breaker=breaker, **FAST) as registry:
        yield registry


async def test_adapters_satisfy_the_ports(dukcapil: HttpPopulationRegistry, employers: HttpEmployerRegistry) -> None:
    assert isinstance(dukcapil, PopulationRegistry) and isinstance(employers, EmployerRegistry)


async def test_health(server: RegistryServer) -> None:
    async with aiohttp.ClientSession(server.base_url) as client:
        async with client.get("/health") as response:
            assert await response.json() == {"status": "ok"}
        async with client.get("/v1/nik/verify") as response:
            assert response.status == 405
        async with client.post("/v1/nik/verify", data=b"not json") as response:
            assert response.status == 400


async def test_verify_sesuai_tidak_sesuai_and_not_found(dukcapil: HttpPopulationRegistry) -> None:
    r = first(lambda r: True)
    born = date.fromisoformat(r["birth_date"])
    assert await dukcapil.verify(r["nik"], f"  {r['full_name'].lower()}  ", born) is NikCheck.SESUAI
    assert await dukcapil.verify(r["nik"], r["full_name"]) is NikCheck.SESUAI
    assert await dukcapil.verify(r["nik"], "NAMA LAIN", born) is NikCheck.TIDAK_SESUAI
    assert await dukcapil.verify(r["nik"], r["full_name"], born - timedelta(days=1)) is NikCheck.TIDAK_SESUAI
    assert await dukcapil.verify(UNKNOWN, r["full_name"]) is NikCheck.NOT_FOUND


async def test_ktp_photo(dukcapil: HttpPopulationRegistry) -> None:
    r = first(lambda r: (r.get("photo") or "").endswith(".png"))
    assert await dukcapil.ktp_photo(r["nik"]) == default_dataset().photo_path(r["nik"]).read_bytes()  # type: ignore[union-attr]
    assert await dukcapil.ktp_photo(first(lambda r: not r.get("photo"))["nik"]) is None
    assert await dukcapil.ktp_photo(UNKNOWN) is None


async def test_membership(employers: HttpEmployerRegistry) -> None:
    active = first(lambda r: (r.get("employer") or {}).get("status") == "ACTIVE")
    inactive = first(lambda r: (r.get("employer") or {}).get("status") == "INACTIVE")
    m = await employers.membership(active["nik"])
    assert m is not None and m.active and m.kpj_number == active["employer"]["kpj_number"]
    assert m.employer_name == active["employer"]["employer_name"]
    assert (await employers.membership(inactive["nik"])).active is False  # type: ignore[union-attr]
    assert await employers.membership(first(lambda r: "employer" not in r)["nik"]) is None


async def test_no_nik_in_any_url(server: RegistryServer, dukcapil: HttpPopulationRegistry,
                                 employers: HttpEmployerRegistry) -> None:
    r = first(lambda r: "employer" in r)
    await dukcapil.verify(r["nik"], r["full_name"])
    await dukcapil.ktp_photo(r["nik"])
    await employers.membership(r["nik"])
    assert set(server.requests) == {"/v1/nik/verify", "/v1/nik/foto", "/v1/peserta/cari"}


async def test_timeout_is_retried_then_unavailable(server: RegistryServer, dukcapil: HttpPopulationRegistry,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    r = first(lambda r: True)
    server.faults.latency = 1.0  # > the 0.3 s timeout
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(RegistryUnavailable) as excinfo:
        await dukcapil.verify(r["nik"], r["full_name"])
    assert time.monotonic() - started < 3
    assert server.requests["/v1/nik/verify"] == 3
    assert "timeout" in str(excinfo.value)
    # no personal data in the exception or the logs; the NIK appears masked
    text = str(excinfo.value) + "\n".join(rec.getMessage() for rec in caplog.records)
    assert r["nik"] not in text and r["full_name"] not in text
    assert f"{r['nik'][:4]}********{r['nik'][-4:]}" in text


async def test_5xx_is_retried_and_can_succeed(server: RegistryServer, dukcapil: HttpPopulationRegistry) -> None:
    r = first(lambda r: True)
    server.faults.fail_next = 2
    assert await dukcapil.verify(r["nik"], r["full_name"]) is NikCheck.SESUAI
    assert server.requests["/v1/nik/verify"] == 3


async def test_4xx_is_not_retried_nor_a_breaker_failure(server: RegistryServer,
                                                        dukcapil: HttpPopulationRegistry) -> None:
    server.faults.fail_status = 400
    for _ in range(6):
        with pytest.raises(RegistryError):
            await dukcapil.verify(UNKNOWN, "X")
    assert server.requests["/v1/nik/verify"] == 6
    assert await dukcapil.breaker.state() == "closed"


@pytest.mark.parametrize("status", [401, 403, 429])
async def test_refused_credentials_and_rate_limits_mean_try_later(server: RegistryServer, dukcapil: HttpPopulationRegistry, status: int) -> None:
    server.faults.fail_status = status
    with pytest.raises(RegistryUnavailable) as excinfo:
        await dukcapil.verify(UNKNOWN, "X")
    assert f"HTTP {status}" in str(excinfo.value)
    assert server.requests["/v1/nik/verify"] == 3  # retried like a 5xx
    assert await dukcapil.breaker.failure_count() == 3


async def test_unreachable_registry_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    breaker = CircuitBreaker("nowhere", failure_threshold=10, cooldown=60)
    async with HttpEmployerRegistry(f"http://127.0.0.1:{port}", breaker=breaker, **FAST) as registry:
        with pytest.raises(RegistryUnavailable) as excinfo:
            await registry.membership(UNKNOWN)
    assert UNKNOWN not in str(excinfo.value)
    assert await breaker.failure_count() == 3


async def test_breaker_opens_sends_nothing_then_closes_after_recovery(server: RegistryServer) -> None:
    r = first(lambda r: True)
    breaker = CircuitBreaker("dukcapil-breaker", failure_threshold=4, cooldown=0.3)
    async with HttpPopulationRegistry(server.base_url, breaker=breaker, **{**FAST, "attempts": 2}) as dukcapil:
        server.faults.fail_status = 503
        for _ in range(2):  # 2 calls × 2 attempts = 4 consecutive failures
            with pytest.raises(RegistryUnavailable):
                await dukcapil.verify(r["nik"], r["full_name"])
        assert server.requests["/v1/nik/verify"] == 4
        assert await breaker.state() == "opened"

        server.faults.clear()  # the registry is back, but the circuit is still open
        for _ in range(3):
            with pytest.raises(CircuitOpen):
                await dukcapil.verify(r["nik"], r["full_name"])
        assert server.requests["/v1/nik/verify"] == 4  # nothing sent while open

        async with asyncio.timeout(5):  # after the cool-down one probe goes through and closes it
            await asyncio.sleep(0.35)
            assert await dukcapil.verify(r["nik"], r["full_name"]) is NikCheck.SESUAI
        assert await breaker.state() == "closed"
        assert server.requests["/v1/nik/verify"] == 5


async def test_breaker_reopens_when_the_probe_fails(server: RegistryServer) -> None:
    r = first(lambda r: True)
    breaker = CircuitBreaker("dukcapil-reopen", failure_threshold=2, cooldown=0.2)
    async with HttpPopulationRegistry(server.base_url, breaker=breaker, **{**FAST, "attempts": 1}) as dukcapil:
        server.faults.fail_status = 500
        for _ in range(2):
            with pytest.raises(RegistryUnavailable):
                await dukcapil.verify(r["nik"], r["full_name"])
        await asyncio.sleep(0.25)
        with pytest.raises(RegistryUnavailable) as excinfo:  # the probe is sent and fails
            await dukcapil.verify(r["nik"], r["full_name"])
        assert not isinstance(excinfo.value, CircuitOpen)
        assert server.requests["/v1/nik/verify"] == 3
        with pytest.raises(CircuitOpen):
            await dukcapil.verify(r["nik"], r["full_name"])
        assert server.requests["/v1/nik/verify"] == 3


async def test_open_circuit_stops_the_retries_of_a_call(server: RegistryServer) -> None:
    r = first(lambda r: True)
    breaker = CircuitBreaker("dukcapil-midcall", failure_threshold=2, cooldown=60)
    async with HttpPopulationRegistry(server.base_url, breaker=breaker, **{**FAST, "attempts": 5}) as dukcapil:
        server.faults.fail_status = 502
        with pytest.raises(CircuitOpen):
            await dukcapil.verify(r["nik"], r["full_name"])
        assert server.requests["/v1/nik/verify"] == 2


# --- against a server whose answers a test chooses -------------------------------------------------

class Chosen:
    """An aiohttp server on loopback answering every POST with ``answer(request)``; it keeps the
    headers and bodies it received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = answering(lambda: web.json_response({"hasil": "SESUAI"}))
        self.release = asyncio.Event()  # lets a handler that holds its answer finish

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append((request.path, dict(request.headers), await request.read()))
        return await self.answer(request)


@pytest.fixture
async def chosen() -> AsyncIterator[tuple[Chosen, str]]:
    answers = Chosen()
    app = web.Application()
    app.router.add_post("/{path:.*}", answers.handle)
    async with TestServer(app, host="127.0.0.1") as test_server:
        yield answers, str(test_server.make_url("")).rstrip("/")
        answers.release.set()


def answering(make: Callable[[], web.StreamResponse]):  # noqa: ANN201
    """A handler answering each request with a new ``make()``."""
    async def answer(_request: web.Request) -> web.StreamResponse:
        return make()
    return answer


async def test_credentials_go_with_every_request_and_the_nik_only_in_the_body(chosen: tuple[Chosen, str]) -> None:
    answers, url = chosen
    credentials = {"Authorization": "Bearer registry-key", "X-Institution": "BPJSTK"}
    r = first(lambda r: True)
    async with HttpPopulationRegistry(url, headers=credentials, **FAST) as dukcapil, \
            HttpEmployerRegistry(url, headers=credentials, **FAST) as employers:
        assert await dukcapil.verify(r["nik"], r["full_name"]) is NikCheck.SESUAI
        answers.answer = answering(lambda: web.Response(body=b"\x89PNG...", content_type="image/png"))
        assert await dukcapil.ktp_photo(r["nik"]) == b"\x89PNG..."
        answers.answer = answering(lambda: web.json_response(NOT_FOUND, status=404))
        assert await employers.membership(r["nik"]) is None
    assert [path for path, _, _ in answers.received] == ["/v1/nik/verify", "/v1/nik/foto", "/v1/peserta/cari"]
    for path, headers, body in answers.received:
        assert headers["Authorization"] == "Bearer registry-key" and headers["X-Institution"] == "BPJSTK", path
        assert headers["Content-Type"] == "application/json" and json.loads(body)["nik"] == r["nik"], path


NOT_FOUND = {"hasil": "DATA TIDAK DITEMUKAN"}


async def test_a_photo_larger_than_allowed_is_refused_without_reading_the_rest(chosen: tuple[Chosen, str]) -> None:
    answers, url = chosen
    limit = 100_000

    async def endless_photo(request: web.Request) -> web.StreamResponse:
        # more than allowed, then the rest never comes: a client reading the whole body would wait
        # for it until its read timeout (an unavailable registry), not refuse the photo
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        await response.write(b"\xff" * (2 * limit))
        await answers.release.wait()
        return response

    answers.answer = endless_photo
    breaker = CircuitBreaker("dukcapil-big-photo", failure_threshold=5, cooldown=60)
    async with HttpPopulationRegistry(url, breaker=breaker, max_photo_bytes=limit, **FAST) as dukcapil:
        with pytest.raises(RegistryError, match="larger than allowed"):
            await dukcapil.ktp_photo(UNKNOWN)
        assert len(answers.received) == 1  # not retried

        answers.answer = answering(lambda: web.Response(body=b"\xff" * limit, content_type="image/jpeg"))
        assert await dukcapil.ktp_photo(UNKNOWN) == b"\xff" * limit  # exactly the limit is allowed
    assert await breaker.failure_count() == 0


async def test_a_photo_of_another_content_type_and_an_answer_that_is_not_json_are_registry_errors(
        chosen: tuple[Chosen, str]) -> None:
    answers, url = chosen
    async with HttpPopulationRegistry(url, **FAST) as dukcapil:
        answers.answer = answering(lambda: web.Response(text="<html>login</html>", content_type="text/html"))
        with pytest.raises(RegistryError, match="unexpected content type text/html"):
            await dukcapil.ktp_photo(UNKNOWN)
        with pytest.raises(RegistryError, match="not JSON"):
            await dukcapil.verify(UNKNOWN, "X")
        answers.answer = answering(lambda: web.json_response({"hasil": "MUNGKIN"}))
        with pytest.raises(RegistryError, match="hasil"):
            await dukcapil.verify(UNKNOWN, "X")
    assert len(answers.received) == 3  # none retried


async def test_a_connection_dropped_before_the_answer_is_a_transport_error_and_retried(chosen: tuple[Chosen, str]) -> None:
    answers, url = chosen

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    answers.answer = drop
    async with HttpEmployerRegistry(url, **FAST) as employers:
        with pytest.raises(RegistryUnavailable, match="transport error"):
            await employers.membership(UNKNOWN)
    assert len(answers.received) == 3


async def test_a_given_session_is_used_with_the_credentials_and_left_open(chosen: tuple[Chosen, str]) -> None:
    answers, url = chosen
    async with aiohttp.ClientSession() as session:
        async with HttpPopulationRegistry(url, session=session, headers={"Authorization": "Bearer k"}, **FAST) as dukcapil:
            assert await dukcapil.verify(UNKNOWN, "X") is NikCheck.SESUAI
        assert not session.closed
    assert answers.received[0][1]["Authorization"] == "Bearer k"


def test_an_adapter_made_outside_an_event_loop_makes_its_session_in_the_loop_that_uses_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # as a service's build() does, before its event loop runs (aiohttp cannot make a session there)
    employers = HttpEmployerRegistry(f"http://127.0.0.1:{port}", **FAST)

    async def use() -> None:
        async with RegistryServer(port=port):
            assert await employers.membership(UNKNOWN) is None
        await close_registry(employers)  # as the service's stop does
        assert employers._session.made is not None and employers._session.made.closed
        await close_registry(EmbeddedEmployerRegistry())  # holds nothing to close

    asyncio.run(use())
