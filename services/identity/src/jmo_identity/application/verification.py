"""Identity's use cases: the NIK check with Dukcapil, OTP requests and submissions, and the
contact-change sessions that may ask for codes. What each decision needs is looked up here and
handed to :mod:`jmo_identity.domain.identity` as its typed facts; codes are drawn and delivered by
:class:`~jmo_identity.application.otp_delivery.OtpCodes`.

* :meth:`NikChecks.check` — registration's ``ParticipantRegistered``;
* :meth:`OtpRequests.handle` — ``RequestOtp`` / ``SubmitOtp`` from the mobile gateway;
* :meth:`ContactChangeSessions.follow` — profile-update's ``ContactDataSubmitted`` and session ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from jmo_contracts import Envelope, Message, derived_id
from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import NikDeferralReason, OtpPurpose, RequestOtp, SubmitOtp
from jmo_contracts.profile_update import ContactDataSubmitted, ProfileUpdateCancelled, ProfileUpdated, ProfileUpdateExpired
from jmo_contracts.registration import ParticipantRegistered
from jmo_registries import PopulationRegistry, RegistryError, RegistryUnavailable
from jmo_registries.ports import CircuitOpen
from jmo_runtime import Unprocessable
from jmo_runtime.handler import Decisions
from jmo_runtime.quota import Quota, quota_key

from ..adapters.contact_changes import ContactChange, ContactChanges
from ..adapters.crypto import codes_match
from ..domain.identity import CodeRequest, CodeSubmission, Identity, NikAnswer, NikUnanswered, identity, otp_destination
from ..domain.otp import OtpPolicy
from .otp_delivery import Drawn, OtpCodes

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class NikChecks:
    """Asks Dukcapil about a new registration's NIK; on ``SESUAI`` the first OTP is issued and delivered.

    While Dukcapil cannot be asked, the registration waits: the message is not acknowledged and
    comes back after ``retry_in``. The wait is told once per outage, under a cause of its own (the
    registration's own message id stays free for the real answer).
    """

    def __init__(self, *, decisions: Decisions, registry: PopulationRegistry, codes: OtpCodes, policy: OtpPolicy, retry_in: timedelta, sleep: Sleep = asyncio.sleep) -> None:
        self.decisions, self.registry, self.codes, self.policy, self.retry_in, self.sleep = decisions, registry, codes, policy, retry_in, sleep

    #: registration's events :meth:`check` acts on (its other events are not even read)
    STARTED_BY = (ParticipantRegistered,)

    async def check(self, envelope: Envelope) -> None:
        registered = envelope.open()
        if not isinstance(registered, self.STARTED_BY):
            return
        stream_id = f"identity-{registered.participant_id}"
        try:
            answer = await self.registry.verify(registered.nik, registered.full_name, registered.birth_date)
        except RegistryUnavailable as unavailable:
            log.warning("Dukcapil unavailable; the NIK check waits", stream_id=envelope.stream_id)
            await self._tell_deferral(envelope, stream_id, unavailable)
            await self.sleep(self.retry_in.total_seconds())
            raise
        except RegistryError as refused:
            # Dukcapil refuses this very request: asking again cannot help. Parked for an operator
            # (the registration expires meanwhile, and its participant is told so).
            raise Unprocessable("REGISTRY_REFUSED", str(refused)) from None
        drawn = Drawn()
        facts = NikAnswer(answer=answer.name, policy=self.policy, code=await self.codes.draw(registered.participant_id, drawn))
        # the participant's identity stream starts here (unless a deferral was recorded: then it is
        # cached, or the append collides and reloads it)
        handled = await self.decisions.handle(envelope, stream_id=stream_id, facts=facts, new_stream=True, beside=self.codes.beside(drawn))
        await self.codes.deliver(handled.events, drawn)

    async def _tell_deferral(self, envelope: Envelope, stream_id: str, unavailable: RegistryUnavailable) -> None:
        reason = NikDeferralReason.CIRCUIT_OPEN if isinstance(unavailable, CircuitOpen) else NikDeferralReason.TIMEOUT if "timeout" in str(unavailable).lower() else NikDeferralReason.UNAVAILABLE
        cause = derived_id("nik-deferred", envelope.message_id)
        try:
            await self.decisions.handle(envelope.model_copy(update={"message_id": cause}), stream_id=stream_id, facts=NikUnanswered(reason=reason, retry_in=self.retry_in))
        except Exception:  # telling is best effort; the wait itself must not depend on it
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise
            log.exception("could not record the NIK check deferral", stream_id=stream_id)


class ContactChangeSessions:
    """The pengkinian-data sessions in which a participant changed a contact: a ``CONTACT_CHANGE``
    code goes only to a contact submitted in a live session of that participant. Contacts are kept
    as keyed hashes under ``hmac_key``."""

    def __init__(self, *, changes: ContactChanges, hmac_key: bytes, wait_seconds: float, sleep: Sleep = asyncio.sleep, poll_seconds: float = 0.2) -> None:
        self.changes, self.hmac_key, self.wait_seconds, self.sleep, self.poll_seconds = changes, hmac_key, wait_seconds, sleep, poll_seconds

    #: profile-update's events :meth:`follow` acts on (its other events are not even read)
    FOLLOWS = (ContactDataSubmitted, ProfileUpdated, ProfileUpdateCancelled, ProfileUpdateExpired)

    async def follow(self, envelope: Envelope) -> None:
        """``ContactDataSubmitted`` opens a session's contact change; ``ProfileUpdated`` /
        ``ProfileUpdateCancelled`` / ``ProfileUpdateExpired`` close it."""
        event = envelope.open()
        if isinstance(event, ContactDataSubmitted):
            new = {OtpChannel.SMS: event.phone, OtpChannel.EMAIL: event.email}
            destinations = {str(channel): self._hash(new[channel]) for channel in event.verification_required}
            if destinations:
                await self.changes.open(ContactChange(event.session_id, event.participant_id, destinations))
        elif isinstance(event, ProfileUpdated | ProfileUpdateCancelled | ProfileUpdateExpired):
            await self.changes.close(event.session_id)

    async def allow(self, participant_id: str, command: RequestOtp) -> bool:
        """The code ``command`` asks for would go to a contact this participant submitted in a live
        session of theirs (its ``ContactDataSubmitted`` may still be on the way: waited for a while)."""
        destination = otp_destination(command, identity.initial_state)
        if destination is None or command.profile_update_session_id is None:
            return False
        waited, change = 0.0, await self.changes.find(command.profile_update_session_id)
        while change is None and waited < self.wait_seconds:
            await self.sleep(self.poll_seconds)
            waited += self.poll_seconds
            change = await self.changes.find(command.profile_update_session_id)
        return change is not None and change.participant_id == participant_id and change.destinations.get(command.channel) == self._hash(destination)

    def _hash(self, destination: str) -> str:
        return quota_key(self.hmac_key, "contact-change", destination)


class OtpRequests:
    """``RequestOtp`` (a resend, or a contact-change code) and ``SubmitOtp`` on a participant's stream."""

    def __init__(
        self,
        *,
        decisions: Decisions,
        codes: OtpCodes,
        policy: OtpPolicy,
        hmac_key: bytes,
        per_destination: Quota,
        sessions: ContactChangeSessions,
        clock: Callable[[], datetime],
    ) -> None:
        self.decisions, self.codes, self.policy, self.hmac_key = decisions, codes, policy, hmac_key
        self.per_destination, self.sessions, self.clock = per_destination, sessions, clock

    async def handle(self, envelope: Envelope) -> None:
        participant_id = envelope.stream_id.removeprefix("identity-")
        drawn = Drawn()

        async def look_up(state: Identity, command: Message) -> object:
            return await self.facts(participant_id, state, command, drawn)

        handled = await self.decisions.handle(envelope, facts=look_up, beside=self.codes.beside(drawn))
        await self.codes.deliver(handled.events, drawn)

    async def facts(self, participant_id: str, state: Identity, command: Message, drawn: Drawn) -> CodeRequest | CodeSubmission | None:
        """What ``command`` is decided with in ``state``; a code drawn for it is kept in ``drawn``."""
        if isinstance(command, RequestOtp):
            # what refuses the request first, so a refused one neither uses up a destination's
            # quota (a forged contact change naming someone's phone) nor writes a code anywhere
            allowed = await self.sessions.allow(participant_id, command) if command.purpose is OtpPurpose.CONTACT_CHANGE else None
            destination, within_quota = otp_destination(command, state), None
            if destination is not None and allowed is not False:
                within_quota = await self.per_destination.take(quota_key(self.hmac_key, "otp-destination", destination), self.clock())
            code = await self.codes.draw(participant_id, drawn) if False not in (allowed, within_quota) else None
            return CodeRequest(policy=self.policy, contact_change_allowed=allowed, destination_allowed=within_quota, code=code)
        if isinstance(command, SubmitOtp):
            target = state.codes.target(command.purpose, command.otp_id)
            return CodeSubmission(matches=target is not None and codes_match(self.hmac_key, participant_id, target.otp_id, command.code, target.code_hmac))
        return None
