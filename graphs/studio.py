"""The consult graph as LangGraph's local server and Studio load it (`langgraph.json`): compiled without a
checkpointer, since the server brings its own. A run needs the consult's context (settings, tools, chat model),
which `medconsult run` and the workspace build; Studio shows the graph, its state and its input schema."""

from __future__ import annotations

from medconsult.graphs.consult import build_consult_graph

consult_graph = build_consult_graph()
