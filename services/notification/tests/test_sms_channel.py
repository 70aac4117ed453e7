"""The SMS adapter against a provider whose answers each test chooses (an aiohttp server on loopback):
what it sends, and how it reads each kind of answer."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from jmo_notification.adapters.channels import HttpSmsChannel, Outgoing, PermanentDeliveryError, TransientDeliveryError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NID = "4e5f6a7b8c9d40e1f2a3b4c5d6e7f8a9"
MESSAGE = Outgoing(NID, "+6281234567890", None, "JMO: Kode OTP 048213")


@dataclass
class Provider:
    """Answers every POST with ``answer(request)``; keeps the headers and JSON body of each."""

    url: str
    received: list[tuple[dict[str, str], object]] = field(default_factory=list)
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets a held answer go

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append((dict(request.headers), await request.json()))
        assert self.answer is not None
        return await self.answer(request)


def status(code: int, body: bytes = b"", content_type: str = "application/json"):  # noqa: ANN201
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body, content_type=content_type)
    return answer


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    chosen = Provider(url="")
    app = web.Application()
    app.router.add_post("/messages", chosen.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        chosen.url = str(server.make_url("/messages"))
        yield chosen
        chosen.release.set()


async def test_the_message_the_idempotency_key_and_the_api_key_are_sent_and_the_provider_id_returned(provider: Provider) -> None:
    provider.answer = status(202, b'{"id": "sms-77", "status": "queued"}')
    channel = HttpSmsChannel(provider.url, sender="BPJSTK", api_key="provider-secret", timeout=5)
    assert await channel.send(MESSAGE) == "sms-77"
    await channel.close()
    [(headers, body)] = provider.received
    assert headers["Idempotency-Key"] == NID and headers["Authorization"] == "Bearer provider-secret"
    assert body == {"to": "+6281234567890", "body": "JMO: Kode OTP 048213", "sender": "BPJSTK"}


@pytest.mark.parametrize("answer", [b"", b"OK", b'{"status": "queued"}', b'["sms-77"]'])
async def test_a_2xx_without_an_id_is_a_success_without_one(provider: Provider, answer: bytes) -> None:
    provider.answer = status(200, answer, "text/plain")
    channel = HttpSmsChannel(provider.url, sender="BPJSTK", timeout=5)
    assert await channel.send(MESSAGE) is None
    await channel.close()
    assert "Authorization" not in provider.received[0][0]  # no api key, no header


@pytest.mark.parametrize(("code", "error"), [(500, TransientDeliveryError), (502, TransientDeliveryError), (408, TransientDeliveryError),
                                             (425, TransientDeliveryError), (429, TransientDeliveryError), (400, PermanentDeliveryError),
                                             (401, PermanentDeliveryError), (404, PermanentDeliveryError), (422, PermanentDeliveryError)])
async def test_statuses_are_transient_or_permanent(provider: Provider, code: int, error: type[Exception]) -> None:
    provider.answer = status(code, b'{"error": "x"}')
    channel = HttpSmsChannel(provider.url, sender="BPJSTK", timeout=5)
    with pytest.raises(error) as excinfo:
        await channel.send(MESSAGE)
    await channel.close()
    assert type(excinfo.value) is error and str(excinfo.value) == f"SMS provider answered HTTP {code}"


@pytest.mark.parametrize("trouble", ["answers too late", "drops the connection"])
async def test_a_provider_that_answers_too_late_or_drops_the_connection_is_transient(provider: Provider, trouble: str) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        if trouble == "answers too late":
            await provider.release.wait()
        else:
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=202)

    provider.answer = answer
    channel = HttpSmsChannel(provider.url, sender="BPJSTK", timeout=0.2)
    with pytest.raises(TransientDeliveryError, match="not reachable"):
        await channel.send(MESSAGE)
    await channel.close()


def free_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_provider_is_transient_and_says_nothing_personal() -> None:
    channel = HttpSmsChannel(f"http://127.0.0.1:{free_port()}/messages", sender="BPJSTK", api_key="provider-secret", timeout=5)
    with pytest.raises(TransientDeliveryError) as excinfo:
        await channel.send(MESSAGE)
    await channel.close()
    assert excinfo.value.reason.startswith("SMS provider not reachable")
    assert MESSAGE.to not in str(excinfo.value) and "provider-secret" not in str(excinfo.value)


async def test_a_given_session_is_used_and_left_open(provider: Provider) -> None:
    provider.answer = status(202, b'{"id": "sms-1"}')
    async with aiohttp.ClientSession() as session:
        channel = HttpSmsChannel(provider.url, sender="BPJSTK", api_key="k", session=session)
        assert await channel.send(MESSAGE) == "sms-1"
        await channel.close()
        assert not session.closed
    assert provider.received[0][0]["Authorization"] == "Bearer k"


def test_a_channel_made_outside_an_event_loop_makes_its_session_in_the_loop_that_uses_it() -> None:
    port = free_port()
    channel = HttpSmsChannel(f"http://127.0.0.1:{port}/messages", sender="BPJSTK", timeout=5)  # no event loop runs here

    async def use() -> None:
        app = web.Application()
        app.router.add_post("/messages", status(202, json.dumps({"id": "sms-9"}).encode()))
        async with TestServer(app, host="127.0.0.1", port=port):
            assert await channel.send(MESSAGE) == "sms-9"
        await channel.close()
        assert channel._session.made is not None and channel._session.made.closed

    asyncio.run(use())
