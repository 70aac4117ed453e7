"""The exported JSON Schemas and example envelopes match the code (drift test) and are valid."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from jmo_contracts import Envelope, registered
from jmo_contracts.envelope import STREAM_ID_PATTERN
from jmo_contracts.export import CONTRACTS_DIR, check, main, render, write

pytestmark = pytest.mark.unit

EXAMPLES = sorted((CONTRACTS_DIR / "examples").glob("*.json"))
COMMANDS = sorted(name for name, cls in registered().items() if cls.KIND == "command")


def _copy_contracts(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    for sub in ("schemas", "examples"):
        shutil.copytree(CONTRACTS_DIR / sub, root / sub)
    return root


def test_the_committed_schemas_and_examples_match_the_code():
    problems = check()
    assert not problems, "run `python -m jmo_contracts.export`:\n" + "\n".join(problems)


def test_the_check_command_exits_zero_when_up_to_date():
    assert main(["--check"]) == 0


def test_the_check_fails_when_a_file_was_edited_by_hand_is_missing_or_is_extra(tmp_path):
    root = _copy_contracts(tmp_path)
    (root / "schemas" / "OtpVerified.v1.json").write_text("{}\n")
    (root / "examples" / "SubmitOtp.json").unlink()
    (root / "schemas" / "Gone.v1.json").write_text("{}\n")
    assert sorted(check(root)) == ["differs: schemas/OtpVerified.v1.json", "extra: schemas/Gone.v1.json", "missing: examples/SubmitOtp.json"]
    assert main(["--check", "--root", str(root)]) == 1


def test_writing_repairs_drift_and_regenerating_is_byte_stable(tmp_path):
    root = _copy_contracts(tmp_path)
    (root / "schemas" / "OtpVerified.v1.json").write_text("{}\n")
    (root / "schemas" / "Gone.v1.json").write_text("{}\n")
    assert write(root) == ["deleted schemas/Gone.v1.json", "wrote schemas/OtpVerified.v1.json"]
    assert check(root) == []
    assert write(root) == []
    assert render() == render()


def test_there_is_one_example_per_command_and_none_for_events():
    assert [p.stem for p in EXAMPLES] == COMMANDS


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_command_example_is_a_valid_envelope_of_its_command(path):
    envelope = Envelope.from_json(path.read_bytes())
    cls = registered()[envelope.type]
    assert path.stem == envelope.type
    assert cls.KIND == "command"
    assert envelope.schema_version == cls.VERSION
    assert type(envelope.open()) is cls
    assert json.loads(path.read_text()) == json.loads(envelope.to_json())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_streams_follow_the_stream_pattern(path):
    envelope = Envelope.from_json(path.read_bytes())
    assert re.fullmatch(STREAM_ID_PATTERN, envelope.stream_id)


@pytest.mark.parametrize("name", sorted(registered()))
def test_every_schema_names_its_type_kind_version_and_personal_fields(name):
    cls = registered()[name]
    schema = json.loads((CONTRACTS_DIR / "schemas" / f"{name}.v{cls.VERSION}.json").read_text())
    assert schema["title"] == name
    assert schema["description"]
    assert schema["x-jmo-type"] == name
    assert schema["x-jmo-version"] == cls.VERSION
    assert schema["x-jmo-kind"] == cls.KIND
    assert schema["x-jmo-personal-fields"] == sorted(cls.PERSONAL_FIELDS)
    assert schema["additionalProperties"] is False
    assert all(prop.get("description") or name == "ParticipantRegistered" for prop in schema["properties"].values())


def test_the_envelope_schema_is_exported():
    schema = json.loads((CONTRACTS_DIR / "schemas" / "Envelope.json").read_text())
    assert schema["title"] == "Envelope"
    assert {"message_id", "type", "schema_version", "occurred_at", "correlation_id", "causation_id", "stream_id", "payload"} <= set(schema["properties"])
