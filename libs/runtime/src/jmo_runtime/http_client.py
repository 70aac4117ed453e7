"""The HTTP client of the services' adapters (registries, SMS provider): aiohttp.

aiohttp costs a request about a third of the client CPU httpx did (issue 11). Its session must be
made inside a running event loop, while services build their adapters before theirs runs: an
adapter holds a :class:`SessionOnFirstUse` and calls it for the session each time.
"""

from __future__ import annotations

import aiohttp


def attempt_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """At most ``seconds`` to get a connection, and at most ``seconds`` between two reads of the answer."""
    return aiohttp.ClientTimeout(connect=seconds, sock_read=seconds)


class SessionOnFirstUse:
    """An adapter's :class:`aiohttp.ClientSession`: ``given``, or one made at the first call, in the
    running event loop, that keeps no cookies and reads no proxy settings from the environment (both
    cost CPU on every request and an API client needs neither). :meth:`close` closes a session made
    here; a given one is its owner's to close.
    """

    def __init__(self, given: aiohttp.ClientSession | None = None) -> None:
        self._session = given
        self._own = given is None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    @property
    def made(self) -> aiohttp.ClientSession | None:
        """The session, once there is one (a given one, or the one made at the first call)."""
        return self._session

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
