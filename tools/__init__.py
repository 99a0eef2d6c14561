"""Tool plugins (LangChain tools with pydantic schemas and typed results), discovered through entry points."""
