"""The pengkinian-data sessions as use cases: look up the facts, let the pure decider
(:mod:`jmo_profile_update.domain.session`) decide on the session's stream, then keep the session's
deadline and the participant-profile read model in step with what was decided.

* :meth:`Sessions.take_step` — a step from the gateway (``StartProfileUpdate`` … ``ConfirmProfileUpdate``);
* :meth:`Sessions.selfie_decided` — biometric's ``SelfieMatched`` / ``SelfieRejected`` for a session;
* :meth:`Sessions.contact_verified` — identity's ``OtpVerified`` for a changed contact of a session;
* :meth:`Sessions.learn` — registration's events into the read model;
* :meth:`Sessions.expire_inactive` — the periodic sweep: every session whose deadline passed expires.

The follow-up writes (deadline, read model) are made also on a redelivery, so a crash between the
append and these writes is repaired by the next delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jmo_contracts import Envelope, Message, derived_id
from jmo_contracts.biometric import SelfieMatched, SelfieRejected
from jmo_contracts.identity import OtpVerified
from jmo_contracts.profile_update import ExpireProfileUpdate
from jmo_runtime import CommandHandler, Handled
from jmo_runtime.schedule import Due, Schedule

from ..adapters.profiles import ProfileStore
from ..domain.session import CLOSED, SessionFacts, session

#: Events after which a session has nothing left to expire.
FINISHED = {"ProfileUpdated", "ProfileUpdateCancelled", "ProfileUpdateExpired"}


def session_stream(session_id: str) -> str:
    return f"profile-update-{session_id}"


def deadline(stream_id: str, participant_id: str, session_id: str, expires_at: datetime, correlation_id: str) -> Due:
    """When an open session expires, with what the expiry command needs."""
    return Due(stream_id, expires_at, {"participant_id": participant_id, "session_id": session_id, "correlation_id": correlation_id})


class Sessions:
    """Decides pengkinian-data sessions over ``commands`` (the session decider's command handler,
    dated by the same ``clock``), with ``profiles`` (the read model) as a fact and ``deadlines`` for
    the expiry sweep."""

    def __init__(
        self, *, commands: CommandHandler, profiles: ProfileStore, deadlines: Schedule, session_timeout: timedelta,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.commands, self.profiles, self.deadlines, self.session_timeout = commands, profiles, deadlines, session_timeout
        self.clock = clock or (lambda: datetime.now(UTC))

    async def take_step(self, envelope: Envelope) -> None:
        """A step of the journey from the gateway, decided on its session's stream."""
        command = envelope.open()
        await self._decide(envelope, session_stream(command.session_id) if hasattr(command, "session_id") else envelope.stream_id)

    #: biometric's and identity's events :meth:`selfie_decided` and :meth:`contact_verified` act on
    #: (their other events are not even read); registration's: ``profile.SOURCES``
    VERDICTS = (SelfieMatched, SelfieRejected)
    VERIFICATIONS = (OtpVerified,)

    async def selfie_decided(self, envelope: Envelope) -> None:
        """Biometric's verdict on the session's selfie (other biometric events are not for sessions)."""
        event = envelope.open()
        if isinstance(event, self.VERDICTS):
            await self._decide(envelope, session_stream(event.session_id))

    async def contact_verified(self, envelope: Envelope) -> None:
        """Identity's ``OtpVerified`` naming a session (a changed contact); other OTPs are not for sessions."""
        event = envelope.open()
        if isinstance(event, self.VERIFICATIONS) and event.profile_update_session_id:
            await self._decide(envelope, session_stream(event.profile_update_session_id))

    async def learn(self, envelope: Envelope) -> None:
        """Registration's events feed the participant-profile read model."""
        await self.profiles.apply(envelope)

    async def expire_inactive(self) -> None:
        """Expire every open session whose deadline has passed (by ``clock``); one message id per
        deadline, so every instance and every sweep asks once for the same expiry."""
        for due in await self.deadlines.due(self.clock()):
            message_id = derived_id("expire", due.key, due.at.isoformat())
            command = ExpireProfileUpdate(participant_id=due.data["participant_id"], session_id=due.data["session_id"])
            expire = Envelope.wrap(command, stream_id=due.key, correlation_id=due.data["correlation_id"], message_id=message_id)
            handled = await self.commands.handle(expire)  # the expiry needs no facts
            await self._follow_up(handled)
            if not handled.events:  # finished meanwhile, or its deadline moved and the record missed it
                state = session.fold(e.open() for e in await self.commands.store.read_stream(due.key))
                if state.step in CLOSED or state.expires_at is None:
                    await self.deadlines.clear(due.key)
                elif state.expires_at != due.at:
                    await self.deadlines.set(Due(due.key, state.expires_at, due.data))

    async def _facts(self, state: Any, message: Message) -> SessionFacts:
        participant = getattr(message, "participant_id", None)
        profile = await self.profiles.get(participant) if participant else None
        return SessionFacts(profile=profile, session_timeout=self.session_timeout)

    async def _decide(self, envelope: Envelope, stream_id: str) -> None:
        await self._follow_up(await self.commands.handle(envelope, stream_id=stream_id, facts=self._facts))

    async def _follow_up(self, handled: Handled) -> None:
        """Keep the deadline and the read model in step with what was decided."""
        for event in handled.events:
            if event.type == "ProfileUpdated":
                await self.profiles.apply(event)
        if handled.participant_erased or any(e.type in FINISHED for e in handled.events):
            await self.deadlines.clear(handled.stream_id)
        elif deadlines_set := [e for e in handled.events if e.payload.get("expires_at")]:
            last = deadlines_set[-1]
            p = last.payload
            await self.deadlines.set(deadline(handled.stream_id, p["participant_id"], p["session_id"], datetime.fromisoformat(p["expires_at"]), last.correlation_id))
