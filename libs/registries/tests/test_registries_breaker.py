"""The circuit breaker: closed → opened after N consecutive failures → half-opened → closed."""

from __future__ import annotations

import asyncio

import pytest

from jmo_registries.breaker import CircuitBreaker
from jmo_registries.ports import CircuitOpen, RegistryUnavailable

pytestmark = pytest.mark.unit


class Backend:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = True

    async def call(self, breaker: CircuitBreaker) -> str:
        async with breaker.guard():
            self.calls += 1
            if self.failing:
                raise RegistryUnavailable("down")
            return "ok"


async def fail(backend: Backend, breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(RegistryUnavailable):
            await backend.call(breaker)


async def test_opens_after_threshold_and_sends_nothing_while_open() -> None:
    breaker, backend = CircuitBreaker("t1", failure_threshold=3, cooldown=60), Backend()
    await fail(backend, breaker, 2)
    assert await breaker.state() == "closed"
    await fail(backend, breaker, 1)
    assert await breaker.state() == "opened"
    for _ in range(5):
        with pytest.raises(CircuitOpen):
            await backend.call(breaker)
    assert backend.calls == 3


async def test_only_consecutive_failures_count() -> None:
    breaker, backend = CircuitBreaker("t2", failure_threshold=3, cooldown=60), Backend()
    await fail(backend, breaker, 2)
    backend.failing = False
    assert await backend.call(breaker) == "ok"
    assert await breaker.failure_count() == 0
    backend.failing = True
    await fail(backend, breaker, 2)
    assert await breaker.state() == "closed"


async def test_half_open_probe_closes_on_success() -> None:
    breaker, backend = CircuitBreaker("t3", failure_threshold=2, cooldown=0.1), Backend()
    await fail(backend, breaker, 2)
    assert await breaker.state() == "opened"
    await asyncio.sleep(0.15)
    backend.failing = False
    assert await backend.call(breaker) == "ok"
    assert await breaker.state() == "closed"
    assert backend.calls == 3


async def test_half_open_probe_reopens_on_failure() -> None:
    breaker, backend = CircuitBreaker("t4", failure_threshold=2, cooldown=0.1), Backend()
    await fail(backend, breaker, 2)
    await asyncio.sleep(0.15)
    await fail(backend, breaker, 1)  # the probe is sent and fails
    assert backend.calls == 3 and await breaker.state() == "opened"
    with pytest.raises(CircuitOpen):
        await backend.call(breaker)
    assert backend.calls == 3


async def test_other_errors_are_not_failures() -> None:
    breaker = CircuitBreaker("t5", failure_threshold=1, cooldown=60)
    for exc in (ValueError("bad request"), KeyError("x"), asyncio.CancelledError()):
        with pytest.raises(type(exc)):
            async with breaker.guard():
                raise exc
    assert await breaker.state() == "closed"


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown=0)


def test_a_service_without_a_registry_url_gets_the_embedded_registry_and_with_one_the_http_client_with_its_cooldown() -> None:
    from jmo_registries import EmbeddedEmployerRegistry, EmbeddedPopulationRegistry, HttpEmployerRegistry, HttpPopulationRegistry, employer_registry, population_registry

    assert isinstance(population_registry(None, timeout=1, breaker_cooldown=5), EmbeddedPopulationRegistry)
    assert isinstance(employer_registry("", timeout=1, breaker_cooldown=5), EmbeddedEmployerRegistry)
    dukcapil = population_registry("http://127.0.0.1:9", timeout=1, breaker_cooldown=5)
    employers = employer_registry("http://127.0.0.1:9", timeout=1, breaker_cooldown=5)
    assert isinstance(dukcapil, HttpPopulationRegistry) and isinstance(employers, HttpEmployerRegistry)
    assert (dukcapil.breaker.name, dukcapil.breaker.cooldown) == ("dukcapil", 5)
    assert (employers.breaker.name, employers.breaker.cooldown) == ("employer-registry", 5)
