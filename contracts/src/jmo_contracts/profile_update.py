"""Contracts of the profile-update service: the pengkinian-data session (SPEC §5).

A session is a stream ``profile-update-<session_id>``; the gateway chooses ``session_id`` in
``StartProfileUpdate`` and repeats it, with the participant id, in every later command, so that a
command for another participant's session can be refused. Steps run in order: start → confirm
participation data → selfie (biometric service) → contact data (changed phone / email verified by OTP)
→ population data → additional data → confirm (terms ticked) → ``ProfileUpdated``.
Out-of-order commands and commands for expired sessions are refused with ``CommandRejected``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .common import OtpChannel
from .messages import Command, Event, Part, message

HEX32 = r"^[0-9a-f]{32}$"

EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
EXAMPLE_SESSION_ID = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"


def _participant_id() -> Any:
    return Field(pattern=HEX32, description="Participant reference (from ParticipantRegistered). Not personal data.", examples=[EXAMPLE_PARTICIPANT_ID])


def _session_id() -> Any:
    return Field(pattern=HEX32, description="Pengkinian-data session; its stream is profile-update-<session_id>.", examples=[EXAMPLE_SESSION_ID])


def _expires_at() -> Any:
    return Field(
        default=None,
        description="The session's new inactivity deadline (UTC): each completed step moves it. Absent in events written before it existed.",
        examples=["2026-11-21T09:30:00Z"],
    )


_Part = Part


class Gender(StrEnum):
    """Jenis kelamin, as on the KTP."""

    M = "M"  # laki-laki
    F = "F"  # perempuan


class MaritalStatus(StrEnum):
    """Status perkawinan, as on the KTP."""

    BELUM_KAWIN = "BELUM_KAWIN"
    KAWIN = "KAWIN"
    CERAI_HIDUP = "CERAI_HIDUP"
    CERAI_MATI = "CERAI_MATI"


class Education(StrEnum):
    """Pendidikan terakhir."""

    TIDAK_SEKOLAH = "TIDAK_SEKOLAH"
    SD = "SD"
    SMP = "SMP"
    SMA = "SMA"  # SMA / SMK / sederajat
    D1 = "D1"
    D2 = "D2"
    D3 = "D3"
    D4 = "D4"
    S1 = "S1"
    S2 = "S2"
    S3 = "S3"


class BloodType(StrEnum):
    """Golongan darah ("TIDAK_TAHU" when unknown)."""

    A = "A"
    B = "B"
    AB = "AB"
    O = "O"  # noqa: E741
    TIDAK_TAHU = "TIDAK_TAHU"


class Religion(StrEnum):
    """Agama / kepercayaan, as recorded by Dukcapil."""

    ISLAM = "ISLAM"
    KRISTEN = "KRISTEN"
    KATOLIK = "KATOLIK"
    HINDU = "HINDU"
    BUDDHA = "BUDDHA"
    KHONGHUCU = "KHONGHUCU"
    KEPERCAYAAN = "KEPERCAYAAN"  # Kepercayaan terhadap Tuhan Yang Maha Esa


class ProfileUpdateStep(StrEnum):
    """The last step a session completed."""

    STARTED = "STARTED"
    PARTICIPATION_CONFIRMED = "PARTICIPATION_CONFIRMED"
    SELFIE_VERIFIED = "SELFIE_VERIFIED"
    CONTACT_SUBMITTED = "CONTACT_SUBMITTED"
    POPULATION_SUBMITTED = "POPULATION_SUBMITTED"
    ADDITIONAL_SUBMITTED = "ADDITIONAL_SUBMITTED"


class CancellationReason(StrEnum):
    """Why a session ended without an update."""

    PARTICIPATION_DATA_DISPUTED = "PARTICIPATION_DATA_DISPUTED"  # core data wrong: branch office / employer letter
    SELFIE_ATTEMPTS_EXHAUSTED = "SELFIE_ATTEMPTS_EXHAUSTED"


class Address(_Part):
    """Alamat: a residential address in Indonesia."""

    street: str = Field(min_length=1, description="Street, number, hamlet (jalan / dusun).", examples=["Jl. Contoh Raya No. 12"])
    rt: str | None = Field(default=None, pattern=r"^[0-9]{1,3}$", description="Rukun Tetangga.", examples=["003"])
    rw: str | None = Field(default=None, pattern=r"^[0-9]{1,3}$", description="Rukun Warga.", examples=["005"])
    village: str = Field(description="Kelurahan / desa.", examples=["Sukamaju"])
    district: str = Field(description="Kecamatan.", examples=["Cibinong"])
    city: str = Field(description="Kabupaten / kota.", examples=["Kabupaten Bogor"])
    province: str = Field(description="Provinsi.", examples=["Jawa Barat"])
    postal_code: str | None = Field(default=None, pattern=r"^[0-9]{5}$", description="Kode pos.", examples=["16911"])


EXAMPLE_ADDRESS = {
    "street": "Jl. Contoh Raya No. 12",
    "rt": "003",
    "rw": "005",
    "village": "Sukamaju",
    "district": "Cibinong",
    "city": "Kabupaten Bogor",
    "province": "Jawa Barat",
    "postal_code": "16911",
}


class ProfileValues(_Part):
    """New values of the fields a session changed; a field listed as changed with no value was cleared."""

    phone: str | None = Field(default=None, description="Mobile number in E.164.", examples=["+6281234567891"])
    email: str | None = Field(default=None, description="Email address.", examples=["siti.aminah.baru@example.com"])
    npwp: str | None = Field(default=None, description="NPWP (tax number), 15 or 16 digits.", examples=["3201014508900001"])
    passport_number: str | None = Field(default=None, description="Passport number.", examples=["X1234567"])
    bank_name: str | None = Field(default=None, description="Bank name.", examples=["BNI"])
    bank_account_number: str | None = Field(default=None, description="Bank account number.", examples=["0123456789"])
    gender: Gender | None = Field(default=None, description="Gender.", examples=["F"])
    mother_maiden_name: str | None = Field(default=None, description="Mother's maiden name (nama ibu kandung).", examples=["NURHASANAH"])
    address: Address | None = Field(default=None, description="Address.", examples=[EXAMPLE_ADDRESS])
    marital_status: MaritalStatus | None = Field(default=None, description="Marital status.", examples=["KAWIN"])
    last_education: Education | None = Field(default=None, description="Last education.", examples=["SMA"])
    blood_type: BloodType | None = Field(default=None, description="Blood type.", examples=["O"])
    religion: Religion | None = Field(default=None, description="Religion.", examples=["ISLAM"])
    emergency_contact_name: str | None = Field(default=None, description="Emergency contact's name.", examples=["AHMAD FAUZI"])
    emergency_contact_phone: str | None = Field(default=None, description="Emergency contact's mobile number in E.164.", examples=["+6281398765432"])
    emergency_contact_relationship: str | None = Field(default=None, description="Relationship to the participant.", examples=["Suami"])


# --- Commands --------------------------------------------------------------------------------


@message("StartProfileUpdate")
class StartProfileUpdate(Command):
    """Open a pengkinian-data session ("Silakan Melanjutkan Proses Pengkinian Data" → "OK, Lanjutkan"). Active accounts only."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()


