"""Profile-update's configuration, from the environment."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from jmo_runtime import ServiceSettings


class ProfileUpdateSettings(ServiceSettings):
    """``JMO_PROFILE_SESSION_TIMEOUT_SECONDS``: a session with no completed step for this long expires;
    ``JMO_PROFILE_SWEEP_SECONDS``: how often open sessions are checked."""

    profile_session_timeout_seconds: int = Field(default=1800, ge=1, description="Inactivity after which a pengkinian-data session expires.")
    profile_sweep_seconds: float = Field(default=30.0, gt=0, description="How often open sessions are checked for expiry.")

    def session_timeout(self) -> timedelta:
        return timedelta(seconds=self.profile_session_timeout_seconds)
