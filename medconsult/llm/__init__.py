"""LLM layer: chat-model factory, embedded llama.cpp server, local models, vLLM profiles."""
