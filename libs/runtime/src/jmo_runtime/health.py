"""``GET /health``: 200 with JSON when broker and store answer, 503 with the reasons otherwise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from faststream.asgi import AsgiResponse, get

Check = Callable[[], Awaitable[str | None]]  # None when healthy, else the reason


def health_route(service: str, checks: dict[str, Check], timeout: float = 3.0):  # noqa: ANN201 (faststream handler type)
    """An ASGI route running every check concurrently, each bounded by ``timeout`` seconds."""

    @get(include_in_schema=False)
    async def health(scope: object) -> AsgiResponse:  # noqa: ARG001
        async def run(check: Check) -> str | None:
            try:
                return await asyncio.wait_for(check(), timeout)
            except TimeoutError:
                return f"no answer within {timeout:g}s"
            except Exception as e:  # a health check reports, it does not raise
                return f"{type(e).__name__}: {e}"

        results = dict(zip(checks, await asyncio.gather(*(run(c) for c in checks.values())), strict=True))
        ok = all(r is None for r in results.values())
        body = {"service": service, "status": "ok" if ok else "unavailable", "checks": {k: v or "ok" for k, v in results.items()}}
        return AsgiResponse(json.dumps(body).encode(), 200 if ok else 503, headers={"content-type": "application/json"})

    return health
