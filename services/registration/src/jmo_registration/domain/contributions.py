"""Contribution assessment (SPEC §3 step 5): BPU by income bracket, PMI package, PU for reference only.

Rates and brackets are effective-dated data (``jmo_registration/data/contribution_rates.json``), not
constants: :class:`RateTables` holds every version of the table, :meth:`RateTables.effective_on`
picks the one in force on a day, and :func:`assess` is pure given the tables and the day. Reading the
file (:meth:`RateTables.load`, :meth:`RateTables.packaged`) is done once by the application at start-up.

The bracket rule is stated in the JSON's ``description`` and implemented by :meth:`BpuRates.bracket`:
a declared income is assessed at the highest bracket level not above it, the first level for
incomes below it (floor) and the last level for incomes above it (cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from jmo_contracts.common import Category
from jmo_contracts.registration import ContributionPeriod, Program, ProgramContribution
from jmo_runtime import Rejection

BASIS_POINTS = 10_000


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def apply_rate(amount: int, basis_points: int) -> int:
    """``amount × basis_points / 10,000`` rounded half up to whole rupiah, in integer arithmetic."""
    return (amount * basis_points + BASIS_POINTS // 2) // BASIS_POINTS


class BpuRates(_Data):
    """BPU (self-employed): JKK and optional JHT as a rate of the income bracket, JKM a flat monthly amount."""

    income_brackets: tuple[PositiveInt, ...] = Field(min_length=1, description="Reported-income levels in rupiah, strictly ascending.")
    jkk_basis_points: int = Field(ge=0)
    jht_basis_points: int = Field(ge=0)
    jkm_monthly_amount: int = Field(ge=0)

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        if any(a >= b for a, b in zip(self.income_brackets, self.income_brackets[1:], strict=False)):
            raise ValueError("income_brackets must be strictly ascending")
        return self

    def bracket(self, income: int) -> int:
        """The level an income is assessed at: the highest not above it; floor below, cap above."""
        chosen = self.income_brackets[0]
        for level in self.income_brackets:
            if level > income:
                break
            chosen = level
        return chosen


class PmiRates(_Data):
    """PMI (migrant worker): one JKK + JKM package for before and during placement, optional monthly JHT."""

    package_amount: PositiveInt
    package_allocation: dict[Program, int] = Field(description="How the package is reported per program; adds up to package_amount.")
    jht_monthly_min: PositiveInt
    jht_monthly_max: PositiveInt

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if set(self.package_allocation) != {Program.JKK, Program.JKM}:
            raise ValueError("package_allocation must name exactly JKK and JKM")
        if any(v < 0 for v in self.package_allocation.values()) or sum(self.package_allocation.values()) != self.package_amount:
            raise ValueError("package_allocation must be non-negative and add up to package_amount")
        if self.jht_monthly_min > self.jht_monthly_max:
            raise ValueError("jht_monthly_min is above jht_monthly_max")
        return self


class RiskClass(StrEnum):
    """Work-accident risk class of a PU employer (kelompok tingkat risiko)."""

    VERY_LOW = "VERY_LOW"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    VERY_HIGH = "VERY_HIGH"


class PuRates(_Data):
    """PU (employee) rates, for reference only: the employer enrols and pays, JMO assesses nothing."""

    jkk_basis_points_by_risk_class: dict[RiskClass, int]
    jkm_basis_points: int = Field(ge=0)
    jht_employer_basis_points: int = Field(ge=0)
    jht_worker_basis_points: int = Field(ge=0)
    jp_employer_basis_points: int = Field(ge=0)
    jp_worker_basis_points: int = Field(ge=0)

    @model_validator(mode="after")
    def _every_class(self) -> Self:
        if set(self.jkk_basis_points_by_risk_class) != set(RiskClass):
            raise ValueError("jkk_basis_points_by_risk_class must give every risk class")
        return self

    @property
    def jht_basis_points(self) -> int:
        return self.jht_employer_basis_points + self.jht_worker_basis_points

    @property
    def jp_basis_points(self) -> int:
        return self.jp_employer_basis_points + self.jp_worker_basis_points


class RateTable(_Data):
    """One version of the rate table, in force from ``effective_from`` until the next version."""

    rate_table_id: str
    effective_from: date
    note: str | None = None
    bpu: BpuRates
    pmi: PmiRates
    pu: PuRates


class _RateFile(_Data):
    description: str
    rate_table_id: str = Field(min_length=1)
    versions: tuple[dict[str, object], ...] = Field(min_length=1)


@dataclass(frozen=True)
class RateTables:
    """Every version of the rate table, oldest first."""

    versions: tuple[RateTable, ...]

    def __post_init__(self) -> None:
        days = [v.effective_from for v in self.versions]
        if not days:
            raise ValueError("a rate table needs at least one version")
        if days != sorted(set(days)):
            raise ValueError("rate table versions must have distinct effective_from dates, oldest first")

    @classmethod
    def from_json(cls, text: str | bytes) -> RateTables:
        """Parse and validate the JSON document (a ``ValueError`` names what is wrong)."""
        document = _RateFile.model_validate_json(text)
        versions = [RateTable.model_validate({"rate_table_id": document.rate_table_id, **v}) for v in document.versions]
        return cls(tuple(sorted(versions, key=lambda v: v.effective_from)))

    @classmethod
    def load(cls, path: str | Path) -> RateTables:
        """Read a rate-table file (I/O: call it at start-up, not from a decider)."""
        return cls.from_json(Path(path).read_bytes())

    @classmethod
    def packaged(cls) -> RateTables:
        """The rate table shipped with the service (``jmo_registration/data/contribution_rates.json``)."""
        return cls.from_json(resources.files("jmo_registration").joinpath("data", "contribution_rates.json").read_bytes())

    def effective_on(self, day: date) -> RateTable:
        """The version in force on ``day``: the latest whose ``effective_from`` is on or before it."""
        in_force = [v for v in self.versions if v.effective_from <= day]
        if not in_force:
            raise Rejection("NO_RATE_TABLE", f"no contribution rates are in force on {day.isoformat()}")
        return in_force[-1]


@dataclass(frozen=True)
class Assessment:
    """What the first payment consists of, and which rate table version said so."""

    programs: list[ProgramContribution]
    amount_due: int
    rate_table_id: str
    effective_from: date


def assess(
    category: Category,
    income: int,
    join_jht: bool,
    jht_monthly_amount: int | None,
    tables: RateTables,
    today: date,
) -> Assessment:
    """The contributions of a BPU or PMI participant (``Rejection`` for PU and for inconsistent choices).

    * BPU: JKK (rate of the bracket) and JKM (flat), both monthly; JHT (rate of the bracket) if chosen.
      A chosen JHT amount is not allowed (``JHT_AMOUNT_NOT_APPLICABLE``): BPU JHT follows the bracket.
    * PMI: the JKK + JKM package for the placement; JHT if chosen, at the chosen monthly amount within
      the table's range (``JHT_AMOUNT_REQUIRED``, ``JHT_AMOUNT_OUT_OF_RANGE``); an amount without
      choosing JHT is ``JHT_AMOUNT_NOT_APPLICABLE``. The first payment is the package plus the first JHT month.
    * PU: ``CONTRIBUTION_NOT_ASSESSED``: the employer pays (see :func:`pu_reference_rates`).
    """
    if income <= 0:
        raise Rejection("INVALID_INCOME", "monthly income must be a positive amount in rupiah")
    table = tables.effective_on(today)
    match Category(category):
        case Category.BPU:
            programs = _bpu(table.bpu, income, join_jht, jht_monthly_amount)
        case Category.PMI:
            programs = _pmi(table.pmi, join_jht, jht_monthly_amount)
        case Category.PU:
            raise Rejection("CONTRIBUTION_NOT_ASSESSED", "PU contributions are paid by the employer; nothing is due in JMO")
    return Assessment(programs=programs, amount_due=sum(p.amount for p in programs), rate_table_id=table.rate_table_id, effective_from=table.effective_from)


def _bpu(rates: BpuRates, income: int, join_jht: bool, jht_monthly_amount: int | None) -> list[ProgramContribution]:
    if jht_monthly_amount is not None:
        raise Rejection("JHT_AMOUNT_NOT_APPLICABLE", "BPU JHT is a rate of the income bracket; no amount can be chosen")
    level = rates.bracket(income)
    monthly = ContributionPeriod.MONTHLY
    programs = [
        ProgramContribution(program=Program.JKK, amount=apply_rate(level, rates.jkk_basis_points), period=monthly, rate_basis_points=rates.jkk_basis_points),
        ProgramContribution(program=Program.JKM, amount=rates.jkm_monthly_amount, period=monthly),
    ]
    if join_jht:
        programs.append(ProgramContribution(program=Program.JHT, amount=apply_rate(level, rates.jht_basis_points), period=monthly, rate_basis_points=rates.jht_basis_points))
    return programs


def _pmi(rates: PmiRates, join_jht: bool, jht_monthly_amount: int | None) -> list[ProgramContribution]:
    placement = ContributionPeriod.PLACEMENT
    programs = [ProgramContribution(program=p, amount=rates.package_allocation[p], period=placement) for p in (Program.JKK, Program.JKM)]
    if not join_jht:
        if jht_monthly_amount is not None:
            raise Rejection("JHT_AMOUNT_NOT_APPLICABLE", "a JHT amount was given but JHT was not chosen")
        return programs
    if jht_monthly_amount is None:
        raise Rejection("JHT_AMOUNT_REQUIRED", f"choose a monthly JHT amount between Rp {rates.jht_monthly_min:,} and Rp {rates.jht_monthly_max:,}")
    if not rates.jht_monthly_min <= jht_monthly_amount <= rates.jht_monthly_max:
        raise Rejection("JHT_AMOUNT_OUT_OF_RANGE", f"the monthly JHT amount must be between Rp {rates.jht_monthly_min:,} and Rp {rates.jht_monthly_max:,}")
    programs.append(ProgramContribution(program=Program.JHT, amount=jht_monthly_amount, period=ContributionPeriod.MONTHLY))
    return programs


@dataclass(frozen=True)
class PuReference:
    """PU rates of one risk class as percentages of wages, split by who pays (information only)."""

    risk_class: RiskClass
    employer_basis_points: dict[Program, int]
    worker_basis_points: dict[Program, int]
    rate_table_id: str
    effective_from: date


def pu_reference_rates(risk_class: RiskClass, tables: RateTables, today: date) -> PuReference:
    """The PU rates in force on ``today`` for an employer of ``risk_class``: JKK and JKM employer-paid,
    JHT and JP shared. Shown to the worker; never assessed or collected by JMO."""
    table = tables.effective_on(today)
    pu = table.pu
    employer = {
        Program.JKK: pu.jkk_basis_points_by_risk_class[RiskClass(risk_class)],
        Program.JKM: pu.jkm_basis_points,
        Program.JHT: pu.jht_employer_basis_points,
        Program.JP: pu.jp_employer_basis_points,
    }
    worker = {Program.JKK: 0, Program.JKM: 0, Program.JHT: pu.jht_worker_basis_points, Program.JP: pu.jp_worker_basis_points}
    return PuReference(RiskClass(risk_class), employer, worker, table.rate_table_id, table.effective_from)
