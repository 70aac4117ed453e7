"""results.json (for machines) and summary.txt (for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import MEASURED_ROUNDS, WARMUP_ROUNDS, Metric

#: Issue 11: the store within 0.8 of the raw driver on append, replay and relay (was 0.7).
AIM = 0.8


def results(metrics: list[Metric], environment: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    return {
        "environment": environment,
        "method": {
            "warmup_rounds": WARMUP_ROUNDS,
            "measured_rounds": MEASURED_ROUNDS,
            "statistic": "median of the measured rounds",
            "interleaving": "subject and baseline alternate within every round, who goes first alternates between rounds",
            "aim": f"ratio (subject / baseline) >= {AIM}; reported, never enforced",
        },
        "metrics": [m.as_json() for m in metrics],
        "extras": extras,
    }


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def summary(metrics: list[Metric], environment: dict[str, Any], extras: dict[str, Any]) -> str:
    rows = [("metric", "unit", "subject", "baseline", "ratio", "spread")]
    for m in metrics:
        spread = m.as_json()["spread"]["relative"]
        flag = "" if m.ratio is None else ("  ok" if m.ratio >= AIM else "  LOW")
        rows.append((m.title, m.unit, _fmt(m.value), _fmt(m.baseline), "-" if m.ratio is None else f"{m.ratio:.2f}{flag}", f"±{spread / 2:.0%}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"JMO benchmark  {environment['timestamp']}  cpus={environment['cpu_count']}  servers={environment['servers']}",
        f"median of {MEASURED_ROUNDS} rounds after {WARMUP_ROUNDS} warm-up; subject and baseline interleaved; aim ratio >= {AIM}",
        "",
    ]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", "baselines:"]
    lines += [f"  {m.title}: {m.baseline_is}" for m in metrics if m.baseline_is]
    lines += ["", "sizes:"]
    lines += [f"  {m.title}: {', '.join(f'{k}={v}' for k, v in m.sizes.items())}" for m in metrics]
    if extras:
        lines += ["", "other timings:"]
        lines += _nested(extras, "  ")
    lines += ["", "versions: " + ", ".join(f"{k} {v}" for k, v in environment["versions"].items())]
    lines.append("spread = half of (max - min) / median of the subject's measured rounds")
    return "\n".join(lines) + "\n"


def _nested(d: dict[str, Any], indent: str) -> list[str]:
    out: list[str] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"{indent}{k}:")
            out += _nested(v, indent + "  ")
        else:
            out.append(f"{indent}{k}: {v}")
    return out


def write(directory: Path, metrics: list[Metric], environment: dict[str, Any], extras: dict[str, Any]) -> str:
    text = summary(metrics, environment, extras)
    (directory / "results.json").write_text(json.dumps(results(metrics, environment, extras), indent=2) + "\n")
    (directory / "summary.txt").write_text(text)
    return text
