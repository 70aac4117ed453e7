"""Local delivery sinks: an SMTP server and an HTTP SMS endpoint on loopback that keep what they receive.

They stand in for the real email and SMS providers of the notification service in ``make up`` and in
tests, speaking the real protocols (SMTP via aiosmtpd, HTTP/JSON), so a person can read what was sent
(``jmo dev inbox``) and a test can assert on it.

Like real providers, they keep **one message per idempotency key**: the SMS endpoint dedupes on the
``Idempotency-Key`` header and the SMTP server on the ``Message-ID`` header (as a mailbox does). A
sender that re-sends after a crash with the same key therefore produces no second message.

HTTP API (on ``--http-port``):

- ``POST /messages`` JSON ``{"to", "body", "sender"}`` (+ ``Idempotency-Key`` header) → 202 ``{"id"}``
- ``GET /messages[?to=...]`` → every message received (email and SMS) as a JSON array, oldest first
- ``POST /faults`` JSON ``{"channel": "sms"|"email", "fail_next": N, "status": 500}`` answers ``status``
  for the next N deliveries on that channel; ``{"channel": ..., "always": 400}`` for every delivery;
  ``{"channel": ..., "clear": true}`` ends the fault. For email, 5xx/4xx statuses become SMTP replies
  (500 → ``451`` transient, 400 → ``550`` permanent).
- ``GET /health`` → 200

Run: ``python -m jmo_devstack.sinks --smtp-port 2525 --http-port 8086 --inbox .local/state/inbox/messages.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

LOOPBACK = "127.0.0.1"
DEFAULT_SMTP_PORT = 2525
DEFAULT_HTTP_PORT = 8086


@dataclass
class Fault:
    """What a channel answers instead of accepting: ``status`` for the next ``remaining`` deliveries, or always."""

    status: int = 0
    remaining: int = 0
    always: bool = False

    def take(self) -> int | None:
        if self.always:
            return self.status
        if self.remaining > 0:
            self.remaining -= 1
            return self.status
        return None


@dataclass
class Inbox:
    """Messages received, one per idempotency key, appended to ``path`` (JSON lines) when given."""

    path: Path | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=lambda: {"email": Fault(), "sms": Fault()})
    requests: dict[str, int] = field(default_factory=lambda: {"email": 0, "sms": 0})

    def __post_init__(self) -> None:
        if self.path is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    self._remember(json.loads(line))

    def _remember(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message.get("key"):
            self.by_key[message["key"]] = message

    def add(self, *, channel: str, to: str, sender: str, subject: str | None, body: str, key: str | None) -> tuple[dict[str, Any], bool]:
        """Keep a message; returns it and whether it was a duplicate of an earlier one with the same key."""
        if key and key in self.by_key:
            return self.by_key[key], True
        message = {
            "id": secrets.token_hex(8), "channel": channel, "to": to, "sender": sender, "subject": subject, "body": body,
            "key": key, "received_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        self._remember(message)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(message, ensure_ascii=False) + "\n")
        return message, False

    def select(self, to: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages if to is None or m["to"] == to]


def read_inbox(path: Path, *, to: str | None = None) -> list[dict[str, Any]]:
    """What the sinks kept in ``path`` (oldest first), optionally only messages to ``to``."""
    return Inbox(path).select(to) if path.exists() else []


class SmtpSink:
    """aiosmtpd handler: one inbox message per recipient, deduplicated by Message-ID."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.inbox.requests["email"] += 1
        status = self.inbox.faults["email"].take()
        if status is not None:
            return "550 5.7.1 Rejected by the sink's fault switch" if 400 <= status < 500 else "451 4.3.0 Sink temporarily unavailable"
        parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        body_part = parsed.get_body(preferencelist=("plain",)) if parsed.is_multipart() else parsed
        body = body_part.get_content().replace("\r\n", "\n").rstrip("\n") if body_part is not None else ""
        key = str(parsed.get("Message-ID") or "") or None
        for rcpt in envelope.rcpt_tos:
            self.inbox.add(channel="email", to=rcpt, sender=envelope.mail_from, subject=str(parsed.get("Subject") or ""), body=body, key=f"{key}|{rcpt}" if key else None)
        return "250 2.0.0 OK"


class HttpSink:
    """A minimal ASGI app: the SMS endpoint, the inbox reader and the fault switch."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, answer = self.route(method, path, parse_qs(scope.get("query_string", b"").decode()), headers, body)
        payload = json.dumps(answer, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/health":
            return 200, {"status": "ok"}
        if path == "/messages" and method == "GET":
            return 200, self.inbox.select(query.get("to", [None])[0])
        if path == "/messages" and method == "POST":
            self.inbox.requests["sms"] += 1
            status = self.inbox.faults["sms"].take()
            if status is not None:
                return status, {"error": "fault switch"}
            try:
                data = json.loads(body)
                to, text = str(data["to"]), str(data["body"])
            except (ValueError, KeyError, TypeError):
                return 400, {"error": "expected JSON {to, body, sender}"}
            message, duplicate = self.inbox.add(channel="sms", to=to, sender=str(data.get("sender", "")), subject=None, body=text, key=headers.get("idempotency-key"))
            return 202, {"id": message["id"], "duplicate": duplicate}
        if path == "/faults" and method == "POST":
            data = json.loads(body or b"{}")
            channel = data.get("channel", "sms")
            if channel not in self.inbox.faults:
                return 400, {"error": "channel must be email or sms"}
            if data.get("clear"):
                self.inbox.faults[channel] = Fault()
            elif "always" in data:
                self.inbox.faults[channel] = Fault(status=int(data["always"]), always=True)
            else:
                self.inbox.faults[channel] = Fault(status=int(data.get("status", 500)), remaining=int(data.get("fail_next", 1)))
            return 200, {"channel": channel, "requests": self.inbox.requests[channel]}
        if path == "/requests" and method == "GET":
            return 200, self.inbox.requests
        return 404, {"error": "not found"}


async def serve(host: str, smtp_port: int, http_port: int, inbox_path: Path | None) -> None:
    """Run both sinks until cancelled."""
    import uvicorn
    from aiosmtpd.smtp import SMTP

    inbox = Inbox(inbox_path)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SMTP(SmtpSink(inbox), hostname="jmo-sink.local"), host=host, port=smtp_port)
    config = uvicorn.Config(HttpSink(inbox), host=host, port=http_port, log_level="warning", access_log=False, lifespan="off")
    try:
        await uvicorn.Server(config).serve()
    finally:
        smtp.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jmo_devstack.sinks", description="Local SMTP and SMS sinks for the notification service.")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--smtp-port", type=int, default=DEFAULT_SMTP_PORT)
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--inbox", type=Path, default=None, help="JSON-lines file to keep messages in (memory only when absent).")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.smtp_port, args.http_port, args.inbox))


if __name__ == "__main__":
    main()
