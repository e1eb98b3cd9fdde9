"""Flow diagrams: Graphviz (PNG, SVG, PDF, DOT) or Mermaid text, from the flow's machine."""

from __future__ import annotations

from pathlib import Path

from statemachine.contrib.diagram import DotGraphMachine, MermaidGraphMachine

from flows import FlowError, FlowSpec

FORMATS = ("png", "svg", "pdf", "dot", "mmd")


def write_diagram(spec: FlowSpec, output: Path) -> None:
    """Draw ``spec`` to ``output``; the format comes from the file extension."""
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise FlowError(
            f"unknown diagram format {output.suffix!r}; use one of {', '.join(FORMATS)}"
        )
    if fmt == "mmd":
        mermaid = MermaidGraphMachine(spec.machine).get_mermaid()  # type: ignore[no-untyped-call]
        output.write_text(mermaid, encoding="utf-8")
        return
    # The diagram module of python-statemachine has no annotations.
    graph = DotGraphMachine(spec.machine).get_graph()  # type: ignore[no-untyped-call]
    if fmt == "dot":
        output.write_text(graph.to_string(), encoding="utf-8")
        return
    try:
        graph.write(str(output), format=fmt)
    except FileNotFoundError as exc:
        raise FlowError(
            "Graphviz's 'dot' program is needed for images (apt-get install graphviz); "
            "write a .dot or .mmd file instead"
        ) from exc
