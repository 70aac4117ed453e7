"""A circuit breaker for the registry adapters, on top of ``purgatory`` (MIT, asyncio-native).

States: **closed** (requests pass; consecutive failures are counted, a success resets the count)
→ **opened** after ``failure_threshold`` consecutive failures (requests fail at once with
:class:`~jmo_registries.ports.CircuitOpen`, nothing is sent) → after ``cooldown`` seconds the next
request passes as a probe (**half-opened**): success closes the circuit, failure opens it again.

Only :class:`~jmo_registries.ports.RegistryUnavailable` counts as a failure: a "not found" or a
rejected request says the registry is up. Cancellation does not count either.

Purgatory keeps the state in a unit of work; the in-memory one is per process. Passing
``purgatory.AsyncRedisUnitOfWork`` would share the state between replicas of a service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from purgatory import AsyncAbstractUnitOfWork, AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from .ports import CircuitOpen, RegistryUnavailable


def _not_a_failure(exc: BaseException) -> bool:
    return not isinstance(exc, RegistryUnavailable)


class CircuitBreaker:
    """One named circuit (e.g. ``"dukcapil"``) guarding calls to one external system."""

    def __init__(
        self,
        name: str = "registry",
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        uow: AsyncAbstractUnitOfWork | None = None,
    ) -> None:
        if failure_threshold < 1 or cooldown <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold,
            default_ttl=cooldown,
            exclude=[(BaseException, _not_a_failure)],
            uow=uow,
        )

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block through the circuit.

        :raises CircuitOpen: the circuit is open; the block did not run.
        """
        breaker = await self._factory.get_breaker(self.name)
        try:
            async with breaker:
                yield
        except OpenedState:
            raise CircuitOpen(f"{self.name}: circuit open, request not sent") from None

    async def state(self) -> str:
        """``"closed"``, ``"opened"`` or ``"half-opened"`` (an opened circuit whose cool-down has
        passed still reads ``"opened"`` until the next request probes it)."""
        breaker = await self._factory.get_breaker(self.name)
        return breaker.context.state

    async def failure_count(self) -> int:
        breaker = await self._factory.get_breaker(self.name)
        return breaker.context.failure_count or 0
