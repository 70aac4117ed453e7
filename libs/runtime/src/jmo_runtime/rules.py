"""Contact and name rules every decider that takes them from a person applies (SPEC §3.2, §5). Pure.

Each returns the normalised form, or raises :class:`Rejection` with the reason code the gateway shows.
"""

from __future__ import annotations

import re
import unicodedata

from .decider import Rejection

_NAME = re.compile(r"^[A-Za-z][A-Za-z '.,-]*$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_MOBILE = re.compile(r"^(?:\+62|62|0)(8[1-9][0-9]{6,10})$")


def normalise_name(name: str) -> str:
    """NFKC (fullwidth letters as plain ones), trimmed, single spaces, upper case — the form names
    are compared in."""
    cleaned = " ".join(unicodedata.normalize("NFKC", name).split()).upper()
    if not cleaned or not _NAME.match(cleaned):
        raise Rejection("INVALID_NAME", "name may contain only letters, spaces and ' . , -")
    if len(cleaned) > 100:
        raise Rejection("INVALID_NAME", "name is longer than 100 characters")
    return cleaned


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise Rejection("INVALID_EMAIL", "email address is not valid")
    return email.lower()


def to_e164(phone: str) -> str:
    """``08…``, ``628…`` or ``+628…`` (spaces and dashes allowed) as ``+628…``."""
    compact = re.sub(r"[\s-]", "", phone)
    m = _MOBILE.match(compact)
    if not m:
        raise Rejection("INVALID_PHONE", "phone must be an Indonesian mobile number (08… or +628…)")
    return "+62" + m.group(1)
