"""Which handler failures wait for their cause to pass, and which are counted against a budget."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from jmo_registries import RegistryError, RegistryUnavailable
from jmo_runtime.messaging import is_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "transient"),
    [(AutoReconnect("x"), True), (ConnectionRefusedError(), True), (TimeoutError(), True), (ValueError("x"), False), (FileNotFoundError("model.dat"), False)],
)
def test_only_failures_that_pass_by_themselves_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
    assert is_transient(RegistryUnavailable("down")) and not is_transient(RegistryError("HTTP 400"))
