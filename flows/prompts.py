"""Turning steps into messages: templates filled from data and queries, options shown."""

from __future__ import annotations

import inspect
import logging
import string
from collections.abc import Mapping
from typing import Any

from flows.context import FlowContext
from flows.messages import ListMenu, Option, Reply, Text, choice_message
from flows.spec import Step
from flows.validators import SPELLED_OUT

log = logging.getLogger("nyala.flows")

SHOWN_KEY = "_shown"  # data key holding the options last shown, to validate against


class _SafeFormatter(string.Formatter):
    """``str.format`` that reaches only mapping keys and public attributes.

    Templates are written by developers, but the values come from users and queries:
    ``{x.__class__}`` and friends must never reach Python internals.
    """

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        first, rest = string._string.formatter_field_name_split(field_name)  # type: ignore[attr-defined]
        value = kwargs.get(str(first), "")
        for is_attr, part in rest:
            if isinstance(part, str) and part.startswith("_"):
                return "", field_name
            if isinstance(value, Mapping):
                value = value.get(part, "")
            elif is_attr:
                value = getattr(value, part, "")
            elif isinstance(value, list | tuple) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                value = ""
        return value, field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _SafeFormatter()


def field_names(template: str) -> set[str]:
    """The top-level names a template refers to (``{a.b}`` → ``a``)."""
    names: set[str] = set()
    try:
        for _, name, _, _ in _FORMATTER.parse(template):
            if name:
                names.add(name.split(".")[0].split("[")[0])
    except ValueError:
        pass
    return names


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``template`` from ``values``; unknown names become empty, never an error."""
    try:
        return _FORMATTER.vformat(template, (), dict(values))
    except (ValueError, IndexError, KeyError):
        log.warning("bad template %r", template)
        return template


async def run_query(ctx: FlowContext, name: str) -> Any:
    """Call the registered query ``name``."""
    result = ctx.app.registry.queries[name](ctx)
    if inspect.isawaitable(result):
        result = await result
    return result


async def template_values(ctx: FlowContext, *templates: str | None) -> dict[str, Any]:
    """The values the templates need: data, the contact's name, and named queries."""
    values: dict[str, Any] = {
        "contact_name": ctx.contact.profile_name or "there",
        "business": ctx.app.name,
        **ctx.data,
    }
    queries = ctx.app.registry.queries
    for template in templates:
        if not template:
            continue
        for name in field_names(template):
            if name not in values and name in queries:
                values[name] = await run_query(ctx, name)
    return values


def _as_options(rows: Any) -> list[Option]:
    options: list[Option] = []
    for row in rows or ():
        if isinstance(row, Option):
            options.append(row)
        elif isinstance(row, Mapping):
            options.append(Option(str(row["id"]), str(row["title"]), row.get("description")))
        else:
            options.append(Option(str(row[0]), str(row[1])))
    return options


async def step_prompt(
    ctx: FlowContext, step: Step, *, with_say: bool = True
) -> list[Reply] | None:
    """The messages that ask ``step``'s question; ``None`` when it has nothing to offer.

    The options shown are remembered in the data, so the answer is checked against what
    the user actually saw. ``with_say=False`` leaves out the texts said before the
    question (a retry: the customer has just read them).
    """
    say = step.say if with_say else ()
    values = await template_values(ctx, step.ask, *say)
    replies: list[Reply] = [Text(render(s, values)) for s in say]
    if step.final:
        return replies
    question = render(step.ask or "", values) or ctx.app.copy.text("prompt.default")
    options: list[Option]
    if step.choices_from:
        options = _as_options(await run_query(ctx, step.choices_from))
        if not options:
            return None
        if len(options) > 10:
            log.warning("query %s gave %d rows; showing 10", step.choices_from, len(options))
            options = options[:10]
    else:
        options = list(step.buttons or step.choices)
    if options:
        ctx.data[SHOWN_KEY] = {
            "step": step.name,
            "options": [[o.id, o.title, o.description] for o in options],
        }
        button = step.list_button or ctx.app.copy.text("list.button")
        if step.buttons:
            # A list instead when the titles cannot be told apart in 20 characters.
            replies.append(choice_message(question, options, button=button))
        else:
            replies.append(ListMenu(question, tuple(options), button=button))
    else:
        ctx.data.pop(SHOWN_KEY, None)
        replies.append(Text(question))
    return replies


def shown_options(data: Mapping[str, Any], step: Step) -> list[Option]:
    """The options last shown for ``step`` (its static ones if none were recorded)."""
    shown = data.get(SHOWN_KEY)
    if isinstance(shown, Mapping) and shown.get("step") == step.name:
        return [Option(i, t, d) for i, t, d in shown.get("options", [])]
    return list(step.buttons or step.choices)


async def retry_prompt(ctx: FlowContext, step: Step, *, code: str) -> list[Reply] | None:
    """What follows the error message when an answer to ``step`` was not accepted.

    A long list (more than :data:`~flows.validators.SPELLED_OUT` options) is not sent
    again: the list message above is still there and still answers when tapped, and ten
    rows after every slip bury the one line that says what went wrong. A short reminder
    points to it instead (none after a ``choice.*`` error, whose hint already does). A
    short question is asked again, without the texts said before it.
    """
    shown = ctx.data.get(SHOWN_KEY)
    if (
        isinstance(shown, Mapping)
        and shown.get("step") == step.name
        and len(shown.get("options", ())) > SPELLED_OUT
        and not step.final
    ):
        if code.startswith("choice."):
            return []
        button = step.list_button or ctx.app.copy.text("list.button")
        count = len(shown["options"])
        return [Text(ctx.app.copy.text("choice.reminder", button=button, count=count))]
    return await step_prompt(ctx, step, with_say=False)
