"""Message texts in Bahasa Indonesia from template files (``templates/<channel>/<name>.txt.j2``).

An email template's first line is the subject, the rest the body; an SMS template is the body.
Templates are package data: they ship inside the wheel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import jinja2

WIB = timezone(timedelta(hours=7), "WIB")


class TemplateError(Exception):
    """A template is missing or could not be rendered (never carries the values)."""


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body: str


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("jmo_notification", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # plain text, not HTML
    keep_trailing_newline=False,
)


def render(template: str, channel: str, context: dict[str, Any]) -> Rendered:
    """The subject (email) and body of ``template`` for ``channel`` with ``context``."""
    try:
        text = _env.get_template(f"{channel}/{template}.txt.j2").render(**context).strip("\n")
    except jinja2.TemplateError as e:
        raise TemplateError(f"{channel}/{template}: {type(e).__name__}") from None
    if channel != "email":
        return Rendered(None, text)
    subject, _, body = text.partition("\n")
    return Rendered(subject.strip(), body.strip("\n") + "\n")


def local_time(instant: datetime) -> str:
    """HH:MM in Western Indonesian Time (WIB, UTC+7), as a participant reads it."""
    return instant.astimezone(WIB).strftime("%H:%M")
