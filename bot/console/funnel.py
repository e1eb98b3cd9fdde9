"""The funnel drawn on the flow's state diagram: each step shows how many sessions
reached it and how many stopped there, coloured by drop-off, and links to those sessions.

The diagram is python-statemachine's Graphviz drawing (as ``nyala flows diagram``). Laying
it out takes Graphviz tens of milliseconds, so it is done once per flow version with
unique placeholders in the step nodes (texts, fill colours, the period in the links), and
each request only puts its figures into the cached SVG.
"""

from __future__ import annotations

import asyncio
import html
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup
from statemachine.contrib.diagram import DotGraphMachine

from flows import FlowSpec

# Drop-off rate (percent of those who reached the step) → fill colour.
GOOD, FAIR, POOR, NONE = "#dcfce7", "#fef3c7", "#fee2e2", "#ffffff"
# Stands for the report's query (flow, period, live contacts) in every link; replaced per
# request so that a step's link lists exactly the sessions its figure counts.
QUERY_PLACEHOLDER = "q7919query"
# A memo of Graphviz's layout per flow version and link (pure: the same input always
# gives the same SVG; nothing in it depends on a request, an app's state or the data),
# bounded so that many flow versions over a long run cannot grow it without end.
_LAYOUTS_KEPT = 64
_layouts: dict[tuple[str, str, str], str] = {}
# Steps a diagram lays out left to right (a short flow fits a laptop's width that way).
LEFT_TO_RIGHT_MAX = 5


def _colour(row: Mapping[str, Any] | None) -> str:
    if row is None or not row.get("sessions"):
        return NONE
    rate = row.get("drop_off_rate")
    if rate is None or rate < 10:
        return GOOD
    return FAIR if rate < 30 else POOR


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nodes(graph: Any) -> list[Any]:
    found = list(graph.get_node_list())
    for sub in graph.get_subgraph_list():
        found.extend(_nodes(sub))
    return found


def _title(step: str) -> str:
    return step.replace("_", " ").capitalize()


def _tokens(i: int) -> dict[str, str]:
    """The placeholders of step ``i`` (as wide as the longest real text they stand for)."""
    return {
        "reached": f"Q{i:02d}A00000 sessions · 100%",
        "stopped": f"Q{i:02d}B0000 stopped here",
        "tooltip": f"Q{i:02d}C",
        "fill": f"#01{i:02x}01",
    }


def _template_graph(spec: FlowSpec, link: str) -> Any:
    graph = DotGraphMachine(spec.machine).get_graph()  # type: ignore[no-untyped-call]
    if len(spec.steps) > LEFT_TO_RIGHT_MAX:
        # Left to right, a long flow is too wide to read on a laptop (four steps showed
        # and the rest scrolled away); top to bottom every step shows at full size.
        graph.set("rankdir", "TB")
    steps = list(spec.steps)
    for node in _nodes(graph):
        name = node.get_name().strip('"')
        if name not in spec.steps:
            continue
        tokens = _tokens(steps.index(name))
        node.set("label", _quoted("\n".join([_title(name), tokens["reached"], tokens["stopped"]])))
        node.set("fillcolor", _quoted(tokens["fill"]))
        query = urllib.parse.urlencode({"stopped_at": name})
        node.set("URL", _quoted(f"{link}?{query}&{QUERY_PLACEHOLDER}"))
        node.set("target", '"_top"')
        node.set("tooltip", _quoted(f"{_title(name)}: {tokens['tooltip']} — click for them"))
    return graph


def _render(graph: Any) -> str:
    svg: bytes = graph.create_svg()
    text = svg.decode("utf-8")
    text = text[text.find("<svg") :]
    # Graphviz gives the drawing's size in points. Its width stays (the natural size,
    # where the text is readable) and its height goes: the stylesheet lets the drawing
    # shrink to the card's width on a phone, keeping its proportions by the viewBox.
    head, rest = text.split(">", 1)
    head = re.sub(r'\sheight="[^"]*"', "", head)
    return f'{head} preserveAspectRatio="xMidYMin meet">{rest}'


async def _template(spec: FlowSpec, link: str) -> str:
    key = (spec.name, spec.version, link)
    if key not in _layouts:
        if len(_layouts) >= _LAYOUTS_KEPT:
            del _layouts[next(iter(_layouts))]  # the oldest
        _layouts[key] = await asyncio.to_thread(_render, _template_graph(spec, link))
    return _layouts[key]


async def funnel_diagram_svg(
    spec: FlowSpec, steps: Mapping[str, Mapping[str, Any]], *, link: str, query: str
) -> Markup | None:
    """The diagram with the funnel's figures as inline SVG, or ``None`` without Graphviz.

    Args:
        steps: the funnel's rows by step name.
        link: the sessions list each step links to.
        query: the report's query string (flow, period), added to every link.
    """
    try:
        svg = await _template(spec, link)
    except (FileNotFoundError, OSError, AssertionError):
        return None
    svg = svg.replace(QUERY_PLACEHOLDER, html.escape(query))
    for i, name in enumerate(spec.steps):
        row = steps.get(name)
        tokens = _tokens(i)
        sessions = int(row.get("sessions") or 0) if row else 0
        share = float(row.get("percentage") or 0.0) if row else 0.0
        stopped = int(row.get("drop_off") or 0) if row else 0
        values = {
            "reached": f"{sessions} session{'s' if sessions != 1 else ''} · {share:.0f}%",
            "stopped": f"{stopped} stopped here" if stopped else "",
            "tooltip": f"{stopped} sessions stopped here",
            "fill": _colour(row),
        }
        for key, token in tokens.items():
            svg = svg.replace(token, html.escape(values[key]))
    return Markup(svg)  # noqa: S704 - Graphviz escaped the diagram; our figures are escaped
