"""A decider reads its facts as its own dataclass: what the application did not look up is refused, not assumed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from jmo_runtime import Context, InvariantBroken

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Looked:
    found: bool


def test_the_facts_of_the_kind_the_decision_needs_are_handed_over_as_they_are() -> None:
    facts = Looked(found=False)
    assert Context(now=datetime.now(UTC), stream_id="s-1", facts=facts).facts_as(Looked) is facts


@pytest.mark.parametrize("given", [None, {}, {"found": True}, "Looked"], ids=["none", "empty mapping", "mapping", "text"])
def test_facts_of_another_kind_decide_nothing_as_a_bug_of_the_service_not_a_rejection_of_the_sender(given: object) -> None:
    with pytest.raises(InvariantBroken, match="needs Looked facts"):
        Context(now=datetime.now(UTC), stream_id="s-1", facts=given).facts_as(Looked)
