"""The registry a service talks to, from its settings: the network adapter when a URL is set
(retries and a circuit breaker), else the embedded synthetic registry. One place for every service."""

from __future__ import annotations

from .embedded import EmbeddedEmployerRegistry, EmbeddedPopulationRegistry
from .ports import EmployerRegistry, PopulationRegistry


def population_registry(url: str | None, *, timeout: float, breaker_cooldown: float) -> PopulationRegistry:
    """Dukcapil at ``url`` (not called for ``breaker_cooldown`` seconds after repeated failures), or the embedded one."""
    if not url:
        return EmbeddedPopulationRegistry()
    from .breaker import CircuitBreaker
    from .network import HttpPopulationRegistry

    return HttpPopulationRegistry(url, timeout=timeout, breaker=CircuitBreaker("dukcapil", cooldown=breaker_cooldown))


def employer_registry(url: str | None, *, timeout: float, breaker_cooldown: float) -> EmployerRegistry:
    """The employer registry at ``url`` (with the same breaker), or the embedded one."""
    if not url:
        return EmbeddedEmployerRegistry()
    from .breaker import CircuitBreaker
    from .network import HttpEmployerRegistry

    return HttpEmployerRegistry(url, timeout=timeout, breaker=CircuitBreaker("employer-registry", cooldown=breaker_cooldown))
