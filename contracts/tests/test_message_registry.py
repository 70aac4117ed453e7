"""Properties every registered command and event must have."""

from __future__ import annotations

import re
import typing

import pytest
from pydantic import BaseModel

from jmo_contracts import Envelope, registered
from jmo_contracts.export import example_envelope, example_message, legacy_models

pytestmark = pytest.mark.unit

MESSAGES = registered()
ALL_MODELS = [*MESSAGES.values(), *legacy_models()]

#: The published type names. Renaming one breaks every stored message and the gateway: add, never rename.
PUBLISHED_TYPES = {
    "AccountActivated", "AdditionalDataSubmitted", "ParticipantDataAccessed", "ParticipantErased", "CommandRejected", "ConfirmParticipationData", "ExpireRegistration", "RetryEmployerMembershipCheck",
    "ConfirmProfileUpdate", "ContactChangeVerified", "ExpireProfileUpdate", "ContactDataSubmitted", "ContributionAssessed",
    "ContributionPaid", "ContributionPaymentRejected", "EmployerMembershipCheckDeferred",
    "EmployerMembershipFound", "EmployerMembershipNotFound", "EmploymentDetailsRecorded", "NikRejected",
    "NikVerificationDeferred", "NikVerified", "NotificationFailed", "NotificationSent",
    "OtpDeliveryRequested", "OtpIssued", "OtpRejected", "OtpVerified", "ParticipantRegistered",
    "ParticipationDataConfirmed", "PopulationDataSubmitted", "ProfileUpdateCancelled",
    "ProfileUpdateExpired", "ProfileUpdateStarted", "ProfileUpdated", "ProvideEmploymentDetails",
    "RecordContributionPayment", "RegisterParticipant", "RegistrationContactConfirmed",
    "RegistrationExpired", "RegistrationNikConfirmed", "RegistrationRejected", "RequestOtp",
    "SelfieMatched", "SelfieRejected", "SelfieVerificationRecorded", "StartProfileUpdate",
    "SubmitAdditionalData", "SubmitContactData", "SubmitOtp", "SubmitPopulationData", "SubmitSelfie",
}

#: Fields of the core-owned ParticipantRegistered that still lack a description (to be fixed there).
KNOWN_UNDESCRIBED: set[tuple[str, str]] = set()


def _nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """``model`` and every pydantic model reachable through its field annotations."""
    found: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.add(current)
        for field in current.model_fields.values():
            stack = [field.annotation]
            while stack:
                tp = stack.pop()
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    todo.append(tp)
                stack.extend(typing.get_args(tp))
    return found


EVERY_MODEL = sorted({m for cls in ALL_MODELS for m in _nested_models(cls)}, key=lambda m: m.__qualname__)


def _personal_strings(message: BaseModel) -> list[str]:
    """Every string leaf of the personal fields of ``message`` (its example values)."""
    leaves: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            leaves.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    data = message.model_dump(mode="json")
    for name in type(message).PERSONAL_FIELDS:
        walk(data[name])
    return leaves


def test_the_published_type_names_are_all_still_registered_and_nothing_is_unlisted():
    assert set(MESSAGES) == PUBLISHED_TYPES


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_a_type_name_is_a_stable_identifier_not_a_python_import_path(name):
    cls = MESSAGES[name]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name)
    assert cls.TYPE == name
    assert "." not in name and cls.__module__ not in name


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_events_are_named_as_past_tense_facts_and_commands_as_imperatives(name):
    past_tense = re.search(r"(ed|Found|Sent|Paid)$", name) is not None
    assert MESSAGES[name].KIND == ("event" if past_tense else "command")


@pytest.mark.parametrize("model", EVERY_MODEL, ids=lambda m: m.__qualname__)
def test_every_model_is_frozen_and_forbids_extra_fields(model):
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("model", EVERY_MODEL, ids=lambda m: m.__qualname__)
def test_every_field_has_a_description_and_an_example(model):
    title = getattr(model, "TYPE", model.__qualname__)
    undescribed = {name for name, f in model.model_fields.items() if not (f.description or "").strip()} - {f for t, f in KNOWN_UNDESCRIBED if t == title}
    without_example = [name for name, f in model.model_fields.items() if not f.examples]
    assert not undescribed, f"{title}: fields without description: {sorted(undescribed)}"
    assert not without_example, f"{title}: fields without example: {without_example}"
    assert (model.__doc__ or "").strip(), f"{title} has no docstring"


def test_the_list_of_known_undescribed_fields_only_shrinks():
    still_missing = {(t, f) for t, f in KNOWN_UNDESCRIBED if not MESSAGES[t].model_fields[f].description}
    assert still_missing == KNOWN_UNDESCRIBED, f"described now, remove from KNOWN_UNDESCRIBED: {KNOWN_UNDESCRIBED - still_missing}"


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_personal_fields_name_real_fields(name):
    cls = MESSAGES[name]
    assert cls.PERSONAL_FIELDS <= set(cls.model_fields)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_type_round_trips_through_envelope_json(name):
    cls = MESSAGES[name]
    envelope = example_envelope(cls)
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert again.open() == example_message(cls)
    assert type(again.open()) is cls
    assert (again.type, again.schema_version) == (name, cls.VERSION)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_kafka_headers_are_printable_ascii_and_carry_no_personal_data(name):
    cls = MESSAGES[name]
    envelope = example_envelope(cls)
    headers = envelope.kafka_headers()
    personal = [v for v in _personal_strings(envelope.open()) if len(v) >= 3]
    for key, value in headers.items():
        for text in (key, value):
            assert text.isascii() and text.isprintable(), f"{key!r}: {value!r}"
            text.encode("utf-8")
        for secret in personal:
            assert secret not in value, f"header {key} carries personal data"
    for secret in personal:
        assert secret not in envelope.stream_id, "the Kafka key carries personal data"


