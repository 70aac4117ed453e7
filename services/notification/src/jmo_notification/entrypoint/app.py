"""The notification service process (walking skeleton: health, event log and relay; behaviour comes later)."""

from __future__ import annotations

from jmo_runtime import Service, ServiceSettings

NAME = "notification"


def build(settings: ServiceSettings, **overrides: object) -> Service:
    """The notification service, with its store and relay running and no subscribers yet."""
    return Service(NAME, settings, **overrides)  # type: ignore[arg-type]
