"""NIK (Nomor Induk Kependudukan) structure, name normalisation and masking.

A NIK has 16 digits: 1–2 province, 3–4 regency / city, 5–6 district (together the region code of
the place of registration), 7–12 the birth date DDMMYY with 40 added to DD for women, 13–16 a serial
that is not ``0000``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

#: Province codes (Kemendagri) as used in NIKs issued before the 2022 Papua split, with the
#: provincial capital. All lie in 11–94.
PROVINCES: dict[str, tuple[str, str]] = {
    "11": ("Aceh", "Banda Aceh"),
    "12": ("Sumatera Utara", "Medan"),
    "13": ("Sumatera Barat", "Padang"),
    "14": ("Riau", "Pekanbaru"),
    "15": ("Jambi", "Jambi"),
    "16": ("Sumatera Selatan", "Palembang"),
    "17": ("Bengkulu", "Bengkulu"),
    "18": ("Lampung", "Bandar Lampung"),
    "19": ("Kepulauan Bangka Belitung", "Pangkalpinang"),
    "21": ("Kepulauan Riau", "Tanjungpinang"),
    "31": ("DKI Jakarta", "Jakarta"),
    "32": ("Jawa Barat", "Bandung"),
    "33": ("Jawa Tengah", "Semarang"),
    "34": ("DI Yogyakarta", "Yogyakarta"),
    "35": ("Jawa Timur", "Surabaya"),
    "36": ("Banten", "Serang"),
    "51": ("Bali", "Denpasar"),
    "52": ("Nusa Tenggara Barat", "Mataram"),
    "53": ("Nusa Tenggara Timur", "Kupang"),
    "61": ("Kalimantan Barat", "Pontianak"),
    "62": ("Kalimantan Tengah", "Palangka Raya"),
    "63": ("Kalimantan Selatan", "Banjarmasin"),
    "64": ("Kalimantan Timur", "Samarinda"),
    "65": ("Kalimantan Utara", "Tanjung Selor"),
    "71": ("Sulawesi Utara", "Manado"),
    "72": ("Sulawesi Tengah", "Palu"),
    "73": ("Sulawesi Selatan", "Makassar"),
    "74": ("Sulawesi Tenggara", "Kendari"),
    "75": ("Gorontalo", "Gorontalo"),
    "76": ("Sulawesi Barat", "Mamuju"),
    "81": ("Maluku", "Ambon"),
    "82": ("Maluku Utara", "Sofifi"),
    "91": ("Papua", "Jayapura"),
    "92": ("Papua Barat", "Manokwari"),
}

_NIK = re.compile(r"^[0-9]{16}$")  # not \d, which also matches non-ASCII digits
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class NikFacts:
    """What the structure of a valid NIK tells: region, birth date and gender."""

    province: str
    region: str
    birth_date: date
    gender: str  # "M" or "F"
    serial: str


def parse_nik(nik: str, *, century_pivot: int | None = None) -> NikFacts | None:
    """The facts encoded in ``nik``, or ``None`` when it is not structurally valid.

    The two-digit year is read as 19YY when YY is above ``century_pivot`` (default: the current
    year's last two digits), else 20YY.
    """
    if not isinstance(nik, str) or not _NIK.match(nik):
        return None
    province, regency, district = nik[0:2], nik[2:4], nik[4:6]
    if province not in PROVINCES or regency == "00" or district == "00":
        return None
    dd, mm, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    gender = "M"
    if dd > 40:
        dd -= 40
        gender = "F"
    pivot = date.today().year % 100 if century_pivot is None else century_pivot
    year = 2000 + yy if yy <= pivot else 1900 + yy
    try:
        born = date(year, mm, dd)
    except ValueError:
        return None
    serial = nik[12:16]
    if serial == "0000":
        return None
    return NikFacts(province=province, region=nik[0:6], birth_date=born, gender=gender, serial=serial)


def birth_segment(birth_date: date, gender: str) -> str:
    """Digits 7–12 of a NIK: DDMMYY, DD + 40 for women."""
    day = birth_date.day + (40 if gender == "F" else 0)
    return f"{day:02d}{birth_date.month:02d}{birth_date.year % 100:02d}"


def normalise_name(name: str) -> str:
    """A name as Dukcapil compares it: NFKC (fullwidth letters as plain ones), trimmed, runs of
    whitespace as one space, upper case."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name)).strip().upper()


def mask_nik(nik: object) -> str:
    """A NIK fit for logs: first 4 and last 4 digits, e.g. ``3201********0001``."""
    text = str(nik)
    if len(text) <= 8:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]
