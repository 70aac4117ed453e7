"""External registries behind adapters (SPEC §8): Dukcapil (population) and the employer registry.

* Ports: :class:`PopulationRegistry`, :class:`EmployerRegistry` (+ :class:`NikCheck`,
  :class:`Membership`, :class:`RegistryUnavailable`, :class:`CircuitOpen`, :class:`RegistryError`).
* Embedded defaults over the shipped synthetic citizens: :class:`EmbeddedPopulationRegistry`,
  :class:`EmbeddedEmployerRegistry`.
* Network adapters (aiohttp, tenacity retries, purgatory circuit breaker):
  :class:`HttpPopulationRegistry`, :class:`HttpEmployerRegistry`, :class:`CircuitBreaker`.
* :func:`population_registry`, :func:`employer_registry`: the one a service's settings name
  (:func:`close_registry` at the service's stop).
* A loopback server over the same API: :mod:`jmo_registries.server`.
* :func:`identities`: synthetic citizens usable for trying the registration journey.

Only the ports and embedded classes are imported eagerly; the network pieces load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clients import close_registry, employer_registry, population_registry
from .dataset import CitizenDataset, default_dataset
from .embedded import EmbeddedEmployerRegistry, EmbeddedPopulationRegistry
from .nik import mask_nik, normalise_name, parse_nik
from .ports import (
    CircuitOpen,
    EmployerRegistry,
    Membership,
    NikCheck,
    PopulationRegistry,
    RegistryError,
    RegistryUnavailable,
)

if TYPE_CHECKING:
    from .breaker import CircuitBreaker
    from .network import HttpEmployerRegistry, HttpPopulationRegistry

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "CitizenDataset",
    "EmbeddedEmployerRegistry",
    "EmbeddedPopulationRegistry",
    "EmployerRegistry",
    "HttpEmployerRegistry",
    "HttpPopulationRegistry",
    "Membership",
    "NikCheck",
    "PopulationRegistry",
    "RegistryError",
    "RegistryUnavailable",
    "close_registry",
    "default_dataset",
    "employer_registry",
    "identities",
    "mask_nik",
    "normalise_name",
    "parse_nik",
    "population_registry",
]

_LAZY = {
    "CircuitBreaker": "breaker",
    "HttpPopulationRegistry": "network",
    "HttpEmployerRegistry": "network",
}

CATEGORIES = ("PU", "BPU", "PMI")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def identities(category: str | None, count: int, *, dataset: CitizenDataset | None = None) -> list[dict[str, Any]]:
    """Up to ``count`` synthetic citizens a developer can register with (for ``jmo dev identities``).

    Each: ``{nik, full_name, birth_date, employer_registered, kpj_number (when registered),
    photo, has_ktp_photo}`` where ``photo`` is the path of the KTP photo file (the reference face of the
    selfie check) or ``None``. For category ``"PU"``
    only citizens with an ACTIVE employer membership (the registry has their KPJ); for ``"BPU"``,
    ``"PMI"`` or ``None`` any citizen. Deterministic order: citizens with a photo first (they can
    also do the selfie step), then data-set order.
    """
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)} or None")
    if count < 0:
        raise ValueError("count must be >= 0")
    ds = dataset or default_dataset()
    chosen = [
        r for r in ds
        if category != "PU" or (r.get("employer") or {}).get("status") == "ACTIVE"
    ]
    chosen.sort(key=lambda r: 0 if r.get("photo") else 1)  # stable: data-set order otherwise
    out: list[dict[str, Any]] = []
    for r in chosen[:count]:
        employer = r.get("employer")
        item: dict[str, Any] = {
            "nik": r["nik"],
            "full_name": r["full_name"],
            "birth_date": r["birth_date"],
            "employer_registered": employer is not None and employer.get("status") == "ACTIVE",
        }
        if employer is not None:
            item["kpj_number"] = employer["kpj_number"]
        photo = ds.photo_path(r["nik"])
        item["photo"] = str(photo) if photo is not None else None
        item["has_ktp_photo"] = photo is not None
        out.append(item)
    return out
