"""Drawing OTP codes and delivering them to the notification service, never losing one.

A code is drawn from a CSPRNG, its keyed hash goes to the decision (and so to the log), and the
code is sealed at once for the notification service (AES-256-GCM): the plain code lives only in
:meth:`OtpCodes.draw`. The sealed copy of each code a decision issues is kept in an outbox
(:class:`SealedCodes`, by ``otp_id``) *in the decision's own insert* (:meth:`OtpCodes.beside`,
handed to the command handler: durable no later than the ``OtpIssued``, and no command of its own),
and dropped once published on the OTP delivery topic. So a crash between logging ``OtpIssued`` and
publishing its delivery request loses nothing: the redelivered message is recognised as a
duplicate, its ``OtpIssued`` is replayed, and the sealed copy still waits in the outbox. A code
drawn for a decision that issued none (or that was not written) is never stored.
A dropped code may be deleted from the store a little later, in a batch (``adapters.outbox``): one
a crash leaves behind is published again only under its same message id, sent once all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from jmo_contracts import Envelope, Message, derived_id, new_id, reply
from jmo_contracts.identity import OtpDeliveryRequested, OtpIssued

from jmo_runtime.sealing import seal_code

from ..adapters.crypto import code_hmac, generate_code
from ..domain.identity import NewCode

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SealedCode:
    otp_id: str
    ciphertext: str
    key_id: str


class SealedCodes(Protocol):
    """The outbox of sealed codes, by ``otp_id``, kept beside the decisions that issue them."""

    def beside(self, code: SealedCode, until: datetime) -> tuple[str, dict[str, Any]]:
        """The side document (key, fields) that keeps ``code`` until ``until``, written in the
        insert of the decision that issues it (``EventStore.append(..., beside=...)``)."""

    async def find(self, otp_id: str) -> SealedCode | None: ...

    async def drop(self, otp_ids: list[str]) -> None:
        """These codes are no longer wanted: :meth:`find` no longer finds them (in this process);
        the store may delete them later, in a batch."""


@dataclass
class Drawn:
    """The codes drawn while one message is handled (sealed; the plain codes are gone)."""

    codes: dict[str, SealedCode] = field(default_factory=dict)
    #: until when each code may still be wanted (its outbox entry's expiry)
    until: dict[str, datetime] = field(default_factory=dict)


class OtpCodes:
    """Draws codes for decisions and delivers the ones the log says were issued."""

    def __init__(
        self,
        *,
        code_length: int,
        hmac_key: bytes,
        hmac_key_id: str,
        delivery_key: bytes,
        delivery_key_id: str,
        outbox: SealedCodes,
        publish: Callable[[Envelope], Awaitable[None]],
        clock: Callable[[], datetime],
        keep_for: timedelta = timedelta(hours=1),
        ids: Callable[[], str] = new_id,
    ) -> None:
        self.code_length, self.hmac_key, self.hmac_key_id = code_length, hmac_key, hmac_key_id
        self.delivery_key, self.delivery_key_id = delivery_key, delivery_key_id
        self.outbox, self.publish, self.clock, self.keep_for, self.ids = outbox, publish, clock, keep_for, ids

    async def draw(self, participant_id: str, drawn: Drawn) -> NewCode:
        """A new code, kept sealed in ``drawn`` (stored only with a decision that issues it, see
        :meth:`beside`); returns what the decision knows of it."""
        otp_id, code = self.ids(), generate_code(self.code_length)
        ciphertext, key_id = seal_code(self.delivery_key, self.delivery_key_id, otp_id, code)
        drawn.codes[otp_id] = SealedCode(otp_id, ciphertext, key_id)
        drawn.until[otp_id] = self.clock() + self.keep_for
        return NewCode(otp_id=otp_id, code_hmac=code_hmac(self.hmac_key, participant_id, otp_id, code), key_id=self.hmac_key_id)

    def beside(self, drawn: Drawn) -> Callable[[Sequence[Message]], Mapping[str, Mapping[str, Any]]]:
        """What goes beside a decision (the command handler's ``beside``): the outbox entry of each
        code drawn in ``drawn`` that an ``OtpIssued`` among the decided events issues."""

        def entries(decided: Sequence[Message]) -> Mapping[str, Mapping[str, Any]]:
            issued = [m.otp_id for m in decided if isinstance(m, OtpIssued) and m.otp_id in drawn.codes]
            return dict(self.outbox.beside(drawn.codes[otp_id], drawn.until[otp_id]) for otp_id in issued)

        return entries

    async def deliver(self, events: tuple[Envelope, ...], drawn: Drawn) -> None:
        """Publish a delivery request for every ``OtpIssued`` among ``events`` (new or replayed),
        then drop from the outbox what was published (a code no decision issued was never kept)."""
        issued_ids: list[str] = []
        for envelope in events:
            issued = envelope.open()
            if not isinstance(issued, OtpIssued):
                continue
            sealed = drawn.codes.get(issued.otp_id) or await self.outbox.find(issued.otp_id)
            if sealed is None:  # published and dropped before (a redelivery after a complete handling)
                continue
            request = OtpDeliveryRequested(
                participant_id=issued.participant_id, otp_id=issued.otp_id, purpose=issued.purpose, channel=issued.channel,
                destination=issued.destination, destination_masked=issued.destination_masked, algorithm="AES-256-GCM",
                key_id=sealed.key_id, code_ciphertext=sealed.ciphertext, expires_at=issued.expires_at,
            )
            # one message id per code, whoever publishes it and however often (a crash before the
            # outbox entry is dropped, a second instance handling the redelivered message): the
            # notification service derives its delivery claim from it, so the code is sent once
            await self.publish(reply(envelope, request).model_copy(update={"message_id": delivery_request_id(issued.otp_id)}))
            issued_ids.append(issued.otp_id)
        if issued_ids:
            await self.outbox.drop(issued_ids)


def delivery_request_id(otp_id: str) -> str:
    """The message id of the delivery request of code ``otp_id``: the same on every publication."""
    return derived_id("otp-delivery", otp_id)
