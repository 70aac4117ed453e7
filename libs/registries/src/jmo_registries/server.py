"""An embedded registry server: the synthetic data set over the HTTP API of :mod:`jmo_registries.network`.

One small ASGI app serves both registries (Dukcapil endpoints under ``/v1/nik``, the employer
registry under ``/v1/peserta``), run by uvicorn on loopback. For tests and demos it can inject
latency and failures (:class:`Faults`) and counts the requests it received per path. It writes no
access log, and logs no request body.

    python -m jmo_registries.server --port 8089 [--latency 0.5] [--failure-rate 0.2]

In tests::

    async with RegistryServer() as server:
        registry = HttpPopulationRegistry(server.base_url)
        server.faults.latency = 2.0   # slower than the client's timeout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import uvicorn

from .dataset import CitizenDataset, default_dataset, membership_to_json
from .embedded import check_identity
from .ports import NikCheck

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY = 16 * 1024


@dataclass
class Faults:
    """Artificial trouble, changeable while the server runs.

    ``latency``: seconds to wait before answering any API request. ``fail_status``: when set,
    every API request is answered with this status. ``fail_next``: the next N API requests are
    answered with 503. ``failure_rate``: the share of the other API requests answered with 503
    (drawn from a seeded RNG). ``/health`` is never affected.
    """

    latency: float = 0.0
    fail_status: int | None = None
    fail_next: int = 0
    failure_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def clear(self) -> None:
        self.latency, self.fail_status, self.fail_next, self.failure_rate = 0.0, None, 0, 0.0

    def failure(self) -> int | None:
        if self.fail_status is not None:
            return self.fail_status
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503
        if self.failure_rate and self.rng.random() < self.failure_rate:
            return 503
        return None


class RegistryApp:
    """The ASGI application. ``requests`` counts the API requests received, by path."""

    def __init__(self, dataset: CitizenDataset | None = None, faults: Faults | None = None) -> None:
        self._dataset = dataset
        self.faults = faults or Faults()
        self.requests: Counter[str] = Counter()
        self._routes: dict[str, Callable[[dict[str, Any]], tuple[int, str, bytes]]] = {
            "/v1/nik/verify": self._verify,
            "/v1/nik/foto": self._photo,
            "/v1/peserta/cari": self._membership,
        }

    @property
    def dataset(self) -> CitizenDataset:
        if self._dataset is None:
            self._dataset = default_dataset()
        return self._dataset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/health" and method == "GET":
            return await _respond(send, 200, *_json({"status": "ok"}))
        handler = self._routes.get(path)
        if handler is None:
            return await _respond(send, 404, *_json({"error": "no such endpoint"}))
        if method != "POST":
            return await _respond(send, 405, *_json({"error": "use POST"}))
        self.requests[path] += 1
        # the fault is drawn when the request arrives: one still waiting out an injected latency when
        # the faults change (its client gave up long ago) must not use up a failure meant for later ones
        failure = self.faults.failure()
        body = await _read_body(receive)
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        if failure is not None:
            return await _respond(send, failure, *_json({"error": "injected failure"}))
        try:
            request = json.loads(body) if body is not None else None
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("nik"), str):
            return await _respond(send, 400, *_json({"error": "body must be a JSON object with a string 'nik'"}))
        try:
            status, content_type, payload = handler(request)
        except _BadRequest as exc:
            return await _respond(send, 400, *_json({"error": str(exc)}))
        await _respond(send, status, content_type, payload)

    def _verify(self, request: dict[str, Any]) -> tuple[int, str, bytes]:
        name, born = request.get("nama_lgkp"), request.get("tgl_lhr")
        if not isinstance(name, str):
            raise _BadRequest("'nama_lgkp' must be a string")
        try:
            birth_date = date.fromisoformat(born) if born is not None else None
        except (TypeError, ValueError):
            raise _BadRequest("'tgl_lhr' must be YYYY-MM-DD or null") from None
        result = check_identity(self.dataset, request["nik"], name, birth_date)
        return (200, *_json({"hasil": result.value}))

    def _photo(self, request: dict[str, Any]) -> tuple[int, str, bytes]:
        path = self.dataset.photo_path(request["nik"])
        if path is None or not path.is_file():
            return (404, *_json({"hasil": NikCheck.NOT_FOUND.value}))
        content_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
        return 200, content_type, path.read_bytes()

    def _membership(self, request: dict[str, Any]) -> tuple[int, str, bytes]:
        membership = self.dataset.membership(request["nik"])
        if membership is None:
            return (404, *_json({"hasil": NikCheck.NOT_FOUND.value}))
        return (200, *_json(membership_to_json(membership)))


class _BadRequest(Exception):
    pass


def _json(data: Any) -> tuple[str, bytes]:
    return "application/json", json.dumps(data, ensure_ascii=False).encode()


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or ``None`` when it is larger than :data:`MAX_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, content_type: str, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store")],
    })
    await send({"type": "http.response.body", "body": body})


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the host process (a test run, a service) keeps Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RegistryServer:
    """Runs :class:`RegistryApp` with uvicorn in the current event loop, on ``host``:``port``
    (port 0 = any free port). Use as ``async with``; ``base_url`` is known once started."""

    def __init__(
        self,
        dataset: CitizenDataset | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.app = RegistryApp(dataset, faults)
        self.host, self.port = host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def faults(self) -> Faults:
        return self.app.faults

    @property
    def requests(self) -> Counter[str]:
        return self.app.requests

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, *, startup_timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=1, timeout_keep_alive=5,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(startup_timeout):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the startup error
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, timeout=10)
            self._server = self._task = None

    async def __aenter__(self) -> RegistryServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the synthetic registries over HTTP on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of API requests answered 503")
    args = parser.parse_args(argv)
    app = RegistryApp(faults=Faults(latency=args.latency, failure_rate=args.failure_rate))
    print(f"registries on http://{args.host}:{args.port} ({len(app.dataset)} citizens)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
