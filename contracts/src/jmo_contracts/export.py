"""Export the contracts as files the gateway team reads: JSON Schemas and example envelopes.

    python -m jmo_contracts.export           # (re)write contracts/schemas and contracts/examples
    python -m jmo_contracts.export --check   # exit 1, listing what differs, if the files are stale

Writes ``schemas/<Type>.v<version>.json`` for the current version of every registered type and for
the frozen copies of earlier versions (``LEGACY_MODELS`` of each contract module), ``schemas/Envelope.json``,
and ``examples/<Type>.json``: one valid envelope per command, built from the ``Field(examples=...)``
of its model with deterministic ids and timestamps, so that regenerating is byte-stable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from . import registered
from .envelope import Envelope
from .messages import Message

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CONTRACTS_DIR = Path(__file__).resolve().parents[2]
SCHEMAS = "schemas"
EXAMPLES = "examples"

EXAMPLE_OCCURRED_AT = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
EXAMPLE_CORRELATION_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
EXAMPLE_PARTICIPANT_ID = "5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b"
EXAMPLE_SESSION_ID = "c4a1e9f27b3d4c8e9a0b1c2d3e4f5a6b"

#: Stream an example command of each contract module is addressed to: (stream kind, 32-hex reference).
EXAMPLE_STREAMS: dict[str, tuple[str, str]] = {
    "registration": ("registration", "8d3c6c1e5f2a4b7d9e0f1a2b3c4d5e6f"),
    "identity": ("identity", EXAMPLE_PARTICIPANT_ID),
    "biometric": ("biometric", EXAMPLE_SESSION_ID),
    "profile_update": ("profile-update", EXAMPLE_SESSION_ID),
    "notification": ("notification", "4e5f6a7b8c9d40e1f2a3b4c5d6e7f8a9"),
}


class MissingExample(ValueError):
    """A required field has no ``examples=`` to build an example from."""


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _field_example(name: str, field: FieldInfo, owner: type[BaseModel]) -> Any:
    if field.examples:
        return field.examples[0]
    if not field.is_required():
        return field.get_default(call_default_factory=True)
    raise MissingExample(f"{owner.__name__}.{name} has no example")


def example_payload(cls: type[Message]) -> dict[str, Any]:
    """A payload of ``cls`` made of the first example of every field (JSON-compatible)."""
    raw = {name: _field_example(name, field, cls) for name, field in cls.model_fields.items()}
    return cls.model_validate(raw).model_dump(mode="json")


def example_message(cls: type[Message]) -> Message:
    """An instance of ``cls`` made of its field examples."""
    return cls.model_validate(example_payload(cls))


def _stable_hex(*parts: str) -> str:
    return hashlib.sha256(":".join(("jmo-contracts-example", *parts)).encode()).hexdigest()[:32]


def example_envelope(cls: type[Message]) -> Envelope:
    """A deterministic envelope around :func:`example_message` of ``cls``."""
    module = cls.__module__.rsplit(".", 1)[-1]
    kind, ref = EXAMPLE_STREAMS.get(module, (module.replace("_", "-"), _stable_hex(module, "stream")))
    return Envelope.wrap(
        example_message(cls),
        stream_id=f"{kind}-{ref}",
        correlation_id=EXAMPLE_CORRELATION_ID,
        message_id=_stable_hex(cls.TYPE, "message"),
        occurred_at=EXAMPLE_OCCURRED_AT,
    )


def legacy_models() -> list[type[Message]]:
    """Frozen copies of earlier versions, from the ``LEGACY_MODELS`` of every contract module."""
    modules = {sys.modules[cls.__module__] for cls in registered().values()}
    found = {(m.TYPE, m.VERSION): m for module in modules for m in getattr(module, "LEGACY_MODELS", ())}
    return [found[key] for key in sorted(found)]


def payload_schema(cls: type[Message]) -> dict[str, Any]:
    """JSON Schema of the payload of ``cls`` with the type, version, kind and personal fields as ``x-jmo-*``."""
    schema = cls.model_json_schema(mode="validation")
    head = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:jmo:schema:{cls.TYPE}:v{cls.VERSION}",
        "title": cls.TYPE,
        "description": schema.pop("description", "").strip(),
        "x-jmo-type": cls.TYPE,
        "x-jmo-version": cls.VERSION,
        "x-jmo-kind": cls.KIND,
        "x-jmo-personal-fields": sorted(cls.PERSONAL_FIELDS),
    }
    schema.pop("title", None)
    return head | schema


def envelope_schema() -> dict[str, Any]:
    schema = Envelope.model_json_schema(mode="validation")
    schema.pop("title", None)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": "urn:jmo:schema:Envelope", "title": "Envelope"} | schema


def render() -> dict[str, str]:
    """Every generated file: path relative to the contracts directory → content."""
    files: dict[str, str] = {f"{SCHEMAS}/Envelope.json": _dump(envelope_schema())}
    for cls in [*registered().values(), *legacy_models()]:
        files[f"{SCHEMAS}/{cls.TYPE}.v{cls.VERSION}.json"] = _dump(payload_schema(cls))
    for cls in registered().values():
        if cls.KIND == "command":
            files[f"{EXAMPLES}/{cls.TYPE}.json"] = _dump(json.loads(example_envelope(cls).to_json()))
    return dict(sorted(files.items()))


def _existing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for d in (SCHEMAS, EXAMPLES) if (root / d).is_dir() for p in (root / d).glob("*.json")}


def write(root: Path = CONTRACTS_DIR, files: Mapping[str, str] | None = None) -> list[str]:
    """Write the generated files under ``root`` and delete stale ones; returns what changed."""
    files = render() if files is None else files
    changed = []
    for rel in sorted(_existing(root) - set(files)):
        (root / rel).unlink()
        changed.append(f"deleted {rel}")
    for rel, content in files.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(f"wrote {rel}")
    return changed


def check(root: Path = CONTRACTS_DIR, files: Mapping[str, str] | None = None) -> list[str]:
    """What differs between the generated files and those under ``root`` (empty when up to date)."""
    files = render() if files is None else files
    problems = [f"extra: {rel}" for rel in sorted(_existing(root) - set(files))]
    for rel, content in files.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"differs: {rel}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jmo_contracts.export", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any file is missing, extra or different")
    parser.add_argument("--root", type=Path, default=CONTRACTS_DIR, help="contracts directory (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        _print(problems, sys.stderr)
        if problems:
            print("contracts are stale: run `python -m jmo_contracts.export`", file=sys.stderr)
            return 1
        return 0
    _print(write(args.root), sys.stdout)
    return 0


def _print(lines: Iterable[str], stream: Any) -> None:
    for line in lines:
        print(line, file=stream)


if __name__ == "__main__":
    raise SystemExit(main())
