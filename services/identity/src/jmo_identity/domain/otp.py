"""The OTP policy of SPEC §4 as a pure decider over one participant's stream ``identity-<participant_id>``.

Nothing here draws random numbers, reads the clock or touches a key. The application layer:

1. on ``RequestOtp``: draws ``otp_id`` and the code (``jmo_identity.adapters.crypto.generate_code``), computes
   ``code_hmac``, and calls :func:`issue` with ``now``. Only if an :class:`OtpIssued` comes back does it
   seal the code for the notification service and publish ``OtpDeliveryRequested``; an
   :class:`OtpRefusal` (cooldown, hourly limit) means the code is thrown away unsent.
2. on ``SubmitOtp``: looks up :meth:`OtpState.target`, compares the submitted code with the target's
   ``code_hmac`` under the key ``hmac_key_id`` in constant time (``crypto.codes_match``), and calls
   :func:`verify` with the resulting ``matches``. Every outcome is an event to append: a wrong
   attempt must be in the log, or the attempt limit would not survive a restart.

Rules (all numbers in :class:`OtpPolicy`):

* a code is valid from ``issued_at`` until ``expires_at`` (exclusive): at exactly 5 minutes it is expired;
* each wrong submission uses one of ``max_attempts`` (5); the wrong one that uses the last attempt kills
  the code (``TOO_MANY_ATTEMPTS``), and so does every later submission, right or wrong;
* a new code for the same purpose and channel replaces the previous one (which stops being accepted),
  but not before ``resend_cooldown`` (60 s) after it — exactly 60 s later is allowed; codes for different
  channels are independent, so a profile update can verify a new phone and a new email side by side;
* at most ``max_codes_per_window`` (5) codes per participant in any rolling ``window`` (1 hour): a code
  issued at ``t`` stops counting at ``t + 1 h`` exactly;
* a refused request carries ``retry_at``, the earliest instant the same request would be accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from jmo_contracts import Message
from jmo_contracts.common import OtpChannel
from jmo_contracts.identity import OtpIssued, OtpPurpose, OtpRejected, OtpRejectionReason, OtpVerified
from jmo_runtime import Rejection
from jmo_runtime.privacy import mask


@dataclass(frozen=True)
class OtpPolicy:
    """The configurable numbers of SPEC §4; the defaults are the spec's."""

    code_length: int = 6
    validity: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    resend_cooldown: timedelta = timedelta(seconds=60)
    max_codes_per_window: int = 5
    window: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 4 <= self.code_length <= 10:
            raise ValueError("code_length must be 4-10 digits (SubmitOtp accepts 4-10)")
        if self.validity <= timedelta(0) or self.window <= timedelta(0) or self.resend_cooldown < timedelta(0):
            raise ValueError("validity and window must be positive, resend_cooldown not negative")
        if self.max_attempts < 1 or self.max_codes_per_window < 1:
            raise ValueError("max_attempts and max_codes_per_window must be at least 1")


class CodeStatus(StrEnum):
    ACTIVE = "ACTIVE"  # accepted until it expires (expiry is a matter of time, not of state)
    VERIFIED = "VERIFIED"
    DEAD = "DEAD"  # used up its wrong attempts
    REPLACED = "REPLACED"  # a newer code was issued for the same purpose and channel


@dataclass(frozen=True)
class IssuedCode:
    """One issued code as the log knows it: its keyed hash, never the code."""

    otp_id: str
    purpose: OtpPurpose
    channel: OtpChannel
    destination: str
    profile_update_session_id: str | None
    issued_at: datetime
    expires_at: datetime
    code_hmac: str
    hmac_key_id: str
    max_attempts: int
    wrong_attempts: int = 0
    status: CodeStatus = CodeStatus.ACTIVE

    @property
    def attempts_left(self) -> int:
        return max(self.max_attempts - self.wrong_attempts, 0)


@dataclass(frozen=True)
class OtpState:
    """Every code issued to the participant, oldest first (a handful an hour, so kept whole)."""

    codes: tuple[IssuedCode, ...] = ()

    def code(self, otp_id: str) -> IssuedCode | None:
        return next((c for c in self.codes if c.otp_id == otp_id), None)

    def target(self, purpose: OtpPurpose, otp_id: str | None = None) -> IssuedCode | None:
        """The code a submission answers: ``otp_id`` if given (and of ``purpose``), otherwise the latest
        active code of ``purpose``, otherwise the latest code of ``purpose`` (to say why it is not accepted)."""
        if otp_id is not None:
            found = self.code(otp_id)
            return found if found is not None and found.purpose == purpose else None
        of_purpose = [c for c in self.codes if c.purpose == purpose]
        active = [c for c in of_purpose if c.status is CodeStatus.ACTIVE]
        return (active or of_purpose or [None])[-1]


