"""`medconsult graph`: the consult graph as a Mermaid diagram (the README embeds this output)."""

from __future__ import annotations

import typer

from medconsult.graphs.consult import build_consult_graph


def graph() -> None:
    """Print the consult graph, subgraphs expanded, as Mermaid."""
    typer.echo(build_consult_graph().get_graph(xray=1).draw_mermaid().strip())
