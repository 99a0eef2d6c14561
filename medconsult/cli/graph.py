"""`medconsult graph`: the consult graph (or the ReAct baseline) as a Mermaid diagram (docs/graph.md embeds both)."""

from __future__ import annotations

import typer


def graph(react: bool = typer.Option(False, "--react", help="the ReAct baseline agent instead")) -> None:
    """Print the consult graph, subgraphs expanded, as Mermaid."""
    if react:
        from medconsult.graphs.react import build_react_graph

        typer.echo(build_react_graph().get_graph().draw_mermaid().strip())
        return
    from medconsult.graphs.consult import build_consult_graph

    typer.echo(build_consult_graph().get_graph(xray=1).draw_mermaid().strip())
