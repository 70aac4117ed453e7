"""Value types and events shared by every service."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .messages import Event, message


class Category(StrEnum):
    """Participation category (kategori kepesertaan)."""

    PU = "PU"  # Penerima Upah: wage earner / employee
    BPU = "BPU"  # Bukan Penerima Upah: non-wage earner / self-employed
    PMI = "PMI"  # Pekerja Migran Indonesia: Indonesian migrant worker


class OtpChannel(StrEnum):
    """Where a one-time code is delivered."""

    EMAIL = "email"
    SMS = "sms"


@message("CommandRejected")
class CommandRejected(Event):
    """A command could not be applied. The gateway finds it by the command's correlation id."""

    service: str = Field(description="Service that refused the command.", examples=["registration"])
    command_type: str = Field(description="Type of the refused command.", examples=["RegisterParticipant"])
    command_id: str = Field(description="message_id of the refused command.", examples=["6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"])
    reason_code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="Machine-readable reason.", examples=["INVALID_NIK"])
    reason: str = Field(description="Human-readable explanation (no personal data).", examples=["NIK must have 16 digits"])
