"""The one generic command handler: load, fold, decide, append with the expected version."""

from __future__ import annotations

import hashlib
import json

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from jmo_contracts import Envelope, Message, derived_id, erased_fields, reply
from jmo_eventstore import AppendResult, ConcurrencyConflict, EventStore

from .decider import Context, Decider, Rejection, rejected

log = structlog.get_logger(__name__)

#: The reason code of a command refused because its participant was erased.
PARTICIPANT_ERASED = "PARTICIPANT_ERASED"

#: What a decision may be given besides state and message: a mapping, or a look-up of it.
#: The decider's facts (its frozen dataclass), or an async (state, message) -> facts that looks them up.
Facts = Any | Callable[[Any, Message], Awaitable[Any]]

#: What goes beside a decision in its own insert: given the events decided (about to be appended),
#: the side documents to keep with them, key -> fields (see ``EventStore.append``).
Beside = Callable[[Sequence[Message]], Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Handled:
    """What happened to a command: the events now in the log for it (new or from earlier)."""

    stream_id: str
    events: tuple[Envelope, ...]
    duplicate: bool

    @property
    def rejected(self) -> bool:
        return any(e.type == "CommandRejected" for e in self.events)

    @property
    def participant_erased(self) -> bool:
        """Refused because the stream's participant was erased (:func:`erased_refusal`): whatever
        still watches the stream (a deadline, a retry) can stop."""
        return any(e.type == "CommandRejected" and e.payload.get("reason_code") == PARTICIPANT_ERASED for e in self.events)


class Decisions(Protocol):
    """What a use case needs of a :class:`CommandHandler`: decide a message on a stream and log it."""

    async def handle(self, command: Envelope, *, stream_id: str | None = None, facts: Facts | None = None, new_stream: bool = False, beside: Beside | None = None) -> Handled: ...


def command_digest(command: Envelope) -> str:
    """What a command says (type, version, stream, payload), as a digest: a redelivery has the same
    digest, another message that reuses its id does not."""
    body = json.dumps({"type": command.type, "v": command.schema_version, "stream": command.stream_id, "payload": command.payload}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def erased_refusal(service: str, command: Envelope, message: Message) -> list[Message]:
    """What is decided about a stream whose events read erased personal fields (its participant was
    erased, :func:`jmo_contracts.erased_fields`): a command is refused with ``PARTICIPANT_ERASED``;
    another service's event about them changes nothing (no decision is made on erased data)."""
    if message.KIND != "command":
        return []
    return [rejected(service, command.type, command.message_id, PARTICIPANT_ERASED, "this participant's data was erased; nothing more can be done for them")]


class CommandHandler:
    """Applies commands to streams through a :class:`Decider`.

    A redelivered command (same ``message_id``) is recognised by the store and changes nothing.
    A concurrent decision on the same stream makes it reload and decide again (a few times).
    """

    def __init__(self, service: str, store: EventStore, decider: Decider[Any], *, clock: Callable[[], datetime] | None = None, attempts: int = 5) -> None:
        self.service = service
        self.store = store
        self.decider = decider
        self.clock = clock or (lambda: datetime.now(UTC))
        self.attempts = attempts

    async def handle(self, command: Envelope, *, stream_id: str | None = None, facts: Facts | None = None, new_stream: bool = False, beside: Beside | None = None) -> Handled:
        """Apply ``command`` (or another service's event) to ``stream_id`` (default: its own stream).

        ``new_stream``: the message normally starts its stream (a registration command on the id
        the gateway drew), so a stream this instance has not seen is decided on as empty, without
        reading it first; should it exist, the append collides and the decision is made again on
        what it holds (facts looked up again too).

        ``facts`` are handed to the decider in its :class:`Context`: the decider's facts, or an async
        function of the folded state and the message that looks them up (called again if a
        concurrent decision forces a retry, so it sees the state it decides on).

        ``beside``: what the decision makes that must be durable with it (identity: the sealed code
        of an ``OtpIssued``), asked of the events decided and written in the decision's own insert;
        nothing of it is written for a duplicate, a refusal of a reused id, or a decision given up.
        """
        stream = stream_id or command.stream_id
        # No look-up of the cause first: the store recognises a redelivered command when its
        # decision is appended (in the stream's own commits, or by the unique index on the cause).
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ConcurrencyConflict),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.01, max=0.2),
            reraise=True,
        ):
            with attempt:
                return await self._decide_and_append(stream, command, facts, beside, presume_new=new_stream)
        raise AssertionError("unreachable")

    async def _decide_and_append(self, stream: str, command: Envelope, facts: Facts | None, beside: Beside | None, *, presume_new: bool = False) -> Handled:
        # what this instance last saw of the stream: a stale view makes the append a conflict
        history = await self.store.read_stream(stream, cached=True, presume_new=presume_new)
        folded = [e.open() for e in history]
        state = self.decider.fold(folded)
        message = command.open()
        now = self.clock()
        if any(erased_fields(m) for m in folded):
            # the participant was erased: nothing more is decided about them (see erased_refusal)
            decided = erased_refusal(self.service, command, message)
        else:
            if callable(facts):
                facts = await facts(state, message)
            try:
                decided = list(self.decider.decide(message, state, Context(now=now, stream_id=stream, facts=facts or {}, message_id=command.message_id)))
            except Rejection as r:
                decided = [rejected(self.service, command.type, command.message_id, r.reason_code, r.reason)]
        if not decided:
            # nothing to append, so no append checks the view: make sure it was not stale
            latest = await self.store.read_stream(stream, from_version=len(history) + 1)
            if latest:
                raise ConcurrencyConflict(stream, len(history), latest[-1].stream_version)
            # nothing (more) to decide; if that is because this very command was applied before (a
            # redelivery after its effects), answer with what it caused then, as a duplicate
            earlier = tuple(e.envelope for e in history if e.envelope.causation_id == command.message_id)
            return Handled(stream, earlier, duplicate=bool(earlier))
        envelopes = [reply(command, event, stream_id=stream, occurred_at=now) for event in decided]
        digest = command_digest(command)
        side = beside(decided) if beside is not None else None
        result = await self.store.append(stream, len(history), envelopes, cause_id=command.message_id, cause_digest=digest, beside=side)
        if result.already_applied:
            if result.cause_digest is not None and result.cause_digest != digest:
                return await self._refuse_reused_id(command, digest, now)
            return await self._replay(stream, result)
        for e in envelopes:
            log.info("event appended", event_type=e.type, stream_id=stream, correlation_id=e.correlation_id)
        return Handled(stream, tuple(envelopes), duplicate=False)

    async def _refuse_reused_id(self, command: Envelope, digest: str, now: datetime) -> Handled:
        """The message id was used before for another message: nothing is applied, and the sender
        is told so on a refusal stream of its own (no participant's stream is touched)."""
        ref = derived_id("reused", self.service, command.message_id, digest)
        refusal = reply(
            command, rejected(self.service, command.type, command.message_id, "MESSAGE_ID_REUSED", "this message id was used before for another message; send a new id"),
            stream_id=f"refusal-{ref}", occurred_at=now,
        )
        result = await self.store.append(refusal.stream_id, 0, [refusal], cause_id=ref)
        log.warning("message id reused for another message; refused", commit_id=result.commit_id)
        return Handled(refusal.stream_id, (refusal,), duplicate=result.already_applied)

    async def _replay(self, stream: str, earlier: AppendResult) -> Handled:
        events = await self.store.read_stream(earlier.stream_id, from_version=earlier.from_version, cached=True)
        mine = tuple(e.envelope for e in events if e.commit_id == earlier.commit_id)
        log.info("duplicate command ignored", stream_id=stream, commit_id=earlier.commit_id)
        return Handled(earlier.stream_id, mine, duplicate=True)
