"""Documents as HTML: a Jinja2 environment that escapes every value.

An app ships its templates in a folder; a business may replace some of them with its own
(``Branding.templates_dir``), searched first. Autoescape is on (every value from the data
is text, never markup, in the CSS include too), undefined names fail, and the filters
write money, days and moments the one way the framework writes them.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import jinja2

from documents.formatting import format_money

__all__ = ["format_day", "format_moment", "template_environment"]


def format_day(value: dt.date) -> str:
    """``Sat 14 Mar 2026``."""
    return f"{value:%a} {value.day} {value:%b %Y}"


def format_moment(value: dt.datetime) -> str:
    """``14 Mar 2026, 09:30 CAT`` (in the value's own timezone)."""
    return f"{value.day} {value:%b %Y, %H:%M} {value.tzname() or ''}".rstrip()


@functools.lru_cache(maxsize=16)
def template_environment(shipped: Path, overrides: Path | None = None) -> jinja2.Environment:
    """The environment for templates in ``shipped`` (``overrides`` searched first).

    Filters: ``money`` (:func:`documents.formatting.format_money`), ``day``, ``moment``.
    """
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(shipped)]
    if overrides is not None:
        loaders.insert(0, jinja2.FileSystemLoader(overrides))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=format_money, day=format_day, moment=format_moment)
    return env
