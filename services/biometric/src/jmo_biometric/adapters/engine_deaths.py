"""How many times the face engine's worker process died on a picture, by the picture's SHA-256.

A worker that dies while analysing (a crash in native code, killed out of memory) fails the call and
the command is redelivered; this count lets the application stop analysing a picture that kills a
worker every time (:func:`~jmo_biometric.domain.selfie.after_engine_deaths`) instead of blocking its
partition forever.

Kept in the service process's memory: a command that fails is delivered again to the same consumer,
which seeks back to it. A crash or restart of the whole service process (or a partition moving to
another instance) starts the counts at zero again: a picture that kills workers then costs up to the
limit's deaths once more before it is refused, never a wrong decision. Only SHA-256 digests are kept,
never a picture, and at most ``capacity`` of them (the least recently counted are dropped first).
"""

from __future__ import annotations


class EngineDeaths:
    """Worker deaths per picture (its SHA-256, lower-case hex), in memory."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._deaths: dict[str, int] = {}

    def of(self, sha256: str) -> int:
        """The deaths counted on this picture so far."""
        return self._deaths.get(sha256, 0)

    def died_on(self, sha256: str) -> int:
        """Count one more death on this picture; returns its count."""
        deaths = self._deaths.pop(sha256, 0) + 1
        self._deaths[sha256] = deaths  # re-inserted: the dict's order is the order of the latest deaths
        while len(self._deaths) > self.capacity:
            del self._deaths[next(iter(self._deaths))]
        return deaths

    def forget(self, sha256: str) -> None:
        """The picture was analysed after all: a death counted on it had another cause."""
        self._deaths.pop(sha256, None)
