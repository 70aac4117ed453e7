"""The load benchmark times the OTP's arrival in the sink: it must pick the OTP message, not
another notice of the same journey (the "registration received" SMS mentions an OTP too)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest

from jmo_notification.adapters.rendering import render

pytestmark = pytest.mark.unit

TEMPLATES = Path(__file__).resolve().parents[1] / "services" / "notification" / "src" / "jmo_notification" / "templates"


def _load_bench() -> Any:
    path = Path(__file__).resolve().parents[1] / "bench" / "load.py"
    sys.path.insert(0, str(path.parent))  # load.py imports its neighbours
    try:
        spec = importlib.util.spec_from_file_location("bench_load", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


def _sink_message(channel: str, template: str) -> dict[str, Any]:
    """What the sinks keep for ``template`` rendered as the notification service renders it."""
    source = (TEMPLATES / channel / f"{template}.txt.j2").read_text()
    names = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(source))
    text = render(template, channel, {name: "x" for name in names})
    return {"channel": channel, "to": "x", "subject": text.subject or "", "body": text.body.rstrip("\n")}


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_of_every_notice_only_the_registration_otp_counts_as_the_otp_delivered(channel: str) -> None:
    bench = _load_bench()
    templates = sorted(p.name.removesuffix(".txt.j2") for p in (TEMPLATES / channel).glob("*.txt.j2"))
    assert "registration_received" in templates and "otp_registration" in templates
    taken = [t for t in templates if bench.is_registration_otp(_sink_message(channel, t))]
    assert taken == ["otp_registration"]
