"""The funnel drawn on the flow's state diagram: each step shows how many sessions
reached it and how many stopped there, coloured by drop-off, and links to those sessions.

The diagram is python-statemachine's Graphviz drawing (as ``nyala flows diagram``), with
the step nodes relabelled; Graphviz renders it to SVG in a thread.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup
from statemachine.contrib.diagram import DotGraphMachine

from flows import FlowSpec

# Drop-off rate (percent of those who reached the step) → fill colour.
GOOD, FAIR, POOR = "#dcfce7", "#fef3c7", "#fee2e2"


def _colour(drop_rate: float | None) -> str:
    if drop_rate is None or drop_rate < 10:
        return GOOD
    return FAIR if drop_rate < 30 else POOR


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nodes(graph: Any) -> list[Any]:
    found = list(graph.get_node_list())
    for sub in graph.get_subgraph_list():
        found.extend(_nodes(sub))
    return found


def annotated_graph(
    spec: FlowSpec, steps: Mapping[str, Mapping[str, Any]], *, link: str, days: int
) -> Any:
    """The flow's pydot graph with the funnel's figures on its step nodes."""
    graph = DotGraphMachine(spec.machine).get_graph()  # type: ignore[no-untyped-call]
    for node in _nodes(graph):
        name = node.get_name().strip('"')
        row = steps.get(name)
        if row is None:
            continue
        title = name.replace("_", " ").capitalize()
        sessions = int(row.get("sessions") or 0)
        percentage = float(row.get("percentage") or 0.0)
        stopped = int(row.get("abandoned_here") or 0)
        drop_rate = row.get("drop_off_rate")
        lines = [title, f"{sessions} sessions · {percentage:.0f}%"]
        if stopped:
            lines.append(f"{stopped} stopped here")
        node.set("label", _quoted("\n".join(lines)))
        node.set("fillcolor", _quoted(_colour(drop_rate)))
        query = urllib.parse.urlencode({"flow": spec.name, "stopped_at": name, "days": days})
        node.set("URL", _quoted(f"{link}?{query}"))
        node.set("target", '"_top"')
        node.set(
            "tooltip", _quoted(f"{title}: {stopped} sessions stopped here — click to see them")
        )
    return graph


def _render(graph: Any) -> str:
    svg: bytes = graph.create_svg()
    text = svg.decode("utf-8")
    return text[text.find("<svg") :]


async def funnel_diagram_svg(
    spec: FlowSpec, steps: Mapping[str, Mapping[str, Any]], *, link: str, days: int
) -> Markup | None:
    """The annotated diagram as inline SVG, or ``None`` without Graphviz."""
    graph = annotated_graph(spec, steps, link=link, days=days)
    try:
        svg = await asyncio.to_thread(_render, graph)
    except (FileNotFoundError, OSError, AssertionError):
        return None
    return Markup(svg)  # noqa: S704 - Graphviz escapes every label it writes
