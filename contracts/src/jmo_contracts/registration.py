"""Contracts of the registration service (Pendaftaran, SPEC §3)."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from .common import Category, OtpChannel
from .messages import Command, Event, Part, message

PERSONAL = {"nik", "full_name", "email", "phone"}
#: Birth date and gender repeat the NIK's digits 7-12 (SPEC §3.2): as personal as the NIK itself.
REGISTERED_PERSONAL = PERSONAL | {"birth_date", "gender"}


@message("RegisterParticipant", personal=PERSONAL)
class RegisterParticipant(Command):
    """Start a registration (stream: ``registration-<id>`` chosen by the gateway)."""

    category: Category = Field(description="PU (employee), BPU (self-employed) or PMI (migrant worker).", examples=["BPU"])
    nik: str = Field(description="Nomor Induk Kependudukan, 16 digits, as on the KTP.", examples=["3201014508900001"])
    full_name: str = Field(description="Full name as on the KTP.", examples=["Siti Aminah"])
    email: str = Field(description="Active email address.", examples=["siti.aminah@example.com"])
    phone: str = Field(description="Indonesian mobile number, 08… or +628….", examples=["081234567890"])
    otp_channel: OtpChannel = Field(description="Where the verification code is sent.", examples=["email"])


@message("ParticipantRegistered", personal=REGISTERED_PERSONAL)
class ParticipantRegistered(Event):
    """The registration data passed validation; identity checks (Dukcapil, OTP) follow."""

    participant_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="Participant reference used by every later stream.", examples=["5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"])
    category: Category = Field(description="Participation category chosen at registration.", examples=["BPU"])
    nik: str = Field(description="NIK (16 digits).", examples=["3201014508900001"])
    full_name: str = Field(description="Name normalised: trimmed, single spaces, upper case.", examples=["SITI AMINAH"])
    email: str = Field(description="Email address, trimmed and lower case.", examples=["siti.aminah@example.com"])
    phone: str = Field(description="Mobile number in E.164.", examples=["+6281234567890"])
    otp_channel: OtpChannel = Field(description="Where the verification code will be sent.", examples=["email"])
    birth_date: date = Field(description="Birth date encoded in the NIK.", examples=["1990-08-05"])
    gender: str = Field(pattern=r"^[MF]$", description="Gender encoded in the NIK (day + 40 for women).", examples=["F"])


# --- After registration: employment details, contributions, activation (SPEC §3.5–§3.7) -------
# Streams are ``registration-<id>``, the stream of RegisterParticipant; commands need no other key.

from enum import StrEnum  # noqa: E402
from typing import Any  # noqa: E402

from pydantic import AwareDatetime, BaseModel, ConfigDict  # noqa: E402

HEX32 = r"^[0-9a-f]{32}$"
KPJ = r"^[0-9]{11}$"
EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"


def _participant_id() -> Any:
    return Field(pattern=HEX32, description="Participant reference (from ParticipantRegistered). Not personal data.", examples=[EXAMPLE_PARTICIPANT_ID])


_Part = Part


class Program(StrEnum):
    """Social-security programs (program jaminan)."""

    JKK = "JKK"  # Jaminan Kecelakaan Kerja: work accident
    JKM = "JKM"  # Jaminan Kematian: death
    JHT = "JHT"  # Jaminan Hari Tua: old-age savings
    JP = "JP"  # Jaminan Pensiun: pension (PU only)


class ContributionPeriod(StrEnum):
    """What an assessed amount covers."""

    MONTHLY = "MONTHLY"  # per month (BPU; PMI JHT)
    PLACEMENT = "PLACEMENT"  # one package for before and during placement (PMI JKK + JKM)


class PaymentChannel(StrEnum):
    """Kind of channel a contribution was paid through."""

    VIRTUAL_ACCOUNT = "VIRTUAL_ACCOUNT"
    E_WALLET = "E_WALLET"
    RETAIL_OUTLET = "RETAIL_OUTLET"
    QRIS = "QRIS"
    AUTO_DEBIT = "AUTO_DEBIT"


class PaymentRejectionReason(StrEnum):
    """Why a reported payment was not accepted as the contribution (the money needs a refund or manual review)."""

    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    NOT_ASSESSED = "NOT_ASSESSED"  # no contribution assessed yet
    ALREADY_PAID = "ALREADY_PAID"
    REGISTRATION_CLOSED = "REGISTRATION_CLOSED"  # rejected or expired
    ALREADY_REGISTERED = "ALREADY_REGISTERED"  # another registration of the same NIK was activated first


class EmployerMembershipProblem(StrEnum):
    """Why the employer registry did not confirm a PU worker."""

    NOT_FOUND = "NOT_FOUND"  # the NIK is in no employer's membership records
    MEMBERSHIP_INACTIVE = "MEMBERSHIP_INACTIVE"  # found, but the employer ended or suspended the membership


class RegistrationRejectionReason(StrEnum):
    """Why a registration ended without an account."""

    NIK_MISMATCH = "NIK_MISMATCH"  # Dukcapil: TIDAK SESUAI
    NIK_NOT_FOUND = "NIK_NOT_FOUND"  # Dukcapil: data tidak ditemukan
    ALREADY_REGISTERED = "ALREADY_REGISTERED"  # an active account exists for the NIK: log in instead
    EMPLOYER_MEMBERSHIP_NOT_FOUND = "EMPLOYER_MEMBERSHIP_NOT_FOUND"
    EMPLOYER_MEMBERSHIP_INACTIVE = "EMPLOYER_MEMBERSHIP_INACTIVE"


class RegistrationStage(StrEnum):
    """What an unfinished registration was waiting for."""

    NIK_VERIFICATION = "NIK_VERIFICATION"
    OTP_VERIFICATION = "OTP_VERIFICATION"
    EMPLOYMENT_DETAILS = "EMPLOYMENT_DETAILS"
    EMPLOYER_MEMBERSHIP = "EMPLOYER_MEMBERSHIP"
    PAYMENT = "PAYMENT"


class PmiPlacement(_Part):
    """Placement of an Indonesian migrant worker (penempatan PMI)."""

    destination_country: str = Field(pattern=r"^[A-Z]{2}$", description="Destination country, ISO 3166-1 alpha-2.", examples=["MY"])
    placement_start: date = Field(description="First day of the placement abroad.", examples=["2027-01-15"])
    placement_end: date = Field(description="Last day of the placement contract.", examples=["2029-01-14"])
    overseas_employer: str | None = Field(default=None, description="Employer (pemberi kerja) abroad, as on the placement agreement.", examples=["Syarikat Contoh Sdn Bhd"])
    placement_agency: str | None = Field(default=None, description="Placement company (P3MI) in Indonesia, if any.", examples=["PT Contoh Penempatan Pekerja"])


class ProgramContribution(_Part):
    """The contribution (iuran) assessed for one program."""

    program: Program = Field(description="The program.", examples=["JKK"])
    amount: int = Field(ge=0, description="Amount in rupiah (no fractions).", examples=[10000])
    period: ContributionPeriod = Field(description="MONTHLY, or PLACEMENT for the PMI package.", examples=["MONTHLY"])
    rate_basis_points: int | None = Field(default=None, ge=0, description="Rate applied to the income bracket in basis points (100 = 1 %); empty for flat amounts such as JKM Rp 6,800.", examples=[100])


_EXAMPLE_PLACEMENT = {"destination_country": "MY", "placement_start": "2027-01-15", "placement_end": "2029-01-14", "overseas_employer": "Syarikat Contoh Sdn Bhd", "placement_agency": "PT Contoh Penempatan Pekerja"}
_EXAMPLE_PROGRAMS = [
    {"program": "JKK", "amount": 10000, "period": "MONTHLY", "rate_basis_points": 100},
    {"program": "JKM", "amount": 6800, "period": "MONTHLY", "rate_basis_points": None},
    {"program": "JHT", "amount": 20000, "period": "MONTHLY", "rate_basis_points": 200},
]
#: Job data single out a person as well as their income does (an occupation, an employer and a
#: regency narrow one down; a placement names a country, an employer abroad and dates).
EMPLOYMENT_PERSONAL = {"monthly_income", "occupation", "employer_name", "work_location", "placement"}


@message("ProvideEmploymentDetails", personal=EMPLOYMENT_PERSONAL)
class ProvideEmploymentDetails(Command):
    """Give the job data and income used to assess contributions, and choose the optional programs (SPEC §3.5)."""

    occupation: str = Field(min_length=1, description="Occupation (pekerjaan), e.g. from the occupation list shown in the app.", examples=["Pedagang keliling"])
    employer_name: str | None = Field(default=None, description="PU: the employer as the worker knows it; empty for BPU (self-employed).", examples=[None])
    work_location: str | None = Field(default=None, description="Regency / city where the work is done (BPU, PU).", examples=["Kabupaten Bogor"])
    monthly_income: int = Field(gt=0, description="Declared monthly income in rupiah; BPU contributions use the bracket it falls in.", examples=[2500000])
    join_jht: bool = Field(default=False, description="BPU / PMI: also join JHT (JKK and JKM are mandatory).", examples=[True])
    jht_monthly_amount: int | None = Field(default=None, ge=0, description="PMI with JHT: chosen monthly JHT contribution in rupiah (Rp 50,000–600,000 under the current regulation).", examples=[None])
    placement: PmiPlacement | None = Field(default=None, description="PMI only (required there): destination country and placement period.", examples=[None])


@message("EmploymentDetailsRecorded", personal=EMPLOYMENT_PERSONAL)
class EmploymentDetailsRecorded(Event):
    """The job data, income and program choice were accepted."""

    participant_id: str = _participant_id()
    category: Category = Field(description="Participation category of the registration.", examples=["BPU"])
    occupation: str = Field(description="Occupation (pekerjaan).", examples=["Pedagang keliling"])
    employer_name: str | None = Field(default=None, description="PU: employer as the worker knows it.", examples=[None])
    work_location: str | None = Field(default=None, description="Regency / city where the work is done.", examples=["Kabupaten Bogor"])
    monthly_income: int = Field(gt=0, description="Declared monthly income in rupiah.", examples=[2500000])
    join_jht: bool = Field(description="Optional JHT chosen (BPU / PMI).", examples=[True])
    jht_monthly_amount: int | None = Field(default=None, ge=0, description="PMI with JHT: chosen monthly JHT amount in rupiah.", examples=[None])
    placement: PmiPlacement | None = Field(default=None, description="PMI: destination country and placement period.", examples=[_EXAMPLE_PLACEMENT])


#: Amounts follow from the income bracket (JKK is 1 % of it, JHT 2 %), which is sealed: so are they.
ASSESSMENT_PERSONAL = {"programs", "amount_due"}


@message("ContributionAssessed", personal=ASSESSMENT_PERSONAL)
class ContributionAssessed(Event):
    """Contributions were computed from the effective rate table (BPU, PMI); the first payment is now due."""

    participant_id: str = _participant_id()
    programs: list[ProgramContribution] = Field(min_length=1, description="Amount per program.", examples=[_EXAMPLE_PROGRAMS])
    amount_due: int = Field(gt=0, description="Total of the first payment, in rupiah.", examples=[36800])
    payment_reference: str = Field(pattern=r"^[A-Z0-9-]{6,40}$", description="Billing code (kode iuran) the participant pays to; checked on payment.", examples=["JMO-BPU-7F3A2C91"])
    rate_table_id: str = Field(description="Rate table (configuration) used.", examples=["bpu-rates"])
    rate_table_effective_from: date = Field(description="Effective date of that rate table version.", examples=["2025-01-01"])


@message("RecordContributionPayment")
class RecordContributionPayment(Command):
    """The payment channel reports that a contribution was paid (sent by the payment integration, not the app)."""

    payment_reference: str = Field(pattern=r"^[A-Z0-9-]{6,40}$", description="Billing code from ContributionAssessed.", examples=["JMO-BPU-7F3A2C91"])
    amount: int = Field(gt=0, description="Amount paid in rupiah.", examples=[36800])
    paid_at: AwareDatetime = Field(description="When the channel settled the payment (UTC).", examples=["2026-11-21T09:05:12Z"])
    channel: PaymentChannel = Field(description="Kind of payment channel.", examples=["VIRTUAL_ACCOUNT"])
    provider: str = Field(description="Bank, wallet or outlet that took the payment.", examples=["BNI"])
    provider_transaction_id: str = Field(min_length=1, description="The provider's transaction id (for reconciliation; duplicates are ignored).", examples=["BNI-VA-20261121-0093312"])


@message("ContributionPaid", personal={"amount"})
class ContributionPaid(Event):
    """The first contribution was paid in full: the registration can be activated."""

    participant_id: str = _participant_id()
    payment_reference: str = Field(description="Billing code paid.", examples=["JMO-BPU-7F3A2C91"])
    amount: int = Field(gt=0, description="Amount paid in rupiah.", examples=[36800])
    paid_at: AwareDatetime = Field(description="When the channel settled the payment (UTC).", examples=["2026-11-21T09:05:12Z"])
    channel: PaymentChannel = Field(description="Kind of payment channel.", examples=["VIRTUAL_ACCOUNT"])
    provider: str = Field(description="Bank, wallet or outlet that took the payment.", examples=["BNI"])
    provider_transaction_id: str = Field(description="The provider's transaction id.", examples=["BNI-VA-20261121-0093312"])


@message("ContributionPaymentRejected", personal={"amount", "amount_due"})
class ContributionPaymentRejected(Event):
    """A reported payment could not be accepted; money was taken, so it is recorded for refund / manual review."""

    participant_id: str | None = Field(default=None, pattern=HEX32, description="Participant, when the reference is known.", examples=[EXAMPLE_PARTICIPANT_ID])
    payment_reference: str = Field(description="Billing code as reported.", examples=["JMO-BPU-7F3A2C91"])
    amount: int = Field(gt=0, description="Amount paid in rupiah.", examples=[16800])
    amount_due: int | None = Field(default=None, description="Amount that was expected, when known.", examples=[36800])
    channel: PaymentChannel = Field(description="Kind of payment channel.", examples=["VIRTUAL_ACCOUNT"])
    provider: str = Field(description="Bank, wallet or outlet that took the payment.", examples=["BNI"])
    provider_transaction_id: str = Field(description="The provider's transaction id.", examples=["BNI-VA-20261121-0093313"])
    reason_code: PaymentRejectionReason = Field(description="Machine-readable reason.", examples=["AMOUNT_MISMATCH"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["Paid Rp 16,800 but Rp 36,800 is due"])


@message("EmployerMembershipFound", personal={"kpj_number", "employer_npp", "employer_name"})
class EmployerMembershipFound(Event):
    """PU: the employer registry lists the NIK as an active member; it gives the KPJ number and the employer."""

    participant_id: str = _participant_id()
    kpj_number: str = Field(pattern=KPJ, description="The worker's KPJ (card) number, 11 digits, as enrolled by the employer.", examples=["24012345678"])
    employer_npp: str = Field(pattern=r"^[0-9A-Z]{8,12}$", description="Employer registration number (NPP).", examples=["NN012345"])
    employer_name: str = Field(description="Employer name from the registry.", examples=["PT Contoh Sejahtera Abadi"])
    member_since: date = Field(description="Start of the membership with this employer.", examples=["2023-02-01"])
    programs: list[Program] = Field(description="Programs the employer pays for.", examples=[["JKK", "JKM", "JHT", "JP"]])


@message("EmployerMembershipNotFound")
class EmployerMembershipNotFound(Event):
    """PU: the employer registry has no active membership for the NIK; the worker should ask the employer (HRD)."""

    participant_id: str = _participant_id()
    reason_code: EmployerMembershipProblem = Field(description="NOT_FOUND or MEMBERSHIP_INACTIVE.", examples=["NOT_FOUND"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["NIK belum didaftarkan oleh perusahaan; hubungi HRD perusahaan Anda"])


@message("EmployerMembershipCheckDeferred")
class EmployerMembershipCheckDeferred(Event):
    """PU: the employer registry could not be asked now; the check is retried and the registration waits."""

    participant_id: str = _participant_id()
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["Employer registry timed out"])
    attempt: int = Field(ge=1, description="Attempts made so far.", examples=[1])
    retry_at: AwareDatetime = Field(description="When the next attempt is planned (UTC).", examples=["2026-11-21T08:32:00Z"])


ACTIVATION_PERSONAL = {"kpj_number", "full_name", "email", "phone", "employer_name"}


@message("AccountActivated", personal=ACTIVATION_PERSONAL)
class AccountActivated(Event):
    """The participant has a KPJ number and a digital card and can use the app. Carries what notification needs."""

    participant_id: str = _participant_id()
    category: Category = Field(description="PU, BPU or PMI.", examples=["BPU"])
    kpj_number: str = Field(pattern=KPJ, description="KPJ (card) number, 11 digits: new for BPU / PMI, the employer's for PU.", examples=["26112100042"])
    digital_card_id: str = Field(pattern=HEX32, description="Identifier of the digital membership card (kartu digital).", examples=["1f2e3d4c5b6a47988a7b6c5d4e3f2a1b"])
    programs: list[Program] = Field(min_length=1, description="Programs the participant is covered by.", examples=[["JKK", "JKM", "JHT"]])
    employer_name: str | None = Field(default=None, description="PU: employer from the registry.", examples=[None])
    full_name: str = Field(description="Normalised name, for the welcome notice.", examples=["SITI AMINAH"])
    email: str = Field(description="Verified email.", examples=["siti.aminah@example.com"])
    phone: str = Field(description="Mobile number in E.164.", examples=["+6281234567890"])
    notification_channel: OtpChannel = Field(description="Channel the participant chose at registration; notices go there.", examples=["email"])


@message("RegistrationRejected")
class RegistrationRejected(Event):
    """The registration ended without an account (Dukcapil mismatch, employer membership missing, …)."""

    participant_id: str = _participant_id()
    reason_code: RegistrationRejectionReason = Field(description="Machine-readable reason.", examples=["NIK_MISMATCH"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["Data tidak sesuai dengan data Dukcapil; proses pendaftaran tidak dapat dilanjutkan"])


@message("RegistrationExpired")
class RegistrationExpired(Event):
    """The registration was left unfinished for longer than the configured time."""

    participant_id: str = _participant_id()
    stage: RegistrationStage = Field(description="What the registration was waiting for.", examples=["PAYMENT"])
    timeout_seconds: int = Field(ge=1, description="The configured time it was allowed.", examples=[604800])


@message("RegistrationNikConfirmed")
class RegistrationNikConfirmed(Event):
    """Registration recorded identity's NikVerified for this registration (its own fact, so its state folds from its log)."""

    participant_id: str = _participant_id()
    source_message_id: str = Field(pattern=HEX32, description="message_id of the NikVerified event.", examples=["7a6b5c4d3e2f41a0b9c8d7e6f5a4b3c2"])