@message("ConfirmParticipationData")
class ConfirmParticipationData(Command):
    """The participant saw NIK, KPJ number, full name, place and date of birth and answers "Sudah" (or says they are wrong)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    confirmed: bool = Field(description="True: the data is right (\"Sudah\"). False: it is wrong; the session ends and the participant is sent to the branch office, as these fields are not editable here.", examples=[True])


CONTACT_PERSONAL = {"phone", "email", "npwp", "passport_number", "bank_account_number"}


@message("SubmitContactData", personal=CONTACT_PERSONAL)
class SubmitContactData(Command):
    """Contact data step (prefilled). A changed phone or email must then be verified by OTP (RequestOtp, purpose CONTACT_CHANGE)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    phone: str = Field(max_length=32, description="Indonesian mobile number, 08… or +628… (INVALID_PHONE otherwise).", examples=["081234567891"])
    email: str = Field(max_length=254, description="Email address (INVALID_EMAIL otherwise).", examples=["siti.aminah.baru@example.com"])
    npwp: str | None = Field(default=None, max_length=32, description="NPWP (tax number), 15 or 16 digits, dots and dashes allowed (INVALID_NPWP otherwise); optional, but without it JHT claims are taxed at a higher rate.", examples=["3201014508900001"])
    passport_number: str | None = Field(default=None, max_length=32, description="Passport number, 6–12 letters and digits (optional; INVALID_PASSPORT otherwise).", examples=[None])
    bank_name: str = Field(max_length=64, description="Bank for benefit payments, from the list of known banks (UNKNOWN_BANK otherwise).", examples=["BNI"])
    bank_account_number: str = Field(max_length=32, description="Account number at that bank, digits of the bank's length (INVALID_BANK_ACCOUNT otherwise).", examples=["0123456789"])