initial_state = OtpState()


class OtpRefusal(Rejection):
    """A refused OTP request, with what the gateway needs to tell the participant (``retry_at``).

    It is a :class:`Rejection`, so the generic command handler turns it into ``CommandRejected``;
    to publish the contract's richer ``OtpRejected`` instead, use :meth:`as_event`.
    """

    def __init__(self, reason_code: OtpRejectionReason, reason: str, *, retry_at: datetime | None = None, otp_id: str | None = None) -> None:
        super().__init__(reason_code.value, reason)
        self.code = reason_code
        self.retry_at = retry_at
        self.otp_id = otp_id

    def as_event(self, *, participant_id: str, purpose: OtpPurpose, command_id: str) -> OtpRejected:
        return OtpRejected(
            participant_id=participant_id,
            otp_id=self.otp_id,
            purpose=purpose,
            command_id=command_id,
            reason_code=self.code,
            reason=self.reason,
            retry_at=self.retry_at,
        )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")


def _hhmmss(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S UTC")


def issue(
    state: OtpState,
    policy: OtpPolicy,
    now: datetime,
    *,
    participant_id: str,
    otp_id: str,
    code_hmac: str,
    key_id: str,
    channel: OtpChannel,
    destination: str,
    purpose: OtpPurpose,
    profile_update_session_id: str | None = None,
) -> OtpIssued:
    """Issue a new code, or raise :class:`OtpRefusal` (``RESEND_TOO_SOON``, ``HOURLY_LIMIT``,
    ``ALREADY_VERIFIED`` for a registration contact already verified, ``CONTACT_REQUIRED``).

    When both the cooldown and the hourly limit apply, the one that lifts later is reported, so
    ``retry_at`` is a time at which the request would be accepted.
    """
    _require_aware(now)
    if not destination.strip():
        raise OtpRefusal(OtpRejectionReason.CONTACT_REQUIRED, "Tujuan pengiriman kode (email / nomor ponsel) wajib diisi")
    if otp_id in {c.otp_id for c in state.codes}:
        raise ValueError("otp_id is already used by an earlier code of this participant")
    if purpose is OtpPurpose.REGISTRATION and any(c.purpose is purpose and c.status is CodeStatus.VERIFIED for c in state.codes):
        raise OtpRefusal(OtpRejectionReason.ALREADY_VERIFIED, "Kontak pendaftaran sudah terverifikasi")

    refusals: list[OtpRefusal] = []
    in_window = sorted(c.issued_at for c in state.codes if c.issued_at > now - policy.window)
    if len(in_window) >= policy.max_codes_per_window:
        # The request fits once enough of the codes in the window have aged out of it.
        retry_at = in_window[len(in_window) - policy.max_codes_per_window] + policy.window
        refusals.append(
            OtpRefusal(
                OtpRejectionReason.HOURLY_LIMIT,
                f"Batas {policy.max_codes_per_window} kode OTP per {_duration(policy.window)} tercapai; coba lagi setelah {_hhmmss(retry_at)}",
                retry_at=retry_at,
            )
        )
    same_slot = [c for c in state.codes if c.purpose is purpose and c.channel is channel]
    if same_slot and now < same_slot[-1].issued_at + policy.resend_cooldown:
        retry_at = same_slot[-1].issued_at + policy.resend_cooldown
        refusals.append(
            OtpRefusal(
                OtpRejectionReason.RESEND_TOO_SOON,
                f"Kode OTP baru dapat diminta lagi setelah {_hhmmss(retry_at)}",
                retry_at=retry_at,
                otp_id=same_slot[-1].otp_id,
            )
        )
    if refusals:
        raise max(refusals, key=lambda r: r.retry_at or now)  # max keeps the first on a tie: HOURLY_LIMIT

    return OtpIssued(
        participant_id=participant_id,
        otp_id=otp_id,
        purpose=purpose,
        channel=channel,
        destination=destination,
        destination_masked=mask(destination),
        profile_update_session_id=profile_update_session_id,
        issued_at=now,
        expires_at=now + policy.validity,
        code_hmac=code_hmac,
        hmac_key_id=key_id,
        max_attempts=policy.max_attempts,
    )


def verify(
    state: OtpState,
    now: datetime,
    *,
    participant_id: str,
    purpose: OtpPurpose,
    otp_id: str | None,
    matches: bool,
    command_id: str,
) -> OtpVerified | OtpRejected:
    """Judge a submitted code. ``matches`` is the constant-time HMAC comparison against
    ``state.target(purpose, otp_id)``, made by the caller (``False`` when there is no target).

    The limits recorded on the code at issue time (``expires_at``, ``max_attempts``) apply, not the
    current policy. Checks, in order: no such code → ``NO_ACTIVE_CODE``; already verified →
    ``ALREADY_VERIFIED``; dead → ``TOO_MANY_ATTEMPTS``; replaced → ``NO_ACTIVE_CODE``; expired →
    ``EXPIRED`` (no attempt used); right → :class:`OtpVerified`; wrong → ``WRONG_CODE`` with the
    attempts left, or ``TOO_MANY_ATTEMPTS`` when that was the last one.
    """
    _require_aware(now)
    code = state.target(purpose, otp_id)

    def rejected(reason_code: OtpRejectionReason, reason: str, *, attempts_left: int | None = None) -> OtpRejected:
        return OtpRejected(
            participant_id=participant_id,
            otp_id=code.otp_id if code is not None else otp_id,
            purpose=purpose,
            command_id=command_id,
            reason_code=reason_code,
            reason=reason,
            attempts_left=attempts_left,
        )

    if code is None:
        return rejected(OtpRejectionReason.NO_ACTIVE_CODE, "Tidak ada kode OTP aktif; silakan minta kode baru")
    if code.status is CodeStatus.VERIFIED:
        return rejected(OtpRejectionReason.ALREADY_VERIFIED, "Kode OTP ini sudah digunakan dan kontak sudah terverifikasi")
    if code.status is CodeStatus.DEAD:
        return rejected(OtpRejectionReason.TOO_MANY_ATTEMPTS, "Kode OTP diblokir karena terlalu banyak percobaan salah; silakan minta kode baru", attempts_left=0)
    if code.status is CodeStatus.REPLACED:
        return rejected(OtpRejectionReason.NO_ACTIVE_CODE, "Kode OTP ini sudah diganti dengan kode yang lebih baru")
    if now >= code.expires_at:
        return rejected(OtpRejectionReason.EXPIRED, "Kode OTP sudah kedaluwarsa; silakan minta kode baru")
    if matches:
        return OtpVerified(
            participant_id=participant_id,
            otp_id=code.otp_id,
            purpose=code.purpose,
            channel=code.channel,
            destination=code.destination,
            profile_update_session_id=code.profile_update_session_id,
            attempts=code.wrong_attempts + 1,
        )
    left = code.attempts_left - 1
    if left <= 0:
        return rejected(OtpRejectionReason.TOO_MANY_ATTEMPTS, "Kode OTP salah; batas percobaan habis, silakan minta kode baru", attempts_left=0)
    return rejected(OtpRejectionReason.WRONG_CODE, f"Kode OTP salah, sisa {left} percobaan", attempts_left=left)


def evolve(state: OtpState, event: Message) -> OtpState:
    """Fold identity's OTP events; anything else (NIK events, request refusals) leaves the state as is.

    Attempt counts are set from the event (``attempts_left``, ``attempts``), not incremented, so the
    fold is exact whatever the state was before.
    """
    match event:
        case OtpIssued():
            issued = IssuedCode(
                otp_id=event.otp_id,
                purpose=event.purpose,
                channel=event.channel,
                destination=event.destination,
                profile_update_session_id=event.profile_update_session_id,
                issued_at=event.issued_at,
                expires_at=event.expires_at,
                code_hmac=event.code_hmac,
                hmac_key_id=event.hmac_key_id,
                max_attempts=event.max_attempts,
            )
            codes = tuple(
                replace(c, status=CodeStatus.REPLACED) if c.status is CodeStatus.ACTIVE and c.purpose is issued.purpose and c.channel is issued.channel else c
                for c in state.codes
            )
            return replace(state, codes=(*codes, issued))
        case OtpVerified():
            return _update(state, event.otp_id, lambda c: replace(c, status=CodeStatus.VERIFIED, wrong_attempts=event.attempts - 1))
        case OtpRejected(reason_code=OtpRejectionReason.WRONG_CODE, otp_id=str() as otp_id, attempts_left=int() as left):
            return _update(state, otp_id, lambda c: replace(c, wrong_attempts=max(c.max_attempts - left, c.wrong_attempts)))
        case OtpRejected(reason_code=OtpRejectionReason.TOO_MANY_ATTEMPTS, otp_id=str() as otp_id):
            return _update(state, otp_id, lambda c: replace(c, status=CodeStatus.DEAD, wrong_attempts=c.max_attempts))
    return state


def _update(state: OtpState, otp_id: str, change: Callable[[IssuedCode], IssuedCode]) -> OtpState:
    return replace(state, codes=tuple(change(c) if c.otp_id == otp_id else c for c in state.codes))


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return "jam" if seconds == 3600 else f"{seconds // 3600} jam"
    return f"{seconds // 60} menit" if seconds % 60 == 0 else f"{seconds} detik"
