"""The registry a service talks to, from its settings: the network adapter when a URL is set
(retries and a circuit breaker), else the embedded synthetic registry. One place for every service,
and :func:`close_registry` for its stop."""

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


async def close_registry(registry: PopulationRegistry | EmployerRegistry) -> None:
    """Release what a registry from :func:`population_registry` / :func:`employer_registry` holds: a
    network adapter's HTTP session (an unclosed one is reported when the process exits); the
    embedded ones hold nothing."""
    if (aclose := getattr(registry, "aclose", None)) is not None:
        await aclose()