POPULATION_PERSONAL = {"gender", "mother_maiden_name", "address", "marital_status"}


@message("SubmitPopulationData", personal=POPULATION_PERSONAL)
class SubmitPopulationData(Command):
    """Population data step (data kependudukan)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    gender: Gender = Field(description="Gender, M or F (cross-checked with the NIK).", examples=["F"])
    mother_maiden_name: str = Field(max_length=100, description="Mother's maiden name (nama ibu kandung; INVALID_NAME otherwise).", examples=["Nurhasanah"])
    address: Address = Field(description="Residential address.", examples=[EXAMPLE_ADDRESS])
    marital_status: MaritalStatus = Field(description="Marital status.", examples=["KAWIN"])


ADDITIONAL_PERSONAL = {"last_education", "blood_type", "religion", "emergency_contact_name", "emergency_contact_phone", "emergency_contact_relationship"}


@message("SubmitAdditionalData", personal=ADDITIONAL_PERSONAL)
class SubmitAdditionalData(Command):
    """Additional data step (data tambahan)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    last_education: Education = Field(description="Last education (pendidikan terakhir).", examples=["SMA"])
    blood_type: BloodType = Field(description="Blood type (golongan darah).", examples=["O"])
    religion: Religion = Field(description="Religion (agama).", examples=["ISLAM"])
    emergency_contact_name: str = Field(max_length=100, description="Emergency contact's name (kontak darurat; INVALID_NAME otherwise).", examples=["Ahmad Fauzi"])
    emergency_contact_phone: str = Field(max_length=32, description="Emergency contact's mobile number, 08… or +628…; not the participant's own (INVALID_PHONE / EMERGENCY_CONTACT_IS_OWN_PHONE).", examples=["081398765432"])
    emergency_contact_relationship: str | None = Field(default=None, description="Relationship to the participant (optional).", examples=["Suami"])


@message("ConfirmProfileUpdate")
class ConfirmProfileUpdate(Command):
    """Confirmation page (NIK, KPJ, full name, NPWP, phone shown): save the update. The terms box must be ticked."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    terms_accepted: bool = Field(description="The terms checkbox; false is refused with TERMS_NOT_ACCEPTED.", examples=[True])


@message("ExpireProfileUpdate")
class ExpireProfileUpdate(Command):
    """End a session left inactive; sent by the service's expiry scheduler, ignored when the session finished or is not due yet."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()


# --- Events ----------------------------------------------------------------------------------


@message("ProfileUpdateStarted")
class ProfileUpdateStarted(Event):
    """A pengkinian-data session was opened."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    expires_at: AwareDatetime = Field(description="When the session expires if no step is completed before then (UTC); each step moves the deadline (inactivity timeout).", examples=["2026-11-21T09:00:00Z"])


@message("ParticipationDataConfirmed")
class ParticipationDataConfirmed(Event):
    """The participant confirmed the core identity data shown (NIK, KPJ, name, place and date of birth)."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    expires_at: AwareDatetime | None = _expires_at()


@message("SelfieVerificationRecorded")
class SelfieVerificationRecorded(Event):
    """The session recorded the biometric service's SelfieMatched: the person updating is the participant."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    source_message_id: str = Field(pattern=HEX32, description="message_id of the SelfieMatched event.", examples=["2c3d4e5f6a7b48c9d0e1f2a3b4c5d6e7"])
    expires_at: AwareDatetime | None = _expires_at()


@message("ContactDataSubmitted", personal=CONTACT_PERSONAL)
class ContactDataSubmitted(Event):
    """Contact data accepted; changed phone / email still need an OTP before confirmation."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    phone: str = Field(description="Mobile number in E.164.", examples=["+6281234567891"])
    email: str = Field(description="Email address (lower case).", examples=["siti.aminah.baru@example.com"])
    npwp: str | None = Field(default=None, description="NPWP, digits only.", examples=[None])
    passport_number: str | None = Field(default=None, description="Passport number.", examples=[None])
    bank_name: str = Field(description="Bank for benefit payments.", examples=["BNI"])
    bank_account_number: str = Field(description="Account number at that bank.", examples=["0123456789"])
    npwp_missing_warning: bool = Field(description="No NPWP given: the participant was warned that JHT claims are taxed at a higher rate (20 %).", examples=[True])
    verification_required: list[OtpChannel] = Field(description="Channels whose contact changed and must be verified by OTP before confirmation.", examples=[["email"]])
    expires_at: AwareDatetime | None = _expires_at()