def test_the_personal_data_of_registration_is_declared():
    assert {"nik", "full_name", "email", "phone"} <= MESSAGES["ParticipantRegistered"].PERSONAL_FIELDS
    assert "code" in MESSAGES["SubmitOtp"].PERSONAL_FIELDS
    assert "code_hmac" not in MESSAGES["OtpIssued"].PERSONAL_FIELDS


def test_what_repeats_the_nik_or_gives_away_job_or_income_is_declared_personal_too():
    assert {"birth_date", "gender"} <= MESSAGES["ParticipantRegistered"].PERSONAL_FIELDS  # the NIK's digits 7-12
    for name in ("ProvideEmploymentDetails", "EmploymentDetailsRecorded"):
        assert {"occupation", "employer_name", "work_location", "placement", "monthly_income"} <= MESSAGES[name].PERSONAL_FIELDS
    assert {"programs", "amount_due"} <= MESSAGES["ContributionAssessed"].PERSONAL_FIELDS  # amounts follow from the income bracket
    assert "amount" in MESSAGES["ContributionPaid"].PERSONAL_FIELDS and "employer_name" in MESSAGES["AccountActivated"].PERSONAL_FIELDS
    assert not MESSAGES["ParticipantErased"].PERSONAL_FIELDS and not MESSAGES["ParticipantDataAccessed"].PERSONAL_FIELDS  # the audit log holds none


def test_otp_issued_holds_a_keyed_hash_and_never_a_code_field():
    fields = set(MESSAGES["OtpIssued"].model_fields)
    assert "code_hmac" in fields
    assert not {"code", "otp", "otp_code"} & fields


def test_a_frozen_message_cannot_be_changed_after_creation():
    message = example_message(MESSAGES["SubmitOtp"])
    with pytest.raises(Exception):
        message.code = "000000"  # type: ignore[misc]


def test_a_payload_with_an_unknown_field_is_refused():
    cls = MESSAGES["SubmitOtp"]
    payload = example_message(cls).model_dump(mode="json") | {"surprise": 1}
    with pytest.raises(ValueError):
        cls.model_validate(payload)


def test_an_event_read_back_from_a_log_may_hold_erased_personal_fields_of_any_type() -> None:
    """After an erasure the codec reads ``[erased]`` for every personal field: a date, an enum, a
    number, a nested model. ``parse_stored`` accepts that (and only that) in personal fields."""
    from datetime import date

    import pydantic

    from jmo_contracts import ERASED, erased_fields, parse_payload, parse_stored
    from jmo_contracts.profile_update import ProfileUpdated, ProfileValues
    from jmo_contracts.registration import ContributionPaid, ParticipantRegistered

    registered = ParticipantRegistered(participant_id="ab" * 16, category="BPU", nik="3201014508900001", full_name="SITI", email="s@example.com",
                                       phone="+6281234567890", otp_channel="email", birth_date=date(1990, 8, 5), gender="F")
    updated = ProfileUpdated(participant_id="ab" * 16, session_id="cd" * 16, changed_fields=["phone"], new_values=ProfileValues(phone="+6281234567891"),
                             contact_email="s@example.com", contact_phone="+6281234567891", notification_channel="email")
    for event in (registered, updated):
        stored = event.model_dump(mode="json") | dict.fromkeys(event.PERSONAL_FIELDS, ERASED)
        with pytest.raises(pydantic.ValidationError):
            parse_payload(event.TYPE, event.VERSION, stored)  # what is sent is parsed strictly
        read = parse_stored(event.TYPE, event.VERSION, stored)
        assert isinstance(read, type(event)) and read.TYPE == event.TYPE and erased_fields(read) == event.PERSONAL_FIELDS
        assert read.model_dump(mode="json") == stored
        assert parse_stored(event.TYPE, event.VERSION, event.model_dump(mode="json")) == event and not erased_fields(event)
        with pytest.raises(pydantic.ValidationError):  # the other fields are checked as ever
            parse_stored(event.TYPE, event.VERSION, stored | {"participant_id": "not a reference"})
    assert parse_stored("ParticipantRegistered", 1, registered.model_dump(mode="json") | {"birth_date": ERASED}).category.value == "BPU"  # still the enum
    assert "amount" in ContributionPaid.PERSONAL_FIELDS


@pytest.mark.parametrize("cls", [c for c in registered().values() if c.PERSONAL_FIELDS], ids=lambda c: c.TYPE)
def test_every_personal_field_of_every_message_can_read_erased(cls: type) -> None:
    from pydantic import TypeAdapter

    from jmo_contracts import ERASED
    from jmo_contracts.messages import _erased_variant

    from jmo_contracts import erased_fields, parse_stored

    variant = _erased_variant(cls)
    assert issubclass(variant, cls) and variant.TYPE == cls.TYPE and variant.model_config["extra"] == "forbid"
    for name in cls.PERSONAL_FIELDS:
        assert TypeAdapter(variant.model_fields[name].annotation).validate_python(ERASED) == ERASED
    stored = example_message(cls).model_dump(mode="json") | dict.fromkeys(cls.PERSONAL_FIELDS, ERASED)
    assert erased_fields(parse_stored(cls.TYPE, cls.VERSION, stored)) == cls.PERSONAL_FIELDS
