"""What every service is built from: settings, logging, deciders, the command handler, relay, health."""

from .decider import Context, Decider, Rejection
from .handler import CommandHandler, Handled
from .messaging import Unprocessable
from .service import Service
from .settings import ServiceSettings

__all__ = ["CommandHandler", "Context", "Decider", "Handled", "Rejection", "Service", "ServiceSettings", "Unprocessable"]
