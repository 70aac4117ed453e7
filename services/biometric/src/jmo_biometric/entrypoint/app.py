"""The biometric service process (walking skeleton: health, event log and relay; behaviour comes later)."""

from __future__ import annotations

from jmo_runtime import Service, ServiceSettings

NAME = "biometric"


def build(settings: ServiceSettings, **overrides: object) -> Service:
    """The biometric service, with its store and relay running and no subscribers yet."""
    return Service(NAME, settings, **overrides)  # type: ignore[arg-type]
