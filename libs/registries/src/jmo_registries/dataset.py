"""The synthetic citizens shipped with the package (``data/citizens.jsonl.gz``), indexed by NIK.

The default data set is read lazily, once per process, on first use (:func:`default_dataset`).
Records are plain dicts as written by :mod:`jmo_registries.generate`; see the package README for
the fields.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from .ports import Membership

DATA_DIR = Path(__file__).parent / "data"
CITIZENS_FILE = DATA_DIR / "citizens.jsonl.gz"
PHOTO_DIR = DATA_DIR / "ktp_photos"


class CitizenDataset:
    """An immutable set of citizen records, indexed by NIK."""

    def __init__(self, records: Iterable[Mapping[str, Any]], *, photo_dir: Path = PHOTO_DIR) -> None:
        self._records: tuple[Mapping[str, Any], ...] = tuple(records)
        self._by_nik: dict[str, Mapping[str, Any]] = {r["nik"]: r for r in self._records}
        if len(self._by_nik) != len(self._records):
            raise ValueError("duplicate NIK in the data set")
        self.photo_dir = photo_dir

    @classmethod
    def from_file(cls, path: Path = CITIZENS_FILE, *, photo_dir: Path = PHOTO_DIR) -> CitizenDataset:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return cls((json.loads(line) for line in fh if line.strip()), photo_dir=photo_dir)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._records)

    def get(self, nik: str) -> Mapping[str, Any] | None:
        """The record of ``nik``, or ``None``."""
        return self._by_nik.get(nik)

    def photo_path(self, nik: str) -> Path | None:
        """Where the KTP photo of ``nik`` is, or ``None`` when the citizen has none."""
        record = self._by_nik.get(nik)
        if record is None or not record.get("photo"):
            return None
        return self.photo_dir / record["photo"]

    def membership(self, nik: str) -> Membership | None:
        """The employer membership of ``nik`` as a :class:`Membership`, or ``None``."""
        record = self._by_nik.get(nik)
        employer = record.get("employer") if record else None
        return membership_from_json(employer) if employer else None


def membership_from_json(data: Mapping[str, Any]) -> Membership:
    """A :class:`Membership` from its JSON form (data set record or HTTP answer)."""
    return Membership(
        kpj_number=str(data["kpj_number"]),
        employer_npp=str(data["employer_npp"]),
        employer_name=str(data["employer_name"]),
        member_since=date.fromisoformat(data["member_since"]),
        programs=tuple(data["programs"]),
        active=data["status"] == "ACTIVE",
    )


def membership_to_json(m: Membership) -> dict[str, Any]:
    """The JSON form of a :class:`Membership` (as served by the employer registry API)."""
    return {
        "kpj_number": m.kpj_number,
        "employer_npp": m.employer_npp,
        "employer_name": m.employer_name,
        "member_since": m.member_since.isoformat(),
        "programs": list(m.programs),
        "status": "ACTIVE" if m.active else "INACTIVE",
    }


_default: CitizenDataset | None = None
_lock = threading.Lock()


def default_dataset() -> CitizenDataset:
    """The shipped data set, loaded on first call and shared afterwards."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = CitizenDataset.from_file()
    return _default
