"""What every service is built from: settings, logging, deciders, the command handler, relay, health.

The decider core (``Context``, ``Decider``, ``Rejection``; modules ``decider``, ``rules``,
``privacy``) imports no driver, logger or clock, so a domain module that uses it stays pure; the
infrastructure (``Service``, ``CommandHandler``, ``ServiceSettings``, ``Unprocessable``...) is
imported from here only when it is first asked for. ``tests/test_domain_purity.py`` holds that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decider import Context, Decider, InvariantBroken, Rejection, require

if TYPE_CHECKING:
    from .handler import CommandHandler, Handled
    from .messaging import Unprocessable
    from .service import Service, Subscription
    from .settings import ServiceSettings

_INFRASTRUCTURE = {
    "CommandHandler": "handler",
    "Handled": "handler",
    "Unprocessable": "messaging",
    "Service": "service",
    "Subscription": "service",
    "ServiceSettings": "settings",
}

__all__ = ["CommandHandler", "Context", "Decider", "Handled", "InvariantBroken", "Rejection", "Service", "ServiceSettings", "Subscription", "Unprocessable", "require"]


def __getattr__(name: str) -> Any:
    if name in _INFRASTRUCTURE:
        from importlib import import_module

        return getattr(import_module(f".{_INFRASTRUCTURE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
