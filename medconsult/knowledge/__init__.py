"""Treatment knowledge base: curated regimens with their sources, validated by a schema."""
