"""Embedded defaults: the registries answered from the synthetic data set, in process.

They behave like the real registries (same answers, names compared normalised, Dukcapil never
saying which field differs) but never fail with :class:`~jmo_registries.ports.RegistryUnavailable`.
"""

from __future__ import annotations

import asyncio
from datetime import date

from .dataset import CitizenDataset, default_dataset
from .nik import normalise_name
from .ports import Membership, NikCheck


def check_identity(dataset: CitizenDataset, nik: str, full_name: str, birth_date: date | None) -> NikCheck:
    """Dukcapil's rule: found and every submitted field equal (names normalised) → SESUAI."""
    record = dataset.get(nik) if isinstance(nik, str) else None
    if record is None:
        return NikCheck.NOT_FOUND
    if normalise_name(full_name) != normalise_name(record["full_name"]):
        return NikCheck.TIDAK_SESUAI
    if birth_date is not None and birth_date.isoformat() != record["birth_date"]:
        return NikCheck.TIDAK_SESUAI
    return NikCheck.SESUAI


class _OverDataset:
    """Answers from the synthetic data set, loaded (once) on first use."""

    def __init__(self, dataset: CitizenDataset | None = None) -> None:
        self._dataset = dataset

    @property
    def dataset(self) -> CitizenDataset:
        if self._dataset is None:
            self._dataset = default_dataset()
        return self._dataset


class EmbeddedPopulationRegistry(_OverDataset):
    """:class:`~jmo_registries.ports.PopulationRegistry` over the synthetic data set."""

    async def verify(self, nik: str, full_name: str, birth_date: date | None = None) -> NikCheck:
        return check_identity(self.dataset, nik, full_name, birth_date)

    async def ktp_photo(self, nik: str) -> bytes | None:
        path = self.dataset.photo_path(nik)
        if path is None:
            return None
        return await asyncio.to_thread(path.read_bytes)


class EmbeddedEmployerRegistry(_OverDataset):
    """:class:`~jmo_registries.ports.EmployerRegistry` over the synthetic data set."""

    async def membership(self, nik: str) -> Membership | None:
        return self.dataset.membership(nik)
