"""Contribution assessment of SPEC §3 step 5, from the effective-dated rate table, as sentences."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from jmo_contracts.common import Category
from jmo_contracts.registration import ContributionAssessed, ContributionPeriod, Program, ProgramContribution
from jmo_registration.domain.contributions import Assessment, RateTables, RiskClass, apply_rate, assess, pu_reference_rates
from jmo_runtime import Rejection

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 21)
PACKAGED = Path(__file__).parents[1] / "src" / "jmo_registration" / "data" / "contribution_rates.json"


@pytest.fixture(scope="module")
def tables() -> RateTables:
    return RateTables.packaged()


def lines(assessment: Assessment) -> list[tuple[str, int, str, int | None]]:
    return [(p.program.value, p.amount, p.period.value, p.rate_basis_points) for p in assessment.programs]


def refusal(*args: object) -> str:
    with pytest.raises(Rejection) as info:
        assess(*args)  # type: ignore[arg-type]
    return info.value.reason_code


def with_future_version(tmp_path: Path, effective_from: str, **bpu_changes: object) -> Path:
    """A copy of the shipped table with a second, later version (test fixture only, never shipped)."""
    document = json.loads(PACKAGED.read_text())
    future = json.loads(json.dumps(document["versions"][0]))
    future["effective_from"] = effective_from
    future["bpu"].update(bpu_changes)
    document["versions"].append(future)
    path = tmp_path / "contribution_rates.json"
    path.write_text(json.dumps(document))
    return path


# --- BPU ------------------------------------------------------------------------------------------


def test_the_cheapest_bpu_package_is_jkk_and_jkm_for_rp_16_800_a_month(tables: RateTables) -> None:
    assessment = assess(Category.BPU, 1_000_000, False, None, tables, TODAY)
    assert lines(assessment) == [("JKK", 10_000, "MONTHLY", 100), ("JKM", 6_800, "MONTHLY", None)]
    assert assessment.amount_due == 16_800


def test_bpu_jht_adds_two_percent_of_the_bracket(tables: RateTables) -> None:
    assessment = assess(Category.BPU, 1_000_000, True, None, tables, TODAY)
    assert lines(assessment)[-1] == ("JHT", 20_000, "MONTHLY", 200)
    assert assessment.amount_due == 36_800


@pytest.mark.parametrize(
    ("income", "bracket", "why"),
    [
        (1, 1_000_000, "far below the floor uses the floor"),
        (999_999, 1_000_000, "just below the floor uses the floor"),
        (1_000_000, 1_000_000, "the floor itself"),
        (1_499_999, 1_000_000, "a level covers incomes up to the next level"),
        (1_500_000, 1_500_000, "the next level starts exactly at its amount"),
        (2_500_000, 2_500_000, "the contract's example income"),
        (2_750_000, 2_500_000, "between levels rounds down to the level below"),
        (20_499_999, 20_000_000, "just below the last regular step"),
        (20_500_000, 20_500_000, "the last regular step"),
        (20_699_999, 20_500_000, "between the last step and the cap"),
        (20_700_000, 20_700_000, "the cap itself"),
        (250_000_000, 20_700_000, "far above the cap uses the cap"),
    ],
)
def test_the_bracket_is_the_highest_level_not_above_the_income_with_a_floor_and_a_cap(tables: RateTables, income: int, bracket: int, why: str) -> None:
    assert tables.effective_on(TODAY).bpu.bracket(income) == bracket, why
    assessment = assess(Category.BPU, income, True, None, tables, TODAY)
    assert [p.amount for p in assessment.programs] == [bracket // 100, 6_800, bracket // 50], why


def test_the_bracket_levels_are_every_rp_500_000_from_one_million_then_the_cap(tables: RateTables) -> None:
    levels = tables.effective_on(TODAY).bpu.income_brackets
    assert levels == (*range(1_000_000, 20_500_001, 500_000), 20_700_000)


def test_the_capped_bpu_jkk_is_rp_207_000(tables: RateTables) -> None:
    assessment = assess(Category.BPU, 30_000_000, True, None, tables, TODAY)
    assert lines(assessment) == [("JKK", 207_000, "MONTHLY", 100), ("JKM", 6_800, "MONTHLY", None), ("JHT", 414_000, "MONTHLY", 200)]
    assert assessment.amount_due == 627_800


def test_a_bpu_participant_cannot_choose_a_jht_amount(tables: RateTables) -> None:
    assert refusal(Category.BPU, 2_000_000, True, 100_000, tables, TODAY) == "JHT_AMOUNT_NOT_APPLICABLE"


@pytest.mark.parametrize("income", [0, -5])
def test_an_income_that_is_not_positive_is_refused(tables: RateTables, income: int) -> None:
    assert refusal(Category.BPU, income, False, None, tables, TODAY) == "INVALID_INCOME"


def test_rates_are_rounded_half_up_to_whole_rupiah() -> None:
    assert (apply_rate(1_000_000, 24), apply_rate(1_234_567, 100), apply_rate(1_234_550, 100), apply_rate(1_234_549, 100)) == (2_400, 12_346, 12_346, 12_345)


# --- PMI ------------------------------------------------------------------------------------------


def test_the_pmi_package_covers_jkk_and_jkm_for_the_placement_for_rp_370_000(tables: RateTables) -> None:
    assessment = assess(Category.PMI, 8_000_000, False, None, tables, TODAY)
    assert lines(assessment) == [("JKK", 370_000, "PLACEMENT", None), ("JKM", 0, "PLACEMENT", None)]
    assert assessment.amount_due == 370_000


@pytest.mark.parametrize("amount", [50_000, 275_000, 600_000])
def test_pmi_jht_is_the_chosen_monthly_amount_within_rp_50_000_to_600_000(tables: RateTables, amount: int) -> None:
    assessment = assess(Category.PMI, 8_000_000, True, amount, tables, TODAY)
    assert lines(assessment)[-1] == ("JHT", amount, "MONTHLY", None)
    assert assessment.amount_due == 370_000 + amount


@pytest.mark.parametrize("amount", [0, 49_999, 600_001])
def test_a_pmi_jht_amount_outside_the_range_is_refused(tables: RateTables, amount: int) -> None:
    assert refusal(Category.PMI, 8_000_000, True, amount, tables, TODAY) == "JHT_AMOUNT_OUT_OF_RANGE"


def test_pmi_jht_without_an_amount_is_refused(tables: RateTables) -> None:
    assert refusal(Category.PMI, 8_000_000, True, None, tables, TODAY) == "JHT_AMOUNT_REQUIRED"


def test_a_pmi_jht_amount_without_choosing_jht_is_refused(tables: RateTables) -> None:
    assert refusal(Category.PMI, 8_000_000, False, 100_000, tables, TODAY) == "JHT_AMOUNT_NOT_APPLICABLE"


# --- PU -------------------------------------------------------------------------------------------


def test_pu_contributions_are_not_assessed_because_the_employer_pays(tables: RateTables) -> None:
    assert refusal(Category.PU, 5_000_000, True, None, tables, TODAY) == "CONTRIBUTION_NOT_ASSESSED"


@pytest.mark.parametrize(("risk", "jkk"), [(RiskClass.VERY_LOW, 24), (RiskClass.LOW, 54), (RiskClass.MEDIUM, 89), (RiskClass.HIGH, 127), (RiskClass.VERY_HIGH, 174)])
def test_pu_reference_rates_give_jkk_by_risk_class_and_who_pays_what(tables: RateTables, risk: RiskClass, jkk: int) -> None:
    rates = pu_reference_rates(risk, tables, TODAY)
    assert rates.employer_basis_points == {Program.JKK: jkk, Program.JKM: 30, Program.JHT: 370, Program.JP: 200}
    assert rates.worker_basis_points == {Program.JKK: 0, Program.JKM: 0, Program.JHT: 200, Program.JP: 100}
    pu = tables.effective_on(TODAY).pu
    assert (pu.jht_basis_points, pu.jp_basis_points) == (570, 300)


# --- The assessment against the contract -----------------------------------------------------------


def test_the_assessment_fills_the_contracts_contribution_assessed_event(tables: RateTables) -> None:
    assessment = assess(Category.BPU, 2_500_000, True, None, tables, TODAY)
    assert all(isinstance(p, ProgramContribution) for p in assessment.programs)
    event = ContributionAssessed(
        participant_id="5b0e7c3a9d1f4e2a8c6b4d2f0e1a3c5b",
        programs=assessment.programs,
        amount_due=assessment.amount_due,
        payment_reference="JMO-BPU-7F3A2C91",
        rate_table_id=assessment.rate_table_id,
        rate_table_effective_from=assessment.effective_from,
    )
    assert (event.amount_due, event.rate_table_id, event.rate_table_effective_from) == (25_000 + 6_800 + 50_000, "jmo-contribution-rates", date(2025, 1, 1))
    assert {p.period for p in event.programs} == {ContributionPeriod.MONTHLY}


# --- Effective dating -------------------------------------------------------------------------------


def test_the_version_in_force_is_the_latest_one_that_started_on_or_before_the_day(tmp_path: Path) -> None:
    tables = RateTables.load(with_future_version(tmp_path, "2027-07-01", jkm_monthly_amount=7_500, jkk_basis_points=120))
    before = assess(Category.BPU, 1_000_000, False, None, tables, date(2027, 6, 30))
    on = assess(Category.BPU, 1_000_000, False, None, tables, date(2027, 7, 1))
    assert (before.amount_due, before.effective_from) == (16_800, date(2025, 1, 1))
    assert (on.amount_due, on.effective_from) == (12_000 + 7_500, date(2027, 7, 1))
    assert lines(on)[0] == ("JKK", 12_000, "MONTHLY", 120)


def test_versions_may_be_listed_in_any_order_in_the_file(tmp_path: Path) -> None:
    path = with_future_version(tmp_path, "2027-07-01", jkm_monthly_amount=7_500)
    document = json.loads(path.read_text())
    document["versions"].reverse()
    path.write_text(json.dumps(document))
    assert RateTables.load(path).effective_on(date(2026, 1, 1)).effective_from == date(2025, 1, 1)


def test_a_day_before_any_version_has_no_rates(tables: RateTables) -> None:
    assert refusal(Category.BPU, 1_000_000, False, None, tables, date(2024, 12, 31)) == "NO_RATE_TABLE"


def test_the_shipped_table_is_what_the_application_loads_from_the_package() -> None:
    assert RateTables.load(PACKAGED) == RateTables.packaged()
    description = json.loads(PACKAGED.read_text())["description"]
    assert "highest level that is not above" in description and "floor" in description and "cap" in description


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda v: v["bpu"].update(income_brackets=[1_500_000, 1_000_000]), "brackets out of order"),
        (lambda v: v["bpu"].update(income_brackets=[]), "no brackets"),
        (lambda v: v["pmi"].update(package_allocation={"JKK": 300_000, "JKM": 0}), "allocation not adding up"),
        (lambda v: v["pmi"].update(jht_monthly_min=700_000), "JHT minimum above maximum"),
        (lambda v: v["pu"]["jkk_basis_points_by_risk_class"].pop("HIGH"), "a risk class missing"),
        (lambda v: v["bpu"].update(jkk_percent=1.0), "an unknown field"),
        (lambda v: v.update(effective_from="2025-13-01"), "not a date"),
    ],
)
def test_a_malformed_rate_table_is_refused_when_loaded(tmp_path: Path, change: object, why: str) -> None:
    document = json.loads(PACKAGED.read_text())
    change(document["versions"][0])  # type: ignore[operator]
    with pytest.raises(ValueError):
        RateTables.from_json(json.dumps(document))


def test_two_versions_starting_on_the_same_day_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RateTables.load(with_future_version(tmp_path, "2025-01-01"))