@message("ContactChangeVerified")
class ContactChangeVerified(Event):
    """The session recorded identity's OtpVerified (purpose CONTACT_CHANGE) for a changed phone or email."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    channel: OtpChannel = Field(description="Which contact was verified.", examples=["email"])
    source_message_id: str = Field(pattern=HEX32, description="message_id of the OtpVerified event.", examples=["3d4e5f6a7b8c49d0e1f2a3b4c5d6e7f8"])
    expires_at: AwareDatetime | None = _expires_at()


@message("PopulationDataSubmitted", personal=POPULATION_PERSONAL)
class PopulationDataSubmitted(Event):
    """Population data accepted."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    gender: Gender = Field(description="Gender.", examples=["F"])
    mother_maiden_name: str = Field(description="Mother's maiden name, normalised (upper case).", examples=["NURHASANAH"])
    address: Address = Field(description="Residential address.", examples=[EXAMPLE_ADDRESS])
    marital_status: MaritalStatus = Field(description="Marital status.", examples=["KAWIN"])
    expires_at: AwareDatetime | None = _expires_at()


@message("AdditionalDataSubmitted", personal=ADDITIONAL_PERSONAL)
class AdditionalDataSubmitted(Event):
    """Additional data accepted."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    last_education: Education = Field(description="Last education.", examples=["SMA"])
    blood_type: BloodType = Field(description="Blood type.", examples=["O"])
    religion: Religion = Field(description="Religion.", examples=["ISLAM"])
    emergency_contact_name: str = Field(description="Emergency contact's name, normalised.", examples=["AHMAD FAUZI"])
    emergency_contact_phone: str = Field(description="Emergency contact's mobile number in E.164.", examples=["+6281398765432"])
    emergency_contact_relationship: str | None = Field(default=None, description="Relationship to the participant.", examples=["Suami"])
    expires_at: AwareDatetime | None = _expires_at()


@message("ProfileUpdated", personal={"new_values", "contact_email", "contact_phone"})
class ProfileUpdated(Event):
    """The participant confirmed with the terms accepted: the profile now holds the new values ("Pengkinian data berhasil")."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    changed_fields: list[str] = Field(description="Names of the profile fields that changed (names only, no values).", examples=[["email", "address", "blood_type"]])
    new_values: ProfileValues = Field(
        description="New values of the changed fields.",
        examples=[{"email": "siti.aminah.baru@example.com", "address": EXAMPLE_ADDRESS, "blood_type": "O"}],
    )
    contact_email: str = Field(description="The participant's email after the update, for the notice.", examples=["siti.aminah.baru@example.com"])
    contact_phone: str = Field(description="The participant's mobile number (E.164) after the update, for the notice.", examples=["+6281234567890"])
    notification_channel: OtpChannel = Field(description="Channel for the \"Pengkinian data berhasil\" notice.", examples=["email"])


@message("ProfileUpdateCancelled")
class ProfileUpdateCancelled(Event):
    """The session ended without an update."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    reason_code: CancellationReason = Field(description="Machine-readable reason.", examples=["PARTICIPATION_DATA_DISPUTED"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["Data kepesertaan tidak sesuai; silakan hubungi kantor cabang BPJS Ketenagakerjaan"])


@message("ProfileUpdateExpired")
class ProfileUpdateExpired(Event):
    """The session was not confirmed in time; nothing was changed."""

    participant_id: str = _participant_id()
    session_id: str = _session_id()
    last_step: ProfileUpdateStep = Field(description="Last step completed before it expired.", examples=["CONTACT_SUBMITTED"])
