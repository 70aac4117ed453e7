"""What is sent for which message, under which id, in which words (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jmo_contracts import topics
from jmo_contracts.catalog import accepted_on
from jmo_contracts.export import example_message
from jmo_contracts.messages import registered as message_classes
from jmo_notification.domain.notices import NOTIFYING, contact_from, notification_id, plan, valid_recipient
from jmo_notification.adapters.rendering import TemplateError, render

from .fixtures import EMAIL, PARTICIPANT, PHONE, activated, otp_request, profile_updated, registered, rejected

pytestmark = pytest.mark.unit

TEMPLATES = ["otp_registration", "otp_contact_change", "registration_received", "registration_rejected", "account_activated", "profile_updated"]
SOURCE = "6f1c2a9e0d4b4c1f9a7e3b2d1c0f9e8a"


def test_the_notification_id_is_the_same_for_the_same_source_and_template_and_differs_otherwise() -> None:
    nid = notification_id(SOURCE, "otp_registration")
    assert nid == notification_id(SOURCE, "otp_registration") and len(nid) == 32 and int(nid, 16) >= 0
    assert nid != notification_id(SOURCE, "account_activated")
    assert nid != notification_id("7" * 32, "otp_registration")


def test_an_otp_request_is_one_notice_to_its_destination_with_the_code_still_sealed() -> None:
    source = otp_request(channel="sms")
    [notice] = plan(source.open(), source.message_id)
    assert (notice.template, notice.channel, notice.recipient) == ("otp_registration", "sms", PHONE)
    assert notice.otp is not None and notice.otp.ciphertext == source.payload["code_ciphertext"]
    assert "048213" not in repr(notice)
    assert notice.notification_id == notification_id(source.message_id, "otp_registration")


def test_a_contact_change_code_uses_its_own_template() -> None:
    source = otp_request(purpose="CONTACT_CHANGE")
    assert [n.template for n in plan(source.open(), source.message_id)] == ["otp_contact_change"]


@pytest.mark.parametrize(
    ("make", "template", "channel", "recipient"),
    [
        (lambda: registered("email"), "registration_received", "email", EMAIL),
        (lambda: registered("sms"), "registration_received", "sms", PHONE),
        (lambda: activated("sms"), "account_activated", "sms", PHONE),
        (profile_updated, "profile_updated", "email", "siti.baru@example.com"),
        (rejected, "registration_rejected", None, None),  # the directory says where
    ],
)
def test_each_notice_goes_to_the_channel_the_participant_chose(make, template, channel, recipient) -> None:  # type: ignore[no-untyped-def]
    source = make()
    [notice] = plan(source.open(), source.message_id)
    assert (notice.template, notice.channel, notice.recipient, notice.participant_id) == (template, channel, recipient, PARTICIPANT)


def test_the_activation_notice_carries_the_kpj_number() -> None:
    source = activated()
    [notice] = plan(source.open(), source.message_id)
    assert notice.context["kpj_number"] == "26112100042"


def test_registration_activation_and_profile_events_tell_the_directory_where_to_reach_the_participant() -> None:
    assert contact_from(registered("sms").open()).channel == "sms"  # type: ignore[union-attr]
    assert contact_from(profile_updated().open()).email == "siti.baru@example.com"  # type: ignore[union-attr]
    assert contact_from(rejected().open()) is None


@pytest.mark.parametrize(("channel", "recipient", "ok"), [("email", EMAIL, True), ("email", "not-an-email", False), ("sms", PHONE, True), ("sms", "081234567890", False)])
def test_recipients_are_checked_for_their_channel(channel: str, recipient: str, ok: bool) -> None:
    assert valid_recipient(channel, recipient) is ok


CONTEXT = {"code": "048213", "expires_at_local": "15:35", "reason": "Data tidak sesuai", "reason_code": "NIK_MISMATCH", "full_name": "SITI AMINAH",
           "kpj_number": "26112100042", "programs": ["JKK", "JKM"], "changed_fields": ["email"]}


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("channel", ["email", "sms"])
def test_every_template_exists_for_both_channels_and_renders(template: str, channel: str) -> None:
    text = render(template, channel, CONTEXT)
    assert text.body.strip()
    assert (text.subject is not None) == (channel == "email")
    if channel == "sms":
        assert len(text.body) <= 160 * 2  # at most two SMS segments


def test_the_otp_text_is_in_bahasa_indonesia_with_the_code_and_its_expiry() -> None:
    text = render("otp_registration", "email", CONTEXT)
    assert text.subject == "Kode verifikasi pendaftaran JMO"
    assert "048213" in text.body and "15:35 WIB" in text.body and "Jangan berikan kode ini" in text.body


def test_a_missing_value_is_a_template_error_that_does_not_repeat_the_values() -> None:
    with pytest.raises(TemplateError) as e:
        render("account_activated", "email", {"full_name": "SITI AMINAH"})
    assert "SITI" not in str(e.value)


def test_templates_are_files_inside_the_package() -> None:
    import jmo_notification

    folder = Path(jmo_notification.__file__).parent / "templates"
    assert {p.name.removesuffix(".txt.j2") for p in (folder / "email").iterdir()} == set(TEMPLATES)
    assert {p.name.removesuffix(".txt.j2") for p in (folder / "sms").iterdir()} == set(TEMPLATES)


@pytest.mark.parametrize("topic", [topics.OTP_DELIVERY, topics.events("registration"), topics.events("profile-update")])
def test_every_type_passed_over_unread_is_one_no_notice_and_no_contact_would_come_of(topic: str) -> None:
    # the service reads only NOTIFYING of what these topics carry: anything else must be a no-op
    acted_on = {cls.TYPE for cls in NOTIFYING}
    for name in sorted(accepted_on(topic) - acted_on):
        message = example_message(message_classes()[name])
        assert plan(message, "0" * 32) == [], name
        assert contact_from(message) is None, name
    for cls in NOTIFYING:  # and each type read is one something comes of
        message = example_message(cls)
        assert plan(message, "0" * 32) or contact_from(message) is not None, cls.TYPE
