"""Registration's use cases: what is looked up before each pure decision, and what follows it.

:class:`Registrations` is built once when the service starts (``entrypoint.app.build``) and each
subscriber or periodic job makes one call to it:

* :meth:`Registrations.decide` — a command from the gateway or the payment channel;
* :meth:`Registrations.follow` — identity's ``NikVerified`` / ``NikRejected`` / ``OtpVerified``;
* :meth:`Registrations.expire_unfinished` — the expiry sweep;
* :meth:`Registrations.retry_membership_checks` — the sweep of deferred employer-registry checks.

The rules themselves are in :mod:`jmo_registration.domain.registration`; the facts it needs are its
frozen dataclasses (:class:`Applicant`, :class:`MembershipCheck`, :class:`Rates`,
:class:`Activation`, :class:`Expiry`), filled here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from jmo_contracts import Envelope, Message, derived_id
from jmo_contracts.common import Category, OtpChannel
from jmo_contracts.identity import NikRejected, NikVerified, OtpVerified
from jmo_contracts.registration import ExpireRegistration, ProvideEmploymentDetails, RecordContributionPayment, RegisterParticipant, RetryEmployerMembershipCheck
from jmo_eventstore import EventStore
from jmo_registries import EmployerRegistry, RegistryError, RegistryUnavailable
from jmo_runtime import Handled, Unprocessable
from jmo_runtime.handler import Decisions, Facts
from jmo_runtime.quota import Quota, quota_key
from jmo_runtime.schedule import Due, Schedule

from ..adapters.accounts import KpjReservations, NikIndex
from ..domain.contributions import RateTables
from ..domain.registration import CLOSED, UNAVAILABLE, Activation, Applicant, Expiry, MembershipCheck, Rates, Registration, Status, registration

log = structlog.get_logger(__name__)

#: After these a registration is no longer open (nothing left to expire).
FINISHED = frozenset({"AccountActivated", "RegistrationRejected", "RegistrationExpired"})
#: Stages at which the next decision may activate the account: only then is the NIK claimed (a late
#: payment to a closed registration must not take a NIK that nothing will ever give back).
ACTIVATING = frozenset({Status.PAYMENT, Status.EMPLOYMENT_DETAILS, Status.EMPLOYER_MEMBERSHIP})
#: After these the employer registry has answered (or the registration ended): no retry is planned.
MEMBERSHIP_SETTLED = FINISHED | {"EmployerMembershipFound", "EmployerMembershipNotFound"}


@dataclass(frozen=True)
class Policy:
    """What the settings decide: the key of quota keys, how long a registration may stay open, how
    far apart deferred employer checks are retried, and the contribution rates."""

    nik_key: bytes
    timeout: timedelta
    retry_step: timedelta
    rate_tables: RateTables


class Registrations:
    """Registrations from ``RegisterParticipant`` to ``AccountActivated`` (see the module docstring)."""

    def __init__(
        self,
        *,
        decisions: Decisions,
        store: EventStore,
        nik_index: NikIndex,
        kpj_numbers: KpjReservations,
        employers: EmployerRegistry,
        attempts: Quota,
        open_registrations: Schedule,
        retries: Schedule,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self.decisions, self.store, self.nik_index, self.kpj_numbers, self.employers = decisions, store, nik_index, kpj_numbers, employers
        self.attempts, self.open_registrations, self.retries, self.policy, self.clock = attempts, open_registrations, retries, policy, clock

    # -- messages ------------------------------------------------------------------------------

    async def decide(self, command: Envelope) -> Handled:
        """A command on its own stream: its facts are looked up against the state it is decided on."""
        # a RegisterParticipant comes on a stream id the gateway has just drawn: decided without a read
        return await self._apply(command, command.stream_id, self._look_up(command.stream_id), new_stream=command.type == RegisterParticipant.TYPE)

    #: identity's events :meth:`follow` acts on (its other events are not even read)
    FOLLOWS = (NikVerified, NikRejected, OtpVerified)

    async def follow(self, envelope: Envelope) -> None:
        """One of identity's outcomes moves the participant's registration on (or stops it)."""
        event = envelope.open()
        if isinstance(event, self.FOLLOWS):
            await self._apply(envelope, f"registration-{event.participant_id}", None)

    # -- periodic jobs -------------------------------------------------------------------------

    async def expire_unfinished(self) -> None:
        """Expire every registration left open longer than the timeout (and settle ended ones)."""
        for due in await self.open_registrations.due(self.clock() - self.policy.timeout):
            stream_id, registered_at, correlation_id = due.key, due.at, due.data["correlation_id"]
            # the same message id from every instance and every sweep: expiring twice is one decision
            expire = Envelope.wrap(
                ExpireRegistration(registered_at=registered_at), stream_id=stream_id, correlation_id=correlation_id,
                message_id=derived_id("expire", stream_id),
            )
            handled = await self._apply(expire, stream_id, Expiry(registration_timeout=self.policy.timeout))
            if not handled.events:  # it had ended already, and settling it was cut short
                await self._settle_finished(stream_id)

    async def retry_membership_checks(self) -> None:
        """Ask the employer registry again for every PU registration whose deferred check is due."""
        for due in await self.retries.due(self.clock()):
            attempt = int(due.data["attempt"])
            # the same message id from every instance and every sweep: one retry per deferral
            retry = Envelope.wrap(
                RetryEmployerMembershipCheck(attempt=attempt), stream_id=due.key, correlation_id=due.data["correlation_id"],
                message_id=derived_id("retry", due.key, str(attempt)),
            )
            try:
                handled = await self._apply(retry, due.key, self._look_up(due.key))
            except Unprocessable as refused:  # no DLQ for a message nobody sent: stop retrying; the registration expires
                log.error("employer registry refuses the membership check; retries stopped", stream_id=due.key, reason=refused.reason, error=refused.detail)
                await self.retries.clear(due.key)
                continue
            if not handled.events:  # a stale retry (the registration moved on): nothing left to plan
                await self.retries.clear(due.key)

    # -- steps ---------------------------------------------------------------------------------

    def _look_up(self, stream_id: str) -> Callable[[Registration, Message], Any]:
        async def look_up(state: Registration, message: Message) -> object:
            return await self.facts(stream_id, state, message)

        return look_up

    async def facts(self, stream_id: str, state: Registration, message: Message) -> object:
        """The facts ``message`` is decided with on ``stream_id`` in ``state`` (None when it needs none)."""
        if isinstance(message, RegisterParticipant):
            return await self._applicant(message)
        if isinstance(message, ProvideEmploymentDetails | RetryEmployerMembershipCheck) and state.participant is not None and state.participant.category is Category.PU:
            claimed = state.status not in ACTIVATING or await self.nik_index.claim(state.participant.nik, stream_id)
            return MembershipCheck(await self._membership(state.participant.nik), nik_claimed_elsewhere=not claimed, retry_step=self.policy.retry_step)
        if isinstance(message, ProvideEmploymentDetails):
            return Rates(self.policy.rate_tables)
        if isinstance(message, RecordContributionPayment):
            claimed = state.participant is None or state.status not in ACTIVATING or await self.nik_index.claim(state.participant.nik, stream_id)
            return Activation(kpj_number=await self.kpj_numbers.reserve(stream_id.removeprefix("registration-"), stream_id), nik_claimed_elsewhere=not claimed)
        return None

    async def _applicant(self, command: RegisterParticipant) -> Applicant:
        now, secret = self.clock(), self.policy.nik_key
        destination = command.email.strip().lower() if command.otp_channel is OtpChannel.EMAIL else "".join(ch for ch in command.phone if ch.isdigit())[-10:]
        allowed = await self.attempts.take_each([quota_key(secret, "register-nik", command.nik), quota_key(secret, "register-destination", destination)], now)
        return Applicant(nik_has_active_account=await self.nik_index.has_active_account(command.nik), too_many_attempts=not allowed)

    async def _membership(self, nik: str) -> object:
        try:
            return await self.employers.membership(nik)
        except RegistryUnavailable:
            return UNAVAILABLE
        except RegistryError as refused:  # this very request is refused: asking again cannot help
            raise Unprocessable("REGISTRY_REFUSED", str(refused)) from None

    async def _apply(self, envelope: Envelope, stream_id: str, facts: Facts | None, *, new_stream: bool = False) -> Handled:
        """Decide, then keep the schedules in step with what was decided."""
        handled = await self.decisions.handle(envelope, stream_id=stream_id, facts=facts, new_stream=new_stream)
        if handled.participant_erased:  # nothing more is decided about them: stop watching the stream
            await self.open_registrations.clear(stream_id)
            await self.retries.clear(stream_id)
            return handled
        await self._plan(stream_id, handled.events)
        return handled

    async def _plan(self, stream_id: str, events: Sequence[Envelope]) -> None:
        for event in events:
            if event.type == "ParticipantRegistered":
                await self.open_registrations.set(Due(stream_id, event.occurred_at, {"correlation_id": event.correlation_id}))
            elif event.type in FINISHED:
                await self._settle_finished(stream_id)
            if event.type == "EmployerMembershipCheckDeferred":
                planned = datetime.fromisoformat(event.payload["retry_at"])
                await self.retries.set(Due(stream_id, planned, {"attempt": str(event.payload["attempt"]), "correlation_id": event.correlation_id}))
            elif event.type in MEMBERSHIP_SETTLED:
                await self.retries.clear(stream_id)

    async def _settle_finished(self, stream_id: str) -> None:
        """A registration has ended: give up a NIK claim it made at the activating step unless it
        was activated, then stop watching it for expiry. In that order: a crash in between leaves it
        watched, and the next sweep settles it again (releasing is idempotent)."""
        state = registration.fold(e.open() for e in await self.store.read_stream(stream_id))
        if state.status in CLOSED and state.participant is not None:
            await self.nik_index.release(state.participant.nik, stream_id)
        await self.open_registrations.clear(stream_id)
