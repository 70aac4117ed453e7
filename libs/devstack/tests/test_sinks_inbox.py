"""The sinks' inbox: one message per idempotency key, kept in a file that `jmo dev inbox` reads."""

from __future__ import annotations

import pytest

from jmo_devstack.sinks import Fault, Inbox, read_inbox

pytestmark = pytest.mark.unit


def test_one_message_per_key_kept_across_restarts_in_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "inbox" / "messages.jsonl"
    inbox = Inbox(path)
    first, duplicate = inbox.add(channel="sms", to="+6281", sender="BPJSTK", subject=None, body="a", key="k1")
    assert not duplicate
    again, duplicate = Inbox(path).add(channel="sms", to="+6281", sender="BPJSTK", subject=None, body="a", key="k1")
    assert duplicate and again["id"] == first["id"]
    inbox.add(channel="email", to="a@example.com", sender="x", subject="s", body="b", key=None)
    assert [m["to"] for m in read_inbox(path)] == ["+6281", "a@example.com"]
    assert [m["body"] for m in read_inbox(path, to="a@example.com")] == ["b"]
    assert read_inbox(tmp_path / "none.jsonl") == []


def test_a_fault_answers_for_the_next_n_requests_or_always() -> None:
    fault = Fault(status=500, remaining=2)
    assert [fault.take() for _ in range(3)] == [500, 500, None]
    always = Fault(status=400, always=True)
    assert [always.take() for _ in range(3)] == [400, 400, 400]
