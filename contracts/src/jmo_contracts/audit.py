"""Contracts of the audit log (SPEC §12): what the audit tools did with a participant's data.

The audit log is an event log of its own (database ``jmo_audit``, streams ``audit-<participant_id>``)
with the same hash chain as the services' logs. It holds no personal data of the participant: who
read or erased (a staff member or a ticket), why, when, and with which filters. Its events never
travel on Kafka; ``jmo audit access <participant>`` lists them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from .messages import Event, message

HEX32 = r"^[0-9a-f]{32}$"
EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"


class AuditRead(StrEnum):
    """Which audit command read the participant's data."""

    HISTORY = "history"  # jmo audit history
    STATE = "state"  # jmo audit state --at


@message("ParticipantDataAccessed")
class ParticipantDataAccessed(Event):
    """An auditor read a participant's data through the audit tools (recorded before anything is shown)."""

    participant_id: str = Field(pattern=HEX32, description="Participant whose data was read. Not personal data.", examples=[EXAMPLE_PARTICIPANT_ID])
    read_by: str = Field(min_length=1, max_length=128, description="Who read it: the --by option, else JMO_AUDITOR, else the OS user.", examples=["auditor.budi"])
    command: AuditRead = Field(description="The audit command that read it.", examples=["state"])
    filters: dict[str, str] = Field(default_factory=dict, description="The command's filters as given (instant, time range, types, service, scope); no personal data.", examples=[{"at": "2026-11-21T10:00:00+00:00"}])
    decrypted: bool = Field(description="Whether personal fields were shown decrypted (the reader held JMO_DATA_KEY).", examples=[True])


@message("ParticipantErased")
class ParticipantErased(Event):
    """A participant's personal data was erased on request (UU PDP No. 27/2022): every service's key
    replaced by a tombstone and the derived stores cleared. Who asked, why and when; no personal data."""

    participant_id: str = Field(pattern=HEX32, description="Participant erased. Not personal data.", examples=[EXAMPLE_PARTICIPANT_ID])
    requested_by: str = Field(min_length=1, max_length=128, description="Who asked for the erasure (the participant, a DPO, a ticket reference).", examples=["DPO ticket PDP-2026-0042"])
    reason: str = Field(min_length=1, max_length=256, description="Why (the legal ground or request).", examples=["Permintaan penghapusan data oleh peserta (UU PDP pasal 8)"])
    erased_by: str = Field(min_length=1, max_length=128, description="Who ran the erasure: JMO_AUDITOR, else the OS user.", examples=["ops.sari"])
    erased_at: AwareDatetime = Field(description="When the keys were tombstoned (UTC).", examples=["2026-11-21T10:05:00Z"])
    services: list[str] = Field(min_length=1, description="Services whose key ring now holds a tombstone for the participant.", examples=[["registration", "identity", "biometric", "profile-update", "notification"]])
    cleared: dict[str, int] = Field(default_factory=dict, description="Documents deleted or blanked in derived stores, as <service>/<collection>: count (a dot may not be in a key).", examples=[{"notification/contacts": 1, "profile-update/participant_profiles": 1}])