@message("RegistrationContactConfirmed")
class RegistrationContactConfirmed(Event):
    """Registration recorded identity's OtpVerified (purpose REGISTRATION): the contact belongs to the participant."""

    participant_id: str = _participant_id()
    channel: OtpChannel = Field(description="Channel whose contact was verified.", examples=["email"])
    source_message_id: str = Field(pattern=HEX32, description="message_id of the OtpVerified event.", examples=["8b7c6d5e4f3a42b1a0d9e8f7a6b5c4d3"])


# --- Internal commands of the registration service (sent by its own schedulers, not by the app) --


@message("RetryEmployerMembershipCheck")
class RetryEmployerMembershipCheck(Command):
    """PU: ask the employer registry again after ``EmployerMembershipCheckDeferred`` (sent by the retry scheduler at ``retry_at``)."""

    attempt: int = Field(ge=1, description="`attempt` of the EmployerMembershipCheckDeferred this retry follows; a retry for an older attempt is ignored.", examples=[1])


@message("ExpireRegistration")
class ExpireRegistration(Command):
    """End a registration left unfinished (SPEC §3.7); sent by the expiry scheduler, ignored when the registration finished or is not due yet."""

    registered_at: AwareDatetime = Field(description="When ParticipantRegistered was appended (its envelope's occurred_at, UTC); the configured time counts from it.", examples=["2026-11-20T08:30:00Z"])
    reason: str = Field(default="registration left unfinished", description="Why the scheduler sent it (no personal data).", examples=["registration left unfinished"])
