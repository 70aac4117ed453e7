"""Running a service process: settings from the environment, logging once, uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
import uvloop

from .logging import configure_logging
from .service import Service
from .settings import ServiceSettings


def run_service(name: str, build: Callable[[ServiceSettings], Service], *, settings_class: type[ServiceSettings] = ServiceSettings) -> None:
    """Build the service from the environment and serve it (health on 127.0.0.1 by default)."""
    settings = settings_class()
    configure_logging(name, fmt=settings.log_format, level=settings.log_level)
    app = build(settings).asgi()
    config = uvicorn.Config(app, host=settings.health_host, port=settings.health_port_for(name), log_config=None, access_log=False, lifespan="on")
    uvloop.run(uvicorn.Server(config).serve())  # libuv's loop: the services are many small socket round trips
